"""Deals' product lines in SQL, as the row path's Python words and compares them, and the
set-based update (and upsert) of deals with product lines (issue #8, item 9; DuckDB), with
or without an amount column (priced(): a row's lines price the deal, a row without lines
keeps its amount) and with engage and close dates (a closed deal's new close date written
after the lines, as write_row writes it).

- keys: importer._line_keys as one text a deal (the same text for the same lines, whether
  read from deal_products by current() or made in Python from a file's lines by keys()),
  so "the lines differ" is one comparison of two texts in SQL;
- text: deals.lines_text of the deal's lines (the change shown, the audit's old value);
- plain: json.dumps(importer._plain_lines(...)) of them (an import record's before, for
  undo), character for character;
- undo_lines: the old lines an import record holds, as replace_lines validates them
  (importer_updates._undo writes them back set-based);
- stage_column, match_sql, preview, attach, write_updates: the import's dry run and write
  (importer._fast_plan, importer._match, importer_updates.write_updates)."""
from __future__ import annotations

import json
from decimal import Decimal


def _normal(q: str) -> str:
    """A DECIMAL's text as Decimal.normalize() formats it with :f (no trailing zeros)."""
    return f"CASE WHEN contains({q}, '.') THEN rtrim(rtrim({q}, '0'), '.') ELSE {q} END"


def key_sql(product_id: str, description: str, quantity: str, unit_price: str) -> str:
    """One line's key (quantity and unit_price as DECIMAL expressions)."""
    return (f"concat(coalesce(CAST({product_id} AS VARCHAR), ''), '|', to_json({description}),"
            f" '|', {_normal(f'CAST({quantity} AS VARCHAR)')}, '|',"
            f" CAST(CAST({unit_price} AS DECIMAL(14, 2)) AS VARCHAR))")


def current_sql(deal_ids: str) -> str:
    """SELECT deal_id, keys, text, plain of the product lines of the deals deal_ids (a
    subquery of ids) selects; deals without lines have no row. (Each deal's lines gathered
    once and sorted by id in the list: three string_agg(... ORDER BY id) took 2.5x as long.)"""
    q = "CAST(d.quantity AS VARCHAR)"
    key = key_sql("d.product_id", "d.description", "d.quantity", "d.unit_price")
    text = f"concat(d.description, ' × ', {_normal(q)})"
    plain = ("concat('{\"product_id\": ', coalesce(CAST(d.product_id AS VARCHAR), 'null'),"
             " ', \"description\": ', to_json(d.description), ', \"quantity\": ',"
             f" to_json({q}), ', \"unit_price\": ', to_json(CAST(d.unit_price AS VARCHAR)),"
             " '}')")
    return (
        "SELECT deal_id, array_to_string(list_transform(l, lambda x: x.k), ';') AS keys,"
        " array_to_string(list_transform(l, lambda x: x.t), '; ') AS text,"
        " concat('[', array_to_string(list_transform(l, lambda x: x.p), ', '), ']') AS plain"
        f" FROM (SELECT d.deal_id, list_sort(list({{'i': d.id, 'k': {key}, 't': {text},"
        f" 'p': {plain}}})) AS l FROM deal_products d WHERE d.deal_id IN ({deal_ids})"
        " GROUP BY d.deal_id)")


def keys(lines: list[dict] | None) -> str | None:
    """The keys current_sql() gives lines equal to these (importer._line_keys), in Python
    (a file's lines, made once per distinct cell)."""
    if not lines:
        return None
    out = []
    for x in lines:
        q = f"{Decimal(str(x['quantity'])).normalize():f}"
        price = Decimal(str(x["unit_price"])).quantize(Decimal("0.01"))
        pid = "" if x.get("product_id") is None else str(x["product_id"])
        out.append(f"{pid}|{json.dumps(x['description'], ensure_ascii=False)}|{q}|{price}")
    return ";".join(out)


