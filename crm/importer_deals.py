"""Deals on the importer's set-based fast path (big CSV files; new deals on PostgreSQL too,
crm/importer_pg_deals.py): the same results as the row path (importer.plan/execute through
deals.insert_deal), checked and written in SQL.

Each link column (stage, owner, customer, contact, competitor) is resolved once per DISTINCT
text by the row path's own resolver (same words, same "did you mean", same visibility) and
joined back; a customer or contact column of very many distinct texts is matched in SQL in one
statement with the resolver's predicate. Product-line cells are read per distinct text by
importer.product_lines. The deal's own rules (required fields, a lost deal's reason, the close
date not before the engage date, the contact of the customer, a rep's own deals) are SQL
conditions; only rejected rows come back to Python, where the row path's functions word their
reasons. The writes are one INSERT ... SELECT each: the deals, their first stage history row
(on the file's engage date), their product lines, audit rows naming the import and
import_records runs for undo."""
from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from crm import audit, records, rules, stage_reach, stage_spans
from crm import importer as imp
from crm.auth import User
from crm.db import Database
from crm.fields import Field, ValidationError, convert, validate
from crm.i18n import gettext as _

# a customer or contact column with more distinct texts than this is matched in SQL (the
# resolver's dictionary of every visible record, and a lookup a text, cost seconds a million)
REF_SQL_AT = 50_000
LINKS = ("customer_id", "contact_id", "stage_id", "competitor_id")  # ref fields taken here
_SQL_REFS = {"customers", "contacts"}


# what a set-based update of deals may change (crm/importer_updates.py; a new stage and a
# lost-to name are written by write_updates here, as deals.move_deal_in and
# relink_competitor write them); product lines replace the deal's own
# (crm/importer_lines.py)
UPDATE_FIELDS = ("title", "customer_id", "contact_id", "owner_id", "amount", "currency",
                 "expected_close_date", "probability", "forecast_category", "source",
                 "next_step", "notes", "lost_reason", "competitor_id", "stage_id",
                 "lost_to_competitor")
MOVE_FIELDS = ("stage_id", "lost_to_competitor")  # written by write_updates below


def refusal(entity: records.Entity, mapping: dict, mode: str, key: str | None) -> str | None:
    """Why a deals import cannot go the set-based way (None when it can): creates (records
    there by a text key skipped) of fields this module checks in SQL."""
    specs = {f.name: f for f in imp.importable(entity)}
    rules_own = _("{entity} are checked by rules of their own").format(entity=_(entity.plural))
    if any(f.only_when for f in specs.values()):
        return rules_own
    if mode != "create":  # crm/importer_updates.py: the fields update_deal_in changes alone
        # (an upsert's new deals: write() here, from importer_updates.write_creates)
        for name in {v for v in mapping.values() if v}:
            if name in specs and _custom_update(specs[name]):
                continue  # checked live and visible at the write (importer_updates._refused)
            if name in specs and custom_plain(specs[name]):
                continue  # update_in's own (a custom field of a plain type)
            if name in DATES:  # checked (date_sql); written on an upsert's new deals
                continue
            if name == "product_lines" and _lines_update(mapping):
                continue  # crm/importer_lines.py
            if name not in UPDATE_FIELDS and name not in specs:
                return rules_own  # product lines, dates of the stage history
            if name not in UPDATE_FIELDS and specs[name].type == "ref":
                # a stage moves through deals.move_deal; a lost-to name links a competitor
                return _("{field} names other records").format(field=specs[name].shown_label)
            if name not in UPDATE_FIELDS:
                return rules_own
    if key and specs[key].type not in imp._KEY_TYPES:
        return _("{field} names other records").format(field=specs[key].shown_label)
    for name in {v for v in mapping.values() if v}:
        if name in imp.PSEUDO.get(entity.table, {}):
            continue
        spec = specs[name]
        if spec.type == "ref" and name in LINKS and not spec.custom:
            continue
        if _custom_link(spec, mode) or (mode != "create" and _custom_update(spec)):
            continue
        if spec.type == "user" and name != "owner_id":
            return _("{field} names other records").format(field=spec.shown_label)
        if spec.type not in imp._SQL_TYPES | imp._PY_TYPES:
            return _("some mapped fields are checked one row at a time (links, web addresses,"
                     " multiple choices)")
    return None


def _lines_update(mapping: dict) -> bool:
    from crm import importer_lines

    return importer_lines.takes(mapping)


def _custom_link(spec, mode: str) -> bool:
    """A custom link field of new deals: resolved by name set-based (importer_refs.ref_map),
    re-checked live and visible at the write (importer_recheck.refuse)."""
    from crm import importer_refs

    return mode == "create" and spec.custom and importer_refs.mappable(spec)


def custom_plain(spec) -> bool:
    """A custom field of a plain type (text, number, date, choice, yes/no...): a set-based
    update writes it as update_deal_in does (records.update_in, validated by its spec)."""
    from crm import importer_updates

    return spec.custom and spec.type in importer_updates._TYPES - {"user"}


def _custom_update(spec) -> bool:
    """A custom link an update of deals takes set-based (resolved as importer._fast_plan
    resolves one; records._check_links at the write: importer_recheck.custom_links)."""
    from crm import importer_refs

    return spec.custom and importer_refs.mappable(spec)


def _custom_map(cur, db: Database, user: User, spec, header: str, raw: str, index: int,
                m: str, field_name: str, converters: dict, joins: list, picked: list,
                values_sql: dict, passed: list, notes: list) -> None:
    """A custom link column, as importer._fast_plan takes one: its distinct plain names
    joined in SQL, the rest by the row path's resolver (the same words and suggestions)."""
    from crm import importer_refs

    note, found = importer_refs.ref_map(cur, db, user, spec, raw, index, m)
    if note:
        notes.append(note)
    converters[field_name] = (header, index, found)
    joins.append(f" LEFT JOIN {m} m{index} ON m{index}.txt = r.c{index}")
    picked += [f"CAST(m{index}.val AS BIGINT) AS v_{field_name}",
               f"coalesce(m{index}.cerr OR m{index}.verr, false) AS e_{field_name}"]
    passed.append(f"e_{field_name}")
    values_sql[field_name] = f"v_{field_name}"


def _fill(cur, table: str, columns: list[str], rows: list[tuple]) -> None:
    if rows:
        cur.execute(f"INSERT INTO {table} SELECT {', '.join(f'unnest(${c})' for c in columns)}",
                    {c: [r[i] for r in rows] for i, c in enumerate(columns)})


