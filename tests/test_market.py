"""Market audit: competitors, price records, shares, costs, the feature comparison, returns,
scenarios (crm/market.py) and the computations over them (crm/analytics/market.py), on small
fixtures whose results are worked out by hand in the comments."""
from datetime import date, timedelta
from decimal import Decimal

import pytest

from crm import customers, deals, importer, market, pipelines, records
from crm.analytics import market as am
from crm.auth import PermissionDenied
from crm.customers import CUSTOMERS
from crm.fields import ValidationError
from crm.market import COMPETITORS, PRICE_RECORDS, RETURNS
from crm.products import PRODUCTS


def stage(db, kind):
    stages = pipelines.stages_of(db, pipelines.default_pipeline_id(db))
    return next(s["id"] for s in stages if s["kind"] == kind)


# --- records ----------------------------------------------------------------------------------

def test_competitors_are_shared_knowledge_reps_add_and_keep_their_own(db, team):
    reza, sam, maria = team["reza"], team["sam"], team["maria"]
    rival = COMPETITORS.create(db, reza, {"name": "Rival Inc", "threat_level": "high",
                                          "key_people": "Jane Doe — CEO\nBob Roe — sales"})
    # everyone reads it, a viewer included on the dashboards
    assert records.get(db, sam, COMPETITORS, rival)["owner_id"] == reza.id
    assert [r["name"] for r in records.list_records(db, sam, COMPETITORS,
                                                    records.Query()).rows] == ["Rival Inc"]
    with pytest.raises(PermissionDenied):  # another rep does not change reza's profile
        COMPETITORS.update(db, sam, rival, {"strategy": "cheap"}, 1)
    saved = COMPETITORS.update(db, maria, rival, {"strategy": "Low prices"}, 1)
    assert saved["version"] == 2
    with pytest.raises(PermissionDenied):
        COMPETITORS.create(db, team["vic"], {"name": "Nope"})
    with pytest.raises(ValidationError, match="already has this Name"):
        COMPETITORS.create(db, maria, {"name": " rival inc"[1:]})
    ours = COMPETITORS.create(db, maria, {"name": "Us", "is_us": True})
    with pytest.raises(ValidationError, match=f"#{ours} already describes our company"):
        COMPETITORS.create(db, maria, {"name": "Us again", "is_us": True})
    assert market.competitor_choices(db, reza) == {rival: "Rival Inc"}
    assert market.competitor_choices(db, reza, include_us=True) == {ours: "Us",
                                                                    rival: "Rival Inc"}
    assert [e["action"] for e in records.history(db, maria, COMPETITORS, rival)] == [
        "update", "create"]


def test_lost_deals_name_their_competitor_by_reference(db, team):
    maria = team["maria"]
    acme = COMPETITORS.create(db, maria, {"name": "Acme"})
    one = deals.create_deal(db, maria, {"title": "One", "stage_id": stage(db, "open")})
    lost = deals.move_deal(db, maria, one, stage(db, "lost"), lost_reason="competitor",
                           competitor="  ACME ")
    assert (lost["lost_to_competitor_id"], lost["lost_to_competitor"]) == (acme, "Acme")
    # a new name becomes a competitor (owned by whoever named it), in the same transaction
    two = deals.create_deal(db, team["reza"], {"title": "Two", "stage_id": stage(db, "lost"),
                                               "lost_reason": "price",
                                               "lost_to_competitor": "Newco"})
    newco = db.one("SELECT id, owner_id FROM competitors WHERE name = 'Newco'")
    assert newco["owner_id"] == team["reza"].id
    assert db.scalar("SELECT lost_to_competitor_id FROM deals WHERE id = $i",
                     {"i": two}) == newco["id"]
    # editing the text relinks it; reopening the deal clears both
    row = deals.update_deal(db, maria, two, {"lost_to_competitor": "acme"}, 1)
    assert (row["lost_to_competitor_id"], row["lost_to_competitor"]) == (acme, "Acme")
    reopened = deals.move_deal(db, maria, one, stage(db, "open"))
    assert (reopened["lost_to_competitor_id"], reopened["lost_to_competitor"]) == (None, None)


