"""crm/importer_lines.py: deals' product lines worded and compared in SQL exactly as the row
path's Python does (deals.lines_text, importer._line_keys, importer._plain_lines)."""
import json
from decimal import Decimal

from crm import deals, importer, importer_lines
from tests.importer_dbs import make_db
from tests.test_importer_fast import deal_world

DESCRIPTIONS = ["GTX Pro", 'with "quotes" and \\ back', "پارسیان × ۲", "a/b\tc", "Saulė; x|y",
                "line\nbreak", "  spaced  "]
QUANTITIES = ["1", "2.5", "10", "0.125", "1000", "1.2345", "0.001", "999999999"]
PRICES = ["1000", "250.50", "0", "0.01", "12.5", "999999999999.99"]


def test_lines_in_sql_are_the_row_paths_text_keys_and_undo_json(tmp_path):
    db, team = make_db(tmp_path / "lines.duckdb")
    try:
        deal_world(db, team)
        pids = [r["id"] for r in db.query("SELECT id FROM products ORDER BY id")] + [None]
        ids, given = [], {}
        stage = db.scalar("SELECT id FROM stages WHERE name = 'Proposal'")
        for i in range(40):
            deal_id = deals.create_deal(db, team["admin"], {"title": f"D{i}", "stage_id": stage})
            lines = [{"product_id": pids[(i + j) % len(pids)],
                      "description": DESCRIPTIONS[(i + 2 * j) % len(DESCRIPTIONS)],
                      "quantity": Decimal(QUANTITIES[(i + j) % len(QUANTITIES)]),
                      "unit_price": Decimal(PRICES[(i * 3 + j) % len(PRICES)])}
                     for j in range(i % 4)]  # none to three lines
            if lines:
                with db.transaction() as cur:
                    deals.insert_lines(cur, team["admin"], deal_id, lines)
            ids.append(deal_id)
            given[deal_id] = lines
        cur = db.cursor()
        stored = deals.lines_of(cur, ids)
        found = {r[0]: r[1:] for r in cur.execute(importer_lines.current_sql(
            "SELECT unnest(CAST($ids AS BIGINT[]))"), {"ids": ids}).fetchall()}
        cur.close()
        assert set(found) == {d for d in ids if stored.get(d)}
        for deal_id in ids:
            lines = stored.get(deal_id, [])
            keys, text, plain = found.get(deal_id, (None, None, None))
            assert text == deals.lines_text(lines)
            if lines:
                assert plain == json.dumps(importer._plain_lines(lines), ensure_ascii=False)
            assert keys == importer_lines.keys(lines)
            # a file's lines (as the file gives them) match the stored ones exactly when the
            # row path's comparison says they do
            for other in given.values():
                if not other:  # (an empty cell replaces nothing on the row path)
                    continue
                same = importer._line_keys(other) == importer._line_keys(lines)
                assert (importer_lines.keys(other) == keys) == same, (
                    other, lines)
    finally:
        db.close()


# --- the undo of an import that replaced deals' product lines, set-based ------------------

import pytest  # noqa: E402
from unittest import mock  # noqa: E402

from crm import importer_updates, records, rules  # noqa: E402
from tests.test_importer_deal_updates import seed, state, title  # noqa: E402

LINE_CELLS = ["GTX Pro x 2; SKU-7", "MG Special (3)", "", "GTX-1", "SKU-7 x 1.5; GTX Pro",
              "GTX Plus Pro x 2"]


def lines_file(n: int) -> str:
    """Product lines (some the deal has already, some none) with or without an amount, and
    notes; a row with an unknown product."""
    rows = ["Title,Amount,Product lines,Notes"]
    for i in range(n):
        cell = LINE_CELLS[i % len(LINE_CELLS)]
        amount = "" if i % 3 else str(i * 7)
        notes = "" if i % 4 else "lines"
        if i % 17 == 16:
            cell = "No Such Thing x 2"
        rows.append(f'{title(i)},{amount},"{cell}",{notes}')
    return "\n".join(rows) + "\n"


def lines_state(db) -> dict:
    return {**state(db), "lines": db.query(
        "SELECT id, deal_id, product_id, description, quantity, unit_price, created_by"
        " FROM deal_products ORDER BY id")}