def undo_lines(items: str) -> str:
    """SELECT item, pos, product_id, description, quantity, unit_price, bad: the old product
    lines an import's records of updates (items, as import_records) hold (_plain_lines'
    JSON), as deals.replace_lines validates them; bad when validate() would refuse one."""
    from crm import deals
    from crm.importer_updates import _restored

    specs = {f.name: f for f in deals.LINE_FIELDS}
    pid, pid_bad = _restored(specs["product_id"], "json_extract(l.e, '$.product_id')")
    text, text_bad = _restored(specs["description"], "json_extract(l.e, '$.description')")
    q = "TRY_CAST(json_extract_string(l.e, '$.quantity') AS DECIMAL(38, 10))"
    p = "TRY_CAST(json_extract_string(l.e, '$.unit_price') AS DECIMAL(38, 10))"
    bad = (f"({pid_bad}) OR ({text_bad}) OR coalesce({q} IS NULL OR {q} < 0.001 OR {q} > 1e9,"
           f" true) OR coalesce({p} IS NULL OR {p} < 0 OR {p} > 1e12, true)")
    return (f"SELECT r.id AS item, l.k AS pos, {pid} AS product_id, {text} AS description,"
            f" {q} AS quantity, round_even({p}, 2) AS unit_price,"
            f" trim(json_extract_string(l.e, '$.quantity')) AS q_text, {bad} AS bad"
            f" FROM {items} r, LATERAL (SELECT unnest(x) AS e, generate_subscripts(x, 1) AS k"
            " FROM (SELECT CAST(json_extract(r.before, '$.product_lines[0][*]') AS JSON[]) AS x))"
            " l WHERE r.import_id = $i AND r.action <> 'create'"
            " AND json_exists(r.before, '$.product_lines')")


def text_sql(q_text: str, description: str) -> str:
    """One line as deals.lines_text words it (q_text: the quantity's decimal text)."""
    return f"concat({description}, ' × ', {_normal(q_text)})"


# --- deal updates and upserts that bring product lines, set-based (importer._fast_plan) ---

def takes(mapping: dict) -> bool:
    """Whether a deal update or upsert with a product lines column goes set-based: a row
    with lines takes its lines' sum as its amount where the file gives none (no amount
    column: priced()), a row without lines the file's amount or, without an amount column,
    keeps the deal's, as importer.plan does; engage and close dates beside them too (a
    closed deal's new close date written after the lines, as write_row writes it)."""
    return True


def priced(mapping: dict) -> bool:
    """Whether the deals' amount comes from the file's lines alone (no amount column): the
    staged f_amount is the lines' sum, NULL (the deal's amount kept) for a row without."""
    mapped = {v for v in mapping.values() if v}
    return "product_lines" in mapped and "amount" not in mapped


def staged_values(cur, name: str, fields: list[str], s: str, t: str) -> list[str]:
    """The file's value of each field of the staged rows ({s}.f_<field>) against the record
    {t}, for importer._match and the dry run's preview: a row without lines of a file
    without an amount column (pl_priced) keeps the deal's amount, as importer.plan does."""
    found = [f"{s}.f_{n}" for n in fields]
    if "amount" in fields and "pl_priced" in {r[0] for r in cur.execute(
            f"SELECT * FROM {name}_c LIMIT 0").description}:
        found[fields.index("amount")] = f"coalesce({s}.f_amount, {t}.amount)"
    return found


def mapped(p) -> bool:
    """Whether a staged deal update brings product lines (this module writes it)."""
    return p.entity.table == "deals" and "product_lines" in p.mapping.values()


