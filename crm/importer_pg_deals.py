"""New deals from a big CSV, set-based on PostgreSQL (importer_deals.fast_plan and write, as
on DuckDB, with what they ask of the database answered by PostgreSQL).

The file is read and checked in this process's in-memory DuckDB (importer._stage_cursor), as
the other entities of importer.PG_TABLES are. What the deals' checks read of PostgreSQL comes
over as few rows as they need: the stages (id and kind: a pipeline's handful), the contacts
the file names (their customer), the titles of the deals a key column names (a key there is
skipped); a customer, contact or competitor column is resolved among the names PostgreSQL
finds for the file's texts (importer_refs.ref_map: the same words and near-miss suggestions
as the row path's resolver, without reading every customer). execute() COPYs the deals to
write, their product lines and the lines' audit entries into TEMP tables of the import's
transaction, where importer_deals.write's INSERT ... SELECT statements write the deals, their
first stage history row, stage spans and reach counts, product lines, audit rows and
import_records, as on DuckDB."""
from __future__ import annotations

import copy

from crm import dialect, records
from crm import importer as imp

# the TEMP tables of the import's transaction holding the staged deals and their lines
_TEMP = "crm_import_deals"
ANALYZE_AT = 1000  # new deals from which the write refreshes the statistics of _ANALYZED
_ANALYZED = ("deals", "deal_stage_history", "deal_stage_spans", "deal_stages_reached",
             "deal_products")


def takes(db, entity: records.Entity, mode: str) -> bool:
    """Whether a deals import on PostgreSQL is planned set-based here: new deals only (an
    update's or upsert's deals there go row by row)."""
    return db.dialect != dialect.DUCKDB and entity.table == "deals" and mode == "create"


def on_postgresql(db) -> bool:
    return db is not None and db.dialect != dialect.DUCKDB


def ref_column(spec, field_name: str) -> bool:
    """Whether fast_plan resolves this link column by importer_refs.ref_map on PostgreSQL
    (every link but the stage, which the pipeline's few stages resolve)."""
    from crm import importer_refs

    return field_name != "stage_id" and importer_refs.mappable(spec)


def stage_tables(db, cur, name: str, contact_map: str | None) -> tuple[str, str]:
    """Stage tables {name}_st (id, kind) of the stages and {name}_ct (id, customer_id) of the
    contacts the file's contact column names (contact_map: its table of texts and ids), from
    PostgreSQL; returns their names for the checks' joins."""
    pg = db.cursor()
    try:
        imp.pg_into_stage(pg, cur, "SELECT id, kind FROM stages", {}, f"{name}_st",
                          "id BIGINT, kind VARCHAR")
    finally:
        pg.close()
    if contact_map is None:
        cur.execute(f"CREATE TABLE {name}_ct (id BIGINT, customer_id BIGINT)")
    else:
        imp._pg_found(db, cur, f"SELECT DISTINCT CAST(val AS VARCHAR) FROM {contact_map}"
                               " WHERE val IS NOT NULL",
                      "SELECT t.id, t.customer_id FROM contacts t WHERE t.id IN (SELECT"
                      " CAST(x.v AS BIGINT) FROM json_array_elements_text(CAST($vals AS JSON))"
                      " AS x(v))", {}, f"{name}_ct", "id BIGINT, customer_id BIGINT")
    return f"{name}_st", f"{name}_ct"


def existing_keys(db, cur, user, entity: records.Entity, name: str, key: str) -> str:
    """Stage table {name}_k (k) of the file's keys (staged as k) that deals the user sees
    have, from PostgreSQL; returns the SELECT of them that stands for the deals' own."""
    where, visible = records.visible(entity, user)
    imp._pg_found(db, cur, f"SELECT DISTINCT k FROM {name} WHERE k IS NOT NULL",
                  "SELECT DISTINCT x.v FROM json_array_elements_text(CAST($vals AS JSON))"
                  f" AS x(v) JOIN {entity.table} t ON lower(CAST(t.{key} AS VARCHAR)) = x.v"
                  f" WHERE {where}", visible, f"{name}_k", "k VARCHAR")
    return f"SELECT k FROM {name}_k"