def with_lines(db, team, n: int) -> None:
    seed(db, team, n)
    gtx = db.scalar("SELECT id FROM products WHERE code = 'GTX-1'")
    for deal_id in [r["id"] for r in db.query("SELECT id FROM deals WHERE deleted_at IS NULL"
                                              " ORDER BY id")][::4]:
        with db.transaction() as cur:
            deals.insert_lines(cur, team["admin"], deal_id, [{
                "product_id": gtx, "description": "GTX Pro", "quantity": Decimal("2"),
                "unit_price": Decimal("1000")}])


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_the_undo_of_replaced_product_lines_is_set_based_as_the_row_path_undoes(two, user):
    text = lines_file(60)
    results = []
    for (db, team), fast in zip(two, (False, True)):
        with_lines(db, team, 60)
        source = importer.read(text.encode("utf-8"), "deals.csv", fast=False)
        mapping = importer.propose_mapping(deals.DEALS, source.headers)
        assert mapping["Product lines"] == "product_lines"
        plan = importer.plan(db, team[user], deals.DEALS, source, mapping, mode="update",
                             key="title")
        import_id = importer.execute(db, team[user], plan)
        before = lines_state(db)
        # one deal changed since, on both: left as it is and reported
        changed = db.scalar("SELECT record_id FROM import_records WHERE import_id = $i"
                            " ORDER BY line LIMIT 1", {"i": import_id})
        deals.update_deal(db, team["admin"], changed, {"notes": "changed since"},
                          db.scalar("SELECT version FROM deals WHERE id = $i", {"i": changed}))
        called = []
        real = importer_updates.undo_updates

        def spy(*args):
            called.append(real(*args) if fast else None)
            return called[-1]

        with mock.patch.object(importer_updates, "undo_updates", spy):
            undone = importer.undo(db, team[user], import_id)
        assert (called[0] is not None) == fast  # set-based, not sent back to the row path
        results.append((plan.counts, before, undone, lines_state(db)))
    slow, fast = results
    assert slow[0]["update"] > 10 and slow[0]["reject"] > 0
    for part, a, b in zip(("counts", "import", "undo", "after undo"), slow, fast):
        if isinstance(a, dict):
            for k in a:
                assert b[k] == a[k], (part, k)
        assert b == a, part
    assert fast[2]["undone"] > 10 and len(fast[2]["refused"]) == 1


# --- deal updates and upserts that bring product lines, set-based -------------------------

MESSY_CELLS = ["GTX Pro x 2; SKU-7", "MG Special (3)", "", "GTX-1", "sku-7 x 1,5; GTX Pro",
               "GTX Plus Pro x 2", "2 x GTX Pro", "GTX Pro: 0.125", "GTXPro x 2",
               "GTX Basic", "No Such Thing x 2", "GTX Pro x 2", "MG Special * 1000 | GTX-P",
               "GTX Pro x 0", "N/A", "GTX Pro ×3;;"]
AMOUNTS = ["", "1,234.56", "", "12 500 €", "۱٬۲۳۴٫۵", "(3)", "", "99"]


STAGES = ["Proposal", "negotiation", "", "Won", "Proposal", "Lost", "Qualifcation"]


def messy_lines_file(n: int, new: int = 0, stages: bool = False, amounts: bool = True,
                     dates: bool = False) -> str:
    """Product lines in odd spellings (unknown products, near misses, a product without a
    price, a zero quantity, decimal commas), amounts in odd formats or none, notes; titles of
    a rep's and others' deals, a repeated title, one not there, and (an upsert) new deals;
    stages: a stage column too (moves, a near miss, a lost deal without a reason);
    amounts=False: no amount column (the lines price a deal); dates: engage and close dates
    (odd formats, a close before the engage date, none)."""
    rows = ["Title," + ("Amount," if amounts else "") + "Product lines,Notes"
            + (",Stage" if stages else "") + (",Engaged,Closed" if dates else "")]

    def more(i, amount):
        return ((f',"{STAGES[i % len(STAGES)]}"' if stages else "")
                + (f",{ENGAGED[i % len(ENGAGED)]},{CLOSED[i % len(CLOSED)]}" if dates else ""),
                f'"{amount}",' if amounts else "")

    for i in range(n):
        cell = MESSY_CELLS[(i * 7) % len(MESSY_CELLS)]
        notes = ["", "lines", "یادداشت" if i % 5 == 0 else "", ""][i % 4]
        tail, amount = more(i, AMOUNTS[i % len(AMOUNTS)])
        rows.append(f'"{title(i)}",{amount}"{cell}",{notes}{tail}')
    tail, amount = more(0, 5)
    rows.append(f'"{title(2)}",{amount}"GTX Pro",{tail}')  # the same title as an earlier row
    tail, amount = more(1, 1)
    rows.append(f'"No such deal",{amount}"GTX Pro",{tail}')
    for i in range(new):
        tail, amount = more(i + 3, AMOUNTS[i % len(AMOUNTS)])
        rows.append(f'"New deal {i}",{amount}"{MESSY_CELLS[i % len(MESSY_CELLS)]}",{tail}')
    return "\n".join(rows) + "\n"


