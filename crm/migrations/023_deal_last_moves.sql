-- Each deal's last stage history row (crm/last_moves.py keeps it with every write of the
-- history): the open pipeline at a past day's end reads one row per deal instead of grouping
-- all of deal_stage_history. PostgreSQL: 023_deal_last_moves.postgresql.sql (an index more).
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
