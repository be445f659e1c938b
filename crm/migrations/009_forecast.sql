-- Sales forecast: quotas per rep and period, and daily snapshots of the open pipeline so a
-- past month's forecast can be compared with what was won. No foreign keys (see 001): users
-- are checked by the command functions.
CREATE SEQUENCE quotas_id_seq;
CREATE TABLE quotas (
    id BIGINT PRIMARY KEY DEFAULT nextval('quotas_id_seq'),
    user_id BIGINT NOT NULL,
    -- month or quarter, of the calendar the manager set it in; the days it covers
    grain VARCHAR NOT NULL,
    period_start DATE NOT NULL,
    period_end DATE NOT NULL,
    amount DECIMAL(14, 2) NOT NULL,
    currency VARCHAR NOT NULL DEFAULT 'USD',
    created_at TIMESTAMP NOT NULL,
    created_by BIGINT,
    updated_at TIMESTAMP NOT NULL,
    updated_by BIGINT
);

CREATE SEQUENCE forecast_snapshots_id_seq;
CREATE TABLE forecast_snapshots (
    id BIGINT PRIMARY KEY DEFAULT nextval('forecast_snapshots_id_seq'),
    taken_on DATE NOT NULL,
    -- the expected close month: gregorian year*100+month, or jalali year*100+month
    calendar VARCHAR NOT NULL,
    period_key INTEGER NOT NULL,
    forecast_category VARCHAR NOT NULL,
    pipeline_id BIGINT,
    owner_id BIGINT,
    currency VARCHAR NOT NULL,
    deals INTEGER NOT NULL,
    amount DECIMAL(18, 2) NOT NULL,
    weighted DECIMAL(18, 2) NOT NULL
);
CREATE INDEX forecast_snapshots_taken ON forecast_snapshots (taken_on);
