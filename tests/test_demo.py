"""Demo data: every row passes the field specs, in each demo language (English with a Persian
share, Persian, Lithuanian) the records speak it, dates make sense, and the sales pipeline
(deals, exact stage history, line items, activities, tasks, converted leads) is consistent."""
import os

os.environ.setdefault("CRM_BCRYPT_ROUNDS", "4")  # crm.auth reads it at import

import re
from datetime import date, datetime, timedelta
from typing import NamedTuple

import pytest

from crm import (activities, auth, customers, deals, demo, demo_sales_history, i18n, leads,
                 pipelines)
from crm.db import Database
from crm.fields import validate

PERSIAN = re.compile(r"[\u0600-\u06FF]")
LANGUAGES = tuple(demo.LANGUAGES)


@pytest.fixture(autouse=True)
def fast_bcrypt(monkeypatch):
    monkeypatch.setattr(auth, "BCRYPT_ROUNDS", 4)


class Loaded(NamedTuple):
    db: Database
    result: dict
    steps: list
    at: datetime  # just after the load: 'now' for the tasks' overdue/today groups
    language: str


@pytest.fixture(scope="module", params=LANGUAGES)
def loaded(request, new_database):
    """One small demo load per language, shared by the read-only tests of this module."""
    saved = auth.BCRYPT_ROUNDS
    auth.BCRYPT_ROUNDS = 4
    old_env = os.environ.pop("CRM_DEMO_PASSWORD", None)
    steps = []
    db = Database(new_database())
    try:
        result = demo.load_demo(db, "small", progress=lambda f, t: steps.append((f, t)), seed=7,
                                language=request.param)
        yield Loaded(db, result, steps, datetime.now(), request.param)
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
    db, result = loaded.db, loaded.result
    assert result["leads"] == 300 == db.scalar("SELECT count(*) FROM leads")
    assert result["customers"] == 120 == db.scalar("SELECT count(*) FROM customers")
    assert result["contacts"] == db.scalar("SELECT count(*) FROM contacts") > 0
    sizes = demo.SIZES["small"]
    history = result["sales_history"]  # two years of closed sales (crm.demo_sales_history)
    for table in ("deals", "activities", "tasks"):
        assert result[table] == sizes[table]
        assert result[table] + history.get(table, 0) == db.scalar(
            f"SELECT count(*) FROM {table}")
    for table in ("deal_stage_history", "deal_products", "products"):
        assert result[table] + history.get(table, 0) == db.scalar(
            f"SELECT count(*) FROM {table}") > 0
    assert result["converted_leads"] == db.scalar(
        "SELECT count(*) FROM leads WHERE converted_at IS NOT NULL") > 0


def _languages(loaded) -> tuple[str, str]:
    """The text languages of the load's two sides: most rows, then the share."""
    lang = demo.LANGUAGES[loaded.language]
    return lang.main.texts, lang.second.texts


def test_every_lead_passes_the_specs(loaded):
    db = loaded.db
    _check_rows(leads.LEADS, db.query("SELECT * FROM leads"))


def test_every_customer_passes_the_specs(loaded):
    db = loaded.db
    _check_rows(customers.CUSTOMERS, db.query("SELECT * FROM customers"))


def test_every_contact_passes_the_specs(loaded):
    db = loaded.db
    _check_rows(customers.CONTACTS, db.query("SELECT * FROM contacts"))


def test_weights_use_only_the_specs_choices():
    assert set(demo.LEAD_STATUS_WEIGHTS) <= set(leads.STATUSES)
    assert set(demo.SOURCE_WEIGHTS) <= set(leads.SOURCES)
    assert set(demo.INDUSTRY_WEIGHTS) <= set(customers.INDUSTRIES)
    assert set(demo.POWER_WEIGHTS) <= set(customers.PURCHASING_POWER)
    assert set(demo.COMPANY_SEGMENTS) | set(demo.INDIVIDUAL_SEGMENTS) <= set(customers.SEGMENTS)


def _share(values, test) -> float:
    values = list(values)
    assert values
    return sum(bool(test(v)) for v in values) / len(values)


def _column(db, sql) -> list:
    return [next(iter(r.values())) for r in db.query(sql)]


def _english_with_a_persian_share(db):
    names = _column(db, "SELECT last_name FROM leads")
    assert 0.15 < _share(names, PERSIAN.search) < 0.45  # about 30 %
    assert any(n.isascii() for n in names)
    assert any(PERSIAN.search(n) for n in _column(db, "SELECT name FROM customers"))
    assert any(PERSIAN.search(c) for c in _column(db, "SELECT DISTINCT city FROM customers"))
    assert any(PERSIAN.search(c) for c in
               _column(db, "SELECT company FROM leads WHERE company > ''"))
    assert _share(_column(db, "SELECT currency FROM deals"), lambda c: c == "USD") > 0.5


