-- The stages each live deal reached, and those rows counted by the deal's pipeline and stage
-- now, kept by crm/stage_reach.py with every write of the deals' history, stage or trash
-- state: the forecast's learned stage probabilities read the counts instead of all of
-- deal_stage_history. (PostgreSQL: 024_stage_reach.postgresql.sql, with its indexes.)
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
