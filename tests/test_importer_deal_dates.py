"""Deal updates and upserts with the stage history's dates (engaged on, closed on) and with
stages to add (--create-missing), set-based (crm/importer_deals.py): the same deals, stages,
stage history and spans, audit rows, import records, rejected rows and CSV, dry-run preview
and undo as the row path, compared on two databases that start the same."""
from datetime import datetime, timedelta
from unittest import mock

import pytest

from crm import deals, importer, importer_updates, records, rules
from tests.test_importer_deal_updates import full_state, seed_closed, title
from tests.test_importer_fast import make_db
from tests.test_stage_spans import from_history, stored

@pytest.fixture
def two(tmp_path):
    made = [make_db(tmp_path / "row.duckdb"), make_db(tmp_path / "fast.duckdb")]
    yield made
    for db, _team in made:
        db.close()
    rules.invalidate()


DATES_HEADER = "Title,Stage,Lost reason,Engaged on,Closed on,Close Date,Amount,Owner"


def dates_file(n: int, new: int = 0, stages=None) -> str:
    """Deals 0..n-1 (and `new` deals not there) with engage and close dates in several
    spellings, some none, some not dates, some closing before they engage (by the close date,
    or by the expected close date of a deal the file closes), beside moves, amounts and
    owners; a duplicate title and one that is not there."""
    stages = stages or ["", "Won", "Lost", "Negotiation", "proposal", "Qualificaton", "Won"]
    engaged = ["2024-01-05", "05.02.2024", "", "not a date", "2024-03-01T10:30", "N/A",
               "2030-01-01", "2023-11-30"]
    closed = ["", "2024-06-30", "2023-01-01", "31.12.2024", "", "soon", "2024-02-01"]
    close = ["", "2024-09-01", "2022-05-05", "", "2025-01-15"]
    owners = ["", "reza", "Maria Manager", ""]
    lines = [DATES_HEADER]
    for i in range(n + new):
        stage = stages[i % len(stages)]
        reason = "price" if stage.lower() == "lost" and i % 4 else ""
        amount = ["", str(i * 10), "1,5", "99"][i % 4]
        name = title(i) if i < n else f"New {i}"
        lines.append(",".join([name, stage, reason, engaged[i % 8], closed[i % 7],
                               close[i % 5], f'"{amount}"', owners[i % 4]]))
    lines.append(f"{title(2)},Won,,2024-01-01,,,,")
    lines.append("No such deal,Won,,2024-01-01,,,,")
    return "\n".join(lines) + "\n"


def moment(t0):
    """A moment of this test's day as "now" (the two databases write at other instants)."""
    def of(v):
        return "now" if isinstance(v, datetime) and abs(v - t0) < timedelta(hours=12) else v
    return of


def everything(db, t0, top=None) -> dict:
    """full_state, with the deals' dates, every stage, the history's moments and the spans
    (a moment of this run as "now": the two databases write at other instants)."""
    of = moment(t0)
    found = full_state(db)
    found["dates"] = [{k: of(v) for k, v in r.items()} for r in db.query(
        "SELECT title, created_at, stage_entered_at, closed_on, updated_at >= $t AS touched"
        " FROM deals ORDER BY title, id", {"t": t0})]
    found["history_at"] = [{k: of(v) for k, v in r.items()} for r in db.query(
        "SELECT id, deal_id, to_stage_id, changed_at FROM deal_stage_history ORDER BY id")]
    found["spans"] = [{k: of(v) for k, v in r.items()} for r in stored(db)]
    assert stored(db) == from_history(db)
    found["stages"] = db.query("SELECT id, pipeline_id, name, position, probability,"
                               " rotting_days, kind, forecast_category, deleted_at IS NULL"
                               " AS live FROM stages ORDER BY id")
    found["stage_audit"] = db.query("SELECT record_id, action, changes, import_id IS NOT NULL"
                                    " AS imported FROM audit_log WHERE entity = 'stages'"
                                    " ORDER BY id")
    found["reach"] = db.query("SELECT * FROM stage_reach_counts WHERE deals <> 0 ORDER BY ALL")
    found["reached"] = db.query("SELECT * FROM deal_stages_reached ORDER BY ALL")
    found["lines"] = db.query("SELECT id, deal_id, product_id, description, quantity,"
                              " unit_price, created_by FROM deal_products ORDER BY id")
    found["all_audit"] = db.query("SELECT entity, record_id, action, changes, user_id,"
                                  " import_id FROM audit_log WHERE occurred_at >= $t"
                                  " ORDER BY id", {"t": t0})
    if top is not None:  # new deals' audit rows apart and sorted: the set-based create writes
        # every new deal's row, then their lines' rows, where the row path writes a deal's
        # two in turn (as tests/test_importer_lines.py's full_state takes it)
        audit, every = found.pop("audit"), found.pop("all_audit")
        found["audit"] = [a for a in audit if not a[0] or a[0][1] <= top]
        found["audit_created"] = sorted((a for a in audit if a[0] and a[0][1] > top), key=str)
        new = [a for a in every if a["entity"] == "deals" and (a["record_id"] or 0) > top]
        found["all_audit"] = [a for a in every if a not in new]
        found["all_audit_created"] = sorted(map(str, new))
    return found


