"""Issue 6, data layer: stage deletion and trashed deals, customer base from won deals, read
functions that check access, forged cookies, dates beyond what forms accept."""
import itertools
from datetime import date, datetime, timedelta

import jwt
import pytest

from crm import activities, customers, dashboard, deals, pipelines, records, settings
from crm.auth import PermissionDenied
from crm.fields import Field, ValidationError, convert
from crm.ui import cookie

KEY = "k" * 40


@pytest.fixture
def stage(db):
    return {s["name"]: s for s in pipelines.stages_of(db, pipelines.default_pipeline_id(db))}


def deal(db, user, stage, name="Prospecting", **values):
    return deals.create_deal(db, user, {"title": "A deal", "amount": "100",
                                        "stage_id": stage[name]["id"], **values})


# --- 4: deleting a stage never leaves trashed deals behind ---------------------------------

def test_a_stage_holding_only_trashed_deals_needs_a_target_and_moves_them(db, team, stage):
    admin = team["admin"]
    trashed = deal(db, admin, stage, "Qualification")
    deals.delete_deal(db, admin, trashed)
    with pytest.raises(ValidationError) as refused:
        pipelines.delete_stage(db, admin, stage["Qualification"]["id"])
    assert "trash" in refused.value.errors["move_deals_to"]
    assert pipelines.delete_stage(db, admin, stage["Qualification"]["id"],
                                  move_deals_to=stage["Proposal"]["id"]) == 1
    deals.restore_deal(db, admin, trashed)
    restored = records.get(db, admin, deals.DEALS, trashed)
    assert restored["stage_id"] == stage["Proposal"]["id"]


def test_a_deal_left_in_a_deleted_stage_can_still_be_moved(db, team, stage):
    admin = team["admin"]
    orphan = deal(db, admin, stage, "Qualification")
    # as older versions left it: the stage deleted under the deal
    with db.transaction() as cur:
        cur.execute("UPDATE stages SET deleted_at = now() WHERE id = $s",
                    {"s": stage["Qualification"]["id"]})
    moved = deals.move_deal(db, admin, orphan, stage["Proposal"]["id"])
    assert moved["stage_id"] == stage["Proposal"]["id"]
    last = deals.stage_history(db, admin, orphan)[-1]
    assert (last["from_stage"], last["to_stage"]) == ("Qualification", "Proposal")


# --- 5: customer base = ever bought (won deals), installed base by the chosen rule ----------

def test_customer_base_counts_won_deals_and_typed_first_purchases(db, team, stage):
    admin = team["admin"]
    winner = customers.create_customer(db, admin, {"name": "Won Co"})
    typed = customers.create_customer(db, admin, {"name": "Old Co",
                                                  "first_purchase_date": "2019-05-01"})
    customers.create_customer(db, admin, {"name": "Never Co"})
    lost = customers.create_customer(db, admin, {"name": "Lost Co"})
    won_deal = deal(db, admin, stage, customer_id=winner)
    deals.move_deal(db, admin, won_deal, stage["Won"]["id"])
    lost_deal = deal(db, admin, stage, customer_id=lost)
    deals.move_deal(db, admin, lost_deal, stage["Lost"]["id"], lost_reason="price")
    deal(db, admin, stage, customer_id=lost)  # open: not a purchase

    numbers = dashboard.home_numbers(db, admin)
    assert (numbers["customer_base"], numbers["installed_base"], numbers["customers"]) == (2, 2, 4)
    assert customers.purchases(db, admin, winner)["first_purchase"] == date.today()
    assert customers.purchases(db, admin, typed)["first_purchase"] == date(2019, 5, 1)
    assert customers.purchases(db, admin, lost)["first_purchase"] is None

    # a trashed won deal is no purchase
    deals.delete_deal(db, admin, won_deal)
    assert dashboard.home_numbers(db, admin)["customer_base"] == 1


