"""Two years (and a month) of closed sales for the demo, so the dashboards and the forecast have a history to
show: won and lost deals of the default pipeline, closed over the last 24 months with a growing
trend and a yearly season, each with its exact stage history and activities, and the daily
forecast snapshots of the last 12 months rebuilt from that history.

Called by crm.demo.load_demo inside its transaction, after its own records are written; reads
the customers, users and stages it needs from the database. Bulk inserts go through DataFrames
(the DuckDB fast path, crm.demo._bulk_insert)."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from crm import audit, calendar, dialect
from crm.analytics import periods

# added to crm.demo.SIZES: the large demo then holds 1,000,000 deals and 5,000,000 activities
HISTORY = {"small": {"deals": 600, "activities": 800},
           "large": {"deals": 880_000, "activities": 4_800_000}}
MONTHS = 24
DAYS = 770  # no history deal was created earlier than this: 25 months
WON_SHARE = 0.3
DAY = 86_400
SNAPSHOT_MONTHS = 12
_PERSIAN = re.compile("[\u0600-\u06ff]")
_LITHUANIAN_COUNTRIES = {"Lietuva", "Latvija", "Lenkija", "Vokietija"}


def add_sales_history(cur, actor, size: str, now: datetime, seed: int | None = None,
                      customer_ids=None) -> dict:
    """Adds the closed deals (on the given customers of this load, owned by their owners),
    their history and activities; rebuilds the snapshots. Returns the rows added per table."""
    from crm import demo

    if size not in HISTORY:
        return {}
    rng = np.random.default_rng(None if seed is None else seed + 9_009)
    pipeline = _pipeline(cur)
    custs = _customers(cur, customer_ids)
    if pipeline is None or custs.empty:
        return {}
    now_s = int(np.datetime64(now, "s").astype(np.int64))
    n = HISTORY[size]["deals"]

    # close times: over 24 months, more recent ones likelier (+35 % a year), a season that
    # peaks in December and sags in summer
    tries = rng.uniform(2 * DAY, (DAYS - 3) * DAY, n * 4)
    close = now_s - tries.astype(np.int64)
    doy = (close // DAY + 4) % 365.25  # day of the year, roughly
    density = (1.7 - 0.35 * tries / (365 * DAY)) * (1 + 0.3 * np.cos(
        2 * np.pi * (doy - 340) / 365.25))
    keep = rng.random(len(tries)) < density / density.max()
    close = close[keep][:n]
    n = len(close)
    cycle = np.clip(rng.lognormal(np.log(35 * DAY), 0.6, n), 3 * DAY, 200 * DAY)
    cycle = np.minimum(cycle, close - (now_s - (DAYS - 1) * DAY)).astype(np.int64)
    created = close - cycle
    won = rng.random(n) < WON_SHARE

    # customers: not those made by a lead conversion (their creation is the conversion)
    weight = rng.lognormal(0, 0.8, len(custs))
    cust = rng.choice(len(custs), n, p=weight / weight.sum())
    c_id = custs["id"].to_numpy(np.int64)
    owner = custs["owner_id"].to_numpy(np.int64)[cust]
    country = custs["country"].to_numpy(object)[cust]
    names = custs["name"].to_numpy(object)[cust]

    # stages: won deals went through the open stages from the first or second; lost ones
    # stopped somewhere on the way
    open_ids = np.array([s["id"] for s in pipeline["open"]], dtype=np.int64)
    open_p = np.array([s["probability"] for s in pipeline["open"]], dtype=np.int64)
    k = len(open_ids)
    start = np.where(rng.random(n) < 0.25, min(1, k - 1), 0)
    reached = np.where(won, k - 1, start + (rng.random(n) * (k - start)).astype(np.int64))
    reached = np.maximum(reached, start)
    L = reached - start + 2  # open stages passed plus the closing one
    rows = int(L.sum())
    deal_of = np.repeat(np.arange(n), L)
    first = np.r_[0, np.cumsum(L)[:-1]]
    j = np.arange(rows) - first[deal_of]
    closing = j == L[deal_of] - 1
    to_stage = np.where(closing, np.where(won, pipeline["won"]["id"],
                                          pipeline["lost"]["id"])[deal_of],
                        open_ids[np.minimum(start[deal_of] + j, k - 1)])
    probability = np.where(closing, np.where(won, pipeline["won"]["probability"],
                                             pipeline["lost"]["probability"])[deal_of],
                           open_p[np.minimum(start[deal_of] + j, k - 1)])
    from_stage = np.r_[-1, to_stage[:-1]]
    from_stage[j == 0] = -1
    # move times: sorted points between creation and close, strictly increasing
    frac = np.where(j == 0, 0.0, np.where(closing, 1.0, rng.random(rows)))
    order = np.lexsort((frac, deal_of))
    frac = frac[order]
    t = created[deal_of] + (frac * cycle[deal_of]).astype(np.int64)
    for level in range(1, int(L.max())):
        at = np.flatnonzero(j == level)
        t[at] = np.maximum(t[at], t[at - 1] + 1)
    entered = t[first + L - 1]

    # amounts and currencies as in crm.demo
    cents = np.clip(np.round(rng.lognormal(np.log(12000), 0.7, n) / 100) * 100, 1000,
                    500_000).astype(np.int64) * 100
    u = rng.random(n)
    currency = np.full(n, "USD", dtype=object)
    for name, options in demo.CURRENCY_BY_COUNTRY.items():
        here = country == name
        for code, upto in reversed(options):
            currency[here & (u < upto)] = code
    for code, (per_dollar, step, low, high) in demo.AMOUNTS.items():
        here = currency == code
        cents[here] = np.clip(np.round(cents[here] / 100 * per_dollar / step) * step,
                              low, high).astype(np.int64) * 100

    lang = np.array(["fa" if _PERSIAN.search(str(nm)) else
                     "lt" if c in _LITHUANIAN_COUNTRIES else "en"
                     for nm, c in zip(names, country)], dtype=object)
    topic = rng.integers(0, len(demo.DEAL_TOPICS["en"]), n)
    title = np.empty(n, dtype=object)
    for code in ("en", "fa", "lt"):
        here = lang == code
        text = np.array(demo.DEAL_TOPICS[code], dtype=object)[topic[here]]
        title[here] = (text + " — " + names[here] if code in demo.TOPIC_FIRST
                       else names[here] + " — " + text)
    keys, p = demo._weights(demo.SOURCE_WEIGHTS)
    source = np.array(keys, dtype=object)[rng.choice(len(keys), n, p=p)]
    keys, p = demo._weights(demo.LOST_REASON_WEIGHTS)
    reason = np.array(keys, dtype=object)[rng.choice(len(keys), n, p=p)]

    deal_id = demo._ids_by_time(demo._new_ids(cur, "deals", n), created)
    acts, last = _activities(cur, rng, HISTORY[size]["activities"], deal_id, created, entered,
                             c_id[cust], owner, lang, now_s)
    deal_frame = pd.DataFrame({
        "id": deal_id, "title": title, "customer_id": c_id[cust],
        "owner_id": owner, "amount": demo._money(cents / 100), "currency": currency,
        "pipeline_id": pipeline["id"],
        "stage_id": np.where(won, pipeline["won"]["id"], pipeline["lost"]["id"]),
        "expected_close_date": demo._day(entered + rng.integers(-20, 15, n) * DAY),
        "source": source, "lost_reason": demo._null_unless(~won, reason),
        "closed_on": demo._day(entered), "stage_entered_at": demo._ts(entered),
        "last_activity_at": demo._ts(last, mask=last >= 0),
        "created_at": demo._ts(created), "updated_at": demo._ts(entered),
        "created_by": owner, "updated_by": owner, "version": L,
    })
    history = pd.DataFrame({
        "id": demo._ids_by_time(demo._new_ids(cur, "deal_stage_history", rows), t),
        "deal_id": deal_id[deal_of], "from_stage_id": demo._ints(from_stage),
        "to_stage_id": to_stage, "changed_at": demo._ts(t), "changed_by": owner[deal_of],
        "amount": demo._money(cents[deal_of] / 100), "probability": probability,
    })
    # a customer exists before its first deal
    earliest = pd.DataFrame({"id": c_id[cust], "first": created - 3600}).groupby("id")[
        "first"].min().reset_index()
    earliest["first"] = demo._ts(earliest["first"].to_numpy())
    cur.register("demo_history_customers", earliest)
    try:
        cur.execute("UPDATE customers SET created_at = e.first FROM demo_history_customers e"
                    " WHERE customers.id = e.id AND e.first < customers.created_at")
    finally:
        cur.unregister("demo_history_customers")
    if dialect.of(cur) == dialect.POSTGRESQL:
        # Into tables that hold rows already (into empty ones dialect.bulk_load drops the keys
        # and indexes meanwhile), PostgreSQL checks each row's foreign key (and updates each
        # index) one at a time:
        # rows in the order of the deals they point to, and the deals in the order of their
        # ids, make those lookups walk the deals in order instead of jumping about tables
        # larger than its buffers (the large demo's 4,800,000 activities: minutes)
        deal_frame = deal_frame.sort_values("id", kind="stable")
        history = history.sort_values("deal_id", kind="stable")
        acts = acts.sort_values("deal_id", kind="stable")
    demo._bulk_insert(cur, "deals", deal_frame)
    demo._bulk_insert(cur, "deal_stage_history", history)
    demo._bulk_insert(cur, "activities", acts)
    # the snapshots join the history just written: planned without its statistics, each
    # took seconds on PostgreSQL
    dialect.refresh_statistics(cur, ("deals", "deal_stage_history", "stages"))
    snapshots = rebuild_snapshots(cur, now.date())
    audit.record(cur, actor, "deals", None, "demo_load",
                 {"sales_history_rows": (None, n), "stage_history": (None, rows),
                  "activities": (None, len(acts)), "forecast_snapshots": (None, snapshots)})
    return {"deals": n, "deal_stage_history": rows, "activities": len(acts),
            "forecast_snapshots": snapshots}


def _pipeline(cur) -> dict | None:
    """The default pipeline's open stages in order and its won and lost stages."""
    found = cur.execute(
        "SELECT s.id, s.kind, s.probability, s.pipeline_id FROM stages s"
        " JOIN pipelines p ON p.id = s.pipeline_id WHERE s.deleted_at IS NULL"
        " AND p.deleted_at IS NULL ORDER BY p.is_default DESC, p.position, p.id, s.position,"
        " s.id").fetchall()
    if not found:
        return None
    pipeline_id = found[0][3]
    stages = [dict(zip(("id", "kind", "probability"), r[:3])) for r in found
              if r[3] == pipeline_id]
    out = {"id": pipeline_id, "open": [s for s in stages if s["kind"] == "open"],
           "won": next((s for s in stages if s["kind"] == "won"), None),
           "lost": next((s for s in stages if s["kind"] == "lost"), None)}
    return out if out["open"] and out["won"] and out["lost"] else None


