"""The set-based write of a big CSV file's updates (and upserts), and the set-based undo of
an import's updated records (DuckDB; on PostgreSQL for importer.PG_TABLES' entities: the
matching and the undo's old values computed by the same SQL in the importer's in-process
DuckDB stage over copies of the records, the writes run on PostgreSQL from a TEMP table of
the transaction).

They write what the row path writes (records.update_many for an import, records.update_in
for its undo): the same values, versions, updated_at/by, one audit row a changed record with
its {field: [old, new]}, and import_records holding the old values for undo. Where the row
path would do more than that (automation rules watching the table) or refuse something (a
check over the whole record, an owner who is no longer active), the rows go through the row
path instead, which does it and words the refusal.

Deals (with product lines: crm/importer_lines.py, which replaces them as
deals.replace_lines does; their undo, the old lines back, is set-based here) are written
so too, with update_deal_in's link checks as SQL conditions (_deal_tests); a file naming a
stage or a lost-to competitor by crm/importer_deals.write_updates (move_deal_in's writes),
an upsert's new deals by importer_deals.write; contacts and products are update_many's (a
product's code checked unique in importer._match)."""
from __future__ import annotations

import dataclasses
import uuid
import weakref
from datetime import date, datetime

from crm import dialect, records, rules
from crm.auth import User
from crm.db import Database
from crm.fields import Field
from crm.i18n import gettext as _

_TEXT = {"text", "longtext", "email", "phone", "choice"}
_TYPES = _TEXT | {"money", "number", "integer", "bool", "date", "datetime", "user"}


# --- the import --------------------------------------------------------------------------

def keep(db: Database, p, name: str, constants: dict, counts: dict, rejected: list,
         preview: list) -> None:
    """Remembers a set-based dry run's staged rows ({name}_c, {name}_d) on its plan, with
    what execute() compares the rows matched again with."""
    p.staged_updates = name
    from crm import importer_deals  # (a deal's engage and close dates: checked, not fields;
    # its product lines: crm/importer_lines.py)

    p._update_fields = [p.mapping[h] for h in p.source.headers if p.mapping.get(h)
                        and p.mapping[h] not in importer_deals.DATES
                        and p.mapping[h] != "product_lines"]
    from crm import importer_lines

    if p.entity.table == "deals" and importer_lines.priced(p.mapping):
        p._update_fields.append("amount")  # from the lines (importer._fast_plan's priced)
    # a deal's close date from the file: written on deals it closes or closed already (beside
    # product lines: importer_lines._after_moves puts it after them, as write_row does)
    p._closes = p.entity.table == "deals" and "closed_on" in p.mapping.values()
    p._update_constants = constants  # the values of unmapped fields, for an upsert's creates
    p._update_counts = dict(counts)
    p._update_rejected = {r[0] for r in rejected}
    p._preview_lines = {r[0] for r in preview}  # in p.rows too, but written from the staging
    weakref.finalize(p, drop, db, name)


def drop(db: Database, name: str) -> None:
    from crm import importer

    taken = tuple(f"_tk{n}" for e in importer.entities() for n in e.unique)  # pg_snapshot's
    for suffix in ("", "_c", "_d", "_u", "_w", "_t", "_v", "_pl", "_lines", "_w_pl",
                   "_w_lines") + taken:
        importer._drop_quietly(db, name + suffix)


def dry_run_versions(db: Database, p) -> dict[int, int]:
    """{line: the record's version} of the rows a set-based dry run would update."""
    from crm import importer

    cur = importer._stage_cursor(getattr(p, "_db", None) or db)
    try:
        return dict(cur.execute(f"SELECT line, version FROM {p.staged_updates}_v").fetchall())
    finally:
        cur.close()


def writable(db: Database, p) -> bool:
    """Whether execute() writes the plan's staged updates set-based."""
    from crm import importer, importer_refs

    if not p.staged_updates:
        return False
    entity = p.entity
    if db.dialect != dialect.DUCKDB and entity.table not in importer.PG_TABLES:
        return False
    if entity.table == "deals":  # update_deal_in's checks: _refused, write_updates
        from crm import importer_deals

        return all(n in importer_deals.UPDATE_FIELDS or _custom_link(entity.spec[n])
                   or importer_deals.custom_plain(entity.spec[n]) for n in p._update_fields)
    from crm import importer_complaints

    if not (importer._batchable(entity) or entity.table in importer_refs.UPDATE_TABLES) \
            or not (_plain_update(entity) or importer_complaints.handles(entity)):
        return False  # (tasks: their own create, records.update_in a row)
    if entity.table == "competitors" and "is_us" in p._update_fields and p.mode != "update":
        return False  # our company named by a new row and an updated one: the row path's order
    specs = entity.spec
    return all((specs[n].type in _TYPES or _custom_link(specs[n]) or _survey_link(entity, n))
               and not specs[n].create_only and n != entity.parent for n in _written(p))


_SURVEY_LINKS = ("customer_id", "contact_id", "deal_id", "product_id")


def _survey_link(entity: records.Entity, name: str) -> bool:
    """A survey answer's link, which update_survey_in checks (service._references, in SQL by
    _survey_tests) over the answer as it would be."""
    return entity.table == "surveys" and name in _SURVEY_LINKS


def _drops_parent(entity: records.Entity) -> bool:
    """Whether the entity's updates are records.update_many's (update_in's), which drop the
    parent field (a contact's customer: changed only by its own command): the file's parent
    is matched and checked like the row path's, written by neither, and a row naming another
    one is rejected in the dry run by both (importer.kept_on_update)."""
    return bool(entity.parent) and entity.update_in is None


def _written(p) -> list[str]:
    """The file's fields an update writes (not a parent _drops_parent drops)."""
    entity = p.entity
    return [n for n in p._update_fields if n != entity.parent or not _drops_parent(entity)]


def _custom_link(spec: Field) -> bool:
    """A custom link field (to a record: resolved by name in the dry run, checked live and
    visible at the write, crm/importer_recheck.py)."""
    return spec.custom and spec.type == "ref"


def _plain_update(entity: records.Entity) -> bool:
    """Whether the entity's updates are records.update_in's, or its own command's whose
    checks _refused writes in SQL (a competitor: market._us_taken; a survey answer:
    service._references over the answer as it is, its links being create-only here)."""
    if entity.update_in is None:
        return True
    from crm import market, service

    return entity.update_in in (market.update_competitor_in, service.update_survey_in)