def compare_dates(two, text: str, user="admin", mode="update", create_missing=False,
                  since=None, pipeline=None, apart=False):
    """The same file through fast=False and fast=True: everything at the dry run, after the
    import and after its undo, equal."""
    results = []
    for (db, team), fast in zip(two, (False, True)):
        t0 = datetime.now()
        source = importer.read(text.encode("utf-8"), "deals.csv", fast=fast)
        mapping = importer.propose_mapping(deals.DEALS, source.headers)
        pid = pipeline and db.scalar("SELECT id FROM pipelines WHERE name = $n",
                                     {"n": pipeline})
        plan = importer.plan(db, team[user], deals.DEALS, source, mapping, mode=mode,
                             key="title", create_missing=create_missing, pipeline_id=pid)
        assert bool(plan.staged_updates) == fast, plan.notes
        assert not any("Read row by row" in n for n in plan.notes) or not fast, plan.notes
        rejected = sorted((r.line, r.errors) for r in plan.rows if r.action == "reject")
        preview = sorted((r.line, r.action, r.changes) for r in plan.rows
                         if r.action == "update")[:50]
        report = importer.rejected_csv(plan)
        notes = [n for n in plan.notes if "set-based" not in n and "row by row" not in n]
        top = db.scalar("SELECT max(id) FROM deals") if apart else None
        import_id = importer.execute(db, team[user], plan)
        after = everything(db, t0, top)
        if since:
            since(db, team)
        with mock.patch.object(importer_updates, "undo_updates",
                               importer_updates.undo_updates if fast else lambda *a: None):
            undone = importer.undo(db, team[user], import_id)  # the row path's undo, or not
        results.append((plan.counts, rejected, preview, report, notes, after, undone,
                        everything(db, t0, top)))
    slow, fast = results
    for part, a, b in zip(("counts", "rejected", "preview", "report", "notes", "import",
                           "undo", "after undo"), slow, fast):
        if isinstance(a, dict):
            for k in a:
                assert b[k] == a[k], (part, k)
        assert b == a, part
    return fast


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_an_update_with_engage_and_close_dates_goes_set_based_alike(two, user):
    for db, team in two:
        seed_closed(db, team, 70)
    counts, rejected, preview, *_rest = compare_dates(two, dates_file(70), user=user)
    # (a rep's own deals only; a move into won or lost closing before the deal's latest stage
    # change, today's here, is rejected: issue #8)
    assert counts["update"] > (5 if user == "admin" else 2) and counts["reject"] > 10
    reasons = " ".join(str(e) for _l, e in rejected)
    for words in ("The close date is before the engage date", "is not a date",
                  "no record with this Title", "before the deal's latest stage change"):
        assert words in reasons, words
    assert preview


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_an_upsert_with_engage_and_close_dates_goes_set_based_alike(two, user):
    for db, team in two:
        seed_closed(db, team, 50)
    counts, rejected, _p, _r, _n, after, undone, _final = compare_dates(
        two, dates_file(50, new=50), user=user, mode="upsert")
    assert counts["create"] > 10 and counts["update"] > (5 if user == "admin" else 2)
    # new deals engaged on the file's day: their history and spans start then
    assert any(d["title"].startswith("New") and d["created_at"] != "now"
               for d in after["dates"])
    assert undone["undone"] == counts["create"] + counts["update"]


def test_the_dates_alone_change_nothing_on_deals_there_alike(two):
    for db, team in two:
        seed_closed(db, team, 20)
    text = "Title,Engaged on,Closed on\n" + "".join(
        f"{title(i)},2024-0{1 + i % 9}-01,{'2023-01-01' if i % 3 == 0 else ''}\n"
        for i in range(20))
    counts, rejected = compare_dates(two, text)[:2]
    assert counts["update"] == 0 and counts["reject"] > 3


