"""The set-based import (importer._fast_plan) of new records that name other records or are
checked by a command of their own: contacts, tasks, activities, survey answers, complaints,
price records, returns, competitors and users (their updates go row by row, but for
contacts', tasks', activities', price records', returns', competitors', survey answers' and
complaints' (crm/importer_complaints.py)).

A column naming a customer, contact, lead, deal, product, complaint or competitor is resolved
in SQL: its distinct texts joined, case-insensitively, to the names (and a contact's emails)
of the records the user may see, as importer._resolver lists them; the texts that find none
(unknown names, near misses, ids, missing words: few) go through the row path's resolve(),
which words the error and the "did you mean" suggestion. Each entity's own checks are SQL
conditions here; what its create command writes beyond the row (a survey's owner from its
customer, a complaint's resolved date, the deal an activity touches, a user's empty
password) is done set-based at write time, and what it refuses only then (a contact of
another customer, a second record of our company, a username once taken) refuses the import
with the row path's words."""
from __future__ import annotations

from crm import records
from crm.auth import User
from crm.i18n import gettext as _

# the entities whose new records go set-based here
TABLES = ("contacts", "tasks", "activities", "surveys", "complaints", "price_records",
          "customer_returns", "competitors", "users")
# tables a reference column can name here (importer._resolver's)
REF_TABLES = ("customers", "contacts", "leads", "deals", "products", "complaints",
              "competitors")
_LINKS = ("lead_id", "customer_id", "contact_id", "deal_id", "complaint_id")  # activities.LINKS
_DATES = {  # fields that cannot be in the future (the entity's check)
    "surveys": ("answered_on",), "complaints": ("opened_on", "resolved_on"),
    "price_records": ("observed_on",), "customer_returns": ("occurred_on",),
}


# of those, the entities whose updates and upserts go set-based too (crm/importer_updates.py:
# their updates are records.update_many's, whose checks that module writes in SQL)
UPDATE_TABLES = ("contacts", "tasks", "activities", "price_records", "customer_returns",
                 "competitors", "surveys", "complaints")  # complaints: importer_complaints


def handles(entity: records.Entity, mode: str) -> bool:
    return entity.table in TABLES and (mode == "create" or entity.table in UPDATE_TABLES) \
        and sql_check(entity) is not None


def sql_check(entity: records.Entity):
    """importer._sql_check's answer for these entities: (dates that cannot be in the future,
    whether a consent date needs consent); None for other entities."""
    if entity.table not in TABLES or entity.check is not _checks().get(entity.table):
        return None  # a check written here no more: the row path
    return _DATES.get(entity.table, ()), False


def _checks() -> dict:
    """The entities' own checks that conditions() writes in SQL."""
    from crm import market, service, team

    return {"contacts": None, "tasks": None, "activities": None,
            "surveys": service._survey_check, "complaints": service._complaint_check,
            "price_records": market._check_price, "customer_returns": market._check_return,
            "competitors": None, "users": team._check}


def mappable(spec) -> bool:
    """Whether a mapped reference field is resolved here (a custom link too: its write-time
    check, records._check_links', is crm/importer_recheck.py's)."""
    return spec.type == "ref" and spec.ref in REF_TABLES


def conditions(entity: records.Entity, value_of, mapped: set) -> list[str]:
    """The entity's own checks, and the importer's link rule, as SQL conditions that make a
    new row bad (value_of(n): the field's clean value; mapped: the fields the file brings)."""
    def v(n: str) -> str:
        return value_of(n) if n in mapped else "NULL"  # an unmapped reference is missing

    table = entity.table
    if table in ("tasks", "activities"):  # importer._check: Link it to a lead, customer...
        return [f"NOT ({' OR '.join(f'{v(n)} IS NOT NULL' for n in _LINKS)})"]
    if table == "surveys":  # service._survey_check
        return [f"({v('csat')} IS NULL AND {v('nps')} IS NULL)"]
    if table == "complaints":  # service._complaint_check
        opened, resolved, status = value_of("opened_on"), value_of("resolved_on"), \
            value_of("status")
        return [f"coalesce({resolved} < {opened}, false)",
                f"({resolved} IS NOT NULL AND coalesce({status} IN ('open', 'in_progress'),"
                " false))"]
    if table == "users":  # team._check (auth.USERNAME_RE)
        return [f"coalesce(NOT regexp_full_match({value_of('username')},"
                " '[a-z0-9][a-z0-9._-]{2,31}'), false)"]
    if table == "price_records":  # market._check_price
        return [f"({v('product_id')} IS NULL AND {v('competitor_product')} IS NULL)",
                f"({v('competitor_product')} IS NOT NULL AND {v('competitor_id')} IS NULL)"]
    return []


