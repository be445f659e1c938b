"""Queries rewritten for speed (issue 13: PostgreSQL's insight pages) return exactly what they
returned before. Each rewrite is compared with the query as first written, on random data full
of ties, NULLs, deleted rows and deals naming the same competitor twice. No timings here: those
are in python -m crm bench."""
import random
from datetime import date, datetime, timedelta

import pytest

from crm import market, pipelines
from crm.analytics import market as am
from crm.market import COMPETITORS, PRICE_RECORDS
from crm.products import PRODUCTS

DAY = date(2026, 11, 20)


def old_win_loss(db, user, currency, since=None):
    """analytics.market.win_loss as first written: the named deals by UNION, joined back."""
    where, params = am._deals_visible(user)
    params["currency"] = currency
    closed = ""
    if since:
        closed = " AND (s.kind = 'open' OR t.closed_on >= $since)"
        params["since"] = since
    found = db.query(
        f"WITH named AS (SELECT t.id, t.competitor_id AS rival FROM deals t"
        f"  WHERE {where} AND t.competitor_id IS NOT NULL"
        f" UNION SELECT t.id, t.lost_to_competitor_id FROM deals t"
        f"  WHERE {where} AND t.lost_to_competitor_id IS NOT NULL)"
        f" SELECT c.id AS competitor_id, c.name,"
        f" count(*) FILTER (WHERE s.kind = 'won') AS won,"
        f" count(*) FILTER (WHERE s.kind = 'lost') AS lost,"
        f" count(*) FILTER (WHERE s.kind = 'lost' AND t.lost_to_competitor_id = c.id)"
        f"  AS lost_to_them,"
        f" coalesce(sum(t.amount) FILTER (WHERE s.kind = 'lost'"
        f"  AND t.lost_to_competitor_id = c.id AND t.currency = $currency), 0) AS amount_lost,"
        f" count(*) FILTER (WHERE s.kind = 'open') AS open"
        f" FROM named n JOIN deals t ON t.id = n.id JOIN stages s ON s.id = t.stage_id"
        f" JOIN competitors c ON c.id = n.rival"
        f" WHERE c.deleted_at IS NULL AND NOT c.is_us{closed}"
        f" GROUP BY c.id, c.name ORDER BY lost_to_them DESC, c.name", params)
    for r in found:
        r["win_rate"] = am.win_rate(r["won"], r["lost"])
        r["amount_lost"] = float(r["amount_lost"])
    return found


def old_positioning(db, user, product_id=None, regions=None, since=None, grain="quarter",
                    lang=None):
    """analytics.market.positioning as first written: grouped by the product's name too."""
    from crm import calendar

    key, join = calendar.period("r.observed_on", grain, lang)
    where, params = am._price_filters(product_id, regions, since)
    found = db.query(
        f"SELECT r.product_id, p.name AS product, p.currency, p.unit_price AS list_price,"
        f" {key} AS period,"
        f" min(r.price) FILTER (WHERE r.competitor_id IS NOT NULL) AS low,"
        f" percentile_cont(0.5) WITHIN GROUP (ORDER BY r.price)"
        f"  FILTER (WHERE r.competitor_id IS NOT NULL) AS median,"
        f" max(r.price) FILTER (WHERE r.competitor_id IS NOT NULL) AS high,"
        f" count(*) FILTER (WHERE r.competitor_id IS NOT NULL) AS observed,"
        f" percentile_cont(0.5) WITHIN GROUP (ORDER BY r.price)"
        f"  FILTER (WHERE r.competitor_id IS NULL) AS ours_observed"
        f" FROM price_records r JOIN products p ON p.id = r.product_id{join}"
        f" WHERE {where} GROUP BY r.product_id, p.name, p.currency, p.unit_price, {key}"
        f" ORDER BY p.name, r.product_id, period", params)
    for r in found:
        ours = r["ours_observed"] if r["ours_observed"] is not None else r["list_price"]
        r["ours"] = None if ours is None else float(ours)
        for k in ("low", "median", "high"):
            r[k] = None if r[k] is None else float(r[k])
    return found


