"""The home dashboard's tiles and charts, each one SQL aggregate over the deals, leads and
customers the user may see (records.visible: reps their own, managers and viewers all).

Amounts are grouped by currency and never added across currencies. A deal is won in a period
when it sits in a won stage and its close date (closed_on) falls in the period; a deal moved
back out of won has no close date and counts nowhere."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from crm import calendar, records, settings
from crm.analytics.periods import Scope, months_before
from crm.auth import User, require
from crm.customers import CUSTOMERS
from crm.db import Database
from crm.deals import DEALS
from crm.leads import LEADS

WEIGHT = "coalesce(t.probability, s.probability) / 100.0"


def _check(user: User) -> None:
    if user is None:
        require(user, "view")


def deal_where(user: User, scope: Scope) -> tuple[str, dict]:
    """Conditions over deals t (joined to stages s where used) for the user and the filters."""
    where, params = records.visible(DEALS, user)
    if scope.pipeline_id:
        where += " AND t.pipeline_id = $pipeline"
        params["pipeline"] = scope.pipeline_id
    if scope.owner_ids:
        names = []
        for i, owner in enumerate(scope.owner_ids):
            names.append(f"$owner{i}")
            params[f"owner{i}"] = owner
        where += f" AND t.owner_id IN ({', '.join(names)})"
    return where, params


def _owned_where(entity, user: User, scope: Scope) -> tuple[str, dict]:
    where, params = records.visible(entity, user)
    if scope.owner_ids:
        names = []
        for i, owner in enumerate(scope.owner_ids):
            names.append(f"$owner{i}")
            params[f"owner{i}"] = owner
        where += f" AND t.owner_id IN ({', '.join(names)})"
    return where, params


def _after(day: date) -> datetime:
    """The first moment after a day: timestamps < this are on or before the day."""
    return datetime.combine(day + timedelta(days=1), time())


# --- tiles ---------------------------------------------------------------------------------

def open_pipeline(db: Database, user: User, scope: Scope) -> dict[str, dict]:
    """{currency: {deals, amount, weighted}} of the deals open now (in an open stage);
    weighted = amount x probability (the deal's, else its stage's) / 100."""
    _check(user)
    where, params = deal_where(user, scope)
    found = db.query(
        f"SELECT t.currency, count(*) AS deals, coalesce(sum(t.amount), 0) AS amount,"
        f" coalesce(sum(t.amount * {WEIGHT}), 0) AS weighted"
        f" FROM deals t JOIN stages s ON s.id = t.stage_id"
        f" WHERE {where} AND s.kind = 'open' GROUP BY t.currency", params)
    return {r["currency"]: _floats(r) for r in found}


def open_pipeline_as_of(db: Database, user: User, scope: Scope, day: date) -> dict[str, dict]:
    """open_pipeline() as it stood at the end of a past day, from the stage history: the deals
    whose last move up to then went into an open stage, with the amount and probability
    recorded at that move. Read from deal_stage_spans: the spans open at that moment."""
    _check(user)
    where, params = deal_where(user, scope)
    params["asof"] = _after(day)
    # the open stages' ids as values, not a join: PostgreSQL then plans from the statistics
    # of those stages' spans (few still open) and reads them from the stage index
    stages = [r["id"] for r in db.query("SELECT id FROM stages WHERE kind = 'open'")]
    if not stages:
        return {}
    params.update({f"stage{i}": s for i, s in enumerate(stages)})
    found = db.query(
        "SELECT t.currency, count(*) AS deals, coalesce(sum(coalesce(h.amount, t.amount)), 0)"
        " AS amount, coalesce(sum(coalesce(h.amount, t.amount) * h.probability / 100.0), 0)"
        " AS weighted FROM deal_stage_spans h JOIN deals t ON t.id = h.deal_id"
        f" WHERE {where} AND h.stage_id IN"
        f" ({', '.join(f'$stage{i}' for i in range(len(stages)))})"
        " AND h.from_at < $asof AND h.to_at >= $asof GROUP BY t.currency", params)
    return {r["currency"]: _floats(r) for r in found}


def open_pipeline_as_of_history(db: Database, user: User, scope: Scope, day: date
                                ) -> dict[str, dict]:
    """open_pipeline_as_of() from the whole stage history, as it was computed before
    deal_stage_spans: what tests compare the fast one with."""
    _check(user)
    where, params = deal_where(user, scope)
    params["asof"] = _after(day)
    found = db.query(
        "SELECT t.currency, count(*) AS deals, coalesce(sum(coalesce(h.amount, t.amount)), 0)"
        " AS amount, coalesce(sum(coalesce(h.amount, t.amount) * h.probability / 100.0), 0)"
        " AS weighted FROM deal_stage_history h"
        " JOIN (SELECT deal_id, max(changed_at) AS at FROM deal_stage_history"
        "       WHERE changed_at < $asof GROUP BY deal_id) last"
        "   ON last.deal_id = h.deal_id AND last.at = h.changed_at"
        " JOIN stages s ON s.id = h.to_stage_id JOIN deals t ON t.id = h.deal_id"
        f" WHERE {where} AND s.kind = 'open' GROUP BY t.currency", params)
    return {r["currency"]: _floats(r) for r in found}


def closed_in(db: Database, user: User, scope: Scope, start: date, end: date) -> dict:
    """Deals closed between start and end (both included): {won: {currency: {deals, amount,
    average}}, won_deals, lost_deals, win_rate (won / (won + lost), None without any),
    cycle_days (average days from creation to the close of the won deals)}."""
    _check(user)
    where, params = deal_where(user, scope)
    params.update(start=start, end=end)
    found = db.query(
        "SELECT s.kind, t.currency, count(*) AS deals, coalesce(sum(t.amount), 0) AS amount,"
        " avg(t.amount) AS average,"
        " sum(t.closed_on - CAST(t.created_at AS DATE)) AS cycle_days"
        " FROM deals t JOIN stages s ON s.id = t.stage_id"
        f" WHERE {where} AND s.kind IN ('won', 'lost')"
        " AND t.closed_on >= $start AND t.closed_on <= $end GROUP BY s.kind, t.currency",
        params)
    won = {r["currency"]: {"deals": r["deals"], "amount": float(r["amount"]),
                           "average": float(r["average"]) if r["average"] is not None else None}
           for r in found if r["kind"] == "won"}
    won_n = sum(r["deals"] for r in found if r["kind"] == "won")
    lost_n = sum(r["deals"] for r in found if r["kind"] == "lost")
    cycle = sum(float(r["cycle_days"] or 0) for r in found if r["kind"] == "won")
    return {"won": won, "won_deals": won_n, "lost_deals": lost_n,
            "win_rate": won_n / (won_n + lost_n) if won_n + lost_n else None,
            "cycle_days": cycle / won_n if won_n else None}


def lead_conversion(db: Database, user: User, scope: Scope, start: date, end: date) -> dict:
    """{leads, converted, rate}: of the leads created between start and end, the share
    converted into a customer since (None without leads)."""
    _check(user)
    where, params = _owned_where(LEADS, user, scope)
    params.update(start=datetime.combine(start, time()), end=_after(end))
    row = db.one(
        "SELECT count(*) AS leads, count(*) FILTER (WHERE t.converted_at IS NOT NULL"
        " OR t.status = 'converted') AS converted FROM leads t"
        f" WHERE {where} AND t.created_at >= $start AND t.created_at < $end", params)
    return {**row, "rate": row["converted"] / row["leads"] if row["leads"] else None}


def customer_bases(db: Database, user: User, scope: Scope, day: date) -> dict:
    """{customer_base, installed_base} at the end of a day. Customer base: customers with a
    won deal closed by then or a first purchase typed in on or before it. Installed base: of
    them, those the Settings rule counts (status active, a won deal in the last N months
    before the day, or both); the status is today's."""
    return customer_bases_on(db, user, scope, (day,))[0]


