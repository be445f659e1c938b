-- Products become a record like the others: edited from a form, imported, versioned, trashed.
-- DuckDB refuses NOT NULL in ADD COLUMN on a table that deal_products references, so the
-- defaults carry the meaning and the commands keep them filled.
ALTER TABLE products ADD COLUMN category VARCHAR;
ALTER TABLE products ADD COLUMN description VARCHAR;
ALTER TABLE products ADD COLUMN version INTEGER DEFAULT 1;
ALTER TABLE products ADD COLUMN updated_at TIMESTAMP;
ALTER TABLE products ADD COLUMN created_by BIGINT;
ALTER TABLE products ADD COLUMN updated_by BIGINT;
ALTER TABLE products ADD COLUMN deleted_at TIMESTAMP;
ALTER TABLE products ADD COLUMN deleted_by BIGINT;
UPDATE products SET version = 1 WHERE version IS NULL;
UPDATE products SET updated_at = created_at WHERE updated_at IS NULL;

-- Users can be imported (without passwords) and such an import undone, like other records.
ALTER TABLE users ADD COLUMN version INTEGER DEFAULT 1;
ALTER TABLE users ADD COLUMN updated_at TIMESTAMP;
ALTER TABLE users ADD COLUMN created_by BIGINT;
ALTER TABLE users ADD COLUMN updated_by BIGINT;
ALTER TABLE users ADD COLUMN deleted_at TIMESTAMP;
ALTER TABLE users ADD COLUMN deleted_by BIGINT;
UPDATE users SET version = 1 WHERE version IS NULL;
UPDATE users SET updated_at = created_at WHERE updated_at IS NULL;