@pytest.fixture
def random_deals(db, team):
    """400 deals over both pipelines' stages: random owners, amounts (some NULL), currencies,
    close dates; named competitors and winners drawn from four rivals, us and a deleted one
    (often the same rival in both columns); some deals deleted."""
    rng = random.Random(13)
    maria = team["maria"]
    rivals = [COMPETITORS.create(db, maria, {"name": name}) for name in
              ("Red", "Blue", "Green", "Gold")]
    us = COMPETITORS.create(db, maria, {"name": "Us", "is_us": True})
    gone = COMPETITORS.create(db, maria, {"name": "Gone"})
    with db.transaction() as cur:
        cur.execute("UPDATE competitors SET deleted_at = $t WHERE id = $id",
                    {"t": datetime(2026, 1, 1), "id": gone})
    names = [None, None, us, gone, *rivals]
    stages = [s for p in pipelines.list_pipelines(db) for s in pipelines.stages_of(db, p["id"])]
    owners = [team[u].id for u in ("maria", "reza", "sam")]
    rows = []
    for i in range(400):
        s = rng.choice(stages)
        rival = rng.choice(names)
        lost_to = (rival if rng.random() < 0.4 else rng.choice(names)) if s["kind"] == "lost" \
            else rng.choice([None, None, None, *rivals])
        rows.append({
            "title": f"Deal {i}", "owner": rng.choice(owners), "pipeline": s["pipeline_id"],
            "stage": s["id"], "amount": rng.choice([None, 100, 250.5, 1000, 1000, 77.25]),
            "currency": rng.choice(["USD", "USD", "EUR"]),
            "closed": None if s["kind"] == "open" and rng.random() < 0.8
            else DAY - timedelta(days=rng.randrange(0, 900)),
            "rival": rival, "lost_to": lost_to,
            "deleted": datetime(2026, 5, 1) if rng.random() < 0.05 else None,
            "at": datetime(2025, 1, 1) + timedelta(hours=rng.randrange(0, 15000))})
    with db.transaction() as cur:
        for r in rows:
            cur.execute(
                "INSERT INTO deals (title, owner_id, pipeline_id, stage_id, amount, currency,"
                " closed_on, competitor_id, lost_to_competitor_id, deleted_at, created_at,"
                " updated_at, stage_entered_at) VALUES ($title, $owner, $pipeline, $stage,"
                " $amount, $currency, $closed, $rival, $lost_to, $deleted, $at, $at, $at)", r)
    return rows


@pytest.mark.parametrize("since", [None, date(2025, 6, 1), date(2026, 10, 1)])
@pytest.mark.parametrize("who", ["maria", "reza", "vic"])
def test_win_loss_counts_each_named_competitor_once_per_deal(db, team, random_deals, since,
                                                            who):
    user = team[who]
    for currency in ("USD", "EUR"):
        new = am.win_loss(db, user, currency, since)
        assert new == old_win_loss(db, user, currency, since)
    assert any(r["lost_to_them"] for r in am.win_loss(db, team["maria"], "USD", since))


def test_positioning_groups_by_product_and_period_alone(db, team):
    """Products sharing a name (and one without a list price), prices in two currencies and
    regions, ours and competitors', some deleted, over three years."""
    rng = random.Random(11)
    maria = team["maria"]
    products = [PRODUCTS.create(db, maria, {"name": name, "unit_price": price,
                                            "currency": currency})
                for name, price, currency in (("GTX", "100", "USD"), ("GTX", "90", "EUR"),
                                              ("Mini", None, "USD"), ("Zed", "5", "USD"))]
    rivals = [COMPETITORS.create(db, maria, {"name": n}) for n in ("Red", "Blue")]
    for i in range(150):
        rival = rng.choice([None, *rivals])
        made = PRICE_RECORDS.create(db, maria, {
            "product_id": rng.choice(products), "competitor_id": rival,
            "competitor_product": rng.choice(["x", " x", "y", "", "  "]) if rival else None,
            "price": str(rng.choice([10, 20, 20, 35.5, 99, 120])),
            "currency": rng.choice(["USD", "USD", "EUR"]), "region": rng.choice(["N", "S"]),
            "observed_on": DAY - timedelta(days=rng.randrange(0, 1100))})
        if i % 17 == 0:
            with db.transaction() as cur:
                cur.execute("UPDATE price_records SET deleted_at = $t WHERE id = $id",
                            {"t": datetime(2026, 1, 1), "id": made})
    for args in ({}, {"since": date(2025, 1, 1)}, {"product_id": products[0]},
                 {"regions": ["S"], "grain": "month"}, {"lang": "fa"},
                 {"grain": "month", "lang": "fa", "since": date(2024, 6, 1)}):
        new = am.positioning(db, team["vic"], **args)
        assert new == old_positioning(db, team["vic"], **args)
        assert new
    # crm.market.compared_products as first written: count(DISTINCT (pair)) per product
    old_compared = {r["product_id"]: r["n"] for r in db.query(
        "SELECT product_id, count(DISTINCT (competitor_id, trim(competitor_product))) AS n"
        " FROM price_records WHERE deleted_at IS NULL AND competitor_id IS NOT NULL"
        " AND product_id IS NOT NULL AND trim(competitor_product) <> '' GROUP BY product_id")}
    assert market.compared_products(db, team["vic"]) == old_compared
    assert max(old_compared.values()) >= 2