def unstaged(p):
    """The plan with only the rows the row path writes (a set-based plan's rows include the
    first updates, shown in the dry run, which the staging writes)."""
    if not p.staged_updates:
        return p
    return dataclasses.replace(p, rows=[r for r in p.rows if r.line not in p._preview_lines])


def prepare(db: Database, user: User, p) -> None:
    """Matches the staged rows again against the records as they are now ({name}); refuses
    when the counts or the rejected rows are not the dry run's any more (as the row path's
    new plan does). Then stages the rows to create ({name}_w) and the updates with their old
    and new values ({name}_u). Outside the import's transaction: DuckDB writes one database
    a transaction, and the UPDATE checks each record's version anyway."""
    from crm import importer, importer_complaints

    name, entity, fields = p.staged_updates, p.entity, p._update_fields
    pg = db.dialect != dialect.DUCKDB  # the records: a fresh copy of PostgreSQL's ({name}_t)
    # fields the entity's command sets beside the file's (a complaint's resolved date)
    p._derived = importer_complaints.derived(entity, fields)
    cur = importer._stage_cursor(db)
    try:
        for suffix in ("", "_u", "_w"):
            cur.execute(f"DROP TABLE IF EXISTS {name}{suffix}")
        if pg:
            importer.pg_snapshot(db, cur, user, entity, name, p.key, fields)
        counts = importer._match(cur, user, entity, name, p.mode, p.key, fields, pg)
        rejected = {r[0] for r in cur.execute(
            f"SELECT line FROM {name} WHERE action = 'reject'").fetchall()}
        if counts != p._update_counts or rejected != p._update_rejected:
            raise importer.ImportFileError(_("The records changed since the dry run; run it "
                                             "again."))
        # the row path writes its updates with the versions of its dry run: a record saved
        # since (in any field, one the file does not touch too) refuses the import
        line = cur.execute(f"SELECT min(a.line) FROM {name} a JOIN {name}_v v ON v.line ="
                           " a.line WHERE a.action = 'update' AND a.version <> v.version"
                           ).fetchone()[0]
        if line is not None:
            raise importer.ImportFileError(_("Row {line}: the record changed since the dry "
                                             "run; run it again.").format(line=line))
        from crm import importer_kept

        kept = importer_kept.fields(entity, fields)  # a birthday without the kind
        replaced = ", ".join(f"{importer_kept.created(entity, n, p._update_constants)} AS f_{n}"
                             for n in kept)
        cur.execute(f"CREATE TABLE {name}_w AS SELECT c.*"
                    f"{f' REPLACE ({replaced})' if kept else ''}, row_number() OVER"
                    f" (ORDER BY c.line) AS seq FROM {name}_c c JOIN {name} a ON a.line = c.line"
                    " WHERE a.action = 'create'")
        if entity.table == "deals":  # an upsert's new deals, as importer_deals.write takes them
            from crm import importer_deals

            importer_deals.stage_creates(cur, p, f"{name}_w")
        specs = entity.spec
        cols, fields = [], _written(p)  # (matched above with the parent, if any)
        from crm import importer_lines

        staged = dict(zip(fields, importer_lines.staged_values(cur, name, fields, "c", "t")))
        for n in fields + p._derived:
            new = given = staged.get(n) or importer_complaints.given(fields, n)
            if n == "owner_id":  # update_many: an emptied owner becomes the importing user
                new = (f"CASE WHEN c.f_{n} IS NULL AND t.{n} IS NOT NULL"
                       f" THEN CAST($by AS BIGINT) ELSE c.f_{n} END")
            elif n == importer_complaints.DATE and importer_complaints.handles(entity):
                new = importer_complaints.new_date(fields)  # the command's resolved date
            elif n in kept:  # kept by the record's kind, as update_many keeps it
                new = importer_kept.stored(entity, n, given)
            cols += [f"{given} AS f_{n}", f"t.{n} AS o_{n}", f"{new} AS v_{n}"]
        if getattr(p, "_closes", False):  # what importer._close_date reads
            cols += ["c.x_closed_on", "t.closed_on AS o_closed_on", "t.stage_id AS o_stage_now"]
        inner = (f"SELECT a.line, a.record_id, a.version, {', '.join(cols)} FROM {name} a"
                 f" JOIN {name}_c c ON c.line = a.line JOIN {name + '_t' if pg else entity.table} t"
                 " ON t.id = a.record_id WHERE a.action = 'update'")
        flags = []
        for n in fields + p._derived:
            flags.append(f"{importer._differs_sql(specs[n], f'o_{n}', f'f_{n}')} AS d_{n}")
            flags.append(f"{importer._differs_sql(specs[n], f'o_{n}', f'v_{n}')} AS c_{n}")
        changed = " OR ".join(f"c_{n}" for n in fields + p._derived) or "false"
        sql = (f"CREATE TABLE {name}_u AS SELECT *, ({changed}) AS changed FROM"
               f" (SELECT *, {', '.join(flags)} FROM ({inner}))")
        cur.execute(sql, importer._used({"by": user.id or None, "today": date.today()}, sql))
    except BaseException:
        for suffix in ("", "_u", "_w"):
            cur.execute(f"DROP TABLE IF EXISTS {name}{suffix}")
        raise
    finally:
        cur.close()


def write_creates(cur, user: User, p, import_id: int) -> None:
    """An upsert's staged rows to create, by the fast path's own create (importer._fast_write)."""
    from crm import importer

    name = p.staged_updates
    stage = importer._stage_cursor(p._db) if hasattr(p, "_db") else cur
    try:
        n = stage.execute(f"SELECT count(*) FROM {name}_w").fetchone()[0]
    finally:
        if stage is not cur:
            stage.close()
    if not n:
        return
    creates = dataclasses.replace(p, rows=[], staged=f"{name}_w", staged_counts={"create": n},
                                  staged_updates=None)
    creates._constants, creates._write = p._update_constants, ("true", "seq")
    creates._db = getattr(p, "_db", None)
    if p.entity.table == "deals":  # insert_deal's writes: crm/importer_deals.py
        from crm import importer_deals

        # (stages the import added: looked up by name in its pipeline)
        creates._pid = p.pipeline_id or cur.execute(
            "SELECT id FROM pipelines WHERE is_default AND deleted_at IS NULL").fetchone()[0]
        return importer_deals.write(cur, user, creates, import_id)
    importer._fast_write(cur, user, creates, import_id)


def _ordered(entity: records.Entity, names) -> list[str]:
    """Field names in the order of the entity's fields (the order of the row path's dicts)."""
    wanted = set(names)
    return [f.name for f in entity.fields if f.name in wanted]


