"""Issue #8: a deal update's or upsert's close date is written, not dropped, alike on the row
path and set-based (importer._close_date, importer_deals.write_updates): a move into a won or
lost stage closes on the file's day (its history row and time in the stage from that day's
start), refused before the deal's latest stage change; a deal closed already that stays closed
takes the file's close date; a deal that stays open keeps its own (said in the dry run)."""
from datetime import date, datetime

import pytest

from crm import deals, importer, rules
from tests.test_importer_deal_dates import compare_dates
from tests.test_importer_deal_updates import seed_closed, title
from tests.test_importer_fast import make_db

LONG_AGO = datetime(2023, 3, 1, 9, 0)


@pytest.fixture
def two(tmp_path):
    made = [make_db(tmp_path / "row.duckdb"), make_db(tmp_path / "fast.duckdb")]
    yield made
    for db, _team in made:
        db.close()
    rules.invalidate()


def seed(two, n: int) -> None:
    """seed_closed, the history of most deals moved back to LONG_AGO (every fifth deal's stays
    today's: a close date in the past is before its latest stage change)."""
    for db, team in two:
        seed_closed(db, team, n)
        with db.transaction() as cur:
            keep = "SELECT id FROM deals WHERE id % 5 = 0"
            cur.execute(f"UPDATE deal_stage_history SET changed_at = $t WHERE deal_id NOT IN"
                        f" ({keep})", {"t": LONG_AGO})
            cur.execute(f"UPDATE deals SET stage_entered_at = $t, closed_on = CASE WHEN"
                        f" closed_on IS NOT NULL THEN DATE '2023-03-01' END WHERE id NOT IN"
                        f" ({keep})", {"t": LONG_AGO})
            from crm import stage_reach, stage_spans

            stage_spans.refresh(cur, "SELECT id FROM deals")
            stage_reach.rebuild(cur)


CLOSE_DATES = ["2024-06-30", "", "15.01.2024", "2023-02-01", "2024-12-31", "not a date"]