def fast_plan(db: Database, user: User, entity: records.Entity, source: imp.Source,
              mapping: dict, key: str | None = None, pipeline_id: int | None = None,
              create_missing: bool = False):
    """The plan of a big deals CSV (creates), set-based; a reason (str) for the row path."""
    from crm import pipelines

    specs = {f.name: f for f in imp.importable(entity)}
    pseudo = imp.PSEUDO[entity.table]
    every = {**specs, **pseudo}
    name = f"{imp._STAGE}.d{imp.uuid.uuid4().hex[:16]}"
    raw = name + "_raw"
    pid = pipeline_id or pipelines.default_pipeline_id(db)
    params = {"today": date.today(), "pid": pid, **imp._CONSTANTS}
    from crm import importer_pg_deals as on_pg

    pg = on_pg.on_postgresql(db)  # the stage: this process's DuckDB (crm/importer_pg_deals.py)
    cur = imp._stage_cursor(db)
    made = [raw]
    try:
        imp._attach(cur)
        src, reason = imp._stage_raw(cur, source, raw)
        if reason:
            return reason
        width = len(source.headers)
        notes, converters, lazy, created = [], {}, {}, {}
        joins, picked, layers, values_sql, flags, passed = [], [], [], {}, [], []
        for index, header in enumerate(source.headers):
            field_name = mapping.get(header)
            if not field_name:
                continue
            spec, c, m = every[field_name], f"r.c{index}", f"{name}_m{index}"
            if field_name == "product_lines":
                m = f"{name}_pl"
            distinct = f"SELECT DISTINCT c{index} FROM {raw} WHERE c{index} IS NOT NULL"
            if spec.type in imp._SQL_TYPES and field_name != "product_lines":
                converters[field_name] = (header, index, None)
                column_layers, value, cerr, verr = imp._sql_value(spec, c, f"q{index}")
                for depth, named in enumerate(column_layers):
                    while len(layers) <= depth:
                        layers.append([])
                    layers[depth].extend(named)
                values_sql[field_name] = value
                flags.append(f"({cerr}) OR ({verr}) AS e_{field_name}")
                continue
            made.append(m)
            if field_name == "product_lines":
                texts = [r[0] for r in cur.execute(distinct).fetchall()]
                found, table, items = _lines_map(db, spec, texts)
                if found is None:
                    return table
                cur.execute(f"CREATE TABLE {m} (txt VARCHAR, cerr BOOLEAN, amount DECIMAL(38, 10),"
                            " payload VARCHAR)")
                _fill(cur, m, ["t", "e", "a", "p"], table)
                made.append(f"{name}_lines")
                cur.execute(f"CREATE TABLE {name}_lines (txt VARCHAR, pos INTEGER,"
                            " product_id BIGINT, description VARCHAR, quantity DECIMAL(14, 3),"
                            " unit_price DECIMAL(14, 2))")
                _fill(cur, f"{name}_lines", ["t", "p", "i", "d", "q", "u"], items)
                joins.append(f" LEFT JOIN {m} m{index} ON m{index}.txt = {c}")
                picked += [f"m{index}.txt AS v_pl", f"m{index}.amount AS v_pl_amount",
                           f"coalesce(m{index}.cerr, false) AS e_product_lines"]
                passed.append("e_product_lines")
                converters[field_name] = (header, index, found)
                continue
            if field_name in specs and (_custom_link(spec, "create")
                                        or (pg and on_pg.ref_column(spec, field_name))):
                _custom_map(cur, db, user, spec, header, raw, index, m, field_name,
                            converters, joins, picked, values_sql, passed, notes)
                continue
            if spec.type == "ref":
                texts_n = cur.execute(f"SELECT count(*) FROM ({distinct})").fetchone()[0]
                cur.execute(f"CREATE TABLE {m} (txt VARCHAR, val BIGINT, nst VARCHAR,"
                            " cerr BOOLEAN)")
                if spec.ref in _SQL_REFS and texts_n > REF_SQL_AT:
                    _sql_resolve(cur, user, spec, m, raw, index, params)
                    lazy[field_name] = spec
                    found = None
                else:
                    texts = [r[0] for r in cur.execute(distinct).fetchall()]
                    found, table = _ref_map(db, user, spec, texts, pid, create_missing, created)
                    _fill(cur, m, ["t", "v", "n", "e"], table)
                converters[field_name] = (header, index, found)
                joins.append(f" LEFT JOIN {m} m{index} ON m{index}.txt = {c}")
                picked += [f"m{index}.val AS v_{field_name}",
                           f"coalesce(m{index}.cerr, false) AS e_{field_name}"]
                passed.append(f"e_{field_name}")
                if field_name == "stage_id":
                    picked.append(f"m{index}.nst AS v_new_stage")
                values_sql[field_name] = f"v_{field_name}"
                continue
            texts = [r[0] for r in cur.execute(distinct).fetchall()]
            if field_name in pseudo:  # the engage and close dates, kept as the file has them
                note, found = _date_table(cur, spec, texts, m)
            else:  # choices, yes/no, dates, the owner: the row path's conversion
                note, found, table = imp._distinct_map(db, user, spec, texts)
                cur.execute(f"CREATE TABLE {m} (txt VARCHAR, val VARCHAR, cerr BOOLEAN,"
                            " verr BOOLEAN)")
                _fill(cur, m, ["t", "v", "c", "e"], table)
            if note:
                notes.append(note)
            converters[field_name] = (header, index, found)
            joins.append(f" LEFT JOIN {m} m{index} ON m{index}.txt = {c}")
            if field_name in pseudo:
                picked += [f"m{index}.val AS v_{field_name}",
                           f"coalesce(m{index}.cerr, false) AS e_{field_name}"]
            else:
                value = f"CAST(m{index}.val AS {imp._SQL_CAST[spec.type]})"
                if spec.type == "bool":
                    value = f"coalesce({value}, false)"
                picked += [f"{value} AS v_{field_name}",
                           f"coalesce(m{index}.cerr OR m{index}.verr, false) AS e_{field_name}"]
            passed.append(f"e_{field_name}")
            values_sql[field_name] = f"v_{field_name}"

        # the deal as insert_deal would store it: unmapped fields take their defaults
        constants, bad = {}, [f"e_{n}" for n in converters]
        for spec in entity.editable:
            if spec.name in values_sql:
                if spec.required:
                    bad.append(f"f_{spec.name} IS NULL" if spec.name != "stage_id"
                               else "(f_stage_id IS NULL AND new_stage IS NULL)")
                continue
            constants[spec.name] = convert(spec, spec.default)
            params[f"k_{spec.name}"] = constants[spec.name]
            values_sql[spec.name] = f"$k_{spec.name}"
            if constants[spec.name] is None and spec.required:
                bad.append("true")
        amount_spec = specs["amount"]
        lines_amount = "v_pl_amount" if "product_lines" in converters else "NULL"
        selects = [f"{values_sql[n]} AS f_{n}" for n in specs if n != "amount"]
        selects.append(f"coalesce({values_sql['amount']}, {lines_amount}) AS f_amount")
        selects += [
            "v_new_stage AS new_stage" if "stage_id" in converters else "NULL AS new_stage",
            "v_created_at AS engaged" if "created_at" in converters else
            "CAST(NULL AS TIMESTAMP) AS engaged",
            "CAST(v_closed_on AS DATE) AS closed" if "closed_on" in converters else
            "CAST(NULL AS DATE) AS closed",
            "v_pl AS pl" if "product_lines" in converters else "CAST(NULL AS VARCHAR) AS pl"]
        # a deal priced from its lines: insert_deal's limits on that amount
        selects.append(f"{values_sql['amount']} IS NULL AS amount_from_lines")
        bad.append(f"coalesce(f_amount > {Decimal(str(amount_spec.max_value))}"
                   " AND amount_from_lines, false)")
        if key:  # the key's text, as importer._key_text has it
            selects.append(f"lower(q{converters[key][1]}_x) AS k")
        if "owner_id" in converters and not user.sees_all:
            bad.append("coalesce(f_owner_id <> $me, false)")
            params["me"] = user.id
        # importer._check: the close date (else, closed, the expected one) not before the
        # engage date; a lost deal's reason; the contact works for the customer
        bad += ["coalesce(coalesce(closed, CASE WHEN st.kind <> 'open' THEN"
                " f_expected_close_date END) < CAST(engaged AS DATE), false)",
                "coalesce(st.kind = 'lost' AND f_lost_reason IS NULL, false)",
                "coalesce(f_contact_id IS NOT NULL AND f_customer_id IS NOT NULL AND"
                " ct.customer_id IS DISTINCT FROM f_customer_id, false)"]
        inner = f"SELECT {', '.join(['r.*'] + picked)} FROM ({src}) r" + "".join(joins)
        for named in layers:
            inner = f"SELECT *, {', '.join(f'{e} AS {a}' for a, e in named)} FROM ({inner}) r"
        typed = (f"SELECT r.line, {', '.join(selects + flags + passed)} FROM ({inner}) r")
        stages_t, contacts_t = "stages", "contacts"
        if pg:  # the stages, and the contacts the file names, from PostgreSQL
            made += [f"{name}_st", f"{name}_ct"]
            stages_t, contacts_t = on_pg.stage_tables(
                db, cur, name, f"{name}_m{converters['contact_id'][1]}"
                if "contact_id" in converters else None)
        checked = (f"SELECT s.*, ({' OR '.join(bad)}) AS bad FROM ({typed}) s"
                   f" LEFT JOIN {stages_t} st ON st.id = s.f_stage_id"
                   f" LEFT JOIN {contacts_t} ct ON ct.id = s.f_contact_id")
        # w: the row is written; seq numbers the deals to create (1, 2, ... in the file's
        # order): the lines' own order while every row is, else a window (a copy) numbers them
        sql = (f"CREATE TABLE {name} AS SELECT c.*, NOT c.bad AS w, false AS skipped,"
               f" CAST(NULL AS BIGINT) AS dup_of, c.line - 1 AS seq FROM ({checked}) c")
        made.append(name)
        cur.execute(sql, imp._used(params, sql))
        n_bad = cur.execute(f"SELECT count(*) FROM {name} WHERE bad").fetchone()[0]
        dups = existing = False
        if key:  # importer.plan(): a key seen in an earlier row is refused, one there skipped
            made.append(f"{name}_d")
            cur.execute(f"CREATE TABLE {name}_d AS SELECT k, min(line) AS first FROM {name}"
                        " WHERE k IS NOT NULL GROUP BY k HAVING count(*) > 1")
            dups = bool(cur.execute(f"SELECT count(*) FROM {name}_d").fetchone()[0])
            where, visible = records.visible(entity, user)
            there = (f"SELECT DISTINCT lower(CAST(t.{key} AS VARCHAR)) AS k FROM {entity.table} t"
                     f" WHERE {where}")
            if pg:  # the file's keys deals there have, from PostgreSQL
                made.append(f"{name}_k")
                there, visible = on_pg.existing_keys(db, cur, user, entity, name, key), {}
            existing = bool(cur.execute(f"SELECT count(*) FROM {name} s JOIN ({there}) e"
                                        " ON e.k = s.k", visible).fetchone()[0])
        if n_bad or dups or existing:
            made.append(f"{name}_n")
            dup_of = "CASE WHEN s.line > d.first THEN d.first END" if dups else "NULL"
            skipped = "e.k IS NOT NULL" if existing else "false"
            acted = (f"SELECT s.* EXCLUDE (w, skipped, dup_of, seq), {dup_of} AS dup_of,"
                     f" ({dup_of}) IS NULL AND {skipped} AS skipped FROM {name} s"
                     + (f" LEFT JOIN {name}_d d ON d.k = s.k" if dups else "")
                     + (f" LEFT JOIN ({there}) e ON e.k = s.k" if existing else ""))
            sql = (f"CREATE TABLE {name}_n AS SELECT *, CASE WHEN w THEN row_number() OVER"
                   " (PARTITION BY w ORDER BY line) END AS seq FROM (SELECT *, NOT bad AND"
                   f" dup_of IS NULL AND NOT skipped AS w FROM ({acted}))")
            cur.execute(sql, visible if existing else {})
            cur.execute(f"DROP TABLE {name}")
            cur.execute(f"ALTER TABLE {name}_n RENAME TO {name.split('.')[1]}")
        n_create, n_skip, n_reject = cur.execute(
            f"SELECT count(*) FILTER (WHERE w), count(*) FILTER (WHERE skipped),"
            f" count(*) FILTER (WHERE NOT w AND NOT skipped) FROM {name}").fetchone()
        rejected = [] if not n_reject else cur.execute(
            f"SELECT s.line, s.dup_of, {', '.join('r.c%d' % i for i in range(width))}"
            f" FROM {name} s JOIN ({src}) r ON r.line = s.line WHERE NOT s.w AND NOT s.skipped"
            " ORDER BY s.line").fetchall()
        if rejected:  # the custom links' texts SQL resolved, for the row path's words
            from crm import importer_refs

            importer_refs.fill(cur, {n: c for n, c in converters.items()
                                     if n in specs and (_custom_link(specs[n], "create") or (
                                         pg and on_pg.ref_column(specs[n], n)))},
                               specs, name, rejected)
        made = [t for t in made if t not in (name, f"{name}_pl", f"{name}_lines")]
        # (the deals, their product lines and cells stay for write())
    finally:  # an early return (the row path) or an error leaves nothing staged either
        for table in made:
            try:
                cur.execute(f"DROP TABLE IF EXISTS {table}")
            except Exception:  # noqa: BLE001 - cleaning up after the real error
                pass
        cur.close()
    rows = _worded(db, user, entity, every, converters, lazy, pid, key, rejected)
    if any(r.action != "reject" for r in rows):  # SQL and the row path disagree: the row path
        _drop_all(db, name)
        return _("{entity} are checked by rules of their own").format(entity=_(entity.plural))
    result = imp.Plan(entity, source, mapping, "create", key, rows, notes,
                      new_stages=created.get("stages", set()), pipeline_id=pipeline_id,
                      staged=name, staged_counts={"create": n_create, "skip": n_skip})
    result._constants = constants
    result._fast_writer = on_pg.write if pg else write
    result._db = db  # whose stage holds them (PostgreSQL: this process's DuckDB)
    result._staged_more = (f"{name}_pl", f"{name}_lines")
    result._pid = pid
    imp.weakref.finalize(result, _drop_all, db, name)
    return result