def test_the_migration_matches_typed_names_and_creates_the_missing(db, team):
    maria = team["maria"]
    acme = COMPETITORS.create(db, maria, {"name": "Acme"})
    typed = ["Acme", " acme  ", "Rival Inc", "rival inc", "Rival Inc", "", None]
    ids = []
    for i, name in enumerate(typed):
        ids.append(deals.create_deal(db, maria, {"title": f"D{i}", "stage_id": stage(db, "open")}))
        # as before the link existed: only the text
        with db.transaction() as cur:
            cur.execute("UPDATE deals SET lost_to_competitor = $n, lost_to_competitor_id = NULL"
                        " WHERE id = $i", {"n": name, "i": ids[-1]})
    with db.transaction() as cur:
        assert market.link_lost_competitors(cur) == 1  # Rival Inc, made once
    rival = db.one("SELECT id, name FROM competitors WHERE lower(name) = 'rival inc'")
    assert rival["name"] == "Rival Inc"  # the spelling most deals use
    linked = [db.scalar("SELECT lost_to_competitor_id FROM deals WHERE id = $i", {"i": i})
              for i in ids]
    assert linked == [acme, acme, rival["id"], rival["id"], rival["id"], None, None]
    assert db.scalar("SELECT count(*) FROM audit_log WHERE entity = 'competitors'"
                     " AND record_id = $i", {"i": rival["id"]}) == 1


def test_price_records_need_a_product_and_reps_record_what_they_see(db, team):
    reza, sam = team["reza"], team["sam"]
    gtx = PRODUCTS.create(db, team["maria"], {"name": "GTX", "unit_price": "100",
                                              "currency": "USD"})
    rival = COMPETITORS.create(db, reza, {"name": "Rival"})
    with pytest.raises(ValidationError) as refused:
        PRICE_RECORDS.create(db, reza, {"price": "10", "observed_on": date.today()})
    assert "product_id" in refused.value.errors
    with pytest.raises(ValidationError) as refused:
        PRICE_RECORDS.create(db, reza, {"price": "10", "observed_on": date.today(),
                                        "competitor_product": "Their GTX"})
    assert "competitor_id" in refused.value.errors
    with pytest.raises(ValidationError, match="future"):
        PRICE_RECORDS.create(db, reza, {"price": "10", "product_id": gtx,
                                        "observed_on": date.today() + timedelta(days=2)})
    pid = PRICE_RECORDS.create(db, reza, {"price": "90", "product_id": gtx,
                                          "competitor_id": rival, "competitor_product": "R-90",
                                          "observed_on": date.today(), "source": "inquiry",
                                          "region": "North"})
    assert records.get(db, sam, PRICE_RECORDS, pid)["price"] == Decimal("90.00")
    with pytest.raises(PermissionDenied):
        PRICE_RECORDS.update(db, sam, pid, {"price": "1"}, 1)
    page = records.list_records(db, sam, PRICE_RECORDS,
                                records.Query(filters={"source": ["inquiry"]}))
    assert [(r["product_id__label"], r["competitor_id__label"]) for r in page.rows] == [
        ("GTX", "Rival")]
    assert market.regions(db, sam) == ["North"]


