-- Each stage history row with the moment it stopped being the deal's latest (to_at; far in
-- the future while it is), kept by crm/stage_spans.py with every write of the history: the
-- open pipeline at a past day's end reads the spans open then instead of grouping all of
-- deal_stage_history. (DuckDB: 023_deal_stage_spans.sql, without indexes.)
CREATE TABLE deal_stage_spans (
    history_id BIGINT NOT NULL,
    deal_id BIGINT NOT NULL,
    stage_id BIGINT NOT NULL,
    amount DECIMAL(14, 2),
    probability INTEGER NOT NULL,
    from_at TIMESTAMP NOT NULL,
    to_at TIMESTAMP NOT NULL
);

INSERT INTO deal_stage_spans (history_id, deal_id, stage_id, amount, probability, from_at, to_at)
SELECT h.id, h.deal_id, h.to_stage_id, h.amount, h.probability, h.changed_at,
    coalesce(n.next_at, CAST('9999-12-31' AS TIMESTAMP))
FROM deal_stage_history h
JOIN (SELECT deal_id, changed_at,
        lead(changed_at) OVER (PARTITION BY deal_id ORDER BY changed_at) AS next_at
    FROM (SELECT DISTINCT deal_id, changed_at FROM deal_stage_history) d) n
    ON n.deal_id = h.deal_id AND n.changed_at = h.changed_at;

ALTER TABLE deal_stage_spans ADD PRIMARY KEY (history_id);
-- a deal's spans, rewritten when it moves
CREATE INDEX deal_stage_spans_deal ON deal_stage_spans (deal_id);
-- the spans of a stage open at a moment, from the index alone: those still open (to_at far
-- ahead) and those closed since, not the whole history
CREATE INDEX deal_stage_spans_stage ON deal_stage_spans (stage_id, to_at)
    INCLUDE (from_at, deal_id, amount, probability);
-- most spans still open are closed deals' last ones: statistics of stage and end together
-- tell the planner how few of an open stage's spans are (without them it reads them all)
CREATE STATISTICS deal_stage_spans_stage_end (mcv) ON stage_id, to_at FROM deal_stage_spans;
ANALYZE deal_stage_spans;