def _ref_map(db: Database, user: User, spec, texts: list, pid: int, create_missing: bool,
             created: dict):
    """The row path's resolution of each distinct text of a link column: ({text: (value,
    error)}, [(text, id, name of a stage to add, error?)])."""
    column = imp.resolve(db, user, spec, texts, pid, create_missing, created)
    found, table = {}, []
    for i, text in enumerate(texts):
        value, error = column.values[i], column.errors.get(i)
        found[text] = (value, error)
        if isinstance(value, tuple):  # ("new stage", name): added by execute (_add_stages)
            table.append((text, None, value[1], False))
        else:
            table.append((text, value, None, error is not None))
    return found, table


def _sql_resolve(cur, user: User, spec, m: str, raw: str, index: int, params: dict) -> None:
    """importer.resolve() of a customer or contact column in one statement: by id (digits of
    a record the resolver knows), else by name (contacts: email first), any case, trimmed;
    the last record of a name wins, as in the resolver's dictionary."""
    from crm import customers

    entity = customers.CUSTOMERS if spec.ref == "customers" else customers.CONTACTS
    where, visible = records.visible(entity, user)
    params.update(visible)
    title = imp._strip_sql(f"({entity.title_sql})")
    named = f"SELECT lower({title}) AS k, t.id, 0 AS src FROM {entity.table} t WHERE {where}"
    if entity.table == "contacts":
        named += (f" UNION ALL SELECT lower({imp._strip_sql('t.email')}), t.id, 1"
                  f" FROM contacts t WHERE {where}")
    known = (f"SELECT k, coalesce(max(id) FILTER (WHERE src = 1), max(id)) AS id"
             f" FROM ({named}) n WHERE k IS NOT NULL AND k <> '' GROUP BY k")
    texts = (f"SELECT txt, CASE WHEN {imp._one_of('k', imp._MISSING_WORDS)} THEN NULL ELSE k"
             f" END AS k FROM (SELECT txt, lower({imp._strip_sql('txt')}) AS k FROM"
             f" (SELECT DISTINCT c{index} AS txt FROM {raw} WHERE c{index} IS NOT NULL))")
    sql = (f"INSERT INTO {m} WITH known AS MATERIALIZED ({known}) SELECT d.txt,"
           " coalesce(i.id, n.id), NULL, d.k IS NOT NULL AND coalesce(i.id, n.id) IS NULL"
           f" FROM ({texts}) d LEFT JOIN known n ON n.k = d.k LEFT JOIN (SELECT DISTINCT id"
           " FROM known) i ON regexp_full_match(d.k, '[0-9]{1,18}')"
           " AND i.id = TRY_CAST(d.k AS BIGINT)")
    cur.execute(sql, imp._used(params, sql))


def _lines_map(db: Database, spec, texts: list):
    """importer.product_lines() of each distinct product cell: ({text: (lines, error)},
    [(text, error?, amount, the audit entry's changes)], [(text, position, product, description,
    quantity, unit price)]); (None, reason, None) when a line would be refused only when
    written (deals.insert_lines), which the row path reports by refusing the import."""
    from crm import deals, importer_pg_deals as on_pg

    # (on PostgreSQL the products the cells name, not every product)
    column = (on_pg.product_lines if on_pg.on_postgresql(db) else imp.product_lines)(
        db, spec, texts)
    found, table, items = {}, [], []
    for i, text in enumerate(texts):
        lines, error = column.values[i], column.errors.get(i)
        found[text] = (lines, error)
        if error or not lines:
            table.append((text, error is not None, None, None))
            continue
        try:
            cleans = [validate(deals.LINE_FIELDS, line) for line in lines]
        except ValidationError:
            return None, _("{entity} are checked by rules of their own").format(
                entity=_("Deals")), None
        amount = sum(x["quantity"] * x["unit_price"] for x in lines).quantize(Decimal("0.01"))
        added = "; ".join(f"{c['description']} × {c['quantity']:g}" for c in cleans)
        table.append((text, False, amount, audit._payload({"line_added": [None, added]})))
        items += [(text, pos, c["product_id"], c["description"], c["quantity"],
                   c["unit_price"]) for pos, c in enumerate(cleans)]
    return found, table, items


def contact_customers(db: Database, ids) -> dict:
    """{contact id: its customer's id} of the given contacts (a deal's contact must work for
    its customer)."""
    found, ids = {}, sorted({i for i in ids if isinstance(i, int)})
    for chunk in imp._chunks(ids, 1000):
        names = {f"c{i}": v for i, v in enumerate(chunk)}
        for r in db.query(f"SELECT id, customer_id FROM contacts WHERE id IN"
                          f" ({', '.join('$' + n for n in names)})", names):
            found[r["id"]] = r["customer_id"]
    return found


def _worded(db: Database, user: User, entity: records.Entity, every: dict, converters: dict,
            lazy: dict, pid: int, key: str | None, rejected: list) -> list:
    """The rows SQL rejected, worded as importer.plan() words them (its loop, per row)."""
    if not rejected:
        return []
    for field_name, spec in lazy.items():  # matched in SQL: the resolver words the misses
        header, index, _found = converters[field_name]
        texts = sorted({r[2 + index] for r in rejected if r[2 + index] is not None})
        column = imp.resolve(db, user, spec, texts, pid)
        converters[field_name] = (header, index, {
            t: (column.values[i], column.errors.get(i)) for i, t in enumerate(texts)})
    specs = {n: s for n, s in every.items() if n not in imp.PSEUDO[entity.table]}
    lost = {r["id"] for r in db.query("SELECT id FROM stages WHERE kind = 'lost'")}
    closed = {r["id"] for r in db.query("SELECT id FROM stages WHERE kind <> 'open'")}
    cells_of = [(r[0], r[1], ["" if c is None else c for c in r[2:]]) for r in rejected]
    contacts = None
    if "contact_id" in converters:
        _h, index, found = converters["contact_id"]
        contacts = contact_customers(db, [found.get(cells[index], (None,))[0]
                                          for _line, _dup, cells in cells_of])
    rows = []
    for line, dup_of, cells in cells_of:
        values, extra, errors = {}, {}, {}
        for field_name, (header, index, found) in converters.items():
            text = cells[index]
            if imp._missing(text):
                value, error = None, None
            elif found is not None:
                value, error = found.get(text, (None, None))
            else:
                column = imp.coerce(every[field_name], [text])
                value, error = column.values[0], column.errors.get(0)
            if field_name in specs:
                values[field_name] = value
            elif value is not None:
                extra[field_name] = value
            if error:
                errors[header] = error
        row = imp.Row(line=line, action="create", values=values, errors=errors, extra=extra,
                      cells=cells)
        if dup_of is not None:
            row.action, row.errors = "reject", {**errors, key: _(
                "the same {field} as row {line}").format(field=specs[key].shown_label,
                                                         line=dup_of)}
            rows.append(row)
            continue
        lines = extra.get("product_lines")
        if lines and values.get("amount") is None:
            values["amount"] = sum(x["quantity"] * x["unit_price"] for x in lines).quantize(
                Decimal("0.01"))
        if not errors:
            imp._check(user, entity, row, specs, None, lost, closed, contacts)
        if row.errors:
            row.action = "reject"
        rows.append(row)
    return rows


