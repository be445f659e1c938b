"""Automation rules (crm/rules.py): triggers, conditions, actions, loop limit, failure
isolation, date rules and the run-rules command."""
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from crm import (activities, auth, conversion, customers, deals, leads, pipelines, records,
                 rules, service)
from crm.__main__ import main
from crm.auth import PermissionDenied
from crm.fields import Field, ValidationError


@pytest.fixture(autouse=True)
def fresh_cache():
    rules.invalidate()
    rules._DAILY.clear()
    yield
    rules.invalidate()


@pytest.fixture
def stage(db):
    return {s["name"]: s["id"] for s in
            pipelines.stages_of(db, pipelines.default_pipeline_id(db))}


def rule(db, admin, entity="leads", trigger="created", config=None, actions=None,
         conditions=None, match="all", name="Rule", enabled=True) -> int:
    return rules.save_rule(db, admin, {
        "name": name, "entity": entity, "trigger": trigger, "trigger_config": config or {},
        "match": match, "conditions": conditions or [], "enabled": enabled,
        "actions": actions or [{"kind": "create_task", "title": "Call {first_name}",
                                "assignee": "owner", "due_days": 2}]})


def runs_of(db, rule_id):
    return db.query("SELECT status, message, record_id, depth FROM rule_runs WHERE rule_id = $r"
                    " ORDER BY id", {"r": rule_id})


def tasks(db, **where):
    clause = " AND ".join(f"{k} = ${k}" for k in where) or "TRUE"
    return db.query(f"SELECT * FROM tasks WHERE {clause} ORDER BY id", where)


# --- created ----------------------------------------------------------------------------------

def test_created_rule_makes_a_task_for_the_owner_with_placeholders(db, team):
    r = rule(db, team["admin"], actions=[{
        "kind": "create_task", "title": "Call {first_name} {last_name} of {company} {nope}",
        "assignee": "owner", "due_days": 3, "priority": "high"}])
    lead = leads.create_lead(db, team["reza"], {"first_name": "Lina", "last_name": "Park"})
    [task] = tasks(db, lead_id=lead)
    # a missing value is empty, an unknown placeholder stays visible
    assert task["title"] == "Call Lina Park of  {nope}"
    assert task["owner_id"] == team["reza"].id and task["priority"] == "high"
    assert task["due_at"] == datetime.combine(date.today() + timedelta(days=3),
                                              datetime.min.time()).replace(hour=9)
    [run] = runs_of(db, r)
    assert run["status"] == "ok" and run["record_id"] == lead and f"#{task['id']}" in run["message"]
    # the task was written by the automation identity, named with the rule and its author
    who = db.scalar("SELECT username FROM audit_log WHERE entity = 'tasks' AND record_id = $t",
                    {"t": task["id"]})
    assert who == f"automation rule #{r} (by admin)"


def test_placeholders_are_plain_text(db, team):
    row = {"title": "x'); DROP TABLE leads; --", "amount": Decimal("5.50"),
           "due": date(2026, 1, 2), "none": None}
    assert rules.fill("{title} {amount} {due} {none}|{missing}", row) == \
        "x'); DROP TABLE leads; -- 5.50 2026-01-02 |{missing}"


def test_disabled_rule_does_not_run_and_enabling_takes_effect_at_once(db, team):
    r = rule(db, team["admin"], enabled=False)
    leads.create_lead(db, team["reza"], {"last_name": "One"})
    assert tasks(db) == [] and runs_of(db, r) == []
    rules.set_enabled(db, team["admin"], r, True)
    leads.create_lead(db, team["reza"], {"last_name": "Two"})
    assert len(tasks(db)) == 1


# --- conditions -------------------------------------------------------------------------------

MONEY = Field("amount", "Amount", "money")
TEXT = Field("company", "Company")
DAY = Field("due", "Due", "date")
STATUS = Field("status", "Status", "choice", choices=("new", "won", "lost"))


