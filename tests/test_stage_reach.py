"""deal_stages_reached and stage_reach_counts (crm/stage_reach.py) stay what the stage history
and the deals say through every writer of either, and the forecast's learned stage
probabilities read from the counts equal the count over the whole history
(forecast._learned_from_history): after creates, moves and closes, deletes and restores, a
stage deleted with its deals moved, imports and their undo (row by row and set-based), a
stage's kind changed, a backup restored and a demo load."""
import random

import pytest

from crm import deals, importer, pipelines, stage_reach
from crm.analytics import forecast
from crm.analytics.periods import Scope
from tests.test_importer_fast import DEAL_HEADER, DEALS_MESSY
from tests import test_stage_spans
from tests.test_stage_spans import _import

history = test_stage_spans.history  # the fixture: random backdated histories
EVERYONE = Scope(*(forecast.date.min, forecast.date.max) * 2)


def stored(db) -> tuple[list[dict], list[dict]]:
    return (db.query("SELECT deal_id, reached_stage_id, pipeline_id, stage_id"
                     " FROM deal_stages_reached ORDER BY 1, 2"),
            db.query("SELECT pipeline_id, stage_id, reached_stage_id, deals"
                     " FROM stage_reach_counts WHERE deals <> 0 ORDER BY 1, 2, 3"))


def from_history(db) -> tuple[list[dict], list[dict]]:
    """What the tables should hold, from the history and the deals as they are."""
    rows = ("SELECT DISTINCT h.deal_id, h.to_stage_id AS reached_stage_id, t.pipeline_id,"
            " t.stage_id FROM deal_stage_history h JOIN deals t ON t.id = h.deal_id"
            " WHERE t.deleted_at IS NULL")
    return (db.query(rows + " ORDER BY 1, 2"),
            db.query(f"SELECT pipeline_id, stage_id, reached_stage_id, count(*) AS deals"
                     f" FROM ({rows}) r GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"))


def check(db, team) -> None:
    assert stored(db) == from_history(db)
    assert db.scalar("SELECT count(*) FROM stage_reach_counts WHERE deals < 0") == 0
    learned = 0
    for pipe in (p["id"] for p in pipelines.list_pipelines(db)):
        for who in ("admin", "maria", "vic"):  # everyone's deals: the counts
            new = forecast.learned_probabilities(db, team[who], pipe)
            old = forecast._learned_from_history(db, team[who], pipe, EVERYONE)
            assert [(r["stage_id"], r["deals"], r["won"]) for r in new] == [
                (r["stage_id"], old.get(r["stage_id"], {"deals": 0})["deals"],
                 old.get(r["stage_id"], {"won": 0})["won"]) for r in new], (who, pipe)
            learned += sum(r["deals"] for r in new)
    assert learned  # closed deals reached open stages


@pytest.fixture
def closed(db, team, history):
    """The history's deals, a third of them then won or lost by the commands."""
    rng = random.Random(7)
    for deal_id in history[::3]:
        deal = db.one("SELECT pipeline_id, deleted_at FROM deals WHERE id = $id",
                      {"id": deal_id})
        if deal["deleted_at"] is not None:
            continue
        target = rng.choice([s for s in pipelines.stages_of(db, deal["pipeline_id"])
                             if s["kind"] != "open"])
        deals.move_deal(db, team["admin"], deal_id, target["id"], lost_reason="price")
    return history


def test_a_rebuild_gives_the_history_s_counts(db, team, closed):
    with db.transaction() as cur:
        cur.execute("DELETE FROM stage_reach_counts")
        stage_reach.rebuild(cur)
    check(db, team)


def test_moves_closes_deletes_and_restores_keep_them(db, team, closed):
    rng = random.Random(5)
    stages = {p["id"]: pipelines.stages_of(db, p["id"]) for p in pipelines.list_pipelines(db)}
    check(db, team)
    for deal_id in rng.sample(closed, 25):
        deal = db.one("SELECT pipeline_id, deleted_at FROM deals WHERE id = $id",
                      {"id": deal_id})
        if deal["deleted_at"] is not None:
            deals.restore_deal(db, team["admin"], deal_id)
        target = rng.choice(stages[deal["pipeline_id"]])
        deals.move_deal(db, team["admin"], deal_id, target["id"], lost_reason="timing")
    for deal_id in closed[1::7]:
        deals.delete_deal(db, team["admin"], deal_id)
    first = stages[min(stages)]
    won = next(s for s in first if s["kind"] == "won")
    new = deals.create_deal(db, team["maria"], {"title": "Fresh", "stage_id": first[0]["id"],
                                                "amount": "70"})
    deals.move_deal(db, team["maria"], new, first[1]["id"])
    deals.move_deal(db, team["maria"], new, won["id"])
    deals.create_deal(db, team["reza"], {"title": "Won at once", "stage_id": won["id"]})
    check(db, team)