def _drop_all(db: Database, name: str) -> None:
    """Frees a deals plan's staging tables (the plan abandoned, or SQL and Python disagreed)."""
    for table in ("", "_pl", "_lines"):
        imp._drop_quietly(db, name + table)


def write(cur, user: User, p, import_id: int) -> None:
    """The staged deals (w) as insert_deal and importer._deal_dates write them, set-based:
    the deals, their first stage history row, product lines, audit rows naming the import,
    import_records runs; then the automation rules on them."""
    from crm import deals

    n = p.staged_counts.get("create", 0)
    if not n:
        return
    staged, constants = p.staged, p._constants
    from crm import importer_recheck  # a customer trashed since the dry run: the row path's

    importer_recheck.refuse(cur, user, p, staged, "w", import_id)
    now, today, by = datetime.now(), date.today(), user.id or None
    # the competitors lost_to_competitor names (made when new), in the file's order
    rivals = []
    if "lost_to_competitor" not in constants:
        for (text,) in cur.execute(
                f"SELECT f_lost_to_competitor FROM {staged} WHERE w AND"
                " f_lost_to_competitor IS NOT NULL GROUP BY 1 ORDER BY min(line)").fetchall():
            rival = deals._rival(cur, user, text)
            if rival["lost_to_competitor_id"] is not None:
                rivals.append((text, rival["lost_to_competitor_id"],
                               rival["lost_to_competitor"]))
    first = imp._draw_ids(cur, "deals_id_seq", n)
    params = {"first": first - 1, "now": now, "today": today, "by": by, "i": import_id,
              "uname": user.username, "pid": p._pid, "rt": [r[0] for r in rivals] or [""],
              "ri": [r[1] for r in rivals] or [None], "rn": [r[2] for r in rivals] or [None]}
    cols, values = ["id"], ["$first + s.seq"]
    for spec in p.entity.editable:
        value = f"s.f_{spec.name}"
        if spec.name == "owner_id":
            value = "coalesce(s.f_owner_id, $by)"
        elif spec.name == "stage_id":
            value = "st.id"
        elif spec.name == "lost_to_competitor":
            value = "rv.name"
        cols.append(spec.name)
        values.append(value)
    cols += ["pipeline_id", "stage_entered_at", "closed_on", "lost_to_competitor_id",
             "created_at", "updated_at", "created_by", "updated_by"]
    values += ["st.pipeline_id", "coalesce(s.engaged, $now)",
               "CASE WHEN st.kind <> 'open' THEN coalesce(s.closed, s.f_expected_close_date,"
               " $today) END", "rv.id", "coalesce(s.engaged, $now)", "$now", "$by", "$by"]
    # (the staging database takes no writes in the import's transaction: the stages the
    # import added (importer._add_stages) and the competitors are joined as subqueries)
    joined = (f" FROM {staged} s LEFT JOIN (SELECT name AS nst, max(id) AS id FROM stages"
              " WHERE pipeline_id = $pid AND deleted_at IS NULL GROUP BY name) ns"
              " ON ns.nst = s.new_stage JOIN stages st ON st.id = coalesce(s.f_stage_id, ns.id)"
              " LEFT JOIN (SELECT unnest(CAST($rt AS VARCHAR[])) AS txt, unnest(CAST($ri AS"
              " BIGINT[])) AS id, unnest(CAST($rn AS VARCHAR[])) AS name) rv"
              " ON rv.txt = s.f_lost_to_competitor WHERE s.w")
    sql = f"INSERT INTO deals ({', '.join(cols)}) SELECT {', '.join(values)}{joined}"
    cur.execute(sql, imp._used(params, sql))
    # the first stage history row: on the engage date, the deal's amount and probability
    first_h = imp._draw_ids(cur, "deal_stage_history_id_seq", n)
    sql = ("INSERT INTO deal_stage_history (id, deal_id, from_stage_id, to_stage_id,"
           " changed_at, changed_by, amount, probability) SELECT $h + s.seq, $first + s.seq,"
           " NULL, st.id, coalesce(s.engaged, $now), $by, s.f_amount,"
           f" coalesce(s.f_probability, st.probability){joined}")
    cur.execute(sql, imp._used({**params, "h": first_h - 1}, sql))
    stage_spans.refresh(cur, f"SELECT $first + s.seq FROM {staged} s WHERE s.w",
                        {"first": first - 1})
    stage_reach.refresh(cur, f"SELECT $first + s.seq FROM {staged} s WHERE s.w",
                        {"first": first - 1})
    # product lines, in the file's order, and an audit entry for each deal that has some
    n_lines = cur.execute(f"SELECT count(*) FROM {staged} s JOIN {staged}_lines l"
                          " ON l.txt = s.pl WHERE s.w").fetchone()[0] \
        if "product_lines" in p.mapping.values() else 0
    first_audit = imp._draw_ids(cur, "audit_log_id_seq", n)
    cur.execute("INSERT INTO audit_log (id, occurred_at, user_id, username, entity, record_id,"
                " action, changes, import_id) SELECT $own + seq, $now, $by, $uname, 'deals',"
                f" $first + seq, 'create', NULL, $i FROM {staged} WHERE w",
                {**{k: params[k] for k in ("now", "by", "uname", "first", "i")},
                 "own": first_audit - 1})
    if n_lines:
        first_l = imp._draw_ids(cur, "deal_products_id_seq", n_lines)
        cur.execute("INSERT INTO deal_products (id, deal_id, product_id, description, quantity,"
                    " unit_price, created_at, created_by) SELECT $l + row_number() OVER"
                    " (ORDER BY s.seq, l.pos), $first + s.seq, l.product_id, l.description,"
                    f" l.quantity, l.unit_price, $now, $by FROM {staged} s JOIN {staged}_lines l"
                    " ON l.txt = s.pl WHERE s.w",
                    {"l": first_l - 1, "first": first - 1, "now": now, "by": by})
        n_added = cur.execute(f"SELECT count(*) FROM {staged} s JOIN {staged}_pl m"
                              " ON m.txt = s.pl WHERE s.w AND m.payload IS NOT NULL"
                              ).fetchone()[0]
        own = imp._draw_ids(cur, "audit_log_id_seq", n_added)
        cur.execute("INSERT INTO audit_log (id, occurred_at, user_id, username, entity,"
                    " record_id, action, changes, import_id) SELECT $own + row_number() OVER"
                    " (ORDER BY s.seq), $now, $by, $uname, 'deals', $first + s.seq, 'update',"
                    f" m.payload, $i FROM {staged} s JOIN {staged}_pl m ON m.txt = s.pl"
                    " WHERE s.w AND m.payload IS NOT NULL",
                    {**{k: params[k] for k in ("now", "by", "uname", "first", "i")},
                     "own": own - 1})
    cur.execute("INSERT INTO import_records (import_id, line, record_id, action, before,"
                " version_after, span) SELECT $i, min(line), $first + min(seq), 'create', NULL,"
                f" 1, count(*) FROM {staged} WHERE w GROUP BY line - seq"
                " ORDER BY min(line)", {"i": import_id, "first": first - 1})
    if rules.watched(cur, "deals"):
        ids = [r[0] for r in cur.execute(f"SELECT $first + seq FROM {staged} WHERE w"
                                         " ORDER BY seq", {"first": first - 1}).fetchall()]
        rules.on_created(cur, user, p.entity, ids)


# --- updates that move deals or name a lost-to competitor, set-based ----------------------

def stage_map(cur, db: Database, user: User, spec, raw: str, index: int, m: str,
              pipeline_id: int | None, create_missing: bool = False,
              created: dict | None = None):
    """importer_refs.ref_map for a deal update's stage column: each distinct text resolved
    by the row path's resolver (the pipeline's live stages, its words and suggestions; with
    create_missing, a stage to add into created["stages"], staged as its placeholder id:
    new_stage_key)."""
    from crm import pipelines

    texts = [r[0] for r in cur.execute(f"SELECT DISTINCT c{index} FROM {raw}"
                                       f" WHERE c{index} IS NOT NULL").fetchall()]
    pid = pipeline_id or pipelines.default_pipeline_id(db)
    created = {} if created is None else created
    found, table = _ref_map(db, user, spec, texts, pid, create_missing, created)
    adding = sorted(created.get("stages", ()))
    cur.execute(f"CREATE TABLE {m} (txt VARCHAR, val VARCHAR, cerr BOOLEAN, verr BOOLEAN)")
    _fill(cur, m, ["t", "v", "c", "e"],
          [(t, str(new_stage_key(adding, n)) if n is not None else None if v is None
            else str(v), bool(e), False) for t, v, n, e in table])
    return None, found


def update_conditions(mapped: set) -> list[str]:
    """importer._check's rules for a row of a deal update or upsert, in SQL: the file's
    contact works for the file's customer; a lost stage needs the file's lost reason."""
    found = []
    if {"contact_id", "customer_id"} <= mapped:
        found.append("(f_contact_id IS NOT NULL AND f_customer_id IS NOT NULL AND"
                     " (SELECT x.customer_id FROM contacts x WHERE x.id = f_contact_id)"
                     " IS DISTINCT FROM f_customer_id)")
    if "stage_id" in mapped:
        reason = "f_lost_reason" if "lost_reason" in mapped else "NULL"
        found.append("coalesce(f_stage_id IN (SELECT id FROM stages WHERE kind = 'lost') AND"
                     f" {reason} IS NULL, false)")
    return found


# what deals.move_deal_in sets beside the stage (its audit entry's order), with their types
_MOVE_SETS = ("lost_reason", "lost_to_competitor", "lost_to_competitor_id", "closed_on",
              "probability", "forecast_category")