def _persian(db):
    for sql in ("SELECT first_name || last_name FROM leads", "SELECT name FROM customers",
                "SELECT first_name || last_name FROM contacts"):
        names = _column(db, sql)
        assert 0.7 < _share(names, PERSIAN.search) < 1  # an English share: foreign customers
    cities = _column(db, "SELECT city FROM customers")
    assert _share(cities, lambda c: c in demo.IRAN_CITIES) > 0.6
    assert {"تهران", "مشهد", "اصفهان"} <= set(cities)
    phones = _column(db, "SELECT phone FROM leads WHERE phone IS NOT NULL")
    assert _share(phones, lambda p: re.fullmatch(r"\+98( \d+)+", p)) > 0.7
    deals_ = db.query("SELECT currency, amount FROM deals")
    assert _share(deals_, lambda d: d["currency"] == "IRR") > 0.5
    assert {d["currency"] for d in deals_} >= {"IRR", "USD"}  # and foreign ones
    rials = [d["amount"] for d in deals_ if d["currency"] == "IRR"]
    assert all(500_000_000 <= a <= 50_000_000_000 for a in rials)
    assert max(_column(db, "SELECT estimated_value FROM leads WHERE converted_at IS NULL"
                           " AND estimated_value IS NOT NULL")) > 10_000_000  # rials too


def _lithuanian(db):
    cities = _column(db, "SELECT city FROM customers")
    assert _share(cities, lambda c: c in demo.LITHUANIA_CITIES) > 0.6
    assert {"Vilnius", "Kaunas"} <= set(cities)
    deals_ = _column(db, "SELECT currency FROM deals")
    assert _share(deals_, lambda c: c == "EUR") > 0.6
    lithuanian = re.compile("[ąčęėįšųūžĄČĘĖĮŠŲŪŽ]")
    names = _column(db, "SELECT first_name || ' ' || last_name FROM leads")
    assert any(lithuanian.search(n) for n in names)
    assert not any(PERSIAN.search(n) for n in names)
    # family names agree with the first name: Rūta Kazlauskienė, Jonas Kazlauskas
    women = db.query("SELECT first_name, last_name FROM contacts"
                     " WHERE last_name LIKE '%ienė'")
    assert women and all(w["first_name"].endswith(("a", "ė")) for w in women)
    phones = _column(db, "SELECT phone FROM customers WHERE phone IS NOT NULL")
    assert _share(phones, lambda p: re.fullmatch(r"\+370 \d{3} \d{5}", p)) > 0.7
    assert _share(_column(db, "SELECT name FROM customers WHERE kind = 'company'"),
                  re.compile(r"\b(UAB|AB|MB|IĮ)\b| ir Ko$").search) > 0.7


def test_records_are_in_the_load_language(loaded):
    {"en": _english_with_a_persian_share, "fa": _persian, "lt": _lithuanian}[loaded.language](
        loaded.db)


def test_no_future_dates_and_consent_dates_only_with_consent(loaded):
    db = loaded.db
    now, today = datetime.now(), date.today()
    for table in ("leads", "customers", "contacts"):
        row = db.one(f"SELECT max(created_at) AS c, max(updated_at) AS u, max(consent_date) AS d,"
                     f" min(created_at) AS first,"
                     f" count(*) FILTER (WHERE updated_at < created_at) AS backwards,"
                     f" count(*) FILTER (WHERE consent_date IS NOT NULL AND NOT consent) AS bad"
                     f" FROM {table}")
        assert row["c"] <= now and row["u"] <= now and row["d"] <= today
        # customers with two years of closed sales (crm.demo_sales_history) are older
        assert (now - row["first"]).days <= max(demo.HISTORY_DAYS, demo_sales_history.DAYS) + 1
        assert row["backwards"] == 0 and row["bad"] == 0
    row = db.one("SELECT max(first_purchase_date) AS p, max(birthday) AS b FROM customers")
    assert row["p"] <= today and row["b"] <= today


def test_birthdays_only_on_individuals(loaded):
    db = loaded.db
    by_kind = {r["kind"]: r for r in db.query(
        "SELECT kind, count(birthday) AS birthdays, count(industry) AS industries,"
        " count(*) AS n FROM customers GROUP BY kind")}
    assert by_kind["company"]["birthdays"] == 0
    assert by_kind["individual"]["birthdays"] > 0
    assert by_kind["individual"]["industries"] == 0


def test_customers_mix_kinds_residency_segments_and_purchases(loaded):
    db = loaded.db
    row = db.one(
        "SELECT count(DISTINCT kind) AS kinds, count(DISTINCT residency) AS residencies,"
        " count(DISTINCT segment) AS segments, count(DISTINCT status) AS statuses,"
        " avg(CASE WHEN first_purchase_date IS NULL THEN 0 ELSE 1 END) AS bought,"
        " count(*) FILTER (WHERE consent AND consent_date IS NOT NULL"
        "                  AND consent_purpose IS NOT NULL) AS consented,"
        " count(*) FILTER (WHERE (residency = 'domestic') <> (country = $home)) AS mismatched"
        " FROM customers", {"home": demo.LANGUAGES[loaded.language].home_country})
    assert row["kinds"] == 2 and row["residencies"] == 2 and row["statuses"] == 2
    assert row["segments"] >= 4
    assert 0.55 < row["bought"] < 0.85  # about 70 % have bought
    assert row["consented"] > 0 and row["mismatched"] == 0