# engage and close dates in odd formats; a close before the engage date; an earlier day
# than a deal's latest stage change (today's seed); none; not a date
ENGAGED = ["2024-01-05", "", "03/02/2024", "2024-02-30", "15.01.2024", "", "2020-06-01"]
CLOSED = ["", "2024-03-01", "2023-12-01", "", "N/A", "2099-01-01", "yesterday", "2024-06-30"]


def full_state(db, top=None) -> dict:
    """lines_state with the stage spans; the audit rows of deals an upsert created (ids over
    top) apart and sorted: the set-based create (importer_deals.write) writes every new
    deal's row, then their lines' rows, where the row path writes a deal's two in turn (as
    the create comparisons of tests/test_importer_fast.py take it)."""
    found = lines_state(db)
    key = {r["id"]: (r["title"], r["id"]) for r in db.query("SELECT id, title FROM deals")}
    found["import_records"] = [  # the set-based create's runs (span) a record each
        r for r in found["import_records"] if r[2] != "create"] + sorted(
        (r["line"] + k, key[r["record_id"] + k], "create", r["before"], r["version_after"])
        for r in db.query("SELECT * FROM import_records WHERE action = 'create'")
        for k in range(r["span"] or 1))
    if top is not None:
        audit = found.pop("audit")
        found["audit"] = [a for a in audit if not a[0] or a[0][1] <= top]
        found["audit_created"] = sorted((a for a in audit if a[0] and a[0][1] > top), key=str)
    found["reach"] = db.query("SELECT * FROM stage_reach_counts WHERE deals <> 0 ORDER BY ALL")
    found["reached"] = db.query("SELECT * FROM deal_stages_reached ORDER BY ALL")
    return {**found, "spans": db.query(
        "SELECT history_id, deal_id, stage_id, amount, probability, to_at > now() AS open"
        " FROM deal_stage_spans ORDER BY ALL")}


