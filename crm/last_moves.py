"""deal_last_moves: each deal's last stage history row, kept beside deal_stage_history by every
writer of the history, so that "where did each deal stand at the end of a past day" reads
one row per deal instead of grouping the whole history (3,600,000 rows at the large demo).

A row per deal with history: the changed_at, to_stage_id (stage_id), amount and probability
of its latest move (ties on changed_at: the highest id; tied says another row shares that
moment, and readers then go to the history itself, as they did before). Stage ids, not
positions or kinds: admins may reorder stages or change their kind, which readers join at
query time.

Writers call refresh() with the deals whose history they wrote (in the same transaction);
bulk loaders and restores call rebuild(). tests/test_last_moves.py checks both against the
history after creates, moves, imports and their undo, deletes and restores."""
from __future__ import annotations

_SELECT = (
    "SELECT deal_id, changed_at, to_stage_id, amount, probability, ties > 1 FROM ("
    " SELECT h.deal_id, h.changed_at, h.to_stage_id, h.amount, h.probability,"
    " row_number() OVER (PARTITION BY h.deal_id ORDER BY h.changed_at DESC, h.id DESC) AS n,"
    " count(*) OVER (PARTITION BY h.deal_id, h.changed_at) AS ties"
    " FROM deal_stage_history h{where}) x WHERE n = 1")
_INSERT = ("INSERT INTO deal_last_moves (deal_id, changed_at, stage_id, amount, probability,"
           " tied) ")


def refresh(cur, deals_sql: str, params: dict | None = None) -> None:
    """Recomputes the rows of the deals that deals_sql (a SELECT of deal ids, from a trusted
    caller, with params) names, from their history."""
    params = params or {}
    cur.execute(f"DELETE FROM deal_last_moves WHERE deal_id IN ({deals_sql})", params)
    cur.execute(_INSERT + _SELECT.format(where=f" WHERE h.deal_id IN ({deals_sql})"), params)


def refresh_deal(cur, deal_id: int) -> None:
    refresh(cur, "SELECT CAST($deal AS BIGINT)", {"deal": deal_id})


def rebuild(cur) -> None:
    """Every row anew from the whole history (after a bulk load or a restore)."""
    cur.execute("DELETE FROM deal_last_moves")
    cur.execute(_INSERT + _SELECT.format(where=""))