@pytest.mark.parametrize("spec, op, actual, stored, expected", [
    (TEXT, "eq", "Acme", "acme", True),
    (TEXT, "eq", "Acme", "Other", False),
    (TEXT, "eq", None, "Acme", False),
    (TEXT, "ne", "Acme", "Other", True),
    (TEXT, "ne", None, "Acme", True),
    (TEXT, "ne", "Acme", "ACME", False),
    (TEXT, "contains", "Big Acme Ltd", "acme", True),
    (TEXT, "contains", None, "acme", False),
    (TEXT, "contains", "Other", "acme", False),
    (MONEY, "gt", Decimal("1500.00"), "1000.00", True),
    (MONEY, "gt", Decimal("1000.00"), "1000.00", False),
    (MONEY, "lt", Decimal("999.99"), "1000.00", True),
    (MONEY, "lt", None, "1000.00", False),
    (DAY, "lt", date(2026, 1, 1), "2026-02-01", True),
    (DAY, "gt", datetime(2026, 3, 1, 10, 0), "2026-02-01", True),
    (TEXT, "empty", None, None, True),
    (TEXT, "empty", "", None, True),
    (TEXT, "empty", "x", None, False),
    (TEXT, "not_empty", "x", None, True),
    (TEXT, "not_empty", None, None, False),
    (STATUS, "in", "won", ["won", "lost"], True),
    (STATUS, "in", "new", ["won", "lost"], False),
    (STATUS, "in", None, ["won"], False),
])
def test_condition_operators(spec, op, actual, stored, expected):
    assert rules.check_condition(spec, op, actual, stored) is expected


def test_conditions_all_and_any_on_real_records(db, team):
    conditions = [{"field": "company", "op": "contains", "value": "acme"},
                  {"field": "estimated_value", "op": "gt", "value": "1000"}]
    r_all = rule(db, team["admin"], conditions=conditions, match="all", name="All",
                 actions=[{"kind": "add_note", "subject": "all matched"}])
    r_any = rule(db, team["admin"], conditions=conditions, match="any", name="Any",
                 actions=[{"kind": "add_note", "subject": "any matched"}])
    both = leads.create_lead(db, team["reza"], {"last_name": "A", "company": "Acme Ltd",
                                                "estimated_value": "5000"})
    one = leads.create_lead(db, team["reza"], {"last_name": "B", "company": "Acme Ltd",
                                               "estimated_value": "10"})
    none = leads.create_lead(db, team["reza"], {"last_name": "C", "company": "Other"})
    assert [r["record_id"] for r in runs_of(db, r_all)] == [both]
    assert [r["record_id"] for r in runs_of(db, r_any)] == [both, one]
    notes = db.query("SELECT lead_id, subject FROM activities ORDER BY id")
    assert {(n["lead_id"], n["subject"]) for n in notes} == {
        (both, "all matched"), (both, "any matched"), (one, "any matched")}
    assert none not in [n["lead_id"] for n in notes]


def test_is_one_of_takes_a_comma_list_validated_by_the_field(db, team):
    r = rule(db, team["admin"], conditions=[
        {"field": "source", "op": "in", "value": "referral, Event"}])
    assert rules.get_rule(db, team["admin"], r).conditions[0]["value"] == ["referral", "event"]
    leads.create_lead(db, team["reza"], {"last_name": "A", "source": "event"})
    leads.create_lead(db, team["reza"], {"last_name": "B", "source": "website"})
    assert len(tasks(db)) == 1
    with pytest.raises(ValidationError) as exc:
        rule(db, team["admin"], conditions=[{"field": "source", "op": "in",
                                             "value": "referral, carrier pigeon"}])
    assert "condition.0" in exc.value.errors


# --- changed ----------------------------------------------------------------------------------

def test_deal_moved_to_a_stage_runs_the_rule(db, team, stage):
    r = rule(db, team["admin"], entity="deals", trigger="changed",
             config={"field": "stage_id", "to": "Won"},
             actions=[{"kind": "add_note", "subject": "Won {title}: send the welcome pack"}])
    deal = deals.create_deal(db, team["reza"], {"title": "Big one", "amount": "100",
                                                "stage_id": stage["Prospecting"]})
    deals.move_deal(db, team["reza"], deal, stage["Negotiation"])
    assert runs_of(db, r) == []
    deals.move_deal(db, team["reza"], deal, stage["Won"])
    [run] = runs_of(db, r)
    assert run["status"] == "ok"
    note = db.one("SELECT subject, kind, owner_id FROM activities WHERE deal_id = $d",
                  {"d": deal})
    assert note == {"subject": "Won Big one: send the welcome pack", "kind": "note",
                    "owner_id": team["admin"].id}