_CLOSED_ON = Field("closed_on", "Closed on", "date")


def _spec(name: str):
    return _CLOSED_ON if name == "closed_on" else records_spec()[name]


def records_spec() -> dict:
    from crm import deals

    return {f.name: f for f in deals.DEALS.fields}


def moves(p) -> bool:
    """Whether a staged deal update is written by write_updates here (it names a stage or a
    lost-to competitor)."""
    return p.entity.table == "deals" and (bool(set(MOVE_FIELDS) & set(p._update_fields))
                                          or getattr(p, "_closes", False))


def _moved_rows(p, fields: list[str]) -> tuple[str, str]:
    """(the staged updates with what the row path's write_row does to each deal, as SQL over
    the rivals' names $rt/$ri/$rn; the rival texts to look up first, in the row path's order)

    write_row, a row: deals.move_deal_in (when the stage differs: the stage's history row, the
    lost reason and competitor, closed on, probability and forecast category emptied), then
    deals.update_deal_in with the other fields that differ (records.update_in against the
    deal as moved; relink_competitor on the lost-to name it ends with)."""
    from crm import deals

    name, has = p.staged_updates, set(fields)
    mv = "u.d_stage_id" if "stage_id" in has else "false"
    given = " OR ".join(f"u.d_{n}" for n in fields if n != "stage_id") or "false"
    # move_deal_in's lost reason and competitor: the file's where it differs, else the deal's
    m_lr = "CASE WHEN u.d_lost_reason THEN u.f_lost_reason ELSE t.lost_reason END" \
        if "lost_reason" in has else "t.lost_reason"
    m_ltc = ("CASE WHEN u.d_lost_to_competitor THEN u.f_lost_to_competitor"
             " ELSE t.lost_to_competitor END") if "lost_to_competitor" in has \
        else "t.lost_to_competitor"
    olds = ", ".join(f"t.{n} AS t_{n}" for n in ("stage_id", "amount") + _MOVE_SETS)
    # the file's close date (importer._close_date): of a move into a won or lost stage, or of
    # a deal closed already that stays closed
    xc = ("CAST(u.x_closed_on AS DATE)" if getattr(p, "_closes", False)
          else "CAST(NULL AS DATE)")
    olds += (f", {xc} AS xc, (SELECT k.kind FROM stages k WHERE k.id = t.stage_id)"
             " AS t_kind")
    a = (f"SELECT u.*, {olds}, {mv} AS mv, ({given}) AS given, st.id AS s_id,"
         " st.kind AS s_kind, st.pipeline_id AS s_pipeline, st.probability AS s_prob,"
         f" {m_lr} AS m_lr, {m_ltc} AS m_ltc FROM {name}_u u JOIN deals t"
         " ON t.id = u.record_id"
         # a stage the import added: its placeholder's stage ($nk, $ni: new_stage_params)
         + (" LEFT JOIN (SELECT unnest($nk) AS k, unnest($ni) AS id) nw ON nw.k = u.f_stage_id"
            if "stage_id" in has else "") +
         " LEFT JOIN (SELECT s.* FROM stages s JOIN pipelines pp ON"
         " pp.id = s.pipeline_id WHERE s.deleted_at IS NULL AND pp.deleted_at IS NULL) st"
         f" ON st.id = {'coalesce(nw.id, u.f_stage_id)' if 'stage_id' in has else 'NULL'}")
    rivals = "(SELECT unnest($rt) AS txt, unnest($ri) AS id, unnest($rn) AS name)"
    b = ("SELECT a.*, a.mv AND a.s_kind = 'lost' AS lost,"
         " a.mv AND a.s_kind IN ('won', 'lost') AND a.xc IS NOT NULL AS fc,"
         " NOT a.mv AND a.xc IS NOT NULL AND a.t_kind <> 'open' AND a.xc IS DISTINCT FROM"
         " a.t_closed_on AS rc2,"
         " CASE WHEN a.mv AND a.s_kind IN ('won', 'lost') AND a.xc IS NOT NULL THEN"
         f" {deals.CLOSING_MOMENT_SQL.format(day='a.xc', deal='a.record_id')} END AS m_at,"
         " CASE WHEN a.mv THEN CASE WHEN a.s_kind = 'lost' THEN a.m_lr END"
         " ELSE a.t_lost_reason END AS p_lost_reason,"
         " CASE WHEN a.mv THEN CASE WHEN a.s_kind = 'lost' THEN rm.name END"
         " ELSE a.t_lost_to_competitor END AS p_lost_to_competitor,"
         " CASE WHEN a.mv THEN CASE WHEN a.s_kind = 'lost' THEN rm.id END"
         " ELSE a.t_lost_to_competitor_id END AS p_lost_to_competitor_id,"
         " CASE WHEN a.mv THEN CASE WHEN a.s_kind IN ('won', 'lost') THEN"
         " coalesce(a.xc, $today) END WHEN a.xc IS NOT NULL AND a.t_kind <> 'open'"
         " THEN a.xc ELSE a.t_closed_on END AS p_closed_on,"
         " CASE WHEN a.mv THEN NULL ELSE a.t_probability END AS p_probability,"
         " CASE WHEN a.mv THEN NULL ELSE a.t_forecast_category END AS p_forecast_category"
         f" FROM ({a}) a LEFT JOIN {rivals} rm ON rm.txt = a.m_ltc")
    specs = records_spec()
    c_cols = []
    for n in fields:
        if n == "stage_id":
            continue
        post = f"b.p_{n}" if n in _MOVE_SETS else f"b.o_{n}"
        c_cols += [f"{post} AS q_{n}",
                   f"b.d_{n} AND {imp._differs_sql(specs[n], post, f'b.v_{n}')} AS x_{n}"]
    upd = " OR ".join(f"x_{n}" for n in fields if n != "stage_id") or "false"
    c = f"SELECT b.*{''.join(', ' + x for x in c_cols)} FROM ({b}) b"
    # the deal's lost-to name after the update, which relink_competitor looks up
    final = ("CASE WHEN c.x_lost_to_competitor THEN c.v_lost_to_competitor ELSE"
             " c.p_lost_to_competitor END") if "lost_to_competitor" in has \
        else "c.p_lost_to_competitor"
    d = (f"SELECT c.*, ({upd}) AS upd, {final} AS fin_ltc FROM ({c}) c")
    e = ("SELECT d.*, d.given AND rf.id IS DISTINCT FROM d.p_lost_to_competitor_id AS relink,"
         " rf.id AS r_id, rf.name AS r_name"
         f" FROM ({d}) d LEFT JOIN {rivals} rf ON rf.txt = d.fin_ltc")
    # the rival texts: the move's (into a lost stage), then the relink's, row by row
    relinked = ("CASE WHEN a.d_lost_to_competitor THEN a.f_lost_to_competitor WHEN a.mv"
                " THEN NULL ELSE a.t_lost_to_competitor END") if "lost_to_competitor" in has \
        else "CASE WHEN a.mv THEN NULL ELSE a.t_lost_to_competitor END"
    texts = (f"SELECT txt FROM (SELECT a.line * 2 AS k, a.m_ltc AS txt FROM ({a}) a"
             " WHERE a.mv AND a.s_kind = 'lost' UNION ALL SELECT a.line * 2 + 1,"
             f" {relinked} FROM ({a}) a WHERE a.given) WHERE txt IS NOT NULL"
             " GROUP BY txt ORDER BY min(k)")
    return e, texts


def refused_moves(cur, p) -> bool:
    """Whether some staged row's move would be refused by move_deal_in (a stage gone since,
    a lost stage without a lost reason): the row path then writes the rows and words it."""
    if "stage_id" not in p._update_fields:
        return False
    fields = [n for n in p._update_fields]
    a, _texts = _moved_rows(p, fields)
    sql = (f"SELECT count(*) FROM ({a}) x WHERE x.mv AND (x.s_id IS NULL OR"
           " (x.s_kind = 'lost' AND x.m_lr IS NULL))")
    return bool(cur.execute(sql, imp._used({"rt": [""], "ri": [None], "rn": [None],
                                            "today": date.today(),
                                            **new_stage_params(cur, p)}, sql)).fetchone()[0])


