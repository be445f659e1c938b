"""Pipelines, deals, stage moves and their history, activities, tasks, lead conversion."""
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from crm import activities, audit, conversion, customers, deals, leads, pipelines, records
from crm.auth import PermissionDenied
from crm.fields import ValidationError


@pytest.fixture
def stage(db):
    pid = pipelines.default_pipeline_id(db)
    return {s["name"]: s for s in pipelines.stages_of(db, pid)}


@pytest.fixture
def acme(db, team):
    return customers.create_customer(db, team["reza"], {"name": "Acme", "kind": "company"})


def new_deal(db, user, stage, **values):
    return deals.create_deal(db, user, {"title": "Big one", "amount": "1000",
                                        "stage_id": stage["Prospecting"]["id"], **values})


def history(db, user, deal_id):
    return [(h["from_stage"], h["to_stage"], h["probability"])
            for h in deals.stage_history(db, user, deal_id)]


def test_default_pipeline_exists_from_the_start(db, stage):
    assert [(n, s["probability"], s["kind"]) for n, s in stage.items()] == [
        ("Prospecting", 10, "open"), ("Qualification", 25, "open"), ("Proposal", 50, "open"),
        ("Negotiation", 75, "open"), ("Won", 100, "won"), ("Lost", 0, "lost")]


def test_create_records_the_first_stage_in_history(db, team, stage, acme):
    deal_id = new_deal(db, team["reza"], stage, customer_id=acme)
    deal = records.get(db, team["reza"], deals.DEALS, deal_id)
    assert deal["pipeline_id"] == stage["Prospecting"]["pipeline_id"]
    assert deal["owner_id"] == team["reza"].id
    assert history(db, team["reza"], deal_id) == [(None, "Prospecting", 10)]


def test_move_writes_history_audit_and_resets_probability(db, team, stage):
    deal_id = new_deal(db, team["reza"], stage, probability=40)
    moved = deals.move_deal(db, team["reza"], deal_id, stage["Proposal"]["id"])
    assert moved["stage_id"] == stage["Proposal"]["id"]
    assert moved["probability"] is None  # the stage's 50 applies again
    assert moved["version"] == 2
    assert history(db, team["reza"], deal_id) == [(None, "Prospecting", 40),  # its override
                                                  ("Prospecting", "Proposal", 50)]
    entry = audit.history(db, "deals", deal_id)[0]
    assert entry["action"] == "move"
    assert entry["changes"]["stage_id"] == [stage["Prospecting"]["id"], stage["Proposal"]["id"]]


def test_moving_to_the_same_stage_changes_nothing(db, team, stage):
    deal_id = new_deal(db, team["reza"], stage)
    deals.move_deal(db, team["reza"], deal_id, stage["Prospecting"]["id"])
    assert len(history(db, team["reza"], deal_id)) == 1


def test_lost_needs_a_reason_and_keeps_the_competitor(db, team, stage):
    deal_id = new_deal(db, team["reza"], stage)
    with pytest.raises(ValidationError) as exc:
        deals.move_deal(db, team["reza"], deal_id, stage["Lost"]["id"])
    assert "lost_reason" in exc.value.errors
    assert len(history(db, team["reza"], deal_id)) == 1  # nothing half-written
    lost = deals.move_deal(db, team["reza"], deal_id, stage["Lost"]["id"], lost_reason="price",
                           competitor="Rival Inc")
    assert (lost["lost_reason"], lost["lost_to_competitor"]) == ("price", "Rival Inc")
    assert lost["closed_on"] == date.today()
    reopened = deals.move_deal(db, team["reza"], deal_id, stage["Qualification"]["id"])
    assert reopened["lost_reason"] is None and reopened["closed_on"] is None


def test_won_sets_the_close_date(db, team, stage):
    deal_id = new_deal(db, team["reza"], stage)
    assert deals.move_deal(db, team["reza"], deal_id, stage["Won"]["id"])["closed_on"] == \
        date.today()


def test_reps_move_only_their_own_deals_viewers_none(db, team, stage):
    deal_id = new_deal(db, team["reza"], stage)
    for who in ("sam", "vic"):
        with pytest.raises(PermissionDenied):
            deals.move_deal(db, team[who], deal_id, stage["Proposal"]["id"])
    deals.move_deal(db, team["maria"], deal_id, stage["Proposal"]["id"])
    with pytest.raises(PermissionDenied):
        new_deal(db, team["vic"], stage)