def test_changed_trigger_on_an_update_sets_a_field(db, team):
    r = rule(db, team["admin"], trigger="changed", config={"field": "status", "to": "qualified"},
             actions=[{"kind": "set_field", "field": "notes", "value": "Qualified: call back"}])
    lead = leads.create_lead(db, team["reza"], {"last_name": "Q"})
    saved = records.get(db, team["reza"], leads.LEADS, lead)
    after = leads.update_lead(db, team["reza"], lead, {"title": "CTO"}, saved["version"])
    assert runs_of(db, r) == []  # another field changed
    after = leads.update_lead(db, team["reza"], lead, {"status": "qualified"}, after["version"])
    assert after["notes"] == "Qualified: call back"  # the command returns the record as stored
    assert [x["status"] for x in runs_of(db, r)] == ["ok"]


def test_changed_without_a_value_fires_on_any_change(db, team):
    r = rule(db, team["admin"], trigger="changed", config={"field": "status"})
    lead = leads.create_lead(db, team["reza"], {"last_name": "Q"})
    v = records.get(db, team["reza"], leads.LEADS, lead)["version"]
    leads.update_lead(db, team["reza"], lead, {"status": "contacted"}, v)
    assert len(runs_of(db, r)) == 1


# --- actions ----------------------------------------------------------------------------------

def test_set_field_is_validated_by_the_fields_spec_when_saved(db, team):
    with pytest.raises(ValidationError) as exc:
        rule(db, team["admin"], actions=[{"kind": "set_field", "field": "estimated_value",
                                          "value": "-5"}])
    assert "cannot be less than 0" in exc.value.errors["action.0"]
    with pytest.raises(ValidationError) as exc:
        rule(db, team["admin"], actions=[{"kind": "set_field", "field": "id", "value": "5"}])
    assert "action.0" in exc.value.errors


def test_assign_owner_fixed(db, team):
    rule(db, team["admin"], actions=[{"kind": "assign_owner", "mode": "fixed",
                                      "user_ids": [team["sam"].id]}])
    lead = leads.create_lead(db, team["reza"], {"last_name": "X"})
    assert db.scalar("SELECT owner_id FROM leads WHERE id = $id", {"id": lead}) == team["sam"].id


def test_round_robin_takes_turns_skips_inactive_users_and_keeps_its_place(db, team):
    rr = [team["reza"].id, team["sam"].id, team["maria"].id]
    r = rule(db, team["admin"], actions=[
        {"kind": "assign_owner", "mode": "round_robin", "user_ids": rr},
        {"kind": "create_task", "title": "Welcome {last_name}", "assignee": "owner",
         "due_days": 1}])

    def owner_of_new(name):
        lead = leads.create_lead(db, team["admin"], {"last_name": name})
        return db.scalar("SELECT owner_id FROM leads WHERE id = $id", {"id": lead})

    assert [owner_of_new(n) for n in "ABCD"] == [rr[0], rr[1], rr[2], rr[0]]
    # the task goes to the owner the earlier action chose
    assert [t["owner_id"] for t in tasks(db)] == [rr[0], rr[1], rr[2], rr[0]]
    auth.set_active(db, team["admin"], "sam", False)
    assert owner_of_new("E") == rr[2]  # sam's turn is skipped
    assert db.scalar("SELECT last_position FROM rule_round_robin WHERE rule_id = $r",
                     {"r": r}) == 2


def test_add_note_on_a_customer_timeline(db, team):
    rule(db, team["admin"], entity="customers",
         actions=[{"kind": "add_note", "subject": "New customer {name}",
                   "notes": "Segment: {segment}"}])
    acme = customers.create_customer(db, team["reza"], {"name": "Acme"})
    [note] = activities.timeline(db, team["admin"], "customer_id", acme)
    assert (note["subject"], note["kind"], note["notes"]) == ("New customer Acme", "note",
                                                              "Segment:")


def test_survey_answer_below_threshold(db, team):
    acme = customers.create_customer(db, team["reza"], {"name": "Acme"})
    r = rule(db, team["admin"], entity="surveys", trigger="survey_below",
             config={"score": "nps", "threshold": 7},
             actions=[{"kind": "create_task", "title": "Detractor: NPS {nps}",
                       "assignee": "owner", "due_days": 1}])
    service.create_survey(db, team["reza"], {"customer_id": acme, "answered_on": date.today(),
                                             "nps": 9})
    low = service.create_survey(db, team["reza"], {"customer_id": acme,
                                                   "answered_on": date.today(), "nps": 3})
    [task] = tasks(db)
    assert (task["title"], task["customer_id"], task["owner_id"]) == (
        "Detractor: NPS 3", acme, team["reza"].id)
    assert [x["record_id"] for x in runs_of(db, r)] == [low]
    with pytest.raises(ValidationError):
        rule(db, team["admin"], entity="leads", trigger="survey_below",
             config={"score": "nps", "threshold": 7})