def test_contacts_belong_to_companies_one_to_three_with_one_primary(loaded):
    db = loaded.db
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
    db, result = loaded.db, loaded.result
    roles = {u["username"]: u["role"] for u in auth.list_users(db)}
    assert roles == {"maria": "manager", "reza": "rep", "sam": "rep", "lena": "rep"}
    assert sorted(result["demo_users"]) == ["lena", "maria", "reza", "sam"]
    password = result["demo_password"]
    assert auth.password_problem(password) is None
    assert auth.verify_login(db, "reza", password)
    owners = {r["owner_id"] for r in db.query("SELECT DISTINCT owner_id FROM leads")}
    assert owners == {u["id"] for u in auth.list_users(db)}
    assert db.scalar("SELECT count(*) FROM leads WHERE created_by <> owner_id OR version <>"
                     " CASE WHEN converted_at IS NULL THEN 1 ELSE 2 END") == 0  # converting: +1


def test_one_audit_row_per_bulk_load(loaded):
    db = loaded.db
    rows = db.query("SELECT entity, action, record_id FROM audit_log"
                    " WHERE entity NOT IN ('users', 'pipelines')")
    assert sorted(r["entity"] for r in rows) == [
        "activities", "competitor_shares", "competitors", "complaints", "contacts",
        "customer_returns", "customers", "deals", "deals", "feature_values", "leads",
        "price_records", "pricing_scenarios", "product_costs", "products", "surveys", "tasks"]
    assert all(r["action"] == "demo_load" and r["record_id"] is None for r in rows)
    # the Renewals pipeline was made by its command, with its own audit entry
    [made] = db.query("SELECT action, record_id FROM audit_log WHERE entity = 'pipelines'")
    assert made["action"] == "create" and made["record_id"] is not None


@pytest.mark.postgresql_only
def test_postgresql_tables_are_vacuumed_after_the_load(loaded):
    """Index-only scans (the dashboards' covering indexes) pay only once VACUUM has set the
    visibility map: the load vacuums and analyses what it wrote, not autovacuum minutes later."""
    db = loaded.db
    assert db.dialect == "postgresql"
    stats = {r["relname"]: r for r in db.query(
        "SELECT relname, last_vacuum, last_analyze FROM pg_stat_user_tables"
        " WHERE relname IN ('leads', 'deals', 'deal_stage_history', 'surveys')")}
    assert set(stats) == {"leads", "deals", "deal_stage_history", "surveys"}
    assert all(r["last_vacuum"] is not None and r["last_analyze"] is not None
               for r in stats.values()), stats


def test_progress_is_reported_up_to_done(loaded):
    steps = loaded.steps
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(isinstance(text, str) and text for _, text in steps)


# --- the sales pipeline ---------------------------------------------------------------------

def test_every_deal_activity_and_task_passes_the_specs(loaded):
    db = loaded.db
    _check_rows(deals.DEALS, db.query("SELECT * FROM deals"))
    _check_rows(activities.ACTIVITIES, db.query("SELECT * FROM activities"))
    _check_rows(activities.TASKS, db.query("SELECT * FROM tasks"))


def test_both_pipelines_hold_deals_in_a_realistic_spread(loaded):
    db = loaded.db
    names = {p["name"]: p["id"] for p in pipelines.list_pipelines(db)}
    with i18n.using(loaded.language):  # the demo's own pipeline is named in its language
        renewals = i18n.gettext(demo.RENEWALS)
    assert set(names) == {"New business", renewals}
    assert (renewals != "Renewals") == (loaded.language != "en")
    by = {(r["pipeline"], r["kind"]): r["n"] for r in db.query(
        "SELECT p.name AS pipeline, s.kind, count(*) AS n FROM deals d"
        " JOIN stages s ON s.id = d.stage_id JOIN pipelines p ON p.id = d.pipeline_id"
        # the board's deals, not the two years of closed history after them
        " WHERE d.id < (SELECT min(id) FROM deals) + $n GROUP BY p.name, s.kind",
        {"n": loaded.result["deals"]})}
    assert all(by.get((p, k), 0) > 0 for p in names for k in ("open", "won", "lost"))
    n = sum(by.values())
    won, lost = (sum(v for (_, k), v in by.items() if k == kind) / n for kind in ("won", "lost"))
    assert 0.12 < won < 0.18 and 0.09 < lost < 0.15
    # more deals in the early stages than in the late ones
    stages = pipelines.stages_of(db, names["New business"])
    counts = [db.scalar("SELECT count(*) FROM deals WHERE stage_id = $s", {"s": s["id"]})
              for s in stages if s["kind"] == "open"]
    assert counts[0] > counts[-1] > 0
    # some probability overrides; owners are the customers' owners; a Persian side
    row = db.one(
        "SELECT count(d.probability) AS overrides,"
        " count(*) FILTER (WHERE d.owner_id <> c.owner_id) AS foreign_owner,"
        " count(*) FILTER (WHERE d.created_at < c.created_at) AS before_customer,"
        " count(*) FILTER (WHERE d.contact_id IS NOT NULL AND k.customer_id <> d.customer_id)"
        "  AS stray_contact,"
        " count(*) FILTER (WHERE CASE WHEN d.currency = 'IRR'"
        "   THEN d.amount NOT BETWEEN 500000000 AND 50000000000"
        "   ELSE d.amount NOT BETWEEN 1000 AND 500000 END) AS odd_amount,"
        " count(DISTINCT d.currency) AS currencies FROM deals d"
        " JOIN customers c ON c.id = d.customer_id LEFT JOIN contacts k ON k.id = d.contact_id")
    assert row["overrides"] > 0 and row["currencies"] >= 2
    assert (row["foreign_owner"], row["before_customer"], row["stray_contact"],
            row["odd_amount"]) == (0, 0, 0, 0)
    # titles in both languages of the load
    titles = [r["title"] for r in db.query("SELECT title FROM deals")]
    for lang in _languages(loaded):
        topics = {t for table in (demo.DEAL_TOPICS, demo.RENEWAL_TOPICS) for t in table[lang]}
        topics |= {p[3][demo.PRODUCT_TOPIC_LANGS.index(lang)] for p in demo.PRODUCTS}
        assert any(any(topic in title for topic in topics) for title in titles), lang