def test_a_stage_deleted_with_its_deals_moved_keeps_them(db, team, closed):
    pipe = min(p["id"] for p in pipelines.list_pipelines(db))
    held = db.query("SELECT stage_id, count(*) AS n FROM deals WHERE pipeline_id = $p"
                    " GROUP BY stage_id ORDER BY n DESC", {"p": pipe})
    kinds = {s["id"]: s for s in pipelines.stages_of(db, pipe)}
    source = next(r["stage_id"] for r in held if kinds[r["stage_id"]]["kind"] == "open")
    target = next(s for s in kinds.values() if s["kind"] == "won")
    pipelines.delete_stage(db, team["admin"], source, move_deals_to=target["id"])
    check(db, team)


def test_a_stage_turned_won_counts_at_once(db, team, closed):
    """Kinds are read at query time: an admin's change needs no recount."""
    pipe = min(p["id"] for p in pipelines.list_pipelines(db))
    held = {r["stage_id"] for r in db.query("SELECT DISTINCT stage_id FROM deals"
                                             " WHERE pipeline_id = $p", {"p": pipe})}
    stage = next(s for s in pipelines.stages_of(db, pipe)
                 if s["kind"] == "open" and s["id"] in held)
    before = forecast.learned_probabilities(db, team["admin"], pipe)
    pipelines.update_stage(db, team["admin"], stage["id"], {"kind": "won"})
    assert forecast.learned_probabilities(db, team["admin"], pipe) != before
    check(db, team)


@pytest.mark.parametrize("fast", [False, True])
def test_an_import_of_deals_and_its_undo_keep_them(db, team, closed, engine, fast):
    # engage dates move the first history row back (backdating); closed and open stages
    import_id = _import(db, team["admin"], "\n".join([DEAL_HEADER, *DEALS_MESSY]), fast)
    check(db, team)
    importer.undo(db, team["admin"], import_id)
    check(db, team)


@pytest.mark.parametrize("fast", [False, True])
def test_an_import_that_moves_deals_and_its_undo_keep_them(db, team, closed, engine, fast):
    if fast and engine != "duckdb":
        pytest.skip("deal updates import row by row on PostgreSQL")
    rows = db.query("SELECT d.title, s.pipeline_id FROM deals d JOIN stages s"
                    " ON s.id = d.stage_id WHERE d.deleted_at IS NULL AND s.kind = 'open'"
                    " ORDER BY d.id LIMIT 12")
    names = {p["id"]: [s["name"] for s in pipelines.stages_of(db, p["id"])
                       if s["kind"] == "won"] for p in pipelines.list_pipelines(db)}
    text = "\n".join(["Title,Deal Stage", *[f"{r['title']},{names[r['pipeline_id']][-1]}"
                                            for r in rows]])
    import_id = _import(db, team["admin"], text, fast, key="title", mode="update")
    assert import_id
    check(db, team)
    importer.undo(db, team["admin"], import_id)
    check(db, team)


def test_a_restored_backup_and_a_copy_rebuild_them(db, team, closed, new_database, tmp_path):
    from crm import backup
    from crm.db import Database

    manifest = backup.backup(db, tmp_path / "b")
    assert "deal_stages_reached" not in manifest["tables"]
    assert "stage_reach_counts" not in manifest["tables"]
    target = Database(new_database())
    try:
        backup.restore(target, tmp_path / "b")
        assert stored(target) == stored(db) == from_history(db)
    finally:
        target.close()


def test_the_demo_load_builds_them(db, team):
    from crm import demo

    demo.load_demo(db, "small", seed=3)
    assert db.scalar("SELECT count(*) FROM deal_stages_reached") > 1000
    check(db, team)
