"""Every dashboard and forecast formula against figures worked out by hand on a small fixture:
deals in two currencies, won, lost, overdue, moved back from won; no deals; all lost; one month
of history."""
from datetime import date, datetime

import pytest

from crm import auth, deals, leads, pipelines, stage_spans
from crm.analytics import forecast, kpis, periods
from crm.fields import ValidationError

TODAY = date(2026, 11, 15)
NOV = periods.scope("this_month", TODAY)


def stages(db):
    return {s["name"]: s["id"] for s in pipelines.stages_of(db, pipelines.default_pipeline_id(db))}


def make(db, user, title, amount, path, currency="USD", expected=None, probability=None,
         owner=None):
    """A deal created in path[0]'s stage and moved along path, each step at its datetime."""
    s = stages(db)
    values = {"title": title, "amount": str(amount), "currency": currency,
              "stage_id": s[path[0][0]], "expected_close_date": expected,
              "probability": probability}
    if owner is not None:
        values["owner_id"] = owner
    deal_id = deals.create_deal(db, user, values)
    for name, _when in path[1:]:
        deals.move_deal(db, user, deal_id, s[name],
                        lost_reason="price" if name == "Lost" else None)
    with db.transaction() as cur:
        ids = [r[0] for r in cur.execute(
            "SELECT id FROM deal_stage_history WHERE deal_id = $d ORDER BY id",
            {"d": deal_id}).fetchall()]
        for hid, (_name, when) in zip(ids, path):
            cur.execute("UPDATE deal_stage_history SET changed_at = $t WHERE id = $id",
                        {"t": when, "id": hid})
        stage_spans.refresh_deal(cur, deal_id)  # as every writer of the history does
        last = path[-1]
        closed = last[1].date() if last[0] in ("Won", "Lost") else None
        cur.execute("UPDATE deals SET created_at = $c, closed_on = $closed,"
                    " stage_entered_at = $e WHERE id = $id",
                    {"c": path[0][1], "closed": closed, "e": last[1], "id": deal_id})
    return deal_id


def at(y, m, d):
    return datetime(y, m, d, 10, 0)


@pytest.fixture
def sales(db, team):
    reza, sam, maria = team["reza"], team["sam"], team["maria"]
    ids = {
        "A": make(db, reza, "A", 1000, [("Prospecting", at(2026, 9, 1)),
                                        ("Proposal", at(2026, 10, 5))],
                  expected=date(2026, 11, 20)),
        "B": make(db, maria, "B", 2000, [("Negotiation", at(2026, 11, 2))],
                  expected=date(2026, 12, 10), probability=60, owner=sam.id),
        "C": make(db, reza, "C", 500, [("Prospecting", at(2026, 9, 15))], currency="EUR",
                  expected=date(2026, 10, 1)),
        "D": make(db, reza, "D", 3000, [("Prospecting", at(2026, 10, 1)),
                                        ("Proposal", at(2026, 10, 20)),
                                        ("Won", at(2026, 11, 5))]),
        "E": make(db, sam, "E", 1000, [("Negotiation", at(2026, 11, 1)),
                                       ("Won", at(2026, 11, 11))]),
        "F": make(db, reza, "F", 700, [("Prospecting", at(2026, 10, 2)),
                                       ("Proposal", at(2026, 10, 9)),
                                       ("Lost", at(2026, 11, 3))]),
        "G": make(db, reza, "G", 400, [("Prospecting", at(2026, 10, 10)),
                                       ("Won", at(2026, 10, 20))], currency="EUR"),
        # won, then moved back: open again, no close date, counts nowhere as won
        "H": make(db, reza, "H", 9999, [("Prospecting", at(2026, 10, 1)),
                                        ("Won", at(2026, 10, 15)),
                                        ("Qualification", at(2026, 11, 4))]),
    }
    return ids


# --- periods -------------------------------------------------------------------------------