def test_installed_base_follows_the_rule_an_admin_chooses(db, team, stage):
    admin = team["admin"]
    recent = customers.create_customer(db, admin, {"name": "Recent", "status": "inactive"})
    old = customers.create_customer(db, admin, {"name": "Old", "status": "active"})
    for customer in (recent, old):
        deals.move_deal(db, admin, deal(db, admin, stage, customer_id=customer),
                        stage["Won"]["id"])
    with db.transaction() as cur:
        cur.execute("UPDATE deals SET closed_on = $d WHERE customer_id = $c",
                    {"d": date.today() - timedelta(days=400), "c": old})

    def installed(**chosen):
        settings.save(db, admin, chosen)
        return customers.base_counts(db, admin)

    assert installed(installed_base_rule="active_status")["installed_base"] == 1  # old
    by_purchase = installed(installed_base_rule="recent_purchase", installed_base_months=12)
    assert by_purchase["installed_base"] == 1  # recent
    assert "won deal in the last 12 months" in by_purchase["installed_base_rule"]
    assert installed(installed_base_months=14)["installed_base"] == 2
    assert installed(installed_base_rule="active_and_recent")["installed_base"] == 1  # old
    assert customers.base_counts(db, admin)["customer_base"] == 2


def test_only_admins_change_settings_and_values_are_checked(db, team):
    with pytest.raises(PermissionDenied):
        settings.save(db, team["maria"], {"installed_base_months": 3})
    with pytest.raises(ValidationError):
        settings.save(db, team["admin"], {"installed_base_months": 0})
    assert settings.get_all(db)["installed_base_months"] == 12


# --- 10: read functions check access themselves --------------------------------------------

def test_reps_cannot_read_what_hangs_on_other_reps_records(db, team, stage):
    reza, sam = team["reza"], team["sam"]
    secret = customers.create_customer(db, sam, {"name": "Sams secret"})
    contact = customers.add_contact(db, sam, secret, {"last_name": "Hidden"})
    activities.log_activity(db, sam, {"subject": "private call", "customer_id": secret})
    activities.create_task(db, sam, {"title": "private task", "customer_id": secret})

    for read in (activities.timeline, activities.tasks_for):
        with pytest.raises(PermissionDenied):
            read(db, reza, "customer_id", secret)
        assert read(db, sam, "customer_id", secret)
    assert secret not in customers.customer_choices(db, reza, include=secret)
    assert secret in customers.customer_choices(db, sam, include=secret)
    assert records.ref_label(db, reza, "customers", secret) == f"#{secret}"
    assert records.ref_label(db, sam, "customers", secret) == "Sams secret"
    assert records.ref_label(db, reza, "stages", stage["Won"]["id"]) == "Won"
    with pytest.raises(PermissionDenied):
        deal(db, reza, stage, contact_id=contact)
    assert db.scalar("SELECT count(*) FROM deals") == 0
    assert secret not in records.choices(db, reza, customers.CUSTOMERS)


# --- 9: forged cookies mean "signed out", never a crash ------------------------------------

def _exp(days=1):
    return (datetime.now() + timedelta(days=days)).timestamp()


_TOKEN_IDS = itertools.count()


@pytest.mark.parametrize("token", [
    jwt.encode({"username": "admin", "exp_date": _exp()}, KEY, algorithm="HS512"),
    jwt.encode({"username": "admin", "exp_date": _exp()}, None, algorithm="none"),
    jwt.encode({"username": "admin"}, KEY, algorithm="HS256"),
    jwt.encode({"username": "admin", "exp_date": "tomorrow"}, KEY, algorithm="HS256"),
    jwt.encode({"username": "admin", "exp_date": _exp(-1)}, KEY, algorithm="HS256"),
    jwt.encode({"username": ["admin"], "exp_date": _exp()}, KEY, algorithm="HS256"),
    jwt.encode({"username": "admin", "exp_date": _exp()}, "another key " * 4,
               algorithm="HS256"),
    "not-a-token", "a.b.c", "", None,
], ids=lambda token: f"token{next(_TOKEN_IDS)}")  # the tokens hold times: ids stable for xdist
def test_forged_or_odd_cookies_are_no_session(token):
    assert cookie.decode(token, KEY) is None


def test_our_own_cookie_decodes():
    token, expires = cookie.encode("admin", KEY, 7)
    assert cookie.decode(token, KEY) == {"username": "admin", "exp_date": expires.timestamp()}


# --- 18: dates the forms cannot hold are refused with a message ----------------------------

def test_dates_outside_the_accepted_range_get_a_message():
    close = Field("expected_close_date", "Expected close", "date")
    with pytest.raises(ValueError, match="between 1900-01-01 and 2100-12-31"):
        convert(close, "2101-01-01")
    with pytest.raises(ValueError, match="between"):
        convert(close, date(1899, 12, 31))
    assert convert(close, "2100-12-31") == date(2100, 12, 31)
    with pytest.raises(ValueError, match="between"):
        convert(Field("due", "Due", "datetime"), "2101-01-01 10:00")
