"""The satisfaction formulas on small fixtures, every number computed by hand (see comments)."""
import os

os.environ.setdefault("CRM_BCRYPT_ROUNDS", "4")

from datetime import date  # noqa: E402

import pytest  # noqa: E402

from crm import activities, customers, deals, pipelines, service  # noqa: E402
from crm.analytics import satisfaction as sat  # noqa: E402
from crm.auth import PermissionDenied  # noqa: E402

TODAY = date(2026, 11, 30)


def test_nps_formula():
    assert sat.nps(2, 1, 1) == 25.0  # (2 - 1) / 4
    assert sat.nps(0, 0, 3) == -100.0
    assert sat.nps(0, 5, 0) == 0.0  # only passives
    assert sat.nps(0, 0, 0) is None  # no answers


def test_satisfied_share_formula():
    assert sat.satisfied_share({1: 1, 2: 0, 3: 1, 4: 1, 5: 1}) == 0.5
    assert sat.satisfied_share({3: 4}) == 0.0
    assert sat.satisfied_share({}) is None
    assert sat.satisfied_share({1: 0, 5: 0}) is None
    assert sat.stake(None, 250) == 250.0


def test_nothing_to_measure_yet(db, team):
    admin = team["admin"]
    assert sat.nps_summary(db, admin)["nps"] is None
    assert sat.nps_over_time(db, admin) == []
    csat = sat.csat_distribution(db, admin)
    assert (csat["answers"], csat["satisfied"], csat["average"]) == (0, None, None)
    assert sat.resolution_times(db, admin) == {"resolved": 0, "average_days": None,
                                               "p90_days": None, "unresolved": 0}
    assert [b["count"] for b in sat.open_by_age(db, admin, today=TODAY)] == [0, 0, 0, 0]
    assert sat.at_risk(db, admin, today=TODAY) == []
    with pytest.raises(PermissionDenied):
        sat.nps_summary(db, None)


@pytest.fixture
def shop(db, team):
    """Five customers (A, C of reza; B, D, E of sam), their answers, complaints and deals."""
    admin, reza, sam = team["admin"], team["reza"].id, team["sam"].id
    ids = {}
    for name, segment, owner in (("A", "enterprise", reza), ("B", "vip", sam),
                                 ("C", "consumer", reza), ("D", None, sam),
                                 ("E", "enterprise", sam)):
        ids[name] = customers.create_customer(db, admin, {"name": name, "segment": segment,
                                                          "owner_id": owner})
    for name, day, nps, csat in (("A", "2026-01-10", 10, 5), ("A", "2026-02-10", 9, 4),
                                 ("A", "2026-02-20", 3, 2), ("B", "2026-01-15", 8, 4),
                                 ("B", "2026-02-15", 7, 3), ("C", "2026-01-20", 0, None),
                                 ("C", "2026-03-01", None, 5), ("E", "2026-01-25", 10, None)):
        service.create_survey(db, admin, {"customer_id": ids[name], "answered_on": day,
                                          "channel": "web", "nps": nps, "csat": csat})
    for name, category, severity, status, opened, resolved in (
            ("A", "product_failure", "high", "open", "2026-11-01", None),
            ("A", "delivery", "low", "resolved", "2026-01-01", "2026-01-02"),
            ("B", "billing", "medium", "resolved", "2026-02-01", "2026-02-03"),
            ("B", "billing", "critical", "resolved", "2026-03-01", "2026-03-04"),
            ("C", "service", "low", "resolved", "2026-04-01", "2026-04-05"),
            ("C", "other", "medium", "resolved", "2026-05-01", "2026-05-11"),
            ("D", "product_failure", "critical", "in_progress", "2026-06-01", None),
            ("E", "delivery", "medium", "rejected", "2026-07-01", "2026-07-03"),
            ("E", "service", "high", "open", "2026-11-28", None)):
        service.create_complaint(db, admin, {
            "customer_id": ids[name], "subject": f"{name} {category}", "category": category,
            "severity": severity, "status": status, "opened_on": opened,
            "resolved_on": resolved})
    stages = {s["kind"]: s["id"] for s in
              reversed(pipelines.stages_of(db, pipelines.default_pipeline_id(db)))}
    for name, amount, kind, closed in (
            ("A", 1000, "open", None), ("A", 500, "won", "2026-06-01"),
            ("A", 9999, "won", "2025-06-01"), ("C", 3000, "open", None),
            ("E", 2000, "won", "2025-12-01"), ("E", 7000, "lost", "2026-10-01"),
            ("B", 10000, "open", None), ("D", 800, "open", None)):
        deal = deals.create_deal(db, admin, {
            "title": f"{name} {amount}", "amount": amount, "customer_id": ids[name],
            "stage_id": stages[kind], "lost_reason": "price" if kind == "lost" else None,
            "currency": "EUR" if name == "D" else "USD"})
        if closed:
            with db.transaction() as cur:
                cur.execute("UPDATE deals SET closed_on = $d WHERE id = $id",
                            {"d": closed, "id": deal})
    return ids


