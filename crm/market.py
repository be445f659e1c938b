"""Market audit records: competitors (and our own company's profile), their market shares per
period, observed prices, our products' cost per quarter, the feature comparison, returns and
contract cancellations, and saved pricing scenarios.

Competitors and price records are team knowledge: everyone who reads records reads all of them
(shared). Reps add what they learn (a new rival, a price seen at a customer) and change what
they added; managers and admins change everything (write_role "rep" with an owner). Market
shares, cost prices and the feature comparison are the company's official figures, kept by
managers and admins (write_role "manager"). Returns and cancellations belong to a customer and
follow its owner, like contacts. The computations over these records live in
crm/analytics/market.py."""
from __future__ import annotations

import json
from datetime import date, datetime

from crm import audit, i18n, records
from crm.auth import PermissionDenied, User, require
from crm.db import Database, rows
from crm.deals import CURRENCIES
from crm.fields import Field, ValidationError, check_dates_not_future, validate
from crm.i18n import N_, gettext as _

THREAT_LEVELS = ("low", "medium", "high")
PRICE_SOURCES = ("price_list", "inquiry", "website", "customer_report", "other")
RETURN_KINDS = ("return", "cancellation")
RETURN_REASONS = ("defective", "wrong_item", "not_needed", "price", "service", "competitor",
                  "contract_ended", "other")
SCENARIO_KINDS = ("break_even", "pricing_path")

def _reader(user: User | None) -> None:
    """Team knowledge and dashboards: everyone signed in reads them, viewers included."""
    if user is None:
        raise PermissionDenied(_("Sign in first"))


# --- competitors ----------------------------------------------------------------------------

COMPETITOR_FIELDS = [
    Field("name", "Name", required=True, searchable=True, in_list=True, section="Profile"),
    Field("is_us", "This is our company", "bool", default=False, filter=True, in_list=True,
          section="Profile",
          help="One record describes us: our strengths, weaknesses and market share, shown "
               "beside the competitors'"),
    Field("website", "Website", max_length=300, in_list=True, section="Profile"),
    Field("country", "Country", searchable=True, in_list=True, section="Profile"),
    Field("threat_level", "Threat level", "choice", choices=THREAT_LEVELS, filter=True,
          in_list=True, section="Profile"),
    Field("owner_id", "Owner", "user", filter=True, section="Profile",
          help="Who keeps this profile up to date"),
    Field("key_people", "Key people", "longtext", section="People and strategy",
          help="Their managers: one person a line, name and role"),
    Field("strategy", "Strategy", "longtext", section="People and strategy"),
    Field("strengths", "Strengths", "longtext", section="Strengths and weaknesses",
          help="One a line"),
    Field("weaknesses", "Weaknesses", "longtext", section="Strengths and weaknesses",
          help="One a line"),
    Field("notes", "Notes", "longtext", section="Strengths and weaknesses"),
]


def _us_taken(cur, values: dict, record_id: int | None = None) -> None:
    if not values.get("is_us"):
        return
    found = cur.execute("SELECT id FROM competitors WHERE is_us AND deleted_at IS NULL"
                        " AND id <> $id LIMIT 1", {"id": record_id or 0}).fetchone()
    if found:
        raise ValidationError({"is_us": _("Competitor #{id} already describes our company")
                              .format(id=found[0])})


def create_competitor(db: Database, user: User, values: dict) -> int:
    with db.transaction() as cur:
        return insert_competitor(cur, user, values)


def insert_competitor(cur, user: User, values: dict) -> int:
    """create_competitor inside a caller's transaction (the importer's)."""
    _us_taken(cur, values)
    return records.insert(cur, user, COMPETITORS, values)


def update_competitor(db: Database, user: User, record_id: int, values: dict,
                      expected_version: int, base: dict | None = None) -> dict:
    with db.transaction() as cur:
        return update_competitor_in(cur, user, record_id, values, expected_version, base)


def update_competitor_in(cur, user: User, record_id: int, values: dict,
                         expected_version: int | None, base: dict | None = None) -> dict:
    _us_taken(cur, values, record_id)
    return records.update_in(cur, user, COMPETITORS, record_id, values, expected_version, base)