def write_updates(cur, user: User, p, import_id: int) -> None:
    """The staged updates: one UPDATE ... FROM the staging (version-checked), one INSERT of
    their audit rows and one of their import_records."""
    from crm import importer

    name, entity = p.staged_updates, p.entity
    derived = getattr(p, "_derived", [])
    table, fields = entity.table, _ordered(entity, _written(p) + derived)
    pg = dialect.of(cur) != dialect.DUCKDB
    if pg:  # the staged updates into a TEMP table of the import's transaction
        importer._copy_to_postgresql(cur, p._db, f"SELECT * FROM {name}_u",
                                     "crm_import_upd_u")
        name = "crm_import_upd"
    n, n_changed, first_line = cur.execute(
        f"SELECT count(*), count(*) FILTER (WHERE changed), min(line) FILTER (WHERE changed)"
        f" FROM {name}_u").fetchone()
    if not n:
        return
    if rules.watched(cur, table) or _refused(cur, user, p, name) or _moves_refused(cur, p):
        # rules run on each record's changes, and a refusal is worded by the row path: the
        # staged rows go through it (as one records.update_many; deals: update_deal_in each)
        if entity.update_in is not None or not importer._batchable(entity):
            for row in _rows(cur, p, name):
                importer.write_row(cur, user, p, row, import_id, {})
            return
        importer._update_many(cur, user, dataclasses.replace(p, rows=_rows(cur, p, name)),
                              import_id)
        return
    from crm import importer_deals, importer_lines

    if importer_lines.mapped(p):  # product lines: deals.replace_lines' writes beside
        return importer_lines.write_updates(cur, user, p, import_id)
    if importer_deals.moves(p):  # a new stage, a lost-to name: deals.move_deal_in's writes
        return importer_deals.write_updates(cur, user, p, import_id)
    specs, now, by = entity.spec, datetime.now(), user.id or None
    if n_changed:
        moved = [f for f in fields if cur.execute(
            f"SELECT bool_or(c_{f}) FROM {name}_u").fetchone()[0]]
        assigns = ", ".join(f"{f} = CASE WHEN u.c_{f} THEN u.v_{f} ELSE {table}.{f} END"
                            for f in moved)
        updated = cur.execute(
            f"UPDATE {table} SET {assigns}, version = {table}.version + 1, updated_at = $now,"
            f" updated_by = $by FROM {name}_u u WHERE {table}.id = u.record_id"
            f" AND {table}.version = u.version AND u.changed",
            {"now": now, "by": by}).fetchone()[0]
        if updated != n_changed:  # someone saved meanwhile: the transaction rolls back
            raise importer.ImportFileError(_("Row {line}: the record changed since the dry "
                                             "run; run it again.").format(line=first_line))
        pieces = [f"CASE WHEN c_{f} THEN concat('\"{f}\": [', {_json(specs[f], f'o_{f}', pg)},"
                  f" ', ', {_json(specs[f], f'v_{f}', pg)}, ']') END" for f in fields]
        first = importer._draw_ids(cur, "audit_log_id_seq", n_changed)
        cur.execute(
            "INSERT INTO audit_log (id, occurred_at, user_id, username, entity, record_id,"
            " action, changes, import_id) SELECT $own + row_number() OVER (ORDER BY line),"
            f" $now, $by, $uname, $table, record_id, 'update', concat('{{',"
            f" concat_ws(', ', {', '.join(pieces)}), '}}'), $i FROM {name}_u WHERE changed",
            {"own": first - 1, "now": now, "by": by, "uname": user.username, "table": table,
             "i": import_id})
    # before: the fields update_many changed; where the row path writes a row at a time
    # (deals, tasks) the fields that differ from the file's, which its import record holds
    flag = "d" if entity.update_in is not None or not importer._batchable(entity) else "c"
    olds = [f"CASE WHEN {flag}_{f} THEN concat('\"{f}\": [', {_json(specs[f], f'o_{f}', pg)},"
            " ', null]') END" for f in fields]
    some = "changed" if flag == "c" else " OR ".join(f"d_{f}" for f in fields)
    from crm import importer_complaints

    if importer_complaints.handles(entity):  # the row path's before: after the file's
        # fields, what the command set beside them (the resolved date)
        d = importer_complaints.DATE
        olds.append(f"CASE WHEN c_{d} AND NOT d_{d} THEN concat('\"{d}\": [',"
                    f" {_json(specs[d], f'o_{d}', pg)}, ', null]') END")
        some += f" OR c_{d}"
    first = importer._draw_ids(cur, "import_records_id_seq", n)
    cur.execute(
        "INSERT INTO import_records (id, import_id, line, record_id, action, before,"
        " version_after) SELECT $own + row_number() OVER (ORDER BY line), $i, line, record_id,"
        f" 'update', CASE WHEN {some} THEN concat('{{', concat_ws(', ', {', '.join(olds)}),"
        " '}') END, version + CASE WHEN changed THEN 1 ELSE 0 END FROM " + f"{name}_u",
        {"own": first - 1, "i": import_id})


def _moves_refused(cur, p) -> bool:
    """Deals: a move that deals.move_deal_in would refuse (the row path words it)."""
    if p.entity.table != "deals":
        return False
    from crm import importer_deals

    return importer_deals.refused_moves(cur, p)