def test_time_in_stage_comes_from_history():
    t0 = datetime(2026, 1, 1, 9)
    moves = [{"changed_at": t0, "to_stage": "A"},
             {"changed_at": t0 + timedelta(days=2), "to_stage": "B"}]
    spans = deals.time_in_stages(moves, now=t0 + timedelta(days=5, hours=12))
    assert [(m["to_stage"], m["days"]) for m in spans] == [("A", 2.0), ("B", 3.5)]


def test_board_totals_come_from_all_deals_and_cards_are_capped(db, team, stage, acme):
    for amount in (100, 200, 300):
        new_deal(db, team["reza"], stage, amount=str(amount), customer_id=acme)
    new_deal(db, team["sam"], stage, amount="1000", stage_id=stage["Proposal"]["id"],
             probability=20)
    pid = stage["Prospecting"]["pipeline_id"]
    cols = {c["name"]: c for c in deals.board(db, team["maria"], pid, per_stage=2)}
    assert (cols["Prospecting"]["count"], cols["Prospecting"]["total"]) == (3, 600.0)
    assert cols["Prospecting"]["weighted"] == pytest.approx(60.0)
    assert [c["amount"] for c in cols["Prospecting"]["cards"]] == [300.0, 200.0]
    assert cols["Prospecting"]["more"] == 1
    assert cols["Proposal"]["weighted"] == pytest.approx(200.0)  # the deal's own 20 %
    mine = {c["name"]: c for c in deals.board(db, team["sam"], pid)}
    assert mine["Prospecting"]["count"] == 0 and mine["Proposal"]["count"] == 1
    found = {c["name"]: c for c in deals.board(db, team["maria"], pid, search="acme")}
    assert found["Prospecting"]["count"] == 3 and found["Proposal"]["count"] == 0


def test_board_flags_rotting_and_overdue(db, team, stage):
    deal_id = new_deal(db, team["reza"], stage)
    pid = stage["Prospecting"]["pipeline_id"]
    now = datetime.now()
    # Prospecting rots after 14 days: pretend the deal entered it 15 days ago
    db.query("UPDATE deals SET stage_entered_at = $t WHERE id = $id",
             {"t": now - timedelta(days=15), "id": deal_id})
    card = deals.board(db, team["reza"], pid, now=now)[0]["cards"][0]
    assert card["rotting"] and not card["overdue"] and card["days_in_stage"] == 15
    activities.log_activity(db, team["reza"], {"kind": "call", "subject": "Checked in",
                                               "deal_id": deal_id,
                                               "occurred_at": now - timedelta(days=1)})
    activities.create_task(db, team["reza"], {"title": "Send offer", "deal_id": deal_id,
                                              "due_at": now - timedelta(hours=1)})
    card = deals.board(db, team["reza"], pid, now=now)[0]["cards"][0]
    assert not card["rotting"] and card["overdue"]


def test_deleting_a_stage_with_deals_needs_a_target(db, team, stage):
    deal_id = new_deal(db, team["reza"], stage)
    with pytest.raises(ValidationError):
        pipelines.delete_stage(db, team["admin"], stage["Prospecting"]["id"])
    with pytest.raises(PermissionDenied):
        pipelines.delete_stage(db, team["maria"], stage["Prospecting"]["id"],
                               stage["Qualification"]["id"])
    moved = pipelines.delete_stage(db, team["admin"], stage["Prospecting"]["id"],
                                   move_deals_to=stage["Qualification"]["id"])
    assert moved == 1
    assert history(db, team["admin"], deal_id)[-1] == ("Prospecting", "Qualification", 25)
    pid = stage["Prospecting"]["pipeline_id"]
    assert "Prospecting" not in [s["name"] for s in pipelines.stages_of(db, pid)]


def test_admin_edits_pipelines_and_stages(db, team, stage):
    pid = pipelines.create_pipeline(db, team["admin"], "Renewals")
    stages = pipelines.stages_of(db, pid)
    assert [s["name"] for s in stages][:2] == ["Prospecting", "Qualification"]
    new = pipelines.add_stage(db, team["admin"], pid, {"name": "Demo", "probability": 40,
                                                       "rotting_days": 5, "kind": "open",
                                                       "forecast_category": "best_case"})
    names = [s["name"] for s in pipelines.stages_of(db, pid)]
    assert names.index("Demo") == names.index("Won") - 1  # before the closing stages
    pipelines.move_stage(db, team["admin"], new, -1)
    assert [s["name"] for s in pipelines.stages_of(db, pid)].index("Demo") == 3
    pipelines.update_stage(db, team["admin"], new, {"name": "Live demo", "probability": 45})
    assert pipelines.get_stage(db, new)["probability"] == 45
    with pytest.raises(ValidationError):
        pipelines.update_stage(db, team["admin"], new, {"probability": 120})
    with pytest.raises(ValidationError):
        pipelines.create_pipeline(db, team["admin"], "renewals")


