"""The sales forecast: weighted pipeline by expected close period, forecast categories against
quotas, a statistical projection of won revenue, stage probabilities learned from the stage
history, and daily snapshots of the forecast to measure its accuracy afterwards.

Reads aggregate in SQL over the deals the user may see (kpis.deal_where); writes (quotas,
adopted probabilities, snapshots) are one command each: validation, permission, audit and one
transaction."""
from __future__ import annotations

import csv
import io
import math
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from crm import audit, calendar, i18n, stage_reach
from crm.analytics import periods
from crm.analytics.kpis import WEIGHT, _check, deal_where
from crm.analytics.periods import Scope
from crm.auth import SYSTEM, PermissionDenied, User
from crm.db import Database
from crm.deals import CURRENCIES
from crm.fields import ValidationError
from crm.i18n import N_, gettext as _

CATEGORY = "coalesce(t.forecast_category, s.forecast_category)"
CATEGORIES = ("closed", "commit", "best_case", "pipeline")
CATEGORY_LABELS = {"closed": N_("Closed"), "commit": N_("Commit"), "best_case": N_("Best case"),
                   "pipeline": N_("Pipeline")}
OVERDUE, NO_DATE = -1, -2  # period keys of the deals apart from the months


# --- 1. weighted pipeline by expected close period ------------------------------------------

def weighted_by_period(db: Database, user: User, scope: Scope, grain: str = "month",
                       by: str = "stage", currency: str = "USD", today: date | None = None,
                       count: int = 12, lang: str | None = None) -> dict:
    """Open deals in one currency by expected close period (the current one and the next
    count-1) and by stage or owner: {periods: [keys], rows: [{period, group, position, deals,
    amount, weighted}]}. Deals whose expected close date has passed get period OVERDUE, deals
    without one NO_DATE, whatever the filters' period."""
    _check(user)
    today = today or date.today()
    keys = periods.next_keys(today, grain, count, lang)
    _s, last = periods.bounds(keys[-1], grain, lang)
    where, params = deal_where(user, scope)
    key, join = calendar.period("t.expected_close_date", grain, lang)
    group = ("s.name AS grp, s.position AS position" if by == "stage"
             else "coalesce(u.name, '') AS grp, 0 AS position")
    users = " LEFT JOIN users u ON u.id = t.owner_id" if by == "owner" else ""
    params.update(cur=currency, today=today, last=last)
    # summed by day first: the period key of each of 100,000 open deals cost PostgreSQL more
    # than the sums
    found = db.query(
        f"SELECT CASE WHEN t.expected_close_date IS NULL THEN {NO_DATE}"
        f" WHEN t.expected_close_date < $today THEN {OVERDUE} ELSE {key} END AS period,"
        " t.grp, t.position, sum(t.deals) AS deals, coalesce(sum(t.amount), 0) AS amount,"
        " coalesce(sum(t.weighted), 0) AS weighted FROM (SELECT t.expected_close_date,"
        f" {group}, count(*) AS deals, sum(t.amount) AS amount,"
        f" sum(t.amount * {WEIGHT}) AS weighted"
        f" FROM deals t JOIN stages s ON s.id = t.stage_id{users}"
        f" WHERE {where} AND s.kind = 'open' AND t.currency = $cur"
        " AND (t.expected_close_date IS NULL OR t.expected_close_date <= $last)"
        f" GROUP BY 1, 2, 3) t{join} GROUP BY 1, 2, 3 ORDER BY 1, 3, 2", params)
    return {"periods": keys, "rows": [{**r, "amount": float(r["amount"]),
                                       "weighted": float(r["weighted"])} for r in found]}


# --- 2. forecast categories and quotas --------------------------------------------------------

