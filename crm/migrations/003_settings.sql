-- Install-wide settings an admin chooses (e.g. the installed-base rule), one row per key.
CREATE TABLE settings (
    key VARCHAR PRIMARY KEY,
    value VARCHAR,
    updated_at TIMESTAMP,
    updated_by BIGINT
);
