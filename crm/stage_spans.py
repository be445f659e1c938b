"""deal_stage_spans: each stage history row with the moment it stopped being the deal's
latest, kept beside deal_stage_history by every writer of the history, so that "where did
each deal stand at the end of a past day" is one index range (the spans open at that moment)
instead of grouping the whole history (3,600,000 rows at the large demo).

A row per history row: its deal, to_stage_id (stage_id), amount and probability, changed_at
(from_at) and the deal's next later moment in the history (to_at; SPAN_END while there is
none). Rows of a deal at the same moment share their to_at, so a deal stood in every row
with from_at < X <= to_at at moment X, ties included, exactly as the history says. Stage
ids, not positions or kinds: admins may reorder stages or change their kind, which readers
join at query time.

Writers call refresh() with the deals whose history they wrote (in the same transaction);
bulk loaders and restores call rebuild(). tests/test_stage_spans.py checks both against
the history after creates, moves, imports and their undo, deletes and restores."""
from __future__ import annotations

from datetime import datetime

SPAN_END = datetime(9999, 12, 31)  # to_at of a deal's latest rows (a range, unlike NULL)

_SELECT = (
    "SELECT h.id, h.deal_id, h.to_stage_id, h.amount, h.probability, h.changed_at,"
    " coalesce(n.next_at, CAST('9999-12-31' AS TIMESTAMP)) FROM deal_stage_history h"
    " JOIN (SELECT deal_id, changed_at, lead(changed_at) OVER (PARTITION BY deal_id"
    "  ORDER BY changed_at) AS next_at FROM (SELECT DISTINCT deal_id, changed_at"
    "  FROM deal_stage_history{where}) d) n"
    " ON n.deal_id = h.deal_id AND n.changed_at = h.changed_at{where_h}")
_INSERT = ("INSERT INTO deal_stage_spans (history_id, deal_id, stage_id, amount, probability,"
           " from_at, to_at) ")


def refresh(cur, deals_sql: str, params: dict | None = None) -> None:
    """Recomputes the spans of the deals that deals_sql (a SELECT of deal ids, from a trusted
    caller, with params) names, from their history."""
    _refresh(cur, "{col} IN (" + deals_sql + ")", params or {})


def refresh_deal(cur, deal_id: int) -> None:
    # an equality, not IN (SELECT ...): DuckDB reads one deal's rows by the history's index
    _refresh(cur, "{col} = $deal", {"deal": deal_id})


def _refresh(cur, condition: str, params: dict) -> None:
    """condition: over the deal id column, written {col}."""
    own, history = condition.replace("{col}", "deal_id"), condition.replace("{col}", "h.deal_id")
    cur.execute("DELETE FROM deal_stage_spans WHERE " + own, params)
    cur.execute(_INSERT + _SELECT.format(where=" WHERE " + own, where_h=" WHERE " + history),
                params)


def rebuild(cur) -> None:
    """Every span anew from the whole history (after a bulk load or a restore)."""
    cur.execute("DELETE FROM deal_stage_spans")
    cur.execute(_INSERT + _SELECT.format(where="", where_h=""))
