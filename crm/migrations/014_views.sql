-- Saved views (issue 12, part 3): a list page's or the pipeline board's columns, filters,
-- search, sort and grouping, kept under a name. `config` is JSON text (portable: read and
-- written by crm/views.py, never queried inside). Private views are their owner's; shared
-- ones the whole team sees. Nothing references these tables, so rows are deleted outright.
CREATE SEQUENCE saved_views_id_seq;
CREATE TABLE saved_views (
    id BIGINT PRIMARY KEY DEFAULT nextval('saved_views_id_seq'),
    entity VARCHAR NOT NULL,          -- the entity's table: leads, deals, ...
    kind VARCHAR NOT NULL DEFAULT 'list',  -- list (a list page) or board (the pipeline board)
    name VARCHAR NOT NULL,
    owner_id BIGINT NOT NULL,
    shared BOOLEAN NOT NULL DEFAULT FALSE,
    config VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    created_by BIGINT,
    updated_by BIGINT,
    version INTEGER NOT NULL DEFAULT 1
);

-- The view a page opens with: a user's own choice (user_id) or the team's (user_id 0, set by
-- a manager or admin). At most one row per (entity, kind, user_id), kept by crm/views.py.
CREATE TABLE saved_view_defaults (
    entity VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    user_id BIGINT NOT NULL,
    view_id BIGINT NOT NULL,
    set_at TIMESTAMP NOT NULL,
    set_by BIGINT
);
