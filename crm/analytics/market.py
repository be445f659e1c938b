"""Market-audit computations: price positioning, market share, win/loss against each
competitor, margins per quarter, the customer audit (ABC classes, purchasing power and credit,
returns and cancellations, geography) and the pricing aids (break-even, skimming versus
penetration).

Functions over the database take (db, user, ...), check read access themselves and aggregate in
SQL (portable SQL with named parameters); the small pure functions beside them hold the
arithmetic, so it is tested by hand on small numbers. Amounts in different currencies are never
added up: each function takes the currency it sums."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from crm import calendar, records
from crm.auth import PermissionDenied, User
from crm.db import Database
from crm.i18n import gettext as _


def _reader(user: User | None) -> None:
    """Aggregates are for everyone signed in (viewers read dashboards); owned records are
    narrowed by records.visible where they are summed."""
    if user is None:
        raise PermissionDenied(_("Sign in first"))


def _deals_visible(user: User) -> tuple[str, dict]:
    from crm.deals import DEALS

    return records.visible(DEALS, user)


def _customers_visible(user: User) -> tuple[str, dict]:
    from crm.customers import CUSTOMERS

    return records.visible(CUSTOMERS, user)


# --- periods --------------------------------------------------------------------------------

def quarters_back(day: date, count: int, lang: str | None = None) -> date:
    """The first day of the quarter count-1 quarters before day's quarter (count=1: day's own
    quarter), in the user's calendar."""
    from crm.market import quarter_start

    start = quarter_start(day, lang)
    for _step in range(max(0, count - 1)):
        start = quarter_start(date.fromordinal(start.toordinal() - 1), lang)
    return start


# --- pure arithmetic ------------------------------------------------------------------------

def price_gap(ours, reference) -> float | None:
    """How far our price lies above (+) or below (-) a reference price, as a fraction:
    (ours - reference) / reference. None without both prices or with a zero reference."""
    if ours is None or reference in (None, 0):
        return None
    return (float(ours) - float(reference)) / float(reference)


def win_rate(won: int, lost: int) -> float | None:
    """Won deals over closed deals (won + lost); None before any closed."""
    closed = (won or 0) + (lost or 0)
    return None if closed == 0 else (won or 0) / closed


def share_rest(shares: list[float]) -> float:
    """The part of the market (in percent) no recorded company holds: 100 minus the recorded
    shares, never below zero."""
    return max(0.0, 100.0 - sum(float(s) for s in shares))


def margin(price, cost) -> tuple[float | None, float | None]:
    """(margin per unit, margin as a fraction of the price)."""
    if price is None or cost is None:
        return None, None
    per_unit = float(price) - float(cost)
    return per_unit, (per_unit / float(price) if float(price) else None)


def abc_split(revenues: dict, a: float = 0.80, b: float = 0.95) -> dict:
    """{customer: 'A' | 'B' | 'C'} by revenue, largest first: a customer is A while the
    revenue of the larger ones before it stays under a (80 %) of the total, so the A customers
    make the top 80 % (the one crossing the line included); B likewise up to b (95 %: the next
    15 %); C the rest. Ties in revenue are ordered by the customer key. Only positive revenue
    counts. abc_classes() does the same in SQL."""
    ranked = sorted(((k, float(v)) for k, v in revenues.items() if v and float(v) > 0),
                    key=lambda kv: (-kv[1], kv[0]))
    total = sum(v for _k, v in ranked)
    out, before = {}, 0.0
    for key, value in ranked:
        out[key] = "A" if before < a * total else "B" if before < b * total else "C"
        before += value
    return out


@dataclass(frozen=True)
class BreakEven:
    units: float | None  # None: the price does not cover the variable cost
    revenue: float | None
    contribution: float  # price - variable cost per unit

    @property
    def reachable(self) -> bool:
        return self.units is not None


def break_even(fixed_costs: float, variable_cost: float, price: float) -> BreakEven:
    """Units and revenue at which revenue covers fixed plus variable costs:
    units = fixed / (price - variable), revenue = units * price."""
    contribution = float(price) - float(variable_cost)
    if contribution <= 0:
        return BreakEven(None, None, contribution)
    units = float(fixed_costs) / contribution
    return BreakEven(units, units * float(price), contribution)