COMPETITORS = records.Entity(
    table="competitors", label="Competitor", plural="Competitors", code_fields=COMPETITOR_FIELDS,
    title_sql="t.name", default_sort=("name", "asc"), shared=True, write_role="rep",
    unique=("name",), creator=create_competitor, updater=update_competitor,
    insert_in=insert_competitor, update_in=update_competitor_in,
)


def competitor_choices(db: Database, user: User, include_us: bool = False) -> dict[int, str]:
    """{id: name} of the live competitors (our own record first when asked for), for pickers."""
    _reader(user)
    found = db.query("SELECT id, name, is_us FROM competitors WHERE deleted_at IS NULL"
                     " AND ($us OR NOT is_us) ORDER BY is_us DESC, lower(name), id",
                     {"us": include_us})
    return {r["id"]: r["name"] for r in found}


def us(db: Database) -> dict | None:
    """Our own company's record (is_us), if someone made one."""
    return db.one("SELECT * FROM competitors WHERE is_us AND deleted_at IS NULL"
                  " ORDER BY id LIMIT 1")


def competitor_for_name(cur, user: User, name: str | None) -> int | None:
    """The live competitor called name (trimmed, any case); a new one owned by the user when
    none is. None for an empty name. Runs inside the caller's transaction."""
    text = (name or "").strip()
    if not text:
        return None
    found = cur.execute("SELECT id FROM competitors WHERE deleted_at IS NULL AND NOT is_us"
                        " AND lower(trim(name)) = lower($n) ORDER BY id LIMIT 1",
                        {"n": text}).fetchone()
    if found:
        return found[0]
    return records.insert(cur, user, COMPETITORS, {"name": text})


def link_lost_competitors(cur, user: User | None = None, audit_each: bool = True) -> int:
    """Set-based: every deal whose lost_to_competitor text has no link yet gets linked to the
    live competitor of that name (trimmed, any case); names no competitor has become new
    competitors first (spelled as most deals spell them). Returns how many were created. The
    migration that introduced the link and the demo load use it."""
    from crm.auth import SYSTEM

    user = user or SYSTEM
    now = datetime.now()
    # names in deals without a competitor of that name yet, spelled as most deals spell them
    missing = ("SELECT (array_agg(n.name ORDER BY n.seen DESC, n.name))[1] AS name"
               " FROM (SELECT trim(lost_to_competitor)"
               " AS name, lower(trim(lost_to_competitor)) AS k, count(*) AS seen FROM deals"
               " WHERE lost_to_competitor_id IS NULL AND trim(lost_to_competitor) <> ''"
               " GROUP BY 1, 2) n WHERE NOT EXISTS (SELECT 1 FROM competitors c"
               " WHERE c.deleted_at IS NULL AND lower(trim(c.name)) = n.k) GROUP BY n.k")
    before = cur.execute("SELECT coalesce(max(id), 0) FROM competitors").fetchone()[0]
    cur.execute(f"INSERT INTO competitors (name, created_at, updated_at, created_by,"
                f" updated_by) SELECT m.name, $now, $now, $by, $by FROM ({missing}) m"
                f" ORDER BY lower(m.name)", {"now": now, "by": user.id or None})
    created = cur.execute("SELECT count(*) FROM competitors WHERE id > $b",
                          {"b": before}).fetchone()[0]
    if created and audit_each:  # the demo load records one entry for all instead
        audit.record_many(cur, user, "competitors", "SELECT id FROM competitors WHERE id > $b",
                          {"b": before}, "create", {"source": (None, "deals.lost_to_competitor")})
    cur.execute("UPDATE deals SET lost_to_competitor_id = m.id FROM (SELECT lower(trim(name))"
                " AS k, min(id) AS id FROM competitors WHERE deleted_at IS NULL AND NOT is_us"
                " GROUP BY 1) m WHERE deals.lost_to_competitor_id IS NULL"
                " AND lower(trim(deals.lost_to_competitor)) = m.k")
    return created