def test_stage_history_is_exact(loaded):
    db = loaded.db
    row = db.one("""
        WITH h AS (
            SELECT h.*, count(*) OVER w AS n,
                   row_number() OVER (w ORDER BY changed_at, id) AS k,
                   lag(to_stage_id) OVER (w ORDER BY changed_at, id) AS before_stage,
                   lag(changed_at) OVER (w ORDER BY changed_at, id) AS before_at
            FROM deal_stage_history h WINDOW w AS (PARTITION BY deal_id))
        SELECT
          count(DISTINCT h.deal_id) AS deals,
          count(*) FILTER (WHERE k = 1 AND (from_stage_id IS NOT NULL
                                             OR changed_at <> d.created_at)) AS bad_first,
          count(*) FILTER (WHERE k > 1 AND from_stage_id IS DISTINCT FROM before_stage)
            AS broken_chain,
          count(*) FILTER (WHERE k > 1 AND changed_at <= before_at) AS not_increasing,
          count(*) FILTER (WHERE k = n AND (to_stage_id <> d.stage_id
                                             OR changed_at <> d.stage_entered_at)) AS bad_last,
          count(*) FILTER (WHERE h.amount IS DISTINCT FROM d.amount) AS bad_amount,
          count(*) FILTER (WHERE s.pipeline_id <> d.pipeline_id) AS other_pipeline,
          count(*) FILTER (WHERE h.probability <> s.probability
                           AND NOT (n = 1 AND h.probability = d.probability)) AS bad_probability,
          count(*) FILTER (WHERE changed_at > $now) AS future
        FROM h JOIN deals d ON d.id = h.deal_id JOIN stages s ON s.id = h.to_stage_id""",
                 {"now": loaded.at})
    assert row.pop("deals") == db.scalar("SELECT count(*) FROM deals")
    assert row == dict.fromkeys(row, 0)
    # an open stage is never entered from a closing one; closed deals went through open stages
    assert db.scalar(
        "SELECT count(*) FROM deal_stage_history h JOIN stages f ON f.id = h.from_stage_id"
        " WHERE f.kind <> 'open'") == 0
    # a probability override without a move is in the history row that created the deal
    assert db.scalar(
        "SELECT count(*) FROM deals d JOIN deal_stage_history h ON h.deal_id = d.id"
        " WHERE d.probability IS NOT NULL AND h.probability = d.probability") > 0


class _Undo(Exception):
    """Raised to roll a test's transaction back."""


def _snapshots_per_day(cur, today: date) -> int:
    """The demo's forecast snapshots rebuilt one day at a time, as the demo once did (48
    rebuilds): what the one-pass rebuild must match."""
    from crm import calendar

    written = 0
    for day in demo_sales_history.snapshot_days(today):
        cur.execute("DELETE FROM forecast_snapshots WHERE taken_on = $d", {"d": day})
        for name, lang in (("gregorian", "en"), ("jalali", "fa")):
            key, join = calendar.period("x.expected", "month", lang)
            written += cur.execute(
                "INSERT INTO forecast_snapshots (taken_on, calendar, period_key,"
                " forecast_category, pipeline_id, owner_id, currency, deals, amount, weighted)"
                f" SELECT $d, $cal, {key}, x.category, x.pipeline_id, x.owner_id, x.currency,"
                " count(*), coalesce(sum(x.amount), 0),"
                " coalesce(sum(x.amount * x.probability / 100.0), 0) FROM ("
                " SELECT coalesce(t.closed_on, t.expected_close_date) AS expected,"
                " s.forecast_category AS category, t.pipeline_id, t.owner_id, t.currency,"
                " coalesce(h.amount, t.amount) AS amount, h.probability"
                " FROM deal_stage_history h JOIN (SELECT deal_id, max(changed_at) AS at"
                "   FROM deal_stage_history WHERE changed_at < $d GROUP BY deal_id) last"
                "   ON last.deal_id = h.deal_id AND last.at = h.changed_at"
                " JOIN stages s ON s.id = h.to_stage_id JOIN deals t ON t.id = h.deal_id"
                " WHERE s.kind = 'open' AND t.deleted_at IS NULL) x"
                f"{join} WHERE x.expected IS NOT NULL GROUP BY 3, 4, 5, 6, 7",
                {"d": day, "cal": name}).fetchone()[0]
    return written


