"""Demo data: every row passes the field specs, Persian text shows up, dates make sense."""
import os

os.environ.setdefault("CRM_BCRYPT_ROUNDS", "4")  # crm.auth reads it at import

import re
from datetime import date, datetime

import pytest

from crm import auth, customers, demo, leads
from crm.db import Database
from crm.fields import validate

PERSIAN = re.compile(r"[\u0600-\u06FF]")


@pytest.fixture(autouse=True)
def fast_bcrypt(monkeypatch):
    monkeypatch.setattr(auth, "BCRYPT_ROUNDS", 4)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """One small demo load shared by the read-only tests of this module."""
    saved = auth.BCRYPT_ROUNDS
    auth.BCRYPT_ROUNDS = 4
    old_env = os.environ.pop("CRM_DEMO_PASSWORD", None)
    steps = []
    db = Database(tmp_path_factory.mktemp("demo") / "crm.duckdb")
    try:
        result = demo.load_demo(db, "small", progress=lambda f, t: steps.append((f, t)), seed=7)
        yield db, result, steps
    finally:
        db.close()
        auth.BCRYPT_ROUNDS = saved
        if old_env is not None:
            os.environ["CRM_DEMO_PASSWORD"] = old_env


def _check_rows(entity, rows):
    """Each stored row validates through the specs unchanged and passes the entity's checks."""
    assert rows
    for row in rows:
        values = {f.name: row[f.name] for f in entity.editable}
        clean = validate(entity.fields, values)
        if entity.check:
            assert entity.check(clean) == {}, (row["id"], entity.check(clean))
        for name, value in values.items():
            assert clean[name] == value, (entity.table, row["id"], name, value, clean[name])


def test_small_counts_and_result(loaded):
    db, result, _ = loaded
    assert result["leads"] == 300 == db.scalar("SELECT count(*) FROM leads")
    assert result["customers"] == 120 == db.scalar("SELECT count(*) FROM customers")
    assert result["contacts"] == db.scalar("SELECT count(*) FROM contacts") > 0


def test_every_lead_passes_the_specs(loaded):
    db, _, _ = loaded
    _check_rows(leads.LEADS, db.query("SELECT * FROM leads"))


def test_every_customer_passes_the_specs(loaded):
    db, _, _ = loaded
    _check_rows(customers.CUSTOMERS, db.query("SELECT * FROM customers"))


def test_every_contact_passes_the_specs(loaded):
    db, _, _ = loaded
    _check_rows(customers.CONTACTS, db.query("SELECT * FROM contacts"))


def test_weights_use_only_the_specs_choices():
    assert set(demo.LEAD_STATUS_WEIGHTS) <= set(leads.STATUSES)
    assert set(demo.SOURCE_WEIGHTS) <= set(leads.SOURCES)
    assert set(demo.INDUSTRY_WEIGHTS) <= set(customers.INDUSTRIES)
    assert set(demo.POWER_WEIGHTS) <= set(customers.PURCHASING_POWER)
    assert set(demo.COMPANY_SEGMENTS) | set(demo.INDIVIDUAL_SEGMENTS) <= set(customers.SEGMENTS)


def test_persian_and_english_text_appear(loaded):
    db, _, _ = loaded
    names = [r["last_name"] for r in db.query("SELECT last_name FROM leads")]
    persian = sum(bool(PERSIAN.search(n)) for n in names)
    assert 0.15 * len(names) < persian < 0.45 * len(names)  # about 30 %
    assert any(n.isascii() for n in names)
    customer_names = [r["name"] for r in db.query("SELECT name FROM customers")]
    assert any(PERSIAN.search(n) for n in customer_names)
    cities = [r["city"] for r in db.query("SELECT DISTINCT city FROM customers")]
    assert any(PERSIAN.search(c) for c in cities)
    companies = [r["company"] for r in db.query("SELECT company FROM leads WHERE company > ''")]
    assert any(PERSIAN.search(c) for c in companies)


def test_no_future_dates_and_consent_dates_only_with_consent(loaded):
    db, _, _ = loaded
    now, today = datetime.now(), date.today()
    for table in ("leads", "customers", "contacts"):
        row = db.one(f"SELECT max(created_at) AS c, max(updated_at) AS u, max(consent_date) AS d,"
                     f" min(created_at) AS first,"
                     f" count(*) FILTER (WHERE updated_at < created_at) AS backwards,"
                     f" count(*) FILTER (WHERE consent_date IS NOT NULL AND NOT consent) AS bad"
                     f" FROM {table}")
        assert row["c"] <= now and row["u"] <= now and row["d"] <= today
        assert (now - row["first"]).days <= demo.HISTORY_DAYS + 1
        assert row["backwards"] == 0 and row["bad"] == 0
    row = db.one("SELECT max(first_purchase_date) AS p, max(birthday) AS b FROM customers")
    assert row["p"] <= today and row["b"] <= today


def test_birthdays_only_on_individuals(loaded):
    db, _, _ = loaded
    by_kind = {r["kind"]: r for r in db.query(
        "SELECT kind, count(birthday) AS birthdays, count(industry) AS industries,"
        " count(*) AS n FROM customers GROUP BY kind")}
    assert by_kind["company"]["birthdays"] == 0
    assert by_kind["individual"]["birthdays"] > 0
    assert by_kind["individual"]["industries"] == 0