def write_updates(cur, user: User, p, import_id: int) -> None:
    """The staged deal updates that name a stage or a lost-to competitor, set-based, as
    importer.write_row writes them a row at a time: the rivals named looked up (or made) in
    the row path's order, the new stage history rows, the audit rows (move, update, relink)
    in the rows' order, the import records (with what undo moves back) and one UPDATE of the
    deals, version-checked."""
    from crm import deals
    from crm import importer_updates as iu

    name = p.staged_updates
    fields = iu._ordered(p.entity, p._update_fields)
    n = cur.execute(f"SELECT count(*) FROM {name}_u").fetchone()[0]
    if not n:
        return
    now, today, by = datetime.now(), date.today(), user.id or None
    rows_sql, texts_sql = _moved_rows(p, fields)
    empty = {"rt": [""], "ri": [None], "rn": [None], "today": today,
             **new_stage_params(cur, p)}
    rivals = []
    for (text,) in cur.execute(texts_sql, imp._used(empty, texts_sql)).fetchall():
        rival = deals._rival(cur, user, text)
        if rival["lost_to_competitor_id"] is not None:
            rivals.append((text, rival["lost_to_competitor_id"], rival["lost_to_competitor"]))
    params = {"rt": [r[0] for r in rivals] or [""], "ri": [r[1] for r in rivals] or [None],
              "rn": [r[2] for r in rivals] or [None], "today": today, "now": now, "by": by,
              "uname": user.username, "i": import_id,
              **{k: empty[k] for k in ("nk", "ni")}}
    # computed once (a temporary table: the staging database takes no writes in the
    # import's transaction)
    tmp = f"crm_import_moves_{uuid.uuid4().hex[:16]}"
    sql = f"CREATE TEMP TABLE {tmp} AS {rows_sql}"
    cur.execute(sql, imp._used(params, sql))
    x = f"{tmp} x"
    try:
        n_moved, n_upd, n_relink, n_rc2, n_written, first_line = cur.execute(
            f"SELECT count(*) FILTER (WHERE mv), count(*) FILTER (WHERE upd), count(*) FILTER"
            f" (WHERE relink), count(*) FILTER (WHERE rc2), count(*) FILTER (WHERE mv OR upd"
            f" OR relink OR rc2), min(line) FILTER (WHERE mv OR upd OR relink OR rc2) FROM {x}",
            {}).fetchone()
        specs = records_spec()

        def pair(n: str, old: str, new: str) -> str:
            spec = _spec(n)
            return (f"concat('\"{n}\": [', {iu._json(spec, old)}, ', ', {iu._json(spec, new)},"
                    " ']')")

        if n_moved:  # deals._history: from the deal's stage, its amount, the stage's probability
            first = imp._draw_ids(cur, "deal_stage_history_id_seq", n_moved)
            sql = ("INSERT INTO deal_stage_history (id, deal_id, from_stage_id, to_stage_id,"
                   " changed_at, changed_by, amount, probability) SELECT $h + row_number() OVER"
                   " (ORDER BY line), record_id, t_stage_id, s_id, coalesce(m_at, $now), $by,"
                   f" t_amount, s_prob FROM {x} WHERE mv")
            cur.execute(sql, imp._used({**params, "h": first - 1}, sql))
            stage_spans.refresh(cur, f"SELECT record_id FROM {x} WHERE mv")
        n_audit = n_moved + n_upd + n_relink + n_rc2
        if n_audit:
            moved = [pair("stage_id", "t_stage_id", "s_id")] + [
                f"CASE WHEN t_{m} IS DISTINCT FROM p_{m} THEN {pair(m, f't_{m}', f'p_{m}')} END"
                for m in _MOVE_SETS]
            updated = [f"CASE WHEN x_{m} THEN {pair(m, f'q_{m}', f'v_{m}')} END"
                       for m in fields if m != "stage_id"] or ["NULL"]
            relinked = pair("lost_to_competitor_id", "p_lost_to_competitor_id", "r_id")

            def js(pieces: list[str]) -> str:
                return f"concat('{{', concat_ws(', ', {', '.join(pieces)}), '}}')"

            first = imp._draw_ids(cur, "audit_log_id_seq", n_audit)
            sql = ("INSERT INTO audit_log (id, occurred_at, user_id, username, entity, record_id,"
                   " action, changes, import_id) SELECT $own + row_number() OVER (ORDER BY line,"
                   " k), $now, $by, $uname, 'deals', record_id, action, changes, $i FROM ("
                   f"SELECT line, 0 AS k, record_id, 'move' AS action, {js(moved)} AS changes"
                   f" FROM {x} WHERE mv UNION ALL SELECT line, 1, record_id, 'update',"
                   f" {js(updated)} FROM {x} WHERE upd UNION ALL SELECT line, 2, record_id,"
                   f" 'update', concat('{{', {relinked}, '}}') FROM {x} WHERE relink"
                   # a closed deal's close date (importer._set_closed_on, after the rest)
                   f" UNION ALL SELECT line, 3, record_id, 'update', concat('{{',"
                   f" {pair('closed_on', 't_closed_on', 'p_closed_on')}, '}}') FROM {x}"
                   " WHERE rc2)")
            cur.execute(sql, imp._used({**params, "own": first - 1}, sql))
        # what undo gives back: the fields that differ from the file's, then (a move) what the
        # move set beside, then (a relink of a name not the file's) the name as it was
        befores = [f"CASE WHEN d_{m} THEN concat('\"{m}\": [', {iu._json(specs[m], f'o_{m}')},"
                   " ', null]') END" for m in fields]
        # the file's close date: a change of the row's own (importer._close_date)
        befores.append("CASE WHEN fc OR rc2 THEN concat('\"closed_on\": [',"
                       f" {iu._json(_CLOSED_ON, 't_closed_on')}, ', null]') END")
        for m in ("lost_reason", "lost_to_competitor", "closed_on", "probability",
                  "forecast_category"):  # importer._MOVED
            kept = f" AND NOT d_{m}" if m in fields else ""
            kept += " AND NOT fc" if m == "closed_on" else ""
            befores.append(f"CASE WHEN mv{kept} THEN concat('\"{m}\": [',"
                           f" {iu._json(_spec(m), f't_{m}')}, ', null]') END")
        # (update_deal_in's caller keeps a field the command changed beside: relink's spelling)
        kept = " AND NOT d_lost_to_competitor" if "lost_to_competitor" in fields else ""
        spec = specs["lost_to_competitor"]
        befores.append(f"CASE WHEN relink AND NOT mv{kept} AND"
                       f" {imp._differs_sql(spec, 't_lost_to_competitor', 'r_name')} THEN concat("
                       f"'\"lost_to_competitor\": [', {iu._json(spec, 't_lost_to_competitor')},"
                       " ', null]') END")
        first = imp._draw_ids(cur, "import_records_id_seq", n)
        sql = ("INSERT INTO import_records (id, import_id, line, record_id, action, before,"
               " version_after) SELECT $own + row_number() OVER (ORDER BY line), $i, line,"
               f" record_id, 'update', concat('{{', concat_ws(', ', {', '.join(befores)}), '}}'),"
               " version + CASE WHEN mv THEN 1 ELSE 0 END + CASE WHEN upd THEN 1 ELSE 0 END"
               f" + CASE WHEN rc2 THEN 1 ELSE 0 END FROM {x}")
        cur.execute(sql, imp._used({**params, "own": first - 1}, sql))
        # the deals as the row path leaves them
        ends = {m: f"x.p_{m}" for m in _MOVE_SETS}
        for m in fields:
            if m != "stage_id":
                ends[m] = f"CASE WHEN x.x_{m} THEN x.v_{m} ELSE x.q_{m} END"
        ends["lost_to_competitor"] = "CASE WHEN x.relink THEN x.r_name ELSE x.fin_ltc END"
        ends["lost_to_competitor_id"] = ("CASE WHEN x.relink THEN x.r_id"
                                         " ELSE x.p_lost_to_competitor_id END")
        assigns = [f"{m} = {v}" for m, v in ends.items()]
        if "stage_id" in fields:
            assigns += ["stage_id = CASE WHEN x.mv THEN x.s_id ELSE deals.stage_id END",
                        "pipeline_id = CASE WHEN x.mv THEN x.s_pipeline ELSE deals.pipeline_id"
                        " END",
                        "stage_entered_at = CASE WHEN x.mv THEN coalesce(x.m_at, $now)"
                        " ELSE deals.stage_entered_at END"]
        sql = (f"UPDATE deals SET {', '.join(assigns)}, version = deals.version + CASE WHEN x.mv"
               " THEN 1 ELSE 0 END + CASE WHEN x.upd THEN 1 ELSE 0 END + CASE WHEN x.rc2 THEN 1"
               " ELSE 0 END, updated_at = CASE WHEN x.mv OR x.upd OR x.rc2 THEN $now ELSE"
               " deals.updated_at END, updated_by = CASE WHEN x.mv OR x.upd OR x.rc2 THEN $by"
               f" ELSE deals.updated_by END FROM {x} WHERE deals.id = x.record_id AND"
               " deals.version = x.version AND (x.mv OR x.upd OR x.relink OR x.rc2)")
        updated = cur.execute(sql, imp._used(params, sql)).fetchone()[0]
        if updated != n_written:  # someone saved meanwhile: the transaction rolls back
            raise imp.ImportFileError(_("Row {line}: the record changed since the dry run; run it "
                                        "again.").format(line=first_line))
        if n_moved:  # recounted in their new stages (the deals are written by now)
            stage_reach.refresh(cur, f"SELECT record_id FROM {x} WHERE mv")
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {tmp}")


