"""The write-time re-check of a set-based import's new records (importer._fast_write).

The dry run checked the records a row names; between it and the import someone may trash one
of them (a customer, a deal), or deactivate the owner a row names. (A custom link to a table
the resolver reads whole, competitors, may name a trashed record already.) The row path's commands
check those again as they write, and a refusal refuses the whole import with the row's line
and their words. Here the same checks are one SQL query over the staged rows; the first row
the row path would refuse is given to the row path's own write (importer.write_row), which
refuses the import in its words (the transaction rolls back)."""
from __future__ import annotations

from crm import records
from crm.auth import User
from crm.i18n import gettext as _

# the links each entity's create command checks live (and, for a rep, theirs) as it writes
_LINKS = {
    "contacts": ("customer_id",),  # records._check_parent
    "tasks": ("lead_id", "customer_id", "contact_id", "deal_id", "complaint_id"),
    "activities": ("lead_id", "customer_id", "contact_id", "deal_id", "complaint_id"),
    "surveys": ("customer_id", "contact_id", "deal_id", "product_id"),  # service._references
    "complaints": ("customer_id", "contact_id", "deal_id", "product_id"),
    "deals": ("customer_id", "contact_id"),  # deals._check_links
}
# of those, the ones a rep must own (auth.require view/edit); products are shared
_MINE = {"contacts": ("customer_id",), "tasks": _LINKS["tasks"],
         "activities": _LINKS["activities"], "surveys": ("customer_id",),
         "complaints": ("customer_id",), "deals": ("customer_id", "contact_id")}
_TABLES = {"lead_id": "leads", "customer_id": "customers", "contact_id": "contacts",
           "deal_id": "deals", "complaint_id": "complaints", "product_id": "products"}


def refuse(cur, user: User, p, staged: str, where: str, import_id: int) -> None:
    """Refuses the import as the row path would when a staged row to create (where) names a
    record trashed (or, for a rep, no longer theirs) since the dry run, or an owner no longer
    active: the first such row in the row path's order goes through its write, which raises."""
    from crm import importer

    entity = p.entity
    cols = {r[0] for r in cur.execute(f"SELECT * FROM {staged} LIMIT 0").description}
    phases = _phases(user, entity, cols)
    for tests, params in phases:  # insert_many: every row's owner, then every row's parent
        if not tests:
            continue
        sql = (f"SELECT min(s.line) FROM {staged} s WHERE ({where}) AND"
               f" ({' OR '.join(tests)})")
        line = cur.execute(sql, importer._used(params, sql)).fetchone()[0]
        if line is not None:
            _refuse_row(cur, user, p, staged, line, cols, import_id)


def _phases(user: User, entity: records.Entity, cols: set) -> list[tuple[list, dict]]:
    """The SQL conditions over staged row s that the row path refuses at write time, grouped
    in the order its write checks them: insert_many (entities without a command of their
    own) checks every row's owner before any row's parent; a command checks a row whole."""
    from crm import importer

    params: dict = {"me": user.id}
    owner = []
    if "f_owner_id" in cols:  # records._owner_rules / _check_many: an active user
        owner.append("(s.f_owner_id IS NOT NULL AND s.f_owner_id NOT IN"
                     " (SELECT id FROM users WHERE active))")
    links = []
    for n in _LINKS.get(entity.table, ()):
        if f"f_{n}" not in cols:
            continue
        table = _TABLES[n]
        mine = "" if user.sees_all or n not in _MINE[entity.table] \
            else " AND x.owner_id = $me"
        links.append(f"(s.f_{n} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {table} x"
                     f" WHERE x.id = s.f_{n} AND x.deleted_at IS NULL{mine}))")
    if entity.table in ("surveys", "complaints") and "f_customer_id" in cols:
        for n, table in (("contact_id", "contacts"), ("deal_id", "deals")):
            if f"f_{n}" in cols:  # service._references: the customer's
                links.append(f"(s.f_{n} IS NOT NULL AND EXISTS (SELECT 1 FROM {table} x"
                             f" WHERE x.id = s.f_{n} AND x.customer_id IS DISTINCT FROM"
                             " s.f_customer_id))")
    if entity.table == "deals" and {"f_customer_id", "f_contact_id"} <= cols:
        links.append("(s.f_contact_id IS NOT NULL AND s.f_customer_id IS NOT NULL AND"
                     " EXISTS (SELECT 1 FROM contacts x WHERE x.id = s.f_contact_id AND"
                     " x.customer_id IS DISTINCT FROM s.f_customer_id))")
    custom = custom_links(user, entity, cols, "s.f_{n}")
    if importer._batchable(entity):  # insert_many: owners, parents, then custom links
        return [(owner, params), (links, params), (custom, params)]
    return [(owner + links + custom, params)]


def custom_links(user: User, entity: records.Entity, cols: set, value: str,
                 tables: dict | None = None) -> list[str]:
    """records._check_links: a custom link names a live record the user may see (value: the
    SQL of field n's new value, a format with {n}; tables: {field: a copy of the records it
    may name}, where not the table itself)."""
    tests = []
    for f in entity.fields:
        if not (f.custom and f.type == "ref" and f"f_{f.name}" in cols):
            continue
        v = value.format(n=f.name)
        mine = " AND x.owner_id = $me" if f.ref in records.OWNED and not user.sees_all \
            else ""
        table = (tables or {}).get(f.name, f.ref)
        tests.append(f"({v} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {table} x WHERE"
                     f" x.id = {v} AND x.deleted_at IS NULL{mine}))")
    return tests


def _refuse_row(cur, user: User, p, staged: str, line: int, cols: set,
                import_id: int) -> None:
    """The row's write by the row path, which refuses it in its words; should it not (a
    check here the command does not make), the import is refused all the same."""
    from crm import importer

    mapped = [n for n in dict.fromkeys(v for v in p.mapping.values() if v)
              if f"f_{n}" in cols]
    found = cur.execute(f"SELECT {', '.join(f'f_{n}' for n in mapped) or '1'} FROM {staged}"
                        " WHERE line = $line", {"line": line}).fetchone()
    values = dict(zip(mapped, found)) if mapped else {}
    stage_ids = {}
    if "new_stage" in cols:  # a deal's stage the import added (importer._add_stages)
        name = cur.execute(f"SELECT new_stage FROM {staged} WHERE line = $line",
                           {"line": line}).fetchone()[0]
        if name is not None:
            values["stage_id"] = ("new stage", name)
            stage_ids[name] = cur.execute(
                "SELECT max(id) FROM stages WHERE pipeline_id = $p AND name = $n AND"
                " deleted_at IS NULL", {"p": p._pid, "n": name}).fetchone()[0]
    row = importer.Row(line=line, action="create", values=values)
    importer.write_row(cur, user, p, row, import_id, stage_ids)
    raise importer.ImportFileError(_("Row {line}: the record changed since the dry run; run "
                                     "it again.").format(line=line))