SNAPSHOT_COLUMNS = ("taken_on, calendar, period_key, forecast_category, pipeline_id, owner_id,"
                    " currency, deals, amount, weighted")


def test_snapshots_in_one_pass_are_the_rebuild_per_day(loaded):
    """The demo builds a year of forecast snapshots in one set-based pass: the same rows as one
    rebuild per snapshot day, also for two moves of a deal at one moment and a deleted deal."""
    today = date.today()
    with pytest.raises(_Undo):
        with loaded.db.transaction() as cur:
            moved = cur.execute(
                "SELECT deal_id, max(changed_at) FROM deal_stage_history h"
                " JOIN stages s ON s.id = h.to_stage_id WHERE s.kind = 'open'"
                " AND changed_at < $d GROUP BY deal_id ORDER BY deal_id LIMIT 2",
                {"d": today - timedelta(days=90)}).fetchall()
            assert len(moved) == 2
            cur.execute(  # a second move at the same moment, into another open stage
                "INSERT INTO deal_stage_history (deal_id, from_stage_id, to_stage_id,"
                " changed_at, changed_by, amount, probability) SELECT h.deal_id,"
                " h.to_stage_id, s.id, h.changed_at, h.changed_by, h.amount + 1, 42"
                " FROM deal_stage_history h JOIN stages o ON o.id = h.to_stage_id"
                " JOIN stages s ON s.pipeline_id = o.pipeline_id AND s.kind = 'open'"
                " AND s.id <> o.id WHERE h.deal_id = $deal AND h.changed_at = $at"
                " ORDER BY s.id LIMIT 1", {"deal": moved[0][0], "at": moved[0][1]})
            cur.execute("UPDATE deals SET deleted_at = $at WHERE id = $deal",
                        {"at": loaded.at, "deal": moved[1][0]})
            one = demo_sales_history.rebuild_snapshots(cur, today)
            rows = cur.execute(f"SELECT {SNAPSHOT_COLUMNS} FROM forecast_snapshots"
                               " ORDER BY 1, 2, 3, 4, 5, 6, 7").fetchall()
            assert len({r[0] for r in rows}) >= 12
            per_day = _snapshots_per_day(cur, today)
            assert cur.execute(f"SELECT {SNAPSHOT_COLUMNS} FROM forecast_snapshots"
                               " ORDER BY 1, 2, 3, 4, 5, 6, 7").fetchall() == rows
            assert one == per_day == len(rows)
            raise _Undo


def test_closed_deals_have_a_close_date_and_lost_ones_a_reason(loaded):
    db = loaded.db
    row = db.one(
        "SELECT count(*) FILTER (WHERE s.kind <> 'open'"
        "   AND closed_on IS DISTINCT FROM CAST(stage_entered_at AS DATE)) AS bad_close,"
        " count(*) FILTER (WHERE s.kind = 'open' AND closed_on IS NOT NULL) AS open_closed,"
        " count(*) FILTER (WHERE s.kind = 'lost' AND lost_reason IS NULL) AS no_reason,"
        " count(*) FILTER (WHERE s.kind <> 'lost' AND (lost_reason IS NOT NULL"
        "   OR lost_to_competitor IS NOT NULL)) AS reason_not_lost,"
        " count(*) FILTER (WHERE s.kind <> 'open' AND (d.probability IS NOT NULL"
        "   OR d.forecast_category IS NOT NULL)) AS closed_override"
        " FROM deals d JOIN stages s ON s.id = d.stage_id")
    assert row == dict.fromkeys(row, 0)
    reasons = {r["lost_reason"] for r in db.query("SELECT lost_reason FROM deals"
                                                  " WHERE lost_reason IS NOT NULL")}
    assert reasons <= set(deals.LOST_REASONS) and len(reasons) >= 3
    assert set(demo.LOST_REASON_WEIGHTS) <= set(deals.LOST_REASONS)
    assert db.scalar("SELECT count(lost_to_competitor) FROM deals") > 0


def test_some_open_deals_are_rotting_most_are_not(loaded):
    db = loaded.db
    row = db.one(
        "SELECT count(*) AS open, count(*) FILTER (WHERE d.stage_entered_at < $now - s.rotting_days"
        "   * INTERVAL '1 day' AND coalesce(d.last_activity_at, d.stage_entered_at)"
        "   < $now - s.rotting_days * INTERVAL '1 day') AS rotting"
        " FROM deals d JOIN stages s ON s.id = d.stage_id WHERE s.kind = 'open'",
        {"now": loaded.at})
    assert 0.1 * row["open"] < row["rotting"] < 0.5 * row["open"]


def test_last_activity_is_the_latest_activity_of_the_deal(loaded):
    db = loaded.db
    assert db.scalar(
        "SELECT count(*) FROM deals d LEFT JOIN (SELECT deal_id, max(occurred_at) AS latest"
        " FROM activities WHERE deal_id IS NOT NULL GROUP BY deal_id) a ON a.deal_id = d.id"
        " WHERE d.last_activity_at IS DISTINCT FROM a.latest") == 0
    assert db.scalar("SELECT count(last_activity_at) FROM deals") > 0