def break_even_lines(fixed_costs: float, variable_cost: float, price: float,
                     max_units: float, points: int = 21) -> list[dict]:
    """Revenue and total cost at evenly spaced unit counts from 0 to max_units, for the
    chart."""
    out = []
    for i in range(points):
        units = max_units * i / (points - 1)
        out.append({"units": units, "revenue": units * float(price),
                    "cost": float(fixed_costs) + units * float(variable_cost)})
    return out


@dataclass(frozen=True)
class PricingInputs:
    """Assumptions of the skimming-versus-penetration comparison (one per period):
    base_units are sold per period at reference_price; demand follows the price with the
    given elasticity (units = base_units * (reference_price / price) ** elasticity) and grows
    by growth per period; each strategy's price moves in a straight line from its start to its
    end price over the periods."""
    periods: int
    reference_price: float
    base_units: float
    elasticity: float
    growth: float
    unit_cost: float
    skim_start: float
    skim_end: float
    penetration_start: float
    penetration_end: float


def price_path(start: float, end: float, periods: int) -> list[float]:
    """Prices from start to end in equal steps over the periods (one price when periods=1)."""
    if periods <= 1:
        return [float(start)]
    step = (float(end) - float(start)) / (periods - 1)
    return [float(start) + step * i for i in range(periods)]


def pricing_path(inputs: PricingInputs, strategy: str) -> list[dict]:
    """One row per period of a strategy ('skimming' or 'penetration'): price, units, revenue,
    margin (revenue minus unit costs) and the running totals."""
    start, end = ((inputs.skim_start, inputs.skim_end) if strategy == "skimming"
                  else (inputs.penetration_start, inputs.penetration_end))
    out, revenue_sum, margin_sum, units_sum = [], 0.0, 0.0, 0.0
    for i, price in enumerate(price_path(start, end, inputs.periods)):
        if price <= 0:
            units = 0.0
        else:
            units = (inputs.base_units * (1 + inputs.growth) ** i
                     * (inputs.reference_price / price) ** inputs.elasticity)
        revenue = price * units
        gained = (price - inputs.unit_cost) * units
        units_sum, revenue_sum, margin_sum = units_sum + units, revenue_sum + revenue, \
            margin_sum + gained
        out.append({"period": i + 1, "strategy": strategy, "price": price, "units": units,
                    "revenue": revenue, "margin": gained, "units_total": units_sum,
                    "revenue_total": revenue_sum, "margin_total": margin_sum})
    return out


# --- price positioning ----------------------------------------------------------------------

def _price_filters(product_id: int | None, regions_: list[str] | None, since: date | None,
                   products: bool = True) -> tuple[str, dict]:
    """SQL over price records r (and, unless products=False, their live product p, in whose
    currency they were seen) and its parameters."""
    clauses, params = ["r.deleted_at IS NULL"], {}
    if products:
        clauses += ["p.deleted_at IS NULL", "r.currency = p.currency"]
    if product_id:
        clauses.append("r.product_id = $product")
        params["product"] = product_id
    if regions_:
        names = []
        for i, region in enumerate(regions_):
            names.append(f"$region{i}")
            params[f"region{i}"] = region
        clauses.append(f"r.region IN ({', '.join(names)})")
    if since:
        clauses.append("r.observed_on >= $since")
        params["since"] = since
    return " AND ".join(clauses), params