def lost_deals(db: Database, user: User, competitor_id: int, limit: int = 100) -> list[dict]:
    """Deals (that the user may see) lost to, or competing against, the competitor."""
    from crm.deals import DEALS

    where, params = records.visible(DEALS, user)
    return db.query(
        f"SELECT t.id, t.title, t.amount, t.currency, t.closed_on, s.kind, s.name AS stage"
        f" FROM deals t JOIN stages s ON s.id = t.stage_id WHERE {where}"
        f" AND (t.lost_to_competitor_id = $c OR t.competitor_id = $c)"
        f" ORDER BY t.closed_on DESC NULLS LAST, t.id DESC LIMIT $n",
        {**params, "c": competitor_id, "n": limit})


# --- periods --------------------------------------------------------------------------------

def quarter_start(day: date, lang: str | None = None) -> date:
    """The first day of the quarter holding day, in the user's calendar (Jalali for Persian:
    quarters begin on 1 Farvardin, Tir, Mehr and Dey)."""
    from crm import calendar

    if calendar.uses_jalali(lang):
        year, month, _day = i18n.to_jalali(day)
        return i18n.from_jalali(year, (month - 1) // 3 * 3 + 1, 1)
    return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)


def _official(user: User, what: str) -> None:
    """Shares, costs and the comparison are kept by managers and admins."""
    require(user, "edit")
    if not user.sees_all:
        raise PermissionDenied(_("Only managers and admins can change {what}").format(what=what))


# --- market shares --------------------------------------------------------------------------

SHARE_FIELDS = [
    Field("competitor_id", "Competitor", "ref", ref="competitors", required=True,
          in_list=True, filter=True, help="Our own company's record for our share"),
    Field("period_start", "Period", "date", required=True, in_list=True,
          help="Any day of the quarter; it is kept as the quarter's first day"),
    Field("share", "Market share %", "number", required=True, min_value=0, max_value=100,
          in_list=True),
    Field("source", "Source", max_length=200, help="Where the estimate comes from"),
    Field("notes", "Notes", "longtext"),
]
COMPETITOR_SHARES = records.Entity(
    table="competitor_shares", label="Market share", plural="Market shares",
    code_fields=SHARE_FIELDS, title_sql="CAST(t.period_start AS VARCHAR)",
    default_sort=("period_start", "desc"), shared=True, write_role="manager",
)


def set_share(db: Database, user: User, values: dict) -> int:
    """Records a competitor's (or our) estimated market share for the quarter: replaces the
    estimate of that competitor and quarter when there is one. Returns the row's id."""
    return _set_per_quarter(db, user, COMPETITOR_SHARES, "competitor_id", values,
                            _("market shares"))


def shares_of(db: Database, user: User, competitor_id: int) -> list[dict]:
    """The competitor's shares, newest first, with the period's key in the user's calendar."""
    from crm import calendar

    _reader(user)
    key, join = calendar.period("s.period_start", "quarter")
    return db.query(f"SELECT s.id, s.period_start, {key} AS period, s.share, s.source,"
                    f" s.notes, s.version FROM competitor_shares s{join}"
                    f" WHERE s.competitor_id = $c AND s.deleted_at IS NULL"
                    f" ORDER BY s.period_start DESC", {"c": competitor_id})


def _set_per_quarter(db: Database, user: User, entity: records.Entity, key: str, values: dict,
                     what: str) -> int:
    _official(user, what)
    clean = validate(entity.fields, values)
    clean["period_start"] = quarter_start(clean["period_start"])
    with db.transaction() as cur:
        table = {"competitor_id": "competitors", "product_id": "products"}[key]
        alive = cur.execute(f"SELECT 1 FROM {table} WHERE id = $id AND deleted_at IS NULL",
                            {"id": clean[key]}).fetchone()
        if not alive:
            raise ValidationError({key: _("That record does not exist")})
        found = cur.execute(f"SELECT id FROM {entity.table} WHERE {key} = $k AND period_start"
                            f" = $p AND deleted_at IS NULL ORDER BY id LIMIT 1",
                            {"k": clean[key], "p": clean["period_start"]}).fetchone()
        if found:
            records.update_in(cur, user, entity, found[0], clean, None)
            return found[0]
        return records.insert(cur, user, entity, clean)


