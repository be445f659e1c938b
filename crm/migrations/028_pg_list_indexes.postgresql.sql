-- PostgreSQL only (DuckDB: 028_pg_list_indexes.sql, empty). At the large demo two pages read a
-- whole table: the activities list sorted 5,000,000 activities for its first 50 (0.48 s; read
-- off this index instead, 2 ms), and the pipelines page counted each stage's trashed deals by
-- reading all 1,000,000 deals (0.12 s a stage; the trash is small, so its index is too).
CREATE INDEX activities_live_occurred ON activities (occurred_at DESC NULLS LAST, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX deals_trashed_stage ON deals (stage_id) WHERE deleted_at IS NOT NULL;