def categories(db: Database, user: User, scope: Scope, grain: str = "month",
               currency: str = "USD", today: date | None = None, count: int = 12,
               lang: str | None = None) -> list[dict]:
    """Per period (the current one and the next count-1): closed (won deals closed in it, and
    open deals whose category is closed expected in it), commit, best case and pipeline (open
    deals by their category, the deal's override else the stage's, by expected close date;
    amounts unweighted), the cumulative closed + commit and closed + commit + best case, and
    the quota of the reps in scope. Overdue deals count in the current period."""
    _check(user)
    today = today or date.today()
    keys = periods.next_keys(today, grain, count, lang)
    first, _e = periods.bounds(keys[0], grain, lang)
    _s, last = periods.bounds(keys[-1], grain, lang)
    where, params = deal_where(user, scope)
    params.update(cur=currency, first=first, last=last)
    won_key, won_join = calendar.period("t.closed_on", grain, lang, alias="cw")
    open_key, open_join = calendar.period("greatest(t.expected_close_date, $first)", grain,
                                          lang, alias="co")
    won = db.query(
        f"SELECT {won_key} AS period, coalesce(sum(t.amount), 0) AS amount"
        f" FROM deals t JOIN stages s ON s.id = t.stage_id{won_join}"
        f" WHERE {where} AND s.kind = 'won' AND t.currency = $cur"
        " AND t.closed_on >= $first AND t.closed_on <= $last GROUP BY 1", params)
    open_ = db.query(  # summed by day first, as weighted_by_period
        f"SELECT {open_key} AS period, t.category, coalesce(sum(t.amount), 0) AS amount"
        f" FROM (SELECT t.expected_close_date, {CATEGORY} AS category,"
        " sum(t.amount) AS amount FROM deals t JOIN stages s ON s.id = t.stage_id"
        f" WHERE {where} AND s.kind = 'open' AND t.currency = $cur"
        " AND t.expected_close_date IS NOT NULL AND t.expected_close_date <= $last"
        f" GROUP BY 1, 2) t{open_join} GROUP BY 1, 2", params)
    table = {k: {c: 0.0 for c in CATEGORIES} for k in keys}
    for r in won:
        if r["period"] in table:
            table[r["period"]]["closed"] += float(r["amount"])
    for r in open_:
        if r["period"] in table and r["category"] in CATEGORIES:
            table[r["period"]][r["category"]] += float(r["amount"])
    quota = quotas_by_period(db, user, scope, grain, keys, currency, lang)
    out = []
    for k in keys:
        row = {"period": k, **table[k]}
        row["closed_commit"] = row["closed"] + row["commit"]
        row["closed_commit_best"] = row["closed_commit"] + row["best_case"]
        row["quota"] = quota.get(k)
        out.append(row)
    return out


def _quota_where(user: User, scope: Scope) -> tuple[str, dict]:
    clauses, params = ["TRUE"], {}
    if user.role == "rep":
        clauses.append("q.user_id = $me")
        params["me"] = user.id
    if scope.owner_ids:
        names = []
        for i, owner in enumerate(scope.owner_ids):
            names.append(f"$owner{i}")
            params[f"owner{i}"] = owner
        clauses.append(f"q.user_id IN ({', '.join(names)})")
    return " AND ".join(clauses), params


def quotas_by_period(db: Database, user: User, scope: Scope, grain: str, keys: list[int],
                     currency: str, lang: str | None = None) -> dict[int, float]:
    """{period key: summed quota} of the reps in scope: a quota counts in the period holding
    its first day (a monthly quota counts in its quarter too)."""
    if not keys:
        return {}
    where, params = _quota_where(user, scope)
    key, join = calendar.period("q.period_start", grain, lang)
    first, _e = periods.bounds(keys[0], grain, lang)
    _s, last = periods.bounds(keys[-1], grain, lang)
    params.update(cur=currency, first=first, last=last)
    if grain == "month":  # a quarterly quota is no monthly figure
        where += " AND q.grain = 'month'"
    return {r["period"]: float(r["amount"]) for r in db.query(
        f"SELECT {key} AS period, sum(q.amount) AS amount FROM quotas q{join}"
        f" WHERE {where} AND q.currency = $cur AND q.period_start >= $first"
        " AND q.period_start <= $last GROUP BY 1", params)}