def customer_bases_on(db: Database, user: User, scope: Scope, days: tuple[date, ...]
                      ) -> list[dict]:
    """customer_bases() at the end of each day, from one pass over the won deals (each day's
    last won deal per customer as a FILTER of one grouping): [{customer_base,
    installed_base}] in the days' order."""
    _check(user)
    chosen = settings.get_all(db)
    where, params = _owned_where(CUSTOMERS, user, scope)
    # the won stages' ids as values: PostgreSQL then reads those stages' deals from the
    # stage index alone (migration 025) instead of every closed deal
    won = [r["id"] for r in db.query("SELECT id FROM stages WHERE kind = 'won'")]
    params.update({f"won{i}": s for i, s in enumerate(won)})
    stages = ", ".join(f"$won{i}" for i in range(len(won))) or "NULL"
    lasts, counts = [], []
    for i, day in enumerate(days):
        params[f"day{i}"] = day
        lasts.append(f"max(d.closed_on) FILTER (WHERE d.closed_on <= $day{i}) AS last{i}")
        rule = {"active_status": "t.status = 'active'",
                "recent_purchase": f"w.last{i} > $since{i}",
                "active_and_recent": f"t.status = 'active' AND w.last{i} > $since{i}",
                }[chosen["installed_base_rule"]]
        if "$since" in rule:
            params[f"since{i}"] = months_before(day, chosen["installed_base_months"])
        bought = f"(t.first_purchase_date <= $day{i} OR w.last{i} IS NOT NULL)"
        counts.append(f"count(*) FILTER (WHERE {bought}) AS customer_base{i},"
                      f" count(*) FILTER (WHERE {bought} AND {rule}) AS installed_base{i}")
    params["last_day"] = max(days)
    row = db.one(
        f"SELECT {', '.join(counts)} FROM customers t LEFT JOIN (SELECT d.customer_id,"
        f" {', '.join(lasts)} FROM deals d WHERE d.stage_id IN ({stages})"
        " AND d.deleted_at IS NULL AND d.closed_on <= $last_day GROUP BY d.customer_id) w"
        f" ON w.customer_id = t.id WHERE {where}", params)
    return [{"customer_base": row[f"customer_base{i}"],
             "installed_base": row[f"installed_base{i}"]} for i in range(len(days))]


