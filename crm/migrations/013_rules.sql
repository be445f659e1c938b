-- Automation rules (issue 12, part 4): trigger -> conditions -> actions, written by an admin
-- in forms (crm/rules.py). The trigger's settings, the conditions and the actions are JSON
-- text (portable: VARCHAR, parsed in Python). No foreign keys (see 001): the commands check
-- references, and rules are disabled or trashed, never deleted.
CREATE SEQUENCE automation_rules_id_seq;
CREATE TABLE automation_rules (
    id BIGINT PRIMARY KEY DEFAULT nextval('automation_rules_id_seq'),
    name VARCHAR NOT NULL,
    entity VARCHAR NOT NULL,
    -- created | changed | date | survey_below
    trigger_kind VARCHAR NOT NULL,
    trigger_config VARCHAR NOT NULL DEFAULT '{}',
    -- all | any
    match_kind VARCHAR NOT NULL DEFAULT 'all',
    conditions VARCHAR NOT NULL DEFAULT '[]',
    actions VARCHAR NOT NULL DEFAULT '[]',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,
    created_by BIGINT,
    updated_at TIMESTAMP NOT NULL,
    updated_by BIGINT,
    version INTEGER NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP,
    deleted_by BIGINT
);

-- One row per run of a rule on a record: ok, failed (with the reason) or loop_limit.
CREATE SEQUENCE rule_runs_id_seq;
CREATE TABLE rule_runs (
    id BIGINT PRIMARY KEY DEFAULT nextval('rule_runs_id_seq'),
    rule_id BIGINT NOT NULL,
    entity VARCHAR NOT NULL,
    record_id BIGINT,
    status VARCHAR NOT NULL,
    message VARCHAR,
    depth INTEGER NOT NULL DEFAULT 0,
    ran_at TIMESTAMP NOT NULL
);
CREATE INDEX rule_runs_rule_idx ON rule_runs (rule_id, ran_at);

-- Round-robin owners: the position in the rule's user list that was used last, per action.
CREATE TABLE rule_round_robin (
    rule_id BIGINT NOT NULL,
    action_index INTEGER NOT NULL,
    last_position INTEGER NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Date rules fire once per record per date: the dates they fired for.
CREATE TABLE rule_date_fired (
    rule_id BIGINT NOT NULL,
    record_id BIGINT NOT NULL,
    fired_for DATE NOT NULL,
    fired_at TIMESTAMP NOT NULL
);
CREATE INDEX rule_date_fired_idx ON rule_date_fired (rule_id, record_id);
