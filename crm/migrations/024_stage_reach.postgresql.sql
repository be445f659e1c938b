-- The stages each live deal reached, and those rows counted by the deal's pipeline and stage
-- now, kept by crm/stage_reach.py with every write of the deals' history, stage or trash
-- state: the forecast's learned stage probabilities read the counts instead of all of
-- deal_stage_history. (DuckDB: 024_stage_reach.sql, without the indexes.)
CREATE TABLE deal_stages_reached (
    deal_id BIGINT NOT NULL,
    reached_stage_id BIGINT NOT NULL,
    pipeline_id BIGINT NOT NULL,
    stage_id BIGINT NOT NULL
);

INSERT INTO deal_stages_reached (deal_id, reached_stage_id, pipeline_id, stage_id)
SELECT DISTINCT h.deal_id, h.to_stage_id, t.pipeline_id, t.stage_id
FROM deal_stage_history h JOIN deals t ON t.id = h.deal_id
WHERE t.deleted_at IS NULL
ORDER BY 1, 2;

CREATE TABLE stage_reach_counts (
    pipeline_id BIGINT NOT NULL,
    stage_id BIGINT NOT NULL,
    reached_stage_id BIGINT NOT NULL,
    deals BIGINT NOT NULL,
    PRIMARY KEY (pipeline_id, stage_id, reached_stage_id)
);

INSERT INTO stage_reach_counts (pipeline_id, stage_id, reached_stage_id, deals)
SELECT pipeline_id, stage_id, reached_stage_id, count(*)
FROM deal_stages_reached GROUP BY 1, 2, 3;

-- a deal's rows, recounted when it moves
CREATE INDEX deal_stages_reached_deal ON deal_stages_reached (deal_id);
ANALYZE deal_stages_reached;

-- the forecast page's sums over deals by stage kind, currency and a date (open deals by
-- expected close date, won ones by close date: weighted pipeline, categories, attainment,
-- won months) read this index alone, the one stage's deals in one currency and date range,
-- instead of the whole table (375 MB at the large demo: 300-650 ms a query, 7 of them)
CREATE INDEX deals_live_stage_money ON deals (stage_id, currency, closed_on, expected_close_date)
    INCLUDE (amount, probability, forecast_category, owner_id, pipeline_id)
    WHERE deleted_at IS NULL;