def stage_column(cur, db, raw: str, index: int, name: str):
    """A file's product lines column, each distinct cell read once by the row path's
    importer.product_lines: tables {name}_pl (txt, cerr, amount, payload: the audit entry of a
    new deal's lines, keys, shown: deals.lines_text of the file's lines, stored: of them as
    replace_lines validates them) and {name}_lines (the validated lines, by cell and
    position); ({text: (lines, error)}, the typed columns to pick) or a reason (str) for the
    row path: a line or an amount only the write would refuse."""
    from crm import deals, importer_deals
    from crm import importer as imp
    from crm.fields import ValidationError, validate

    spec = imp.PSEUDO["deals"]["product_lines"]
    texts = [r[0] for r in cur.execute(f"SELECT DISTINCT c{index} FROM {raw}"
                                       f" WHERE c{index} IS NOT NULL").fetchall()]
    found, table, items = importer_deals._lines_map(db, spec, texts)
    if found is None:
        return table
    amount_spec = deals.DEALS.spec["amount"]
    cleaned: dict = {}
    for x in items:
        cleaned.setdefault(x[0], []).append(x)
    rows = []
    for text, err, amount, payload in table:
        lines = found[text][0]
        if amount is not None:
            try:  # the sum update_in would refuse (too big): the row path words it
                validate([amount_spec], {"amount": amount}, partial=True)
            except ValidationError:
                return _rules_own()
        clean = cleaned.get(text, []) if lines else []
        rows.append((text, err, amount, payload, keys(lines), deals.lines_text(lines),
                     deals.lines_text([{"description": x[3], "quantity": x[4]}
                                       for x in clean])))
    cur.execute(f"CREATE TABLE {name}_pl (txt VARCHAR, cerr BOOLEAN, amount DECIMAL(38, 10),"
                " payload VARCHAR, keys VARCHAR, shown VARCHAR, stored VARCHAR)")
    importer_deals._fill(cur, f"{name}_pl", ["t", "e", "a", "p", "k", "s", "n"], rows)
    cur.execute(f"CREATE TABLE {name}_lines (txt VARCHAR, pos INTEGER, product_id BIGINT,"
                " description VARCHAR, quantity DECIMAL(14, 3), unit_price DECIMAL(14, 2))")
    importer_deals._fill(cur, f"{name}_lines", ["t", "p", "i", "d", "q", "u"], items)
    m = f"ml{index}"
    join = f" LEFT JOIN {name}_pl {m} ON {m}.txt = r.c{index}"
    picked = [f"{m}.txt AS pl", f"{m}.keys AS pl_keys", f"{m}.amount AS pl_amount",
              f"coalesce({m}.cerr, false) AS pl_err"]
    return found, join, picked


def _rules_own() -> str:
    from crm.i18n import gettext as _

    return _("{entity} are checked by rules of their own").format(entity=_("Deals"))


def has_lines(cur, name: str) -> bool:
    """Whether the checked rows {name}_c carry product lines (stage_column's columns)."""
    return "pl_keys" in {r[0] for r in cur.execute(f"SELECT * FROM {name}_c LIMIT 0"
                                                   ).description}


def match_sql(cur, name: str, deals_of: str) -> tuple[str, str]:
    """For importer._match: (a join of the matched deals' current lines as cl, on e.id; the
    condition that the row's lines replace them: importer.plan's new_lines) or ("", "")
    when the file brings no lines."""
    if not has_lines(cur, name):
        return "", ""
    ids = (f"SELECT e.id FROM {deals_of} e JOIN {name}_c s ON s.k = e.k"
           " WHERE s.pl_keys IS NOT NULL")
    return (f" LEFT JOIN ({current_sql(ids)}) cl ON cl.deal_id = e.id",
            " OR (s.pl_keys IS NOT NULL AND s.pl_keys IS DISTINCT FROM cl.keys)")