# --- references --------------------------------------------------------------------------

def _known(user: User, spec) -> tuple[str, dict]:
    """SELECT k (a record's name or email), id, p (emails 1: they win, as in _resolver)."""
    from crm import customers, deals, leads, products, service

    table = spec.ref
    entity = {"customers": customers.CUSTOMERS, "contacts": customers.CONTACTS,
              "deals": deals.DEALS, "leads": leads.LEADS, "complaints": service.COMPLAINTS,
              "products": products.PRODUCTS}.get(table)
    if entity is None:  # _resolver: every row of the table
        return (f"SELECT {records.REF_LABELS[table].format(a='t')} AS k, t.id, 0 AS p"
                f" FROM {table} t"), {}
    where, params = records.visible(entity, user)
    sql = f"SELECT {entity.title_sql} AS k, t.id, 0 AS p FROM {table} t WHERE {where}"
    if table == "contacts":
        sql += f" UNION ALL SELECT t.email, t.id, 1 FROM contacts t WHERE {where}"
    return sql, params


def ref_map(cur, db, user: User, spec, raw: str, index: int, m: str):
    """Table m (txt, val, cerr, verr) of the column's distinct texts that name a record or
    fail to, as importer._distinct_map makes for other columns; returns (note, {text: (value,
    error)}) of the texts the row path's resolve() decided (the rest: fill())."""
    from crm import importer

    known, params = _known(user, spec)
    stripped = importer._strip_sql("d.txt")
    k = importer._strip_sql("CAST(n.k AS VARCHAR)")
    # the column's texts that are plain names (no missing word, not an id): joined in SQL
    sql = (f"CREATE TABLE {m} AS WITH d AS (SELECT DISTINCT c{index} AS txt FROM {raw}"
           f" WHERE c{index} IS NOT NULL), t AS (SELECT txt, lower({stripped}) AS key FROM d),"
           f" n AS (SELECT lower({k}) AS key, coalesce(max(n.id) FILTER (WHERE n.p = 1),"
           f" max(n.id)) AS id FROM ({known}) n WHERE n.k IS NOT NULL AND CAST(n.k AS VARCHAR)"
           " <> '' GROUP BY 1)"
           " SELECT t.txt, CAST(n.id AS VARCHAR) AS val, false AS cerr, false AS verr FROM t"
           " JOIN n ON n.key = t.key WHERE NOT regexp_full_match(t.key, '[\\p{Nd}\\p{No}]+')"
           f" AND NOT {importer._one_of('t.key', importer._MISSING_WORDS)}")
    cur.execute(sql, {**params, **importer._used(importer._CONSTANTS, sql)})
    rest = [r[0] for r in cur.execute(
        f"SELECT DISTINCT c{index} FROM {raw} r WHERE c{index} IS NOT NULL AND NOT EXISTS"
        f" (SELECT 1 FROM {m} WHERE {m}.txt = r.c{index})").fetchall()]
    rest = [t for t in rest if not importer._missing(t)]  # missing: no value, no error
    if not rest:
        return None, {}
    from crm import importer_near

    # the few texts SQL did not resolve: their names looked up one at a time, not all read
    names = importer_near.Names(db, importer._resolver_sql(db, user, spec, None), rest)
    note, found, table = importer._distinct_map(db, user, spec, rest, names)
    cur.execute(f"INSERT INTO {m} SELECT unnest($t), unnest($v), unnest($c), unnest($e)",
                {"t": [r[0] for r in table], "v": [r[1] for r in table],
                 "c": [r[2] for r in table], "e": [r[3] for r in table]})
    return note, found


def fill(cur, converters: dict, specs: dict, name: str, rejected: list) -> None:
    """Adds the SQL-resolved texts of the rejected rows' reference columns to their
    converters' maps, so the row path's words for those rows see the same ids."""
    for field_name, (header, index, found) in converters.items():
        if field_name not in specs or specs[field_name].type != "ref" or found is None:
            continue
        texts = sorted({r[2 + index] for r in rejected if r[2 + index] is not None}
                       - set(found))
        if texts:
            for txt, val in cur.execute(f"SELECT txt, val FROM {name}_m{index} WHERE txt IN"
                                        " (SELECT unnest($t))", {"t": texts}).fetchall():
                found[txt] = (int(val), None)


# --- writing -----------------------------------------------------------------------------