def old_abc_classes(db, user, currency, a=0.80, b=0.95, since=None, top=50):
    """analytics.market.abc_classes as first written: the classes and the top customers in
    two statements."""
    where, params = am._deals_visible(user)
    params.update(currency=currency, a=a, b=b, top=top)
    ranked = (f"WITH rev AS ({am._won_revenue(where, since, params)}),"
              f" ranked AS (SELECT id, revenue, coalesce(sum(revenue) OVER (ORDER BY revenue"
              f" DESC, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before,"
              f" sum(revenue) OVER () AS total FROM rev),"
              f" classed AS (SELECT id, revenue, total, CASE WHEN before < $a * total THEN 'A'"
              f" WHEN before < $b * total THEN 'B' ELSE 'C' END AS class FROM ranked)")
    classes = db.query(
        f"{ranked} SELECT k.class, count(*) AS customers, sum(k.revenue) AS revenue,"
        f" max(k.total) AS total, sum(c.credit_limit) AS credit_limit,"
        f" count(*) FILTER (WHERE c.purchasing_power IN ('high', 'very_high')) AS strong_buyers"
        f" FROM classed k JOIN customers c ON c.id = k.id GROUP BY k.class ORDER BY k.class",
        {k: v for k, v in params.items() if k != "top"})
    total = float(classes[0]["total"]) if classes else 0.0
    for r in classes:
        r["revenue"] = float(r["revenue"])
        r["share"] = r["revenue"] / total if total else None
        r["credit_limit"] = None if r["credit_limit"] is None else float(r["credit_limit"])
    top_rows = db.query(
        f"{ranked} SELECT k.id, c.name, c.country, c.city, c.purchasing_power, c.credit_limit,"
        f" k.revenue, k.class FROM classed k JOIN customers c ON c.id = k.id"
        f" ORDER BY k.revenue DESC, k.id LIMIT $top", params)
    return {"classes": classes, "top": top_rows, "total": total}


@pytest.fixture
def customer_deals(db, team, random_deals):
    """The random deals given to 40 customers (places with blanks, cases and duplicates;
    purchasing power and credit limits, some NULL; owned by the reps), some deals without,
    one in six with a negative amount."""
    from crm import customers

    rng = random.Random(17)
    maria = team["maria"]
    ids = [customers.create_customer(db, maria, {"name": f"C{i}"}) for i in range(40)]
    with db.transaction() as cur:
        for cid in ids:
            cur.execute(
                "UPDATE customers SET country = $country, city = $city, purchasing_power = $p,"
                " credit_limit = $credit, owner_id = $o WHERE id = $id",
                {"id": cid, "country": rng.choice([None, "", " IR", "IR", "DE", "us"]),
                 "city": rng.choice([None, "", "Tehran", "Berlin ", "berlin", "Shiraz"]),
                 "p": rng.choice([None, "low", "medium", "high", "very_high"]),
                 "credit": rng.choice([None, 1000, 2500.5]),
                 "o": rng.choice([team[u].id for u in ("maria", "reza", "sam")])})
        cur.execute("SELECT id FROM deals ORDER BY id")
        for (deal,) in cur.fetchall():
            cur.execute("UPDATE deals SET customer_id = $c WHERE id = $id",
                        {"c": rng.choice([None, *ids]), "id": deal})
        # refunds: some won revenue nets to zero or below (left out of the classes)
        cur.execute("UPDATE deals SET amount = -amount WHERE id % 6 = 0")
    return ids


@pytest.mark.parametrize("who", ["maria", "reza", "vic"])
def test_abc_classes_and_top_customers_from_one_statement(db, team, customer_deals, who):
    user = team[who]
    for currency in ("USD", "EUR"):
        for since, a, b, top in ((None, 0.8, 0.95, 50), (date(2025, 6, 1), 0.5, 0.9, 7),
                                 (date(2030, 1, 1), 0.8, 0.95, 50)):
            assert am.abc_classes(db, user, currency, a, b, since, top) == \
                old_abc_classes(db, user, currency, a, b, since, top)
    assert am.abc_classes(db, team["maria"], "USD")["top"]


@pytest.mark.parametrize("who", ["maria", "reza", "vic"])
def test_customer_audit_equals_the_three_queries(db, team, customer_deals, who):
    """One statement for the customer audit tab: the ABC classes (as first written), the
    purchasing power and the places, each as its own query returns them."""
    user = team[who]
    for currency, limit in (("USD", 300), ("EUR", 4), ("GBP", 300)):
        for since, a, b, top in ((None, 0.8, 0.95, 50), (date(2025, 6, 1), 0.5, 0.9, 7),
                                 (date(2030, 1, 1), 0.8, 0.95, 50)):
            abc, power, places = am.customer_audit(db, user, currency, a, b, since, top, limit)
            assert abc == old_abc_classes(db, user, currency, a, b, since, top)
            assert abc == am.abc_classes(db, user, currency, a, b, since, top)
            assert power == am.purchasing_power(db, user, currency)
            assert places == am.geography(db, user, currency, limit)
    abc, power, places = am.customer_audit(db, team["maria"], "USD", since=date(2025, 6, 1))
    assert abc["top"] and len(places) > 4 and any(r["revenue"] for r in power)
    with pytest.raises(ValueError):
        am.customer_audit(db, team["maria"], "USD", a=0.9, b=0.8)


def test_positioning_index_holds_the_calendar_quarter_expression():
    """PostgreSQL reads price positioning's groups off migration 026's index only while its
    expression is the one calendar.period writes for Gregorian quarters."""
    from pathlib import Path

    from crm import calendar

    sql = (Path(am.__file__).parent.parent / "migrations"
           / "026_pg_market_indexes.postgresql.sql").read_text()
    key, join = calendar.period("observed_on", "quarter", "en")
    assert join == ""
    assert key in " ".join(sql.replace("(\n", "(").split()).replace("( ", "(")
