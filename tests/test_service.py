"""Surveys and complaints: commands (validation, references, owners, permissions, audit),
activities and tasks on a complaint, import through the importer and the command line."""
import os

os.environ.setdefault("CRM_BCRYPT_ROUNDS", "4")

from datetime import date, timedelta  # noqa: E402

import pytest  # noqa: E402

from crm import activities, audit, customers, importer, records, service  # noqa: E402
from crm.auth import PermissionDenied  # noqa: E402
from crm.fields import ValidationError  # noqa: E402


@pytest.fixture
def acme(db, team):
    return customers.create_customer(db, team["admin"], {
        "name": "Acme", "segment": "enterprise", "owner_id": team["reza"].id})


@pytest.fixture
def product(db):
    return db.scalar("INSERT INTO products (name, code, unit_price, currency, active, created_at)"
                     " VALUES ('Widget', 'W1', 10, 'USD', TRUE, now()) RETURNING id")


def test_a_survey_answer_takes_csat_or_nps_in_range(db, team, acme, product):
    admin = team["admin"]
    sid = service.create_survey(db, admin, {"customer_id": acme, "answered_on": "2026-03-01",
                                            "channel": "phone", "csat": 4, "nps": "10",
                                            "product_id": product, "comment": "fine"})
    row = records.get(db, admin, service.SURVEYS, sid)
    assert (row["csat"], row["nps"], row["channel"], row["product_id"]) == (4, 10, "phone",
                                                                           product)
    assert row["owner_id"] == team["reza"].id  # no owner given: the customer's
    assert audit.history(db, "surveys", sid)[0]["action"] == "create"
    with pytest.raises(ValidationError) as exc:
        service.create_survey(db, admin, {"customer_id": acme, "answered_on": "2026-03-01",
                                          "channel": "web"})
    assert "csat" in exc.value.errors
    for bad in ({"csat": 6}, {"csat": 0}, {"nps": 11}, {"nps": -1}, {"nps": 7.5}):
        with pytest.raises(ValidationError):
            service.create_survey(db, admin, {"customer_id": acme, "answered_on": "2026-03-01",
                                              "channel": "web", **bad})
    with pytest.raises(ValidationError) as exc:
        service.create_survey(db, admin, {"customer_id": acme, "channel": "web", "nps": 3,
                                          "answered_on": date.today() + timedelta(days=2)})
    assert "answered_on" in exc.value.errors
    with pytest.raises(ValidationError) as exc:
        service.create_survey(db, admin, {"customer_id": acme, "answered_on": "2026-03-01",
                                          "channel": "fax", "nps": 3})
    assert "channel" in exc.value.errors


def test_survey_references_must_exist_and_belong_to_the_customer(db, team, acme):
    admin = team["admin"]
    other = customers.create_customer(db, admin, {"name": "Other"})
    person = customers.add_contact(db, admin, other, {"last_name": "Jones"})
    base = {"customer_id": acme, "answered_on": "2026-03-01", "channel": "web", "nps": 5}
    with pytest.raises(ValidationError) as exc:
        service.create_survey(db, admin, {**base, "contact_id": person})
    assert "contact_id" in exc.value.errors
    with pytest.raises(ValidationError) as exc:
        service.create_survey(db, admin, {**base, "customer_id": 999})
    assert "customer_id" in exc.value.errors
    with pytest.raises(ValidationError) as exc:
        service.create_survey(db, admin, {**base, "product_id": 999})
    assert "product_id" in exc.value.errors


def test_reps_see_and_change_only_their_own(db, team, acme):
    reza, sam = team["reza"], team["sam"]
    sid = service.create_survey(db, reza, {"customer_id": acme, "answered_on": "2026-03-01",
                                           "channel": "web", "nps": 8})
    with pytest.raises(PermissionDenied):  # not sam's customer
        service.create_survey(db, sam, {"customer_id": acme, "answered_on": "2026-03-01",
                                        "channel": "web", "nps": 8})
    with pytest.raises(PermissionDenied):
        records.get(db, sam, service.SURVEYS, sid)
    with pytest.raises(PermissionDenied):
        service.update_survey(db, sam, sid, {"nps": 1}, 1)
    assert records.list_records(db, sam, service.SURVEYS, records.Query()).total == 0
    assert records.list_records(db, reza, service.SURVEYS, records.Query()).total == 1
    with pytest.raises(PermissionDenied):
        service.create_complaint(db, team["vic"], {"customer_id": acme, "subject": "x",
                                                   "category": "other"})