def preview(db, p, name: str, found: dict) -> None:
    """The dry run's first updates (p._preview_lines) with their lines as importer.plan has
    them: the file's lines, the deal's before where they differ, the change of the lines
    (old → new text), an update even when no field of the deal changes."""
    from crm import deals
    from crm import importer as imp

    rows = [r for r in p.rows if r.line in p._preview_lines]
    if not rows:
        return
    cur = imp._stage_cursor(db)
    try:
        cells = dict(cur.execute(f"SELECT line, pl FROM {name}_c WHERE line IN"
                                 " (SELECT unnest($l))", {"l": [r.line for r in rows]}).fetchall())
    finally:
        cur.close()
    cur = db.cursor()
    try:
        current = deals.lines_of(cur, sorted({r.record_id for r in rows}))
    finally:
        cur.close()
    for row in rows:
        lines = found.get(cells.get(row.line), (None,))[0] if cells.get(row.line) else None
        if not lines:
            continue
        row.extra["product_lines"] = lines
        old = current.get(row.record_id, [])
        if imp._line_keys(lines) != imp._line_keys(old):
            row.extra["lines_before"] = old
            row.action = "update"
            row.changes["product_lines"] = (deals.lines_text(old), deals.lines_text(lines))


def attach(cur, p, name: str, rows: list) -> None:
    """importer_updates._rows for the row path (a refusal it words): each row's lines from
    the file, and the deal's lines before where they differ, as importer.plan has them."""
    if not mapped(p):
        return
    from crm import deals
    from crm import importer as imp

    lines_of = {}
    for txt, pos, product_id, description, quantity, unit_price in cur.execute(
            f"SELECT txt, pos, product_id, description, quantity, unit_price FROM {name}_lines"
            " ORDER BY txt, pos").fetchall():
        lines_of.setdefault(txt, []).append({"product_id": product_id,
                                             "description": description,
                                             "quantity": quantity, "unit_price": unit_price})
    cells = dict(cur.execute(f"SELECT line, pl FROM {name}_c WHERE line IN (SELECT line FROM"
                             f" {name}_u)").fetchall())
    current = deals.lines_of(cur, sorted({r.record_id for r in rows}))
    for row in rows:
        lines = lines_of.get(cells.get(row.line))
        if not lines:
            continue
        row.extra["product_lines"] = lines
        old = current.get(row.record_id, [])
        if imp._line_keys(lines) != imp._line_keys(old):
            row.extra["lines_before"] = old
            row.changes["product_lines"] = (deals.lines_text(old), deals.lines_text(lines))


def write_updates(cur, user, p, import_id: int) -> None:
    """The staged deal updates of a file with product lines (DuckDB), as importer.write_row
    writes each: records.update_in's fields (update_deal_in's checks are
    importer_updates._refused's) or, naming a stage or a lost-to competitor,
    importer_deals.write_updates' writes; then deals.replace_lines where the file's lines
    differ from the deal's (the old lines deleted, the file's inserted, one more version, an
    audit entry of the lines' text before and after); the audit rows in the rows' order (the
    update's, then the lines'); import records holding the fields that differ from the file's
    and the old lines (_plain_lines' JSON, for undo)."""
    import uuid
    from datetime import datetime

    from crm import importer_deals

    name = p.staged_updates
    now, by = datetime.now(), user.id or None
    tmp = f"crm_import_lines_{uuid.uuid4().hex[:16]}"
    # the rows with the deals' lines as they are now (read in the import's transaction,
    # before any write)
    sql = (f"CREATE TEMP TABLE {tmp} AS SELECT u.*, c.pl, coalesce(c.pl_keys IS NOT NULL AND"
           " c.pl_keys IS DISTINCT FROM cl.keys, false) AS ld, cl.text AS lines_was,"
           " coalesce(cl.plain, '[]') AS plain_was, m.stored AS lines_now"
           f" FROM {name}_u u JOIN {name}_c c ON c.line = u.line LEFT JOIN"
           f" ({current_sql(f'SELECT record_id FROM {name}_u')}) cl ON cl.deal_id = u.record_id"
           f" LEFT JOIN {name}_pl m ON m.txt = c.pl")
    cur.execute(sql)
    try:
        n_lines = cur.execute(f"SELECT count(*) FROM {tmp} WHERE ld").fetchone()[0]
        names = {"now": now, "by": by, "uname": user.username, "i": import_id}
        if importer_deals.moves(p):  # move_deal_in's and update_deal_in's writes first
            mark = cur.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]
            importer_deals.write_updates(cur, user, p, import_id)
            if n_lines:
                _after_moves(cur, p, tmp, name, names, mark)
            return
        _plain_writes(cur, user, p, tmp, name, names, n_lines)
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {tmp}")


