"""Demo surveys and complaints: two years of them, with the patterns the charts should show."""
import os

os.environ.setdefault("CRM_BCRYPT_ROUNDS", "4")

from datetime import date, timedelta  # noqa: E402

import pytest  # noqa: E402

from crm import auth, demo, service  # noqa: E402
from crm.analytics import satisfaction as sat  # noqa: E402


@pytest.fixture(scope="module", params=["en", "fa"])
def loaded(new_database, request):
    from crm.db import Database

    db = Database(new_database())
    auth.create_user(db, None, "admin", "Ada", None, "correct horse 42", "admin")
    result = demo.load_demo(db, "small", seed=5, password="correct horse 42",
                            language=request.param)
    yield db, result
    db.close()


def test_two_years_of_answers_and_complaints(loaded):
    db, result = loaded
    assert (result["surveys"], result["complaints"]) == (1500, 250)
    first, last = db.one("SELECT min(answered_on) AS a, max(answered_on) AS b FROM surveys"
                         ).values()
    assert last - first > timedelta(days=700) and last <= date.today()
    assert db.scalar("SELECT count(*) FROM surveys WHERE csat IS NULL AND nps IS NULL") == 0
    assert db.scalar("SELECT count(*) FROM surveys WHERE csat NOT BETWEEN 1 AND 5"
                     " OR nps NOT BETWEEN 0 AND 10") == 0
    assert {r["category"] for r in db.query("SELECT DISTINCT category FROM complaints")} == set(
        service.CATEGORIES)
    assert {r["status"] for r in db.query("SELECT DISTINCT status FROM complaints")} == set(
        service.STATUSES)
    # closed ones have a date on or after opening; open ones none
    assert db.scalar("SELECT count(*) FROM complaints WHERE (status IN ('resolved', 'rejected'))"
                     " <> (resolved_on IS NOT NULL) OR resolved_on < opened_on") == 0
    # every answer's owner is its customer's owner; contacts and deals are the customer's
    assert db.scalar("SELECT count(*) FROM surveys s JOIN customers c ON c.id = s.customer_id"
                     " WHERE s.owner_id IS DISTINCT FROM c.owner_id") == 0
    assert db.scalar("SELECT count(*) FROM surveys s JOIN contacts p ON p.id = s.contact_id"
                     " WHERE p.customer_id <> s.customer_id") == 0
    assert db.scalar("SELECT count(*) FROM surveys s JOIN deals d ON d.id = s.deal_id"
                     " WHERE d.customer_id <> s.customer_id") == 0


def test_satisfaction_is_lower_where_complaints_pile_up(loaded):
    db, _result = loaded
    by = {r["many"]: r for r in db.query(
        "SELECT coalesce(k.n, 0) >= 3 AS many, avg(s.csat) AS csat, avg(s.nps) AS nps"
        " FROM surveys s LEFT JOIN (SELECT customer_id, count(*) AS n FROM complaints"
        " GROUP BY 1) k ON k.customer_id = s.customer_id GROUP BY 1")}
    # float(): avg() is a double on DuckDB, a numeric (Decimal) on PostgreSQL
    assert float(by[True]["csat"]) < float(by[False]["csat"]) - 0.3
    assert float(by[True]["nps"]) < float(by[False]["nps"]) - 0.8
    admin = auth.get_user(db, "admin")
    assert sat.nps_summary(db, admin)["answers"] > 1000
    assert sat.at_risk(db, admin)  # some customers are at risk
    assert sum(b["count"] for b in sat.open_by_age(db, admin)) > 0