def remove_per_quarter(db: Database, user: User, entity: records.Entity, record_id: int) -> None:
    """Moves a share or cost row to the trash."""
    _official(user, _(entity.plural).lower())
    records.delete(db, user, entity, record_id)


# --- observed prices ------------------------------------------------------------------------

PRICE_FIELDS = [
    Field("product_id", "Our product", "ref", ref="products", in_list=True, filter=True,
          help="Ours, or the one of ours the competitor's product competes with"),
    Field("competitor_id", "Competitor", "ref", ref="competitors", in_list=True, filter=True,
          help="Empty: the price is ours (e.g. seen at a reseller)"),
    Field("competitor_product", "Competitor's product", max_length=200, searchable=True,
          in_list=True),
    Field("price", "Price", "money", required=True, min_value=0, max_value=1e13, in_list=True),
    Field("currency", "Currency", "choice", required=True, choices=CURRENCIES, default="USD",
          filter=True, in_list=True),
    Field("observed_on", "Observed on", "date", required=True, in_list=True, filter=True),
    Field("source", "Source", "choice", required=True, choices=PRICE_SOURCES,
          default="price_list", filter=True, in_list=True),
    Field("region", "Region", max_length=100, searchable=True, in_list=True),
    Field("owner_id", "Recorded by", "user", filter=True),
    Field("notes", "Notes", "longtext"),
]


def _check_price(values: dict) -> dict[str, str]:
    errors = check_dates_not_future(values, ["observed_on"], PRICE_FIELDS)
    if not values.get("product_id") and not values.get("competitor_product"):
        errors["product_id"] = _("Name our product or the competitor's product")
    if values.get("competitor_product") and not values.get("competitor_id"):
        errors["competitor_id"] = _("Whose product is it? Choose the competitor")
    return errors


PRICE_RECORDS = records.Entity(
    table="price_records", label="Price record", plural="Price records", code_fields=PRICE_FIELDS,
    title_sql="coalesce(t.competitor_product, CAST(t.price AS VARCHAR))",
    default_sort=("observed_on", "desc"), check=_check_price, shared=True, write_role="rep",
)


def regions(db: Database, user: User) -> list[str]:
    _reader(user)
    return [r["region"] for r in db.query(
        "SELECT DISTINCT region FROM price_records WHERE deleted_at IS NULL AND region IS NOT"
        " NULL ORDER BY region")]


# --- cost prices per quarter ----------------------------------------------------------------

COST_FIELDS = [
    Field("product_id", "Product", "ref", ref="products", required=True, in_list=True,
          filter=True),
    Field("period_start", "Quarter", "date", required=True, in_list=True,
          help="Any day of the quarter; it is kept as the quarter's first day"),
    Field("unit_cost", "Cost price per unit", "money", required=True, min_value=0,
          max_value=1e13, in_list=True),
    Field("currency", "Currency", "choice", required=True, choices=CURRENCIES, default="USD",
          in_list=True),
    Field("notes", "Notes", "longtext", help="What the cost is made of"),
]
PRODUCT_COSTS = records.Entity(
    table="product_costs", label="Cost price", plural="Cost prices", code_fields=COST_FIELDS,
    title_sql="CAST(t.period_start AS VARCHAR)", default_sort=("period_start", "desc"),
    shared=True, write_role="manager",
)


def set_cost(db: Database, user: User, values: dict) -> int:
    """Records a product's unit cost for the quarter (replacing that quarter's figure; the
    timeline keeps the old one)."""
    return _set_per_quarter(db, user, PRODUCT_COSTS, "product_id", values, _("cost prices"))


# --- returns and contract cancellations -----------------------------------------------------