def attainment(db: Database, user: User, scope: Scope, start: date, end: date,
               currency: str = "USD") -> list[dict]:
    """Per rep with a quota starting in [start, end] or a deal won in it: {user_id, name,
    quota, won, attainment (won / quota, None without a quota), commit (open commit-category
    deals expected in it)}."""
    _check(user)
    where, params = deal_where(user, scope)
    qwhere, qparams = _quota_where(user, scope)
    params.update(qparams, cur=currency, start=start, end=end)
    found = db.query(
        "WITH won AS (SELECT t.owner_id, sum(t.amount) AS amount FROM deals t"
        f" JOIN stages s ON s.id = t.stage_id WHERE {where} AND s.kind = 'won'"
        " AND t.currency = $cur AND t.closed_on >= $start AND t.closed_on <= $end"
        " GROUP BY t.owner_id),"
        " com AS (SELECT t.owner_id, sum(t.amount) AS amount FROM deals t"
        f" JOIN stages s ON s.id = t.stage_id WHERE {where} AND s.kind = 'open'"
        f" AND {CATEGORY} = 'commit' AND t.currency = $cur"
        " AND t.expected_close_date >= $start AND t.expected_close_date <= $end"
        " GROUP BY t.owner_id),"
        " quota AS (SELECT q.user_id AS owner_id, sum(q.amount) AS amount FROM quotas q"
        f" WHERE {qwhere} AND q.currency = $cur AND q.period_start >= $start"
        " AND q.period_start <= $end GROUP BY q.user_id)"
        " SELECT u.id AS user_id, u.name, quota.amount AS quota, won.amount AS won,"
        " com.amount AS commit_amount FROM users u LEFT JOIN quota ON quota.owner_id = u.id"
        " LEFT JOIN won ON won.owner_id = u.id LEFT JOIN com ON com.owner_id = u.id"
        " WHERE quota.amount IS NOT NULL OR won.amount IS NOT NULL ORDER BY u.name", params)
    out = []
    for r in found:
        quota = float(r["quota"]) if r["quota"] is not None else None
        won = float(r["won"] or 0)
        out.append({"user_id": r["user_id"], "name": r["name"], "quota": quota, "won": won,
                    "commit": float(r["commit_amount"] or 0),
                    "attainment": won / quota if quota else None})
    return out


def _may_set_quotas(user: User) -> None:
    if user is None or not user.sees_all:
        raise PermissionDenied(_("Only managers and admins set quotas"))


def set_quota(db: Database, user: User, values: dict, lang: str | None = None) -> int:
    """Sets one rep's quota for a month or quarter of the manager's calendar (values: user_id,
    grain, day: any day in the period, amount, currency); replaces the quota of the same rep,
    period and currency. Returns its id."""
    _may_set_quotas(user)
    with db.transaction() as cur:
        return _set_quota(cur, user, values, lang)