def positioning(db: Database, user: User, product_id: int | None = None,
                regions: list[str] | None = None, since: date | None = None,
                grain: str = "quarter", lang: str | None = None) -> list[dict]:
    """Per product and period: our price (the median of our own observed prices, else the list
    price) and the competitors' lowest, median and highest observed price, in the product's
    currency (prices seen in other currencies are left out)."""
    _reader(user)
    key, join = calendar.period("r.observed_on", grain, lang)
    where, params = _price_filters(product_id, regions, since, products=False)
    # grouped by product id, currency and period alone, the products joined after (the prices
    # in another currency than the product's drop out there): PostgreSQL reads the groups in
    # order off migration 026's index of the live prices by product, currency and Gregorian
    # quarter (its expression is calendar.period's), with no sort of the 200,000 prices
    # (at the large demo 0.5-0.7 s -> 0.2 s); other calendars and grains sort as before
    found = db.query(
        f"SELECT g.product_id, p.name AS product, p.currency, p.unit_price AS list_price,"
        f" g.period, g.low, g.median, g.high, g.observed, g.ours_observed FROM ("
        f"SELECT r.product_id, r.currency, {key} AS period,"
        f" min(r.price) FILTER (WHERE r.competitor_id IS NOT NULL) AS low,"
        f" percentile_cont(0.5) WITHIN GROUP (ORDER BY r.price)"
        f"  FILTER (WHERE r.competitor_id IS NOT NULL) AS median,"
        f" max(r.price) FILTER (WHERE r.competitor_id IS NOT NULL) AS high,"
        f" count(*) FILTER (WHERE r.competitor_id IS NOT NULL) AS observed,"
        f" percentile_cont(0.5) WITHIN GROUP (ORDER BY r.price)"
        f"  FILTER (WHERE r.competitor_id IS NULL) AS ours_observed"
        f" FROM price_records r{join}"
        f" WHERE {where} GROUP BY r.product_id, r.currency, {key}) g"
        f" JOIN products p ON p.id = g.product_id AND p.currency = g.currency"
        f" WHERE p.deleted_at IS NULL ORDER BY p.name, g.product_id, g.period", params)
    for r in found:
        ours = r["ours_observed"] if r["ours_observed"] is not None else r["list_price"]
        r["ours"] = None if ours is None else float(ours)
        for k in ("low", "median", "high"):
            r[k] = None if r[k] is None else float(r[k])
    return found


def current_gaps(rows: list[dict]) -> list[dict]:
    """Per product, from positioning() rows: the latest period with competitor prices, our
    list price there against the competitors' median and lowest price (the gaps as fractions)."""
    latest: dict = {}
    for r in rows:
        if r["observed"]:
            latest[r["product_id"]] = r  # rows come in period order
    out = []
    for r in latest.values():
        ours = float(r["list_price"]) if r["list_price"] is not None else r["ours"]
        out.append({"product_id": r["product_id"], "product": r["product"],
                    "currency": r["currency"], "period": r["period"], "ours": ours,
                    "low": r["low"], "median": r["median"], "high": r["high"],
                    "observed": r["observed"], "gap_median": price_gap(ours, r["median"]),
                    "gap_low": price_gap(ours, r["low"])})
    return out


def prices_by_competitor(db: Database, user: User, product_id: int | None = None,
                         regions: list[str] | None = None, since: date | None = None
                         ) -> list[dict]:
    """Median observed price per product and competitor (ours: competitor None), with how many
    observations, in the product's currency."""
    _reader(user)
    where, params = _price_filters(product_id, regions, since)
    return db.query(
        f"SELECT r.product_id, p.name AS product, p.currency, r.competitor_id,"
        f" coalesce(c.name, '') AS competitor, percentile_cont(0.5) WITHIN GROUP"
        f" (ORDER BY r.price) AS median, count(*) AS observed"
        f" FROM price_records r JOIN products p ON p.id = r.product_id"
        f" LEFT JOIN competitors c ON c.id = r.competitor_id WHERE {where}"
        f" GROUP BY r.product_id, p.name, p.currency, r.competitor_id, c.name"
        f" ORDER BY p.name, competitor", params)


def prices_by_source(db: Database, user: User, product_id: int | None = None,
                     regions: list[str] | None = None, since: date | None = None) -> list[dict]:
    """How many prices were observed from each source and region."""
    _reader(user)
    where, params = _price_filters(product_id, regions, since)
    return db.query(
        f"SELECT r.source, coalesce(r.region, '') AS region, count(*) AS observed"
        f" FROM price_records r JOIN products p ON p.id = r.product_id WHERE {where}"
        f" GROUP BY r.source, r.region ORDER BY r.source, region", params)


# --- market share ---------------------------------------------------------------------------