def test_lead_conversion_runs_the_rules_of_the_records_it_creates(db, team, stage):
    r = rule(db, team["admin"], entity="customers",
             actions=[{"kind": "create_task", "title": "Onboard {name}", "assignee": "owner",
                       "due_days": 7}])
    lead = leads.create_lead(db, team["reza"], {"last_name": "Park", "company": "Parkco",
                                                "status": "qualified"})
    v = records.get(db, team["reza"], leads.LEADS, lead)["version"]
    ids = conversion.convert_lead(db, team["reza"], lead, v,
                                  customer={"name": "Parkco", "kind": "company"})
    [task] = tasks(db)
    assert task["title"] == "Onboard Parkco" and task["customer_id"] == ids["customer_id"]
    assert len(runs_of(db, r)) == 1


def test_a_rule_runs_in_the_writes_transaction_and_goes_with_it(db, team, stage):
    """What a rule wrote is part of the save: when the save fails after the rule ran (here a
    conversion whose contact is refused after its customer was inserted), the rule's task and
    its run log go too, and the next, valid save runs the rule once."""
    r = rule(db, team["admin"], entity="customers",
             actions=[{"kind": "create_task", "title": "Onboard {name}", "assignee": "owner",
                       "due_days": 7}])
    lead = leads.create_lead(db, team["reza"], {"last_name": "Park", "company": "Parkco",
                                                "status": "qualified"})
    v = records.get(db, team["reza"], leads.LEADS, lead)["version"]
    with pytest.raises(ValidationError):
        conversion.convert_lead(db, team["reza"], lead, v,
                                customer={"name": "Parkco", "kind": "company"},
                                contact={"last_name": "Park", "email": "not an email"})
    assert db.scalar("SELECT count(*) FROM customers") == 0
    assert tasks(db) == [] and runs_of(db, r) == []
    conversion.convert_lead(db, team["reza"], lead, v,
                            customer={"name": "Parkco", "kind": "company"},
                            contact={"last_name": "Park"})
    assert [t["title"] for t in tasks(db)] == ["Onboard Parkco"]
    assert [x["status"] for x in runs_of(db, r)] == ["ok"]


# --- failures and loops -----------------------------------------------------------------------

def test_a_failing_rule_keeps_the_users_write_and_logs_the_failure(db, team):
    r = rule(db, team["admin"], actions=[
        {"kind": "set_field", "field": "notes", "value": "touched by the rule"},
        {"kind": "create_task", "title": "Call", "assignee": "user", "user_id": team["sam"].id,
         "due_days": 1}])
    auth.set_active(db, team["admin"], "sam", False)  # the task's assignee left
    lead = leads.create_lead(db, team["reza"], {"last_name": "Saved"})
    saved = records.get(db, team["reza"], leads.LEADS, lead)
    assert saved["last_name"] == "Saved"
    # nothing of the failed rule was written: the first action waited for the second's check
    assert saved["notes"] is None and tasks(db) == []
    [run] = runs_of(db, r)
    assert run["status"] == "failed" and "not an active user" in run["message"]
    # and the user's next writes work as before (the transaction was never aborted)
    leads.update_lead(db, team["reza"], lead, {"title": "CEO"}, saved["version"])
    assert records.get(db, team["reza"], leads.LEADS, lead)["title"] == "CEO"


def test_a_rule_whose_field_is_gone_fails_and_the_write_stands(db, team, monkeypatch):
    r = rule(db, team["admin"], conditions=[{"field": "company", "op": "eq", "value": "A"}])
    stored = rules.get_rule(db, team["admin"], r)
    stored.conditions[0]["field"] = "deleted_custom_field"  # e.g. a custom field removed
    rules._CACHE.clear()
    monkeypatch.setattr(rules, "_load", lambda cur: {"leads": [stored]})
    lead = leads.create_lead(db, team["reza"], {"last_name": "Still here", "company": "A"})
    assert db.scalar("SELECT last_name FROM leads WHERE id = $id", {"id": lead}) == "Still here"
    [run] = runs_of(db, r)
    assert run["status"] == "failed" and "deleted_custom_field" in run["message"]