def _refused(cur, user: User, p, name: str) -> bool:
    """Whether records.update_many would refuse some staged row at the write: the entity's
    check over the whole record as it would be stored, an owner given who is not an active
    user (or, for a rep, not themselves)."""
    from crm import importer

    entity, fields = p.entity, _written(p)
    params: dict = {"today": date.today()}
    tests = []

    from crm import importer_complaints, importer_kept

    complaints = importer_complaints.handles(entity)
    kept = importer_kept.fields(entity, fields)

    def merged(n: str) -> str:  # update_many: the record with the fields the plan changes
        if complaints and n == importer_complaints.DATE or n in kept:
            return f"u.v_{n}"  # as the command sets it, as update_many keeps it
        return f"CASE WHEN u.d_{n} THEN u.f_{n} ELSE u.o_{n} END" if n in fields else f"t.{n}"

    found = importer._record_sql(entity, merged)
    if found is None:
        return True  # a check only Python knows: the row path
    tests += found
    if "owner_id" in fields:
        tests.append("(u.c_owner_id AND u.v_owner_id IS NOT NULL AND u.v_owner_id NOT IN"
                     " (SELECT id FROM users WHERE active))")
        if not user.sees_all:
            tests.append("(u.d_owner_id AND u.v_owner_id IS DISTINCT FROM $me)")
            params["me"] = user.id
    if not user.sees_all:  # auth.require: a rep changes their own records alone (a shared
        # entity's records are matched for them too)
        tests.append("(t.owner_id IS DISTINCT FROM $me)" if entity.owned else "true")
        params["me"] = user.id
    for n in entity.unique:  # records._check_unique: a code another live record has
        if n in fields:
            tests.append(f"(u.c_{n} AND u.v_{n} IS NOT NULL AND EXISTS (SELECT 1 FROM"
                         f" {entity.table} x WHERE x.deleted_at IS NULL AND lower(x.{n}) ="
                         f" lower(u.v_{n}) AND x.id <> u.record_id))")
    if entity.table == "deals":
        tests += _deal_tests(user, merged, params, fields)
    if entity.table == "competitors" and "is_us" in fields:
        # market._us_taken: a row that makes one ours while another live one is, or two such
        tests.append("(u.d_is_us AND u.f_is_us AND (EXISTS (SELECT 1 FROM competitors x WHERE"
                     " x.is_us AND x.deleted_at IS NULL AND x.id <> u.record_id) OR (SELECT"
                     f" count(*) FROM {name}_u y WHERE y.d_is_us AND y.f_is_us) > 1))")
    if entity.table == "surveys":
        tests += _survey_tests(user, params, fields, merged)
    if complaints:
        tests += importer_complaints.tests(user, params, fields)
    from crm import importer_recheck  # records._check_links over the changed custom links

    tests += importer_recheck.custom_links(user, entity, {f"f_{n}" for n in fields},
                                           "CASE WHEN u.c_{n} THEN u.v_{n} END")
    if not user.sees_all:
        params["me"] = user.id
    if not tests:
        return False
    sql = (f"SELECT count(*) FROM {name}_u u JOIN {entity.table} t ON t.id = u.record_id"
           f" WHERE {' OR '.join(tests)}")
    return bool(cur.execute(sql, importer._used(params, sql)).fetchone()[0])


def _deal_tests(user: User, merged, params: dict, fields: list[str]) -> list[str]:
    """What deals.update_deal_in refuses or does beyond records.update_in, for the rows
    given to it (merged(n): a field of the deal as it would be): _check_links (the customer and
    contact live and visible to the user, the contact working for the customer) and
    relink_competitor linking a lost-to name anew."""
    from crm import customers

    tests = []
    for n, entity in (("customer_id", customers.CUSTOMERS), ("contact_id", customers.CONTACTS)):
        where, visible = records.visible(entity, user)
        where = where.replace("$", f"$v{n[:2]}_")
        params.update({f"v{n[:2]}_{k}": v for k, v in visible.items()})
        tests.append(f"({merged(n)} IS NOT NULL AND {merged(n)} NOT IN (SELECT t.id FROM"
                     f" {entity.table} t WHERE {where}))")
    tests.append(f"({merged('contact_id')} IS NOT NULL AND {merged('customer_id')} IS NOT NULL"
                 f" AND (SELECT x.customer_id FROM contacts x WHERE x.id ="
                 f" {merged('contact_id')}) IS DISTINCT FROM {merged('customer_id')})")
    tests.append("(t.lost_to_competitor_id IS DISTINCT FROM (SELECT min(x.id) FROM competitors x"
                 " WHERE x.deleted_at IS NULL AND NOT x.is_us AND lower(trim(x.name)) ="
                 " lower(trim(t.lost_to_competitor))))")
    # the rows the row path gives update_deal_in: a field differs from the file's
    given = " OR ".join(f"u.d_{n}" for n in fields) or "false"
    return [f"(({given}) AND {t})" for t in tests]


def _survey_tests(user: User, params: dict, fields: list[str], merged) -> list[str]:
    """service._references, which update_survey_in runs over the answer as it would be
    (merged(n): its field n so): the customer live and visible to the user, the contact and
    deal live and the customer's, the product live; for the rows given to it (a field differs
    from the file's)."""
    mine = "true" if user.sees_all else "c.owner_id = $me"
    params["me"] = user.id
    customer = merged("customer_id")
    tests = [f"NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = {customer} AND"
             f" c.deleted_at IS NULL AND {mine})"]
    for n, table in (("contact_id", "contacts"), ("deal_id", "deals")):
        tests.append(f"({merged(n)} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {table} x WHERE"
                     f" x.id = {merged(n)} AND x.deleted_at IS NULL AND x.customer_id ="
                     f" {customer}))")
    tests.append(f"({merged('product_id')} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM products x"
                 f" WHERE x.id = {merged('product_id')} AND x.deleted_at IS NULL))")
    given = " OR ".join(f"u.d_{n}" for n in fields) or "false"
    return [f"(({given}) AND {t})" for t in tests]


def _rows(cur, p, name: str) -> list:
    """The staged updates as the row path's rows (values as the file gives them; changes:
    the fields whose value differs, as the plan has them)."""
    from crm import importer

    # (in the entity's field order, as the row path's plan has its changes)
    fields = _ordered(p.entity, _written(p))
    out, added = [], {}
    if p.entity.table == "deals":  # a stage the import added, for its placeholder
        from crm import importer_deals

        added = importer_deals.new_stage_ids(cur, p)
    closes = getattr(p, "_closes", False)  # a deal's close date from the file
    header = next((h for h in p.source.headers if p.mapping.get(h) == "closed_on"), None)
    closed = {r[0] for r in cur.execute("SELECT id FROM stages WHERE kind <> 'open'"
                                        ).fetchall()} if closes else set()
    dated = ", x_closed_on, o_closed_on, o_stage_now" if closes else ""
    for found in cur.execute(
            f"SELECT line, record_id, version, {', '.join(f'f_{n}, o_{n}, d_{n}' for n in fields)}"
            f"{dated} FROM {name}_u ORDER BY line").fetchall():
        line, record_id, version = found[:3]
        values, changes = {}, {}
        for i, n in enumerate(fields):
            new, old, differs = found[3 + 3 * i:6 + 3 * i]
            if n == "stage_id" and new is not None and new < 0:
                new = added[new]
            values[n] = new
            if differs:
                changes[n] = (old, new)
        row = importer.Row(line=line, action="update", values=values, record_id=record_id,
                           version=version, changes=changes)
        if closes:
            file_closed, closed_now, stage_now = found[3 + 3 * len(fields):]
            if file_closed is not None:
                row.extra["closed_on"] = importer._day(file_closed)
            importer._close_date(row, {"id": record_id, "stage_id": stage_now,
                                       "closed_on": closed_now}, {}, closed, header)
        out.append(row)
    from crm import importer_lines

    importer_lines.attach(cur, p, name, out)
    return out