def test_deal_links_are_checked(db, team, stage, acme):
    other = customers.create_customer(db, team["admin"], {"name": "Other"})
    contact = customers.add_contact(db, team["admin"], other, {"last_name": "Elsewhere"})
    with pytest.raises(ValidationError) as exc:
        new_deal(db, team["admin"], stage, customer_id=acme, contact_id=contact)
    assert "another customer" in exc.value.errors["contact_id"]
    with pytest.raises(PermissionDenied):  # sam cannot see reza's customer
        new_deal(db, team["sam"], stage, customer_id=acme)


def test_updating_a_referenced_deal_works(db, team, stage, acme):
    deal_id = new_deal(db, team["reza"], stage, customer_id=acme)
    activities.log_activity(db, team["reza"], {"kind": "note", "subject": "n", "deal_id": deal_id})
    row = deals.update_deal(db, team["reza"], deal_id, {"amount": "2500", "next_step": "Call",
                                                        "owner_id": team["reza"].id}, 1)
    assert row["amount"] == Decimal("2500.00") and row["next_step"] == "Call"
    deals.move_deal(db, team["reza"], deal_id, stage["Won"]["id"])
    deals.delete_deal(db, team["reza"], deal_id)
    deals.restore_deal(db, team["reza"], deal_id)


def test_activities_need_a_visible_link_and_touch_the_deal(db, team, stage):
    deal_id = new_deal(db, team["reza"], stage)
    with pytest.raises(ValidationError):
        activities.log_activity(db, team["reza"], {"kind": "call", "subject": "Nowhere"})
    with pytest.raises(PermissionDenied):
        activities.log_activity(db, team["sam"], {"kind": "call", "subject": "x",
                                                  "deal_id": deal_id})
    when = datetime(2026, 3, 1, 10, 30)
    activities.log_activity(db, team["reza"], {"kind": "meeting", "subject": "Kick-off",
                                               "deal_id": deal_id, "occurred_at": when,
                                               "duration_minutes": 45})
    assert records.get(db, team["reza"], deals.DEALS, deal_id)["last_activity_at"] == when
    [entry] = activities.timeline(db, team["reza"], "deal_id", deal_id)
    assert (entry["kind"], entry["subject"], entry["duration_minutes"]) == (
        "meeting", "Kick-off", 45)


def test_my_tasks_are_grouped_and_completing_logs_an_activity(db, team, stage):
    deal_id = new_deal(db, team["reza"], stage)
    now = datetime(2026, 5, 10, 12, 0)
    for title, due in [("late", now - timedelta(hours=3)), ("today", now + timedelta(hours=3)),
                       ("later", now + timedelta(days=2)), ("someday", None)]:
        activities.create_task(db, team["reza"], {"title": title, "due_at": due,
                                                  "deal_id": deal_id})
    groups = activities.my_tasks(db, team["reza"], now=now)
    assert {k: [t["title"] for t in v] for k, v in groups.items()} == {
        "overdue": ["late"], "today": ["today"], "upcoming": ["later", "someday"]}
    assert groups["overdue"][0]["related"] == "Big one"
    late = groups["overdue"][0]["id"]
    activities.complete_task(db, team["reza"], late, log={"kind": "call", "outcome": "completed"})
    assert [t["title"] for t in activities.my_tasks(db, team["reza"], now=now)["overdue"]] == []
    assert activities.timeline(db, team["reza"], "deal_id", deal_id)[0]["subject"] == "late"
    assert activities.my_tasks(db, team["sam"], now=now)["upcoming"] == []


def qualified_lead(db, user, **values):
    return leads.create_lead(db, user, {"first_name": "Shirin", "last_name": "Tehrani",
                                        "company": "Persepolis Trading", "status": "qualified",
                                        "email": "shirin@persepolis.ir",
                                        "estimated_value": "5000", **values})