def _set_quota(cur, user: User, values: dict, lang: str | None) -> int:
    errors = {}
    grain = values.get("grain") or "month"
    if grain not in calendar.GRAINS:
        errors["grain"] = _("Choose month or quarter")
    rep = values.get("user_id")
    found = cur.execute("SELECT id FROM users WHERE id = $id AND active",
                        {"id": rep}).fetchone() if rep is not None else None
    if found is None:
        errors["user_id"] = _("Choose an active user")
    try:
        amount = Decimal(str(values.get("amount")).strip())
        if not amount.is_finite() or amount < 0 or amount >= Decimal("1e12"):
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        errors["amount"] = _("The quota must be a number of at least 0")
        amount = None
    currency = values.get("currency") or "USD"
    if currency not in CURRENCIES:
        errors["currency"] = _("Choose a currency")
    day = values.get("day")
    if not isinstance(day, date):
        errors["day"] = _("Choose the period")
    if errors:
        raise ValidationError(errors)
    start, end = periods.bounds(periods.period_key(day, grain, lang), grain, lang)
    now = datetime.now()
    old = cur.execute(
        "SELECT id, amount FROM quotas WHERE user_id = $u AND period_start = $s"
        " AND period_end = $e AND currency = $c", {"u": rep, "s": start, "e": end,
                                                   "c": currency}).fetchone()
    amount = amount.quantize(Decimal("0.01"))
    if old:
        cur.execute("UPDATE quotas SET amount = $a, updated_at = $t, updated_by = $by"
                    " WHERE id = $id", {"a": amount, "t": now, "by": user.id or None,
                                        "id": old[0]})
        audit.record(cur, user, "quotas", old[0], "update", {"amount": (old[1], amount)})
        return old[0]
    new_id = cur.execute(
        "INSERT INTO quotas (user_id, grain, period_start, period_end, amount, currency,"
        " created_at, created_by, updated_at, updated_by) VALUES ($u, $g, $s, $e, $a, $c,"
        " $t, $by, $t, $by) RETURNING id",
        {"u": rep, "g": grain, "s": start, "e": end, "a": amount, "c": currency, "t": now,
         "by": user.id or None}).fetchone()[0]
    audit.record(cur, user, "quotas", new_id, "create",
                 {"user_id": (None, rep), "grain": (None, grain), "period_start": (None, start),
                  "period_end": (None, end), "amount": (None, amount),
                  "currency": (None, currency)})
    return new_id


def parse_period(text: str) -> tuple[str, date, str]:
    """(grain, a day in it, lang) of '2026-11', '2026-Q4', or Jalali '1405-09' / '1405-Q3'
    (a year before 1700 is a Jalali one); Persian digits allowed."""
    raw = i18n.latin_digits(str(text or "")).strip().upper().replace("/", "-")
    try:
        year_text, part = raw.split("-", 1)
        year = int(year_text)
        lang = "fa" if year < 1700 else "en"
        if part.startswith("Q"):
            quarter = int(part[1:])
            if not 1 <= quarter <= 4:
                raise ValueError
            return "quarter", periods.month_start(year, 3 * quarter - 2, lang), lang
        month = int(part)
        if not 1 <= month <= 12:
            raise ValueError
        return "month", periods.month_start(year, month, lang), lang
    except ValueError:
        raise ValueError(_("{text} is no period: write 2026-11 or 2026-Q4").format(
            text=text)) from None


def import_quotas(db: Database, user: User, data: bytes) -> dict:
    """Quotas from a CSV file with the columns username, period (2026-11, 2026-Q4, or Jalali
    1405-09), amount and currency (optional, USD): all rows in one transaction, or none when
    any row is wrong. Returns {"imported": n} or raises ValidationError naming every bad line."""
    _may_set_quotas(user)
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    reader = csv.DictReader(io.StringIO(text))
    fields = {(f or "").strip().lower() for f in reader.fieldnames or []}
    missing = [c for c in ("username", "period", "amount") if c not in fields]
    if missing:
        raise ValidationError({"file": _("The file needs the columns {columns}").format(
            columns=", ".join(missing))})
    users = {r["username"]: r["id"] for r in db.query("SELECT id, username FROM users"
                                                      " WHERE active")}
    problems, count = [], 0
    with db.transaction() as cur:
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            try:
                if row["username"] not in users:
                    raise ValueError(_("no active user {name}").format(name=row["username"]))
                grain, day, lang = parse_period(row["period"])
                _set_quota(cur, user, {"user_id": users[row["username"]], "grain": grain,
                                       "day": day, "amount": row["amount"].replace(",", ""),
                                       "currency": row.get("currency") or "USD"}, lang)
                count += 1
            except ValidationError as exc:
                problems.append(_("line {line}: {reason}").format(
                    line=line, reason="; ".join(exc.errors.values())))
            except ValueError as exc:
                problems.append(_("line {line}: {reason}").format(line=line, reason=exc))
        if problems:
            raise ValidationError({"file": " · ".join(problems)})
    return {"imported": count}