def test_period_presets_and_the_period_before():
    assert periods.span("this_month", TODAY) == (date(2026, 11, 1), date(2026, 11, 30),
                                                 date(2026, 10, 1), date(2026, 10, 31))
    assert periods.span("this_quarter", TODAY) == (date(2026, 10, 1), date(2026, 12, 31),
                                                   date(2026, 7, 1), date(2026, 9, 30))
    assert periods.span("this_year", TODAY)[:3] == (date(2026, 1, 1), date(2026, 12, 31),
                                                    date(2025, 1, 1))
    assert periods.span("last_12_months", TODAY) == (date(2025, 12, 1), date(2026, 11, 30),
                                                     date(2024, 12, 1), date(2025, 11, 30))
    assert periods.span("custom", TODAY, custom=(date(2026, 11, 1), date(2026, 11, 10))) == (
        date(2026, 11, 1), date(2026, 11, 10), date(2026, 10, 22), date(2026, 10, 31))
    # Persian users: Jalali months (Aban 1405 = 2026-10-23 .. 2026-11-21)
    assert periods.span("this_month", TODAY, "fa")[:2] == (date(2026, 10, 23), date(2026, 11, 21))
    assert periods.next_keys(TODAY, "quarter", 3) == [20264, 20271, 20272]
    assert periods.bounds(14053, "quarter", "fa") == (date(2026, 9, 23), date(2026, 12, 21))


# --- tiles ---------------------------------------------------------------------------------

def test_open_pipeline_per_currency_weighted_never_adding_currencies(db, team, sales):
    got = kpis.open_pipeline(db, team["maria"], NOV)
    # A 1000 x 50 % + B 2000 x 60 % (its own) + H 9999 x 25 % (back in Qualification)
    assert got == {"USD": {"deals": 3, "amount": 12999.0, "weighted": 4199.75},
                   "EUR": {"deals": 1, "amount": 500.0, "weighted": 50.0}}
    assert kpis.open_pipeline(db, team["reza"], NOV) == {
        "USD": {"deals": 2, "amount": 10999.0, "weighted": 2999.75},
        "EUR": {"deals": 1, "amount": 500.0, "weighted": 50.0}}


def test_open_pipeline_at_the_end_of_the_previous_period_from_the_history(db, team, sales):
    # on Oct 31: A (Proposal 50 %), D (Proposal 50 %), F (Proposal 50 %) open in USD; H was
    # won then (Oct 15); B and E did not exist; C open in EUR; G won
    got = kpis.open_pipeline_as_of(db, team["maria"], NOV, date(2026, 10, 31))
    assert got == {"USD": {"deals": 3, "amount": 4700.0, "weighted": 2350.0},
                   "EUR": {"deals": 1, "amount": 500.0, "weighted": 50.0}}


def test_won_win_rate_average_size_and_cycle(db, team, sales):
    nov = kpis.closed_in(db, team["maria"], NOV, NOV.start, NOV.end)
    assert nov["won"] == {"USD": {"deals": 2, "amount": 4000.0, "average": 2000.0}}
    assert (nov["won_deals"], nov["lost_deals"]) == (2, 1)
    assert nov["win_rate"] == pytest.approx(2 / 3)
    assert nov["cycle_days"] == pytest.approx((35 + 10) / 2)  # D: Oct 1 -> Nov 5, E: 10 days
    oct_ = kpis.closed_in(db, team["maria"], NOV, NOV.prev_start, NOV.prev_end)
    # H was won on Oct 15 and moved back: not won in October either
    assert oct_["won"] == {"EUR": {"deals": 1, "amount": 400.0, "average": 400.0}}
    assert oct_["win_rate"] == 1.0
    mine = kpis.closed_in(db, team["reza"], NOV, NOV.start, NOV.end)
    assert (mine["won_deals"], mine["lost_deals"], mine["win_rate"]) == (1, 1, 0.5)
    assert mine["cycle_days"] == 35


def test_filters_by_owner(db, team, sales):
    only_sam = periods.scope("this_month", TODAY, owner_ids=[team["sam"].id])
    assert kpis.closed_in(db, team["maria"], only_sam, NOV.start, NOV.end)["won"] == {
        "USD": {"deals": 1, "amount": 1000.0, "average": 1000.0}}


def test_no_deals_gives_no_rates(db, team):
    got = kpis.tiles(db, team["maria"], NOV, TODAY)
    assert got["open_pipeline"]["now"] == {}
    assert got["closed"]["now"]["win_rate"] is None
    assert got["closed"]["now"]["cycle_days"] is None
    assert got["conversion"]["now"]["rate"] is None
    assert got["retention"]["now"]["rate"] is None
    assert kpis.change(5, 0) is None and kpis.change(6, 4) == 0.5