def test_an_unexpected_error_in_an_action_is_logged_and_the_write_stands(db, team, monkeypatch):
    r = rule(db, team["admin"])

    def broken(*args, **kwargs):
        raise RuntimeError("the action broke")

    monkeypatch.setattr(activities, "insert_task", broken)
    lead = leads.create_lead(db, team["reza"], {"last_name": "Kept"})
    assert db.scalar("SELECT count(*) FROM leads WHERE id = $id", {"id": lead}) == 1
    [run] = runs_of(db, r)
    assert run["status"] == "failed" and "the action broke" in run["message"]


def test_rule_of_an_author_who_is_no_longer_admin_fails(db, team):
    auth.create_user(db, team["admin"], "eddie", "Ed Admin", None, "correct horse 42", "admin")
    ed = auth.get_user(db, "eddie")
    r = rule(db, ed)
    auth.set_active(db, team["admin"], "eddie", False)
    lead = leads.create_lead(db, team["reza"], {"last_name": "Z"})
    assert tasks(db) == []
    [run] = runs_of(db, r)
    assert run["status"] == "failed" and "no longer an active admin" in run["message"]
    assert db.scalar("SELECT count(*) FROM leads WHERE id = $id", {"id": lead}) == 1


def test_rules_that_start_each_other_stop_at_the_loop_limit(db, team):
    # a task rule that makes another task for the same lead: each new task starts it again
    r = rule(db, team["admin"], entity="tasks",
             actions=[{"kind": "create_task", "title": "again: {title}", "assignee": "owner",
                       "due_days": 1}])
    lead = leads.create_lead(db, team["reza"], {"last_name": "Loop"})
    activities.create_task(db, team["reza"], {"title": "first", "lead_id": lead,
                                              "owner_id": team["reza"].id})
    titles = [t["title"] for t in tasks(db)]
    assert titles == ["first", "again: first", "again: again: first",
                      "again: again: again: first"]
    # logged as each run ends: the deepest first
    logged = sorted((x["depth"], x["status"]) for x in runs_of(db, r))
    assert logged == [(0, "ok"), (1, "ok"), (2, "ok"), (3, "loop_limit")]
    assert "Loop limit reached" in runs_of(db, r)[0]["message"]


def test_only_admins_change_rules(db, team):
    with pytest.raises(PermissionDenied):
        rule(db, team["maria"])
    r = rule(db, team["admin"])
    with pytest.raises(PermissionDenied):
        rules.set_enabled(db, team["reza"], r, False)
    with pytest.raises(PermissionDenied):
        rules.list_rules(db, team["maria"])


def test_invalid_rule_reports_each_problem(db, team):
    with pytest.raises(ValidationError) as exc:
        rules.save_rule(db, team["admin"], {
            "name": "", "entity": "deals", "trigger": "date",
            "trigger_config": {"field": "title", "days": "-1", "when": "sideways"},
            "conditions": [{"field": "amount", "op": "gt", "value": "lots"}],
            "actions": [{"kind": "create_task", "title": "", "due_days": 1}]})
    assert set(exc.value.errors) >= {"name", "trigger.field", "trigger.days", "trigger.when",
                                     "condition.0", "action.0"}


# --- imports: bulk paths ----------------------------------------------------------------------

def test_bulk_insert_without_rules_costs_one_cached_lookup(db, team, monkeypatch):
    loads = []
    real = rules._load
    monkeypatch.setattr(rules, "_load", lambda cur: loads.append(1) or real(cur))
    for batch in range(3):
        with db.transaction() as cur:
            records.insert_many(cur, team["admin"], leads.LEADS,
                                [{"last_name": f"L{batch}-{i}"} for i in range(200)])
        with db.transaction() as cur:
            records.insert(cur, team["admin"], leads.LEADS, {"last_name": f"one {batch}"})
    assert len(loads) == 1  # read once, then served from the cache