def market_shares(db: Database, user: User, since: date | None = None, grain: str = "quarter",
                  lang: str | None = None) -> list[dict]:
    """Estimated share (percent) per period and company (ours marked is_us); several estimates
    of one company in a period are averaged."""
    _reader(user)
    key, join = calendar.period("s.period_start", grain, lang)
    params: dict = {}
    since_sql = ""
    if since:
        since_sql = " AND s.period_start >= $since"
        params["since"] = since
    found = db.query(
        f"SELECT {key} AS period, c.id AS competitor_id, c.name, c.is_us,"
        f" avg(s.share) AS share FROM competitor_shares s JOIN competitors c"
        f" ON c.id = s.competitor_id{join} WHERE s.deleted_at IS NULL AND c.deleted_at IS NULL"
        f"{since_sql} GROUP BY {key}, c.id, c.name, c.is_us ORDER BY period, c.is_us DESC,"
        f" share DESC", params)
    for r in found:
        r["share"] = float(r["share"])
    return found


# --- win / loss -----------------------------------------------------------------------------

def win_loss(db: Database, user: User, currency: str, since: date | None = None) -> list[dict]:
    """Per competitor: deals where it was named (as the competition or as the winner) that
    closed, won and lost by us, lost to it, the win rate in those deals, and the amount lost
    to it in the currency. Only deals the user may see; since: closed on or after."""
    _reader(user)
    where, params = _deals_visible(user)
    params["currency"] = currency
    recent, closed = "", ""
    if since:
        recent = ", t.closed_on >= $since AS recent"
        closed = " WHERE s.kind = 'open' OR x.recent"
        params["since"] = since
    # one pass over the deals naming a competitor (PostgreSQL: a partial index of them alone,
    # migration 026), counted and summed per pair of named competitors and stage (a few
    # hundred rows at the large demo), and those rows then counted once for each competitor
    # they name (both columns naming the same one: once). The UNION ALL before read the whole
    # deals table twice (at the large demo, on a loaded machine: 0.43 s -> 0.17 s).
    found = db.query(
        f"WITH g AS (SELECT x.competitor_id, x.lost_to_competitor_id, s.kind, x.n, x.amount"
        f" FROM (SELECT t.competitor_id, t.lost_to_competitor_id, t.stage_id{recent},"
        f" count(*) AS n,"
        f" sum(t.amount) FILTER (WHERE t.currency = $currency) AS amount FROM deals t"
        f" WHERE {where} AND (t.competitor_id IS NOT NULL OR t.lost_to_competitor_id IS NOT NULL)"
        f" GROUP BY 1, 2, 3{', 4' if since else ''}) x JOIN stages s ON s.id = x.stage_id{closed}),"
        f" named AS (SELECT g.competitor_id AS rival, g.* FROM g WHERE g.competitor_id IS NOT NULL"
        f" UNION ALL SELECT g.lost_to_competitor_id AS rival, g.* FROM g"
        f"  WHERE g.lost_to_competitor_id IS NOT NULL"
        f"  AND (g.competitor_id IS NULL OR g.competitor_id <> g.lost_to_competitor_id))"
        f" SELECT c.id AS competitor_id, c.name,"
        f" CAST(coalesce(sum(t.n) FILTER (WHERE t.kind = 'won'), 0) AS BIGINT) AS won,"
        f" CAST(coalesce(sum(t.n) FILTER (WHERE t.kind = 'lost'), 0) AS BIGINT) AS lost,"
        f" CAST(coalesce(sum(t.n) FILTER (WHERE t.kind = 'lost'"
        f"  AND t.lost_to_competitor_id = c.id), 0) AS BIGINT) AS lost_to_them,"
        f" coalesce(sum(t.amount) FILTER (WHERE t.kind = 'lost'"
        f"  AND t.lost_to_competitor_id = c.id), 0) AS amount_lost,"
        f" CAST(coalesce(sum(t.n) FILTER (WHERE t.kind = 'open'), 0) AS BIGINT) AS open"
        f" FROM named t JOIN competitors c ON c.id = t.rival"
        f" WHERE c.deleted_at IS NULL AND NOT c.is_us"
        f" GROUP BY c.id, c.name ORDER BY lost_to_them DESC, c.name", params)
    for r in found:
        r["win_rate"] = win_rate(r["won"], r["lost"])
        r["amount_lost"] = float(r["amount_lost"])
    return found