def test_all_lost_is_a_zero_win_rate(db, team):
    make(db, team["reza"], "X", 100, [("Prospecting", at(2026, 11, 1)), ("Lost", at(2026, 11, 2))])
    make(db, team["reza"], "Y", 100, [("Prospecting", at(2026, 11, 1)), ("Lost", at(2026, 11, 3))])
    got = kpis.closed_in(db, team["maria"], NOV, NOV.start, NOV.end)
    assert (got["win_rate"], got["won"], got["cycle_days"]) == (0.0, {}, None)


def test_lead_conversion_counts_the_period_s_leads(db, team):
    reza = team["reza"]
    made = [leads.create_lead(db, reza, {"last_name": f"L{i}", "source": "website"})
            for i in range(4)]
    with db.transaction() as cur:
        cur.execute("UPDATE leads SET created_at = $t", {"t": at(2026, 11, 3)})
        cur.execute("UPDATE leads SET created_at = $t WHERE id = $id",
                    {"t": at(2026, 10, 3), "id": made[3]})
        cur.execute("UPDATE leads SET status = 'converted', converted_at = $t WHERE id = $id",
                    {"t": at(2026, 11, 9), "id": made[0]})
    got = kpis.lead_conversion(db, team["maria"], NOV, NOV.start, NOV.end)
    assert got == {"leads": 3, "converted": 1, "rate": pytest.approx(1 / 3)}
    assert kpis.lead_sources(db, team["maria"], NOV) == [
        {"source": "website", "leads": 3, "converted": 1}]
    assert kpis.lead_conversion(db, team["sam"], NOV, NOV.start, NOV.end)["leads"] == 0


def test_customer_base_installed_base_and_retention(db, team):
    from crm import customers

    maria = team["maria"]
    old, kept, new = (customers.create_customer(db, maria, {"name": n})
                      for n in ("Old", "Kept", "New"))
    s = stages(db)

    def won(customer, closed):
        deal_id = deals.create_deal(db, maria, {"title": "w", "amount": "10",
                                                "customer_id": customer, "stage_id": s["Won"]})
        with db.transaction() as cur:
            cur.execute("UPDATE deals SET closed_on = $c WHERE id = $id",
                        {"c": closed, "id": deal_id})

    won(old, date(2025, 11, 20))   # active at Oct 31 (12 months back), gone by Nov 30
    won(kept, date(2026, 3, 1))    # active at both ends
    won(new, date(2026, 11, 10))   # new in November
    got = kpis.retention(db, maria, NOV, NOV.prev_end, NOV.end)
    assert got == {"active_before": 2, "retained": 1, "rate": 0.5}
    assert kpis.customer_bases(db, maria, NOV, date(2026, 10, 31))["customer_base"] == 2
    assert kpis.customer_bases(db, maria, NOV, NOV.end) == {"customer_base": 3,
                                                            "installed_base": 3}


def test_charts_data(db, team, sales):
    maria = team["maria"]
    pipeline = pipelines.default_pipeline_id(db)
    quarter = periods.scope("this_quarter", TODAY)
    funnel = {r["stage"]: r["deals"] for r in kpis.funnel(db, maria, quarter, pipeline)}
    # created Oct-Dec: B (Negotiation), D (Prospecting, Proposal, Won), E (Negotiation, Won),
    # F (Prospecting, Proposal; lost), G (Prospecting, Won), H (Prospecting, Won, back)
    # a deal counts in every stage up to the furthest it reached (H reached Won once)
    assert funnel == {"Prospecting": 6, "Qualification": 6, "Proposal": 6, "Negotiation": 5,
                      "Won": 4}
    assert kpis.won_by_month(db, maria, quarter, "USD") == [
        {"period": 202610, "deals": 0, "amount": 0.0},
        {"period": 202611, "deals": 2, "amount": 4000.0},
        {"period": 202612, "deals": 0, "amount": 0.0}]
    by_owner = kpis.pipeline_by_owner(db, maria, NOV, "USD")
    assert by_owner == [{"owner": "Reza Rahimi", "deals": 2, "amount": 10999.0,
                         "weighted": 2999.75},
                        {"owner": "Sam Seller", "deals": 1, "amount": 2000.0, "weighted": 1200.0}]
    assert kpis.currencies(db, maria, NOV) == ["USD", "EUR"]


# --- forecast ------------------------------------------------------------------------------