_LINES_AUDIT = ("concat('{\"product_lines\": [', coalesce(CAST(to_json(lines_was) AS VARCHAR),"
                " 'null'), ', ', coalesce(CAST(to_json(lines_now) AS VARCHAR), 'null'), ']}')")


def _changed_since(line) -> Exception:
    from crm import importer as imp
    from crm.i18n import gettext as _

    return imp.ImportFileError(_("Row {line}: the record changed since the dry run; run it "
                                 "again.").format(line=line))


def _replace(cur, x: str, name: str, names: dict) -> None:
    """replace_lines' writes of the rows whose lines differ: the deals' lines deleted, the
    file's inserted in the rows' order."""
    from crm import importer as imp

    cur.execute(f"DELETE FROM deal_products WHERE deal_id IN (SELECT record_id FROM {x}"
                " WHERE ld)")
    k = cur.execute(f"SELECT count(*) FROM {x} u JOIN {name}_lines l ON l.txt = u.pl"
                    " WHERE u.ld").fetchone()[0]
    if k:
        own = imp._draw_ids(cur, "deal_products_id_seq", k)
        cur.execute("INSERT INTO deal_products (id, deal_id, product_id, description,"
                    " quantity, unit_price, created_at, created_by) SELECT $own +"
                    " row_number() OVER (ORDER BY u.line, l.pos), u.record_id,"
                    " l.product_id, l.description, l.quantity, l.unit_price, $now, $by"
                    f" FROM {x} u JOIN {name}_lines l ON l.txt = u.pl WHERE u.ld",
                    {"own": own - 1, "now": names["now"], "by": names["by"]})


def _plain_writes(cur, user, p, x: str, name: str, names: dict, n_lines: int) -> None:
    """write_updates without a move: update_in's writes (importer_updates.write_updates'
    own), replace_lines' beside."""
    from crm import importer as imp
    from crm import importer_updates as iu

    specs, fields = p.entity.spec, iu._ordered(p.entity, iu._written(p))
    n, n_changed, first_line = cur.execute(
        f"SELECT count(*), count(*) FILTER (WHERE changed), min(line) FILTER (WHERE changed"
        f" OR ld) FROM {x}").fetchone()
    if not n:
        return
    if n_changed + n_lines:  # update_in's audit row, then replace_lines', a row
        pieces = [f"CASE WHEN c_{f} THEN concat('\"{f}\": [', {iu._json(specs[f], f'o_{f}')},"
                  f" ', ', {iu._json(specs[f], f'v_{f}')}, ']') END" for f in fields]
        first = imp._draw_ids(cur, "audit_log_id_seq", n_changed + n_lines)
        sql = ("INSERT INTO audit_log (id, occurred_at, user_id, username, entity,"
               " record_id, action, changes, import_id) SELECT $own + row_number() OVER"
               " (ORDER BY line, k), $now, $by, $uname, 'deals', record_id, 'update',"
               f" changes, $i FROM (SELECT line, 0 AS k, record_id, concat('{{',"
               f" concat_ws(', ', {', '.join(pieces) or 'NULL'}), '}}') AS changes FROM {x}"
               f" WHERE changed UNION ALL SELECT line, 1, record_id, {_LINES_AUDIT}"
               f" FROM {x} WHERE ld)")
        cur.execute(sql, imp._used({**names, "own": first - 1}, sql))
    n_written = cur.execute(f"SELECT count(*) FROM {x} WHERE changed OR ld").fetchone()[0]
    if n_lines:
        _replace(cur, x, name, names)
    if n_written:  # update_in's and replace_lines' versions, in one UPDATE (the same deals)
        moved = [f for f in fields if n_changed and cur.execute(
            f"SELECT bool_or(c_{f}) FROM {x}").fetchone()[0]]
        assigns = "".join(f"{f} = CASE WHEN u.c_{f} THEN u.v_{f} ELSE deals.{f} END, "
                          for f in moved)
        sql = (f"UPDATE deals SET {assigns}version = deals.version + CAST(u.changed AS INTEGER)"
               " + CAST(u.ld AS INTEGER), updated_at = $now, updated_by = $by FROM"
               f" {x} u WHERE deals.id = u.record_id AND deals.version = u.version AND"
               " (u.changed OR u.ld)")
        if cur.execute(sql, imp._used(names, sql)).fetchone()[0] != n_written:
            raise _changed_since(first_line)
    # before: the fields that differ from the file's, then the deal's old lines
    olds = [f"CASE WHEN d_{f} THEN concat('\"{f}\": [', {iu._json(specs[f], f'o_{f}')},"
            " ', null]') END" for f in fields]
    olds.append("CASE WHEN ld THEN concat('\"product_lines\": [', plain_was, ', null]') END")
    some = " OR ".join([f"d_{f}" for f in fields] + ["ld"])
    first = imp._draw_ids(cur, "import_records_id_seq", n)
    cur.execute(
        "INSERT INTO import_records (id, import_id, line, record_id, action, before,"
        " version_after) SELECT $own + row_number() OVER (ORDER BY line), $i, line,"
        f" record_id, 'update', CASE WHEN {some} THEN concat('{{', concat_ws(', ',"
        f" {', '.join(olds)}), '}}') END, version + CAST(changed AS INTEGER)"
        f" + CAST(ld AS INTEGER) FROM {x}", {"own": first - 1, "i": names["i"]})


