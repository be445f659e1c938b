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
