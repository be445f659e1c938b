-- Custom fields an admin adds in Settings: one row each, and a real column of the entity's
-- table (added by the command, not here). Deleting hides a field and keeps its column.
ALTER TABLE custom_fields ADD COLUMN help VARCHAR;
ALTER TABLE custom_fields ADD COLUMN default_value VARCHAR;
ALTER TABLE custom_fields ADD COLUMN choice_colors VARCHAR;
ALTER TABLE custom_fields ADD COLUMN min_value DOUBLE PRECISION;
ALTER TABLE custom_fields ADD COLUMN max_value DOUBLE PRECISION;
ALTER TABLE custom_fields ADD COLUMN max_length INTEGER;
ALTER TABLE custom_fields ADD COLUMN section VARCHAR;
ALTER TABLE custom_fields ADD COLUMN in_list BOOLEAN DEFAULT FALSE;
ALTER TABLE custom_fields ADD COLUMN filterable BOOLEAN DEFAULT FALSE;
ALTER TABLE custom_fields ADD COLUMN searchable BOOLEAN DEFAULT FALSE;
ALTER TABLE custom_fields ADD COLUMN ref_table VARCHAR;
ALTER TABLE custom_fields ADD COLUMN updated_at TIMESTAMP;
ALTER TABLE custom_fields ADD COLUMN created_by BIGINT;
ALTER TABLE custom_fields ADD COLUMN updated_by BIGINT;
ALTER TABLE custom_fields ADD COLUMN deleted_at TIMESTAMP;
ALTER TABLE custom_fields ADD COLUMN version INTEGER DEFAULT 1;

-- The form layout of an entity, over its code and custom fields: order, section, whether a
-- field is on the quick-create form and a list column by default. No row: the code's choice.
CREATE TABLE field_layouts (
    entity VARCHAR NOT NULL,
    field VARCHAR NOT NULL,
    position INTEGER NOT NULL,
    section VARCHAR,
    quick BOOLEAN NOT NULL DEFAULT TRUE,
    in_list BOOLEAN,
    PRIMARY KEY (entity, field)
);