def test_price_records_import_naming_products_and_competitors(db, team):
    maria = team["maria"]
    PRODUCTS.create(db, maria, {"name": "GTX", "unit_price": "100", "currency": "USD"})
    COMPETITORS.create(db, maria, {"name": "Rival"})
    source = importer.read(
        b"product_id,competitor_id,competitor_product,price,currency,observed_on,source,region\n"
        b"GTX,Rival,R-90,\"1,090.50\",USD,2025-03-15,Inquiry,North\n"
        b"GTX,,,100,USD,2025-03-16,website,\n"
        b"GTX,Rivall,R-1,5,USD,2025-03-16,website,\n", "prices.csv")
    mapping = importer.propose_mapping(PRICE_RECORDS, source.headers)
    plan = importer.plan(db, maria, PRICE_RECORDS, source, mapping)
    assert [r.action for r in plan.rows] == ["create", "create", "reject"]
    assert "Did you mean rival?" in str(plan.rows[2].errors)
    importer.execute(db, maria, plan)
    assert db.query("SELECT price, source, competitor_product FROM price_records ORDER BY id") == [
        {"price": Decimal("1090.50"), "source": "inquiry", "competitor_product": "R-90"},
        {"price": Decimal("100.00"), "source": "website", "competitor_product": None}]


def test_shares_and_costs_are_one_figure_per_quarter_kept_by_managers(db, team):
    maria = team["maria"]
    rival = COMPETITORS.create(db, maria, {"name": "Rival"})
    first = market.set_share(db, maria, {"competitor_id": rival, "period_start": date(2025, 2, 10),
                                         "share": "30"})
    again = market.set_share(db, maria, {"competitor_id": rival,
                                         "period_start": date(2025, 3, 31), "share": "32.5"})
    assert first == again  # the same quarter: the estimate is replaced, the timeline keeps it
    assert [(r["period_start"], r["share"]) for r in market.shares_of(db, maria, rival)] == [
        (date(2025, 1, 1), Decimal("32.500"))]
    with pytest.raises(PermissionDenied, match="managers and admins"):
        market.set_share(db, team["reza"], {"competitor_id": rival,
                                            "period_start": date(2025, 1, 1), "share": "1"})
    with pytest.raises(ValidationError):
        market.set_share(db, maria, {"competitor_id": rival, "period_start": date(2025, 1, 1),
                                     "share": "101"})
    gtx = PRODUCTS.create(db, maria, {"name": "GTX", "unit_price": "100", "currency": "USD"})
    market.set_cost(db, maria, {"product_id": gtx, "period_start": date(2025, 5, 5),
                                "unit_cost": "60", "currency": "USD"})
    assert db.one("SELECT period_start, unit_cost FROM product_costs") == {
        "period_start": date(2025, 4, 1), "unit_cost": Decimal("60.00")}


def test_quarters_start_in_the_users_calendar():
    assert market.quarter_start(date(2025, 8, 20), "en") == date(2025, 7, 1)
    # 20 Aug 2025 is 29 Mordad 1404: Jalali Q2 began on 1 Tir 1404 = 22 June 2025
    assert market.quarter_start(date(2025, 8, 20), "fa") == date(2025, 6, 22)
    assert am.quarters_back(date(2025, 8, 20), 1, "en") == date(2025, 7, 1)
    assert am.quarters_back(date(2025, 8, 20), 4, "en") == date(2024, 10, 1)
    assert am.quarters_back(date(2025, 8, 20), 2, "fa") == date(2025, 3, 21)  # 1 Farvardin


def test_the_feature_comparison_saves_only_what_changed(db, team):
    maria = team["maria"]
    gtx = PRODUCTS.create(db, maria, {"name": "GTX", "unit_price": "100", "currency": "USD"})
    rival = COMPETITORS.create(db, maria, {"name": "Rival"})
    PRICE_RECORDS.create(db, maria, {"price": "90", "product_id": gtx, "competitor_id": rival,
                                     "competitor_product": "R-90", "observed_on": date.today()})
    cols = [c["key"] for c in market.feature_columns(db, maria)]
    assert cols == [f"p{gtx}", f"c{rival}:R-90"]
    changed = market.save_feature_matrix(db, maria, ["Offline mode", "API"], {
        ("Offline mode", cols[0]): "yes", ("Offline mode", cols[1]): "partial",
        ("API", cols[0]): "", ("API", cols[1]): ""})
    assert changed == 3  # two answers, and the API row kept without answers
    features, _cols, cells = market.feature_matrix(db, maria)
    assert features == ["Offline mode", "API"]
    assert cells == {("Offline mode", cols[0]): "yes", ("Offline mode", cols[1]): "partial"}
    assert market.save_feature_matrix(db, maria, ["Offline mode", "API"], {
        ("Offline mode", cols[0]): "yes", ("Offline mode", cols[1]): "no"}) == 1
    assert market.save_feature_matrix(db, maria, ["API"], {("API", cols[1]): "REST only"}) == 3
    features, _cols, cells = market.feature_matrix(db, maria)
    assert (features, cells) == (["API"], {("API", cols[1]): "REST only"})
    with pytest.raises(PermissionDenied):
        market.save_feature_matrix(db, team["reza"], ["API"], {})
    assert [market.answer_kind(v) for v in ("Yes", " no", "Partial", "REST", "")] == [
        "yes", "no", "partial", "text", "empty"]


