"""Customer satisfaction: NPS, CSAT, complaints, resolution times and customers at risk.

Every function takes (db, user, ...) and reads only the rows the user may see
(records.visible: reps their own surveys, complaints and customers). All aggregation happens in
SQL; only the aggregates come back.

Definitions (hand-checked in tests/test_satisfaction.py):
- NPS = % promoters (9-10) - % detractors (0-6) of the NPS answers, -100..100; passives (7-8)
  count in the total only. No answers: None.
- CSAT % satisfied = share of CSAT answers of 4 or 5. No answers: None.
- Resolution time = resolved_on - opened_on in days, of complaints with status resolved;
  average and 90th percentile (linear interpolation, percentile_cont). Open complaints are not
  in it; they are counted as unresolved.
- At risk: a customer whose latest NPS answer is a detractor (0-6), who has an open (open or
  in progress) complaint of high or critical severity, or whose satisfaction dropped (latest
  CSAT at least 2 points below the one before, or latest NPS at least 3 below the one
  before). Ranked by what is at stake: open pipeline (amounts of open deals) plus the won
  revenue of the last 12 months (won deals closed on or after the same day a year ago).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from crm import calendar, records
from crm.auth import PermissionDenied, User
from crm.db import Database
from crm.i18n import gettext as _

DIMENSIONS = ("segment", "product", "owner")
COMPLAINT_DIMENSIONS = ("category", "product")
AGE_BUCKETS = ((0, 7), (8, 30), (31, 90), (91, None))  # days open, inclusive
CSAT_DROP, NPS_DROP = 2, 3
REASONS = ("detractor", "severe_complaint", "dropped")


@dataclass
class Filters:
    start: date | None = None  # answered or opened on or after
    end: date | None = None  # on or before
    segments: list = field(default_factory=list)
    products: list = field(default_factory=list)
    owners: list = field(default_factory=list)
    currency: str | None = None  # at risk: the stake counted in deals of this currency only


# --- the formulas ----------------------------------------------------------------------------

def nps(promoters: int, passives: int, detractors: int) -> float | None:
    """% promoters - % detractors; None without answers."""
    total = promoters + passives + detractors
    if not total:
        return None
    return 100.0 * (promoters - detractors) / total


def satisfied_share(counts: dict[int, int]) -> float | None:
    """Share (0..1) of CSAT answers of 4 or 5, from {score: answers}; None without answers."""
    total = sum(counts.values())
    if not total:
        return None
    return (counts.get(4, 0) + counts.get(5, 0)) / total


def stake(open_pipeline, won_12m) -> float:
    return float(open_pipeline or 0) + float(won_12m or 0)


# --- SQL helpers -----------------------------------------------------------------------------

def _signed_in(user: User) -> None:
    if user is None:
        raise PermissionDenied(_("Sign in first"))


def _in(column: str, name: str, values, params: dict) -> str:
    names = []
    for i, v in enumerate(values):
        params[f"{name}{i}"] = v
        names.append(f"${name}{i}")
    return f"{column} IN ({', '.join(names)})"


def _where(user: User, entity, date_col: str | None, f: Filters | None
           ) -> tuple[str, dict]:
    """The visible live rows of the entity (alias t, its customer c) matching the filters;
    date_col None leaves the period out."""
    from crm import service

    _signed_in(user)
    f = f or Filters()
    where, params = records.visible(entity, user)
    clauses = [where]
    if date_col and f.start:
        clauses.append(f"t.{date_col} >= $start")
        params["start"] = f.start
    if date_col and f.end:
        clauses.append(f"t.{date_col} <= $end")
        params["end"] = f.end
    if f.segments:
        clauses.append(_in("c.segment", "seg", f.segments, params))
    if f.products:
        clauses.append(_in("t.product_id", "prod", f.products, params))
    if f.owners:
        clauses.append(_in("t.owner_id", "own", f.owners, params))
    assert entity in (service.SURVEYS, service.COMPLAINTS)
    return " AND ".join(clauses), params


def _surveys(user: User, f: Filters | None, date_filter: bool = True):
    from crm import service

    where, params = _where(user, service.SURVEYS, "answered_on" if date_filter else None, f)
    return "surveys t JOIN customers c ON c.id = t.customer_id", where, params


def _complaints(user: User, f: Filters | None, date_filter: bool = True):
    from crm import service

    where, params = _where(user, service.COMPLAINTS, "opened_on" if date_filter else None, f)
    return "complaints t JOIN customers c ON c.id = t.customer_id", where, params


_NPS_COUNTS = ("count(t.nps) AS answers,"
               " count(*) FILTER (WHERE t.nps >= 9) AS promoters,"
               " count(*) FILTER (WHERE t.nps BETWEEN 7 AND 8) AS passives,"
               " count(*) FILTER (WHERE t.nps <= 6) AS detractors")


def _with_nps(row: dict) -> dict:
    row["nps"] = nps(row["promoters"], row["passives"], row["detractors"])
    return row


# --- NPS and CSAT ----------------------------------------------------------------------------

def nps_summary(db: Database, user: User, f: Filters | None = None) -> dict:
    """{answers, promoters, passives, detractors, nps} over the filtered answers."""
    tables, where, params = _surveys(user, f)
    return _with_nps(db.one(f"SELECT {_NPS_COUNTS} FROM {tables} WHERE {where}", params))


def nps_over_time(db: Database, user: User, f: Filters | None = None, grain: str = "month",
                  lang: str | None = None) -> list[dict]:
    """Per period of the user's calendar (calendar.period): {period, answers, promoters,
    passives, detractors, nps}, oldest first; periods without NPS answers are left out."""
    tables, where, params = _surveys(user, f)
    key, join = calendar.period("t.answered_on", grain, lang)
    found = db.query(
        f"SELECT {key} AS period, {_NPS_COUNTS} FROM {tables}{join}"
        f" WHERE {where} AND t.nps IS NOT NULL GROUP BY 1 ORDER BY 1", params)
    return [_with_nps(r) for r in found]


def csat_distribution(db: Database, user: User, f: Filters | None = None) -> dict:
    """{counts: {1..5: answers}, answers, satisfied (share of 4-5, None without answers),
    average}."""
    tables, where, params = _surveys(user, f)
    found = db.query(f"SELECT t.csat AS score, count(*) AS n FROM {tables}"
                     f" WHERE {where} AND t.csat IS NOT NULL GROUP BY 1", params)
    counts = {score: 0 for score in range(1, 6)}
    counts.update({r["score"]: r["n"] for r in found})
    total = sum(counts.values())
    average = sum(s * n for s, n in counts.items()) / total if total else None
    return {"counts": counts, "answers": total, "satisfied": satisfied_share(counts),
            "average": average}


def _dimension(dimension: str) -> tuple[str, str, str]:
    """(key, label, join) of a survey or complaint dimension."""
    if dimension == "segment":
        return "c.segment", "c.segment", ""
    if dimension == "product":
        return "t.product_id", "p.name", " LEFT JOIN products p ON p.id = t.product_id"
    if dimension == "owner":
        return "t.owner_id", "u.name", " LEFT JOIN users u ON u.id = t.owner_id"
    if dimension == "category":
        return "t.category", "t.category", ""
    raise ValueError(dimension)


def scores_by(db: Database, user: User, dimension: str, f: Filters | None = None
              ) -> list[dict]:
    """NPS and CSAT per segment, product or owner: {key, label, answers, promoters, passives,
    detractors, nps, csat_answers, csat_1..csat_5, satisfied (share), csat_average}, most
    answers first. key None: no segment, product or owner."""
    if dimension not in DIMENSIONS:
        raise ValueError(dimension)
    return scores_by_all(db, user, f)[dimension]


_GROUP_KEYS = {"segment": "c.segment", "product": "t.product_id", "owner": "t.owner_id"}


def scores_by_all(db: Database, user: User, f: Filters | None = None) -> dict[str, list]:
    """scores_by for every dimension, from one pass over the answers (GROUPING SETS); the
    names of products and owners are looked up for the groups only."""
    tables, where, params = _surveys(user, f)
    keys = ", ".join(f"{k} AS {d}" for d, k in _GROUP_KEYS.items())
    flags = ", ".join(f"GROUPING({k}) AS g_{d}" for d, k in _GROUP_KEYS.items())
    sets = ", ".join(f"({k})" for k in _GROUP_KEYS.values())
    found = db.query(
        f"WITH g AS (SELECT {keys}, {flags}, count(*) AS n, {_NPS_COUNTS},"
        f" count(t.csat) AS csat_answers, avg(t.csat) AS csat_average, "
        + ", ".join(f"count(*) FILTER (WHERE t.csat = {s}) AS csat_{s}" for s in range(1, 6))
        + f" FROM {tables} WHERE {where} GROUP BY GROUPING SETS ({sets}))"
          f" SELECT g.*, p.name AS product_name, u.name AS owner_name FROM g"
          f" LEFT JOIN products p ON p.id = g.product LEFT JOIN users u ON u.id = g.owner",
        params)
    out: dict[str, list] = {d: [] for d in DIMENSIONS}
    labels = {"segment": "segment", "product": "product_name", "owner": "owner_name"}
    for row in found:
        dimension = next(d for d in DIMENSIONS if row[f"g_{d}"] == 0)
        _with_nps(row)
        row["satisfied"] = satisfied_share({s: row[f"csat_{s}"] for s in range(1, 6)})
        row["csat_average"] = None if row["csat_average"] is None else float(row["csat_average"])
        row["key"], row["label"] = row[dimension], row[labels[dimension]]
        out[dimension].append(row)
    for rows in out.values():
        rows.sort(key=lambda r: (-r["n"], r["label"] is None, str(r["label"] or "")))
    return out


# the groups of survey_numbers' pass over the counts per segment, product, owner and score:
# (name, column of x); the months are counted on their own (period)
_PASS_SETS = (("segment", "x.segment"), ("product", "x.product"), ("owner", "x.owner"),
              ("score", "x.score"))
_NPS_SUMS = ("answers", "promoters", "passives", "detractors")


def survey_numbers(db: Database, user: User, f: Filters | None = None,
                   lang: str | None = None) -> dict:
    """What the page shows of the filtered answers, from one statement, equal to {nps:
    nps_summary(), trend: nps_over_time(), csat: csat_distribution(), by: scores_by_all()},
    which read the answers four times (at the large demo 500,000 of them: PostgreSQL 0.3-1.7 s
    each). The answers are counted once per segment, product, owner and CSAT score, and those
    few counts (2,000 at the large demo) summed per grouping set (the whole, each score, each
    segment, product and owner); the months' NPS counts come from a second, narrow grouping
    of the answers (UNION ALL). Counting per segment, product, owner, month and score in one
    grouping (45,000 groups at the large demo) cost PostgreSQL more than twice the CPU of
    the two groupings together, and could not be run in parallel. The CSAT averages are their
    sums over their counts."""
    tables, where, params = _surveys(user, f)
    key, join = calendar.period("t.answered_on", "month", lang)
    sums = ", ".join(f"sum(x.{k}) AS {k}" for k in _NPS_SUMS)
    found = db.query(
        "WITH x AS (SELECT c.segment AS segment, t.product_id AS product,"
        f" t.owner_id AS owner, t.csat AS score, count(*) AS n,"
        f" {_NPS_COUNTS} FROM {tables} WHERE {where}"
        f" GROUP BY c.segment, t.product_id, t.owner_id, t.csat),"
        f" g AS (SELECT x.segment, x.product, x.owner, CAST(NULL AS INTEGER) AS period,"
        " x.score, "
        + ", ".join(f"GROUPING({col}) AS g_{d}" for d, col in _PASS_SETS)
        + f", 1 AS g_period, sum(x.n) AS n, {sums},"
          " coalesce(sum(x.n) FILTER (WHERE x.score IS NOT NULL), 0) AS csat_answers,"
          " sum(x.score * x.n) AS csat_sum, "
        + ", ".join(f"coalesce(sum(x.n) FILTER (WHERE x.score = {s}), 0) AS csat_{s}"
                    for s in range(1, 6))
        + " FROM x GROUP BY GROUPING SETS ((), "
        + ", ".join(f"({col})" for _d, col in _PASS_SETS) + ")"
        # the months with NPS answers (the trend leaves the others out)
        f" UNION ALL SELECT NULL, NULL, NULL, {key}, NULL, 1, 1, 1, 1, 0, count(*),"
        f" {_NPS_COUNTS}, 0, NULL, 0, 0, 0, 0, 0 FROM {tables}{join}"
        f" WHERE {where} AND t.nps IS NOT NULL GROUP BY {key})"
        " SELECT g.*, p.name AS product_name, u.name AS owner_name FROM g"
        " LEFT JOIN products p ON p.id = g.product LEFT JOIN users u ON u.id = g.owner",
        params)
    sets = [*(d for d, _col in _PASS_SETS), "period"]
    total = {"answers": 0, "promoters": 0, "passives": 0, "detractors": 0}
    trend, counts = [], {score: 0 for score in range(1, 6)}
    out: dict[str, list] = {d: [] for d in DIMENSIONS}
    labels = {"segment": "segment", "product": "product_name", "owner": "owner_name"}
    nps_keys = ("answers", "promoters", "passives", "detractors")
    for row in found:
        grouped = [d for d in sets if row[f"g_{d}"] == 0]
        if not grouped:
            total = {k: row[k] or 0 for k in nps_keys}  # no answers: NULL sums
        elif grouped == ["period"]:
            if row["answers"]:  # months with CSAT answers alone have no NPS point
                trend.append(_with_nps({"period": row["period"],
                                        **{k: row[k] for k in nps_keys}}))
        elif grouped == ["score"]:
            if row["score"] is not None:
                counts[row["score"]] = row["n"]
        else:
            dimension = grouped[0]
            _with_nps(row)
            row["satisfied"] = satisfied_share({s: row[f"csat_{s}"] for s in range(1, 6)})
            row["csat_average"] = (int(row["csat_sum"]) / row["csat_answers"]
                                   if row["csat_answers"] else None)
            row["key"], row["label"] = row[dimension], row[labels[dimension]]
            for k in ("period", "score", "g_period", "g_score", "csat_sum"):
                row.pop(k)
            out[dimension].append(row)
    for rows in out.values():
        rows.sort(key=lambda r: (-r["n"], r["label"] is None, str(r["label"] or "")))
    trend.sort(key=lambda r: r["period"])
    answers = sum(counts.values())
    return {"nps": _with_nps(total), "trend": trend,
            "csat": {"counts": counts, "answers": answers, "satisfied": satisfied_share(counts),
                     "average": (sum(s * n for s, n in counts.items()) / answers
                                 if answers else None)},
            "by": out}


# --- complaints ------------------------------------------------------------------------------

def complaints_by(db: Database, user: User, dimension: str, f: Filters | None = None
                  ) -> list[dict]:
    """Complaints opened in the period per category or product: {key, label, total,
    unresolved}, most first."""
    if dimension not in COMPLAINT_DIMENSIONS:
        raise ValueError(dimension)
    tables, where, params = _complaints(user, f)
    key, label, join = _dimension(dimension)
    return db.query(
        f"SELECT {key} AS key, min({label}) AS label, count(*) AS total,"
        f" count(*) FILTER (WHERE t.status IN ('open', 'in_progress')) AS unresolved"
        f" FROM {tables}{join} WHERE {where} GROUP BY 1 ORDER BY 3 DESC, 2 NULLS LAST", params)


def complaints_by_all(db: Database, user: User, f: Filters | None = None
                      ) -> dict[str, list]:
    """complaints_by for every dimension (category and product) from one grouping of the
    complaints (GROUPING SETS), in the same order: most first, then by label."""
    tables, where, params = _complaints(user, f)
    found = db.query(
        "SELECT t.category, t.product_id, GROUPING(t.category) AS g_category,"
        " min(t.category) AS category_label, min(p.name) AS product_label, count(*) AS total,"
        " count(*) FILTER (WHERE t.status IN ('open', 'in_progress')) AS unresolved"
        f" FROM {tables} LEFT JOIN products p ON p.id = t.product_id WHERE {where}"
        " GROUP BY GROUPING SETS ((t.category), (t.product_id))"
        " ORDER BY GROUPING(t.category), count(*) DESC,"
        " CASE WHEN GROUPING(t.category) = 0 THEN min(t.category) END NULLS LAST,"
        " min(p.name) NULLS LAST", params)
    out: dict[str, list] = {d: [] for d in COMPLAINT_DIMENSIONS}
    for row in found:
        dimension = "category" if row["g_category"] == 0 else "product"
        key = row["category"] if dimension == "category" else row["product_id"]
        out[dimension].append({"key": key, "label": row[f"{dimension}_label"],
                               "total": row["total"], "unresolved": row["unresolved"]})
    return out


def open_by_age(db: Database, user: User, f: Filters | None = None,
                today: date | None = None) -> list[dict]:
    """Open and in-progress complaints by how long they have been open, whenever opened (the
    period does not apply; segment, product and owner do): [{low, high, count}] in
    AGE_BUCKETS order (high None: and older)."""
    tables, where, params = _complaints(user, f, date_filter=False)
    params["today"] = today or date.today()
    cases = []
    for i, (low, high) in enumerate(AGE_BUCKETS):
        cond = f"$today - t.opened_on >= {low}"
        if high is not None:
            cond += f" AND $today - t.opened_on <= {high}"
        cases.append(f"count(*) FILTER (WHERE {cond}) AS b{i}")
    row = db.one(f"SELECT {', '.join(cases)} FROM {tables} WHERE {where}"
                 f" AND t.status IN ('open', 'in_progress')", params)
    return [{"low": low, "high": high, "count": row[f"b{i}"]}
            for i, (low, high) in enumerate(AGE_BUCKETS)]


def resolution_times(db: Database, user: User, f: Filters | None = None) -> dict:
    """Complaints opened in the period: {resolved, average_days, p90_days, unresolved};
    average and p90 over the resolved ones (None when there are none)."""
    tables, where, params = _complaints(user, f)
    row = db.one(
        f"SELECT count(*) FILTER (WHERE t.status = 'resolved' AND t.resolved_on IS NOT NULL)"
        f" AS resolved,"
        f" avg(t.resolved_on - t.opened_on) FILTER (WHERE t.status = 'resolved')"
        f" AS average_days,"
        f" percentile_cont(0.9) WITHIN GROUP (ORDER BY t.resolved_on - t.opened_on)"
        f" FILTER (WHERE t.status = 'resolved')"
        f" AS p90_days,"
        f" count(*) FILTER (WHERE t.status IN ('open', 'in_progress')) AS unresolved"
        f" FROM {tables} WHERE {where}", params)
    for k in ("average_days", "p90_days"):
        row[k] = None if row[k] is None else float(row[k])
    return row


# --- customers at risk -----------------------------------------------------------------------

def _latest_two(score: str, where: str) -> str:
    """Per customer: the latest and the previous answer of one score (NPS or CSAT). Two
    separate window passes (one per score) measured faster in DuckDB than one pass ranking
    both."""
    return (f"SELECT customer_id, max({score}) FILTER (WHERE k = 1) AS latest_{score},"
            f" max({score}) FILTER (WHERE k = 2) AS previous_{score},"
            f" max(answered_on) FILTER (WHERE k = 1) AS {score}_on"
            f" FROM (SELECT t.customer_id, t.{score}, t.answered_on, row_number() OVER"
            f" (PARTITION BY t.customer_id ORDER BY t.answered_on DESC, t.id DESC) AS k"
            f" FROM surveys t WHERE {where} AND t.{score} IS NOT NULL) ranked"
            f" WHERE k <= 2 GROUP BY customer_id")


def _risk_query(user: User, today: date, f: Filters | None, customer_id: int | None,
                only_at_risk: bool) -> tuple[str, dict]:
    from crm import service
    from crm.customers import CUSTOMERS

    _signed_in(user)
    f = f or Filters()
    s_where, params = records.visible(service.SURVEYS, user)
    c_where, c_params = records.visible(service.COMPLAINTS, user)
    k_where, k_params = records.visible(CUSTOMERS, user)
    params.update(c_params)
    params.update(k_params)
    params.update(since=_year_before(today), cur=f.currency)
    customer_filter = ["TRUE"]
    if customer_id is not None:
        customer_filter.append("t.id = $customer")
        params["customer"] = customer_id
        s_where += " AND t.customer_id = $customer"
        c_where += " AND t.customer_id = $customer"
    if f.segments:
        customer_filter.append(_in("t.segment", "seg", f.segments, params))
    if f.owners:
        customer_filter.append(_in("t.owner_id", "own", f.owners, params))
    flags = (f"coalesce(n.latest_nps <= 6, FALSE) AS detractor,"
             f" coalesce(k.severe_open, 0) > 0 AS severe_complaint,"
             f" coalesce(q.latest_csat <= q.previous_csat - {CSAT_DROP}"
             f" OR n.latest_nps <= n.previous_nps - {NPS_DROP}, FALSE) AS dropped")
    risky = ("(n.latest_nps <= 6 OR coalesce(k.severe_open, 0) > 0"
             f" OR q.latest_csat <= q.previous_csat - {CSAT_DROP}"
             f" OR n.latest_nps <= n.previous_nps - {NPS_DROP})")
    sql = (
        f"WITH n AS ({_latest_two('nps', s_where)}),"
        f" q AS ({_latest_two('csat', s_where)}),"
        # the open complaints alone (4 % of them at the large demo): every complaint of a
        # customer is counted for the rows shown only (below)
        f" k AS (SELECT t.customer_id, count(*) AS open_complaints,"
        f" count(*) FILTER (WHERE t.severity IN ('high', 'critical')) AS severe_open"
        f" FROM complaints t WHERE {c_where} AND t.status IN ('open', 'in_progress')"
        f" GROUP BY t.customer_id),"
        f" flagged AS (SELECT t.id, t.name, t.segment, t.owner_id,"
        f" n.latest_nps, n.previous_nps, n.nps_on, q.latest_csat, q.previous_csat, q.csat_on,"
        f" coalesce(k.open_complaints, 0) AS open_complaints,"
        f" coalesce(k.severe_open, 0) AS severe_open, {flags}"
        f" FROM customers t LEFT JOIN n ON n.customer_id = t.id"
        f" LEFT JOIN q ON q.customer_id = t.id LEFT JOIN k ON k.customer_id = t.id"
        f" WHERE {k_where} AND {' AND '.join(customer_filter)}"
        f"{' AND ' + risky if only_at_risk else ''}),"
        f" money AS (SELECT d.customer_id,"
        f" sum(d.amount) FILTER (WHERE s.kind = 'open') AS open_pipeline,"
        f" sum(d.amount) FILTER (WHERE s.kind = 'won' AND d.closed_on >= $since) AS won_12m,"
        f" min(d.currency) AS currency, count(DISTINCT d.currency) AS currencies"
        f" FROM deals d JOIN stages s ON s.id = d.stage_id"
        f" WHERE d.deleted_at IS NULL AND d.customer_id IN (SELECT id FROM flagged)"
        f" AND (s.kind = 'open' OR (s.kind = 'won' AND d.closed_on >= $since))"
        f" AND (CAST($cur AS VARCHAR) IS NULL OR d.currency = $cur)"
        f" GROUP BY d.customer_id)"
        f" SELECT f.*, u.name AS owner_name,"
        f" coalesce(m.open_pipeline, 0) AS open_pipeline, coalesce(m.won_12m, 0) AS won_12m,"
        f" coalesce(m.open_pipeline, 0) + coalesce(m.won_12m, 0) AS stake,"
        f" coalesce(CAST($cur AS VARCHAR), CASE WHEN m.currencies = 1 THEN m.currency END)"
        f" AS currency,"
        f" (SELECT count(*) FROM tasks x WHERE x.customer_id = f.id AND x.status = 'open'"
        f" AND x.deleted_at IS NULL) AS open_tasks,"
        f" (SELECT count(*) FROM complaints t WHERE t.customer_id = f.id AND {c_where})"
        f" AS complaints,"
        f" count(*) OVER () AS total"
        f" FROM flagged f LEFT JOIN money m ON m.customer_id = f.id"
        f" LEFT JOIN users u ON u.id = f.owner_id")
    return sql, params


def _year_before(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def _reasons(row: dict) -> dict:
    row["reasons"] = [r for r in REASONS if row[r]]
    for k in ("open_pipeline", "won_12m", "stake"):
        row[k] = float(row[k] or 0)
    return row


def at_risk(db: Database, user: User, f: Filters | None = None, today: date | None = None,
            limit: int = 50) -> list[dict]:
    """Customers at risk the user may see, the most at stake first: {id, name, segment,
    owner_id, owner_name, latest_nps, previous_nps, latest_csat, previous_csat, complaints,
    open_complaints, severe_open, detractor, severe_complaint, dropped, reasons, open_pipeline,
    won_12m, stake, currency (None when mixed), open_tasks, total (how many at risk)}.
    The filters' segments and owners apply (to the customer); period and product do not.
    Amounts in different currencies are not converted (there are no exchange rates): with
    the filters' currency, the stake counts only the deals in that currency."""
    sql, params = _risk_query(user, today or date.today(), f, None, True)
    params["n"] = limit
    found = db.query(f"{sql} ORDER BY stake DESC, f.severe_open DESC, f.id LIMIT $n", params)
    return [_reasons(r) for r in found]


