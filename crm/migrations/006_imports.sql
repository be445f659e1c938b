-- Imports: what was brought in from which file, row by row, so an import can be undone.
CREATE SEQUENCE imports_id_seq;
CREATE TABLE imports (
    id BIGINT PRIMARY KEY DEFAULT nextval('imports_id_seq'),
    entity VARCHAR NOT NULL,
    filename VARCHAR,
    mode VARCHAR NOT NULL,
    key_field VARCHAR,
    mapping VARCHAR,
    created_count INTEGER NOT NULL DEFAULT 0,
    updated_count INTEGER NOT NULL DEFAULT 0,
    skipped_count INTEGER NOT NULL DEFAULT 0,
    rejected_count INTEGER NOT NULL DEFAULT 0,
    rejected VARCHAR,
    created_at TIMESTAMP NOT NULL,
    created_by BIGINT,
    undone_at TIMESTAMP,
    undone_by BIGINT
);

CREATE SEQUENCE import_records_id_seq;
CREATE TABLE import_records (
    id BIGINT PRIMARY KEY DEFAULT nextval('import_records_id_seq'),
    import_id BIGINT NOT NULL,
    line INTEGER,
    record_id BIGINT NOT NULL,
    action VARCHAR NOT NULL,
    before VARCHAR,
    version_after INTEGER
);

ALTER TABLE audit_log ADD COLUMN import_id BIGINT;