def test_duplicates_are_offered_by_email_domain_and_name(db, team):
    same_domain = customers.create_customer(db, team["admin"], {
        "name": "Persepolis Trading Co", "kind": "company", "email": "info@persepolis.ir"})
    similar = customers.create_customer(db, team["admin"], {"name": "Persepolis Tradng",
                                                            "kind": "company"})
    customers.create_customer(db, team["admin"], {"name": "Unrelated Ltd"})
    lead = records.get(db, team["admin"], leads.LEADS, qualified_lead(db, team["admin"]))
    found = {c["id"]: c["reason"] for c in conversion.duplicate_candidates(db, team["admin"],
                                                                           lead)}
    assert found == {same_domain: "same email domain", similar: "similar name"}


def test_free_mail_domains_are_not_duplicates(db, team):
    customers.create_customer(db, team["admin"], {"name": "Someone Else", "kind": "company",
                                                  "email": "else@gmail.com"})
    lead = records.get(db, team["admin"], leads.LEADS,
                       qualified_lead(db, team["admin"], email="shirin@gmail.com"))
    assert conversion.duplicate_candidates(db, team["admin"], lead) == []


def test_conversion_creates_customer_contact_deal_in_one_step(db, team, stage):
    lead_id = qualified_lead(db, team["reza"])
    lead = records.get(db, team["reza"], leads.LEADS, lead_id)
    made = conversion.convert_lead(
        db, team["reza"], lead_id, lead["version"],
        customer=conversion.customer_values(lead), contact=conversion.contact_values(lead),
        deal=conversion.deal_values(lead, stage["Qualification"]["id"]))
    customer = records.get(db, team["reza"], customers.CUSTOMERS, made["customer_id"])
    assert (customer["name"], customer["kind"]) == ("Persepolis Trading", "company")
    [contact] = customers.contacts_of(db, team["reza"], made["customer_id"])
    assert contact["id"] == made["contact_id"] and contact["email"] == "shirin@persepolis.ir"
    deal = records.get(db, team["reza"], deals.DEALS, made["deal_id"])
    assert (deal["customer_id"], deal["amount"], deal["lead_id"]) == (
        made["customer_id"], Decimal("5000.00"), lead_id)
    lead = records.get(db, team["reza"], leads.LEADS, lead_id)
    assert lead["status"] == "converted"
    assert (lead["converted_customer_id"], lead["converted_contact_id"],
            lead["converted_deal_id"]) == (made["customer_id"], made["contact_id"],
                                           made["deal_id"])


def test_conversion_can_link_to_an_existing_customer(db, team):
    existing = customers.create_customer(db, team["admin"], {"name": "Persepolis Trading"})
    lead_id = qualified_lead(db, team["admin"])
    lead = records.get(db, team["admin"], leads.LEADS, lead_id)
    made = conversion.convert_lead(db, team["admin"], lead_id, lead["version"],
                                   customer_id=existing,
                                   contact=conversion.contact_values(lead))
    assert made["customer_id"] == existing and made["deal_id"] is None
    assert db.scalar("SELECT count(*) FROM customers") == 1


def test_conversion_is_all_or_nothing(db, team, stage):
    lead_id = qualified_lead(db, team["admin"])
    lead = records.get(db, team["admin"], leads.LEADS, lead_id)
    with pytest.raises(ValidationError):  # the deal is invalid: nothing else may remain
        conversion.convert_lead(db, team["admin"], lead_id, lead["version"],
                                customer=conversion.customer_values(lead),
                                contact=conversion.contact_values(lead),
                                deal={"title": "", "stage_id": stage["Proposal"]["id"]})
    assert db.scalar("SELECT count(*) FROM customers") == 0
    assert db.scalar("SELECT count(*) FROM contacts") == 0
    assert records.get(db, team["admin"], leads.LEADS, lead_id)["status"] == "qualified"


def test_only_qualified_leads_convert(db, team):
    lead_id = qualified_lead(db, team["admin"], status="new")
    lead = records.get(db, team["admin"], leads.LEADS, lead_id)
    with pytest.raises(ValidationError, match="qualified"):
        conversion.convert_lead(db, team["admin"], lead_id, lead["version"],
                                customer=conversion.customer_values(lead))