def test_bulk_insert_and_update_run_the_rules(db, team):
    created = rule(db, team["admin"], conditions=[{"field": "source", "op": "eq",
                                                   "value": "event"}],
                   actions=[{"kind": "add_note", "subject": "Met at an event"}])
    changed = rule(db, team["admin"], trigger="changed", config={"field": "status",
                                                                 "to": "qualified"},
                   actions=[{"kind": "add_note", "subject": "Qualified"}])
    with db.transaction() as cur:
        ids = records.insert_many(cur, team["admin"], leads.LEADS, [
            {"last_name": "A", "source": "event"}, {"last_name": "B"},
            {"last_name": "C", "source": "event"}])
    assert [x["record_id"] for x in runs_of(db, created)] == [ids[0], ids[2]]
    with db.transaction() as cur:
        records.update_many(cur, team["admin"], leads.LEADS, [
            (ids[0], {"status": "qualified"}, 1), (ids[1], {"status": "contacted"}, 1)])
    assert [x["record_id"] for x in runs_of(db, changed)] == [ids[0]]


# --- date rules -------------------------------------------------------------------------------

def test_date_rule_fires_once_per_record_and_date(db, team, stage):
    r = rule(db, team["admin"], entity="deals", trigger="date",
             config={"field": "expected_close_date", "days": 3, "when": "before"},
             actions=[{"kind": "create_task", "title": "Closing soon: {title}",
                       "assignee": "owner", "due_days": 0}])
    today = date(2026, 6, 10)
    soon = deals.create_deal(db, team["reza"], {
        "title": "Soon", "stage_id": stage["Prospecting"],
        "expected_close_date": today + timedelta(days=3)})
    deals.create_deal(db, team["reza"], {"title": "Later", "stage_id": stage["Prospecting"],
                                         "expected_close_date": today + timedelta(days=30)})
    deals.create_deal(db, team["reza"], {"title": "Long ago", "stage_id": stage["Prospecting"],
                                         "expected_close_date": today - timedelta(days=60)})
    summary = rules.run_date_rules(db, today)
    assert (summary["ok"], summary["failed"]) == (1, 0)
    assert [t["title"] for t in tasks(db)] == ["Closing soon: Soon"]
    assert rules.run_date_rules(db, today)["ok"] == 0  # once per record per date
    assert rules.run_date_rules(db, today + timedelta(days=1))["ok"] == 0
    # the date moved: it fires for the new date
    v = records.get(db, team["reza"], deals.DEALS, soon)["version"]
    deals.update_deal(db, team["reza"], soon,
                      {"expected_close_date": today + timedelta(days=10)}, v)
    assert rules.run_date_rules(db, today + timedelta(days=7))["ok"] == 1
    assert len(tasks(db)) == 2 and len(runs_of(db, r)) == 2


def test_date_rule_catches_up_a_missed_day_but_not_old_history(db, team):
    rule(db, team["admin"], trigger="date",
         config={"field": "consent_date", "days": 365, "when": "after"},
         actions=[{"kind": "add_note", "subject": "Renew consent"}])
    today = date(2026, 6, 10)
    leads.create_lead(db, team["reza"], {"last_name": "Two days late", "consent": True,
                                         "consent_date": today - timedelta(days=367)})
    leads.create_lead(db, team["reza"], {"last_name": "Years ago", "consent": True,
                                         "consent_date": today - timedelta(days=1000)})
    assert rules.run_date_rules(db, today)["ok"] == 1


def test_run_daily_once_per_day(db, team):
    rule(db, team["admin"], trigger="date",
         config={"field": "created_at", "days": 0, "when": "after"})
    leads.create_lead(db, team["reza"], {"last_name": "Today"})
    assert rules.run_daily_if_due(db)["ok"] == 1
    assert rules.run_daily_if_due(db) is None
    rules._DAILY.clear()  # another process the same day: the settings table remembers
    assert rules.run_daily_if_due(db) is None
    assert db.scalar("SELECT value FROM settings WHERE key = 'rules_last_run_day'") == \
        date.today().isoformat()


