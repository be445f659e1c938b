-- Pipelines and stages, deals with line items and exact stage history, activities, tasks,
-- and where a converted lead went. Same rule as 001: foreign keys only on columns that never
-- change, because DuckDB refuses updates of indexed columns on rows other tables reference.
CREATE SEQUENCE pipelines_id_seq;
CREATE TABLE pipelines (
    id BIGINT PRIMARY KEY DEFAULT nextval('pipelines_id_seq'),
    name VARCHAR NOT NULL,
    position INTEGER NOT NULL DEFAULT 0,
    is_default BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    deleted_at TIMESTAMP
);

CREATE SEQUENCE stages_id_seq;
CREATE TABLE stages (
    id BIGINT PRIMARY KEY DEFAULT nextval('stages_id_seq'),
    pipeline_id BIGINT NOT NULL REFERENCES pipelines (id),
    name VARCHAR NOT NULL,
    position INTEGER NOT NULL,
    probability INTEGER NOT NULL,
    rotting_days INTEGER,
    kind VARCHAR NOT NULL DEFAULT 'open',
    forecast_category VARCHAR NOT NULL DEFAULT 'pipeline',
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    deleted_at TIMESTAMP
);

INSERT INTO pipelines (name, position, is_default) VALUES ('New business', 0, TRUE);
INSERT INTO stages (pipeline_id, name, position, probability, rotting_days, kind, forecast_category)
SELECT p.id, s.name, s.position, s.probability, s.rotting_days, s.kind, s.forecast_category
FROM pipelines p, (VALUES
    ('Prospecting', 0, 10, 14, 'open', 'pipeline'),
    ('Qualification', 1, 25, 14, 'open', 'pipeline'),
    ('Proposal', 2, 50, 10, 'open', 'best_case'),
    ('Negotiation', 3, 75, 7, 'open', 'commit'),
    ('Won', 4, 100, NULL, 'won', 'closed'),
    ('Lost', 5, 0, NULL, 'lost', 'omitted')
) AS s (name, position, probability, rotting_days, kind, forecast_category)
WHERE p.name = 'New business';

CREATE SEQUENCE products_id_seq;
CREATE TABLE products (
    id BIGINT PRIMARY KEY DEFAULT nextval('products_id_seq'),
    name VARCHAR NOT NULL,
    code VARCHAR,
    unit_price DECIMAL(14, 2),
    currency VARCHAR NOT NULL DEFAULT 'USD',
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE SEQUENCE deals_id_seq;
CREATE TABLE deals (
    id BIGINT PRIMARY KEY DEFAULT nextval('deals_id_seq'),
    title VARCHAR NOT NULL,
    customer_id BIGINT,
    contact_id BIGINT,
    owner_id BIGINT,
    amount DECIMAL(14, 2),
    currency VARCHAR NOT NULL DEFAULT 'USD',
    pipeline_id BIGINT NOT NULL,
    stage_id BIGINT NOT NULL,
    expected_close_date DATE,
    -- NULL: the stage's default
    probability INTEGER,
    forecast_category VARCHAR,
    source VARCHAR,
    lost_reason VARCHAR,
    lost_to_competitor VARCHAR,
    next_step VARCHAR,
    notes VARCHAR,
    closed_on DATE,
    stage_entered_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_activity_at TIMESTAMP,
    lead_id BIGINT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    created_by BIGINT,
    updated_by BIGINT,
    version INTEGER NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP,
    deleted_by BIGINT
);

CREATE SEQUENCE deal_stage_history_id_seq;
CREATE TABLE deal_stage_history (
    id BIGINT PRIMARY KEY DEFAULT nextval('deal_stage_history_id_seq'),
    deal_id BIGINT NOT NULL REFERENCES deals (id),
    from_stage_id BIGINT,
    to_stage_id BIGINT NOT NULL,
    changed_at TIMESTAMP NOT NULL,
    changed_by BIGINT,
    -- what the deal was worth at the move, for forecasts of past periods
    amount DECIMAL(14, 2),
    probability INTEGER NOT NULL
);
CREATE INDEX deal_stage_history_deal ON deal_stage_history (deal_id, changed_at);

CREATE SEQUENCE deal_products_id_seq;
CREATE TABLE deal_products (
    id BIGINT PRIMARY KEY DEFAULT nextval('deal_products_id_seq'),
    deal_id BIGINT NOT NULL REFERENCES deals (id),
    product_id BIGINT REFERENCES products (id),
    description VARCHAR NOT NULL,
    quantity DECIMAL(14, 3) NOT NULL,
    unit_price DECIMAL(14, 2) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    created_by BIGINT
);

CREATE SEQUENCE activities_id_seq;
CREATE TABLE activities (
    id BIGINT PRIMARY KEY DEFAULT nextval('activities_id_seq'),
    kind VARCHAR NOT NULL,
    subject VARCHAR NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    duration_minutes INTEGER,
    direction VARCHAR,
    outcome VARCHAR,
    notes VARCHAR,
    lead_id BIGINT REFERENCES leads (id),
    customer_id BIGINT REFERENCES customers (id),
    contact_id BIGINT REFERENCES contacts (id),
    deal_id BIGINT REFERENCES deals (id),
    owner_id BIGINT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    created_by BIGINT,
    updated_by BIGINT,
    version INTEGER NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP,
    deleted_by BIGINT
);

CREATE SEQUENCE tasks_id_seq;
CREATE TABLE tasks (
    id BIGINT PRIMARY KEY DEFAULT nextval('tasks_id_seq'),
    title VARCHAR NOT NULL,
    due_at TIMESTAMP,
    owner_id BIGINT,
    status VARCHAR NOT NULL DEFAULT 'open',
    priority VARCHAR NOT NULL DEFAULT 'normal',
    notes VARCHAR,
    lead_id BIGINT REFERENCES leads (id),
    customer_id BIGINT REFERENCES customers (id),
    contact_id BIGINT REFERENCES contacts (id),
    deal_id BIGINT REFERENCES deals (id),
    completed_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    created_by BIGINT,
    updated_by BIGINT,
    version INTEGER NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP,
    deleted_by BIGINT
);

ALTER TABLE leads ADD COLUMN converted_at TIMESTAMP;
ALTER TABLE leads ADD COLUMN converted_customer_id BIGINT;
ALTER TABLE leads ADD COLUMN converted_contact_id BIGINT;
ALTER TABLE leads ADD COLUMN converted_deal_id BIGINT;
