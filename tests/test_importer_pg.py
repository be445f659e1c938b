"""The set-based import on PostgreSQL (the file read and checked in a local DuckDB, the rows
written by INSERT ... SELECT from a TEMP table of the import's transaction): the same messy
files through the row path (fast=False) and the set-based path (fast=True) leave the same
records, audit rows, import records, rejects and rejected-rows CSV, and the same after undo;
a kill -9 before the commit leaves the database as it was."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from crm import customers, importer, leads
from crm.db import Database
from tests.test_importer_fast import (
    CUSTOMER_HEADER, CUSTOMERS_MESSY, EXISTING_PRODUCTS, HEADER, MESSY, PRODUCT_HEADER,
    PRODUCTS_MESSY, ROOT, customer_outcome, outcome, product_outcome)
from tests.importer_dbs import make_db

pytestmark = pytest.mark.postgresql_only


def leftover(db: Database, user, import_id) -> dict:
    """What the database holds beyond ids and times: every lead, every audit row and import
    record, and the same after the import's undo."""
    def snapshot() -> dict:
        return {
            "leads": db.query("SELECT first_name, last_name, company, email, phone, source,"
                              " status, owner_id, estimated_value, notes, consent,"
                              " consent_date, created_by, updated_by, version,"
                              " deleted_at IS NULL AS live, deleted_by FROM leads"
                              " ORDER BY email, last_name"),
            "audit": db.query("SELECT a.entity, a.action, a.changes, a.user_id, a.username,"
                              " a.import_id IS NOT NULL AS imported, l.email FROM audit_log a"
                              " LEFT JOIN leads l ON a.entity = 'leads' AND l.id = a.record_id"
                              " ORDER BY a.entity, l.email, l.last_name, a.action,"
                              " CASE WHEN a.entity <> 'leads' THEN a.record_id END"),
            # a row of the set-based path stands for a run of span lines
            "records": db.query("SELECT r.line + g.k AS line, r.action, r.before,"
                                " r.version_after, l.email FROM import_records r CROSS JOIN"
                                " LATERAL generate_series(0, r.span - 1) AS g(k) LEFT JOIN"
                                " leads l ON l.id = r.record_id + g.k ORDER BY 1"),
            "imports": db.query("SELECT entity, mode, created_count, skipped_count,"
                                " rejected_count, rejected, undone_at IS NULL AS kept"
                                " FROM imports"),
        }
    found = {"after": snapshot()}
    if import_id:
        found["undone"] = importer.undo(db, user, import_id)
        found["after_undo"] = snapshot()
    return found


def compare(two_dbs, text, user="admin", **options):
    results = []
    for (db, team), fast in zip(two_dbs, (False, True)):
        found = outcome(db, team[user], text, fast, **options)
        import_id = db.scalar("SELECT max(id) FROM imports")
        found.update(leftover(db, team[user], import_id))
        results.append(found)
    slow, fast = results
    for part in slow:
        assert fast[part] == slow[part], part
    return fast


@pytest.mark.parametrize("user", ["admin", "reza"])
@pytest.mark.parametrize("key", ["email", None])
def test_leads_set_based_on_postgresql_give_the_row_paths_results(two_dbs, user, key):
    found = compare(two_dbs, HEADER + "\n" + "\n".join(MESSY) + "\n", user=user, key=key)
    assert found["counts"]["create"] >= 5 and found["counts"]["reject"] >= 10
    assert {(r["audit_action"], r["changes"]) for r in found["stored"]} == {("create", None)}
    assert found["undone"]["undone"] == found["counts"]["create"]
    assert not any(r["live"] for r in found["after_undo"]["leads"])
    if user == "reza":
        assert {r["owner_id"] for r in found["stored"]} == {two_dbs[1][1]["reza"].id}