def compare_lines(two, text: str, user: str, mode: str = "update", between=None,
                  since=None):
    """The file through the row path and set-based: dry run (counts, rejected rows with their
    reasons, the rejected-rows CSV, the first updates' changes), import, undo, compared."""
    results = []
    for (db, team), fast in zip(two, (False, True)):
        source = importer.read(text.encode("utf-8"), "deals.csv", fast=fast)
        mapping = importer.propose_mapping(deals.DEALS, source.headers)
        assert mapping["Product lines"] == "product_lines"
        plan = importer.plan(db, team[user], deals.DEALS, source, mapping, mode=mode,
                             key="title")
        assert bool(plan.staged_updates) == fast, plan.notes
        rejected = sorted((r.line, r.errors) for r in plan.rows if r.action == "reject")
        shown = {r.line: (r.action, r.changes) for r in plan.rows
                 if r.action in ("update", "skip") and r.line in getattr(
                     plan, "_preview_lines", {r.line})}
        dry = (plan.counts, rejected, importer.rejected_csv(plan), shown)
        if between:
            between(db, team)
        top = db.scalar("SELECT max(id) FROM deals")
        try:
            import_id = importer.execute(db, team[user], plan)
        except importer.ImportFileError as exc:
            results.append((dry, str(exc), full_state(db)))
            continue
        after = full_state(db, top)
        if since:
            since(db, team)
        real = importer_updates.undo_updates
        with mock.patch.object(importer_updates, "undo_updates",
                               real if fast else lambda *a: None):
            undone = importer.undo(db, team[user], import_id)
        results.append((dry, after, undone, full_state(db, top)))
    slow, fast = results
    (s_counts, s_rej, s_csv, s_shown), (f_counts, f_rej, f_csv, f_shown) = slow[0], fast[0]
    assert f_counts == s_counts
    assert f_rej == s_rej
    assert f_csv == s_csv
    assert f_shown and all(f_shown[k] == s_shown[k] for k in f_shown), [
        (k, f_shown[k], s_shown[k]) for k in f_shown if f_shown[k] != s_shown[k]][:3]
    if isinstance(slow[1], str):  # refused: the row path names the row, the set-based
        # write the records (as tests/test_importer_deal_updates.py has it); nothing written
        assert "changed since the dry run" in slow[1] and "changed since the dry run" in fast[1]
        assert fast[2] == slow[2]
        return fast
    for part, a, b in zip(("import", "undo", "after undo"), slow[1:], fast[1:]):
        if isinstance(a, dict):
            for k in a:
                assert b[k] == a[k], (part, k)
        assert b == a, part
    return fast


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_a_deal_update_with_product_lines_is_set_based_as_the_row_path_writes_it(two, user):
    for db, team in two:
        with_lines(db, team, 90)
    dry, after, undone, _final = compare_lines(two, messy_lines_file(90), user)
    counts, rejected = dry[0], dry[1]
    assert counts["update"] > 10 and counts["reject"] > 5
    reasons = " ".join(str(e) for _l, e in rejected)
    if user == "admin":
        for words in ("no product 'No Such Thing'", "Did you mean GTX Pro?", "has no unit price",
                      "the quantity must be above zero", "the same Title as row 4"):
            assert words in reasons, words
    assert any('"product_lines"' in (a[2] or "") for a in after["audit"])
    assert undone["undone"] == counts["update"]


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_a_deal_upsert_with_product_lines_creates_and_updates_alike(two, user):
    for db, team in two:
        with_lines(db, team, 40)
    def since(db, team):  # a deal the import moved and gave lines changes since
        deal = db.one("SELECT d.id, d.version FROM deals d JOIN import_records r ON"
                      " r.record_id = d.id WHERE r.action = 'update' AND r.before LIKE"
                      " '%stage_id%product_lines%' ORDER BY r.line LIMIT 1")
        deals.update_deal(db, team["admin"], deal["id"], {"next_step": "Since"},
                          deal["version"])

    dry, after, undone, _final = compare_lines(two, messy_lines_file(40, new=20, stages=True),
                                               user, mode="upsert", since=since)
    assert len(undone["refused"]) == 1
    assert dry[0]["create"] > 5 and dry[0]["update"] > 3
    reasons = " ".join(str(e) for _l, e in dry[1])
    assert "A lost deal needs a lost reason" in reasons and "Did you mean qualification?" in reasons
    assert any(a[1] == "move" for a in after["audit"])
    assert any(a[1] == "update" and "line_added" in (a[2] or "") for a in after["audit"])


def test_undo_refuses_deals_changed_since_and_a_deal_changed_after_the_dry_run(two):
    for db, team in two:
        with_lines(db, team, 40)

    def since(db, team):
        deal = db.one("SELECT id, version FROM deals WHERE title = 'Deal 1'")
        deals.update_deal(db, team["admin"], deal["id"], {"next_step": "Since"},
                          deal["version"])

    final = compare_lines(two, messy_lines_file(40), "admin", since=since)
    assert [r["reason"] for r in final[2]["refused"]] == ["changed since the import"]

    def between(db, team):  # the records changed after the dry run: refused alike
        deals.delete_deal(db, team["admin"], db.scalar("SELECT id FROM deals"
                                                       " WHERE title = 'Deal 3'"))

    compare_lines(two, messy_lines_file(40), "admin", between=between)


@pytest.mark.parametrize("stages", [False, True])
def test_the_fast_update_with_lines_and_its_undo_do_not_use_the_row_path(two, monkeypatch,
                                                                          stages):
    db, team = two[1]
    admin = team["admin"]
    with_lines(db, team, 40)
    text = "\n".join(["Title,Amount,Product lines" + (",Stage" if stages else "")] + [
        f"{title(i)},{'' if i % 2 else '5'},GTX Pro x {1 + i % 3}"
        + ((",Negotiation" if i % 3 else ",Proposal") if stages else "")
        for i in range(40) if i != 4]) + "\n"
    source = importer.read(text.encode(), "d.csv", fast=True)
    plan = importer.plan(db, admin, deals.DEALS, source,
                         importer.propose_mapping(deals.DEALS, source.headers),
                         mode="update", key="title")
    assert plan.staged_updates and plan.counts["update"] == 39

    def refuse(*args, **kwargs):
        raise AssertionError("the row path ran")
    for name in ("move_deal_in", "update_deal_in", "replace_lines", "insert_lines", "lines_of"):
        monkeypatch.setattr(deals, name, refuse)
    monkeypatch.setattr(records, "update_in", refuse)
    import_id = importer.execute(db, admin, plan)
    assert db.scalar("SELECT count(*) FROM duckdb_tables()"
                     " WHERE database_name = 'crm_import_stage'") == 0
    assert db.scalar("SELECT count(DISTINCT deal_id) FROM deal_products") == 39
    assert db.scalar("SELECT count(*) FROM deals WHERE amount = 3000") == sum(
        1 for i in range(40) if i != 4 and i % 2 and i % 3 == 2)  # GTX Pro x 3, no amount
    assert importer.undo(db, admin, import_id)["refused"] == []
    assert db.scalar("SELECT count(DISTINCT deal_id) FROM deal_products") == 10