def test_weighted_pipeline_by_month_with_overdue_apart(db, team, sales):
    got = forecast.weighted_by_period(db, team["maria"], NOV, "month", "stage", "USD", TODAY)
    assert got["periods"][:2] == [202611, 202612] and len(got["periods"]) == 12
    rows = {(r["period"], r["grp"]): r["weighted"] for r in got["rows"]}
    assert rows == {(202611, "Proposal"): 500.0, (202612, "Negotiation"): 1200.0,
                    (forecast.NO_DATE, "Qualification"): 2499.75}
    eur = forecast.weighted_by_period(db, team["maria"], NOV, "quarter", "owner", "EUR", TODAY)
    assert [(r["period"], r["grp"], r["weighted"]) for r in eur["rows"]] == [
        (forecast.OVERDUE, "Reza Rahimi", 50.0)]


def test_categories_quotas_and_attainment(db, team, sales):
    maria, reza, sam = team["maria"], team["reza"], team["sam"]
    forecast.set_quota(db, maria, {"user_id": reza.id, "grain": "month",
                                   "day": date(2026, 11, 1), "amount": "3000"})
    forecast.set_quota(db, maria, {"user_id": sam.id, "grain": "month",
                                   "day": date(2026, 11, 7), "amount": "2000"})
    forecast.set_quota(db, maria, {"user_id": sam.id, "grain": "month",  # replaces 2000
                                   "day": date(2026, 11, 30), "amount": "2000.50"})
    rows = forecast.categories(db, maria, NOV, "month", "USD", TODAY)
    nov, dec = rows[0], rows[1]
    assert nov == {"period": 202611, "closed": 4000.0, "commit": 0.0, "best_case": 1000.0,
                   "pipeline": 0.0, "closed_commit": 4000.0, "closed_commit_best": 5000.0,
                   "quota": 5000.5}
    assert (dec["commit"], dec["closed_commit"], dec["quota"]) == (2000.0, 2000.0, None)
    got = {r["name"]: r for r in forecast.attainment(db, maria, NOV, NOV.start, NOV.end, "USD")}
    assert got["Reza Rahimi"]["attainment"] == 1.0
    assert got["Sam Seller"]["won"] == 1000.0
    assert got["Sam Seller"]["attainment"] == pytest.approx(1000 / 2000.5)
    # a rep sees only their own quota
    assert forecast.categories(db, reza, NOV, "month", "USD", TODAY)[0]["quota"] == 3000.0
    with pytest.raises(auth.PermissionDenied):
        forecast.set_quota(db, reza, {"user_id": reza.id, "day": TODAY, "amount": "1"})
    with pytest.raises(ValidationError):
        forecast.set_quota(db, maria, {"user_id": reza.id, "day": TODAY, "amount": "-5"})
    assert db.scalar("SELECT count(*) FROM audit_log WHERE entity = 'quotas'") == 3


def test_quota_csv_import_is_all_or_nothing(db, team):
    maria = team["maria"]
    bad = b"username,period,amount,currency\nreza,2026-11,1000,USD\nnobody,2026-11,5,USD\n" \
          b"sam,2026-13,5,USD\n"
    with pytest.raises(ValidationError) as exc:
        forecast.import_quotas(db, maria, bad)
    assert "line 3" in exc.value.errors["file"] and "line 4" in exc.value.errors["file"]
    assert db.scalar("SELECT count(*) FROM quotas") == 0
    good = "username,period,amount\nreza,2026-Q4,9000\nsam,۱۴۰۵-۰۹,1500\n".encode()
    assert forecast.import_quotas(db, maria, good) == {"imported": 2}
    rows = db.query("SELECT grain, period_start, period_end, amount FROM quotas ORDER BY id")
    assert [(r["grain"], r["period_start"], r["period_end"], float(r["amount"]))
            for r in rows] == [("quarter", date(2026, 10, 1), date(2026, 12, 31), 9000.0),
                               ("month", date(2026, 11, 22), date(2026, 12, 21), 1500.0)]


def test_projection_needs_a_year_and_brackets_its_forecast():
    assert forecast.project([100.0] * 11) == {"enough": False, "months": 11}
    assert forecast.project([0.0] * 30)["enough"] is False
    line = [1000.0 + 50 * i for i in range(30)]
    got = forecast.project(line, horizon=6)
    assert got["enough"] and len(got["forecast"]) == 6 and got["backtested"] == 6
    for i in range(6):
        assert got["lower95"][i] <= got["lower80"][i] <= got["forecast"][i] \
            <= got["upper80"][i] <= got["upper95"][i]
    assert got["forecast"][0] == pytest.approx(2500, rel=0.02)  # the line goes on
    assert got["mape"] < 0.02


