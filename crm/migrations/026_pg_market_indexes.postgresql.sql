-- PostgreSQL only (DuckDB: 026_pg_market_indexes.sql, empty): the market-audit page at the
-- large demo's size.

-- win and loss per competitor: the live deals naming a competitor (45 % of them at the large
-- demo), with what is counted and summed, read from this index alone (29 MB) instead of the
-- whole deals table twice (375 MB: 400-600 ms; this way 60-120 ms)
CREATE INDEX deals_live_named ON deals (competitor_id, lost_to_competitor_id, stage_id)
    INCLUDE (closed_on, amount, currency, owner_id)
    WHERE deleted_at IS NULL AND (competitor_id IS NOT NULL OR lost_to_competitor_id IS NOT NULL);

-- one product's price records (its median price per competitor, the competitors' products
-- its features are compared with): read from this index, not the whole table (200,000
-- records at the large demo: 40-90 ms each -> 10-35 ms)
CREATE INDEX price_records_live_product ON price_records (product_id, competitor_id, competitor_product)
    INCLUDE (price, currency, observed_on, region) WHERE deleted_at IS NULL;

-- the region picker: the distinct regions off an index-only scan
CREATE INDEX price_records_live_region ON price_records (region) WHERE deleted_at IS NULL;