def test_files_without_an_amount_column_or_with_dates_go_set_based(two):
    """(They went row by row: tests/test_importer_deal_dates.py compares lines with dates.)"""
    db, team = two[1]
    with_lines(db, team, 10)
    for text, mapping in (
            ("Title,Product lines\nDeal 1,GTX Pro\n",
             {"Title": "title", "Product lines": "product_lines"}),
            ("Title,Amount,Product lines,Engaged\nDeal 1,1,GTX Pro,2025-01-01\n",
             {"Title": "title", "Amount": "amount", "Product lines": "product_lines",
              "Engaged": "created_at"})):
        source = importer.read(text.encode(), "d.csv", fast=True)
        plan = importer.plan(db, team["admin"], deals.DEALS, source, mapping, mode="update",
                             key="title")
        assert plan.staged_updates, plan.notes
        assert not any("Read row by row" in n for n in plan.notes), plan.notes
        assert plan.counts["update"] == 1


def test_with_rules_watching_deals_lines_go_row_by_row_and_rules_run(two):
    for db, team in two:
        with_lines(db, team, 30)
        rules.save_rule(db, team["admin"], {
            "name": "Priced", "entity": "deals", "trigger": "changed",
            "trigger_config": {"field": "amount"}, "match": "all", "conditions": [],
            "enabled": True, "actions": [{"kind": "create_task", "title": "Check {title}",
                                          "assignee": "owner", "due_days": 2}]})
    compare_lines(two, messy_lines_file(30), "admin")
    made = [db.query("SELECT title, owner_id FROM tasks ORDER BY title") for db, _t in two]
    assert made[0] == made[1] and made[0]


def test_the_same_lines_spelt_otherwise_skip_a_deal_alike(two):
    for db, team in two:
        with_lines(db, team, 24)
        with db.transaction() as cur:  # (the same on both: a setup, not a command)
            cur.execute("UPDATE deals SET amount = 2000 WHERE id IN (SELECT deal_id FROM"
                        " deal_products)")
    cells = ["GTX Pro x 2", "gtx-1 * 2.000", "2 x GTX Pro", "GTX Pro (2)"]
    text = "\n".join(["Title,Amount,Product lines"] + [
        f'{title(i)},"{["", "2,000", "2000.00", ""][i % 4]}",{cells[i % 4]}'
        for i in range(24)]) + "\n"
    dry, *_rest = compare_lines(two, text, "admin")
    assert dry[0]["skip"] >= 5 and dry[0]["update"] >= 10


# --- files without an amount column: a row's lines price the deal, a row without keeps it --

@pytest.mark.parametrize("user", ["admin", "reza"])
@pytest.mark.parametrize("mode", ["update", "upsert"])
def test_lines_without_an_amount_column_go_set_based_as_the_row_path_prices_them(two, user,
                                                                                  mode):
    for db, team in two:
        with_lines(db, team, 60)

    def between(db, team):  # a deal without lines in the file changed after the dry run:
        # its amount, which the import keeps, is not the dry run's any more (skipped alike)
        deal = db.one("SELECT id, version FROM deals WHERE title = $t", {"t": title(2)})
        deals.update_deal(db, team["admin"], deal["id"], {"amount": 4242}, deal["version"])

    dry, after, undone, _final = compare_lines(
        two, messy_lines_file(60, new=10 if mode == "upsert" else 0,
                              stages=mode == "upsert", amounts=False), user, mode=mode)
    assert dry[0]["update"] > 5 and dry[0]["reject"] > 5
    assert any('"amount"' in (a[2] or "") for a in after["audit"])
    assert undone["undone"] == dry[0]["update"] + dry[0].get("create", 0)
    if mode == "update":  # (an upsert's new deals' audit rows come in another order)
        compare_lines(two, messy_lines_file(30, amounts=False), user, between=between)