def _after_moves(cur, p, x: str, name: str, names: dict, mark: int) -> None:
    """replace_lines' writes after importer_deals.write_updates (a move, update_deal_in),
    as write_row does them last in a row: the lines, one more version (checked against the
    import record's), the lines' audit rows placed after the row's own (the import's audit
    rows from mark on numbered again in the rows' order), the import records with the old
    lines."""
    from crm import importer as imp

    first_line = cur.execute(f"SELECT min(line) FROM {x} WHERE ld").fetchone()[0]
    _replace(cur, x, name, names)
    n_lines = cur.execute(f"SELECT count(*) FROM {x} WHERE ld").fetchone()[0]
    sql = (f"UPDATE deals SET version = deals.version + 1, updated_at = $now, updated_by = $by"
           f" FROM {x} u JOIN import_records r ON r.import_id = $i AND r.line = u.line"
           " AND r.action = 'update' WHERE deals.id = u.record_id AND u.ld"
           " AND deals.version = r.version_after")
    if cur.execute(sql, imp._used(names, sql)).fetchone()[0] != n_lines:
        raise _changed_since(first_line)
    # the old lines in the import record's before where write_row puts them: after the
    # fields that differ from the file's (importer_deals.write_updates' first pieces), before
    # what the move set beside
    from crm import importer_updates as iu

    specs, fields = p.entity.spec, iu._ordered(p.entity, p._update_fields)
    pre = [f"CASE WHEN d_{m} THEN concat('\"{m}\": [', {iu._json(specs[m], f'o_{m}')},"
           " ', null]') END" for m in fields]
    # (and after the file's close date, which write_row's before has among the changes)
    inner = "coalesce(substr(r.before, 2, length(r.before) - 2), '')"
    rest = f"ltrim(substr({inner}, length(u.pre) + 1), ', ')"
    closed = (f"CASE WHEN starts_with({rest}, '\"closed_on\": [') THEN substr({rest}, 1,"
              f" strpos({rest}, ']')) END")
    cur.execute("UPDATE import_records SET version_after = v.version_after + 1, before ="
                " concat('{', concat_ws(', ', nullif(v.pre, ''), v.closed, v.lines, nullif("
                "ltrim(substr(v.rest, coalesce(length(v.closed), 0) + 1), ', '), '')), '}')"
                f" FROM (SELECT r.id, r.version_after, u.pre, u.lines, {rest} AS rest,"
                f" {closed} AS closed FROM import_records r JOIN"
                f" (SELECT line, concat_ws(', ', {', '.join(pre) or 'NULL'}) AS pre,"
                " concat('\"product_lines\": [', plain_was, ', null]') AS lines"
                f" FROM {x} WHERE ld) u ON u.line = r.line WHERE r.import_id = $i"
                " AND r.action = 'update') v WHERE import_records.id = v.id",
                {"i": names["i"]})
    # the audit rows: the move writer's (after mark) and the lines', numbered anew; a
    # closed deal's new close date (_set_closed_on's row, the writer's last) after the lines
    order = f"crm_import_order_{x[-16:]}"
    cur.execute(f"CREATE TEMP TABLE {order} AS SELECT u.line, CASE WHEN a.action = 'update'"
                " AND starts_with(CAST(a.changes AS VARCHAR), '{\"closed_on\": [') THEN 2 ELSE 0 END AS k,"
                f" a.id AS old FROM audit_log a JOIN {x} u ON u.record_id = a.record_id"
                " WHERE a.id > $mark"
                " AND a.import_id = $i AND a.entity = 'deals' UNION ALL SELECT line, 1, NULL"
                f" FROM {x} WHERE ld", {"mark": mark, "i": names["i"]})
    try:
        total = cur.execute(f"SELECT count(*) FROM {order}").fetchone()[0]
        own = imp._draw_ids(cur, "audit_log_id_seq", total)
        cur.execute(f"CREATE OR REPLACE TEMP TABLE {order} AS SELECT *, $own + row_number()"
                    f" OVER (ORDER BY line, k, old) AS id FROM {order}", {"own": own - 1})
        cur.execute(f"UPDATE audit_log SET id = o.id FROM {order} o WHERE audit_log.id = o.old"
                    " AND audit_log.import_id = $i", {"i": names["i"]})
        sql = ("INSERT INTO audit_log (id, occurred_at, user_id, username, entity, record_id,"
               f" action, changes, import_id) SELECT o.id, $now, $by, $uname, 'deals',"
               f" u.record_id, 'update', {_LINES_AUDIT}, $i FROM {x} u JOIN {order} o"
               " ON o.line = u.line AND o.k = 1 WHERE u.ld")
        cur.execute(sql, imp._used(names, sql))
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {order}")