def _customers(cur, ids) -> pd.DataFrame:
    wanted = pd.DataFrame({"id": np.asarray(ids if ids is not None else [], dtype=np.int64)})
    cur.register("demo_history_wanted", wanted)
    try:
        return cur.execute(
            "SELECT c.id, c.owner_id, c.country, c.name FROM customers c"
            " WHERE c.deleted_at IS NULL AND c.owner_id IS NOT NULL"
            " AND c.id IN (SELECT id FROM demo_history_wanted) AND c.id NOT IN"
            " (SELECT converted_customer_id FROM leads WHERE converted_customer_id IS NOT NULL)"
            " ORDER BY c.id").df()
    finally:
        cur.unregister("demo_history_wanted")


def _activities(cur, rng, n: int, deal_id, created, entered, customer, owner, lang,
                now_s: int) -> tuple[pd.DataFrame, np.ndarray]:
    """n activities on the deals, between each deal's creation and its close; returns them
    and each deal's latest activity time (-1: none)."""
    from crm import demo

    span = np.maximum(entered - created, 1)
    pick = rng.choice(len(deal_id), n, p=span / span.sum())
    when = created[pick] + (rng.random(n) * span[pick]).astype(np.int64)
    last = np.full(len(deal_id), -1, dtype=np.int64)
    np.maximum.at(last, pick, when)
    kinds, p = demo._weights(demo.ACTIVITY_KIND_WEIGHTS)
    kind = np.array(kinds, dtype=object)[rng.choice(len(kinds), n, p=p)]
    row_lang = lang[pick]
    subject = np.empty(n, dtype=object)
    for k_name, texts in demo.ACTIVITY_SUBJECTS.items():
        for code, options in texts.items():
            here = np.flatnonzero((kind == k_name) & (row_lang == code))
            subject[here] = np.array(options, dtype=object)[rng.integers(0, len(options),
                                                                        len(here))]
    outcome = np.full(n, None, dtype=object)
    u = rng.random(n)
    for k_name, shares in demo.ACTIVITY_OUTCOMES.items():
        here, upto = kind == k_name, 0.0
        for name, share in shares.items():
            outcome[here & (u >= upto) & (u < upto + share)] = name
            upto += share
    two_way = np.isin(kind, ["call", "email", "social_message", "chat"])
    direction = np.where(rng.random(n) < 0.65, "outbound", "inbound").astype(object)
    minutes = np.select(
        [kind == "call", kind == "meeting", kind == "visit"],
        [np.clip(rng.lognormal(np.log(8), 0.8, n), 1, 90).astype(np.int64),
         rng.choice([30, 45, 60, 90, 120], n), rng.choice([30, 60, 90, 120, 180], n)], -1)
    made = np.minimum(when + rng.integers(0, 1800, n), now_s)
    made = np.maximum(made, when)
    frame = pd.DataFrame({
        "id": demo._ids_by_time(demo._new_ids(cur, "activities", n), made),
        "kind": kind, "subject": subject, "occurred_at": demo._ts(when),
        "duration_minutes": demo._ints(minutes),
        "direction": demo._null_unless(two_way, direction), "outcome": outcome,
        "customer_id": customer[pick], "deal_id": deal_id[pick], "owner_id": owner[pick],
        "created_at": demo._ts(made), "updated_at": demo._ts(made),
        "created_by": owner[pick], "updated_by": owner[pick], "version": 1,
    })
    return frame, last