def test_activities_and_tasks_belong_with_their_records(loaded):
    db = loaded.db
    for table in ("activities", "tasks"):
        links = db.one(f"SELECT count(deal_id) AS d, count(customer_id) AS c,"
                       f" count(lead_id) AS l, count(contact_id) AS k,"
                       f" count(*) FILTER (WHERE coalesce(deal_id, customer_id, lead_id,"
                       f"  contact_id) IS NULL) AS unlinked FROM {table}")
        assert links.pop("unlinked") == 0 and all(links.values()), (table, links)
        wrong = db.one(
            f"SELECT count(*) FILTER (WHERE t.deal_id IS NOT NULL AND (t.owner_id <> d.owner_id"
            f"   OR t.customer_id <> d.customer_id)) AS deal,"
            f" count(*) FILTER (WHERE t.customer_id IS NOT NULL AND t.owner_id <> c.owner_id)"
            f"   AS customer,"
            f" count(*) FILTER (WHERE t.lead_id IS NOT NULL AND t.owner_id <> l.owner_id) AS lead,"
            f" count(*) FILTER (WHERE t.contact_id IS NOT NULL AND k.customer_id <> t.customer_id)"
            f"   AS contact,"
            f" count(*) FILTER (WHERE t.created_at > $now OR t.updated_at < t.created_at) AS time"
            f" FROM {table} t LEFT JOIN deals d ON d.id = t.deal_id"
            f" LEFT JOIN customers c ON c.id = t.customer_id"
            f" LEFT JOIN leads l ON l.id = t.lead_id LEFT JOIN contacts k ON k.id = t.contact_id",
            {"now": loaded.at})
        assert wrong == dict.fromkeys(wrong, 0), (table, wrong)
    kinds = {r["kind"] for r in db.query("SELECT DISTINCT kind FROM activities")}
    assert kinds <= set(activities.KINDS) and len(kinds) >= 5
    bad = db.one(
        "SELECT count(*) FILTER (WHERE a.occurred_at > $now) AS future,"
        " count(*) FILTER (WHERE a.occurred_at < d.created_at) AS before_deal,"
        " count(*) FILTER (WHERE s.kind <> 'open' AND a.occurred_at > d.stage_entered_at)"
        "   AS after_close"
        " FROM activities a LEFT JOIN deals d ON d.id = a.deal_id"
        " LEFT JOIN stages s ON s.id = d.stage_id", {"now": loaded.at})
    assert bad == dict.fromkeys(bad, 0)
    subjects = {r["subject"] for r in db.query("SELECT subject FROM activities")}
    for lang in _languages(loaded):  # in both languages of the load
        assert subjects & {s for by_lang in demo.ACTIVITY_SUBJECTS.values() for s in by_lang[lang]}
    statuses = {r["status"]: r for r in db.query(
        "SELECT status, count(*) AS n, count(completed_at) AS completed FROM tasks GROUP BY 1")}
    assert set(statuses) == set(activities.TASK_STATUSES)
    assert statuses["done"]["completed"] == statuses["done"]["n"]
    assert statuses["open"]["completed"] == statuses["cancelled"]["completed"] == 0


def test_each_demo_user_has_overdue_and_today_tasks(loaded):
    db = loaded.db
    for username, *_ in demo.DEMO_USERS:
        user = auth.get_user(db, username)
        groups = activities.my_tasks(db, user, now=loaded.at)
        assert groups["overdue"] and groups["today"] and groups["upcoming"], username
        assert all(t["related"] for g in groups.values() for t in g)


def test_line_items_add_up_to_the_deal_amount(loaded):
    db = loaded.db
    row = db.one(
        "SELECT count(*) AS deals, count(*) FILTER (WHERE i.total <> d.amount) AS wrong,"
        " max(i.lines) AS most_lines,"
        " count(*) FILTER (WHERE d.currency <> $currency) AS other_currency"
        " FROM (SELECT deal_id, sum(quantity * unit_price) AS total, count(*) AS lines"
        "       FROM deal_products GROUP BY deal_id) i JOIN deals d ON d.id = i.deal_id",
        {"currency": demo.LANGUAGES[loaded.language].currency})
    share = row["deals"] / loaded.result["deals"]  # the two years of history have no lines
    assert 0.2 < share < 0.4 and row["wrong"] == 0 and row["other_currency"] == 0
    # the products are priced in the language's currency (rials: about 100,000 per dollar)
    [currency] = _column(db, "SELECT DISTINCT currency FROM products")
    assert currency == demo.LANGUAGES[loaded.language].currency
    cheapest = db.scalar("SELECT min(unit_price) FROM products")
    assert cheapest == min(p[2] for p in demo.PRODUCTS) * (100_000 if currency == "IRR" else 1)
    assert row["most_lines"] >= 2
    products = db.query("SELECT name, code, unit_price FROM products")
    assert len(products) == len(demo.PRODUCTS) and all(p["unit_price"] > 0 for p in products)
    assert db.scalar("SELECT count(*) FROM deal_products i LEFT JOIN products p"
                     " ON p.id = i.product_id WHERE p.id IS NULL OR i.description <> p.name") == 0


