"""New deals from a big CSV set-based on PostgreSQL (crm/importer_pg_deals.py): the same
messy deals file (unknown stages, products, owners and customers, near misses, repeated keys,
odd number and date formats, a rep's deals and others') through the row path (fast=False) and
the set-based path on PostgreSQL, and the set-based path on DuckDB, leaves the same deals,
lines, stage history, stage spans, reach counts, audit rows, import records, rejects,
rejected-rows CSV, dry-run preview and state after undo."""
import pytest

from crm import importer, stage_spans
from tests.importer_dbs import make_db
from tests.test_importer_fast import DEAL_HEADER, DEALS_MESSY, HUBSPOT_DEALS, deal_outcome

pytestmark = pytest.mark.postgresql_only

MESSY = DEAL_HEADER + "\n" + "\n".join(DEALS_MESSY) + "\n"


def _plain(value):
    from tests.test_importer_pg import _plain as plain

    return plain(value)


def kept(db) -> dict:
    """What the kept tables hold beside the history (stage spans, reach counts), without ids."""
    return {
        "spans": db.query(
            "SELECT d.title, s.name AS stage, p.amount, p.probability,"
            " CAST(p.from_at AS VARCHAR) < '2026' AS dated, p.to_at = $end AS latest"
            " FROM deal_stage_spans p JOIN deals d ON d.id = p.deal_id"
            " JOIN stages s ON s.id = p.stage_id ORDER BY 1, 2, 3",
            {"end": stage_spans.SPAN_END}),
        "reached": db.query("SELECT d.title, s.name AS stage FROM deal_stages_reached r"
                            " JOIN deals d ON d.id = r.deal_id JOIN stages s"
                            " ON s.id = r.stage_id ORDER BY 1, 2"),
        "counts": db.query("SELECT s.name AS stage, c.* FROM stage_reach_counts c"
                           " JOIN stages s ON s.id = c.stage_id ORDER BY 1"),
    }


def outcome(db, team, user, fast, text=MESSY, **options):
    """deal_outcome's (with the dry run's preview), and the kept tables after the import and
    after its undo."""
    found, seen = {}, {}
    original, planned = importer.execute, importer.plan

    def execute(db_, user_, plan):  # the kept tables once written, before the undo
        import_id = original(db_, user_, plan)
        seen.update(kept(db_))
        return import_id

    def plan(*args, **kwargs):  # the dry run's preview beside its counts, notes and rejects
        made = planned(*args, **kwargs)
        found["preview"] = {"new_stages": sorted(made.new_stages), "rows": [
            (r.line, r.action, r.cells if r.cells is not None else made.source.rows[r.line - 2])
            for r in made.rows if r.action == "reject"]}
        return made

    importer.execute, importer.plan = execute, plan
    try:
        found.update(deal_outcome(db, team, team[user], text, fast, **options))
    finally:
        importer.execute, importer.plan = original, planned
    found["kept"] = {k: [dict(r, **{c: None for c in ("stage_id", "pipeline_id")
                                    if c in r}) for r in v] for k, v in seen.items()}
    found["kept_after_undo"] = {k: [dict(r, **{c: None for c in ("stage_id", "pipeline_id")
                                               if c in r}) for r in v]
                                for k, v in kept(db).items()}
    return found


@pytest.mark.parametrize("user,options", [
    ("admin", {}), ("admin", {"create_missing": True}), ("admin", {"key": "title"}),
    ("maria", {}), ("reza", {}), ("reza", {"key": "title"}), ("admin", {"rule": True})])
def test_new_deals_set_based_on_postgresql_give_the_row_paths_and_duckdbs_results(
        two_dbs, tmp_path, user, options):
    (slow_db, slow_team), (fast_db, fast_team) = two_dbs
    slow = outcome(slow_db, slow_team, user, False, **options)
    fast = outcome(fast_db, fast_team, user, True, **options)
    for part in slow:
        assert fast[part] == slow[part], part
    duck_db, duck_team = make_db(tmp_path / "duck.duckdb")
    try:
        duck = outcome(duck_db, duck_team, user, True, **options)
    finally:
        duck_db.close()
    for part in duck:
        assert _plain(fast[part]) == _plain(duck[part]), part
    # nothing left in this process's stage
    stage = importer._stage_cursor(None)
    try:
        assert stage.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name ="
                             " 'crm_import_stage'").fetchone()[0] == 0
    finally:
        stage.close()
    assert fast["counts"]["create"] >= 1 and fast["counts"]["reject"] >= 10
    if user == "admin" and not options:
        assert {r["stage"] for r in fast["kept"]["reached"]} >= {"Won", "Proposal"}
        assert fast["undone"]["undone"] == fast["counts"]["create"]


def test_a_deals_export_of_the_hubspot_shape_alike_on_postgresql(two_dbs, tmp_path):
    """A competitor column (a link resolved among the names PostgreSQL finds), US dates and
    money, owners by email or name: as the row path and DuckDB take it."""
    text = HUBSPOT_DEALS
    (slow_db, slow_team), (fast_db, fast_team) = two_dbs
    slow = outcome(slow_db, slow_team, "admin", False, text)
    fast = outcome(fast_db, fast_team, "admin", True, text)
    for part in slow:
        assert fast[part] == slow[part], part
    duck_db, duck_team = make_db(tmp_path / "duck.duckdb")
    try:
        duck = outcome(duck_db, duck_team, "admin", True, text)
    finally:
        duck_db.close()
    for part in duck:
        assert _plain(fast[part]) == _plain(duck[part]), part
    assert fast["counts"] == {"create": 2, "update": 0, "skip": 0, "reject": 3}
    assert "Did you mean rival co?" in str(dict(fast["rejected"])[6])  # (the row path's words)