def test_closing_a_complaint_dates_it_and_reopening_clears_the_date(db, team, acme, product):
    admin = team["admin"]
    cid = service.create_complaint(db, admin, {
        "customer_id": acme, "subject": "Pump leaks", "category": "product_failure",
        "severity": "critical", "product_id": product, "opened_on": "2026-01-05"})
    row = records.get(db, admin, service.COMPLAINTS, cid)
    assert (row["status"], row["resolved_on"], row["owner_id"]) == ("open", None,
                                                                    team["reza"].id)
    row = service.update_complaint(db, admin, cid, {"status": "resolved",
                                                    "resolution": "Replaced"}, row["version"])
    assert row["resolved_on"] == date.today()
    row = service.update_complaint(db, admin, cid, {"status": "in_progress"}, row["version"])
    assert row["resolved_on"] is None
    with pytest.raises(ValidationError) as exc:  # resolved before opened
        service.update_complaint(db, admin, cid, {"status": "resolved",
                                                  "resolved_on": "2026-01-01"}, row["version"])
    assert "resolved_on" in exc.value.errors
    with pytest.raises(ValidationError) as exc:  # an open complaint has no resolved date
        service.create_complaint(db, admin, {"customer_id": acme, "subject": "x",
                                             "category": "other", "resolved_on": "2026-02-01"})
    assert "resolved_on" in exc.value.errors
    changes = [e["changes"] for e in audit.history(db, "complaints", cid)]
    assert any("status" in (c or {}) for c in changes)


def test_a_complaint_has_activities_and_tasks(db, team, acme):
    admin = team["admin"]
    cid = service.create_complaint(db, admin, {"customer_id": acme, "subject": "Late",
                                               "category": "delivery"})
    activities.log_activity(db, admin, {"subject": "Called about it", "complaint_id": cid})
    activities.create_task(db, admin, {"title": "Send a new one", "complaint_id": cid})
    assert [a["subject"] for a in activities.timeline(db, admin, "complaint_id", cid)] == [
        "Called about it"]
    assert [t["title"] for t in activities.tasks_for(db, admin, "complaint_id", cid)] == [
        "Send a new one"]
    mine = [t for group in activities.my_tasks(db, admin).values() for t in group]
    assert [(t["title"], t["related"]) for t in mine] == [("Send a new one", "Late")]
    with pytest.raises(ValidationError):
        activities.create_task(db, admin, {"title": "x", "complaint_id": 999})


def test_surveys_import_through_the_importer(db, team, acme):
    csv = ("Customer,Date,Channel,CSAT,NPS,Comment\n"
           "Acme,2026-02-01,email,5,10,Great\n"
           "Acme,15.03.2026,phone,2,,Slow\n"
           "Nobody,2026-02-01,email,5,10,\n"
           "Acme,2026-02-01,web,,,no score\n").encode()
    source = importer.read(csv, "answers.csv")
    mapping = importer.propose_mapping(service.SURVEYS, source.headers)
    assert mapping == {"Customer": "customer_id", "Date": "answered_on",
                       "Channel": "channel", "CSAT": "csat", "NPS": "nps",
                       "Comment": "comment"}
    plan = importer.plan(db, team["admin"], service.SURVEYS, source, mapping, "create", None)
    assert [r.action for r in plan.rows] == ["create", "create", "reject", "reject"]
    importer.execute(db, team["admin"], plan)
    got = db.query("SELECT answered_on, channel, csat, nps, owner_id FROM surveys ORDER BY id")
    assert [(r["answered_on"], r["csat"], r["nps"]) for r in got] == [
        (date(2026, 2, 1), 5, 10), (date(2026, 3, 15), 2, None)]
    assert {r["owner_id"] for r in got} == {team["reza"].id}


def test_import_surveys_from_the_command_line(tmp_path, monkeypatch, capsys):
    from crm import auth
    from crm.__main__ import main
    from crm.db import Database

    path = tmp_path / "crm.duckdb"
    db = Database(path)
    auth.create_user(db, None, "admin", "Ada", None, "correct horse 42", "admin")
    customers.create_customer(db, auth.get_user(db, "admin"), {"name": "Acme"})
    db.close()
    (tmp_path / "s.csv").write_text("customer,answered_on,channel,nps\nAcme,2026-01-02,chat,6\n")
    code = main(["--db", str(path), "import", "surveys", str(tmp_path / "s.csv")])
    assert code == 0, capsys.readouterr()
    code = main(["--db", str(path), "export", "complaints", str(tmp_path / "c.csv")])
    assert code == 0
    db = Database(path)
    assert db.scalar("SELECT nps FROM surveys") == 6
    db.close()