def write(cur, user, p, import_id: int) -> None:
    """importer_deals.write on PostgreSQL: the staged deals to write (typed as the deals'
    columns), their product lines and the lines' audit entries COPYed into TEMP tables of the
    import's transaction, which that write's statements read instead of the stage's."""
    from crm import deals, importer_deals

    if not p.staged_counts.get("create", 0):
        return
    stage = imp._stage_cursor(p._db)
    try:
        cols = [r[0] for r in stage.execute(f"SELECT * FROM {p.staged} LIMIT 0").description]
    finally:
        stage.close()
    types = {f"f_{f.name}": importer_deals._TYPED.get(f.type) for f in deals.DEALS.fields}
    # the fields the file leaves out are constants in the stage (a NULL has no type there):
    # typed as their columns, so that PostgreSQL takes them
    picked = [f"CAST({c} AS {types[c]}) AS {c}" if types.get(c) else c for c in cols
              if c.startswith("f_") or c in ("line", "seq", "w", "new_stage", "engaged",
                                                "closed", "pl")]
    imp._copy_to_postgresql(cur, p._db, f"SELECT {', '.join(picked)} FROM {p.staged}"
                                        " WHERE w ORDER BY line", _TEMP)
    if "product_lines" in p.mapping.values():
        for suffix in ("_lines", "_pl"):
            imp._copy_to_postgresql(cur, p._db, f"SELECT * FROM {p.staged}{suffix}",
                                    _TEMP + suffix)
    there = copy.copy(p)
    there.staged = _TEMP
    importer_deals.write(cur, user, there, import_id)
    if p.staged_counts["create"] >= ANALYZE_AT:
        # PostgreSQL plans from statistics that know none of these rows until autovacuum
        # comes round (never within this transaction): the undo's join of the new deals by id
        # ran as a nested loop over every deal (4,000 deals: 4 s; 100,000: hours)
        dialect.refresh_statistics(cur, _ANALYZED)


_PRODUCTS = "SELECT id, name, code, unit_price FROM products WHERE deleted_at IS NULL"


def product_lines(db, spec, texts: list):
    """importer.product_lines of a product column on PostgreSQL, the products looked up by
    the names and codes its cells name (not every product read): the same lines, words and
    "did you mean" (importer_near's SQL shortlist of the products' names and codes, scored as
    difflib scores them)."""
    import json
    import re

    from crm import importer_near

    wanted = set()
    for text in texts:
        if imp._missing(text):
            continue
        for part in re.split(r"[;|\n]", str(text)):
            part = part.strip()
            if part:
                m = imp._LINE.match(part)
                wanted.add((m.group("name1") or m.group("name2") or m.group("name3"))
                           .strip().lower())
    key = "lower(btrim({c}, $c_ws))"
    # names PostgreSQL may lower otherwise than Python (İ, Σ; beyond ASCII under a C locale)
    # come along too, and Python decides as the row path does
    odd = "strpos({c}, 'İ') > 0 OR strpos({c}, 'Σ') > 0"
    if not importer_near._lowers_unicode(db):
        odd += " OR octet_length({c}) <> length({c})"
    picked = " OR ".join(f"{key.format(c=c)} IN (SELECT json_array_elements_text(CAST($vals"
                         f" AS JSON))) OR {odd.format(c=c)}" for c in ("code", "name"))
    params = {"vals": json.dumps(sorted(wanted)), "c_ws": imp._CONSTANTS["c_ws"]}
    known: dict = {}
    for r in db.query(f"{_PRODUCTS} AND ({picked}) ORDER BY active DESC, id", params):
        for k in (r["code"], r["name"]):
            if k:  # the first product (by importer.product_lines' order) of a name wins
                known.setdefault(str(k).strip().lower(), r)
    pieces = [(f"SELECT id, {c} AS k FROM products WHERE deleted_at IS NULL", {})
              for c in ("code", "name")]

    def suggest(word: str) -> list[str]:
        close = importer_near.suggest(db, pieces, word)
        if close and close[0] not in known:  # that name's product, as the row path's map has it
            one = {"vals": json.dumps(close), "c_ws": imp._CONSTANTS["c_ws"]}
            for r in db.query(f"{_PRODUCTS} AND ({picked}) ORDER BY active DESC, id", one):
                if close[0] in {str(k).strip().lower() for k in (r["code"], r["name"]) if k}:
                    known[close[0]] = r
                    break
        return close

    return imp.product_lines(db, spec, texts, known, suggest)