def _json(spec: Field, v: str, pg: bool = False) -> str:
    """The value's JSON text as audit._payload writes it (json.dumps of audit._plain)."""
    t = spec.type
    if t in _TEXT:
        return f"coalesce(CAST(to_json({v}) AS VARCHAR), 'null')"
    if t in ("money", "number") and pg:  # Python's repr of the float: 1500.0, 1234.5
        value = (f"CASE WHEN {v} = trunc({v}) AND abs({v}) < 1e16 THEN"
                 f" concat(CAST(CAST({v} AS BIGINT) AS VARCHAR), '.0')"
                 f" ELSE CAST(CAST({v} AS DOUBLE PRECISION) AS VARCHAR) END")
    elif t in ("money", "number"):
        value = f"CAST(CAST({v} AS DOUBLE) AS VARCHAR)"
    elif t in ("integer", "user", "ref"):
        value = f"CAST({v} AS VARCHAR)"
    elif t == "bool":
        value = f"CASE WHEN {v} THEN 'true' ELSE 'false' END"
    elif t == "date":
        value = f"concat('\"', CAST({v} AS VARCHAR), '\"')"
    elif pg:  # datetime: isoformat, with microseconds only when there are some
        micro = f"(CAST(extract(microseconds FROM {v}) AS BIGINT) % 1000000)"
        value = (f"concat('\"', to_char({v}, 'YYYY-MM-DD\"T\"HH24:MI:SS'), CASE WHEN"
                 f" {micro} <> 0 THEN concat('.', lpad(CAST({micro} AS VARCHAR), 6, '0'))"
                 " END, '\"')")
    else:
        value = (f"concat('\"', strftime({v}, '%Y-%m-%dT%H:%M:%S'), CASE WHEN"
                 f" microsecond({v}) % 1000000 <> 0 THEN concat('.', lpad(CAST(microsecond({v})"
                 f" % 1000000 AS VARCHAR), 6, '0')) END, '\"')")
    return f"CASE WHEN {v} IS NULL THEN 'null' ELSE {value} END"


# --- undo --------------------------------------------------------------------------------

def undo_updates(cur, user: User, entity: records.Entity, import_id: int,
                 refused: list) -> int | None:
    """Gives the import's updated records their old values back, set-based, as the row path
    (records.update_in a record) does: records changed or trashed since are added to refused
    (id, {line, record_id, reason}); returns how many were undone. None when the row path
    must do it: on PostgreSQL an entity not in importer.PG_TABLES, rules watch
    the table, fields or checks only it knows, or a record it would refuse (it then words the
    refusal)."""
    from crm import importer

    pg = isinstance(cur, dialect.PgCursor)
    if pg and entity.table not in importer.PG_TABLES:
        return None
    table = entity.table
    n_items = cur.execute("SELECT count(*) FROM import_records WHERE import_id = $i AND"
                          " action <> 'create'", {"i": import_id}).fetchone()[0]
    if not n_items:
        return 0
    from crm import importer_refs

    # the row path undoes every entity by records.update_in (deals, competitors, complaints
    # too: their commands' side effects are in the import records' before)
    from crm import importer_complaints

    deals = entity.table == "deals"
    plain = _plain_update(entity) or importer_complaints.handles(entity)
    if (not deals and (not plain or not (
            importer._batchable(entity) or entity.table in importer_refs.UPDATE_TABLES)
            or importer._fast_refusal(entity, {}, "update", None) is not None)) \
            or importer._sql_check(entity) is None or rules.watched(cur, table) \
            or not (user.sees_all or entity.owned):
        return None
    keys = [r[0] for r in cur.execute(
        "SELECT DISTINCT json_object_keys(CAST(before AS JSON)) FROM import_records"
        " WHERE import_id = $i AND action <> 'create' AND before IS NOT NULL" if pg else
        "SELECT DISTINCT unnest(json_keys(before)) FROM import_records WHERE import_id = $i"
        " AND action <> 'create' AND before IS NOT NULL", {"i": import_id}).fetchall()]
    lines = deals and "product_lines" in keys  # the deals' old lines, as replace_lines
    # writes them after update_in (crm/importer_lines.py)
    if lines:
        keys = [k for k in keys if k != "product_lines"]
    closes = False  # a closed deal's close date the file changed (importer._set_closed_on)
    if deals and "closed_on" in keys and cur.execute(
            "SELECT count(*) FROM import_records WHERE import_id = $i AND action <> 'create'"
            " AND before IS NOT NULL AND list_contains(json_keys(before), 'closed_on') AND NOT"
            " list_contains(json_keys(before), 'stage_id')", {"i": import_id}).fetchone()[0]:
        if "stage_id" in keys or pg:
            return None  # beside moves back: the row path gives it back
        closes = True  # given back after the fields and lines, set-based (_undo)
        keys = [k for k in keys if k != "closed_on"]
    if deals and "stage_id" in keys:  # moved back as deals.move_deal_in moves them
        if lines:  # and the old lines back after it (crm/importer_lines.py)
            from crm import importer_lines

            return importer_lines.undo_moves(cur, user, import_id, refused, keys)
        from crm import importer_deals

        return importer_deals.undo_moves(cur, user, import_id, refused, keys)
    specs = entity.spec
    editable = {f.name for f in entity.editable}
    if any(k not in editable or (specs[k].type not in _TYPES and not (
            deals and specs[k].type == "ref") and not _custom_link(specs[k])
            and not _survey_link(entity, k))
           or specs[k].create_only
           or k == entity.parent or (specs[k].type == "user" and k != "owner_id")
           for k in keys):
        return None  # product lines, links, fields the row path drops or checks itself
    fields = _ordered(entity, keys)
    if pg and lines:
        return None
    params = {"i": import_id, "by": user.id or None, "today": date.today(),
              **importer._CONSTANTS}
    if pg:  # computed in the stage (DuckDB's JSON), from copies made in this transaction
        stage = importer._stage_cursor(None)
        try:
            return _undo_on_postgresql(cur, stage, user, entity, import_id, refused, fields,
                                       params)
        finally:
            stage.close()
    return _undo(cur, cur, user, entity, fields, params, refused, "import_records", table,
                 "users", lines=lines, closes=closes)