def close_file(n: int, new: int = 0, stage: bool = True) -> str:
    """Deals 0..n-1 (and `new` not there) moved into won, lost and open stages (or, without
    a stage column, left where they are) with close dates: some none, one not a date, one
    before the history moved back (2023-02-01)."""
    stages = ["Won", "Lost", "Negotiation", "", "Won", "Lost", "proposal"]
    lines = ["Title,Stage,Lost reason,Closed on,Amount" if stage else "Title,Closed on,Amount"]
    for i in range(n + new):
        name = title(i) if i < n else f"New {i}"
        cells = [name]
        if stage:
            cells += [stages[i % 7], "price" if stages[i % 7] == "Lost" else ""]
        # (without a stage: the closed deals, every sixth, take each kind of date in turn)
        cells += [CLOSE_DATES[i % 6 if stage else i // 6 % 6], str(i * 10) if i % 3 == 0 else ""]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def reach(db) -> tuple:
    """The kept stage reach (crm/stage_reach.py) and a recount of it from the history."""
    from crm import stage_reach

    def kept():
        return (db.query("SELECT deal_id, reached_stage_id, pipeline_id, stage_id"
                         " FROM deal_stages_reached ORDER BY 1, 2"),
                db.query("SELECT pipeline_id, stage_id, reached_stage_id, deals FROM"
                         " stage_reach_counts WHERE deals <> 0 ORDER BY 1, 2, 3"))
    found = kept()
    with db.transaction() as cur:
        stage_reach.rebuild(cur)
    assert kept() == found
    return found


def check_written(db, after, preview, rejected):
    """The deals the file closed or that were closed took its date; the history and time in
    the stage of a move into won or lost start that day; late dates were refused."""
    won_lost = {r["id"] for r in db.query("SELECT id FROM stages WHERE kind <> 'open'")}
    closed_dates = {date(2024, 6, 30), date(2024, 1, 15), date(2024, 12, 31)}
    written = [d for d in after["dates"] if d["closed_on"] in closed_dates]
    assert written, after["dates"]
    moved_at = {h["changed_at"] for h in after["history_at"] if h["to_stage_id"] in won_lost}
    assert {datetime(2024, 6, 30), datetime(2024, 12, 31)} & moved_at, moved_at
    entered = {d["stage_entered_at"] for d in after["dates"]}
    assert {datetime(2024, 6, 30), datetime(2024, 12, 31)} & entered
    changes = [c["closed_on"] for _l, _a, c in preview if "closed_on" in c]
    assert any(new in closed_dates for _old, new in changes), preview
    reasons = " ".join(str(e) for _l, e in rejected)
    assert "“Closed on” is" in reasons and "latest stage change" in reasons, rejected


@pytest.mark.parametrize("user", ["admin", "reza"])
@pytest.mark.parametrize("mode", ["update", "upsert"])
def test_close_dates_of_moves_and_closed_deals_are_written_alike(two, user, mode):
    seed(two, 60)
    before = two[0][0].query("SELECT id, closed_on, stage_entered_at FROM deals ORDER BY id")
    reached = []
    counts, rejected, preview, _r, notes, after, undone, final = compare_dates(
        two, close_file(60, new=20 if mode == "upsert" else 0), user=user, mode=mode,
        since=lambda db, _team: reached.append(reach(db)))
    assert reached[0] == reached[1] and reached[0][0]  # the deals' stage reach, alike
    assert reach(two[0][0]) == reach(two[1][0])  # and after the undo
    assert counts["update"] > 5 and counts["reject"] > 2
    check_written(two[1][0], after, preview, rejected)
    assert undone["refused"] == []
    for db, _team in two:  # the undo gives every deal its close date back
        now = db.query("SELECT id, closed_on, stage_entered_at FROM deals WHERE id IN"
                       " (SELECT unnest($ids)) ORDER BY id", {"ids": [r["id"] for r in before]})
        assert [(r["id"], r["closed_on"]) for r in now] == \
            [(r["id"], r["closed_on"]) for r in before]
    said = [n for n in notes if "stay open" in n]
    assert len(said) == 1 and "“Closed on”" in said[0], notes


@pytest.mark.parametrize("mode", ["update", "upsert"])
def test_a_closed_deal_takes_the_file_close_date_without_a_stage_column_alike(two, mode):
    seed(two, 40)
    counts, rejected, preview, _r, _n, after, undone, final = compare_dates(
        two, close_file(40, new=5 if mode == "upsert" else 0, stage=False), mode=mode)
    db = two[1][0]
    closed = {r["title"] for r in db.query(
        "SELECT d.title FROM deals d JOIN stages s ON s.id = d.stage_id"
        " WHERE s.kind <> 'open' AND d.deleted_at IS NULL")}
    taken = [d for d in after["dates"] if d["closed_on"] in (
        date(2024, 6, 30), date(2024, 1, 15), date(2024, 12, 31), date(2023, 2, 1))]
    assert len(taken) >= 3 and all(d["title"] in closed for d in taken)  # not open ones
    assert any("closed_on" in c for _l, _a, c in preview)
    audit = [a for a in after["all_audit"] if a["entity"] == "deals"
             and "closed_on" in (a["changes"] or "")]
    assert audit and undone["refused"] == []
    assert {d["title"]: d["closed_on"] for d in final["dates"]} != \
        {d["title"]: d["closed_on"] for d in after["dates"]}


def test_with_rules_watching_deals_close_dates_go_row_by_row_alike(two):
    seed(two, 30)
    for db, team in two:
        rules.save_rule(db, team["admin"], {
            "name": "Moved", "entity": "deals", "trigger": "changed",
            "trigger_config": {"field": "stage_id"}, "match": "all", "conditions": [],
            "enabled": True, "actions": [{"kind": "create_task", "title": "Check {title}",
                                          "assignee": "owner", "due_days": 2}]})
    compare_dates(two, close_file(30))
    made = [db.query("SELECT title, owner_id FROM tasks ORDER BY title") for db, _t in two]
    assert made[0] == made[1] and made[0]


def test_fast_close_dates_do_not_use_the_row_path(two, monkeypatch):
    seed(two, 30)
    db, team = two[1]
    admin = team["admin"]
    source = importer.read(close_file(30, new=10).encode(), "d.csv", fast=True)
    plan = importer.plan(db, admin, deals.DEALS, source,
                         importer.propose_mapping(deals.DEALS, source.headers),
                         mode="upsert", key="title")
    assert plan.staged_updates

    def refuse(*args, **kwargs):
        raise AssertionError("the row path ran")
    for name in ("insert_deal", "move_deal_in", "update_deal_in", "relink_competitor"):
        monkeypatch.setattr(deals, name, refuse)
    monkeypatch.setattr(importer, "write_row", refuse)
    monkeypatch.setattr(importer, "_set_closed_on", refuse)
    import_id = importer.execute(db, admin, plan)
    assert db.scalar("SELECT count(*) FROM deals WHERE closed_on = DATE '2024-06-30'")
    monkeypatch.undo()
    assert importer.undo(db, admin, import_id)["refused"] == []


def test_close_dates_beside_product_lines_are_written_alike(two):
    """A file with product lines and close dates for closed deals (set-based too, since
    importer_lines.takes takes dates: tests/test_importer_deal_dates.py compares all of it):
    the close dates written, alike."""
    seed(two, 20)
    closed = [r["title"] for r in two[0][0].query(
        "SELECT d.title FROM deals d JOIN stages s ON s.id = d.stage_id"
        " WHERE s.kind <> 'open' AND d.deleted_at IS NULL ORDER BY d.id")]
    assert closed
    text = "Title,Product lines,Closed on\n" + "".join(
        f"{t},GTX Pro x 2,2024-07-0{1 + k % 9}\n" for k, t in enumerate(closed))
    found = []
    for (db, team), fast in zip(two, (False, True)):
        source = importer.read(text.encode(), "d.csv", fast=fast)
        plan = importer.plan(db, team["admin"], deals.DEALS, source,
                             importer.propose_mapping(deals.DEALS, source.headers),
                             mode="update", key="title")
        assert bool(plan.staged_updates) == fast
        assert not any("Read row by row" in n for n in plan.notes), plan.notes
        importer.execute(db, team["admin"], plan)
        found.append(db.query("SELECT title, closed_on FROM deals WHERE title IN"
                              " (SELECT unnest($t)) ORDER BY id", {"t": closed}))
    assert found[0] == found[1]
    assert all(r["closed_on"] and r["closed_on"].year == 2024 for r in found[0])


def test_a_close_date_on_the_day_of_the_latest_change_closes_just_after_it_alike(two):
    """Closing on the very day of the deal's latest stage change (e.g. deals made today,
    closed "today" by a file) is no earlier day: the move is written just after that change,
    so the history stays in order; only an earlier day is refused."""
    seed(two, 20)
    db = two[0][0]
    open_deals = db.query("SELECT d.id, d.title FROM deals d JOIN stages s ON s.id = d.stage_id"
                          " WHERE s.kind = 'open' AND d.deleted_at IS NULL ORDER BY d.id")
    old = [r["title"] for r in open_deals if r["id"] % 5][:3]  # their history: LONG_AGO
    new = [r["title"] for r in open_deals if r["id"] % 5 == 0][:2]  # theirs: today's
    assert len(old) == 3 and len(new) == 2
    today = date.today().isoformat()
    text = "Title,Stage,Closed on\n" + "".join(f"{t},Won,2023-03-01\n" for t in old) + \
        "".join(f"{t},Won,{today}\n" for t in new) + f"{old[0]}x,Won,2023-03-01\n"
    counts, rejected, _p, _r, _n, after, undone, _f = compare_dates(two, text)
    assert (counts["update"], len(rejected)) == (5, 1), (counts, rejected)  # (not there)
    dates = {d["title"]: d for d in after["dates"]}  # (after the import, both paths alike)
    for t in old:
        assert dates[t]["closed_on"] == date(2023, 3, 1)
        # just after the latest change, 2023-03-01 09:00 (the day's start is before it)
        assert dates[t]["stage_entered_at"] == datetime(2023, 3, 1, 9, 0, 0, 1)
    for t in new:
        assert dates[t]["closed_on"] == date.today()
        # (a moment of this run reads "now": the deal's day, after its latest change)
        assert dates[t]["stage_entered_at"] == "now"
    assert undone["refused"] == []


@pytest.mark.parametrize("lines", [False, True])
def test_the_undo_of_closed_deals_new_close_dates_is_set_based_alike(two, lines):
    """The close dates a file gave deals closed already (with their product lines, or not)
    are given back set-based, after the fields and lines, as the row path's undo gives them
    back a record at a time (importer._set_closed_on)."""
    from unittest import mock

    from crm import importer_updates

    seed(two, 30)
    titles = [r["title"] for r in two[0][0].query("SELECT title FROM deals WHERE deleted_at"
                                                  " IS NULL ORDER BY id")]
    cells = ["GTX Pro x 2", "", "SKU-7", "No Such Thing"]
    text = "Title," + ("Product lines," if lines else "") + "Closed on,Next step\n" + "".join(
        f"{t}," + (f"{cells[k % 4]}," if lines else "")
        + f"{CLOSE_DATES[k % 6]},{'Call' if k % 3 else ''}\n" for k, t in enumerate(titles))
    called = []
    real = importer_updates.undo_updates

    def spy(*args):
        called.append(real(*args))
        return called[-1]

    with mock.patch.object(importer_updates, "undo_updates", spy):
        counts, rejected, _p, _r, _n, after, undone, final = compare_dates(two, text)
    assert called and called[0] is not None  # set-based, not sent back to the row path
    assert counts["update"] > 5 and undone["undone"] == counts["update"]
    changes = [a["changes"] or "" for a in after["all_audit"] if a["entity"] == "deals"]
    assert any(c.startswith('{"closed_on"') for c in changes)
