-- PostgreSQL only (DuckDB: 026_pg_market_indexes.sql, empty): the market-audit page at the
-- large demo's size.

-- win and loss per competitor: the live deals naming a competitor (45 % of them at the large
-- demo), with what is counted and summed, read from this index alone (29 MB) instead of the
-- whole deals table twice (375 MB: 400-600 ms; this way 60-120 ms)
CREATE INDEX deals_live_named ON deals (competitor_id, lost_to_competitor_id, stage_id)
    INCLUDE (closed_on, amount, currency, owner_id)
    WHERE deleted_at IS NULL AND (competitor_id IS NOT NULL OR lost_to_competitor_id IS NOT NULL);

-- the live price records by product, currency and Gregorian quarter (the expression is
-- crm.calendar.period's for quarters; tests/test_query_rewrites.py holds them equal), with
-- what is read of them: price positioning reads its groups in this order (no sort of the
-- 200,000 records at the large demo: 0.5-0.7 s -> 0.2 s), and one product's median price per
-- competitor and its compared competitors' products read that product's range of it
CREATE INDEX price_records_live_quarter ON price_records (product_id, currency,
    (CAST(EXTRACT(YEAR FROM observed_on) AS INTEGER) * 10
     + CAST(EXTRACT(QUARTER FROM observed_on) AS INTEGER)))
    INCLUDE (observed_on, price, competitor_id, competitor_product, region)
    WHERE deleted_at IS NULL;

-- the region picker: the distinct regions off an index-only scan
CREATE INDEX price_records_live_region ON price_records (region) WHERE deleted_at IS NULL;
