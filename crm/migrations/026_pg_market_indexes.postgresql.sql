-- PostgreSQL only (DuckDB: 026_pg_market_indexes.sql, empty): the market-audit page at the
-- large demo's size.

-- win and loss per competitor: the live deals naming a competitor (45 % of them at the large
-- demo), with what is counted and summed, read from this index alone (29 MB) instead of the
-- whole deals table (375 MB) twice: 0.43 s -> 0.17 s on a loaded machine
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

-- complaints per product opened in the period, beside the margins: read from this index
-- (80,000 complaints naming a product at the large demo; 64 -> 21 ms on the loaded machine)
CREATE INDEX complaints_live_product ON complaints (product_id) INCLUDE (opened_on, status, owner_id)
    WHERE deleted_at IS NULL AND product_id IS NOT NULL;