def deal_currencies(db: Database, user: User) -> list[str]:
    """Currencies of the deals the user may see, most deals first."""
    _reader(user)
    where, params = _deals_visible(user)
    return [r["currency"] for r in db.query(
        f"SELECT t.currency, count(*) AS n FROM deals t WHERE {where} GROUP BY t.currency"
        f" ORDER BY n DESC, t.currency", params)]


# --- margins --------------------------------------------------------------------------------

def margins(db: Database, user: User, product_id: int | None = None, since: date | None = None,
            lang: str | None = None) -> list[dict]:
    """Per product and quarter with a cost price: the list price, the cost, the margin per unit
    and as a fraction of the price (costs in another currency than the price are left out)."""
    _reader(user)
    key, join = calendar.period("k.period_start", "quarter", lang)
    clauses, params = ["k.deleted_at IS NULL", "p.deleted_at IS NULL",
                       "k.currency = p.currency"], {}
    if product_id:
        clauses.append("k.product_id = $product")
        params["product"] = product_id
    if since:
        clauses.append("k.period_start >= $since")
        params["since"] = since
    found = db.query(
        f"SELECT k.product_id, p.name AS product, p.currency, {key} AS period,"
        f" p.unit_price AS price, avg(k.unit_cost) AS cost FROM product_costs k"
        f" JOIN products p ON p.id = k.product_id{join} WHERE {' AND '.join(clauses)}"
        f" GROUP BY k.product_id, p.name, p.currency, p.unit_price, {key}"
        f" ORDER BY p.name, k.product_id, period", params)
    for r in found:
        r["price"] = None if r["price"] is None else float(r["price"])
        r["cost"] = float(r["cost"])
        r["margin"], r["margin_share"] = margin(r["price"], r["cost"])
    return found


def complaints_and_margins(db: Database, user: User, since: date | None = None,
                           product_id: int | None = None) -> list[dict]:
    """Per live product with complaints (opened since `since`, those the user may see) or a
    cost price: its complaints, how many are still open, and its margin at the latest quarter's
    cost price against today's list price (a cost in another currency is left out)."""
    _reader(user)
    from crm.service import COMPLAINTS

    where, params = records.visible(COMPLAINTS, user)
    clauses = [where, "t.product_id IS NOT NULL"]
    if since:
        clauses.append("t.opened_on >= $since")
        params["since"] = since
    wanted = ""
    if product_id:
        wanted = " AND p.id = $product"
        params["product"] = product_id
    found = db.query(
        "WITH c AS (SELECT t.product_id, count(*) AS complaints, count(*) FILTER (WHERE"
        " t.status IN ('open', 'in_progress')) AS still_open FROM complaints t"
        f" WHERE {' AND '.join(clauses)} GROUP BY t.product_id),"
        " k AS (SELECT k.product_id, k.unit_cost, row_number() OVER (PARTITION BY k.product_id"
        " ORDER BY k.period_start DESC, k.id DESC) AS n FROM product_costs k"
        " JOIN products p ON p.id = k.product_id WHERE k.deleted_at IS NULL"
        " AND k.currency = p.currency)"
        " SELECT p.id AS product_id, p.name AS product, p.currency, p.unit_price AS price,"
        " coalesce(c.complaints, 0) AS complaints, coalesce(c.still_open, 0) AS still_open,"
        " k.unit_cost AS cost FROM products p LEFT JOIN c ON c.product_id = p.id"
        " LEFT JOIN k ON k.product_id = p.id AND k.n = 1"
        f" WHERE p.deleted_at IS NULL{wanted} AND (c.complaints IS NOT NULL"
        " OR k.unit_cost IS NOT NULL) ORDER BY complaints DESC, p.name, p.id", params)
    for r in found:
        r["price"] = None if r["price"] is None else float(r["price"])
        r["cost"] = None if r["cost"] is None else float(r["cost"])
        r["margin"], r["margin_share"] = margin(r["price"], r["cost"])
    return found