def retention(db: Database, user: User, scope: Scope, prev_end: date, end: date) -> dict:
    """{active_before, retained, rate}: customers active at the end of the previous period
    (a won deal in the N installed-base months up to prev_end) and, of them, those active at
    the end of this period too (a won deal in the N months up to end)."""
    return retention_chain(db, user, scope, (prev_end, end))[0]


def retention_chain(db: Database, user: User, scope: Scope, ends: tuple[date, ...]
                    ) -> list[dict]:
    """retention() from each end to the next (ends in order: (a, b, c) gives a -> b and
    b -> c), from one pass over the won deals: [{active_before, retained, rate}]."""
    _check(user)
    months = settings.get_all(db)["installed_base_months"]
    where, params = deal_where(user, scope)
    flags, counts = [], []
    for i, end in enumerate(ends):
        params.update({f"from{i}": months_before(end, months), f"to{i}": end})
        flags.append(f"bool_or(t.closed_on > $from{i} AND t.closed_on <= $to{i}) AS a{i}")
    for i in range(len(ends) - 1):
        counts.append(f"count(*) FILTER (WHERE a{i}) AS active_before{i},"
                      f" count(*) FILTER (WHERE a{i} AND a{i + 1}) AS retained{i}")
    params["first"] = min(params[f"from{i}"] for i in range(len(ends)))
    row = db.one(
        f"SELECT {', '.join(counts)} FROM ("
        f" SELECT t.customer_id, {', '.join(flags)}"
        " FROM deals t JOIN stages s ON s.id = t.stage_id"
        f" WHERE {where} AND s.kind = 'won' AND t.customer_id IS NOT NULL"
        " AND t.closed_on > $first GROUP BY t.customer_id) c", params)
    out = []
    for i in range(len(ends) - 1):
        before, kept = row[f"active_before{i}"] or 0, row[f"retained{i}"] or 0
        out.append({"active_before": before, "retained": kept,
                    "rate": kept / before if before else None})
    return out


def tiles(db: Database, user: User, scope: Scope, today: date | None = None) -> dict:
    """Every home tile for the period and the previous one: {name: {"now": ..., "before": ...}}."""
    today = today or date.today()
    now_end = min(scope.end, today)
    return {
        "open_pipeline": {"now": open_pipeline(db, user, scope),
                          "before": open_pipeline_as_of(db, user, scope, scope.prev_end)},
        "closed": {"now": closed_in(db, user, scope, scope.start, scope.end),
                   "before": closed_in(db, user, scope, scope.prev_start, scope.prev_end)},
        "conversion": {"now": lead_conversion(db, user, scope, scope.start, scope.end),
                       "before": lead_conversion(db, user, scope, scope.prev_start,
                                                 scope.prev_end)},
        "bases": dict(zip(("now", "before"),
                          customer_bases_on(db, user, scope, (now_end, scope.prev_end)))),
        "retention": dict(zip(("before", "now"), retention_chain(
            db, user, scope, (scope.prev_start - timedelta(days=1), scope.prev_end, now_end)))),
    }


# --- charts --------------------------------------------------------------------------------

def currencies(db: Database, user: User, scope: Scope) -> list[str]:
    """Currencies of the user's deals, most deals first (for the currency picker)."""
    _check(user)
    where, params = deal_where(user, scope)
    return [r["currency"] for r in db.query(
        f"SELECT t.currency, count(*) AS n FROM deals t WHERE {where}"
        " GROUP BY t.currency ORDER BY n DESC, t.currency", params)]


