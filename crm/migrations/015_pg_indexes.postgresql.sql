-- PostgreSQL only (DuckDB: 015_pg_indexes.sql, empty): the indexes that keep the pages under
-- a second at 1,000,000 leads. PostgreSQL reads a whole table for an ORDER BY ... LIMIT or a
-- join on a column without one, where DuckDB's scans are fast enough. Partial on the live rows
-- (deleted_at IS NULL), which is every list's and board's filter; the sort keys in the lists'
-- own order (NULLS LAST, ties by id), so a page is read straight off the index and the last
-- page off its other end.

-- the leads list: newest first, everyone's (admins, managers) and a rep's own
CREATE INDEX leads_live_created ON leads (created_at DESC NULLS LAST, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX leads_live_owner_created ON leads (owner_id, created_at DESC NULLS LAST, id DESC)
    WHERE deleted_at IS NULL;

-- the deals list, newest first
CREATE INDEX deals_live_created ON deals (created_at DESC NULLS LAST, id DESC)
    WHERE deleted_at IS NULL;

-- the board: each open stage's top cards by amount
CREATE INDEX deals_live_stage_amount ON deals (stage_id, amount DESC NULLS LAST, id)
    WHERE deleted_at IS NULL;
-- a customer's deals (customer page, satisfaction's revenue at stake)
CREATE INDEX deals_customer ON deals (customer_id);

-- what hangs off a deal, a customer or a lead: the cards' open-task flag, record pages
CREATE INDEX tasks_deal ON tasks (deal_id);
CREATE INDEX tasks_customer ON tasks (customer_id);
CREATE INDEX tasks_lead ON tasks (lead_id);
CREATE INDEX activities_deal ON activities (deal_id);
CREATE INDEX activities_customer ON activities (customer_id);
CREATE INDEX activities_lead ON activities (lead_id);
CREATE INDEX deal_products_deal ON deal_products (deal_id);
CREATE INDEX contacts_customer ON contacts (customer_id);