def test_converted_leads_link_to_what_they_became(loaded):
    db = loaded.db
    row = db.one(
        "SELECT count(*) AS linked, count(l.converted_deal_id) AS with_deal,"
        " count(*) FILTER (WHERE l.status <> 'converted' OR l.owner_id <> c.owner_id"
        "   OR k.customer_id <> c.id OR l.company <> c.name OR l.last_name <> k.last_name"
        "   OR l.converted_at <> c.created_at OR l.created_at >= l.converted_at) AS wrong,"
        " count(*) FILTER (WHERE d.id IS NOT NULL AND (d.lead_id <> l.id"
        "   OR d.customer_id <> c.id OR d.contact_id <> k.id OR d.owner_id <> l.owner_id"
        "   OR d.created_at <> l.converted_at OR d.amount <> l.estimated_value)) AS wrong_deal"
        " FROM leads l JOIN customers c ON c.id = l.converted_customer_id"
        " JOIN contacts k ON k.id = l.converted_contact_id"
        " LEFT JOIN deals d ON d.id = l.converted_deal_id")
    assert row["linked"] == db.scalar("SELECT count(converted_at) FROM leads") > 0
    assert row["with_deal"] > 0 and row["wrong"] == 0 and row["wrong_deal"] == 0
    # the back-links: each deal made from a lead is that lead's deal
    assert db.scalar("SELECT count(*) FROM deals d LEFT JOIN leads l ON l.id = d.lead_id"
                     " WHERE d.lead_id IS NOT NULL AND l.converted_deal_id IS DISTINCT FROM"
                     " d.id") == 0
    assert db.scalar("SELECT count(*) FROM leads WHERE converted_at IS NOT NULL") \
        <= db.scalar("SELECT count(*) FROM leads WHERE status = 'converted'")


def test_board_columns_add_up_to_the_pipeline(loaded):
    db = loaded.db
    pipeline = pipelines.default_pipeline_id(db)
    for username in ("maria", "reza"):  # a manager sees all deals, a rep their own
        user = auth.get_user(db, username)
        by_currency = deals.board_currencies(db, user, pipeline, now=loaded.at)
        columns = [c for currency in by_currency for c in
                   deals.board(db, user, pipeline, currency=currency, now=loaded.at)]
        mine = "" if user.role != "rep" else f" AND owner_id = {user.id}"
        since = loaded.at.date() - timedelta(days=deals.CLOSED_DAYS)
        assert sum(c["count"] for c in columns) == db.scalar(
            "SELECT count(*) FROM deals WHERE pipeline_id = $p AND deleted_at IS NULL"
            f" AND (closed_on IS NULL OR closed_on >= $since){mine}",
            {"p": pipeline, "since": since}) > 0
        assert [c["id"] for c in columns][:len(pipelines.stages_of(db, pipeline))] == [
            s["id"] for s in pipelines.stages_of(db, pipeline)]
        for c in columns:
            assert c["more"] == c["count"] - len(c["cards"]) >= 0 and len(c["cards"]) <= 20
    cards = [card for c in deals.board(db, auth.get_user(db, "maria"), pipeline, now=loaded.at)
             for card in c["cards"]]
    assert any(card["rotting"] for card in cards) and not all(card["rotting"] for card in cards)


def test_large_demo_keeps_100k_open_deals_on_the_default_board():
    """The board benchmark needs them (the mix is fixed counts, not chance)."""
    n, mix = demo.SIZES["large"]["deals"], demo.DEAL_MIX["large"]
    default = n - round(n * mix["renewals"])
    assert default - round(default * mix["won"]) - round(default * mix["lost"]) >= 100_000


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
        before = db.scalar("SELECT max(id) FROM deals")
        result = demo.load_demo(db, "small", owners=[sam], seed=3, language="lt")
        assert result["leads"] == 300 and "demo_users" not in result
        assert db.scalar("SELECT count(*) FROM leads WHERE owner_id = $id", {"id": sam.id}) >= 300
        # a second load (in another language) reuses the Renewals pipeline and the products:
        # their line items stay on deals in the products' currency (USD, from the first load)
        assert result["products"] == 0 and result["deals"] == 300 // 2
        assert [p["name"] for p in pipelines.list_pipelines(db)] == ["New business",
                                                                     demo.RENEWALS]
        assert db.scalar("SELECT count(*) FROM products") == len(demo.PRODUCTS)
        assert db.scalar("SELECT count(*) FROM deal_products i JOIN deals d ON d.id = i.deal_id"
                         " WHERE d.currency <> 'USD'") == 0
        assert db.scalar("SELECT count(*) FROM deal_products i JOIN deals d ON d.id = i.deal_id"
                         " WHERE d.id > $before", {"before": before}) > 0
        assert db.scalar("SELECT count(DISTINCT owner_id) FROM deals WHERE id > $before",
                         {"before": before}) == 1
        assert activities.my_tasks(db, sam)["overdue"]
    finally:
        db.close()


