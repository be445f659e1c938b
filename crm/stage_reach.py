"""Which stages each live deal reached, counted, kept beside the deals and their stage history
so that the forecast's learned stage probabilities ("of the closed deals that reached a stage,
the share won") read a few hundred counts instead of joining all of deal_stage_history to the
deals and counting distinct deals (3,400,000 rows at the large demo: 2.5-10 s on PostgreSQL).

deal_stages_reached: a row per live deal (deleted_at IS NULL) and stage its history moved it
to (reached_stage_id), with the deal's pipeline_id and stage_id (where it stands now), as they
were counted. stage_reach_counts: those rows counted by pipeline_id, stage_id and
reached_stage_id. Stage ids, not kinds: an admin may turn a stage won or lost later, which
the reader joins at query time. Owners are not kept (a rep's or an owner filter's share reads
the history, few deals).

Writers call refresh() with the deals whose history, stage, pipeline or trash state they
changed (in the same transaction, after those writes): it takes the deals' kept rows out of
the counts, recomputes them from the history and counts them again, so a refresh is exact
whatever happened before. Bulk loaders and restores call rebuild().
tests/test_stage_reach.py compares both with a count over the history."""
from __future__ import annotations

# the deals' rows anew from their history: one per stage reached, while the deal is live
_NEW = ("SELECT DISTINCT h.deal_id, h.to_stage_id AS reached_stage_id, t.pipeline_id, t.stage_id"
        " FROM deal_stage_history h JOIN deals t ON t.id = h.deal_id"
        " WHERE t.deleted_at IS NULL{where}")
_REACHED = ("INSERT INTO deal_stages_reached (deal_id, reached_stage_id, pipeline_id, stage_id) "
            + _NEW)
# added to the counts (ordered, so that concurrent writers lock the count rows in one order:
# no deadlock on PostgreSQL)
_ADD = ("INSERT INTO stage_reach_counts (pipeline_id, stage_id, reached_stage_id, deals)"
        " SELECT pipeline_id, stage_id, reached_stage_id, {deals} FROM {rows}"
        " GROUP BY 1, 2, 3{having} ORDER BY 1, 2, 3"
        " ON CONFLICT (pipeline_id, stage_id, reached_stage_id)"
        " DO UPDATE SET deals = stage_reach_counts.deals + excluded.deals")
# some deals' change of the counts in one pass: their new rows less their kept ones
_DELTA = _ADD.format(deals="sum(n)", having=" HAVING sum(n) <> 0", rows=(
    "(SELECT pipeline_id, stage_id, reached_stage_id, -1 AS n FROM deal_stages_reached"
    " WHERE {own} UNION ALL SELECT pipeline_id, stage_id, reached_stage_id, 1 FROM ("
    + _NEW + ") x) d"))


def refresh(cur, deals_sql: str, params: dict | None = None) -> None:
    """Recounts the deals that deals_sql (a SELECT of deal ids, from a trusted caller, with
    params) names."""
    _refresh(cur, "{col} IN (" + deals_sql + ")", params or {})


def refresh_deal(cur, deal_id: int) -> None:
    # an equality, not IN (SELECT ...): DuckDB reads one deal's rows by the history's index
    _refresh(cur, "{col} = $deal", {"deal": deal_id})


def _refresh(cur, condition: str, params: dict) -> None:
    own = condition.replace("{col}", "deal_id")
    cur.execute(_DELTA.format(own=own, where=" AND " + condition.replace("{col}", "h.deal_id")),
                params)
    cur.execute("DELETE FROM deal_stages_reached WHERE " + own, params)
    cur.execute(_REACHED.format(where=" AND " + condition.replace("{col}", "h.deal_id")),
                params)


def rebuild(cur) -> None:
    """Every row and count anew (after a bulk load or a restore)."""
    cur.execute("DELETE FROM stage_reach_counts")
    cur.execute("DELETE FROM deal_stages_reached")
    # in deal order: DuckDB then skips most of it by its zone maps when a deal is recounted
    cur.execute(_REACHED.format(where="") + " ORDER BY 1, 2")
    cur.execute(_ADD.format(deals="count(*)", having="", rows="deal_stages_reached"))


def counts(db, pipeline_id: int) -> dict[int, tuple[int, int]]:
    """{reached stage id: (the live deals of the pipeline closed now (won or lost) that
    reached it, of them won)}."""
    return {r["stage"]: (int(r["deals"]), int(r["won"] or 0)) for r in db.query(
        "SELECT c.reached_stage_id AS stage, sum(c.deals) AS deals,"
        " sum(c.deals) FILTER (WHERE s.kind = 'won') AS won"
        " FROM stage_reach_counts c JOIN stages s ON s.id = c.stage_id"
        " WHERE c.pipeline_id = $p AND s.kind IN ('won', 'lost')"
        " GROUP BY c.reached_stage_id HAVING sum(c.deals) > 0", {"p": pipeline_id})}