def test_nps_overall_by_month_and_by_segment(db, team, shop):
    admin = team["admin"]
    # NPS answers 10, 9, 3, 8, 7, 0, 10: promoters 3, passives 2, detractors 2 of 7
    overall = sat.nps_summary(db, admin)
    assert (overall["answers"], overall["promoters"], overall["passives"],
            overall["detractors"]) == (7, 3, 2, 2)
    assert overall["nps"] == pytest.approx(100 / 7)
    # January: 10, 8, 0, 10 -> (2 - 1) / 4 = 25 %; February: 9, 3, 7 -> 0 %
    trend = sat.nps_over_time(db, admin, lang="en")
    assert [(r["period"], r["answers"], r["nps"]) for r in trend] == [
        (202601, 4, 25.0), (202602, 3, 0.0)]
    # in the Persian calendar (1 Bahman 1404 = 21 January, 1 Esfand = 20 February): January
    # 10, 15, 20 fall in Dey; January 25, February 10, 15 in Bahman; February 20 in Esfand
    jalali = sat.nps_over_time(db, admin, lang="fa")
    assert [(r["period"], r["answers"]) for r in jalali] == [(140410, 3), (140411, 3),
                                                             (140412, 1)]
    by = {r["key"]: r for r in sat.scores_by(db, admin, "segment")}
    assert by["enterprise"]["nps"] == 50.0  # 10, 9, 3, 10: (3 - 1) / 4
    assert by["vip"]["nps"] == 0.0  # 8 and 7: only passives
    assert by["consumer"]["nps"] == -100.0  # one 0
    assert by["enterprise"]["satisfied"] == pytest.approx(2 / 3)  # CSAT 5, 4, 2
    assert by["vip"]["satisfied"] == 0.5  # 4, 3
    assert by["consumer"]["csat_answers"] == 1 and by["consumer"]["satisfied"] == 1.0
    owners = {r["key"]: r for r in sat.scores_by(db, admin, "owner")}
    assert owners[team["reza"].id]["answers"] == 4  # A's three and C's one NPS
    assert owners[team["sam"].id]["nps"] == pytest.approx(100 * (1 - 0) / 3)  # 8, 7, 10


def test_csat_distribution_and_filters(db, team, shop):
    admin = team["admin"]
    csat = sat.csat_distribution(db, admin)
    assert csat["counts"] == {1: 0, 2: 1, 3: 1, 4: 2, 5: 2}
    assert csat["satisfied"] == pytest.approx(4 / 6)
    assert csat["average"] == pytest.approx(23 / 6)
    february = sat.Filters(start=date(2026, 2, 1), end=date(2026, 2, 28))
    assert sat.nps_summary(db, admin, february)["answers"] == 3
    assert sat.nps_summary(db, admin, february)["nps"] == 0.0
    vip = sat.Filters(segments=["vip"])
    assert sat.csat_distribution(db, admin, vip)["counts"] == {1: 0, 2: 0, 3: 1, 4: 1, 5: 0}
    sams = sat.Filters(owners=[team["sam"].id])
    assert sat.nps_summary(db, admin, sams)["answers"] == 3


def test_reps_measure_only_their_own(db, team, shop):
    reza = sat.nps_summary(db, team["reza"])  # A: 10, 9, 3 and C: 0
    assert (reza["answers"], reza["nps"]) == (4, 0.0)
    viewer = sat.nps_summary(db, team["vic"])  # viewers read the team's dashboards
    assert viewer["answers"] == 7


