"""Market audit: competitors, their market shares, observed prices, product costs per quarter,
the feature comparison, returns and contract cancellations, pricing scenarios; deals name the
competitor they went to by reference.

A Python migration: after the tables exist, the competitor names typed into deals
(lost_to_competitor) are matched to competitor records (trimmed, ignoring case) and the missing
ones are created, by crm.market.link_lost_competitors (the demo load uses it too)."""

TABLE_META = """
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    created_by BIGINT,
    updated_by BIGINT,
    version INTEGER NOT NULL DEFAULT 1,
    deleted_at TIMESTAMP,
    deleted_by BIGINT
"""

TABLES = {
    # is_us marks the record of our own company (its strengths, weaknesses and market share)
    "competitors": """
    name VARCHAR NOT NULL, website VARCHAR, country VARCHAR, key_people VARCHAR,
    strategy VARCHAR, strengths VARCHAR, weaknesses VARCHAR, threat_level VARCHAR,
    is_us BOOLEAN NOT NULL DEFAULT FALSE, notes VARCHAR, owner_id BIGINT,""",
    # one row per competitor and period (the period's first day); share in percent
    "competitor_shares": """
    competitor_id BIGINT NOT NULL, period_start DATE NOT NULL, share DECIMAL(7, 3) NOT NULL,
    source VARCHAR, notes VARCHAR,""",
    "price_records": """
    product_id BIGINT, competitor_id BIGINT, competitor_product VARCHAR,
    price DECIMAL(14, 2) NOT NULL, currency VARCHAR NOT NULL DEFAULT 'USD',
    observed_on DATE NOT NULL, source VARCHAR NOT NULL, region VARCHAR, notes VARCHAR,
    owner_id BIGINT,""",
    # one row per product and period (the period's first day): the cost price of one unit
    "product_costs": """
    product_id BIGINT NOT NULL, period_start DATE NOT NULL, unit_cost DECIMAL(14, 2) NOT NULL,
    currency VARCHAR NOT NULL DEFAULT 'USD', notes VARCHAR,""",
    # a cell of the feature comparison: a feature of our product (product_id) or of a
    # competitor's product (competitor_id, competitor_product)
    "feature_values": """
    feature VARCHAR NOT NULL, product_id BIGINT, competitor_id BIGINT,
    competitor_product VARCHAR, value VARCHAR,""",
    "customer_returns": """
    kind VARCHAR NOT NULL, customer_id BIGINT NOT NULL, occurred_on DATE NOT NULL,
    amount DECIMAL(14, 2), currency VARCHAR NOT NULL DEFAULT 'USD', reason VARCHAR,
    notes VARCHAR, owner_id BIGINT,""",
    "pricing_scenarios": """
    name VARCHAR NOT NULL, kind VARCHAR NOT NULL, inputs VARCHAR NOT NULL, owner_id BIGINT,""",
}


def apply(cur) -> None:
    for table, columns in TABLES.items():
        cur.execute(f"CREATE SEQUENCE {table}_id_seq")
        cur.execute(f"CREATE TABLE {table} (id BIGINT PRIMARY KEY DEFAULT"
                    f" nextval('{table}_id_seq'),{columns}{TABLE_META})")
    # products: the unit they are sold in and notes on the price structure. DuckDB refuses
    # NOT NULL in ADD COLUMN on a table deal_products references.
    cur.execute("ALTER TABLE products ADD COLUMN unit VARCHAR")
    cur.execute("ALTER TABLE products ADD COLUMN price_notes VARCHAR")
    # deals: the competitor a deal went to, and the one it competed against (won or lost);
    # lost_to_competitor keeps the competitor's name as text for BI tools
    cur.execute("ALTER TABLE deals ADD COLUMN lost_to_competitor_id BIGINT")
    cur.execute("ALTER TABLE deals ADD COLUMN competitor_id BIGINT")
    from crm import market

    market.link_lost_competitors(cur)