def test_returns_follow_their_customer_and_scenarios_are_named(db, team):
    reza, sam = team["reza"], team["sam"]
    shop = CUSTOMERS.create(db, reza, {"name": "Shop"})
    rid = RETURNS.create(db, reza, {"customer_id": shop, "kind": "cancellation",
                                    "occurred_on": date(2025, 1, 5), "amount": "50",
                                    "reason": "price"})
    with pytest.raises(PermissionDenied):  # sam may not touch reza's customer
        RETURNS.create(db, sam, {"customer_id": shop, "occurred_on": date(2025, 1, 5)})
    with pytest.raises(PermissionDenied):
        records.get(db, sam, RETURNS, rid)
    first = market.save_scenario(db, reza, "break_even", "Launch", {"fixed": 1000})
    assert market.save_scenario(db, reza, "break_even", "launch", {"fixed": 2000}) == first
    assert [s["inputs"] for s in market.scenarios(db, sam, "break_even")] == [{"fixed": 2000}]
    with pytest.raises(PermissionDenied):
        market.delete_scenario(db, sam, first)
    market.delete_scenario(db, reza, first)
    assert market.scenarios(db, reza, "break_even") == []


# --- pure computations ------------------------------------------------------------------------

def test_price_gap_win_rate_share_rest_and_margin():
    assert am.price_gap(110, 100) == pytest.approx(0.10)  # 10 % above
    assert am.price_gap(80, 100) == pytest.approx(-0.20)
    assert am.price_gap(80, None) is None and am.price_gap(80, 0) is None
    assert am.win_rate(3, 1) == 0.75 and am.win_rate(0, 0) is None
    assert am.share_rest([30, 25.5, 14.5]) == 30.0 and am.share_rest([70, 40]) == 0.0
    assert am.margin(100, 60) == (40.0, 0.4)


def test_abc_split_by_hand():
    # total 1000: A while the revenue before stays under 800: 500 (0 before), 300 (500 before)
    # are A; 100 (800 before) is B (under 950); 60 (900 before) B; 40 (960 before) C.
    revenues = {"a": 500, "b": 300, "c": 100, "d": 60, "e": 40, "f": 0}
    assert am.abc_split(revenues) == {"a": "A", "b": "A", "c": "B", "d": "B", "e": "C"}
    assert am.abc_split(revenues, a=0.5, b=0.9) == {"a": "A", "b": "B", "c": "B", "d": "C",
                                                    "e": "C"}


def test_break_even_by_hand():
    # 12,000 fixed; 30 per unit variable; price 50: each unit contributes 20 -> 600 units,
    # 30,000 of revenue
    found = am.break_even(12000, 30, 50)
    assert (found.units, found.revenue, found.contribution) == (600, 30000, 20)
    assert not am.break_even(1000, 50, 50).reachable
    lines = am.break_even_lines(12000, 30, 50, 1200, points=3)
    assert lines == [{"units": 0, "revenue": 0, "cost": 12000},
                     {"units": 600, "revenue": 30000, "cost": 30000},
                     {"units": 1200, "revenue": 60000, "cost": 48000}]