def stake_currencies(db: Database, user: User, today: date | None = None) -> list[str]:
    """Currencies of the open deals and the deals won in the last 12 months the user may
    see, the most used first (what the at-risk stake can be counted in)."""
    from crm.deals import DEALS

    _signed_in(user)
    where, params = records.visible(DEALS, user)
    params["since"] = _year_before(today or date.today())
    # the open deals and the recently won ones counted apart (UNION ALL), so that neither
    # reads every won deal ever made and filters it by date (PostgreSQL: 220 -> 140 ms at the
    # large demo, in parallel)
    deals = (f"FROM deals t JOIN stages s ON s.id = t.stage_id WHERE {where}"
             " AND t.currency IS NOT NULL")
    return [r["currency"] for r in db.query(
        f"SELECT currency, sum(n) AS n FROM (SELECT t.currency, count(*) AS n {deals}"
        f" AND s.kind = 'open' GROUP BY 1 UNION ALL SELECT t.currency, count(*) AS n {deals}"
        f" AND s.kind = 'won' AND t.closed_on >= $since GROUP BY 1) x"
        f" GROUP BY 1 ORDER BY 2 DESC, 1", params)]


def customer_summary(db: Database, user: User, customer_id: int,
                     today: date | None = None) -> dict:
    """One customer's latest scores, complaint counts and whether (and why) it is at risk."""
    from crm.customers import CUSTOMERS

    records.get(db, user, CUSTOMERS, customer_id)  # may the user see it?
    sql, params = _risk_query(user, today or date.today(), None, customer_id, False)
    row = _reasons(db.one(sql, params))
    row["at_risk"] = bool(row["reasons"])
    return row


def page_numbers(db: Database, user: User, f: Filters | None = None,
                 today: date | None = None, lang: str | None = None, limit: int = 20) -> dict:
    """Everything the satisfaction page shows (the bench times this against bare SQL);
    limit 0 leaves the at-risk list out (the page reads it on its own, in a currency)."""
    return {
        **survey_numbers(db, user, f, lang),
        "complaints": complaints_by_all(db, user, f),
        "age": open_by_age(db, user, f, today),
        "resolution": resolution_times(db, user, f),
        "at_risk": at_risk(db, user, f, today, limit) if limit else [],
    }


def default_period(today: date | None = None) -> tuple[date, date]:
    """The last two years up to today."""
    today = today or date.today()
    return _year_before(_year_before(today)) + timedelta(days=1), today