@pytest.fixture
def seeded(two_dbs):
    from tests.test_importer_refs import seed

    for db, team in two_dbs:
        seed(db, team)
    return two_dbs


@pytest.mark.parametrize("user,change,refused", [
    ("admin", "trash Acme", "Row 2: That customer does not exist"),
    ("admin", "trash Ada", "Row 2: That contact does not exist"),
    ("admin", "lock reza", "Row 3: Owner must be an active user"),
    ("admin", None, None),
    ("reza", "give Pars", "Row 3:"),
    ("reza", None, None),
])
def test_new_deals_refused_at_the_write_alike_on_postgresql(seeded, user, change, refused):
    """A customer or contact trashed (or no longer the rep's) since the dry run, an owner
    locked: the set-based write on PostgreSQL refuses the import as the row path does."""
    from crm import customers, deals
    from tests import test_importer_recheck as recheck

    changes = {"trash Acme": recheck.trash_customer("Acme"),
               "trash Ada": recheck.trash(customers.CONTACTS, "email", "ada@acme.com"),
               "lock reza": recheck.lock("reza"), None: recheck.nothing,
               "give Pars": recheck.give_customer("شرکت پارس", "sam")}
    found = recheck.compare(seeded, deals.DEALS, recheck.DEALS, changes[change], user)
    assert (found["error"] or "").startswith(refused or "") and bool(found["error"]) \
        == bool(refused)


def test_the_bench_times_new_deals_on_postgresql(new_database, capsys):
    """python -m crm --db postgresql://... bench --import-only: new deals' dry run, import and
    undo beside a bare COPY of the same file, and the row path on request."""
    import re

    from crm import bench_imports

    assert bench_imports.pg_deals_bench(1, new_database(), rows=60, row_rows=20)
    out = capsys.readouterr().out
    found = re.findall(r"^import 60 new deals \((\d+) created, (\d+) rejected\) on PostgreSQL:"
                       r" dry run [\d.]+ s, import [\d.]+ s, undo [\d.]+ s / bare COPY [\d.]+ s"
                       r" .*; row by row 20 rows", out, re.M)
    assert len(found) == 1 and sum(map(int, found[0])) == 60, out


def test_product_lines_look_up_only_the_products_the_file_names(two_dbs, tmp_path,
                                                                monkeypatch):
    """On PostgreSQL a product column looks up the products its cells name, not the catalogue
    (a near miss goes through importer_near's SQL shortlist), with DuckDB's words and "did
    you mean"."""
    from crm import deals, products, records
    from crm.db import Database

    text = ("Title,Stage,Product lines\nOne,Proposal,Widget 3 x 2; W-7\nTwo,Proposal,Widgte 12\n"
            "Three,Won,w-30 (2)\n")
    found = []
    for db, team in (two_dbs[0], make_db(tmp_path / "duck.duckdb")):
        for i in range(40):
            records.create(db, team["admin"], products.PRODUCTS, {
                "name": f"Widget {i}", "code": f"W-{i}", "unit_price": f"{10 + i}"})
        read = []
        real = Database.query

        def query(self, sql, params=None, _real=real, _read=read):
            rows = _real(self, sql, params)
            if "FROM products" in sql:
                _read.append(len(rows))
            return rows

        monkeypatch.setattr(Database, "query", query)
        source = importer.read(text.encode(), "deals.csv", fast=True)
        plan = importer.plan(db, team["admin"], deals.DEALS, source,
                             importer.propose_mapping(deals.DEALS, source.headers))
        monkeypatch.setattr(Database, "query", real)
        assert plan.staged is not None, plan.notes
        found.append(([(r.line, r.errors) for r in plan.rows], plan.counts, read))
        importer.discard(db, plan)
    (pg_rows, pg_counts, pg_read), (duck_rows, duck_counts, _duck_read) = found
    assert pg_rows == duck_rows and pg_counts == duck_counts
    assert "Did you mean Widget 12?" in str(pg_rows)
    # the lookup read the three products the cells name (Widget 3, W-7, W-30), not the 40;
    # the near miss, importer_near's shortlist (here every name: they all look alike)
    assert pg_read[0] == 3


# new deals with custom link fields (a customer, a competitor): test_importer_deal_custom_links'
# comparisons with the row path, on PostgreSQL
LINKED = "deals"  # the table of the linked fixture's custom link fields
from tests.test_importer_deal_custom_links import (  # noqa: E402
    test_a_custom_link_to_a_trashed_competitor_refuses_the_import_alike,
    test_a_customer_trashed_since_the_dry_run_refuses_alike,
    test_new_deals_with_custom_links_take_the_fast_path_with_the_row_paths_results)

LINK_TESTS = (test_a_custom_link_to_a_trashed_competitor_refuses_the_import_alike,
              test_a_customer_trashed_since_the_dry_run_refuses_alike,
              test_new_deals_with_custom_links_take_the_fast_path_with_the_row_paths_results)