# --- competitors side by side ---------------------------------------------------------------

def profiles(db: Database, user: User) -> list[dict]:
    """Every live competitor (ours first) with its threat level, strengths and weaknesses
    (one a line), key people, and its latest market share."""
    _reader(user)
    found = db.query(
        "SELECT c.id, c.name, c.is_us, c.threat_level, c.strengths, c.weaknesses, c.strategy,"
        " c.key_people, (SELECT s.share FROM competitor_shares s WHERE s.competitor_id = c.id"
        " AND s.deleted_at IS NULL ORDER BY s.period_start DESC, s.id DESC LIMIT 1) AS share"
        " FROM competitors c WHERE c.deleted_at IS NULL ORDER BY c.is_us DESC, lower(c.name)")
    for r in found:
        r["strength_list"] = lines(r["strengths"])
        r["weakness_list"] = lines(r["weaknesses"])
        r["share"] = None if r["share"] is None else float(r["share"])
    return found


def lines(text: str | None) -> list[str]:
    """The non-empty lines of a text, trimmed, without list bullets."""
    return [ln.strip().lstrip("-•*").strip() for ln in (text or "").splitlines()
            if ln.strip().lstrip("-•*").strip()]


# --- customer audit -------------------------------------------------------------------------

def _won_revenue(where: str, since: date | None, params: dict) -> str:
    """SQL: won revenue per customer in $currency, of the deals the user may see."""
    closed = ""
    if since:
        closed = " AND t.closed_on >= $since"
        params["since"] = since
    return (f"SELECT t.customer_id AS id, sum(t.amount) AS revenue FROM deals t"
            f" JOIN stages s ON s.id = t.stage_id WHERE {where} AND s.kind = 'won'"
            f" AND t.currency = $currency AND t.customer_id IS NOT NULL{closed}"
            f" GROUP BY t.customer_id HAVING sum(t.amount) > 0")


def abc_classes(db: Database, user: User, currency: str, a: float = 0.80, b: float = 0.95,
                since: date | None = None, top: int = 50) -> dict:
    """The ABC classification by won revenue in the currency (see abc_split, which it matches):
    {"classes": [{class, customers, revenue, share, credit_limit, ...}], "top": the top
    customers with their class, "total": revenue}. In SQL with window sums, the classes and
    the top customers from one statement (one pass over the won deals, not two)."""
    _reader(user)
    if not 0 < a < b <= 1:
        raise ValueError(_("The A share must be below the B share, both between 0 and 100 %"))
    where, params = _deals_visible(user)
    params.update(currency=currency, a=a, b=b, top=top)
    found = db.query(f"WITH rev AS ({_won_revenue(where, since, params)}), {_ABC_CTES}"
                     f" {_ABC_PARTS}", params)
    return _abc_result(found)


# the ABC classes of rev (id, revenue): ranked with window sums, classed, joined to the
# customers (joined); the classes (part 1) and the top customers (part 2) from joined
_ABC_CTES = (
    "ranked AS (SELECT id, revenue, coalesce(sum(revenue) OVER (ORDER BY revenue"
    " DESC, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before,"
    " sum(revenue) OVER () AS total FROM rev),"
    " classed AS (SELECT id, revenue, total, CASE WHEN before < $a * total THEN 'A'"
    " WHEN before < $b * total THEN 'B' ELSE 'C' END AS class FROM ranked),"
    " joined AS (SELECT k.*, c.name, c.country, c.city, c.purchasing_power,"
    " c.credit_limit, row_number() OVER (ORDER BY k.revenue DESC, k.id) AS place"
    " FROM classed k JOIN customers c ON c.id = k.id)")