def written(entity: records.Entity, user: User, values: dict, params: dict) -> dict:
    """The staged rows' column expressions ({column: SQL}) as the entity's create command
    stores them: a survey's or complaint's owner is its customer's when the file names none
    (a rep: themselves); a complaint closed without a date is resolved today."""
    table = entity.table
    if table == "users":  # team.insert_user: no password (an admin sets one)
        values["password_hash"] = "''"
    if table in ("surveys", "complaints") and user.sees_all:  # service._default_owner
        customer = ("(SELECT c.owner_id FROM customers c WHERE c.id ="
                    f" {values['customer_id']})")
        if values["owner_id"] == "$by":  # no owner column
            values["owner_id"] = f"coalesce({customer}, $by)"
        elif values["owner_id"] == "coalesce(f_owner_id, $by)":
            values["owner_id"] = f"coalesce(f_owner_id, {customer}, $by)"
    if table == "complaints":  # service._with_resolved_date
        params["today"] = params.get("today") or _today()
        values["resolved_on"] = (f"CASE WHEN {values['status']} IN ('resolved', 'rejected')"
                                 f" AND {values['resolved_on']} IS NULL THEN $today"
                                 f" ELSE {values['resolved_on']} END")
    return values


def _today():
    from datetime import date

    return date.today()


def refusal(cur, entity: records.Entity, staged: str, where: str) -> str | None:
    """What the entity's create command refuses only at write time, for the first such row
    (the row path refuses the import there): a survey's or complaint's contact or deal of
    another customer."""
    cols = {r[0] for r in cur.execute(f"SELECT * FROM {staged} LIMIT 0").description}
    if entity.table == "users":  # team.insert_user: usernames stay reserved, also trashed
        found = cur.execute(f"SELECT line, f_username FROM {staged} s WHERE ({where}) AND"
                            " EXISTS (SELECT 1 FROM users u WHERE u.username = s.f_username)"
                            " ORDER BY line LIMIT 1").fetchone()
        if found is None:
            return None
        return _("Row {line}: {reason}").format(line=found[0], reason=_(
            "Username {name} is taken").format(name=repr(found[1])))
    if entity.table not in ("surveys", "complaints"):
        return None
    tests = []
    for n, table in (("contact_id", "contacts"), ("deal_id", "deals")):
        if f"f_{n}" in cols:
            tests.append(f"EXISTS (SELECT 1 FROM {table} x WHERE x.id = s.f_{n}"
                         " AND x.customer_id IS DISTINCT FROM s.f_customer_id)")
    if not tests:
        return None
    found = cur.execute(f"SELECT min(line) FROM {staged} s WHERE ({where})"
                        f" AND ({' OR '.join(tests)})").fetchone()[0]
    if found is None:
        return None
    return _("Row {line}: {reason}").format(line=found,
                                            reason=_("It belongs to another customer"))


def after(cur, entity: records.Entity, staged: str, where: str, params: dict) -> None:
    """What the create command writes beyond the row: an activity that happened (not a planned
    one) touches its deal (activities.insert_activity: rotting counts from it). And what it
    refuses once the rows are in (the import then writes nothing): a second record of our
    own company (market._us_taken)."""
    cols = {r[0] for r in cur.execute(f"SELECT * FROM {staged} LIMIT 0").description}
    if entity.table == "activities" and "f_deal_id" in cols:
        cur.execute(f"UPDATE deals SET last_activity_at = a.at FROM (SELECT f_deal_id AS d,"
                    f" max(f_occurred_at) AS at FROM {staged} WHERE ({where}) AND f_deal_id IS"
                    f" NOT NULL AND f_occurred_at <= $now GROUP BY 1) a WHERE deals.id = a.d"
                    " AND (deals.last_activity_at IS NULL OR deals.last_activity_at < a.at)",
                    {"now": params["now"]})
    if entity.table == "competitors" and "f_is_us" in cols:
        from crm.importer import ImportFileError

        seq = "seq" if "seq" in cols else "line - 1"
        ours = cur.execute(f"SELECT line, $first + {seq} FROM {staged} WHERE ({where})"
                           " AND f_is_us ORDER BY line LIMIT 2",
                           {"first": params["first"]}).fetchall()
        if not ours:
            return
        before = cur.execute("SELECT min(id) FROM competitors WHERE is_us AND deleted_at IS"
                             " NULL AND id < $id", {"id": ours[0][1]}).fetchone()[0]
        line, taken = (ours[0][0], before) if before is not None else (
            (ours[1][0], ours[0][1]) if len(ours) > 1 else (None, None))
        if line is not None:
            raise ImportFileError(_("Row {line}: {reason}").format(line=line, reason=_(
                "Competitor #{id} already describes our company").format(id=taken)))