def test_skimming_and_penetration_paths_by_hand():
    inputs = am.PricingInputs(periods=3, reference_price=100, base_units=100, elasticity=1,
                              growth=0.5, unit_cost=40, skim_start=200, skim_end=100,
                              penetration_start=50, penetration_end=100)
    skim = am.pricing_path(inputs, "skimming")
    # prices 200, 150, 100; units 100*(1.5^i)*(100/p): 50, 100, 225
    assert [r["price"] for r in skim] == [200, 150, 100]
    assert [round(r["units"], 6) for r in skim] == [50, 100, 225]
    # revenue 10,000 + 15,000 + 22,500; margin (p-40)*units: 8,000 + 11,000 + 13,500
    assert skim[-1]["revenue_total"] == pytest.approx(47500)
    assert skim[-1]["margin_total"] == pytest.approx(32500)
    pen = am.pricing_path(inputs, "penetration")
    # prices 50, 75, 100; units 200, 200, 225; revenue 10,000 + 15,000 + 22,500
    assert [round(r["units"], 6) for r in pen] == [200, 200, 225]
    assert pen[-1]["revenue_total"] == pytest.approx(47500)
    # margin 10*200 + 35*200 + 60*225 = 2,000 + 7,000 + 13,500
    assert pen[-1]["margin_total"] == pytest.approx(22500)
    assert am.price_path(10, 20, 1) == [10.0]


# --- computations over the database -----------------------------------------------------------

@pytest.fixture
def market_data(db, team):
    """Two products, two rivals and us; prices in Q1 and Q2 2025; shares; costs."""
    maria = team["maria"]
    gtx = PRODUCTS.create(db, maria, {"name": "GTX", "unit_price": "100", "currency": "USD"})
    mini = PRODUCTS.create(db, maria, {"name": "Mini", "unit_price": "20", "currency": "USD"})
    us = COMPETITORS.create(db, maria, {"name": "Us", "is_us": True,
                                        "strengths": "Service\n- Local team"})
    red = COMPETITORS.create(db, maria, {"name": "Red", "threat_level": "high"})
    blue = COMPETITORS.create(db, maria, {"name": "Blue"})

    def price(product, rival, amount, day, region="North", currency="USD"):
        PRICE_RECORDS.create(db, maria, {"product_id": product, "competitor_id": rival,
                                         "competitor_product": "x" if rival else None,
                                         "price": str(amount), "observed_on": day,
                                         "region": region, "currency": currency})

    # GTX, Q1: rivals 80, 90, 130 (North) and 200 (South); ours seen at 95
    price(gtx, red, 80, date(2025, 1, 10))
    price(gtx, blue, 90, date(2025, 2, 10))
    price(gtx, red, 130, date(2025, 3, 10))
    price(gtx, blue, 200, date(2025, 3, 11), region="South")
    price(gtx, None, 95, date(2025, 3, 1))
    price(gtx, red, 9999, date(2025, 3, 1), currency="EUR")  # another currency: left out
    # GTX, Q2: rivals 110 and 120
    price(gtx, red, 110, date(2025, 4, 2))
    price(gtx, blue, 120, date(2025, 5, 2))
    # Mini, Q2: one rival price 25
    price(mini, blue, 25, date(2025, 6, 1))
    for who, q1, q2 in ((us, 20, 22), (red, 35, 33), (blue, 10, 12)):
        market.set_share(db, maria, {"competitor_id": who, "period_start": date(2025, 1, 1),
                                     "share": str(q1)})
        market.set_share(db, maria, {"competitor_id": who, "period_start": date(2025, 4, 1),
                                     "share": str(q2)})
    market.set_cost(db, maria, {"product_id": gtx, "period_start": date(2025, 1, 1),
                                "unit_cost": "60", "currency": "USD"})
    market.set_cost(db, maria, {"product_id": gtx, "period_start": date(2025, 4, 1),
                                "unit_cost": "75", "currency": "USD"})
    return {"gtx": gtx, "mini": mini, "us": us, "red": red, "blue": blue}