def undo_moves(cur, user: User, import_id: int, refused: list, keys: list) -> int | None:
    """importer.undo of a deal import that moved stages, set-based, as its row path does each
    record (newest import record first): importer._unmove_deal (deals.move_deal_in back to
    the old stage with the old lost reason and competitor, then the old closed-on date where
    the move set another), then records.update_in with the other old values. Records changed
    or trashed since are added to refused; returns how many were undone. None where the row
    path must: a value or a move it would refuse (it words the refusal)."""
    from crm import deals
    from crm import importer_updates as iu

    entity, specs = deals.DEALS, records_spec()
    editable = {f.name for f in entity.editable}
    plain = [k for k in keys if k not in ("stage_id", "closed_on")]
    if any(k not in editable or (specs[k].type not in iu._TYPES and specs[k].type != "ref")
           or specs[k].create_only or (specs[k].type == "user" and k != "owner_id")
           for k in plain):
        return None
    fields = iu._ordered(entity, plain)
    now, today, by = datetime.now(), date.today(), user.id or None
    params = {"i": import_id, "by": by, "today": today, **imp._CONSTANTS}
    cols, checks = [], []
    named = [("stage_id", specs["stage_id"]), ("closed_on", _CLOSED_ON)] + [
        (n, specs[n]) for n in fields]
    for k, (n, spec) in enumerate(named, 1):  # (each record's JSON parsed once: r.jk, r.jv)
        has = f"coalesce(list_contains(r.jk, '{n}'), false)"
        value, bad = iu._restored(spec, f"r.jv[{k}]")
        if n == "stage_id":
            bad = "false"  # (required: checked below, with the stage)
        if n == "owner_id":  # update_in: an emptied owner becomes the one who undoes
            value = (f"CASE WHEN ({value}) IS NULL AND t.{n} IS NOT NULL"
                     f" THEN CAST($by AS BIGINT) ELSE {value} END")
        cols += [f"{has} AS h_{n}", f"{value} AS n_{n}", f"({has} AND ({bad})) AS b_{n}"]
        checks.append(f"u.b_{n}")
    olds = ", ".join(f"t.{n} AS t_{n}" for n in ("stage_id", "amount", "owner_id")
                     + _MOVE_SETS + tuple(n for n in fields if n not in _MOVE_SETS))
    m_lr = "a.n_lost_reason" if "lost_reason" in fields else "NULL"
    m_ltc = "a.n_lost_to_competitor" if "lost_to_competitor" in fields else "NULL"
    paths = ", ".join(f"'$.\"{n}\"[0]'" for n, _spec in named)
    a = (f"SELECT r.id AS item, r.line, r.record_id, t.version, {olds}, {', '.join(cols)}"
         " FROM (SELECT r.*, json_keys(r.before) AS jk, json_extract(r.before, ["
         f"{paths}]) AS jv FROM import_records r WHERE r.import_id = $i AND r.action <>"
         " 'create') r JOIN deals t ON t.id = r.record_id WHERE"
         " t.version = r.version_after AND t.deleted_at IS NULL")
    a = (f"SELECT a.*, a.h_stage_id AS mv, st.id AS s_id, st.kind AS s_kind, st.pipeline_id"
         f" AS s_pipeline, st.probability AS s_prob, {m_lr} AS m_lr, {m_ltc} AS m_ltc FROM"
         f" ({a}) a LEFT JOIN (SELECT s.* FROM stages s JOIN pipelines pp ON pp.id ="
         " s.pipeline_id WHERE s.deleted_at IS NULL AND pp.deleted_at IS NULL) st"
         " ON st.id = a.n_stage_id")
    rivals = "(SELECT unnest($rt) AS txt, unnest($ri) AS id, unnest($rn) AS name)"
    b = ("SELECT a.*, a.mv AND a.s_kind = 'lost' AS lost,"
         " CASE WHEN a.mv THEN CASE WHEN a.s_kind = 'lost' THEN a.m_lr END"
         " ELSE a.t_lost_reason END AS p_lost_reason,"
         " CASE WHEN a.mv THEN CASE WHEN a.s_kind = 'lost' THEN rm.name END"
         " ELSE a.t_lost_to_competitor END AS p_lost_to_competitor,"
         " CASE WHEN a.mv THEN CASE WHEN a.s_kind = 'lost' THEN rm.id END"
         " ELSE a.t_lost_to_competitor_id END AS p_lost_to_competitor_id,"
         " CASE WHEN a.mv THEN CASE WHEN a.s_kind IN ('won', 'lost') THEN $today END"
         " ELSE a.t_closed_on END AS m_closed_on,"
         " CASE WHEN a.mv THEN NULL ELSE a.t_probability END AS p_probability,"
         " CASE WHEN a.mv THEN NULL ELSE a.t_forecast_category END AS p_forecast_category"
         f" FROM ({a}) a LEFT JOIN {rivals} rm ON rm.txt = a.m_ltc")
    b = ("SELECT b.*, b.mv AND b.h_closed_on AND b.n_closed_on IS DISTINCT FROM b.m_closed_on"
         " AS rc, CASE WHEN b.mv AND b.h_closed_on THEN b.n_closed_on ELSE b.m_closed_on END"
         f" AS p_closed_on FROM ({b}) b")
    c_cols = []
    for n in fields:
        post = f"b.p_{n}" if n in _MOVE_SETS else f"b.t_{n}"
        c_cols += [f"{post} AS q_{n}",
                   f"b.h_{n} AND {imp._differs_sql(specs[n], post, f'b.n_{n}')} AS x_{n}"]
    upd = " OR ".join(f"x_{n}" for n in fields) or "false"
    c = f"SELECT b.*{''.join(', ' + x for x in c_cols)} FROM ({b}) b"
    u = f"SELECT c.*, ({upd}) AS upd FROM ({c}) c"

    def merged(n: str) -> str:  # the deal as update_in would store it
        return f"CASE WHEN u.x_{n} THEN u.n_{n} ELSE u.q_{n} END" if n in fields \
            else f"t.{n}"

    checks += imp._record_sql(entity, merged) or []
    checks += ["(u.mv AND (u.s_id IS NULL OR u.n_stage_id IS NULL OR u.n_stage_id ="
               " u.t_stage_id OR (u.lost AND u.m_lr IS NULL)))"]
    if "owner_id" in fields:
        checks.append("(u.x_owner_id AND u.n_owner_id IS NOT NULL AND u.n_owner_id NOT IN"
                      " (SELECT id FROM users WHERE active))")
    if not user.sees_all:
        checks.append("u.t_owner_id IS DISTINCT FROM $me")
        if "owner_id" in fields:
            checks.append("(u.x_owner_id AND u.n_owner_id IS DISTINCT FROM $me)")
        params["me"] = user.id
    empty = {"rt": [""], "ri": [None], "rn": [None]}
    sql = (f"SELECT count(*) FILTER (WHERE {' OR '.join(checks)}), count(*) FROM ({u}) u"
           " JOIN deals t ON t.id = u.record_id")
    n_bad, n_done = cur.execute(sql, imp._used({**params, **empty}, sql)).fetchone()
    if n_bad:
        return None
    for n, line, record_id in cur.execute(
            "SELECT r.id, r.line, r.record_id FROM import_records r LEFT JOIN deals t"
            " ON t.id = r.record_id WHERE r.import_id = $i AND r.action <> 'create'"
            " AND (t.id IS NULL OR t.version IS DISTINCT FROM r.version_after"
            " OR t.deleted_at IS NOT NULL)", {"i": import_id}).fetchall():
        refused.append((n, {"line": line, "record_id": record_id,
                            "reason": _("changed since the import")}))
    # the competitors the moves back name (made when gone), in the row path's order
    texts = (f"SELECT m_ltc FROM ({a}) a WHERE a.mv AND a.s_kind = 'lost' AND m_ltc IS NOT"
             " NULL GROUP BY m_ltc ORDER BY max(item) DESC")
    rivals_found = []
    for (text,) in cur.execute(texts, imp._used(params, texts)).fetchall():
        rival = deals._rival(cur, user, text)
        if rival["lost_to_competitor_id"] is not None:
            rivals_found.append((text, rival["lost_to_competitor_id"],
                                 rival["lost_to_competitor"]))
    params.update({"rt": [r[0] for r in rivals_found] or [""],
                   "ri": [r[1] for r in rivals_found] or [None],
                   "rn": [r[2] for r in rivals_found] or [None],
                   "now": now, "uname": user.username})
    # computed once (a temporary table: the staging database takes no writes in the
    # import's transaction)
    tmp = f"crm_import_moves_{uuid.uuid4().hex[:16]}"
    sql = f"CREATE TEMP TABLE {tmp} AS {u}"
    cur.execute(sql, imp._used(params, sql))
    x = f"{tmp} x"
    try:
        n_moved, n_rc, n_upd, n_written = cur.execute(
            f"SELECT count(*) FILTER (WHERE mv), count(*) FILTER (WHERE rc), count(*) FILTER"
            f" (WHERE upd), count(*) FILTER (WHERE mv OR upd) FROM {x}",
            {}).fetchone()

        def pair(n: str, old: str, new: str) -> str:
            spec = _spec(n)
            return (f"concat('\"{n}\": [', {iu._json(spec, old)}, ', ', {iu._json(spec, new)},"
                    " ']')")

        def js(pieces: list[str]) -> str:
            return f"concat('{{', concat_ws(', ', {', '.join(pieces)}), '}}')"

        if n_moved:
            first = imp._draw_ids(cur, "deal_stage_history_id_seq", n_moved)
            sql = ("INSERT INTO deal_stage_history (id, deal_id, from_stage_id, to_stage_id,"
                   " changed_at, changed_by, amount, probability) SELECT $h + row_number() OVER"
                   " (ORDER BY item DESC), record_id, t_stage_id, s_id, $now, $by, t_amount,"
                   f" s_prob FROM {x} WHERE mv")
            cur.execute(sql, imp._used({**params, "h": first - 1}, sql))
            stage_spans.refresh(cur, f"SELECT record_id FROM {x} WHERE mv")
        n_audit = n_moved + n_rc + n_upd
        if n_audit:
            moved = [pair("stage_id", "t_stage_id", "n_stage_id")] + [
                f"CASE WHEN t_{m} IS DISTINCT FROM {p} THEN {pair(m, f't_{m}', p)} END"
                for m in _MOVE_SETS for p in [f"m_{m}" if m == "closed_on" else f"p_{m}"]]
            updated = [f"CASE WHEN x_{m} THEN {pair(m, f'q_{m}', f'n_{m}')} END"
                       for m in fields] or ["NULL"]
            first = imp._draw_ids(cur, "audit_log_id_seq", n_audit)
            sql = ("INSERT INTO audit_log (id, occurred_at, user_id, username, entity, record_id,"
                   " action, changes) SELECT $own + row_number() OVER (ORDER BY item DESC, k),"
                   " $now, $by, $uname, 'deals', record_id, action, changes FROM ("
                   f"SELECT item, 0 AS k, record_id, 'move' AS action, {js(moved)} AS changes"
                   f" FROM {x} WHERE mv UNION ALL SELECT item, 1, record_id, 'update',"
                   f" {js([pair('closed_on', 'm_closed_on', 'n_closed_on')])} FROM {x} WHERE rc"
                   f" UNION ALL SELECT item, 2, record_id, 'update', {js(updated)} FROM {x}"
                   " WHERE upd)")
            cur.execute(sql, imp._used({**params, "own": first - 1}, sql))
        ends = {m: f"x.p_{m}" for m in _MOVE_SETS}
        for m in fields:
            ends[m] = f"CASE WHEN x.x_{m} THEN x.n_{m} ELSE x.q_{m} END"
        assigns = [f"{m} = {v}" for m, v in ends.items()] + [
            "stage_id = CASE WHEN x.mv THEN x.s_id ELSE deals.stage_id END",
            "pipeline_id = CASE WHEN x.mv THEN x.s_pipeline ELSE deals.pipeline_id END",
            "stage_entered_at = CASE WHEN x.mv THEN $now ELSE deals.stage_entered_at END"]
        sql = (f"UPDATE deals SET {', '.join(assigns)}, version = deals.version + CASE WHEN x.mv"
               " THEN 1 ELSE 0 END + CASE WHEN x.upd THEN 1 ELSE 0 END, updated_at = $now,"
               f" updated_by = $by FROM {x} WHERE deals.id = x.record_id AND deals.version ="
               " x.version AND (x.mv OR x.upd)")
        updated = cur.execute(sql, imp._used(params, sql)).fetchone()[0]
        if updated != n_written:  # cannot happen inside the transaction; never half an undo
            raise records.ConflictError({}, [])
        if n_moved:  # recounted in their old stages again
            stage_reach.refresh(cur, f"SELECT record_id FROM {x} WHERE mv")
        return n_done
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {tmp}")