def test_the_fast_dates_do_not_use_the_row_path(two, monkeypatch):
    db, team = two[1]
    admin = team["admin"]
    seed_closed(db, team, 20)
    source = importer.read(dates_file(20, new=20).encode(), "d.csv", fast=True)
    plan = importer.plan(db, admin, deals.DEALS, source,
                         importer.propose_mapping(deals.DEALS, source.headers),
                         mode="upsert", key="title")
    assert plan.staged_updates

    def refuse(*args, **kwargs):
        raise AssertionError("the row path ran")
    for name in ("insert_deal", "move_deal_in", "update_deal_in", "relink_competitor"):
        monkeypatch.setattr(deals, name, refuse)
    monkeypatch.setattr(importer, "write_row", refuse)
    monkeypatch.setattr(records, "update_in", refuse)
    import_id = importer.execute(db, admin, plan)
    assert db.scalar("SELECT count(*) FROM deals WHERE title LIKE 'New %'"
                     " AND created_at < '2025-01-01'") > 3
    monkeypatch.undo()
    assert importer.undo(db, admin, import_id)["refused"] == []


# --- stages to add (--create-missing), set-based ------------------------------------------

NEW_STAGES = ["Brand new", "Won", "Qualificaton", "brand new ", "Lost", "", "Pilot phase",
              "proposal", "Zeta", "LOST"]


@pytest.mark.parametrize("mode", ["update", "upsert"])
def test_stages_to_add_go_set_based_alike(two, mode):
    for db, team in two:
        seed_closed(db, team, 60)
    text = dates_file(60, new=30 if mode == "upsert" else 0, stages=NEW_STAGES)
    counts, rejected, preview, _r, _n, after, undone, final = compare_dates(
        two, text, mode=mode, create_missing=True)
    names = {s["name"] for s in after["stages"]}
    assert {"Brand new", "Qualificaton", "Pilot phase", "Zeta"} <= names
    assert any(r["action"] == "create" for r in after["stage_audit"])
    assert any(c.get("stage_id", (None, None))[1] == 0 for _l, _a, c in preview)
    moved = [h for h in after["history"] if h["to_stage_id"] in {
        s["id"] for s in after["stages"] if s["name"] == "Brand new"}]
    assert moved
    assert undone["undone"] == counts["create"] + counts["update"]
    # the undo moves the deals back and keeps the stages, as the row path does
    assert {s["name"] for s in final["stages"]} == names


def test_stages_to_add_in_the_chosen_pipeline_alike(two):
    from crm import pipelines

    for db, team in two:
        seed_closed(db, team, 30)
        pid = pipelines.create_pipeline(db, team["admin"], "Partners")
        pipelines.add_stage(db, team["admin"], pid, {"name": "Pilot", "probability": 60})
    text = "Title,Stage,Lost reason,Engaged on\n" + "".join(
        f"{title(i)},{['Pilot', 'Onboarding', 'Won', 'Lost', 'Review'][i % 5]},"
        f"{'price' if i % 5 == 3 else ''},{'2024-01-0%d' % (1 + i % 9)}\n" for i in range(30))
    after = compare_dates(two, text, create_missing=True, pipeline="Partners")[5]
    partners = two[1][0].scalar("SELECT id FROM pipelines WHERE name = 'Partners'")
    added = [s for s in after["stages"] if s["name"] in ("Onboarding", "Review")]
    assert len(added) == 2 and all(s["pipeline_id"] == partners for s in added)


def test_with_rules_watching_deals_stages_to_add_go_row_by_row_alike(two):
    for db, team in two:
        seed_closed(db, team, 30)
        rules.save_rule(db, team["admin"], {
            "name": "Moved", "entity": "deals", "trigger": "changed",
            "trigger_config": {"field": "stage_id"}, "match": "all", "conditions": [],
            "enabled": True, "actions": [{"kind": "create_task", "title": "Check {title}",
                                          "assignee": "owner", "due_days": 2}]})
    compare_dates(two, dates_file(30, stages=NEW_STAGES), create_missing=True)
    made = [db.query("SELECT title, owner_id FROM tasks ORDER BY title") for db, _t in two]
    assert made[0] == made[1] and made[0]


def test_a_rep_may_not_add_stages_on_either_path(two):
    messages = []
    for (db, team), fast in zip(two, (False, True)):
        seed_closed(db, team, 5)
        source = importer.read(b"Title,Stage\nDeal 1,Brand new stage\n", "d.csv", fast=fast)
        with pytest.raises(importer.ImportFileError) as refused:
            importer.plan(db, team["reza"], deals.DEALS, source,
                          importer.propose_mapping(deals.DEALS, source.headers),
                          mode="update", key="title", create_missing=True)
        messages.append(str(refused.value))
    assert messages[0] == messages[1]