def list_quotas(db: Database, user: User, start: date, end: date) -> list[dict]:
    """The quotas starting in [start, end] that the user may see, for the quota table."""
    _check(user)
    where, params = _quota_where(user, Scope(start, end, start, end))
    params.update(start=start, end=end)
    return db.query(
        "SELECT q.id, u.name, q.grain, q.period_start, q.period_end, q.amount, q.currency"
        f" FROM quotas q JOIN users u ON u.id = q.user_id WHERE {where}"
        " AND q.period_start >= $start AND q.period_start <= $end"
        " ORDER BY q.period_start, u.name", params)


# --- 3. projection of won revenue -----------------------------------------------------------

MIN_MONTHS = 12  # fewer months of history: no projection
SEASONAL_MONTHS = 24  # from two years on, the model learns a yearly season
BACKTEST_MONTHS = 6


def monthly_won(db: Database, user: User, scope: Scope, currency: str, today: date | None = None,
                lang: str | None = None, months: int = 36) -> list[dict]:
    """[{period, amount}] of won revenue in one currency per month of the user's calendar, from
    the first month with a won deal (at most `months` back) to the last full month."""
    _check(user)
    today = today or date.today()
    keys = periods.next_keys(today, "month", months + 1, lang, back=months)[:-1]
    first, _e = periods.bounds(keys[0], "month", lang)
    this_month, _e = periods.bounds(periods.period_key(today, "month", lang), "month", lang)
    found = {r["period"]: float(r["amount"]) for r in _won_by_month(
        db, user, scope, currency, first, this_month, lang)}
    started = [k for k in keys if k >= min(found, default=keys[-1] + 1)]
    return [{"period": k, "amount": found.get(k, 0.0)} for k in started]


def project(history: list[float], horizon: int = 12) -> dict:
    """A statistical projection of a monthly series (statsmodels ETS: additive errors, a
    damped additive trend and, from 24 months on, an additive yearly season) with 80 % and
    95 % prediction intervals, and its rolling-origin backtest: one-month-ahead forecasts of
    each of the last 6 months from the months before it, MAPE = mean |actual - forecast| /
    actual over those with a non-zero actual. With fewer than 12 months: {"enough": False}."""
    values = [float(v) for v in history]
    if len(values) < MIN_MONTHS or not any(values):
        return {"enough": False, "months": len(values)}
    fit = _fit(values)
    pred = fit.get_prediction(start=len(values), end=len(values) + horizon - 1)
    out = {"enough": True, "months": len(values), "forecast": list(map(float, pred.predicted_mean))}
    for level in (80, 95):
        frame = pred.summary_frame(alpha=1 - level / 100)
        out[f"lower{level}"] = [max(0.0, float(v)) for v in frame["pi_lower"]]
        out[f"upper{level}"] = [float(v) for v in frame["pi_upper"]]
    out["forecast"] = [max(0.0, v) for v in out["forecast"]]
    errors = []
    for cut in range(len(values) - BACKTEST_MONTHS, len(values)):
        if cut < MIN_MONTHS - BACKTEST_MONTHS or values[cut] == 0:
            continue
        guess = one_step(values[:cut])
        errors.append(abs(values[cut] - guess) / abs(values[cut]))
    out["mape"] = sum(errors) / len(errors) if errors else None
    out["backtested"] = len(errors)
    return out


def one_step(values: list[float]) -> float:
    """The model's forecast of the month after values (never below zero)."""
    return max(0.0, float(_fit(values).forecast(1).iloc[0]))