def _undo_on_postgresql(cur, stage, user: User, entity: records.Entity, import_id: int,
                        refused: list, fields: list[str], params: dict) -> int | None:
    """undo_updates on PostgreSQL: the import's records of updates, the records they name,
    the live records of a unique value they restore and the active users copied into the
    stage, where _undo's SQL reads them; its writes run on PostgreSQL (cur)."""

    from crm import importer

    table = entity.table
    importer._attach(stage)
    name = f"{importer._STAGE}.u{uuid.uuid4().hex[:16]}"
    made = [f"{name}_r", f"{name}_t", f"{name}_users"] + [f"{name}_x{n}"
                                                          for n in entity.unique]
    mine = ("SELECT record_id FROM import_records WHERE import_id = $i"
            " AND action <> 'create'")
    try:
        importer.pg_into_stage(cur, stage, "SELECT id, import_id, line, record_id, action,"
                               " before, version_after FROM import_records WHERE"
                               " import_id = $i AND action <> 'create'", params, made[0])
        importer.pg_into_stage(cur, stage, f"SELECT t.* FROM {table} t WHERE t.id IN ({mine})",
                               params, made[1])
        importer.pg_into_stage(cur, stage, "SELECT id, active FROM users", {}, made[2])
        links = {}  # the records the restored custom links name (records._check_links)
        for n in fields:
            spec = entity.spec[n]
            if not _custom_link(spec):
                continue
            links[n] = f"{name}_l{n}"
            made.append(links[n])
            owner = ", x.owner_id" if spec.ref in records.OWNED else ""
            importer.pg_into_stage(
                cur, stage, f"SELECT x.id, x.deleted_at{owner} FROM {spec.ref} x WHERE x.id IN"
                f" (SELECT CAST(CAST(before AS JSON) -> '{n}' ->> 0 AS BIGINT) FROM"
                " import_records WHERE import_id = $i AND action <> 'create')", params,
                links[n])
        unique = {}
        for n in entity.unique:
            if n in fields:
                unique[n] = f"{name}_x{n}"
                importer.pg_into_stage(
                    cur, stage, f"SELECT x.id, x.{n}, x.deleted_at FROM {table} x WHERE"
                    f" x.deleted_at IS NULL AND lower(x.{n}) IN (SELECT lower(CAST(before AS"
                    f" JSON) -> '{n}' ->> 0) FROM import_records WHERE import_id = $i AND"
                    " action <> 'create')", params, unique[n])
        return _undo(cur, stage, user, entity, fields, params, refused, made[0], made[1],
                     made[2], unique, links=links)
    finally:
        for t in made:
            stage.execute(f"DROP TABLE IF EXISTS {t}")