def test_projection_backtest_is_the_mean_of_one_step_errors():
    import numpy as np

    rng = np.random.default_rng(3)
    series = list(1000 + rng.normal(0, 100, 20))
    got = forecast.project(series)
    expected = np.mean([abs(series[c] - forecast.one_step(series[:c])) / series[c]
                        for c in range(14, 20)])
    assert got["mape"] == pytest.approx(expected)


def test_monthly_won_history_starts_at_the_first_won_month(db, team, sales):
    got = forecast.monthly_won(db, team["maria"], NOV, "USD", date(2026, 12, 3))
    assert got == [{"period": 202611, "amount": 4000.0}]  # one month of history
    assert forecast.project([r["amount"] for r in got])["enough"] is False


def test_learned_probabilities_with_counts_and_intervals(db, team, sales):
    pipeline = pipelines.default_pipeline_id(db)
    got = {r["stage"]: r for r in forecast.learned_probabilities(db, team["maria"], pipeline)}
    # closed deals: D won (Prospecting, Proposal), E won (Negotiation), F lost (Prospecting,
    # Proposal), G won (Prospecting)
    assert (got["Prospecting"]["deals"], got["Prospecting"]["won"]) == (3, 2)
    assert (got["Proposal"]["deals"], got["Proposal"]["won"]) == (2, 1)
    assert (got["Negotiation"]["deals"], got["Negotiation"]["learned"]) == (1, 1.0)
    assert got["Qualification"]["learned"] is None
    low, high = forecast.wilson(2, 3)
    assert (round(low, 4), round(high, 4)) == (0.2077, 0.9385)
    assert got["Prospecting"]["low"] == low
    with pytest.raises(auth.PermissionDenied):
        forecast.adopt_learned(db, team["maria"], pipeline)
    changed = forecast.adopt_learned(db, team["admin"], pipeline, min_deals=2)
    s = stages(db)
    assert changed == {s["Prospecting"]: (10, 67)}  # Proposal: 1 of 2 = its 50 % already
    assert pipelines.get_stage(db, s["Prospecting"])["probability"] == 67
    assert pipelines.get_stage(db, s["Negotiation"])["probability"] == 75  # 1 deal: kept


def test_snapshots_once_a_day_and_accuracy(db, team, sales):
    written = forecast.take_snapshot(db, auth.SYSTEM, date(2026, 11, 1))
    assert written > 0
    assert forecast.take_snapshot(db, auth.SYSTEM, date(2026, 11, 1)) == 0
    assert forecast.snapshot_if_due(db, date(2026, 11, 1)) == 0
    with pytest.raises(auth.PermissionDenied):
        forecast.take_snapshot(db, team["maria"], date(2026, 11, 2))
    got = forecast.accuracy(db, team["maria"], NOV, "USD", date(2026, 12, 15))
    # snapshot of Nov 1: A in November (Proposal, best case, 500 weighted); won in Nov: 4000
    assert got == [{"period": 202611, "taken_on": date(2026, 11, 1), "weighted": 500.0,
                    "commit": 0.0, "won": 4000.0, "error": 7.0}]
    assert forecast.accuracy(db, team["sam"], NOV, "USD", date(2026, 12, 15)) == []


def test_persian_users_get_jalali_months(db, team, sales):
    aban = periods.scope("this_month", TODAY, "fa")  # Aban 1405: Oct 23 - Nov 21
    assert (aban.start, aban.end) == (date(2026, 10, 23), date(2026, 11, 21))
    assert kpis.won_by_month(db, team["maria"], aban, "USD", "fa") == [
        {"period": 140508, "deals": 2, "amount": 4000.0}]
    got = forecast.weighted_by_period(db, team["maria"], aban, "month", "stage", "USD", TODAY,
                                      lang="fa")
    assert got["periods"][:2] == [140508, 140509]
    assert {(r["period"], r["weighted"]) for r in got["rows"]} == {
        (140508, 500.0), (140509, 1200.0), (forecast.NO_DATE, 2499.75)}