_ABC_PARTS = (
    "SELECT 1 AS part, j.class, count(*) AS customers, sum(j.revenue) AS revenue,"
    " max(j.total) AS total, sum(j.credit_limit) AS credit_limit,"
    " count(*) FILTER (WHERE j.purchasing_power IN ('high', 'very_high')) AS strong_buyers,"
    " NULL AS id, NULL AS name, NULL AS country, NULL AS city, NULL AS purchasing_power,"
    " NULL AS place FROM joined j GROUP BY j.class"
    " UNION ALL SELECT 2, j.class, NULL, j.revenue, NULL, j.credit_limit, NULL, j.id,"
    " j.name, j.country, j.city, j.purchasing_power, j.place FROM joined j"
    " WHERE j.place <= $top")


def _abc_result(found: list[dict]) -> dict:
    """abc_classes()'s answer from the rows of _ABC_PARTS (others are left alone)."""
    classes = sorted(({k: r[k] for k in ("class", "customers", "revenue", "total",
                                         "credit_limit", "strong_buyers")}
                      for r in found if r["part"] == 1), key=lambda r: r["class"])
    total = float(classes[0]["total"]) if classes else 0.0
    for r in classes:
        r["revenue"] = float(r["revenue"])
        r["share"] = r["revenue"] / total if total else None
        r["credit_limit"] = None if r["credit_limit"] is None else float(r["credit_limit"])
    top_rows = [{k: r[k] for k in ("id", "name", "country", "city", "purchasing_power",
                                   "credit_limit", "revenue", "class")}
                for r in sorted((r for r in found if r["part"] == 2), key=lambda r: r["place"])]
    return {"classes": classes, "top": top_rows, "total": total}


def purchasing_power(db: Database, user: User, currency: str) -> list[dict]:
    """Customers the user may see by purchasing power: how many, their credit limits (sum) and
    won revenue in the currency."""
    _reader(user)
    where, params = _customers_visible(user)
    dwhere, dparams = _deals_visible(user)
    params.update({f"d_{k}": v for k, v in dparams.items()}, currency=currency)
    for k in dparams:
        dwhere = dwhere.replace(f"${k}", f"$d_{k}")
    won = _won_revenue(dwhere, None, params)
    return db.query(
        f"SELECT coalesce(t.purchasing_power, '') AS purchasing_power, count(*) AS customers,"
        f" coalesce(sum(t.credit_limit), 0) AS credit_limit,"
        f" coalesce(sum(w.revenue), 0) AS revenue FROM customers t"
        f" LEFT JOIN ({won}) w ON w.id = t.id WHERE {where}"
        f" GROUP BY t.purchasing_power ORDER BY purchasing_power", params)


def geography(db: Database, user: User, currency: str, limit: int = 300) -> list[dict]:
    """Customers the user may see and their won revenue in the currency, by country and city
    (the largest places, at most limit rows)."""
    _reader(user)
    where, params = _customers_visible(user)
    dwhere, dparams = _deals_visible(user)
    for k in dparams:
        dwhere = dwhere.replace(f"${k}", f"$d_{k}")
    params.update({f"d_{k}": v for k, v in dparams.items()}, currency=currency, n=limit)
    won = _won_revenue(dwhere, None, params)
    return db.query(
        f"SELECT coalesce(nullif(trim(t.country), ''), '?') AS country,"
        f" coalesce(nullif(trim(t.city), ''), '?') AS city, count(*) AS customers,"
        f" coalesce(sum(w.revenue), 0) AS revenue FROM customers t"
        f" LEFT JOIN ({won}) w ON w.id = t.id WHERE {where} GROUP BY 1, 2"
        f" ORDER BY customers DESC, revenue DESC, country, city LIMIT $n", params)