def test_positioning_by_quarter_and_the_current_gap(db, team, market_data):
    rows = am.positioning(db, team["reza"], lang="en")
    got = [(r["product"], r["period"], r["low"], r["median"], r["high"], r["observed"],
            r["ours"]) for r in rows]
    assert got == [
        # Q1 rivals 80, 90, 130, 200: median (90 + 130) / 2 = 110; ours seen at 95
        ("GTX", 20251, 80.0, 110.0, 200.0, 4, 95.0),
        # Q2 rivals 110, 120: median 115; no own observation, so the list price 100
        ("GTX", 20252, 110.0, 115.0, 120.0, 2, 100.0),
        ("Mini", 20252, 25.0, 25.0, 25.0, 1, 20.0)]
    gaps = {g["product"]: g for g in am.current_gaps(rows)}
    # list price 100 against Q2's median 115: (100 - 115) / 115 = -13.04 %
    assert gaps["GTX"]["gap_median"] == pytest.approx(-15 / 115)
    assert gaps["GTX"]["gap_low"] == pytest.approx(-10 / 110)
    assert gaps["Mini"]["gap_median"] == pytest.approx(-0.2)
    north = am.positioning(db, team["reza"], product_id=market_data["gtx"], regions=["North"],
                           since=date(2025, 1, 1), lang="en")
    assert [(r["period"], r["median"], r["high"]) for r in north] == [(20251, 90.0, 130.0),
                                                                       (20252, 115.0, 120.0)]
    by_rival = {(r["product"], r["competitor"]): (float(r["median"]), r["observed"])
                for r in am.prices_by_competitor(db, team["vic"])}
    assert by_rival[("GTX", "Red")] == (110.0, 3)  # 80, 130, 110
    assert by_rival[("GTX", "")] == (95.0, 1)


def test_market_share_and_margins_per_quarter(db, team, market_data):
    shares = am.market_shares(db, team["vic"], lang="en")
    assert [(r["period"], r["name"], r["share"]) for r in shares] == [
        (20251, "Us", 20.0), (20251, "Red", 35.0), (20251, "Blue", 10.0),
        (20252, "Us", 22.0), (20252, "Red", 33.0), (20252, "Blue", 12.0)]
    assert am.share_rest([r["share"] for r in shares if r["period"] == 20251]) == 35.0
    found = am.margins(db, team["reza"], lang="en")
    assert [(r["period"], r["price"], r["cost"], r["margin"], r["margin_share"])
            for r in found] == [(20251, 100.0, 60.0, 40.0, 0.4), (20252, 100.0, 75.0, 25.0, 0.25)]
    profiles = am.profiles(db, team["reza"])
    assert profiles[0]["name"] == "Us" and profiles[0]["strength_list"] == ["Service",
                                                                            "Local team"]
    assert profiles[0]["share"] == 22.0


def test_win_loss_against_each_competitor(db, team, market_data):
    maria, reza = team["maria"], team["reza"]
    red, blue = market_data["red"], market_data["blue"]

    def deal(title, kind, amount, rival=None, lost_to=None, owner=maria, currency="USD"):
        values = {"title": title, "stage_id": stage(db, kind), "amount": str(amount),
                  "competitor_id": rival, "currency": currency}
        if kind == "lost":
            values.update(lost_reason="competitor", lost_to_competitor=lost_to)
        return deals.create_deal(db, owner, values)

    # Red named in: won 1000, won 500, lost to Red 300, lost to Red 200 (EUR), open 50
    deal("w1", "won", 1000, red)
    deal("w2", "won", 500, red, owner=reza)
    deal("l1", "lost", 300, red, lost_to="Red")
    deal("l2", "lost", 200, lost_to="red", currency="EUR")
    deal("o1", "open", 50, red)
    # Blue: competed in a deal lost to Red (counts as lost for Blue, not lost to Blue)
    deal("l3", "lost", 700, blue, lost_to="Red")
    rows = {r["name"]: r for r in am.win_loss(db, maria, "USD")}
    # Red: won 2, lost 3 (l1, l2, l3), all lost to Red; win rate 2/5; USD lost 300 + 700
    assert (rows["Red"]["won"], rows["Red"]["lost"], rows["Red"]["lost_to_them"],
            rows["Red"]["open"]) == (2, 3, 3, 1)
    assert rows["Red"]["win_rate"] == pytest.approx(0.4)
    assert rows["Red"]["amount_lost"] == 1000.0
    assert (rows["Blue"]["won"], rows["Blue"]["lost"], rows["Blue"]["lost_to_them"],
            rows["Blue"]["amount_lost"]) == (0, 1, 0, 0.0)
    # a rep counts only their own deals: w2 alone
    mine = {r["name"]: r for r in am.win_loss(db, reza, "USD")}
    assert (mine["Red"]["won"], mine["Red"]["win_rate"]) == (1, 1.0)


