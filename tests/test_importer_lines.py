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

from crm import importer_updates  # noqa: E402
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