def test_run_rules_command(tmp_path, capsys, monkeypatch):
    from crm.db import Database

    monkeypatch.setenv("CRM_BCRYPT_ROUNDS", "4")
    path = tmp_path / "cli.duckdb"
    db = Database(path)
    auth.create_user(db, None, "admin", "Ada Admin", None, "correct horse 42", "admin")
    admin = auth.get_user(db, "admin")
    rule(db, admin, trigger="date", config={"field": "created_at", "days": 0,
                                             "when": "after"})
    leads.create_lead(db, admin, {"last_name": "Due"})
    db.close()
    assert main(["run-rules", "--db", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 runs done, 0 failed" in out
    assert main(["run-rules", "--db", str(path)]) == 0
    assert "0 runs done" in capsys.readouterr().out
    # a failing run: non-zero exit and one line saying why
    db = Database(path)
    leads.create_lead(db, admin, {"last_name": "Due too"})
    auth.create_user(db, admin, "other", "Other Admin", None, "correct horse 42", "admin")
    with db.transaction() as cur:  # the author is demoted: the rule cannot run
        cur.execute("UPDATE users SET role = 'rep' WHERE username = 'admin'")
    db.close()
    rules.invalidate()
    assert main(["run-rules", "--db", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: 1 rule runs failed")
    assert main(["run-rules", "--db", str(path), "--date", "tomorrow"]) == 1
    assert "--date must be a date" in capsys.readouterr().err


def test_deals_moved_by_deleting_their_stage_run_the_rules(db, team, stage):
    r = rule(db, team["admin"], entity="deals", trigger="changed",
             config={"field": "stage_id", "to": f"#{stage['Negotiation']}"},
             actions=[{"kind": "add_note", "subject": "Now negotiating {title}"}])
    live = deals.create_deal(db, team["reza"], {"title": "Live", "stage_id": stage["Proposal"]})
    trashed = deals.create_deal(db, team["reza"], {"title": "Trashed",
                                                   "stage_id": stage["Proposal"]})
    deals.delete_deal(db, team["reza"], trashed)
    pipelines.delete_stage(db, team["admin"], stage["Proposal"],
                           move_deals_to=stage["Negotiation"])
    assert [x["record_id"] for x in runs_of(db, r)] == [live]  # not the one in the trash
    assert db.scalar("SELECT subject FROM activities WHERE deal_id = $d", {"d": live}) == \
        "Now negotiating Live"


def test_rules_change_records_others_reference_in_the_transaction_that_made_them(db, team,
                                                                                 stage):
    """DuckDB refuses some updates of rows other tables reference; a rule's set field and
    owner on a deal or customer just inserted (and referenced since) must work."""
    rule(db, team["admin"], entity="deals", actions=[
        {"kind": "set_field", "field": "next_step", "value": "Send the proposal"},
        {"kind": "assign_owner", "mode": "round_robin", "user_ids": [team["sam"].id]}])
    rule(db, team["admin"], entity="customers", actions=[
        {"kind": "set_field", "field": "segment", "value": "small_business"}])
    acme = customers.create_customer(db, team["maria"], {"name": "Acme"})
    customers.add_contact(db, team["maria"], acme, {"last_name": "Park"})
    deal = deals.create_deal(db, team["maria"], {"title": "D", "customer_id": acme,
                                                 "stage_id": stage["Prospecting"]})
    row = records.get(db, team["admin"], deals.DEALS, deal)
    assert (row["next_step"], row["owner_id"]) == ("Send the proposal", team["sam"].id)
    assert db.scalar("SELECT segment FROM customers WHERE id = $id", {"id": acme}) == "small_business"
    deals.move_deal(db, team["sam"], deal, stage["Won"])  # still movable afterwards
    assert db.scalar("SELECT count(*) FROM rule_runs WHERE status <> 'ok'") == 0


def test_when_the_database_aborts_a_rules_statement_the_write_still_stands(db, team,
                                                                            monkeypatch):
    """The last resort: planning exists so that this does not happen, but if a statement of
    a rule fails in the database, the user's write still stands: on PostgreSQL the rule's
    statements are undone back to a savepoint; on DuckDB (no SAVEPOINT: the whole transaction
    is aborted) the save runs again without that rule. The failure is logged once, and the
    other rules of the save run as usual."""
    r = rule(db, team["admin"], name="Broken")
    other = rule(db, team["admin"], name="Fine", actions=[
        {"kind": "set_field", "field": "notes", "value": "set by the other rule"}])
    calls = []

    def failing_statement(cur, user, values):
        calls.append(1)
        cur.execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(activities, "insert_task", failing_statement)
    lead = leads.create_lead(db, team["reza"], {"last_name": "Kept"})
    row = records.get(db, team["reza"], leads.LEADS, lead)
    assert (row["last_name"], row["notes"]) == ("Kept", "set by the other rule")
    assert db.scalar("SELECT count(*) FROM leads") == 1 and calls == [1]
    [run] = runs_of(db, r)
    assert run["status"] == "failed" and "no_such_table" in run["message"]
    assert [x["status"] for x in runs_of(db, other)] == ["ok"]
    # an update too, and the next save runs the rule again (it is not switched off)
    rule(db, team["admin"], name="Broken on change", trigger="changed",
         config={"field": "title"})
    saved = leads.update_lead(db, team["reza"], lead, {"title": "CEO"}, row["version"])
    assert saved["title"] == "CEO"
    leads.create_lead(db, team["reza"], {"last_name": "Next"})
    assert len(calls) == 3 and [x["status"] for x in runs_of(db, r)] == ["failed", "failed"]
    # the activity and task commands, surveys and complaints are run again too
    on_activity = rule(db, team["admin"], entity="activities", name="Broken on activity")
    activity = activities.log_activity(db, team["reza"], {"kind": "call", "subject": "Hi",
                                                         "lead_id": lead})
    assert db.scalar("SELECT subject FROM activities WHERE id = $i", {"i": activity}) == "Hi"
    assert [x["status"] for x in runs_of(db, on_activity)] == ["failed"]


def test_an_import_whose_rule_aborts_the_transaction_is_refused_on_duckdb(db, team,
                                                                          monkeypatch):
    """An import is not run again (on DuckDB its rows would all go through once more): a rule
    that aborts its transaction refuses it with a clear message there; PostgreSQL undoes the
    rule alone and the import stands."""
    from crm import importer

    r = rule(db, team["admin"])

    def failing_statement(cur, user, values):
        cur.execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(activities, "insert_task", failing_statement)
    source = importer.read(b"Last Name\nImported\n", "in.csv")
    plan = importer.plan(db, team["admin"], leads.LEADS, source,
                         importer.propose_mapping(leads.LEADS, source.headers))
    if db.engine == "duckdb":
        with pytest.raises(importer.ImportFileError) as exc:  # the import's refusal
            importer.execute(db, team["admin"], plan)
        assert f"Automation rule #{r} failed" in str(exc.value)
        assert db.scalar("SELECT count(*) FROM leads") == 0
    else:
        importer.execute(db, team["admin"], plan)
        assert db.scalar("SELECT count(*) FROM leads") == 1
    [run] = runs_of(db, r)
    assert run["status"] == "failed" and "no_such_table" in run["message"]


@pytest.mark.duckdb_only  # the fast path reads with DuckDB's read_csv
def test_the_importers_set_based_fast_path_runs_the_rules_too(db, team):
    from crm import importer

    r = rule(db, team["admin"], conditions=[{"field": "estimated_value", "op": "gt",
                                             "value": "1000"}],
             actions=[{"kind": "add_note", "subject": "Big lead {last_name}"}])
    source = importer.read(b"Last Name,Estimated value\nSmall,10\nBig,5000\nHuge,90000\n",
                           "leads.csv", fast=True)
    plan = importer.plan(db, team["admin"], leads.LEADS, source,
                         importer.propose_mapping(leads.LEADS, source.headers))
    assert plan.staged  # the set-based way
    importer.execute(db, team["admin"], plan)
    notes = [n["subject"] for n in db.query("SELECT subject FROM activities ORDER BY id")]
    assert notes == ["Big lead Big", "Big lead Huge"]
    assert [x["status"] for x in runs_of(db, r)] == ["ok", "ok"]


def test_set_field_follows_the_fields_own_rules(db, team):
    """A birthday is kept only for an individual (the spec's only_when), by rules too."""
    rule(db, team["admin"], entity="customers", actions=[
        {"kind": "set_field", "field": "birthday", "value": "1990-05-01"}])
    person = customers.create_customer(db, team["reza"], {"name": "Ana", "kind": "individual"})
    firm = customers.create_customer(db, team["reza"], {"name": "Acme", "kind": "company"})
    assert db.scalar("SELECT birthday FROM customers WHERE id = $i", {"i": person}) == \
        date(1990, 5, 1)
    assert db.scalar("SELECT birthday FROM customers WHERE id = $i", {"i": firm}) is None
    assert db.scalar("SELECT count(*) FROM rule_runs WHERE status <> 'ok'") == 0
