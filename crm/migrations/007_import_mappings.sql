-- Saved column mappings of the importer, reusable by name per entity. A name is unique per
-- entity regardless of case; importer.save_mapping enforces it (no index: see README on
-- DuckDB constraints).
CREATE SEQUENCE import_mappings_id_seq;
CREATE TABLE import_mappings (
    id BIGINT PRIMARY KEY DEFAULT nextval('import_mappings_id_seq'),
    entity VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    mapping VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    created_by BIGINT
);