# --- an upsert's new deals (crm/importer_updates.py) --------------------------------------

_TYPED = {"text": "VARCHAR", "longtext": "VARCHAR", "email": "VARCHAR", "phone": "VARCHAR",
          "choice": "VARCHAR", "money": "DECIMAL(18, 2)", "integer": "BIGINT",
          "number": "DOUBLE", "bool": "BOOLEAN", "date": "DATE", "datetime": "TIMESTAMP",
          "user": "BIGINT", "ref": "BIGINT"}


def stage_creates(cur, p, table: str) -> None:
    """An upsert's staged rows to create (importer_updates.prepare: the fields the file maps)
    in the shape write() takes: every field of the deal (the unmapped ones their defaults),
    a stage to add by name, the engage and close dates the file has, no product lines."""
    from crm import deals

    cols = {r[0] for r in cur.execute(f"SELECT * FROM {table} LIMIT 0").description}
    params, picked = {}, ["line", "seq", "true AS w"]
    adding = sorted(p.new_stages or ())
    for spec in deals.DEALS.editable:
        if spec.name == "stage_id" and adding and "f_stage_id" in cols:
            # a stage the import adds: by name (write() joins it once added)
            params["nn"] = adding
            picked.append("CASE WHEN f_stage_id >= 0 THEN f_stage_id END AS f_stage_id")
            continue
        if f"f_{spec.name}" in cols:
            picked.append(f"f_{spec.name}")
            continue
        params[f"k_{spec.name}"] = p._update_constants.get(spec.name)
        typed = _TYPED.get(spec.type)
        picked.append(f"CAST($k_{spec.name} AS {typed}) AS f_{spec.name}" if typed
                      else f"$k_{spec.name} AS f_{spec.name}")
    picked.append("CASE WHEN f_stage_id < 0 THEN list_extract($nn, CAST(-f_stage_id AS"
                  " INTEGER)) END AS new_stage" if "nn" in params
                  else "CAST(NULL AS VARCHAR) AS new_stage")
    picked += [f"CAST({'x_created_at' if 'x_created_at' in cols else 'NULL'} AS TIMESTAMP)"
               " AS engaged", f"CAST({'x_closed_on' if 'x_closed_on' in cols else 'NULL'}"
               " AS DATE) AS closed", "pl" if "pl" in cols else "CAST(NULL AS VARCHAR) AS pl"]
    if "pl" in cols:  # product lines (crm/importer_lines.py): write() reads them beside
        base = table[:-len("_w")]
        for suffix in ("_pl", "_lines"):
            cur.execute(f"DROP TABLE IF EXISTS {table}{suffix}")
            cur.execute(f"CREATE TABLE {table}{suffix} AS SELECT * FROM {base}{suffix}")
    sql = f"CREATE TABLE {table}_x AS SELECT {', '.join(picked)} FROM {table}"
    cur.execute(sql, imp._used(params, sql))
    cur.execute(f"DROP TABLE {table}")
    cur.execute(f"ALTER TABLE {table}_x RENAME TO {table.split('.')[1]}")


# --- the engage and close dates of an update's or upsert's deals, set-based ----------------

# importer.PSEUDO's stage history dates: checked for a deal there (importer._check: the close
# date not before the engage date; the row path writes neither on it), written on new deals
DATES = ("created_at", "closed_on")


def date_map(cur, spec, raw: str, index: int, m: str):
    """A date column of the importer's own (the engage or close date) converted per distinct
    text as the row path converts the column (importer._dates): (note, {text: (value,
    error)}), and table m (txt, val, cerr) for the join."""
    texts = [r[0] for r in cur.execute(f"SELECT DISTINCT c{index} FROM {raw}"
                                       f" WHERE c{index} IS NOT NULL").fetchall()]
    return _date_table(cur, spec, texts, m)


def _date_table(cur, spec, texts: list, m: str):
    """The distinct texts of a date column converted as the row path converts it (moments
    from their day's start), into table m (txt, val, cerr): (note, {text: (value, error)})."""
    column = imp._dates(spec, texts)
    found, table = {}, []
    for i, text in enumerate(texts):
        value, error = column.values[i], column.errors.get(i)
        found[text] = (value, error)
        moment = None if value is None else (
            value if isinstance(value, datetime) else datetime.combine(value, datetime.min.time()))
        table.append((text, moment, error is not None))
    cur.execute(f"CREATE TABLE {m} (txt VARCHAR, val TIMESTAMP, cerr BOOLEAN)")
    _fill(cur, m, ["t", "v", "e"], table)
    return column.note, found


def date_sql(dates: list[str], clean: set) -> tuple[list[str], list[str], list[str]]:
    """The dates' columns of importer._fast_plan's typed rows, those its checked rows keep
    (for an upsert's new deals, stage_creates) and the row path's checks of them: a date that
    is none, the close date (else, the file's stage closed, its expected close date) before
    the engage date (importer._check, the same for a deal there and a new one)."""
    selects = [c for n in dates for c in (f"x_{n}", f"xe_{n}")]
    kept = [f"x_{n}" for n in dates]
    checks = [f"xe_{n}" for n in dates]
    if "created_at" in dates:
        closed = "CAST(x_closed_on AS DATE)" if "closed_on" in dates else "NULL"
        if {"stage_id", "expected_close_date"} <= clean:
            closed = (f"coalesce({closed}, CASE WHEN f_stage_id IN (SELECT id FROM stages"
                      " WHERE kind <> 'open') THEN f_expected_close_date END)")
        checks.append(f"coalesce({closed} < CAST(x_created_at AS DATE), false)")
    return selects, kept, checks


# --- stages an update or upsert adds (--create-missing), set-based -------------------------
#
# A stage the import adds (importer._add_stages, in its transaction before the rows) stands in
# the staging as a placeholder id below zero: -1 for the first of the sorted names, and so on.
# The checks see what importer._check sees (a stage that is neither lost nor closed, id 0 in
# its preview); the writes look the stage up by name in the import's pipeline once it exists.

def new_stage_key(adding: list[str], name: str) -> int:
    return -1 - adding.index(name)


def new_stage_ids(cur, p) -> dict[int, int]:
    """{placeholder: the stage's id} of the stages the import added (after _add_stages)."""
    adding = sorted(p.new_stages or ())
    if not adding:
        return {}
    pid = p.pipeline_id or cur.execute("SELECT id FROM pipelines WHERE is_default AND"
                                       " deleted_at IS NULL").fetchone()[0]
    ids = dict(cur.execute("SELECT name, max(id) FROM stages WHERE pipeline_id = $p AND"
                           " deleted_at IS NULL AND name IN (SELECT unnest($n)) GROUP BY name",
                           {"p": pid, "n": adding}).fetchall())
    return {new_stage_key(adding, n): ids[n] for n in adding if n in ids}


def new_stage_params(cur, p) -> dict:
    """$nk, $ni: the placeholders and their stages, for _moved_rows' join."""
    found = new_stage_ids(cur, p)
    return {"nk": list(found) or [0], "ni": list(found.values()) or [None]}
