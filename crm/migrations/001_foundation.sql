-- Users, leads, customers, contacts, audit log. DuckDB rejects an UPDATE of any indexed column
-- (primary, unique or foreign key) on a row another table references, so on tables that others
-- reference only `id` is indexed and foreign keys sit only on columns that never change
-- (contacts.customer_id). Owners and uniqueness are checked by the command functions.
CREATE SEQUENCE users_id_seq;
CREATE TABLE users (
    id BIGINT PRIMARY KEY DEFAULT nextval('users_id_seq'),
    username VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    email VARCHAR,
    password_hash VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until TIMESTAMP,
    last_login_at TIMESTAMP,
    -- sign-in cookies issued before this moment no longer sign anyone in
    sessions_revoked_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);

CREATE SEQUENCE leads_id_seq;
CREATE TABLE leads (
    id BIGINT PRIMARY KEY DEFAULT nextval('leads_id_seq'),
    first_name VARCHAR,
    last_name VARCHAR NOT NULL,
    company VARCHAR,
    title VARCHAR,
    email VARCHAR,
    phone VARCHAR,
    source VARCHAR,
    status VARCHAR NOT NULL DEFAULT 'new',
    owner_id BIGINT,
    estimated_value DECIMAL(14, 2),
    notes VARCHAR,
    consent BOOLEAN NOT NULL DEFAULT FALSE,
    consent_date DATE,
    consent_purpose VARCHAR,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    created_by BIGINT,
    updated_by BIGINT,
    version INTEGER NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP,
    deleted_by BIGINT
);

CREATE SEQUENCE customers_id_seq;
CREATE TABLE customers (
    id BIGINT PRIMARY KEY DEFAULT nextval('customers_id_seq'),
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL DEFAULT 'company',
    residency VARCHAR NOT NULL DEFAULT 'domestic',
    industry VARCHAR,
    email VARCHAR,
    phone VARCHAR,
    mobile VARCHAR,
    address VARCHAR,
    city VARCHAR,
    country VARCHAR,
    segment VARCHAR,
    credit_limit DECIMAL(14, 2),
    purchasing_power VARCHAR,
    birthday DATE,
    profession VARCHAR,
    preferences VARCHAR,
    consent BOOLEAN NOT NULL DEFAULT FALSE,
    consent_date DATE,
    consent_purpose VARCHAR,
    owner_id BIGINT,
    status VARCHAR NOT NULL DEFAULT 'active',
    first_purchase_date DATE,
    notes VARCHAR,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    created_by BIGINT,
    updated_by BIGINT,
    version INTEGER NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP,
    deleted_by BIGINT
);

CREATE SEQUENCE contacts_id_seq;
CREATE TABLE contacts (
    id BIGINT PRIMARY KEY DEFAULT nextval('contacts_id_seq'),
    customer_id BIGINT NOT NULL REFERENCES customers (id),
    first_name VARCHAR,
    last_name VARCHAR NOT NULL,
    title VARCHAR,
    email VARCHAR,
    phone VARCHAR,
    is_primary BOOLEAN NOT NULL DEFAULT FALSE,
    consent BOOLEAN NOT NULL DEFAULT FALSE,
    consent_date DATE,
    consent_purpose VARCHAR,
    notes VARCHAR,
    owner_id BIGINT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    created_by BIGINT,
    updated_by BIGINT,
    version INTEGER NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP,
    deleted_by BIGINT
);

CREATE SEQUENCE audit_log_id_seq;
CREATE TABLE audit_log (
    id BIGINT PRIMARY KEY DEFAULT nextval('audit_log_id_seq'),
    occurred_at TIMESTAMP NOT NULL,
    user_id BIGINT,
    username VARCHAR,
    entity VARCHAR NOT NULL,
    record_id BIGINT,
    action VARCHAR NOT NULL,
    changes VARCHAR
);
CREATE INDEX audit_log_record ON audit_log (entity, record_id);

CREATE SEQUENCE custom_fields_id_seq;
CREATE TABLE custom_fields (
    id BIGINT PRIMARY KEY DEFAULT nextval('custom_fields_id_seq'),
    entity VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    label VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    required BOOLEAN NOT NULL DEFAULT FALSE,
    choices VARCHAR,
    position INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL
);