def funnel(db: Database, user: User, scope: Scope, pipeline_id: int) -> list[dict]:
    """[{stage, kind, deals}] of one pipeline, its open stages in order then won: how many of
    the deals created in the period reached each stage (or a later one) per their stage
    history; a won deal reached every stage."""
    _check(user)
    where, params = deal_where(user, scope)
    params.update(p=pipeline_id, start=datetime.combine(scope.start, time()),
                  end=_after(scope.end))
    # MATERIALIZED: PostgreSQL would otherwise inline the CTE into the per-stage subquery and
    # read the stage history once per stage (13 s instead of 2 s at the large demo)
    return db.query(
        "WITH reached AS MATERIALIZED (SELECT h.deal_id, max(CASE WHEN s.kind = 'won'"
        " THEN 1000000"
        " ELSE s.position END) AS pos FROM deal_stage_history h"
        " JOIN stages s ON s.id = h.to_stage_id JOIN deals t ON t.id = h.deal_id"
        f" WHERE {where} AND t.pipeline_id = $p AND s.kind <> 'lost'"
        " AND t.created_at >= $start AND t.created_at < $end GROUP BY h.deal_id)"
        " SELECT s.id, s.name AS stage, s.kind, (SELECT count(*) FROM reached r WHERE r.pos >="
        " CASE WHEN s.kind = 'won' THEN 1000000 ELSE s.position END) AS deals"
        " FROM stages s WHERE s.pipeline_id = $p AND s.deleted_at IS NULL AND s.kind <> 'lost'"
        " ORDER BY CASE WHEN s.kind = 'won' THEN 1 ELSE 0 END, s.position, s.id", params)


def won_by_month(db: Database, user: User, scope: Scope, currency: str,
                 lang: str | None = None) -> list[dict]:
    """[{period, deals, amount}] of the won deals in one currency by close month of the user's
    calendar, every month of the period (zero when nothing was won)."""
    _check(user)
    where, params = deal_where(user, scope)
    key, join = calendar.period("t.closed_on", "month", lang)
    params.update(start=scope.start, end=scope.end, cur=currency)
    found = {r["period"]: r for r in db.query(
        f"SELECT {key} AS period, count(*) AS deals, coalesce(sum(t.amount), 0) AS amount"
        f" FROM deals t JOIN stages s ON s.id = t.stage_id{join}"
        f" WHERE {where} AND s.kind = 'won' AND t.currency = $cur"
        " AND t.closed_on >= $start AND t.closed_on <= $end GROUP BY 1", params)}
    return [{"period": k, "deals": found.get(k, {}).get("deals", 0),
             "amount": float(found.get(k, {}).get("amount", 0))}
            for k in month_keys(scope.start, scope.end, lang)]


def month_keys(start: date, end: date, lang: str | None = None) -> list[int]:
    """The year*100+month keys of the user's calendar from start's month to end's."""
    from crm.analytics.periods import _ym

    (y, m), (y2, m2) = _ym(start, lang), _ym(end, lang)
    out = []
    while (y, m) <= (y2, m2):
        out.append(y * 100 + m)
        y, m = (y, m + 1) if m < 12 else (y + 1, 1)
    return out


def pipeline_by_owner(db: Database, user: User, scope: Scope, currency: str) -> list[dict]:
    """[{owner, deals, amount, weighted}] of the open deals in one currency, biggest first."""
    _check(user)
    where, params = deal_where(user, scope)
    params["cur"] = currency
    found = db.query(
        "SELECT t.owner_id, count(*) AS deals, coalesce(sum(t.amount), 0) AS amount,"
        f" coalesce(sum(t.amount * {WEIGHT}), 0) AS weighted"
        " FROM deals t JOIN stages s ON s.id = t.stage_id"
        f" WHERE {where} AND s.kind = 'open' AND t.currency = $cur GROUP BY t.owner_id", params)
    names = {r["id"]: r["name"] for r in db.query("SELECT id, name FROM users")}
    out = [{"owner": names.get(r["owner_id"], ""), **_floats(r)} for r in found]
    return sorted(out, key=lambda r: -r["weighted"])


def lead_sources(db: Database, user: User, scope: Scope) -> list[dict]:
    """[{source, leads, converted}] of the leads created in the period, most leads first
    (source None: not given)."""
    _check(user)
    where, params = _owned_where(LEADS, user, scope)
    params.update(start=datetime.combine(scope.start, time()), end=_after(scope.end))
    return db.query(
        "SELECT t.source, count(*) AS leads, count(*) FILTER (WHERE t.converted_at IS NOT NULL"
        " OR t.status = 'converted') AS converted FROM leads t"
        f" WHERE {where} AND t.created_at >= $start AND t.created_at < $end"
        " GROUP BY t.source ORDER BY leads DESC, t.source NULLS LAST", params)


def _floats(row: dict) -> dict:
    return {k: (float(v) if k in ("amount", "weighted") else v) for k, v in row.items()
            if k not in ("currency", "owner_id")}


def change(now, before) -> float | None:
    """The relative change from before to now (0.25 = +25 %), None when before is 0 or None."""
    if now is None or before in (None, 0):
        return None
    return (now - before) / abs(before)