def snapshot_days(today: date, months: int = SNAPSHOT_MONTHS) -> list[date]:
    """The first days of each of the last `months` months of both calendars, up to today."""
    days = set()
    for lang in ("en", "fa"):
        for key in periods.next_keys(today, "month", months, lang, back=months):
            days.add(periods.bounds(key, "month", lang)[0])
    return sorted(day for day in days if day <= today)


def rebuild_snapshots(cur, today: date, months: int = SNAPSHOT_MONTHS) -> int:
    """The forecast snapshots the CRM would have kept on the first day of each of the last
    `months` months of both calendars, rebuilt from the stage history: the deals open that day
    (their last move before it went into an open stage) with the amount and probability of
    that move, by the month they were then expected to close (the close date of those that
    closed since, else today's expected close date).

    All days in one pass (a rebuild per day took seconds each on PostgreSQL at the large
    demo's 3,600,000 history rows): each move of a deal holds from its time until the deal's
    next moves (moves at one moment all count), so it counts on the snapshot days after the
    first and up to the second. Those are found by equality through a table of the dates in
    between, each with the number of snapshot days up to it (a range join was slower)."""
    days = snapshot_days(today, months)
    if not days:
        return 0
    first = days[0] - timedelta(days=1)
    dates = pd.DataFrame({"day": [first + timedelta(days=i)
                                  for i in range((today - first).days + 1)]})
    dates["n"] = np.searchsorted(np.array(days, dtype="datetime64[D]"),
                                 dates["day"].to_numpy("datetime64[D]"), side="right")
    cur.register("demo_snapshot_dates", dates)
    cur.register("demo_snapshot_days", pd.DataFrame({"n": np.arange(1, len(days) + 1),
                                                     "day": days}))
    try:
        dialect.refresh_statistics(cur, ("demo_snapshot_dates", "demo_snapshot_days"))
        cur.execute("DELETE FROM forecast_snapshots WHERE taken_on IN"
                    " (SELECT day FROM demo_snapshot_days)")
        calendars = []
        for name, lang in (("gregorian", "en"), ("jalali", "fa")):
            key, join = calendar.period("x.expected", "month", lang)
            calendars.append(
                f" SELECT x.day, ${name}, {key}, x.category, x.pipeline_id, x.owner_id,"
                " x.currency, count(*), coalesce(sum(x.amount), 0),"
                " coalesce(sum(x.amount * x.probability / 100.0), 0)"
                f" FROM x{join} WHERE x.expected IS NOT NULL GROUP BY 1, 3, 4, 5, 6, 7")
        clamp = "least(greatest(CAST({} AS DATE), $first), $today)"
        return cur.execute(
            "INSERT INTO forecast_snapshots (taken_on, calendar, period_key,"
            " forecast_category, pipeline_id, owner_id, currency, deals, amount, weighted)"
            " WITH x AS (SELECT s.day, coalesce(t.closed_on, t.expected_close_date) AS expected,"
            " st.forecast_category AS category, t.pipeline_id, t.owner_id, t.currency,"
            " coalesce(m.amount, t.amount) AS amount, m.probability FROM ("
            "  SELECT deal_id, changed_at, to_stage_id, amount, probability,"
            "  min(changed_at) OVER (PARTITION BY deal_id ORDER BY changed_at RANGE BETWEEN"
            "  CURRENT ROW AND UNBOUNDED FOLLOWING EXCLUDE GROUP) AS until"
            "  FROM deal_stage_history) m"
            f" JOIN demo_snapshot_dates f ON f.day = {clamp.format('m.changed_at')}"
            " JOIN demo_snapshot_dates l ON l.day = "
            + clamp.format("coalesce(CAST(m.until AS DATE), $today)") +
            " JOIN demo_snapshot_days s ON s.n > f.n AND s.n <= l.n"
            " JOIN stages st ON st.id = m.to_stage_id JOIN deals t ON t.id = m.deal_id"
            " WHERE f.n < l.n AND st.kind = 'open' AND t.deleted_at IS NULL)"
            + " UNION ALL".join(calendars), {"first": first, "today": today, "gregorian": "gregorian", "jalali": "jalali"}
        ).fetchone()[0]
    finally:
        cur.unregister("demo_snapshot_dates")
        cur.unregister("demo_snapshot_days")