def customer_audit(db: Database, user: User, currency: str, a: float = 0.80, b: float = 0.95,
                   since: date | None = None, top: int = 50, limit: int = 300
                   ) -> tuple[dict, list[dict], list[dict]]:
    """(abc_classes(), purchasing_power(), geography()) of the customer audit tab from one
    statement: the won revenue per customer is summed once, all time and since `since` side by
    side, and both the ABC classes (since) and the purchasing power and places (all time) read
    it (at the large demo each sum read the 218,000 won deals: 120-200 ms apiece on
    PostgreSQL)."""
    _reader(user)
    if not 0 < a < b <= 1:
        raise ValueError(_("The A share must be below the B share, both between 0 and 100 %"))
    where, params = _customers_visible(user)
    dwhere, dparams = _deals_visible(user)
    for k in dparams:
        dwhere = dwhere.replace(f"${k}", f"$d_{k}")
    params.update({f"d_{k}": v for k, v in dparams.items()}, currency=currency, a=a, b=b,
                  top=top, n=limit)
    recent = "sum(t.amount)"
    if since:
        recent = "sum(t.amount) FILTER (WHERE t.closed_on >= $since)"
        params["since"] = since
    found = db.query(
        f"WITH won AS MATERIALIZED (SELECT t.customer_id AS id, sum(t.amount) AS revenue,"
        f" {recent} AS recent FROM deals t JOIN stages s ON s.id = t.stage_id"
        f" WHERE {dwhere} AND s.kind = 'won' AND t.currency = $currency"
        f" AND t.customer_id IS NOT NULL GROUP BY t.customer_id),"
        f" rev AS (SELECT id, recent AS revenue FROM won WHERE recent > 0), {_ABC_CTES},"
        # the purchasing power and places: customers with their won revenue of all time
        # (where above 0), one pass grouped both ways (GROUPING SETS)
        f" cust AS (SELECT t.purchasing_power, coalesce(nullif(trim(t.country), ''), '?')"
        f" AS country, coalesce(nullif(trim(t.city), ''), '?') AS city, t.credit_limit,"
        f" w.revenue FROM customers t LEFT JOIN won w ON w.id = t.id AND w.revenue > 0"
        f" WHERE {where}),"
        f" g AS (SELECT GROUPING(u.purchasing_power) AS g_power,"
        f" coalesce(u.purchasing_power, '') AS purchasing_power, u.country, u.city,"
        f" count(*) AS customers, coalesce(sum(u.credit_limit), 0) AS credit_limit,"
        f" coalesce(sum(u.revenue), 0) AS revenue FROM cust u"
        f" GROUP BY GROUPING SETS ((u.purchasing_power), (u.country, u.city))),"
        f" r AS (SELECT g.*, row_number() OVER (PARTITION BY g.g_power"
        f" ORDER BY g.purchasing_power) AS power_place, row_number() OVER (PARTITION BY"
        f" g.g_power ORDER BY g.customers DESC, g.revenue DESC, g.country, g.city) AS place"
        f" FROM g)"
        f" {_ABC_PARTS}"
        f" UNION ALL SELECT 3 + r.g_power, NULL, r.customers, r.revenue, NULL, r.credit_limit,"
        f" NULL, NULL, NULL, r.country, r.city, r.purchasing_power,"
        f" CASE WHEN r.g_power = 0 THEN r.power_place ELSE r.place END FROM r"
        f" WHERE r.g_power = 0 OR r.place <= $n", params)
    power = [{k: r[k] for k in ("purchasing_power", "customers", "credit_limit", "revenue")}
             for r in sorted((r for r in found if r["part"] == 3), key=lambda r: r["place"])]
    places = [{k: r[k] for k in ("country", "city", "customers", "revenue")}
              for r in sorted((r for r in found if r["part"] == 4), key=lambda r: r["place"])]
    return _abc_result(found), power, places


def returns_summary(db: Database, user: User, currency: str, since: date | None = None,
                    lang: str | None = None) -> list[dict]:
    """Returns and contract cancellations per quarter, kind and reason: how many, and their
    amount in the currency. Only those of customers the user may see."""
    from crm.market import RETURNS

    _reader(user)
    where, params = records.visible(RETURNS, user)
    key, join = calendar.period("t.occurred_on", "quarter", lang)
    params["currency"] = currency
    if since:
        where += " AND t.occurred_on >= $since"
        params["since"] = since
    return db.query(
        f"SELECT {key} AS period, t.kind, coalesce(t.reason, '') AS reason, count(*) AS n,"
        f" coalesce(sum(t.amount) FILTER (WHERE t.currency = $currency), 0) AS amount"
        f" FROM customer_returns t{join} WHERE {where} GROUP BY {key}, t.kind, t.reason"
        f" ORDER BY period, t.kind, reason", params)
