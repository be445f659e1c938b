-- PostgreSQL only (DuckDB: 025_pg_dashboard_indexes.sql, empty): the dashboards' aggregates
-- over the deals and leads of a period read the period's rows from an index that carries
-- every column they sum or group by (index-only scans), instead of the whole 375 MB deals
-- table or the 210 MB leads table (at the large demo each such scan took 0.25-0.7 s).

-- deals closed in a period (home: won and lost, win rate, sales cycle, won by month,
-- retention, customer bases)
CREATE INDEX deals_live_closed ON deals (closed_on)
    INCLUDE (stage_id, currency, amount, created_at, customer_id, owner_id, pipeline_id)
    WHERE deleted_at IS NULL AND closed_on IS NOT NULL;

-- the board's stage index (020) carries the probability and customer too: the open pipeline
-- (amount x probability) per currency and owner, and the won deals per customer, read
-- from it alone, one range per stage
DROP INDEX IF EXISTS deals_live_stage_amount;
CREATE INDEX deals_live_stage_amount ON deals (stage_id, amount DESC NULLS LAST, id)
    INCLUDE (pipeline_id, currency, closed_on, owner_id, probability, customer_id)
    WHERE deleted_at IS NULL;

-- leads created in a period (home: lead conversion and sources)
CREATE INDEX leads_live_created_facts ON leads (created_at)
    INCLUDE (source, status, converted_at, owner_id) WHERE deleted_at IS NULL;

-- the live deals by id with what the open pipeline of a past day sums and filters by: its
-- stage spans (deal_stage_spans) join their deals through it without reading the table
-- (home, the pipeline at the previous period's end: 0.9 s -> 0.3 s at the large demo)
CREATE INDEX deals_live_id_facts ON deals (id) INCLUDE (currency, owner_id, pipeline_id, amount)
    WHERE deleted_at IS NULL;