def test_random_password_is_never_a_constant(monkeypatch):
    monkeypatch.delenv("CRM_DEMO_PASSWORD", raising=False)
    passwords = {demo.demo_password() for _ in range(5)}
    assert len(passwords) == 5
    assert all(auth.password_problem(p) is None for p in passwords)


def test_unknown_size_or_language_is_refused(tmp_path):
    db = Database(tmp_path / "crm.duckdb")
    try:
        with pytest.raises(ValueError, match="size"):
            demo.load_demo(db, "huge")
        with pytest.raises(ValueError, match="language"):
            demo.load_demo(db, "small", language="de")
        assert db.scalar("SELECT count(*) FROM users") == 0
    finally:
        db.close()


# --- the bulk load into an empty database (crm.dialect.bulk_load) ------------------------------

def _schema(db) -> dict:
    """Every constraint and index of the database, as its catalog defines them."""
    if db.engine == "postgresql":
        keys = db.query("SELECT conrelid::regclass::text AS t, conname AS name,"
                        " pg_get_constraintdef(oid) AS definition FROM pg_constraint"
                        " WHERE connamespace = current_schema()::regnamespace")
        indexes = db.query("SELECT tablename AS t, indexname AS name, indexdef AS definition"
                           " FROM pg_indexes WHERE schemaname = current_schema()")
    else:
        keys = db.query("SELECT table_name AS t, constraint_name AS name,"
                        " constraint_text AS definition FROM duckdb_constraints()")
        indexes = db.query("SELECT table_name AS t, index_name AS name, sql AS definition"
                           " FROM duckdb_indexes()")
    return {"constraints": sorted(tuple(r.values()) for r in keys),
            "indexes": sorted(tuple(r.values()) for r in indexes)}


def _foreign_keys(cur, table: str) -> int:
    if getattr(cur, "dialect", "duckdb") == "postgresql":
        sql = ("SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
               " AND conrelid = CAST($t AS regclass)")
    else:
        sql = ("SELECT count(*) FROM duckdb_constraints() WHERE table_name = $t"
               " AND constraint_type = 'FOREIGN KEY'")
    return cur.execute(sql, {"t": table}).fetchone()[0]


ORPHAN_ACTIVITY = ("INSERT INTO activities (kind, subject, occurred_at, deal_id, created_at,"
                   " updated_at) VALUES ('call', 'x', CURRENT_TIMESTAMP, 999999999,"
                   " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")


@pytest.fixture
def bulk(monkeypatch):
    """The bulk path at the small size too (it starts at dialect.BULK_LOAD_ROWS), and the
    number of foreign keys of activities seen in the middle of each load."""
    from crm import dialect

    monkeypatch.setattr(dialect, "BULK_LOAD_ROWS", 0)
    seen, original = [], demo.add_sales_history

    def spy(cur, *args, **kwargs):
        seen.append(_foreign_keys(cur, "activities"))
        return original(cur, *args, **kwargs)

    monkeypatch.setattr(demo, "add_sales_history", spy)
    return seen


def test_a_load_into_an_empty_database_keeps_the_schema_of_the_migrations(db, bulk):
    """On PostgreSQL the keys of the empty tables are dropped during the load and come back
    exactly; a second load (into tables with rows) keeps them throughout."""
    migrated = _schema(db)
    keys = _foreign_keys(db.cursor(), "activities")
    assert keys == 4
    demo.load_demo(db, "small", seed=11)
    assert _schema(db) == migrated
    demo.load_demo(db, "small", seed=12)
    assert _schema(db) == migrated
    assert bulk == ([0, keys] if db.engine == "postgresql" else [keys, keys])
    # the keys check again: an activity of no deal is refused
    with pytest.raises(Exception, match="(?i)foreign key"):
        with db.transaction() as cur:
            cur.execute(ORPHAN_ACTIVITY)


@pytest.mark.parametrize("failure", ["error", "broken key"])
def test_a_failing_load_leaves_the_database_as_before(db, bulk, monkeypatch, failure):
    """An error late in the load, or a row whose key the check at the end refuses (on
    PostgreSQL nothing checks it before), rolls the whole load back, keys and indexes too."""
    from crm import demo_market

    migrated = _schema(db)

    def fail(cur, *args, **kwargs):
        if failure == "error":
            raise RuntimeError("the load breaks")
        cur.execute(ORPHAN_ACTIVITY)
        return {}

    monkeypatch.setattr(demo_market, "load", fail)
    with pytest.raises(Exception, match="the load breaks" if failure == "error"
                       else "(?i)foreign key"):
        demo.load_demo(db, "small", seed=13)
    assert _schema(db) == migrated
    for table in demo.BULK_TABLES:
        assert db.scalar(f"SELECT count(*) FROM {table}") == 0, table
    monkeypatch.undo()  # and a load after it works (on the bulk path)
    from crm import dialect

    monkeypatch.setattr(dialect, "BULK_LOAD_ROWS", 0)
    demo.load_demo(db, "small", seed=13)
    assert _schema(db) == migrated
    assert db.scalar("SELECT count(*) FROM leads") == 300
