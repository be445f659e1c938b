"""crm/importer_lines.py: deals' product lines worded and compared in SQL exactly as the row
path's Python does (deals.lines_text, importer._line_keys, importer._plain_lines)."""
import json
from decimal import Decimal

from crm import deals, importer, importer_lines
from tests.test_importer_fast import deal_world, make_db

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