RETURN_FIELDS = [
    Field("customer_id", "Customer", "ref", ref="customers", required=True, in_list=True,
          create_only=True),
    Field("kind", "Kind", "choice", required=True, choices=RETURN_KINDS, default="return",
          filter=True, in_list=True),
    Field("occurred_on", "Date", "date", required=True, filter=True, in_list=True),
    Field("amount", "Amount", "money", min_value=0, max_value=1e13, in_list=True),
    Field("currency", "Currency", "choice", required=True, choices=CURRENCIES, default="USD",
          in_list=True),
    Field("reason", "Reason", "choice", choices=RETURN_REASONS, filter=True, in_list=True),
    Field("owner_id", "Owner", "user", filter=True),
    Field("notes", "Notes", "longtext"),
]


def _check_return(values: dict) -> dict[str, str]:
    return check_dates_not_future(values, ["occurred_on"], RETURN_FIELDS)


RETURNS = records.Entity(
    table="customer_returns", label="Return or cancellation", plural="Returns and cancellations",
    code_fields=RETURN_FIELDS,
    title_sql="(SELECT c.name FROM customers c WHERE c.id = t.customer_id) || ' · '"
              " || CAST(t.occurred_on AS VARCHAR)",
    default_sort=("occurred_on", "desc"), check=_check_return, parent="customer_id",
)


# --- feature comparison ---------------------------------------------------------------------

FEATURE_ANSWERS = ("yes", "no", "partial")


def feature_columns(db: Database, user: User, product_id: int | None = None) -> list[dict]:
    """The comparison's columns: our active products, then the competitors' products named in
    price records or in the comparison; for one product, that product and the competitors'
    products its price records compare it with. Each {key, label, product_id, competitor_id,
    competitor_product}; key is "p<id>" for ours and "c<id>:<name>" for theirs."""
    _reader(user)
    ours = db.query("SELECT id, name FROM products WHERE deleted_at IS NULL"
                    " AND (active OR id = $p) AND ($p IS NULL OR id = $p)"
                    " ORDER BY lower(name), id", {"p": product_id})
    compared = ("" if product_id is None else
                " AND product_id = $p")
    named = ("" if product_id is not None else
             " UNION SELECT competitor_id, trim(competitor_product) FROM feature_values WHERE"
             " deleted_at IS NULL AND competitor_id IS NOT NULL"
             " AND trim(competitor_product) <> ''")
    theirs = db.query(
        "SELECT c.id, c.name AS competitor, x.product FROM (SELECT DISTINCT competitor_id,"
        " trim(competitor_product) AS product FROM price_records WHERE deleted_at IS NULL"
        f" AND competitor_id IS NOT NULL AND trim(competitor_product) <> ''{compared}{named})"
        " x JOIN competitors c ON c.id = x.competitor_id WHERE c.deleted_at IS NULL"
        " ORDER BY lower(c.name), lower(x.product)",
        {"p": product_id} if product_id is not None else {})
    cols = [{"key": f"p{r['id']}", "label": r["name"], "product_id": r["id"],
             "competitor_id": None, "competitor_product": None} for r in ours]
    cols += [{"key": f"c{r['id']}:{r['product']}", "label": f"{r['product']} ({r['competitor']})",
              "product_id": None, "competitor_id": r["id"], "competitor_product": r["product"]}
             for r in theirs]
    return cols


def compared_products(db: Database, user: User) -> dict[int, int]:
    """{product id: how many competitors' products its price records compare it with}."""
    _reader(user)
    # the distinct pairs first, then counted: PostgreSQL sorted the 200,000 records for a
    # count(DISTINCT (pair)) per product (0.6 s at the large demo; this way 0.16 s)
    return {r["product_id"]: r["n"] for r in db.query(
        "SELECT product_id, count(*) AS n FROM (SELECT DISTINCT product_id, competitor_id,"
        " trim(competitor_product) AS competitor_product FROM price_records"
        " WHERE deleted_at IS NULL AND competitor_id IS NOT NULL AND product_id IS NOT NULL"
        " AND trim(competitor_product) <> '') x GROUP BY product_id")}