def test_customers_mix_kinds_residency_segments_and_purchases(loaded):
    db, _, _ = loaded
    row = db.one(
        "SELECT count(DISTINCT kind) AS kinds, count(DISTINCT residency) AS residencies,"
        " count(DISTINCT segment) AS segments, count(DISTINCT status) AS statuses,"
        " avg(CASE WHEN first_purchase_date IS NULL THEN 0 ELSE 1 END) AS bought,"
        " count(*) FILTER (WHERE consent AND consent_date IS NOT NULL"
        "                  AND consent_purpose IS NOT NULL) AS consented,"
        " count(*) FILTER (WHERE (residency = 'domestic') <> (country = $home)) AS mismatched"
        " FROM customers", {"home": demo.HOME_COUNTRY})
    assert row["kinds"] == 2 and row["residencies"] == 2 and row["statuses"] == 2
    assert row["segments"] >= 4
    assert 0.55 < row["bought"] < 0.85  # about 70 % have bought
    assert row["consented"] > 0 and row["mismatched"] == 0


def test_contacts_belong_to_companies_one_to_three_with_one_primary(loaded):
    db, _, _ = loaded
    groups = db.query(
        "SELECT c.kind, count(k.id) AS n, count(*) FILTER (WHERE k.is_primary) AS primaries"
        " FROM contacts k JOIN customers c ON c.id = k.customer_id GROUP BY c.id, c.kind")
    assert groups and all(g["kind"] == "company" for g in groups)
    assert all(1 <= g["n"] <= 3 and g["primaries"] == 1 for g in groups)
    assert len(groups) == db.scalar("SELECT count(*) FROM customers WHERE kind = 'company'")
    orphans = db.scalar("SELECT count(*) FROM contacts k JOIN customers c ON c.id = k.customer_id"
                        " WHERE k.owner_id <> c.owner_id OR k.created_at < c.created_at")
    assert orphans == 0


def test_demo_users_own_the_records_and_sign_in(loaded):
    db, result, _ = loaded
    roles = {u["username"]: u["role"] for u in auth.list_users(db)}
    assert roles == {"maria": "manager", "reza": "rep", "sam": "rep", "lena": "rep"}
    assert sorted(result["demo_users"]) == ["lena", "maria", "reza", "sam"]
    password = result["demo_password"]
    assert auth.password_problem(password) is None
    assert auth.verify_login(db, "reza", password)
    owners = {r["owner_id"] for r in db.query("SELECT DISTINCT owner_id FROM leads")}
    assert owners == {u["id"] for u in auth.list_users(db)}
    assert db.scalar("SELECT count(*) FROM leads WHERE created_by <> owner_id OR version <> 1") == 0


def test_one_audit_row_per_bulk_load(loaded):
    db, _, _ = loaded
    rows = db.query("SELECT entity, action, record_id FROM audit_log WHERE entity <> 'users'")
    assert sorted(r["entity"] for r in rows) == ["contacts", "customers", "leads"]
    assert all(r["action"] == "demo_load" and r["record_id"] is None for r in rows)


def test_progress_is_reported_up_to_done(loaded):
    _, _, steps = loaded
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(isinstance(text, str) and text for _, text in steps)


def test_ids_come_from_the_sequences(tmp_path):
    db = Database(tmp_path / "crm.duckdb")
    try:
        admin_id = auth.create_user(db, None, "admin", "Admin", None, "Secret12345", "admin")
        rep_id = auth.create_user(db, auth.SYSTEM, "ann", "Ann", None, "Secret12345", "rep")
        admin = auth.get_user(db, "admin")
        first = leads.create_lead(db, admin, {"last_name": "Before"})
        demo.load_demo(db, "small", seed=1)
        new_id = leads.create_lead(db, admin, {"last_name": "After"})
        assert new_id == first + 301
        ids = db.one("SELECT min(id) AS lo, max(id) AS hi, count(*) AS n FROM leads")
        assert (ids["lo"], ids["hi"], ids["n"]) == (first, new_id, 302)
        # the existing rep owns everything; no demo users were made; the admin is the actor
        assert {u["username"] for u in auth.list_users(db)} == {"admin", "ann"}
        assert db.scalar("SELECT count(DISTINCT owner_id) FROM customers") == 1
        assert db.scalar("SELECT min(owner_id) FROM contacts") == rep_id
        assert db.scalar("SELECT DISTINCT user_id FROM audit_log WHERE action = 'demo_load'") \
            == admin_id
    finally:
        db.close()


def test_explicit_owners_and_password_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_DEMO_PASSWORD", "DemoPass2026")
    db = Database(tmp_path / "crm.duckdb")
    try:
        result = demo.load_demo(db, "small", seed=2)
        assert "demo_password" not in result  # the caller knows it already
        assert auth.verify_login(db, "maria", "DemoPass2026")
        sam = auth.get_user(db, "sam")
        result = demo.load_demo(db, "small", owners=[sam], seed=3)
        assert result["leads"] == 300 and "demo_users" not in result
        assert db.scalar("SELECT count(*) FROM leads WHERE owner_id = $id", {"id": sam.id}) >= 300
    finally:
        db.close()


def test_random_password_is_never_a_constant(monkeypatch):
    monkeypatch.delenv("CRM_DEMO_PASSWORD", raising=False)
    passwords = {demo.demo_password() for _ in range(5)}
    assert len(passwords) == 5
    assert all(auth.password_problem(p) is None for p in passwords)


def test_unknown_size_is_refused(tmp_path):
    db = Database(tmp_path / "crm.duckdb")
    try:
        with pytest.raises(ValueError, match="size"):
            demo.load_demo(db, "huge")
        assert db.scalar("SELECT count(*) FROM users") == 0
    finally:
        db.close()