def test_complaints_by_category_age_and_resolution_time(db, team, shop):
    admin = team["admin"]
    by = [(r["key"], r["total"], r["unresolved"])
          for r in sat.complaints_by(db, admin, "category")]
    assert by == [("billing", 2, 0), ("delivery", 2, 0), ("product_failure", 2, 2),
                  ("service", 2, 1), ("other", 1, 0)]
    # open: E opened 2 days ago, A 29 days ago, D 182 days ago (in progress)
    assert [b["count"] for b in sat.open_by_age(db, admin, today=TODAY)] == [1, 1, 0, 1]
    # resolved in 1, 2, 3, 4 and 10 days (the rejected one is not a resolution):
    # average 4; p90 at rank 0.9 * 4 = 3.6 between 4 and 10: 4 + 0.6 * 6 = 7.6
    times = sat.resolution_times(db, admin)
    assert times["resolved"] == 5 and times["unresolved"] == 3
    assert times["average_days"] == pytest.approx(4.0)
    assert times["p90_days"] == pytest.approx(7.6)
    first_half = sat.Filters(start=date(2026, 1, 1), end=date(2026, 3, 31))
    times = sat.resolution_times(db, admin, first_half)  # 1, 2 and 3 days
    assert (times["resolved"], times["average_days"], times["p90_days"]) == (3, 2.0,
                                                                            pytest.approx(2.8))


def test_customers_at_risk_ranked_by_what_is_at_stake(db, team, shop):
    admin = team["admin"]
    found = sat.at_risk(db, admin, sat.Filters(currency="USD"), today=TODAY)
    # In dollars: C: open 3000; E: won 2000 within 12 months (the lost 7000 does not count);
    # A: open 1000 + won 500 (the 9999 was won more than a year ago); D: nothing (its deal is
    # in euros). B: only passives and a drop of 1 (CSAT) -- not at risk
    assert [(r["name"], r["stake"], r["currency"]) for r in found] == [
        ("C", 3000, "USD"), ("E", 2000, "USD"), ("A", 1500, "USD"), ("D", 0, "USD")]
    in_euros = sat.at_risk(db, admin, sat.Filters(currency="EUR"), today=TODAY)
    assert [(r["name"], r["stake"]) for r in in_euros] == [  # then by severe complaints, id
        ("D", 800), ("A", 0), ("E", 0), ("C", 0)]
    as_they_are = sat.at_risk(db, admin, today=TODAY)  # no currency: each its own
    assert [(r["name"], r["stake"], r["currency"]) for r in as_they_are][-1] == ("D", 800,
                                                                                 "EUR")
    assert sat.stake_currencies(db, admin, TODAY) == ["USD", "EUR"]  # 5 deals, 1 deal
    reasons = {r["name"]: r["reasons"] for r in found}
    assert reasons == {"C": ["detractor"], "E": ["severe_complaint"],
                       "A": ["detractor", "severe_complaint", "dropped"],
                       "D": ["severe_complaint"]}
    a = next(r for r in found if r["name"] == "A")
    assert (a["open_pipeline"], a["won_12m"], a["latest_csat"], a["previous_csat"]) == (
        1000, 500, 2, 4)
    assert found[0]["total"] == 4
    assert [r["name"] for r in sat.at_risk(db, team["reza"], today=TODAY)] == ["C", "A"]
    assert [r["name"] for r in sat.at_risk(db, admin, sat.Filters(segments=["enterprise"]),
                                           today=TODAY)] == ["E", "A"]


def test_customer_summary(db, team, shop):
    admin = team["admin"]
    b = sat.customer_summary(db, admin, shop["B"], today=TODAY)
    assert (b["latest_nps"], b["latest_csat"], b["complaints"], b["open_complaints"],
            b["at_risk"]) == (7, 3, 2, 0, False)
    d = sat.customer_summary(db, admin, shop["D"], today=TODAY)
    assert (d["latest_nps"], d["at_risk"], d["reasons"]) == (None, True, ["severe_complaint"])
    with pytest.raises(PermissionDenied):
        sat.customer_summary(db, team["sam"], shop["A"], today=TODAY)


def test_follow_up_task_goes_to_the_customers_owner(db, team, shop):
    task_id = service.create_follow_up(db, team["maria"], shop["A"], ["detractor"])
    task = db.one("SELECT * FROM tasks WHERE id = $id", {"id": task_id})
    assert (task["owner_id"], task["customer_id"], task["priority"], task["status"]) == (
        team["reza"].id, shop["A"], "high", "open")
    assert task["title"] == "Follow up: A is at risk"
    assert [t["id"] for t in activities.tasks_for(db, team["reza"], "customer_id",
                                                  shop["A"])] == [task_id]
    a = next(r for r in sat.at_risk(db, team["maria"], today=TODAY) if r["name"] == "A")
    assert a["open_tasks"] == 1
    with pytest.raises(PermissionDenied):
        service.create_follow_up(db, team["sam"], shop["A"])