def _fit(values: list[float]):
    import warnings

    import pandas as pd
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    series = pd.Series(values, dtype=float)
    seasonal = "add" if len(series) >= SEASONAL_MONTHS else None
    model = ETSModel(series, error="add", trend="add", damped_trend=True, seasonal=seasonal,
                     seasonal_periods=12 if seasonal else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return model.fit(disp=False, maxiter=200)


# --- 4. stage probabilities learned from the history ---------------------------------------

def learned_probabilities(db: Database, user: User, pipeline_id: int,
                          scope: Scope | None = None) -> list[dict]:
    """Per open stage of a pipeline: of the closed deals (won or lost now) that reached the
    stage, the share won, beside the configured probability: {stage_id, stage, configured,
    deals, won, learned, low, high}; low-high is the 95 % Wilson interval, learned None
    without deals."""
    _check(user)
    scope = scope or Scope(date.min, date.max, date.min, date.max)
    if user.role != "rep" and not scope.owner_ids:  # every live deal: the kept counts
        found = {stage: {"deals": deals, "won": won} for stage, (deals, won)
                 in stage_reach.counts(db, pipeline_id).items()}
    else:  # some owners' deals: few enough to count from the history
        found = _learned_from_history(db, user, pipeline_id, scope)
    out = []
    for s in db.query("SELECT id, name, probability FROM stages WHERE pipeline_id = $p"
                      " AND deleted_at IS NULL AND kind = 'open' ORDER BY position, id",
                      {"p": pipeline_id}):
        r = found.get(s["id"], {"deals": 0, "won": 0})
        low, high = wilson(r["won"], r["deals"])
        out.append({"stage_id": s["id"], "stage": s["name"], "configured": s["probability"],
                    "deals": r["deals"], "won": r["won"],
                    "learned": r["won"] / r["deals"] if r["deals"] else None,
                    "low": low, "high": high})
    return out


def _learned_from_history(db: Database, user: User, pipeline_id: int, scope: Scope) -> dict:
    """{stage id: {deals, won}} of learned_probabilities, counted over the history."""
    where, params = deal_where(user, Scope(scope.start, scope.end, scope.prev_start,
                                           scope.prev_end, None, scope.owner_ids))
    params["p"] = pipeline_id
    return {r["stage_id"]: r for r in db.query(
        "SELECT h.to_stage_id AS stage_id, count(DISTINCT t.id) AS deals,"
        " count(DISTINCT t.id) FILTER (WHERE cs.kind = 'won') AS won"
        " FROM deal_stage_history h JOIN deals t ON t.id = h.deal_id"
        " JOIN stages cs ON cs.id = t.stage_id"
        f" WHERE {where} AND t.pipeline_id = $p AND cs.kind IN ('won', 'lost')"
        " GROUP BY h.to_stage_id", params)}


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float | None, float | None]:
    """The Wilson score interval of a proportion (95 % by default)."""
    if not n:
        return None, None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


MIN_LEARNED_DEALS = 10


def adopt_learned(db: Database, user: User, pipeline_id: int,
                  min_deals: int = MIN_LEARNED_DEALS) -> dict[int, tuple[int, int]]:
    """Admin: sets each open stage's probability to the learned one (rounded percent) where at
    least min_deals closed deals stand behind it; one transaction, audited per stage. Returns
    {stage_id: (old, new)} of the stages changed."""
    if user is None or user.role != "admin":
        raise PermissionDenied(_("Only admins change stage probabilities"))
    learned = learned_probabilities(db, user, pipeline_id)
    changed = {}
    with db.transaction() as cur:
        for row in learned:
            if row["learned"] is None or row["deals"] < min_deals:
                continue
            new = int(round(row["learned"] * 100))
            if new == row["configured"]:
                continue
            cur.execute("UPDATE stages SET probability = $p WHERE id = $id",
                        {"p": new, "id": row["stage_id"]})
            audit.record(cur, user, "stages", row["stage_id"], "update",
                         {"probability": (row["configured"], new),
                          "learned_from_deals": (None, row["deals"])})
            changed[row["stage_id"]] = (row["configured"], new)
    return changed


