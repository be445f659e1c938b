-- Each deal's last stage history row (crm/last_moves.py keeps it with every write of the
-- history): the open pipeline at a past day's end reads one row per deal instead of grouping
-- all of deal_stage_history. (DuckDB: 023_deal_last_moves.sql, without the index.)
CREATE TABLE deal_last_moves (
    deal_id BIGINT PRIMARY KEY,
    changed_at TIMESTAMP NOT NULL,
    stage_id BIGINT NOT NULL,
    amount DECIMAL(14, 2),
    probability INTEGER NOT NULL,
    -- another history row of the deal has the same changed_at: readers use the history
    tied BOOLEAN NOT NULL
);

INSERT INTO deal_last_moves (deal_id, changed_at, stage_id, amount, probability, tied)
SELECT deal_id, changed_at, to_stage_id, amount, probability, ties > 1 FROM (
    SELECT h.deal_id, h.changed_at, h.to_stage_id, h.amount, h.probability,
        row_number() OVER (PARTITION BY h.deal_id ORDER BY h.changed_at DESC, h.id DESC) AS n,
        count(*) OVER (PARTITION BY h.deal_id, h.changed_at) AS ties
    FROM deal_stage_history h) x WHERE n = 1;

-- the deals standing in a given stage since before a day, read from the index alone (the open
-- stages' 100,000 deals of the large demo, not all 1,000,000 rows)
CREATE INDEX deal_last_moves_stage ON deal_last_moves (stage_id, changed_at)
    INCLUDE (deal_id, amount, probability, tied);

-- the few deals moved after that day (and those with two moves at their last moment), whose
-- state then the history gives
CREATE INDEX deal_last_moves_changed ON deal_last_moves (changed_at);
CREATE INDEX deal_last_moves_tied ON deal_last_moves (deal_id) WHERE tied;
ANALYZE deal_last_moves;