def test_customer_audit_abc_power_geography_returns(db, team):
    maria = team["maria"]
    won = stage(db, "won")
    made = {}
    for name, country, city, power, limit, revenue in (
            ("A1", "Iran", "Tehran", "high", 1000, 500), ("A2", "Iran", "Shiraz", "low", 0, 300),
            ("B1", "Lithuania", "Vilnius", "high", 500, 100),
            ("B2", "Lithuania", "Vilnius", None, None, 60),
            ("C1", "Iran", "Tehran", "medium", 10, 40), ("Z0", None, None, None, None, 0)):
        cid = CUSTOMERS.create(db, maria, {"name": name, "country": country, "city": city,
                                           "purchasing_power": power, "credit_limit": limit})
        made[name] = cid
        if revenue:
            deals.create_deal(db, maria, {"title": name, "stage_id": won, "amount": str(revenue),
                                          "customer_id": cid})
    deals.create_deal(db, maria, {"title": "eur", "stage_id": won, "amount": "9999",
                                  "currency": "EUR", "customer_id": made["C1"]})
    found = am.abc_classes(db, maria, "USD")
    # the same split as test_abc_split_by_hand: A = A1, A2; B = B1, B2; C = C1
    assert {r["name"]: r["class"] for r in found["top"]} == {"A1": "A", "A2": "A", "B1": "B",
                                                              "B2": "B", "C1": "C"}
    assert [(r["class"], r["customers"], r["revenue"], r["share"], r["credit_limit"],
             r["strong_buyers"]) for r in found["classes"]] == [
        ("A", 2, 800.0, 0.8, 1000.0, 1), ("B", 2, 160.0, 0.16, 500.0, 1),
        ("C", 1, 40.0, 0.04, 10.0, 0)]
    assert am.abc_split({r["name"]: r["revenue"] for r in found["top"]}) == {
        r["name"]: r["class"] for r in found["top"]}
    with pytest.raises(ValueError):
        am.abc_classes(db, maria, "USD", a=0.9, b=0.8)
    power = {r["purchasing_power"]: (r["customers"], float(r["credit_limit"]),
                                     float(r["revenue"]))
             for r in am.purchasing_power(db, maria, "USD")}
    assert power["high"] == (2, 1500.0, 600.0) and power[""] == (2, 0.0, 60.0)
    places = {(r["country"], r["city"]): (r["customers"], float(r["revenue"]))
              for r in am.geography(db, maria, "USD")}
    assert places[("Iran", "Tehran")] == (2, 540.0)
    assert places[("Lithuania", "Vilnius")] == (2, 160.0)
    assert places[("?", "?")] == (1, 0.0)
    for kind, day, amount, reason in (("return", date(2025, 1, 5), 10, "defective"),
                                      ("return", date(2025, 2, 5), 15, "defective"),
                                      ("cancellation", date(2025, 4, 5), 100, "price")):
        RETURNS.create(db, maria, {"customer_id": made["A1"], "kind": kind, "occurred_on": day,
                                   "amount": str(amount), "reason": reason})
    summary = [(r["period"], r["kind"], r["reason"], r["n"], float(r["amount"]))
               for r in am.returns_summary(db, maria, "USD", lang="en")]
    assert summary == [(20251, "return", "defective", 2, 25.0),
                       (20252, "cancellation", "price", 1, 100.0)]
    # a rep sees none of maria's customers' returns
    assert am.returns_summary(db, team["reza"], "USD") == []