def test_fast_stages_to_add_do_not_use_the_row_path(two, monkeypatch):
    db, team = two[1]
    admin = team["admin"]
    seed_closed(db, team, 20)
    source = importer.read(dates_file(20, new=20, stages=NEW_STAGES).encode(), "d.csv",
                           fast=True)
    plan = importer.plan(db, admin, deals.DEALS, source,
                         importer.propose_mapping(deals.DEALS, source.headers),
                         mode="upsert", key="title", create_missing=True)
    assert plan.staged_updates and plan.new_stages

    def refuse(*args, **kwargs):
        raise AssertionError("the row path ran")
    for name in ("insert_deal", "move_deal_in", "update_deal_in", "relink_competitor"):
        monkeypatch.setattr(deals, name, refuse)
    monkeypatch.setattr(importer, "write_row", refuse)
    monkeypatch.setattr(records, "update_in", refuse)
    import_id = importer.execute(db, admin, plan)
    assert db.scalar("SELECT count(*) FROM deals d JOIN stages s ON s.id = d.stage_id"
                     " WHERE s.name = 'Brand new'") > 1
    monkeypatch.undo()
    assert importer.undo(db, admin, import_id)["refused"] == []


def test_an_engage_date_against_the_expected_close_date_of_a_closing_deal_alike(two):
    for db, team in two:
        seed_closed(db, team, 24)
    text = "Title,Stage,Lost reason,Engaged on,Close Date\n" + "".join(
        f"{title(i)},{['Won', 'Lost', 'Negotiation', ''][i % 4]},price,"
        f"{['2024-05-01', '', '2024-01-01'][i % 3]},{['2024-02-01', '2024-07-01', ''][i % 5 % 3]}\n"
        for i in range(24))
    for mode in ("update", "upsert"):
        counts, rejected = compare_dates(two, text, mode=mode)[:2]
        assert counts["update"] and any("engage date" in str(e) for _l, e in rejected)


# --- dates the update does not write: said in the dry run ------------------------------------

@pytest.mark.parametrize("mode", ["update", "upsert"])
def test_dates_an_update_does_not_write_are_named_in_the_notes_alike(two, mode):
    for db, team in two:
        seed_closed(db, team, 20)
    text = "Title,Engaged on,Closed on\n" + "".join(
        f"{title(i)},2024-0{1 + i % 9}-01,{'2024-11-01' if i % 3 == 0 else ''}\n"
        for i in range(20))
    notes = compare_dates(two, text, mode=mode)[4]
    said = [n for n in notes if "only checked, not written" in n]
    # the engage date; the close date only on deals that stay open (issue #8)
    assert len(said) == 2 and "“Engaged on”" in said[0] and "“Closed on”" in said[1], notes
    assert "stay open" in said[1], notes


def test_no_such_note_without_date_columns_or_when_creating(two):
    db, team = two[0]
    seed_closed(db, team, 5)
    for text, mode in ((f"Title,Amount\n{title(1)},5\n", "update"),
                       ("Title,Engaged on,Closed on\nFresh,2024-01-01,\n", "create")):
        source = importer.read(text.encode(), "d.csv", fast=False)
        plan = importer.plan(db, team["admin"], deals.DEALS, source,
                             importer.propose_mapping(deals.DEALS, source.headers),
                             mode=mode, key="title")
        assert not any("only checked" in n for n in plan.notes), plan.notes


def test_undo_of_a_move_gives_back_the_old_close_date_alike(two):
    """A deal won long ago, lost or reopened by a file (closed today, or not closed), then the
    import undone: its close date is the old one again, on both paths."""
    for db, team in two:
        seed_closed(db, team, 30)
        with db.transaction() as cur:
            cur.execute("UPDATE deals SET closed_on = $d WHERE closed_on IS NOT NULL",
                        {"d": datetime(2023, 5, 5).date()})
    before = [db.query("SELECT id, closed_on FROM deals ORDER BY id") for db, _t in two]
    closed = [r["id"] for r in before[0] if r["closed_on"]]
    assert closed and before[0] == before[1]
    names = {r["id"]: r["title"] for r in two[0][0].query("SELECT id, title FROM deals")}
    text = "Title,Stage,Lost reason\n" + "".join(
        f"{names[d]},{['Lost,price', 'Negotiation,', 'Won,'][k % 3]}\n"
        for k, d in enumerate(closed))
    counts, rejected, *_r, after, _u, _f = compare_dates(two, text)
    assert counts["update"] >= 3 and not rejected, rejected
    moved = {d["closed_on"] for d in after["dates"]}
    assert datetime.now().date() in moved and None in moved  # the file did move them
    for (db, _team), was in zip(two, before):
        assert db.query("SELECT id, closed_on FROM deals ORDER BY id") == was


