-- PostgreSQL only (DuckDB: 027_pg_satisfaction_indexes.sql, empty): the satisfaction page's
-- open complaints (4 % of them at the large demo) without reading all 100,000 complaints.

-- customers at risk: each customer's open and severe open complaints; open complaints by
-- age (with the page's product and owner filters) from the index alone. (Written as ANY of a
-- text array: PostgreSQL prints `status IN (...)` back in a form that, made again from its
-- catalog as the demo load does, reads differently: crm.dialect.bulk_load.)
CREATE INDEX complaints_live_open ON complaints (customer_id)
    INCLUDE (severity, opened_on, product_id, owner_id)
    WHERE deleted_at IS NULL AND status::text = ANY (ARRAY['open', 'in_progress']);
-- all complaints of one customer: the at-risk rows shown and the customer's page
CREATE INDEX complaints_live_customer ON complaints (customer_id) WHERE deleted_at IS NULL;

-- customers at risk: each customer's latest two NPS answers, and latest two CSAT answers,
-- ranked from an index of the answers that have that score (020's surveys_live_latest holds
-- every answer with both scores: a fifth of them has no NPS, another none CSAT, read and
-- dropped by each ranking; at the large demo 80 -> 60 ms of CPU each)
CREATE INDEX surveys_live_latest_nps ON surveys (customer_id, answered_on DESC, id DESC)
    INCLUDE (nps) WHERE deleted_at IS NULL AND nps IS NOT NULL;
CREATE INDEX surveys_live_latest_csat ON surveys (customer_id, answered_on DESC, id DESC)
    INCLUDE (csat) WHERE deleted_at IS NULL AND csat IS NOT NULL;