def test_leads_already_there_are_skipped_alike_on_postgresql(two_dbs):
    existing = [{"last_name": "There", "email": "ada@example.com"},
                {"last_name": "There too", "email": "SAM@example.com"}]
    found = compare(two_dbs, HEADER + "\n" + "\n".join(MESSY) + "\n", existing=existing)
    assert found["counts"]["skip"] == 2


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_customers_set_based_on_postgresql_give_the_row_paths_results(two_dbs, user):
    text = CUSTOMER_HEADER + "\n" + "\n".join(CUSTOMERS_MESSY) + "\n"
    (slow_db, slow_team), (fast_db, fast_team) = two_dbs
    slow = customer_outcome(slow_db, slow_team[user], text, False)
    fast = customer_outcome(fast_db, fast_team[user], text, True)
    for part in slow:
        assert fast[part] == slow[part], part
    assert fast["counts"]["create"] >= 3 and fast["undone"]["undone"] == fast["counts"]["create"]


@pytest.mark.parametrize("user,key", [("admin", None), ("maria", None), ("admin", "code")])
def test_products_set_based_on_postgresql_give_the_row_paths_results(two_dbs, user, key):
    text = PRODUCT_HEADER + "\n" + "\n".join(PRODUCTS_MESSY) + "\n"
    (slow_db, slow_team), (fast_db, fast_team) = two_dbs
    slow = product_outcome(slow_db, slow_team[user], text, False, key, EXISTING_PRODUCTS)
    fast = product_outcome(fast_db, fast_team[user], text, True, key, EXISTING_PRODUCTS)
    for part in slow:
        assert fast[part] == slow[part], part
    reasons = dict(fast["rejected"])
    if key is None:
        assert reasons[5] == {"Code": "Product #1 already has this Code"}


def test_other_entities_go_row_by_row_on_postgresql_with_a_note(two_dbs):
    from crm import service

    db, team = two_dbs[1]
    source = importer.read(b"Customer,CSAT\nA,5\n", "s.csv", fast=True)
    plan = importer.plan(db, team["admin"], service.SURVEYS, source,
                         importer.propose_mapping(service.SURVEYS, source.headers))
    assert plan.staged is None and plan.counts["reject"] + plan.counts["create"] == 1
    assert any("PostgreSQL" in n for n in plan.notes)
    source = importer.read(b"Last Name,Email\nA,a@example.com\n", "l.csv", fast=True)
    plan = importer.plan(db, team["admin"], leads.LEADS, source,
                         importer.propose_mapping(leads.LEADS, source.headers),
                         mode="upsert", key="email")
    assert plan.replan and plan.staged_updates and plan.counts["create"] == 1  # set-based