# --- 5. daily snapshots and forecast accuracy ------------------------------------------------

def take_snapshot(db: Database, actor: User = SYSTEM, today: date | None = None) -> int:
    """Stores today's open pipeline (every deal, whoever owns it) by expected close month of
    both calendars, forecast category, pipeline, owner and currency, once a day: returns the
    rows written, 0 when today's snapshot exists. Open deals without an expected close date
    are left out."""
    if actor is None or actor.role != "admin":
        raise PermissionDenied(_("Only admins take forecast snapshots"))
    today = today or date.today()
    with db.transaction() as cur:
        done = cur.execute("SELECT count(*) FROM forecast_snapshots WHERE taken_on = $d",
                           {"d": today}).fetchone()[0]
        if done:
            return 0
        written = 0
        for name, lang in (("gregorian", "en"), ("jalali", "fa")):
            key, join = calendar.period("t.expected_close_date", "month", lang)
            written += cur.execute(
                "INSERT INTO forecast_snapshots (taken_on, calendar, period_key,"
                " forecast_category, pipeline_id, owner_id, currency, deals, amount, weighted)"
                f" SELECT $d, $cal, {key}, {CATEGORY}, t.pipeline_id, t.owner_id, t.currency,"
                f" count(*), coalesce(sum(t.amount), 0), coalesce(sum(t.amount * {WEIGHT}), 0)"
                f" FROM deals t JOIN stages s ON s.id = t.stage_id{join}"
                " WHERE t.deleted_at IS NULL AND s.kind = 'open'"
                " AND t.expected_close_date IS NOT NULL"
                " GROUP BY 3, 4, 5, 6, 7", {"d": today, "cal": name}).fetchone()[0]
        audit.record(cur, actor, "forecast_snapshots", None, "create",
                     {"taken_on": (None, today), "rows": (None, written)})
    return written


def snapshot_if_due(db: Database, today: date | None = None) -> int:
    """The first page load of the day takes the day's snapshot (as the system)."""
    today = today or date.today()
    if db.scalar("SELECT count(*) FROM forecast_snapshots WHERE taken_on = $d", {"d": today}):
        return 0
    import duckdb

    try:
        return take_snapshot(db, SYSTEM, today)
    except duckdb.TransactionException:  # another session took it at the same moment
        return 0