def test_line_items_set_the_amount(db, team, stage):
    deal_id = new_deal(db, team["reza"], stage, amount="999")
    first = deals.add_line_item(db, team["reza"], deal_id, {"description": "Licences",
                                                            "quantity": 10, "unit_price": "120"})
    deals.add_line_item(db, team["reza"], deal_id, {"description": "Training", "quantity": "2",
                                                    "unit_price": "450.50"})
    assert records.get(db, team["reza"], deals.DEALS, deal_id)["amount"] == Decimal("2101.00")
    deals.remove_line_item(db, team["reza"], first)
    assert records.get(db, team["reza"], deals.DEALS, deal_id)["amount"] == Decimal("901.00")
    with pytest.raises(ValidationError):
        deals.add_line_item(db, team["reza"], deal_id, {"description": "x", "quantity": 0,
                                                        "unit_price": "1"})
    with pytest.raises(PermissionDenied):
        deals.add_line_item(db, team["sam"], deal_id, {"description": "x", "quantity": 1,
                                                       "unit_price": "1"})
    assert [i["description"] for i in deals.line_items(db, team["reza"], deal_id)] == [
        "Training"]


def test_board_never_adds_up_different_currencies(db, team, stage):
    new_deal(db, team["reza"], stage, amount="100", currency="USD")
    new_deal(db, team["reza"], stage, amount="7", currency="EUR")
    pid = stage["Prospecting"]["pipeline_id"]
    assert deals.board_currencies(db, team["reza"], pid) == {"USD": 1, "EUR": 1}
    usd = deals.board(db, team["reza"], pid, currency="USD")[0]
    assert (usd["count"], usd["total"], usd["currency"]) == (1, 100.0, "USD")


def test_closed_columns_show_recent_closes_only(db, team, stage):
    deal_id = new_deal(db, team["reza"], stage)
    deals.move_deal(db, team["reza"], deal_id, stage["Won"]["id"])
    pid = stage["Prospecting"]["pipeline_id"]
    won = lambda now: {c["name"]: c for c in deals.board(db, team["reza"], pid, now=now)}["Won"]
    assert won(datetime.now())["count"] == 1
    assert won(datetime.now() + timedelta(days=deals.CLOSED_DAYS + 1))["count"] == 0


def test_deleting_a_stage_moves_its_deals_like_a_move(db, team, stage):
    lost = new_deal(db, team["reza"], stage)
    deals.move_deal(db, team["reza"], lost, stage["Lost"]["id"], lost_reason="price")
    won = new_deal(db, team["reza"], stage)
    deals.move_deal(db, team["reza"], won, stage["Won"]["id"])
    with pytest.raises(ValidationError, match="lost stage in bulk"):
        pipelines.delete_stage(db, team["admin"], stage["Won"]["id"],
                               move_deals_to=stage["Lost"]["id"])
    pipelines.delete_stage(db, team["admin"], stage["Lost"]["id"],
                           move_deals_to=stage["Qualification"]["id"])
    reopened = records.get(db, team["reza"], deals.DEALS, lost)
    assert (reopened["stage_id"], reopened["lost_reason"], reopened["closed_on"]) == (
        stage["Qualification"]["id"], None, None)
    assert history(db, team["reza"], lost)[-1] == ("Lost", "Qualification", 25)
    assert audit.history(db, "deals", lost)[0]["action"] == "move"


def test_rename_keeps_pipeline_names_unique(db, team):
    pid = pipelines.create_pipeline(db, team["admin"], "Renewals")
    with pytest.raises(ValidationError):
        pipelines.rename_pipeline(db, team["admin"], pid, "new BUSINESS")


def test_a_planned_meeting_does_not_count_as_a_touch(db, team, stage):
    deal_id = new_deal(db, team["reza"], stage)
    activities.log_activity(db, team["reza"], {"kind": "meeting", "subject": "Next week",
                                               "deal_id": deal_id,
                                               "occurred_at": datetime.now() + timedelta(days=7)})
    assert records.get(db, team["reza"], deals.DEALS, deal_id)["last_activity_at"] is None


def test_task_groups_are_capped_but_counted(db, team, stage):
    deal_id = new_deal(db, team["reza"], stage)
    now = datetime(2026, 5, 10, 12, 0)
    for i in range(5):
        activities.create_task(db, team["reza"], {"title": f"late {i}", "deal_id": deal_id,
                                                  "due_at": now - timedelta(days=i + 1)})
    activities.create_task(db, team["reza"], {"title": "today", "deal_id": deal_id,
                                              "due_at": now + timedelta(hours=1)})
    groups = activities.my_tasks(db, team["reza"], now=now, limit=2)
    assert [t["title"] for t in groups["overdue"]] == ["late 4", "late 3"]
    assert [t["title"] for t in groups["today"]] == ["today"]
    assert activities.my_task_counts(db, team["reza"], now=now) == {
        "overdue": 5, "today": 1, "upcoming": 0}