def test_a_kill_9_before_the_commit_leaves_postgresql_as_before(new_database, tmp_path):
    url = new_database()
    db, team = make_db(url)
    leads.create_lead(db, team["admin"], {"last_name": "Before", "email": "before@example.com"})
    before = {t: db.scalar(f"SELECT count(*) FROM {t}")
              for t in ("leads", "imports", "import_records", "audit_log")}
    db.close()
    big = tmp_path / "big.csv"
    # the child's temporary files in a folder of its own: its copy of the file outlives it
    # (a finalizer does not run after kill -9), 30 MB each run in the system's folder before
    child_tmp = tmp_path / "child-tmp"
    child_tmp.mkdir()
    env = {**os.environ, "CRM_IMPORT_TEST_PAUSE": "60", "PYTHONPATH": str(ROOT),
           "TMPDIR": str(child_tmp)}
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from crm"
                    " import bench; bench.write_leads_csv(Path(sys.argv[1]), 150_000)",
                    str(big)], cwd=ROOT, env=env, check=True, timeout=120)
    child = subprocess.Popen([sys.executable, "-m", "crm", "import", "leads", str(big),
                              "--db", url], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        deadline = time.monotonic() + 180
        for line in child.stdout:  # the rows are written; the commit has not happened
            seen.append(line)
            if "import: writing" in line or time.monotonic() > deadline:
                break
        assert "import: writing" in "".join(seen), "".join(seen)
        db = Database(url)
        try:  # written, in the open transaction only: nobody else sees the rows
            assert db.scalar("SELECT count(*) FROM leads") == before["leads"]
        finally:
            db.close()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    db = Database(url)
    try:
        deadline = time.monotonic() + 30  # the server notices the lost client, rolls back
        while db.scalar("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in"
                        " transaction%' AND datname = current_database()") and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        after = {t: db.scalar(f"SELECT count(*) FROM {t}") for t in before}
        assert after == before
    finally:
        db.close()
    env.pop("CRM_IMPORT_TEST_PAUSE")
    done = subprocess.run([sys.executable, "-m", "crm", "import", "leads", str(big),
                           "--db", url], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "row by row" not in done.stdout
    shutil.rmtree(child_tmp)  # whatever the killed child left there
    db = Database(url)
    try:
        assert db.scalar("SELECT count(*) FROM leads") == 150_001
        assert db.scalar("SELECT count(*) FROM audit_log WHERE import_id IS NOT NULL"
                         " AND action = 'create'") == 150_000
    finally:
        db.close()


# --- updates and upserts: test_importer_updates.py's comparisons, on PostgreSQL ----------------

from tests.test_importer_updates import (  # noqa: E402
    test_a_big_update_is_written_set_based_as_the_row_path_writes_it,
    test_a_record_changed_since_the_dry_run_in_another_field_refuses_the_import_alike,
    test_a_record_saved_between_the_match_and_the_write_refuses_the_import,
    test_a_rep_updates_their_own_records_alike,
    test_the_fast_write_and_undo_do_not_use_the_row_path,
    test_the_messy_file_updates_alike, test_the_set_based_undo_of_a_small_row_path_import,
    test_undo_refuses_records_changed_or_trashed_since_with_the_reason,
    test_what_update_many_refuses_at_the_write_is_refused_alike,
    test_with_rules_watching_the_rows_go_through_the_row_path_and_rules_run)

UPDATE_TESTS = (  # collected here too, with `two` (tests/conftest.py) on PostgreSQL
    test_a_big_update_is_written_set_based_as_the_row_path_writes_it,
    test_a_record_changed_since_the_dry_run_in_another_field_refuses_the_import_alike,
    test_a_record_saved_between_the_match_and_the_write_refuses_the_import,
    test_a_rep_updates_their_own_records_alike,
    test_the_fast_write_and_undo_do_not_use_the_row_path,
    test_the_messy_file_updates_alike, test_the_set_based_undo_of_a_small_row_path_import,
    test_undo_refuses_records_changed_or_trashed_since_with_the_reason,
    test_what_update_many_refuses_at_the_write_is_refused_alike,
    test_with_rules_watching_the_rows_go_through_the_row_path_and_rules_run)


@pytest.mark.parametrize("mode", ["update", "upsert"])
@pytest.mark.parametrize("user", ["admin", "reza"])
def test_customer_updates_set_based_on_postgresql_give_the_row_paths_results(two_dbs, mode,
                                                                             user):
    from tests.test_importer_fast import CUSTOMERS_THERE

    text = CUSTOMER_HEADER + "\n" + "\n".join(CUSTOMERS_MESSY) + "\n"
    (slow_db, slow_team), (fast_db, fast_team) = two_dbs
    slow = customer_outcome(slow_db, slow_team[user], text, False, mode=mode,
                            existing=CUSTOMERS_THERE)
    fast = customer_outcome(fast_db, fast_team[user], text, True, mode=mode,
                            existing=CUSTOMERS_THERE)
    for part in slow:
        assert fast[part] == slow[part], part
    if user == "admin":
        assert fast["counts"]["update"] >= 3


def product_state(db: Database) -> dict:
    key = {r["id"]: r["code"] or r["name"] for r in db.query("SELECT id, code, name"
                                                              " FROM products")}
    return {
        "products": db.query("SELECT name, code, category, unit_price, currency, active, unit,"
                             " description, price_notes, version, created_by, updated_by,"
                             " deleted_at IS NULL AS live FROM products ORDER BY name, code"),
        "audit": [(key.get(r["record_id"]), r["action"], r["changes"], r["username"],
                   r["import_id"] is not None) for r in db.query(
            "SELECT * FROM audit_log WHERE entity = 'products' ORDER BY id")],
        "records": [(r["line"], key[r["record_id"]], r["action"], r["before"],
                     r["version_after"]) for r in db.query(
            "SELECT r.line + g.k AS line, r.record_id + g.k AS record_id, r.action, r.before,"
            " r.version_after FROM import_records r CROSS JOIN LATERAL"
            " generate_series(0, r.span - 1) AS g(k) ORDER BY r.id, g.k")],
    }


@pytest.mark.parametrize("mode", ["update", "upsert"])
def test_product_updates_by_code_set_based_on_postgresql_give_the_row_paths_results(
        two_dbs, mode):
    from crm import products, records

    text = PRODUCT_HEADER + "\n" + "\n".join(
        PRODUCTS_MESSY + ["Live again,TAKEN-1,Tools,\"1,234.50\",EUR,no,,changed"]) + "\n"
    results = []
    for (db, team), fast in zip(two_dbs, (False, True)):
        admin = team["admin"]
        for values, trashed in EXISTING_PRODUCTS + [({"name": "Kept", "code": "KEEP-9",
                                                      "unit_price": "5"}, False)]:
            found = records.create(db, admin, products.PRODUCTS, values)
            if trashed:
                records.delete(db, admin, products.PRODUCTS, found)
        source = importer.read(text.encode("utf-8"), "products.csv", fast=fast)
        plan = importer.plan(db, admin, products.PRODUCTS, source,
                             importer.propose_mapping(products.PRODUCTS, source.headers),
                             mode=mode, key="code")
        assert bool(plan.staged_updates) == fast, plan.notes
        counts = plan.counts
        rejected = [(r.line, r.errors) for r in plan.rows if r.action == "reject"]
        import_id = importer.execute(db, admin, plan)
        after = product_state(db)
        undone = importer.undo(db, admin, import_id)
        results.append((counts, rejected, after, undone, product_state(db)))
    assert results[1] == results[0]
    assert results[1][0]["update"] >= 1


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_new_leads_with_custom_links_set_based_on_postgresql_alike(linked, user):
    """Custom links are resolved among the names PostgreSQL finds for the file's texts and
    checked again on PostgreSQL at the write: the row path's results."""
    from tests import test_importer_custom_links as links

    links.test_new_leads_with_custom_links_take_the_fast_path_with_the_row_paths_results(
        linked, user)


def test_a_custom_link_to_a_trashed_record_refused_at_the_write_alike_on_postgresql(linked):
    from tests import test_importer_custom_links as links

    links.test_a_custom_link_to_a_trashed_record_refuses_the_import_alike(linked)


def test_a_linked_customer_trashed_since_the_dry_run_refused_alike_on_postgresql(linked):
    from tests import test_importer_custom_links as links

    links.test_a_customer_trashed_since_the_dry_run_refuses_alike(linked)


@pytest.mark.parametrize("mode", ["update", "upsert"])
@pytest.mark.parametrize("user", ["admin", "reza"])
def test_custom_links_in_an_update_set_based_on_postgresql_alike(two, mode, user,
                                                                monkeypatch):
    from tests.test_importer_complaint_updates import reports
    from tests.test_importer_custom_links import lead_file, seed_leads
    from tests.test_importer_ref_updates import compare_entity

    made = reports(monkeypatch)
    final = compare_entity(two, leads.LEADS, seed_leads, lead_file(), mode, user, "email",
                           "email", monkeypatch)
    assert len(made) == 2 and made[1] == made[0] and b"Nobody" in made[1]
    assert final[3]["undone"] == final[0]["update"] + final[0]["create"]


def test_undo_of_custom_links_set_based_on_postgresql(new_database, monkeypatch):
    """The undo gives the leads their old links back set-based on PostgreSQL too (the records
    the links name copied into the stage for update_in's check), as the row path does; a link
    to a record trashed since refuses it alike."""
    from crm import records
    from crm.fields import ValidationError
    from tests.test_importer_custom_links import lead_file, seed_leads
    from tests.test_importer_fast import deal_world
    from tests.test_importer_ref_updates import table_state

    real, calls = records.update_in, []
    monkeypatch.setattr(records, "update_in",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    found = []
    for trash in (False, True):
        for fast in (False, True):
            db, team = make_db(new_database())
            try:
                deal_world(db, team)
                seed_leads(db, team)
                source = importer.read(lead_file().encode(), "f.csv", fast=fast)
                plan = importer.plan(db, team["admin"], leads.LEADS, source,
                                     importer.propose_mapping(leads.LEADS, source.headers),
                                     mode="update", key="email")
                assert bool(plan.staged_updates) == fast
                import_id = importer.execute(db, team["admin"], plan)
                if trash:
                    with db.transaction() as cur:
                        cur.execute("UPDATE customers SET deleted_at = now() WHERE name ="
                                    " 'Analytical Engines Ltd'")
                calls.clear()
                try:
                    undone = importer.undo(db, team["admin"], import_id)
                except ValidationError as exc:
                    undone = str(exc)
                if fast and not trash:
                    assert not calls  # set-based: no update_in
                found.append((undone, table_state(db, "leads", "email")))
            finally:
                db.close()
                from crm import rules

                rules.invalidate()
    assert found[1] == found[0] and found[3] == found[2]
    assert found[0][0]["undone"] > 5 and "does not exist" in str(found[3][0])


from tests.test_importer_birthday_updates import (  # noqa: E402
    test_a_birthday_without_the_kind_is_written_set_based_as_the_row_path_writes_it,
    test_an_individuals_birthday_in_the_future_refuses_the_import_alike,
    test_an_upsert_creates_new_customers_without_their_birthday_alike)

BIRTHDAY_TESTS = (  # collected here too, with `two` on PostgreSQL: the kind read from
    # pg_snapshot's copies in the dry run, from the live records at the write
    test_a_birthday_without_the_kind_is_written_set_based_as_the_row_path_writes_it,
    test_an_individuals_birthday_in_the_future_refuses_the_import_alike,
    test_an_upsert_creates_new_customers_without_their_birthday_alike)


# --- contacts, tasks and activities: test_importer_refs.py's comparisons, on PostgreSQL ----------
# (their links resolved among the names PostgreSQL finds for the file's texts, copied into the
# stage; the write-time re-check run on PostgreSQL over the TEMP table of the rows to write)

from tests.test_importer_refs import (  # noqa: E402
    test_activities_take_the_fast_path_and_touch_their_deals_alike,
    test_contacts_take_the_fast_path_with_the_row_paths_results,
    test_tasks_take_the_fast_path_with_the_row_paths_results)

REF_TESTS = (test_activities_take_the_fast_path_and_touch_their_deals_alike,
             test_contacts_take_the_fast_path_with_the_row_paths_results,
             test_tasks_take_the_fast_path_with_the_row_paths_results)


@pytest.fixture
def seeded(new_database):
    """test_importer_refs.seed's records in two PostgreSQL databases (row path, set-based)."""
    from tests.test_importer_refs import seed

    made = [make_db(new_database()), make_db(new_database())]
    for db, team in made:
        seed(db, team)
    yield made
    for db, _team in made:
        db.close()


@pytest.mark.parametrize("user,change,refused", [
    ("admin", "trash Acme", "Row 2: The parent record does not exist"),
    ("admin", "lock maria", "Row 5: Owner must be an active user"),
    ("admin", "lock reza", "Row 3: Owner must be an active user"),  # before any parent
    ("admin", None, None),
    ("reza", "give Reza Retail", "Row 3:"),
    ("reza", "trash Acme", None),  # not the rep's: those rows were rejected
])
def test_new_contacts_refused_at_the_write_alike_on_postgresql(seeded, user, change, refused):
    from tests import test_importer_recheck as recheck

    changes = {"trash Acme": recheck.trash_customer("Acme"), "lock maria": recheck.lock("maria"),
               "lock reza": recheck.lock("reza"), None: recheck.nothing,
               "give Reza Retail": recheck.give_customer("Reza Retail", "sam")}
    found = recheck.compare(seeded, customers.CONTACTS, recheck.CONTACTS, changes[change], user)
    assert (found["error"] or "").startswith(refused or "") and bool(found["error"]) \
        == bool(refused)


@pytest.mark.parametrize("user,change,refused", [
    ("admin", "trash Pars deal", "Row 3: That deal does not exist"),
    ("admin", "trash Acme", "Row 2: That customer does not exist"),
    ("admin", "lock reza", "Row 3: Owner must be an active user"),
    ("reza", None, None),
])
@pytest.mark.parametrize("table", ["tasks", "activities"])
def test_tasks_and_activities_refused_at_the_write_alike_on_postgresql(seeded, user, change,
                                                                       refused, table):
    from crm import activities, deals
    from tests import test_importer_recheck as recheck

    changes = {"trash Pars deal": recheck.trash(deals.DEALS, "title", "Pars deal"),
               "trash Acme": recheck.trash_customer("Acme"), "lock reza": recheck.lock("reza"),
               None: recheck.nothing}
    entity, rows = ((activities.TASKS, recheck.TASKS) if table == "tasks"
                    else (activities.ACTIVITIES, recheck.ACTIVITIES))
    found = recheck.compare(seeded, entity, rows, changes[change], user)
    assert (found["error"] or "").startswith(refused or "") and bool(found["error"]) \
        == bool(refused)


# --- their updates and upserts: test_importer_ref_updates.py's comparisons, on PostgreSQL ------

from tests.test_importer_ref_updates import (  # noqa: E402
    test_a_customer_column_is_checked_and_written_set_based_as_the_row_path_does,
    test_a_messy_contact_update_is_written_set_based_as_the_row_path_writes_it,
    test_a_task_update_is_written_set_based_as_the_row_path_writes_it,
    test_an_activity_update_is_written_set_based_as_the_row_path_writes_it,
    test_an_upsert_of_contacts_without_a_customer_column_alike,
    test_undo_refuses_contacts_changed_since)

REF_UPDATE_TESTS = (  # collected here too, with `two` on PostgreSQL
    test_a_customer_column_is_checked_and_written_set_based_as_the_row_path_does,
    test_a_messy_contact_update_is_written_set_based_as_the_row_path_writes_it,
    test_a_task_update_is_written_set_based_as_the_row_path_writes_it,
    test_an_activity_update_is_written_set_based_as_the_row_path_writes_it,
    test_an_upsert_of_contacts_without_a_customer_column_alike,
    test_undo_refuses_contacts_changed_since)


# --- DuckDB's set-based import against PostgreSQL's: the same file, the same results ---------

@pytest.fixture
def both_engines(new_database, tmp_path):
    """test_importer_refs.seed's records in a DuckDB file and a PostgreSQL database."""
    from tests.test_importer_refs import seed

    made = [make_db(tmp_path / "duck.duckdb"), make_db(new_database())]
    for db, team in made:
        seed(db, team)
    yield made
    for db, _team in made:
        db.close()


def _plain(value):
    """A value as both engines' drivers give it comparable (JSON text parsed)."""
    import json

    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("table", ["contacts", "tasks", "activities"])
@pytest.mark.parametrize("user", ["admin", "reza"])
def test_duckdb_and_postgresql_set_based_imports_give_the_same_results(both_engines, table,
                                                                      user):
    from crm import activities
    from tests import test_importer_refs as refs

    entity, rows = {"contacts": (customers.CONTACTS, refs.CONTACTS),
                    "tasks": (activities.TASKS, refs.TASKS),
                    "activities": (activities.ACTIVITIES, refs.ACTIVITIES)}[table]
    text = "\n".join(rows) + "\n"
    duck, pg = (refs.outcome(db, team[user], entity, text, True) for db, team in both_engines)
    for part in duck:
        assert _plain(pg[part]) == _plain(duck[part]), part
    assert pg["counts"]["create"] >= 2 and pg["counts"]["reject"] >= 2


@pytest.mark.parametrize("mode", ["update", "upsert"])
@pytest.mark.parametrize("user", ["admin", "reza"])
def test_duckdb_and_postgresql_set_based_contact_updates_give_the_same_results(
        new_database, tmp_path, mode, user):
    from tests import test_importer_ref_updates as ref_updates

    made = [make_db(tmp_path / "duck.duckdb"), make_db(new_database())]
    results = []
    try:
        for db, team in made:
            ref_updates.seed(db, team, 60)
            text = ref_updates.update_file(60) + "new9@example.com,Nine,New,,,,,\n"
            source = importer.read(text.encode("utf-8"), "contacts.csv", fast=True)
            plan = importer.plan(db, team[user], customers.CONTACTS, source,
                                 importer.propose_mapping(customers.CONTACTS, source.headers),
                                 mode=mode, key="email")
            assert plan.staged_updates, plan.notes
            rejected = sorted(((r.line, r.errors) for r in plan.rows if r.action == "reject"),
                              key=str)
            import_id = importer.execute(db, team[user], plan)
            after = ref_updates.state(db)
            undone = importer.undo(db, team[user], import_id)
            results.append(_plain({"counts": plan.counts, "rejected": rejected,
                                   "after": after, "undone": undone,
                                   "after_undo": ref_updates.state(db),
                                   "report": importer.rejected_csv(plan)}))
    finally:
        for db, _team in made:
            db.close()
    duck, pg = results
    for part in duck:
        assert pg[part] == duck[part], part
    assert pg["counts"]["update"] > 5


def test_the_bench_times_the_entities_set_based_on_postgresql(new_database, capsys):
    """python -m crm --db postgresql://... bench --import-only: a line per entity planned
    set-based there, beside a bare COPY of the same file, and the row path on request."""
    import re

    from crm import bench_imports

    assert bench_imports.refs_import_bench(1, rows=60, n_customers=50, row_rows=20,
                                           server=new_database())
    out = capsys.readouterr().out
    found = re.findall(r"^import 60 (\w+) \((\d+) created, (\d+) rejected\): ours \d+\.\d\d s"
                       r" / bare COPY \d+\.\d\d s .*; row by row 20 rows", out, re.M)
    assert [f[0] for f in found] == ["contacts", "tasks", "activities"], out
    assert all(int(c) + int(r) == 60 for _e, c, r in found)


def test_a_deal_updates_dates_it_does_not_write_are_named_on_postgresql(new_database):
    """A deal update with engage and close dates (row by row on PostgreSQL): the dry run says
    that on deals already there the engage date, and the close date of those that stay open,
    are only checked, and the import indeed leaves them; a closed deal takes the close date
    (issue #8)."""
    from datetime import date

    from crm import deals
    from tests.test_importer_deal_updates import seed_closed, title

    db, team = make_db(new_database())
    try:
        seed_closed(db, team, 12)
        was = db.query("SELECT id, created_at, closed_on FROM deals ORDER BY id")
        text = "Title,Engaged on,Closed on,Amount\n" + "".join(
            f"{title(i)},2024-02-0{1 + i % 9},2024-03-01,{i + 5}\n" for i in range(12))
        source = importer.read(text.encode(), "deals.csv", fast=True)
        plan = importer.plan(db, team["admin"], deals.DEALS, source,
                             importer.propose_mapping(deals.DEALS, source.headers),
                             mode="update", key="title")
        said = [n for n in plan.notes if "only checked, not written" in n]
        assert len(said) == 2 and "“Closed on”" in said[1] and "stay open" in said[1], \
            plan.notes
        assert plan.counts["update"] > 8  # (the amount changes)
        closed = {r["id"] for r in db.query("SELECT d.id FROM deals d JOIN stages s"
                                            " ON s.id = d.stage_id WHERE s.kind <> 'open'")}
        assert closed
        importer.execute(db, team["admin"], plan)
        assert db.query("SELECT id, created_at, closed_on FROM deals ORDER BY id") == [
            {**r, "closed_on": date(2024, 3, 1) if r["id"] in closed else r["closed_on"]}
            for r in was]
    finally:
        db.close()


def test_a_deal_updates_close_dates_are_written_on_postgresql(new_database):
    """Issue #8 on PostgreSQL (the row path): a move into won closes on the file's day (its
    history row and time in the stage from its start), one before the deal's latest stage
    change is rejected naming the column, a closed deal takes the file's date; undone."""
    from datetime import date, datetime

    from crm import deals
    from tests.test_importer_deal_updates import seed_closed

    db, team = make_db(new_database())
    try:
        seed_closed(db, team, 12)
        opened = [r["title"] for r in db.query(
            "SELECT d.title FROM deals d JOIN stages s ON s.id = d.stage_id WHERE s.kind ="
            " 'open' AND d.deleted_at IS NULL ORDER BY d.id")]
        with db.transaction() as cur:  # the second open deal's history stays today's
            cur.execute("UPDATE deal_stage_history SET changed_at = $t WHERE deal_id IN"
                        " (SELECT id FROM deals WHERE title <> $late)",
                        {"t": datetime(2023, 3, 1), "late": opened[1]})
        was = db.query("SELECT id, stage_id, closed_on FROM deals ORDER BY id")
        closed, stage = db.query("SELECT d.title, s.name FROM deals d JOIN stages s ON"
                                 " s.id = d.stage_id WHERE s.kind <> 'open' ORDER BY d.id")[0].values()
        text = ("Title,Stage,Closed on\n" f"{opened[0]},Won,2024-06-30\n"
                f"{opened[1]},Won,2024-06-30\n" f"{closed},{stage},2024-01-15\n")
        source = importer.read(text.encode(), "deals.csv", fast=False)
        plan = importer.plan(db, team["admin"], deals.DEALS, source,
                             importer.propose_mapping(deals.DEALS, source.headers),
                             mode="update", key="title")
        rejected = [r for r in plan.rows if r.action == "reject"]
        assert [r.line for r in rejected] == [3] and "Closed on" in rejected[0].errors
        import_id = importer.execute(db, team["admin"], plan)
        won = db.query("SELECT d.closed_on, d.stage_entered_at, (SELECT max(changed_at) FROM"
                       " deal_stage_history h WHERE h.deal_id = d.id) AS moved FROM deals d"
                       " WHERE d.title = $t", {"t": opened[0]})[0]
        assert won == {"closed_on": date(2024, 6, 30), "stage_entered_at": datetime(2024, 6, 30),
                       "moved": datetime(2024, 6, 30)}
        assert db.scalar("SELECT closed_on FROM deals WHERE title = $t",
                         {"t": closed}) == date(2024, 1, 15)
        assert importer.undo(db, team["admin"], import_id)["refused"] == []
        assert db.query("SELECT id, stage_id, closed_on FROM deals ORDER BY id") == was
    finally:
        db.close()