def test_price_lists_map_by_their_own_column_names():
    source = importer.read("Product,Competitor,Competitor product,Price,Date,Source,Region\n"
                           "GTX,Rival,R-1,10,2025-01-01,website,North\n".encode(), "p.csv")
    assert importer.propose_mapping(PRICE_RECORDS, source.headers) == {
        "Product": "product_id", "Competitor": "competitor_id",
        "Competitor product": "competitor_product", "Price": "price", "Date": "observed_on",
        "Source": "source", "Region": "region"}
    rivals = importer.read(b"Competitor,Managers,Threat\nRival,Jane - CEO,high\n", "c.csv")
    assert importer.propose_mapping(COMPETITORS, rivals.headers) == {
        "Competitor": "name", "Managers": "key_people", "Threat": "threat_level"}


def test_importing_deals_links_their_competitors(db, team):
    admin = team["admin"]
    acme = COMPETITORS.create(db, admin, {"name": "Acme"})
    source = importer.read("title,stage,lost_reason,lost_to_competitor\n"
                           "One,Lost,price,acme\nTwo,Lost,competitor,Brand New\n".encode(),
                           "deals.csv")
    mapping = importer.propose_mapping(deals.DEALS, source.headers)
    importer.execute(db, admin, importer.plan(db, admin, deals.DEALS, source, mapping))
    found = {r["title"]: r for r in db.query(
        "SELECT title, lost_to_competitor, lost_to_competitor_id FROM deals")}
    assert (found["One"]["lost_to_competitor_id"], found["One"]["lost_to_competitor"]) == (
        acme, "Acme")
    new = db.scalar("SELECT id FROM competitors WHERE name = 'Brand New'")
    assert found["Two"]["lost_to_competitor_id"] == new
    again = importer.read(b"title,lost_to_competitor\nTwo,Acme\n", "deals.csv")
    plan = importer.plan(db, admin, deals.DEALS, again,
                         importer.propose_mapping(deals.DEALS, again.headers), mode="update",
                         key="title")
    importer.execute(db, admin, plan)
    assert db.scalar("SELECT lost_to_competitor_id FROM deals WHERE title = 'Two'") == acme


def test_complaints_per_product_beside_its_margin(db, team, market_data):
    from crm import service

    maria, reza = team["maria"], team["reza"]
    customer = customers.create_customer(db, maria, {"name": "Buyer", "owner_id": reza.id})
    for opened, status, product in ((date(2025, 1, 5), "resolved", "gtx"),
                                    (date(2025, 5, 5), "open", "gtx"),
                                    (date(2025, 6, 5), "in_progress", "mini"),
                                    (date(2024, 1, 5), "open", "mini")):  # before `since`
        service.create_complaint(db, maria, {
            "customer_id": customer, "product_id": market_data[product], "subject": "Broken",
            "category": "product_failure", "severity": "high", "opened_on": opened,
            "status": status})
    rows = am.complaints_and_margins(db, maria, since=date(2025, 1, 1))
    got = [(r["product"], r["complaints"], r["still_open"], r["margin_share"]) for r in rows]
    # GTX: two complaints, one open; latest cost (Q2) 75 against the list price 100: 25 %.
    # Mini: one complaint since January 2025, open; no cost price, so no margin.
    assert got == [("GTX", 2, 1, 0.25), ("Mini", 1, 1, None)]
    sam = team["sam"]  # a rep sees the complaints of their own customers only
    assert [(r["product"], r["complaints"]) for r in am.complaints_and_margins(db, sam)] == [
        ("GTX", 0)]