# --- product lines beside the dates (crm/importer_lines.py), set-based -------------------

LINE_CELLS = ["GTX Pro x 2; SKU-7", "", "MG Special (3)", "GTXPro x 2", "GTX-1",
              "No Such Thing", "2 x GTX Pro", "GTX Pro: 0.125", "N/A", "sku-7 x 1,5"]


def dated_lines_file(n: int, new: int = 0, amounts: bool = True) -> str:
    """dates_file with a product lines column (odd spellings, unknown products, near misses,
    empty cells), with or without its amount column."""
    import csv
    import io

    rows = list(csv.reader(io.StringIO(dates_file(n, new))))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    amount = rows[0].index("Amount")
    for i, row in enumerate(rows):
        cell = "Product lines" if i == 0 else LINE_CELLS[(i * 3) % len(LINE_CELLS)]
        if not amounts:
            row = row[:amount] + row[amount + 1:]
        writer.writerow(row + [cell])
    return out.getvalue()


def seed_lines(db, team, n: int) -> None:
    """seed_closed, and lines on every fourth deal (some of them closed)."""
    from decimal import Decimal

    seed_closed(db, team, n)
    gtx = db.scalar("SELECT id FROM products WHERE code = 'GTX-1'")
    for deal_id in [r["id"] for r in db.query("SELECT id FROM deals WHERE deleted_at IS NULL"
                                              " ORDER BY id")][1::4]:
        with db.transaction() as cur:
            deals.insert_lines(cur, team["admin"], deal_id, [{
                "product_id": gtx, "description": "GTX Pro", "quantity": Decimal("2"),
                "unit_price": Decimal("1000")}])


@pytest.mark.parametrize("user", ["admin", "reza"])
@pytest.mark.parametrize("amounts", [True, False])
def test_lines_with_engage_and_close_dates_go_set_based_alike(two, user, amounts):
    for db, team in two:
        seed_lines(db, team, 70)
    counts, rejected, preview, _r, _n, after, undone, _final = compare_dates(
        two, dated_lines_file(70, amounts=amounts), user=user)
    assert counts["update"] > (5 if user == "admin" else 1) and counts["reject"] > 10
    reasons = " ".join(str(e) for _l, e in rejected)
    for words in ("The close date is before the engage date", "no product",
                  "before the deal's latest stage change"):
        assert words in reasons, words
    assert any("product_lines" in c for _l, _a, c in preview)
    changes = [a["changes"] or "" for a in after["all_audit"] if a["entity"] == "deals"]
    assert any('"product_lines"' in c for c in changes)
    if user == "admin":  # a closed deal's new close date, after its lines
        assert any(c.startswith('{"closed_on"') for c in changes)
    assert undone["undone"] == counts["update"]


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_an_upsert_of_lines_with_dates_goes_set_based_alike(two, user):
    for db, team in two:
        seed_lines(db, team, 40)
    counts, _rej, _p, _r, _n, after, undone, _final = compare_dates(
        two, dated_lines_file(40, new=30, amounts=False), user=user, mode="upsert", apart=True)
    assert counts["create"] > 10 and counts["update"] > (2 if user == "admin" else 0)
    assert undone["undone"] == counts["create"] + counts["update"]


def test_lines_with_dates_and_deals_changed_after_the_dry_run_or_since_alike(two):
    from tests.test_importer_lines import compare_lines

    for db, team in two:
        seed_lines(db, team, 40)

    def between(db, team):  # the file's deals saved after the dry run: refused alike
        for deal in db.query("SELECT id, version FROM deals WHERE deleted_at IS NULL"
                             " AND title LIKE 'Deal 1%'"):
            deals.update_deal(db, team["admin"], deal["id"], {"next_step": "Between"},
                              deal["version"])

    def since(db, team):  # a deal the import changed, changed since: its undo refused alike
        deal = db.one("SELECT d.id, d.version FROM deals d JOIN import_records r ON"
                      " r.record_id = d.id WHERE r.action = 'update' ORDER BY r.line LIMIT 1")
        deals.update_deal(db, team["admin"], deal["id"], {"next_step": "Since"},
                          deal["version"])

    text = dated_lines_file(40, amounts=False)
    compare_lines(two, text, "admin", between=between)
    assert [db.scalar("SELECT count(*) FROM imports") for db, _t in two] == [0, 0]
    dry, _after, undone, _final = compare_lines(two, text, "admin", since=since)
    assert dry[0]["update"] > 5 and len(undone["refused"]) == 1