def _undo(cur, stage, user: User, entity: records.Entity, fields: list[str], params: dict,
          refused: list, items: str, records_table: str, users: str,
          unique: dict | None = None, lines: bool = False,
          links: dict | None = None, closes: bool = False) -> int | None:
    """undo_updates' work: reads the import's records of updates (items), the records
    (records_table) and the users through stage (on DuckDB the same cursor as cur, beside
    PostgreSQL the stage's copies), writes through cur."""
    from crm import importer

    table, specs = entity.table, entity.spec
    pg = stage is not cur
    cols, checks = [], []
    for n in fields:
        spec = specs[n]
        has = f"json_exists(r.before, '$.\"{n}\"')"
        value, bad = _restored(spec, f"json_extract(r.before, '$.\"{n}\"[0]')")
        if n == "owner_id":  # update_in: an emptied owner becomes the one who undoes
            value = (f"CASE WHEN ({value}) IS NULL AND t.{n} IS NOT NULL"
                     f" THEN CAST($by AS BIGINT) ELSE {value} END")
        cols += [f"{has} AS h_{n}", f"{value} AS n_{n}", f"t.{n} AS o_{n}",
                 f"({has} AND ({bad})) AS b_{n}"]
        checks.append(f"u.b_{n}")
    owner = "t.owner_id" if entity.owned else "CAST(NULL AS BIGINT)"
    if lines:  # the deal's old product lines to restore (deals.replace_lines)
        cols.append("json_exists(r.before, '$.product_lines') AS h_lines")
    if closes:  # a closed deal's old close date (importer._set_closed_on, after the rest)
        closed = "json_extract_string(r.before, '$.closed_on[0]')"
        cols += ["json_exists(r.before, '$.closed_on') AS h_closed",
                 f"TRY_CAST({closed} AS DATE) AS n_closed", "t.closed_on AS o_closed",
                 f"({closed} IS NOT NULL AND TRY_CAST({closed} AS DATE) IS NULL) AS b_closed"]
        checks.append("u.b_closed")
    base = (f"SELECT r.id AS item, r.line, r.record_id, t.version, {owner} AS owner"
            f"{''.join(', ' + c for c in cols)} FROM {items} r JOIN {records_table} t"
            " ON t.id = r.record_id WHERE r.import_id = $i AND r.action <> 'create'"
            " AND t.version = r.version_after AND t.deleted_at IS NULL")
    flags = [f"(h_{n} AND {importer._differs_sql(specs[n], f'o_{n}', f'n_{n}')}) AS c_{n}"
             for n in fields]
    changed = " OR ".join(f"c_{n}" for n in fields) or "false"
    u = (f"SELECT *, ({changed}) AS changed FROM (SELECT *{''.join(', ' + f for f in flags)}"
         f" FROM ({base}))")

    # what update_in would refuse: a value it would not take, the record's own check over the
    # record as it would be, an owner not active (or, for a rep, a record not theirs)
    def merged(n: str) -> str:
        return f"CASE WHEN u.h_{n} THEN u.n_{n} ELSE t.{n} END" if n in fields else f"t.{n}"

    checks += importer._record_sql(entity, merged)
    for n in entity.unique:  # records._check_unique: a code another live record has now
        if n in fields:
            others = (unique or {}).get(n, table)
            checks.append(f"(u.h_{n} AND u.n_{n} IS NOT NULL AND EXISTS (SELECT 1 FROM {others} x"
                          f" WHERE x.deleted_at IS NULL AND lower(x.{n}) = lower(u.n_{n})"
                          " AND x.id <> u.record_id))")
    if "owner_id" in fields:
        checks.append("(u.c_owner_id AND u.n_owner_id IS NOT NULL AND u.n_owner_id NOT IN"
                      f" (SELECT id FROM {users} WHERE active))")
    from crm import importer_recheck  # update_in's _check_links over restored custom links

    checks += importer_recheck.custom_links(user, entity, {f"f_{n}" for n in fields},
                                            "CASE WHEN u.c_{n} THEN u.n_{n} END", links)
    if not user.sees_all:
        checks.append("u.owner IS DISTINCT FROM $me")
        if "owner_id" in fields:
            checks.append("(u.c_owner_id AND u.n_owner_id IS DISTINCT FROM $me)")
        params["me"] = user.id
    sql = (f"SELECT count(*) FILTER (WHERE {' OR '.join(checks) or 'false'}), count(*),"
           f" count(*) FILTER (WHERE u.changed) FROM ({u}) u JOIN {records_table} t"
           " ON t.id = u.record_id")
    n_bad, n_done, n_changed = stage.execute(sql, importer._used(params, sql)).fetchone()
    if n_bad:
        return None
    old_lines = None
    if lines:
        from crm import importer_lines

        old_lines = importer_lines.undo_lines(items)
        sql = (f"SELECT count(*) FILTER (WHERE l.bad) FROM ({old_lines}) l"
               f" JOIN ({u}) u ON u.item = l.item")
        bad = stage.execute(sql, importer._used(params, sql)).fetchone()[0]
        if bad:
            return None  # a line replace_lines would refuse: the row path words it
        n_lines = stage.execute(f"SELECT count(*) FROM ({u}) u WHERE u.h_lines",
                                importer._used(params, u)).fetchone()[0]
    for n, line, record_id in stage.execute(
            f"SELECT r.id, r.line, r.record_id FROM {items} r LEFT JOIN {records_table} t"
            " ON t.id = r.record_id WHERE r.import_id = $i AND r.action <> 'create'"
            " AND (t.id IS NULL OR t.version IS DISTINCT FROM r.version_after"
            " OR t.deleted_at IS NOT NULL)", {"i": params["i"]}).fetchall():
        refused.append((n, {"line": line, "record_id": record_id,
                            "reason": _("changed since the import")}))
    n_closed = stage.execute(f"SELECT count(*) FROM ({u}) u WHERE u.h_closed",
                             importer._used(params, u)).fetchone()[0] if closes else 0
    if not n_changed and not (lines and n_lines) and not n_closed:
        return n_done
    now, by = datetime.now(), user.id or None
    if pg:  # the rows to write into a TEMP table of PostgreSQL's transaction
        sql = f"SELECT * FROM ({u}) WHERE changed"
        staged = f"{records_table}_w"
        stage.execute(f"CREATE TABLE {staged} AS {sql}", importer._used(params, sql))
        try:
            importer._copy_to_postgresql(cur, None, f"SELECT * FROM {staged}", "crm_undo_u")
        finally:
            stage.execute(f"DROP TABLE IF EXISTS {staged}")
        u = "SELECT * FROM crm_undo_u"
    made = None
    if lines or closes:  # (DuckDB) the rows as they are before any write, with each item's
        # audit slot: the row path writes update_in's audit row, then replace_lines', then
        # _set_closed_on's (newest item first)
        from crm import importer_lines

        made = f"crm_undo_lines_{uuid.uuid4().hex[:16]}"
        rows = "CAST(x.changed AS INTEGER)" + (
            " + CAST(coalesce(x.h_lines, false) AS INTEGER)" if lines else "") + (
            " + CAST(x.h_closed AS INTEGER)" if closes else "")
        slots = (f"coalesce(sum({rows}) OVER (ORDER BY x.item DESC ROWS BETWEEN UNBOUNDED"
                 " PRECEDING AND 1 PRECEDING), 0)")
        sql = (f"CREATE TEMP TABLE {made} AS SELECT x.*, {slots} AS slot, c.text AS lines_was,"
               f" n.text AS lines_now FROM ({u}) x LEFT JOIN ("
               + importer_lines.current_sql(f"SELECT record_id FROM ({u}) WHERE h_lines")
               + ") c ON c.deal_id = x.record_id AND x.h_lines LEFT JOIN (SELECT item,"
               f" string_agg({importer_lines.text_sql('q_text', 'description')}, '; '"
               f" ORDER BY pos) AS text FROM ({old_lines}) GROUP BY item) n ON n.item = x.item"
               ) if lines else f"CREATE TEMP TABLE {made} AS SELECT x.*, {slots} AS slot FROM ({u}) x"
        cur.execute(f"DROP TABLE IF EXISTS {made}")
        cur.execute(sql, importer._used(params, sql))
        u = f"SELECT * FROM {made}"
    try:
        _undo_writes(cur, specs, table, fields, params, u, old_lines, user, now, by, pg,
                     n_changed, n_lines if lines else 0, n_closed)
    finally:
        if made:
            cur.execute(f"DROP TABLE IF EXISTS {made}")
    return n_done


