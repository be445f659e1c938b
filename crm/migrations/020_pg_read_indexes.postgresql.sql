-- PostgreSQL only (DuckDB: 020_pg_read_indexes.sql, empty): indexes for the insight pages at
-- the large demo's size, where PostgreSQL otherwise sorts or re-reads whole tables.

-- customers at risk (satisfaction page, customer page): each customer's latest two answers
-- are read in the index's order (no sort of 500,000 answers), scores from the index itself
CREATE INDEX surveys_live_latest ON surveys (customer_id, answered_on DESC, id DESC)
    INCLUDE (nps, csat) WHERE deleted_at IS NULL;
-- what is at stake for a flagged customer: the open pipeline and the revenue won in 12
-- months read from the index, not from each of the customer's deals in the table
CREATE INDEX deals_live_customer_money ON deals (customer_id)
    INCLUDE (stage_id, amount, currency, closed_on) WHERE deleted_at IS NULL;

-- the board's top cards per stage (015's index, now carrying what the cards are filtered
-- by): a closed stage's walk down the amounts skips the deals closed too long ago, in
-- another pipeline or currency inside the index, not one table row each (20,000-47,000 of
-- them at the large demo: 960 ms -> 60 ms for the cards)
DROP INDEX IF EXISTS deals_live_stage_amount;
CREATE INDEX deals_live_stage_amount ON deals (stage_id, amount DESC NULLS LAST, id)
    INCLUDE (pipeline_id, currency, closed_on, owner_id) WHERE deleted_at IS NULL;

-- counts over every live lead or deal by one short column (leads by status on the home
-- page; the currency pickers of home, forecast and market): read from these small indexes
-- instead of the wide tables (at the large demo 520 -> 140 ms and 590 -> 180 ms)
CREATE INDEX leads_live_status ON leads (status) WHERE deleted_at IS NULL;
CREATE INDEX deals_live_currency ON deals (currency) WHERE deleted_at IS NULL;