def feature_matrix(db: Database, user: User, product_id: int | None = None
                   ) -> tuple[list[str], list[dict], dict]:
    """(features in the order they were added, columns (see feature_columns),
    {(feature, column key): value})."""
    cols = feature_columns(db, user, product_id)
    found = db.query("SELECT feature, product_id, competitor_id, trim(competitor_product) AS"
                     " product, value, id FROM feature_values WHERE deleted_at IS NULL"
                     " ORDER BY id")
    features: list[str] = []
    cells = {}
    for r in found:
        if r["feature"] not in features:
            features.append(r["feature"])
        key = f"p{r['product_id']}" if r["product_id"] else f"c{r['competitor_id']}:{r['product']}"
        if r["value"] not in (None, ""):
            cells[(r["feature"], key)] = r["value"]
    return features, cols, cells


def save_feature_matrix(db: Database, user: User, features: list[str], cells: dict) -> int:
    """Writes the edited comparison in one transaction: features are the rows in order (a
    feature no longer among them is removed), cells {(feature, column key): value or None}.
    One audit entry per changed cell. Returns the number of changes."""
    _official(user, _("the feature comparison"))
    cols = {c["key"]: c for c in feature_columns(db, user)}
    names = list(dict.fromkeys(f.strip() for f in features if f and f.strip()))
    if any(len(f) > 200 for f in names):
        raise ValidationError({"feature": _("A feature name has at most 200 characters")})
    wanted = {}
    for (feature, key), value in cells.items():
        if key not in cols:
            raise ValidationError({"feature": _("Unknown column {key}").format(key=key)})
        text = None if value is None or str(value).strip() == "" else str(value).strip()
        if text is not None and len(text) > 200:
            raise ValidationError({"value": _("A cell holds at most 200 characters")})
        if feature and feature.strip() in names:
            wanted[(feature.strip(), key)] = text
    now, by, changed = datetime.now(), user.id or None, 0
    with db.transaction() as cur:
        current = {}
        for r in rows(cur, "SELECT id, feature, product_id, competitor_id, trim(competitor_product)"
                           " AS product, value FROM feature_values WHERE deleted_at IS NULL"
                           " ORDER BY id"):
            key = f"p{r['product_id']}" if r["product_id"] else \
                f"c{r['competitor_id']}:{r['product']}"
            current.setdefault((r["feature"], key), r)

        def insert(feature: str, key: str, value) -> None:
            col = cols[key]
            new_id = cur.execute(
                "INSERT INTO feature_values (feature, product_id, competitor_id,"
                " competitor_product, value, created_at, updated_at, created_by, updated_by)"
                " VALUES ($f, $p, $c, $cp, $v, $t, $t, $by, $by) RETURNING id",
                {"f": feature, "p": col["product_id"], "c": col["competitor_id"],
                 "cp": col["competitor_product"], "v": value, "t": now, "by": by}).fetchone()[0]
            audit.record(cur, user, "feature_values", new_id, "create",
                         {"feature": (None, feature), "column": (None, col["label"]),
                          "value": (None, value)})

        for (feature, key), value in wanted.items():
            row = current.get((feature, key))
            if row is None and value is not None:
                insert(feature, key, value)
                changed += 1
            elif row is not None and row["value"] != value:
                cur.execute("UPDATE feature_values SET value = $v, version = version + 1,"
                            " updated_at = $t, updated_by = $by WHERE id = $id",
                            {"v": value, "t": now, "by": by, "id": row["id"]})
                audit.record(cur, user, "feature_values", row["id"], "update",
                             {"value": (row["value"], value)})
                changed += 1
        kept = {f for f, _k in current} | {f for (f, _k), v in wanted.items() if v is not None}
        for feature in names:  # a new feature without answers yet: one empty cell keeps it
            if feature not in kept and cols:
                insert(feature, next(iter(cols)), None)
                changed += 1
        for (feature, _k), row in current.items():
            if feature not in names:
                cur.execute("UPDATE feature_values SET deleted_at = $t, deleted_by = $by,"
                            " version = version + 1, updated_at = $t, updated_by = $by"
                            " WHERE id = $id", {"t": now, "by": by, "id": row["id"]})
                audit.record(cur, user, "feature_values", row["id"], "delete",
                             {"feature": (feature, None)})
                changed += 1
    return changed


