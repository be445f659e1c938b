-- Customer satisfaction and service: survey answers (CSAT 1-5, NPS 0-10) and complaints or
-- failure reports. Same rule as 001: only `id` is indexed (activities and tasks reference
-- complaints), references are checked by the command functions (crm/service.py).
CREATE SEQUENCE surveys_id_seq;
CREATE TABLE surveys (
    id BIGINT PRIMARY KEY DEFAULT nextval('surveys_id_seq'),
    customer_id BIGINT NOT NULL,
    contact_id BIGINT,
    deal_id BIGINT,
    product_id BIGINT,
    answered_on DATE NOT NULL,
    channel VARCHAR NOT NULL,
    csat INTEGER,
    nps INTEGER,
    comment VARCHAR,
    owner_id BIGINT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    created_by BIGINT,
    updated_by BIGINT,
    version INTEGER NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP,
    deleted_by BIGINT
);

CREATE SEQUENCE complaints_id_seq;
CREATE TABLE complaints (
    id BIGINT PRIMARY KEY DEFAULT nextval('complaints_id_seq'),
    subject VARCHAR NOT NULL,
    customer_id BIGINT NOT NULL,
    product_id BIGINT,
    category VARCHAR NOT NULL,
    severity VARCHAR NOT NULL DEFAULT 'medium',
    status VARCHAR NOT NULL DEFAULT 'open',
    opened_on DATE NOT NULL,
    resolved_on DATE,
    owner_id BIGINT,
    description VARCHAR,
    resolution VARCHAR,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    created_by BIGINT,
    updated_by BIGINT,
    version INTEGER NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP,
    deleted_by BIGINT
);

-- activities and tasks of a complaint (no foreign key: see above)
ALTER TABLE activities ADD COLUMN complaint_id BIGINT;
ALTER TABLE tasks ADD COLUMN complaint_id BIGINT;