def undo_moves(cur, user, import_id: int, refused: list, keys: list) -> int | None:
    """importer.undo of a deal import that moved stages and replaced product lines,
    set-based: importer_deals.undo_moves (the move back, update_in), then deals.replace_lines
    with the old lines of each record it undid, as the row path does a record at a time
    (newest first): the lines, one more version, the lines' audit row after the record's own
    (the undo's audit rows numbered again in that order). None (nothing written) where the
    row path must: an old line replace_lines would refuse, or undo_moves' own refusals."""
    import uuid
    from datetime import datetime

    from crm import importer as imp
    from crm import importer_deals, records

    params = {"i": import_id, **imp._CONSTANTS}
    old = undo_lines("import_records")
    bad = cur.execute(f"SELECT count(*) FILTER (WHERE l.bad) FROM ({old}) l",
                      imp._used(params, old)).fetchone()[0]
    if bad:
        return None
    tmp = f"crm_undo_lines_{uuid.uuid4().hex[:16]}"
    # the records undo_moves will undo (unchanged since, live) that held lines, before it
    # writes: their lines now and the old lines' text
    live = ("SELECT r.id AS item, r.record_id, r.version_after FROM import_records r JOIN"
            " deals t ON t.id = r.record_id WHERE r.import_id = $i AND r.action <> 'create'"
            " AND t.version = r.version_after AND t.deleted_at IS NULL"
            " AND json_exists(r.before, '$.product_lines')")
    sql = (f"CREATE TEMP TABLE {tmp} AS SELECT x.*, c.text AS lines_was, n.text AS lines_now"
           f" FROM ({live}) x LEFT JOIN ({current_sql(f'SELECT record_id FROM ({live})')}) c"
           " ON c.deal_id = x.record_id LEFT JOIN (SELECT item, string_agg("
           f"{text_sql('q_text', 'description')}, '; ' ORDER BY pos) AS text FROM ({old})"
           " GROUP BY item) n ON n.item = x.item")
    cur.execute(sql, imp._used(params, sql))
    try:
        mark = cur.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]
        done = importer_deals.undo_moves(cur, user, import_id, refused, keys)
        n = cur.execute(f"SELECT count(*) FROM {tmp}").fetchone()[0]
        if done is None or not n:
            return done
        now, by = datetime.now(), user.id or None
        cur.execute(f"DELETE FROM deal_products WHERE deal_id IN (SELECT record_id FROM {tmp})")
        k = cur.execute(f"SELECT count(*) FROM ({old}) l JOIN {tmp} x ON x.item = l.item",
                        imp._used(params, old)).fetchone()[0]
        if k:
            own = imp._draw_ids(cur, "deal_products_id_seq", k)
            sql = ("INSERT INTO deal_products (id, deal_id, product_id, description, quantity,"
                   " unit_price, created_at, created_by) SELECT $own + row_number() OVER"
                   " (ORDER BY l.item DESC, l.pos), x.record_id, l.product_id, l.description,"
                   f" l.quantity, l.unit_price, $now, $by FROM ({old}) l JOIN {tmp} x"
                   " ON x.item = l.item")
            cur.execute(sql, imp._used({**params, "own": own - 1, "now": now, "by": by}, sql))
        if cur.execute(f"UPDATE deals SET version = deals.version + 1, updated_at = $now,"
                       f" updated_by = $by FROM {tmp} x WHERE deals.id = x.record_id",
                       {"now": now, "by": by}).fetchone()[0] != n:
            raise records.ConflictError({}, [])  # cannot happen in the transaction
        # the audit rows: undo_moves' (after mark) and the lines', newest record first
        order = f"{tmp}_o"
        cur.execute(f"CREATE TEMP TABLE {order} AS SELECT r.id AS item, 0 AS k, a.id AS old"
                    " FROM audit_log a JOIN import_records r ON r.record_id = a.record_id AND"
                    " r.import_id = $i AND r.action <> 'create' WHERE a.id > $mark AND"
                    f" a.entity = 'deals' UNION ALL SELECT item, 1, NULL FROM {tmp}",
                    {"i": import_id, "mark": mark})
        try:
            total = cur.execute(f"SELECT count(*) FROM {order}").fetchone()[0]
            own = imp._draw_ids(cur, "audit_log_id_seq", total)
            cur.execute(f"CREATE OR REPLACE TEMP TABLE {order} AS SELECT *, $own + row_number()"
                        f" OVER (ORDER BY item DESC, k, old) AS id FROM {order}",
                        {"own": own - 1})
            cur.execute(f"UPDATE audit_log SET id = o.id FROM {order} o WHERE"
                        " audit_log.id = o.old")
            cur.execute("INSERT INTO audit_log (id, occurred_at, user_id, username, entity,"
                        f" record_id, action, changes) SELECT o.id, $now, $by, $uname, 'deals',"
                        f" x.record_id, 'update', {_LINES_AUDIT} FROM {tmp} x JOIN {order} o"
                        " ON o.item = x.item AND o.k = 1",
                        {"now": now, "by": by, "uname": user.username})
        finally:
            cur.execute(f"DROP TABLE IF EXISTS {order}")
        return done
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {tmp}")