FEATURE_LABELS = {"yes": N_("Yes"), "no": N_("No"), "partial": N_("Partial")}


def answer_kind(value) -> str:
    """yes / no / partial (in any of our languages) for the comparison's colours; 'text' for
    anything else, 'empty' for nothing."""
    text = (value or "").strip().lower()
    if not text:
        return "empty"
    for kind, label in FEATURE_LABELS.items():
        if text == kind or text == _(label).lower():
            return kind
    return "text"


# --- pricing scenarios ----------------------------------------------------------------------

def save_scenario(db: Database, user: User, kind: str, name: str, inputs: dict) -> int:
    """Saves the inputs of a pricing aid under a name (the user's own scenario of that name and
    kind is replaced). Returns its id."""
    require(user, "create")
    if kind not in SCENARIO_KINDS:
        raise ValidationError({"kind": f"unknown scenario kind {kind!r}"})
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Give the scenario a name")})
    if len(name) > 200:
        raise ValidationError({"name": _("A scenario name has at most 200 characters")})
    text = json.dumps(inputs, sort_keys=True, default=str)
    now = datetime.now()
    with db.transaction() as cur:
        found = cur.execute("SELECT id, inputs FROM pricing_scenarios WHERE kind = $k AND"
                            " lower(name) = lower($n) AND owner_id = $o AND deleted_at IS NULL"
                            " ORDER BY id LIMIT 1",
                            {"k": kind, "n": name, "o": user.id or None}).fetchone()
        if found:
            cur.execute("UPDATE pricing_scenarios SET inputs = $i, version = version + 1,"
                        " updated_at = $t, updated_by = $by WHERE id = $id",
                        {"i": text, "t": now, "by": user.id or None, "id": found[0]})
            audit.record(cur, user, "pricing_scenarios", found[0], "update",
                         {"inputs": (found[1], text)})
            return found[0]
        new_id = cur.execute(
            "INSERT INTO pricing_scenarios (name, kind, inputs, owner_id, created_at, updated_at,"
            " created_by, updated_by) VALUES ($n, $k, $i, $o, $t, $t, $o, $o) RETURNING id",
            {"n": name, "k": kind, "i": text, "o": user.id or None, "t": now}).fetchone()[0]
        audit.record(cur, user, "pricing_scenarios", new_id, "create",
                     {"name": (None, name), "inputs": (None, text)})
        return new_id


def scenarios(db: Database, user: User, kind: str) -> list[dict]:
    """Everyone's saved scenarios of the kind (the team plans together), newest first."""
    _reader(user)
    found = db.query("SELECT s.id, s.name, s.inputs, s.owner_id, u.name AS owner_name,"
                     " s.updated_at FROM pricing_scenarios s LEFT JOIN users u ON u.id ="
                     " s.owner_id WHERE s.kind = $k AND s.deleted_at IS NULL"
                     " ORDER BY s.updated_at DESC, s.id DESC", {"k": kind})
    for r in found:
        r["inputs"] = json.loads(r["inputs"])
    return found


def delete_scenario(db: Database, user: User, scenario_id: int) -> None:
    with db.transaction() as cur:
        found = cur.execute("SELECT owner_id FROM pricing_scenarios WHERE id = $id AND"
                            " deleted_at IS NULL", {"id": scenario_id}).fetchone()
        if found is None:
            raise records.NotFound(_("Scenario #{id} does not exist").format(id=scenario_id))
        require(user, "delete", {"owner_id": found[0]})
        now = datetime.now()
        cur.execute("UPDATE pricing_scenarios SET deleted_at = $t, deleted_by = $by,"
                    " version = version + 1 WHERE id = $id",
                    {"t": now, "by": user.id or None, "id": scenario_id})
        audit.record(cur, user, "pricing_scenarios", scenario_id, "delete")