def _undo_writes(cur, specs, table: str, fields: list[str], params: dict, u: str,
                 old_lines: str | None, user: User, now, by, pg: bool, n_changed: int,
                 n_lines: int, n_closed: int = 0) -> None:
    """_undo's writes: the audit rows, the records' old values, and (old_lines) the deals'
    old product lines as deals.replace_lines writes them after update_in."""
    from crm import importer

    # the audit rows first (they read the values as they are), numbered in the row path's
    # order: the newest import record first
    pieces = [f"CASE WHEN c_{n} THEN concat('\"{n}\": [', {_json(specs[n], f'o_{n}', pg)},"
              f" ', ', {_json(specs[n], f'n_{n}', pg)}, ']') END" for n in fields]
    first = importer._draw_ids(cur, "audit_log_id_seq", n_changed + n_lines + n_closed)
    slot = "slot" if old_lines or n_closed else "row_number() OVER (ORDER BY item DESC) - 1"
    head = ("INSERT INTO audit_log (id, occurred_at, user_id, username, entity, record_id,"
            f" action, changes) SELECT $own + {slot} + 1, $now, $uid, $uname, $table, record_id,")
    names = {**params, "own": first - 1, "now": now, "uid": by, "uname": user.username,
             "table": table}
    if n_changed:
        sql = (f"{head} 'update', concat('{{', concat_ws(', ', {', '.join(pieces)}), '}}')"
               f" FROM ({u}) x WHERE changed")
        cur.execute(sql, importer._used(names, sql))
    if n_lines:  # replace_lines: {"product_lines": [the lines' text before, after]}
        sql = (f"{head} 'update', concat('{{\"product_lines\": [', coalesce(CAST(to_json("
               "lines_was) AS VARCHAR), 'null'), ', ', coalesce(CAST(to_json(lines_now) AS"
               f" VARCHAR), 'null'), ']}}') FROM ({u}) x WHERE h_lines")
        cur.execute(sql.replace("$own + slot + 1", "$own + slot + CAST(changed AS INTEGER) + 1"),
                    importer._used(names, sql))
    if n_changed:
        assigns = ", ".join(f"{n} = CASE WHEN u.c_{n} THEN u.n_{n} ELSE {table}.{n} END"
                            for n in fields)
        sql = (f"UPDATE {table} SET {assigns}, version = {table}.version + 1,"
               f" updated_at = $now, updated_by = $uid FROM ({u}) u WHERE"
               f" {table}.id = u.record_id AND u.changed AND {table}.version = u.version")
        updated = cur.execute(sql, importer._used({**params, "now": now, "uid": by}, sql)
                              ).fetchone()[0]
        if updated != n_changed:  # cannot happen inside the transaction; never half an undo
            raise records.ConflictError({}, [])
    if n_lines:
        _undo_lines(cur, params, u, old_lines, now, by, n_lines)
    if n_closed:  # importer._set_closed_on: the old date, audited, one more version
        from crm import importer_deals

        lined = " + CAST(coalesce(h_lines, false) AS INTEGER)" if n_lines else ""
        sql = (f"{head} 'update', concat('{{\"closed_on\": [',"
               f" {_json(importer_deals._CLOSED_ON, 'o_closed')}, ', ',"
               f" {_json(importer_deals._CLOSED_ON, 'n_closed')}, ']}}') FROM ({u}) x"
               " WHERE h_closed")
        sql = sql.replace("$own + slot + 1", f"$own + slot + CAST(changed AS INTEGER){lined} + 1")
        cur.execute(sql, importer._used(names, sql))
        sql = (f"UPDATE deals SET closed_on = u.n_closed, version = deals.version + 1,"
               f" updated_at = $now, updated_by = $uid FROM ({u}) u WHERE deals.id = u.record_id"
               f" AND u.h_closed AND deals.version = u.version + CAST(u.changed AS INTEGER)"
               f"{lined.replace('h_lines', 'u.h_lines')}")
        if cur.execute(sql, importer._used({**params, "now": now, "uid": by}, sql)
                       ).fetchone()[0] != n_closed:
            raise records.ConflictError({}, [])


def _undo_lines(cur, params: dict, u: str, old_lines: str, now, by, n_lines: int) -> None:
    """_undo_writes' deals.replace_lines: the old lines back, one more version."""
    from crm import importer

    cur.execute(f"DELETE FROM deal_products WHERE deal_id IN (SELECT record_id FROM ({u})"
                " WHERE h_lines)")
    n = cur.execute(f"SELECT count(*) FROM ({old_lines}) l JOIN ({u}) x ON x.item = l.item"
                    " WHERE x.h_lines", importer._used(params, old_lines)).fetchone()[0]
    if n:
        own = importer._draw_ids(cur, "deal_products_id_seq", n)
        sql = ("INSERT INTO deal_products (id, deal_id, product_id, description, quantity,"
               " unit_price, created_at, created_by) SELECT $own + row_number() OVER (ORDER BY"
               " l.item DESC, l.pos) - 1, x.record_id, l.product_id, l.description, l.quantity,"
               f" l.unit_price, $now, $uid FROM ({old_lines}) l JOIN ({u}) x ON x.item = l.item"
               " WHERE x.h_lines")
        cur.execute(sql, importer._used({**params, "own": own, "now": now, "uid": by}, sql))
    sql = (f"UPDATE deals SET version = deals.version + 1, updated_at = $now, updated_by = $uid"
           f" FROM ({u}) u WHERE deals.id = u.record_id AND u.h_lines"
           " AND deals.version = u.version + CAST(u.changed AS INTEGER)")
    if cur.execute(sql, importer._used({**params, "now": now, "uid": by}, sql)
                   ).fetchone()[0] != n_lines:
        raise records.ConflictError({}, [])


def _restored(spec: Field, j: str) -> tuple[str, str]:
    """An old value from its JSON (json_extract) as fields.convert() makes it of what
    json.loads gives, and when convert() or validate() would refuse it."""
    t = spec.type
    if t in _TEXT:
        s = f"json_extract_string({j}, '$')"
        s = (f"nullif(CASE WHEN regexp_matches({s}, $c_ws_edge) THEN trim({s}, $c_ws)"
             f" ELSE {s} END, '')")
        if t == "email":
            s = f"lower({s})"
        elif t == "phone":
            s = f"translate({s}, $c_digits, $c_latin)"
        bad = [f"length({s}) > {int(spec.max_length)}"] if spec.max_length else []
        if t == "email":
            bad.append(f"NOT regexp_full_match({s}, $c_email)")
        elif t == "phone":
            bad.append(f"NOT regexp_full_match({s}, $c_phone)")
        elif t == "choice":  # another spelling of a choice: convert() finds it, the row path
            bad.append(f"{s} NOT IN ({', '.join(_quote(c) for c in spec.choices) or 'NULL'})")
        value = s
    elif t in ("money", "number", "integer", "user", "ref"):
        cast = {"integer": "BIGINT", "user": "BIGINT", "ref": "BIGINT"}.get(t, "DECIMAL(38, 10)")
        value = f"TRY_CAST(CAST({j} AS VARCHAR) AS {cast})"
        if t == "money":
            value = f"round_even({value}, 2)"
        bad = [f"({j} IS NOT NULL AND json_type({j}) <> 'NULL' AND {value} IS NULL)"]
        if t not in ("user", "ref") and spec.min_value is not None:
            bad.append(f"{value} < {float(spec.min_value)!r}")
        if t not in ("user", "ref") and spec.max_value is not None:
            bad.append(f"{value} > {float(spec.max_value)!r}")
    elif t == "bool":
        value = f"coalesce(TRY_CAST(CAST({j} AS VARCHAR) AS BOOLEAN), false)"
        bad = [f"(json_type({j}) NOT IN ('BOOLEAN', 'NULL'))"]
    else:  # date, datetime: ISO text
        cast = "DATE" if t == "date" else "TIMESTAMP"
        s = f"json_extract_string({j}, '$')"
        value = f"TRY_CAST({s} AS {cast})"
        bad = [f"({s} IS NOT NULL AND {value} IS NULL)",
               f"CAST({value} AS DATE) NOT BETWEEN DATE '1900-01-01' AND DATE '2100-12-31'"]
    if spec.required:
        bad.append(f"{value} IS NULL")
    return value, " OR ".join(f"coalesce({b}, false)" for b in bad) or "false"


def _quote(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"