def accuracy(db: Database, user: User, scope: Scope, currency: str = "USD",
             today: date | None = None, months: int = 12, lang: str | None = None
             ) -> list[dict]:
    """For each past month of the user's calendar (the last `months` full ones) with a
    snapshot taken before or during it: what the snapshot closest to the month's start
    forecast for it (weighted, and closed + commit), what was actually won, and the error
    (won - weighted) / weighted. {period, taken_on, weighted, commit, won, error}."""
    _check(user)
    today = today or date.today()
    cal = "jalali" if calendar.uses_jalali(lang) else "gregorian"
    keys = periods.next_keys(today, "month", months + 1, lang, back=months)[:-1]
    where, params = ["s.calendar = $cal", "s.currency = $cur"], {"cal": cal, "cur": currency}
    if user.role == "rep":
        where.append("s.owner_id = $me")
        params["me"] = user.id
    if scope.pipeline_id:
        where.append("s.pipeline_id = $pipeline")
        params["pipeline"] = scope.pipeline_id
    for i, owner in enumerate(scope.owner_ids):
        params[f"owner{i}"] = owner
    if scope.owner_ids:
        where.append("s.owner_id IN ("
                     + ", ".join(f"$owner{i}" for i in range(len(scope.owner_ids))) + ")")
    taken = {r["period_key"]: r for r in db.query(
        "WITH pick AS (SELECT period_key, coalesce(max(taken_on) FILTER (WHERE taken_on <="
        " first_day), min(taken_on)) AS taken_on FROM (SELECT DISTINCT period_key, taken_on,"
        " first_day FROM forecast_snapshots s JOIN (SELECT * FROM (VALUES "
        + ", ".join(f"($k{i}, $f{i}, $l{i})" for i in range(len(keys)))
        + ") AS m (k, first_day, last_day)) m ON m.k = s.period_key"
        f" WHERE {' AND '.join(where)} AND s.taken_on <= m.last_day) x GROUP BY period_key)"
        " SELECT s.period_key, p.taken_on, sum(s.weighted) AS weighted,"
        " sum(s.amount) FILTER (WHERE s.forecast_category IN ('closed', 'commit')) AS commit"
        " FROM forecast_snapshots s JOIN pick p ON p.period_key = s.period_key"
        f" AND p.taken_on = s.taken_on WHERE {' AND '.join(where)} GROUP BY 1, 2",
        {**params, **{f"k{i}": k for i, k in enumerate(keys)},
         **{f"f{i}": periods.bounds(k, "month", lang)[0] for i, k in enumerate(keys)},
         **{f"l{i}": periods.bounds(k, "month", lang)[1] for i, k in enumerate(keys)}})}
    if not taken:
        return []
    first, _e = periods.bounds(keys[0], "month", lang)
    _s, last = periods.bounds(keys[-1], "month", lang)
    won = {r["period"]: float(r["amount"]) for r in _won_months(db, user, scope, currency,
                                                                first, last, lang)}
    out = []
    for k in keys:
        if k not in taken:
            continue
        weighted = float(taken[k]["weighted"] or 0)
        actual = won.get(k, 0.0)
        out.append({"period": k, "taken_on": taken[k]["taken_on"], "weighted": weighted,
                    "commit": float(taken[k]["commit"] or 0), "won": actual,
                    "error": (actual - weighted) / weighted if weighted else None})
    return out


def _won_months(db: Database, user: User, scope: Scope, currency: str, first: date,
                last: date, lang: str | None) -> list[dict]:
    return _won_by_month(db, user, scope, currency, first, last + timedelta(days=1), lang)


def _won_by_month(db: Database, user: User, scope: Scope, currency: str, first: date,
                  before: date, lang: str | None) -> list[dict]:
    """[{period, amount}] won in one currency per month of the user's calendar, closed on
    first .. before (excluded). Summed by day first: the month key of each of 200,000 deals
    cost PostgreSQL more than the sum (at the large demo 357 -> 171 ms)."""
    where, params = deal_where(user, scope)
    key, join = calendar.period("t.closed_on", "month", lang)
    params.update(cur=currency, first=first, before=before)
    return db.query(
        f"SELECT {key} AS period, sum(t.amount) AS amount FROM (SELECT t.closed_on,"
        " sum(t.amount) AS amount FROM deals t JOIN stages s ON s.id = t.stage_id"
        f" WHERE {where} AND s.kind = 'won' AND t.currency = $cur"
        f" AND t.closed_on >= $first AND t.closed_on < $before GROUP BY t.closed_on) t{join}"
        " GROUP BY 1", params)


def summary(db: Database, user: User, scope: Scope, grain: str = "month",
            currency: str = "USD", today: date | None = None, lang: str | None = None
            ) -> dict:
    """The forecast-by-period figures for the command line: weighted open pipeline (overdue
    apart) and the categories with quotas, per period."""
    today = today or date.today()
    weighted = weighted_by_period(db, user, scope, grain, "stage", currency, today, lang=lang)
    per = {}
    for r in weighted["rows"]:
        per[r["period"]] = per.get(r["period"], 0.0) + r["weighted"]
    return {"currency": currency, "grain": grain,
            "overdue_weighted": per.get(OVERDUE, 0.0), "no_date_weighted": per.get(NO_DATE, 0.0),
            "periods": [{**row, "weighted": per.get(row["period"], 0.0)}
                        for row in categories(db, user, scope, grain, currency, today,
                                              lang=lang)]}
