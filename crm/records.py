"""Generic queries and commands for spec-driven entities (leads, customers, contacts).

Every write validates, checks permission, writes and records the audit entry in one transaction.
Column names come only from field specs (validated identifiers); values are always parameters."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Callable

import pandas as pd

from crm import audit, dialect, i18n, rules, search
from crm.auth import RANK, PermissionDenied, User, require
from crm.db import Database, WriteConflictBase, retried, rows
from crm.fields import META_FIELDS, NUMERIC_TYPES, TEXT_TYPES, Field, ValidationError, validate
from crm.i18n import gettext as _


_ENTITIES: dict[str, "Entity"] = {}


@dataclass(frozen=True)
class Entity:
    table: str
    label: str
    plural: str
    code_fields: list[Field]  # the code's specs; .fields adds an admin's custom fields
    title_sql: str  # SQL expression over the table's columns that names a record
    default_sort: tuple[str, str] = ("created_at", "desc")
    # extra checks over cleaned values: returns field -> message
    check: Callable[[dict], dict[str, str]] | None = None
    parent: str | None = None  # a column that ties the record to a parent (contacts)
    # the entity's own create/update commands when they do more than the generic ones
    creator: Callable | None = None
    updater: Callable | None = None
    # the same inside a caller's transaction (an import): (cur, user, values) -> id and
    # (cur, user, record_id, values, expected_version) -> row
    insert_in: Callable | None = None
    update_in: Callable | None = None
    # read by every role that reads records, not only the owner's (products, users)
    shared: bool = False
    write_role: str = "rep"  # the least role that creates and changes these records
    # fields no two live records may share, compared without case (a product's code)
    unique: tuple[str, ...] = ()

    def __post_init__(self):
        _ENTITIES.setdefault(self.table, self)

    @property
    def fields(self) -> list[Field]:
        """The code's fields and the custom ones, in the entity's layout."""
        from crm import custom_fields

        return custom_fields.merged(self.table, self.code_fields)

    @property
    def custom_fields(self) -> list[Field]:
        return [f for f in self.fields if f.custom]

    def create(self, db, user, values: dict) -> int:
        if self.creator:
            return self.creator(db, user, values)
        return create(db, user, self, values)

    def update(self, db, user, record_id: int, values: dict, expected_version: int,
               base: dict | None = None) -> dict:
        if self.updater:
            return self.updater(db, user, record_id, values, expected_version, base)
        return update(db, user, self, record_id, values, expected_version, base)

    @property
    def all_fields(self) -> list[Field]:
        return META_FIELDS + self.fields

    @property
    def spec(self) -> dict[str, Field]:
        return {f.name: f for f in self.all_fields}

    @property
    def editable(self) -> list[Field]:
        return [f for f in self.fields if f.editable]

    @property
    def owned(self) -> bool:
        return any(f.name == "owner_id" for f in self.fields)


_PERSON = "trim(coalesce({a}.first_name, '') || ' ' || {a}.last_name)"
REF_LABELS = {  # how a record of each table is named in lists and pickers
    "customers": "{a}.name", "stages": "{a}.name", "deals": "{a}.title", "users": "{a}.name",
    "contacts": _PERSON, "leads": _PERSON, "pipelines": "{a}.name", "products": "{a}.name",
    "complaints": "{a}.subject",
    "competitors": "{a}.name",
}


def entity(table: str) -> Entity:
    """The entity stored in a table (its module is imported on first use)."""
    if table not in _ENTITIES:
        from crm import importer

        importer.entities()  # imports every entity's module, which registers it
    return _ENTITIES[table]


class NotFound(LookupError):
    pass


class ConflictError(Exception):
    """Saving a stale copy: someone else saved the record since it was loaded."""

    def __init__(self, current: dict, changed: list[dict]):
        self.current = current
        self.changed = changed  # [{field, label, yours_was, theirs}]
        who, when = current.get("updated_by_name"), current.get("updated_at")
        when = i18n.format_datetime(when) if isinstance(when, datetime) else when
        if who:
            message = _("{who} changed this record at {when} after you opened it").format(
                who=who, when=when)
        else:
            message = _("Someone changed this record at {when} after you opened it").format(
                when=when)
        super().__init__(message)


class WriteConflict(ConflictError, WriteConflictBase):
    """A save that kept colliding with other people's saves at the same moment (the database
    rolled it back each time, so nothing of it was written)."""

    def __init__(self):
        self.current, self.changed = {}, []
        Exception.__init__(self, _("Others were saving the same records at the same moment, so "
                                   "this was not saved; please try again."))


@dataclass
class Page:
    rows: list[dict]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass
class Query:
    search: str = ""
    filters: dict = field(default_factory=dict)  # name -> list of values | (from, to) for dates
    sort: str | None = None
    descending: bool = True
    page: int = 1
    page_size: int = 50
    trash: bool = False
    fixed: dict = field(default_factory=dict)  # name -> value the rows must have (a parent)
    language: str | None = None  # sorts text by this language's alphabet (ICU collation)
    # the shown columns (field names, a saved view's); None: the specs' in_list fields
    columns: list[str] | None = None


# ICU collations built into DuckDB: Lithuanian puts Ą right after A, not after Z
COLLATIONS = {"lt": "lt", "fa": "fa"}


def _where(entity: Entity, user: User, q: Query) -> tuple[str, dict]:
    clauses = ["t.deleted_at IS NOT NULL" if q.trash else "t.deleted_at IS NULL"]
    params: dict = {}
    # viewers get all-team aggregates; record access is checked by require
    if user.role == "rep" and not entity.shared:
        clauses.append("t.owner_id = $me")
        params["me"] = user.id
    for i, (name, value) in enumerate((q.fixed or {}).items()):
        if name not in entity.spec:
            raise ValueError(f"{name} is not a field of {entity.table}")
        clauses.append(f"t.{name} = $fixed{i}")
        params[f"fixed{i}"] = value
    text = (q.search or "").strip()
    if text:
        cols = [f"t.{f.name}" for f in entity.fields if f.searchable]
        if search.needs_normalising(text):  # Persian letters or digits: every form matches
            params["q_re"] = search.regex(text)
            clauses.append("(" + " OR ".join(search.regex_clause(c) for c in cols) + ")")
        else:
            params["q"] = search.like_pattern(text)
            clauses.append("(" + " OR ".join(f"{c} ILIKE $q ESCAPE '\\'" for c in cols) + ")")
    spec = entity.spec
    for name, wanted in (q.filters or {}).items():
        f = spec.get(name)
        if f is None or not f.filter or wanted in (None, [], ()):
            continue
        if f.type in ("date", "datetime"):
            start, end = wanted
            if start:
                clauses.append(f"t.{name} >= $f_{name}_from")
                params[f"f_{name}_from"] = start
            if end:
                clauses.append(f"t.{name} < $f_{name}_to")
                params[f"f_{name}_to"] = end + timedelta(days=1) if isinstance(end, date) else end
        elif f.type == "bool":
            clauses.append(f"t.{name} = $f_{name}")
            params[f"f_{name}"] = bool(wanted)
        elif f.type in NUMERIC_TYPES:  # (from, to), either may be None: both ends included
            low, high = wanted
            if low is not None:
                clauses.append(f"t.{name} >= $f_{name}_from")
                params[f"f_{name}_from"] = low
            if high is not None:
                clauses.append(f"t.{name} <= $f_{name}_to")
                params[f"f_{name}_to"] = high
        elif f.type in TEXT_TYPES:  # contains the typed text, as the search matches it
            text = str(wanted).strip()
            if not text:
                continue
            if search.needs_normalising(text):
                params[f"f_{name}_re"] = search.regex(text)
                clauses.append(search.regex_clause(f"t.{name}", f"f_{name}_re"))
            else:
                params[f"f_{name}"] = search.like_pattern(text)
                clauses.append(f"t.{name} ILIKE $f_{name} ESCAPE '\\'")
        elif f.type == "multichoice":  # stored "A; B": any of the wanted choices
            names = []
            for i, v in enumerate(wanted):
                names.append(f"position($f_{name}_{i} IN '; ' || t.{name} || '; ') > 0")
                params[f"f_{name}_{i}"] = f"; {v}; "
            clauses.append("(" + " OR ".join(names) + ")")
        else:
            names = []
            for i, v in enumerate(wanted):
                names.append(f"$f_{name}_{i}")
                params[f"f_{name}_{i}"] = v
            clauses.append(f"t.{name} IN ({', '.join(names)})")
    return " AND ".join(clauses), params


def list_records(db: Database, user: User, entity: Entity, q: Query) -> Page:
    """One page of rows plus the total count; filtering, sorting and paging happen in SQL.

    The page is chosen on the table alone (ids only) and only its rows are joined to their
    owner and referenced records. A page past the middle is read from the other end (the same
    rows, in the same order). With a text search, which makes counting as slow as a scan, the
    first page and the count come from one scan; otherwise the count is cheap and goes first."""
    require(user, "view")
    where, params = _where(entity, user, q)
    sort = q.sort if q.sort in entity.spec else entity.default_sort[0]
    page_size = max(1, min(int(q.page_size), 500))
    shown = list_fields(entity, q.columns)
    select = _list_select(entity, shown)
    collate = _collation(entity, sort, q)
    order = _order("t", sort, q.descending, collate=collate)
    if int(q.page) <= 1 and (q.search or "").strip():
        keys = "t.id" if sort == "id" else f"t.id, t.{sort}"
        found = db.query(
            f"WITH m AS MATERIALIZED (SELECT {keys} FROM {entity.table} t WHERE {where})"
            f" {select}, (SELECT count(*) FROM m) AS {_TOTAL} FROM {entity.table} t"
            f" JOIN (SELECT m.id FROM m ORDER BY {_order('m', sort, q.descending, collate=collate)}"
            f" LIMIT $limit) p ON p.id = t.id{_list_joins(entity, shown)} ORDER BY {order}",
            {**params, "limit": page_size})
        total = found[0][_TOTAL] if found else 0
        for row in found:
            del row[_TOTAL]
        return Page(found, total, 1, page_size)
    total = db.scalar(f"SELECT count(*) FROM {entity.table} t WHERE {where}", params)
    last_page = max(1, -(-total // page_size))
    page = max(1, min(int(q.page), last_page))
    offset = (page - 1) * page_size
    limit = min(page_size, total - offset)
    if limit <= 0:
        return Page([], total, page, page_size)
    reverse = offset > total // 2  # nearer the end: skip fewer rows, from the other end
    if reverse:
        offset = total - offset - limit
    found = db.query(
        f"{select} FROM {entity.table} t JOIN (SELECT t.id FROM {entity.table} t WHERE {where}"
        f" ORDER BY {_order('t', sort, q.descending, reverse, collate)}"
        f" LIMIT $limit OFFSET $offset) p"
        f" ON p.id = t.id{_list_joins(entity, shown)} ORDER BY {order}",
        {**params, "limit": limit, "offset": offset})
    return Page(found, total, page, page_size)


_TOTAL = "list_total__"


def _order(alias: str, sort: str, descending: bool, reverse: bool = False,
           collate: str | None = None) -> str:
    """The list order: NULLs last, ties by id. reverse gives the exact opposite order (NULLs
    first), so reading from the other end yields the same rows, reversed."""
    direction = "DESC" if descending != reverse else "ASC"
    nulls = "FIRST" if reverse else "LAST"
    by = f"{alias}.{sort}" + (f" COLLATE {collate}" if collate else "")
    return f"{by} {direction} NULLS {nulls}, {alias}.id {direction}"


def _collation(entity: Entity, sort: str, q: Query) -> str | None:
    """The collation for a text sort in the query's language (None: byte order)."""
    f = entity.spec.get(sort)
    if f is None or f.type not in TEXT_TYPES:
        return None
    return COLLATIONS.get(q.language or "")


def list_fields(entity: Entity, columns: list[str] | None = None) -> list[Field]:
    """The list's columns in order: the named fields that exist now (a saved view's, which may
    name a field deleted since: left out), or the specs' in_list fields; id always first."""
    spec = entity.spec
    if columns:
        named = [spec[n] for n in dict.fromkeys(columns) if n in spec and n != "id"]
        if named:
            return [spec["id"], *named]
    return [f for f in entity.all_fields if f.in_list]


def _list_select(entity: Entity, shown: list[Field] | None = None) -> str:
    """The list columns over t, the referenced records' names (r_<field>) and the owner (u)."""
    default = list_fields(entity)
    shown = default if shown is None else shown
    names = [f.name for f in shown]
    if names == [f.name for f in default]:  # the owner in its place among the fields
        names = [f.name for f in entity.all_fields if f.in_list or f.name == "owner_id"]
    elif entity.owned and "owner_id" not in names:
        names.append("owner_id")
    cols = [f"t.{n}" for n in names]
    for f in shown:
        if f.type == "ref":  # show the referenced record's name, not its id
            label = (REF_LABELS[f.ref].format(a="r_" + f.name) if f.ref in REF_LABELS
                     else f"'#' || CAST(t.{f.name} AS VARCHAR)")  # a table without a name
            cols.append(f"{label} AS {f.name}__label")
    owner = "u.name" if entity.owned else "CAST(NULL AS VARCHAR)"
    return f"SELECT {', '.join(cols)}, {owner} AS owner_name"


def _list_joins(entity: Entity, shown: list[Field] | None = None) -> str:
    joins = " LEFT JOIN users u ON u.id = t.owner_id" if entity.owned else ""
    for f in list_fields(entity) if shown is None else shown:
        if f.type == "ref" and f.ref in REF_LABELS:
            joins += f" LEFT JOIN {f.ref} r_{f.name} ON r_{f.name}.id = t.{f.name}"
    return joins


def get(db: Database, user: User, entity: Entity, record_id: int) -> dict:
    row = fetch(db, entity, record_id)
    if row is None:
        raise NotFound(_("{entity} #{id} does not exist").format(entity=_(entity.label),
                                                                 id=record_id))
    require(user, "view", None if entity.shared else row)
    return row


def require_write(user: User, entity: Entity, action: str, row: dict | None = None) -> None:
    """require() for a write, and the entity's least role (products: managers; users: admins)."""
    if user is not None and user.role != "viewer" and RANK[user.role] < RANK[entity.write_role]:
        if entity.write_role == "admin":
            raise PermissionDenied(_("Only an admin can change {plural}").format(
                plural=_(entity.plural)))
        raise PermissionDenied(_("Only managers and admins can change the catalog of {plural}")
                               .format(plural=_(entity.plural)))
    require(user, action, row)


def _check_unique(cur, entity: Entity, clean: dict, record_id: int | None = None) -> None:
    for name in entity.unique:
        value = clean.get(name)
        if value in (None, ""):
            continue
        taken = cur.execute(
            f"SELECT id FROM {entity.table} WHERE lower({name}) = lower($v)"
            f" AND deleted_at IS NULL AND id <> $id LIMIT 1",
            {"v": str(value), "id": record_id or 0}).fetchone()
        if taken:
            raise ValidationError({name: _("{entity} #{id} already has this {field}").format(
                entity=_(entity.label), id=taken[0], field=entity.spec[name].shown_label)})


def visible(entity: Entity, user: User) -> tuple[str, dict]:
    """SQL condition (over alias t) and parameters for the live rows the user may see, for
    other modules' aggregates and pickers."""
    return _where(entity, user, Query())


def fetch(db_or_cur, entity: Entity, record_id: int) -> dict | None:
    """One row with its title and owner's name, trashed or not, without a permission check
    (commands check it themselves)."""
    row = _row(db_or_cur, entity, record_id)
    return None if row is None else _with_names(db_or_cur, row)


def _query(db_or_cur, sql: str, params: dict) -> list[dict]:
    if isinstance(db_or_cur, Database):
        return db_or_cur.query(sql, params)
    return rows(db_or_cur, sql, params)


def _row(db_or_cur, entity: Entity, record_id: int) -> dict | None:
    """The row and its title alone: what the commands check."""
    found = _query(db_or_cur, f"SELECT t.*, {entity.title_sql} AS record_title"
                              f" FROM {entity.table} t WHERE t.id = $id", {"id": int(record_id)})
    return found[0] if found else None


def _with_names(db_or_cur, row: dict) -> dict:
    """Adds owner_name and updated_by_name, looked up by id (cheaper than joining users)."""
    owner, editor = row.get("owner_id"), row.get("updated_by")
    wanted = {i for i in (owner, editor) if i is not None}
    names = {}
    if wanted:
        params = {f"u{i}": u for i, u in enumerate(wanted)}
        names = {r["id"]: r["name"] for r in _query(
            db_or_cur, f"SELECT id, name FROM users WHERE id IN"
                       f" ({', '.join('$' + k for k in params)})", params)}
    return {**row, "owner_name": names.get(owner), "updated_by_name": names.get(editor)}


def _only_when(entity: Entity, clean: dict, merged: dict) -> None:
    """A field kept only while another has a value (a person's birthday): cleared when the
    record as it will be stored says otherwise, whether or not that other field was given."""
    for f in entity.fields:
        if f.only_when and f.name in merged:
            other, wanted = f.only_when
            if merged.get(other) != wanted and merged[f.name] is not None:
                clean[f.name] = merged[f.name] = None


def _check(entity: Entity, clean: dict) -> None:
    if entity.check:
        errors = entity.check(clean)
        if errors:
            raise ValidationError(errors)


def _check_links(cur, user: User, entity: Entity, clean: dict) -> None:
    """Custom link fields must name a live record the user may see, or an active user (the
    code's own links are checked by their entity's commands)."""
    errors = {}
    for f in entity.fields:
        value = clean.get(f.name)
        if not f.custom or value is None or f.type not in ("ref", "user"):
            continue
        if f.type == "user":
            if not cur.execute("SELECT 1 FROM users WHERE id = $id AND active",
                               {"id": value}).fetchone():
                errors[f.name] = _("{label} must be an active user").format(label=f.shown_label)
            continue
        owner = "owner_id" if f.ref in OWNED else "CAST(NULL AS BIGINT)"
        found = rows(cur, f"SELECT {owner} AS owner_id FROM {f.ref} WHERE id = $id"
                          " AND deleted_at IS NULL", {"id": value})
        if not found or (f.ref in OWNED and not may_view(user, found[0])):
            errors[f.name] = _("{label}: record #{id} does not exist").format(
                label=f.shown_label, id=value)
    if errors:
        raise ValidationError(errors)


def _owner_rules(user: User, clean: dict, cur) -> None:
    if "owner_id" not in clean:
        return
    if clean["owner_id"] is None:
        clean["owner_id"] = user.id or None
    if not user.sees_all and clean["owner_id"] != user.id:
        raise PermissionDenied(_("Reps can only assign records to themselves"))
    if clean["owner_id"] is not None:
        ok = cur.execute("SELECT 1 FROM users WHERE id = $id AND active",
                         {"id": clean["owner_id"]}).fetchone()
        if not ok:
            raise ValidationError({"owner_id": _("Owner must be an active user")})


@retried
def create(db: Database, user: User, entity: Entity, values: dict) -> int:
    with db.transaction() as cur:
        return insert(cur, user, entity, values)


def insert(cur, user: User, entity: Entity, values: dict, derived: dict | None = None) -> int:
    """create() inside a caller's transaction (lead conversion makes several records at once).

    derived: columns the calling command computed itself (not user input), e.g. a deal's
    pipeline from its stage."""
    require_write(user, entity, "create")
    clean = validate(entity.fields, values)
    _check(entity, clean)
    _check_unique(cur, entity, clean)
    _check_links(cur, user, entity, clean)
    if any(f.name == "owner_id" for f in entity.fields):
        clean.setdefault("owner_id", None)
    now = datetime.now()
    _owner_rules(user, clean, cur)
    _check_parent(cur, user, entity, clean)
    clean.update(derived or {})
    clean.update(created_at=now, updated_at=now, created_by=user.id or None,
                 updated_by=user.id or None)
    cols = list(clean)
    sql = (
        f"INSERT INTO {entity.table} ({', '.join(cols)})"
        f" VALUES ({', '.join('$' + c for c in cols)}) RETURNING id"
    )
    new_id = cur.execute(sql, clean).fetchone()[0]
    audit.record(cur, user, entity.table, new_id, "create",
                 {f.name: [None, clean[f.name]] for f in entity.editable
                  if clean.get(f.name) not in (None, False)})
    rules.on_created(cur, user, entity, [new_id])  # automation; a failing rule never raises
    return new_id


class RowError(Exception):
    """A refusal of one of the records given to insert_many: its index and the reason."""

    def __init__(self, index: int, error: Exception):
        super().__init__(str(error))
        self.index, self.error = index, error


def insert_many(cur, user: User, entity: Entity, values_list: list[dict]) -> list[int]:
    """insert() of many records at once, with the same checks, in a handful of statements (an
    import of thousands of rows); returns the new ids in order. Raises RowError naming the
    first record refused."""
    require_write(user, entity, "create")
    if not values_list:
        return []
    cleans = []
    for i, values in enumerate(values_list):
        try:
            clean = validate(entity.fields, values)
            _check(entity, clean)
        except ValidationError as exc:
            raise RowError(i, exc) from None
        if entity.owned:
            if clean.get("owner_id") is None:
                clean["owner_id"] = user.id or None
            if not user.sees_all and clean["owner_id"] != user.id:
                raise RowError(i, PermissionDenied(_("Reps can only assign records to "
                                                     "themselves")))
        cleans.append(clean)
    _check_many(cur, user, entity, cleans)
    if any(f.custom and f.type in ("ref", "user") for f in entity.fields):
        for i, clean in enumerate(cleans):
            try:
                _check_links(cur, user, entity, clean)
            except ValidationError as exc:
                raise RowError(i, exc) from None
    n = len(cleans)
    # fetched to the end: register() below refuses a cursor with an unfinished result; the
    # ids as drawn (on PostgreSQL other processes may draw between them)
    ids = sorted(r[0] for r in cur.execute(f"SELECT nextval('{entity.table}_id_seq')"
                                           " FROM generate_series(1, $n)", {"n": n}).fetchall())
    now, by = datetime.now(), user.id or None
    columns = list(cleans[0])
    frame = pd.DataFrame({"id": [str(i) for i in ids],
                          **{c: [dialect.as_text(clean.get(c)) for clean in cleans] for c in columns}},
                         dtype=object)
    types = _column_types(cur, entity.table)  # PostgreSQL casts text only when told
    cur.register("crm_insert_many", frame)
    try:
        cur.execute(
            f"INSERT INTO {entity.table} (id, {', '.join(columns)}, created_at, updated_at,"
            f" created_by, updated_by) SELECT"
            f" {', '.join(f'CAST({c} AS {types[c]})' for c in ['id', *columns])},"
            f" $now, $now, $by, $by FROM crm_insert_many", {"now": now, "by": by})
    finally:
        cur.unregister("crm_insert_many")
    audit.record_each(cur, user, entity.table, ids, "create", [
        {f.name: [None, clean[f.name]] for f in entity.editable
         if clean.get(f.name) not in (None, False)} for clean in cleans])
    rules.on_created(cur, user, entity, ids)  # no enabled rule: one cached lookup in all
    return ids


def update_many(cur, user: User, entity: Entity, items: list[tuple[int, dict, int]]
                ) -> list[dict]:
    """update_in() of many records at once, each (record_id, values, expected version), with
    the same checks; one UPDATE for all. Returns each record's changes {field: (old, new)}
    (empty when nothing differed). Raises RowError naming the first record refused."""
    if not items:
        return []
    ids = [int(record_id) for record_id, _v, _e in items]
    current = {r["id"]: r for r in rows(cur, f"SELECT t.* FROM {entity.table} t"
                                              f" WHERE t.id = ANY($ids)", {"ids": ids})}
    out, owners = [], {}
    for i, (record_id, values, expected) in enumerate(items):
        try:
            clean = validate(entity.fields, values, partial=True)
            for f in entity.fields:
                if f.create_only or f.name == entity.parent:
                    clean.pop(f.name, None)
            row = current.get(int(record_id))
            if row is None or row["deleted_at"] is not None:
                raise NotFound(_("{entity} #{id} does not exist or is in the trash").format(
                    entity=_(entity.label), id=record_id))
            require_write(user, entity, "edit", row)
            if row["version"] != expected:
                raise ConflictError(row, [])
            merged = {**{f.name: row[f.name] for f in entity.editable}, **clean}
            _only_when(entity, clean, merged)
            _check(entity, merged)
            if "owner_id" in clean and clean["owner_id"] != row["owner_id"]:
                if clean["owner_id"] is None:
                    clean["owner_id"] = user.id or None
                if not user.sees_all and clean["owner_id"] != user.id:
                    raise PermissionDenied(_("Reps can only assign records to themselves"))
                if clean["owner_id"] is not None:
                    owners[i] = clean["owner_id"]
        except (ValidationError, PermissionDenied, NotFound, ConflictError) as exc:
            raise RowError(i, exc) from None
        out.append({k: (row[k], v) for k, v in clean.items() if _differs(row[k], v)})
    if owners:
        active = {r[0] for r in cur.execute("SELECT id FROM users WHERE active AND"
                                            " id = ANY($ids)",
                                            {"ids": sorted(set(owners.values()))}).fetchall()}
        for i, owner in owners.items():
            if owner not in active:
                raise RowError(i, ValidationError({"owner_id": _("Owner must be an active "
                                                                 "user")}))
    if any(f.custom and f.type in ("ref", "user") for f in entity.fields):
        for i, changes in enumerate(out):
            try:
                _check_links(cur, user, entity, {k: v for k, (_o, v) in changes.items()})
            except ValidationError as exc:
                raise RowError(i, exc) from None
    for name in entity.unique:
        for i, changes in enumerate(out):
            if name in changes:
                try:
                    _check_unique(cur, entity, {name: changes[name][1]}, ids[i])
                except ValidationError as exc:
                    raise RowError(i, exc) from None
    _write_updates(cur, user, entity, ids, [e for _r, _v, e in items], out)
    return out


def _write_updates(cur, user: User, entity: Entity, ids: list[int], versions: list[int],
                   changes: list[dict]) -> None:
    """One UPDATE ... FROM a frame of the changed values (typed back by the columns' own
    types), version-checked; then the audit entries."""
    changed = [i for i, c in enumerate(changes) if c]
    if not changed:
        return
    columns = sorted({k for i in changed for k in changes[i]})
    types = _column_types(cur, entity.table)
    frame = pd.DataFrame({
        "id": [ids[i] for i in changed], "version": [versions[i] for i in changed],
        **{f"v_{c}": [dialect.as_text(changes[i][c][1]) if c in changes[i] else None
                      for i in changed] for c in columns},
        **{f"ch_{c}": [c in changes[i] for i in changed] for c in columns}}).astype(
        {f"v_{c}": object for c in columns})
    assigns = ", ".join(f"{c} = CASE WHEN u.ch_{c} THEN CAST(u.v_{c} AS {types[c]})"
                        f" ELSE {entity.table}.{c} END" for c in columns)
    cur.register("crm_update_many", frame)
    try:
        updated = cur.execute(
            f"UPDATE {entity.table} SET {assigns}, version = {entity.table}.version + 1,"
            f" updated_at = $now, updated_by = $by FROM crm_update_many u"
            f" WHERE {entity.table}.id = u.id AND {entity.table}.version = u.version",
            {"now": datetime.now(), "by": user.id or None}).fetchall()[0][0]
    finally:
        cur.unregister("crm_update_many")
    if updated != len(changed):  # someone saved meanwhile: the caller's transaction rolls back
        raise RowError(changed[0], ConflictError({}, []))
    audit.record_each(cur, user, entity.table, [ids[i] for i in changed], "update",
                      [changes[i] for i in changed])
    rules.on_changed_many(cur, user, entity, [ids[i] for i in changed],
                          [changes[i] for i in changed])


def _column_types(cur, table: str) -> dict[str, str]:
    return dict(cur.execute("SELECT column_name, data_type FROM information_schema.columns"
                            " WHERE table_name = $t", {"t": table}).fetchall())


def _check_many(cur, user: User, entity: Entity, cleans: list[dict]) -> None:
    """The per-record checks of insert() that read the database, one query each."""
    owners = sorted({c["owner_id"] for c in cleans if c.get("owner_id") is not None})
    if owners:
        active = {r[0] for r in cur.execute("SELECT id FROM users WHERE active AND"
                                            " id = ANY($ids)", {"ids": owners}
                                            ).fetchall()}
        for i, clean in enumerate(cleans):
            if clean.get("owner_id") is not None and clean["owner_id"] not in active:
                raise RowError(i, ValidationError({"owner_id": _("Owner must be an active "
                                                                 "user")}))
    if entity.parent:
        parent_table = {"customer_id": "customers"}[entity.parent]
        wanted = sorted({c[entity.parent] for c in cleans if c.get(entity.parent) is not None})
        found = dict(cur.execute(f"SELECT id, owner_id FROM {parent_table} WHERE deleted_at"
                                 " IS NULL AND id = ANY($ids)", {"ids": wanted}
                                 ).fetchall()) if wanted else {}
        for i, clean in enumerate(cleans):
            if entity.parent not in clean:
                continue
            if clean[entity.parent] not in found:
                raise RowError(i, ValidationError({entity.parent: _("The parent record does "
                                                                    "not exist")}))
            try:
                require(user, "edit", {"owner_id": found[clean[entity.parent]]})
            except PermissionDenied as exc:
                raise RowError(i, exc) from None
    for name in entity.unique:
        seen: dict[str, int] = {}
        for i, clean in enumerate(cleans):
            value = str(clean.get(name) or "").lower()
            if value and value in seen:
                raise RowError(i, ValidationError({name: _(
                    "the same {field} as another record of this import").format(
                    field=entity.spec[name].shown_label)}))
            if value:
                seen[value] = i
        if seen:
            taken = cur.execute(f"SELECT id, lower({name}) FROM {entity.table} WHERE deleted_at"
                                f" IS NULL AND lower({name}) = ANY($v) LIMIT 1",
                                {"v": sorted(seen)}).fetchall()
            if taken:
                taken = taken[0]
                raise RowError(seen[taken[1]], ValidationError({name: _(
                    "{entity} #{id} already has this {field}").format(
                    entity=_(entity.label), id=taken[0], field=entity.spec[name].shown_label)}))


def _check_parent(cur, user: User, entity: Entity, clean: dict) -> None:
    if not entity.parent or entity.parent not in clean:
        return
    parent_table = {"customer_id": "customers"}[entity.parent]
    row = cur.execute(
        f"SELECT owner_id FROM {parent_table} WHERE id = $id AND deleted_at IS NULL",
        {"id": clean[entity.parent]},
    ).fetchone()
    if row is None:
        raise ValidationError({entity.parent: _("The parent record does not exist")})
    require(user, "edit", {"owner_id": row[0]})


@retried
def update(db: Database, user: User, entity: Entity, record_id: int, values: dict,
           expected_version: int, base: dict | None = None) -> dict:
    """Saves changed fields if nobody saved since expected_version; returns the new row.

    base is the copy the user started from; on a conflict it tells which fields they changed."""
    with db.transaction() as cur:
        return update_in(cur, user, entity, record_id, values, expected_version, base)


def update_in(cur, user: User, entity: Entity, record_id: int, values: dict,
              expected_version: int | None, base: dict | None = None) -> dict:
    """update() inside a caller's transaction; expected_version None skips the version check
    (for commands that change a record as a side effect, e.g. marking a lead converted)."""
    clean = validate(entity.fields, values, partial=True)
    for f in entity.fields:
        if f.create_only or f.name == entity.parent:
            clean.pop(f.name, None)  # set once; changed only by their own commands
    current = _row(cur, entity, record_id)  # read once, without names, for the checks
    if current is None or current["deleted_at"] is not None:
        raise NotFound(_("{entity} #{id} does not exist or is in the trash").format(
            entity=_(entity.label), id=record_id))
    require_write(user, entity, "edit", current)
    if expected_version is None:
        expected_version = current["version"]
    if current["version"] != expected_version:
        raise ConflictError(_with_names(cur, current),
                            _conflicts(entity, base or {}, current, clean))
    merged = {**{f.name: current[f.name] for f in entity.editable}, **clean}
    _only_when(entity, clean, merged)
    _check(entity, merged)
    _check_unique(cur, entity, clean, record_id)
    if "owner_id" in clean and clean["owner_id"] != current["owner_id"]:
        _owner_rules(user, clean, cur)
    changes = {k: (current[k], v) for k, v in clean.items() if _differs(current[k], v)}
    if not changes:
        return _with_names(cur, current)
    _check_links(cur, user, entity, {k: v for k, (_o, v) in changes.items()})
    assigns = ", ".join(f"{k} = ${k}" for k in changes)
    params = {k: v for k, (_, v) in changes.items()}
    params.update(id=record_id, v=expected_version, now=datetime.now(), by=user.id or None)
    # No RETURNING: DuckDB then rejects updates of rows another table references.
    updated = cur.execute(
        f"UPDATE {entity.table} SET {assigns}, version = version + 1, updated_at = $now,"
        f" updated_by = $by WHERE id = $id AND version = $v",
        params,
    ).fetchone()[0]
    if updated != 1:  # belt and braces: the version moved under us
        raise ConflictError(_with_names(cur, current),
                            _conflicts(entity, base or {}, current, clean))
    audit.record(cur, user, entity.table, record_id, "update", changes)
    rules.on_changed(cur, user, entity, record_id, changes)  # a failing rule never raises
    return fetch(cur, entity, record_id)  # as stored (types, defaults), with names


def _differs(old, new) -> bool:
    if old is None or new is None:
        return (old is None) != (new is None) and not (old in (None, "") and new in (None, ""))
    if isinstance(old, datetime) and isinstance(new, date) and not isinstance(new, datetime):
        return old.date() != new
    try:
        return old != type(old)(new)
    except (TypeError, ValueError, ArithmeticError):
        return old != new


def _conflicts(entity: Entity, base: dict, current: dict, mine: dict) -> list[dict]:
    """Fields the other person changed (base -> current), with what this user wants there."""
    out = []
    for f in entity.editable:
        if f.name in base and _differs(base[f.name], current[f.name]):
            out.append({"field": f.name, "label": f.label, "yours_was": base[f.name],
                        "theirs": current[f.name], "yours": mine.get(f.name, base[f.name])})
    return out


def delete(db: Database, user: User, entity: Entity, record_id: int) -> None:
    """Moves a record to the trash; restore() brings it back."""
    _set_deleted(db, user, entity, record_id, deleted=True)


def restore(db: Database, user: User, entity: Entity, record_id: int) -> None:
    _set_deleted(db, user, entity, record_id, deleted=False)


@retried
def _set_deleted(db: Database, user: User, entity: Entity, record_id: int, deleted: bool):
    with db.transaction() as cur:
        current = fetch(cur, entity, record_id)
        if current is None:
            raise NotFound(_("{entity} #{id} does not exist").format(
                entity=_(entity.label), id=record_id))
        require_write(user, entity, "delete", current)
        if (current["deleted_at"] is not None) == deleted:
            return
        now = datetime.now()
        cur.execute(
            f"UPDATE {entity.table} SET deleted_at = $at, deleted_by = $by,"
            f" version = version + 1, updated_at = $now, updated_by = $uid WHERE id = $id",
            {"at": now if deleted else None, "by": (user.id or None) if deleted else None,
             "now": now, "uid": user.id or None, "id": record_id},
        )
        audit.record(cur, user, entity.table, record_id, "delete" if deleted else "restore")
        if entity.table == "deals":  # a trashed deal leaves the kept stage counts
            from crm import stage_reach

            stage_reach.refresh_deal(cur, record_id)


def history(db: Database, user: User, entity: Entity, record_id: int) -> list[dict]:
    get(db, user, entity, record_id)  # permission check
    return audit.history(db, entity.table, record_id)


def count(db: Database, user: User, entity: Entity, where_sql: str = "", params=None) -> int:
    q_where, q_params = _where(entity, user, Query())
    if where_sql:
        q_where += f" AND ({where_sql})"
    return db.scalar(f"SELECT count(*) FROM {entity.table} t WHERE {q_where}",
                     {**q_params, **(params or {})})


def export_columns(entity: Entity) -> list[Field]:
    return [f for f in entity.all_fields if f.export]


EXPORT_FORMATS = {  # format -> (file extension, mime type)
    "csv": ("csv", "text/csv"),
    "xlsx": ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "parquet": ("parquet", "application/vnd.apache.parquet"),
}
XLSX_MAX_ROWS = 1_048_575  # an Excel sheet holds 1,048,576 rows, one of them the header
XLSX_MAX_CELL = 32_767  # characters Excel keeps in one cell


def export_csv(db: Database, user: User, entity: Entity, q: Query, batch: int = 10_000,
               translated_headers: bool = False) -> bytes:
    """Every row matching the list's search and filters, in the spec's export columns, as CSV
    (export() with fmt="csv")."""
    return export(db, user, entity, q, "csv", translated_headers, batch)


def export(db: Database, user: User, entity: Entity, q: Query, fmt: str = "csv",
           translated_headers: bool = False, batch: int = 10_000) -> bytes:
    """Every row matching the list's search and filters, in the spec's export columns plus the
    owner's username, as CSV, Excel (xlsx) or Parquet bytes (for a download button).

    Headers are the stable column names (what an import reads back), or with
    translated_headers the field labels in the current language, for people to read. Text that
    a spreadsheet would run as a formula is neutralised in CSV and Excel."""
    import io
    import tempfile
    from pathlib import Path

    if fmt == "parquet":  # DuckDB writes the file; read it back once
        with tempfile.TemporaryDirectory(prefix="crm-export-") as tmp:
            path = Path(tmp) / "export.parquet"
            export_to(db, user, entity, q, path, fmt, translated_headers, batch)
            return path.read_bytes()
    out = io.BytesIO()
    _write_export(db, user, entity, q, out, fmt, translated_headers, batch)
    return out.getvalue()


def export_to(db: Database, user: User, entity: Entity, q: Query, path, fmt: str = "csv",
              translated_headers: bool = False, batch: int = 10_000) -> int:
    """export() into a file; returns the number of rows. The file appears only when complete
    (written beside it under a temporary name, then renamed)."""
    import os
    from pathlib import Path

    path = Path(path)
    part = path.with_name(path.name + ".part")
    try:
        if fmt == "parquet":
            count = _copy_parquet(db, user, entity, q, part, translated_headers)
        else:
            with open(part, "wb") as out:
                count = _write_export(db, user, entity, q, out, fmt, translated_headers, batch)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return count


def _export_select(user: User, entity: Entity, q: Query, translated_headers: bool
                   ) -> tuple[str, dict, list[str]]:
    """The export query over the list's WHERE and ORDER BY, its parameters and the headers."""
    require(user, "view")
    where, params = _where(entity, user, q)
    columns = export_columns(entity)
    has_owner = any(f.name == "owner_id" for f in columns)
    if translated_headers:
        headers = [f.shown_label for f in columns] + (
            [i18n.gettext("Owner (username)")] if has_owner else [])
    else:
        headers = [f.name for f in columns] + (["owner_username"] if has_owner else [])
    select = ", ".join(f"t.{f.name}" for f in columns) + (", u.username" if has_owner else "")
    owner_join = " LEFT JOIN users u ON u.id = t.owner_id" if has_owner else ""
    sort = q.sort if q.sort in entity.spec else entity.default_sort[0]
    sql = (f"SELECT {select} FROM {entity.table} t{owner_join} WHERE {where}"
           f" ORDER BY {_order('t', sort, q.descending, collate=_collation(entity, sort, q))}")
    return sql, params, headers


def _write_export(db: Database, user: User, entity: Entity, q: Query, out, fmt: str,
                  translated_headers: bool, batch: int) -> int:
    """Streams the rows into a binary file in batches: only one batch of Python rows exists at
    a time (the xlsx writer keeps its rows in a temporary file)."""
    if fmt not in ("csv", "xlsx"):
        raise ValueError(f"unknown export format {fmt!r} (csv, xlsx or parquet)")
    sql, params, headers = _export_select(user, entity, q, translated_headers)
    cur = db.cursor()
    try:
        cur.execute(sql, params)
        chunks = iter(lambda: cur.fetchmany(batch), [])
        if fmt == "csv":
            return _write_csv(out, headers, chunks)
        return _write_xlsx(out, headers, chunks, _(entity.plural))
    finally:
        cur.close()


def _write_csv(out, headers: list[str], chunks) -> int:
    import csv
    import io

    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="")  # the BOM: Excel reads
    try:                                                             # Persian text right
        writer = csv.writer(text)
        writer.writerow(headers)
        count = 0
        for chunk in chunks:
            writer.writerows([_csv_safe(v) for v in row] for row in chunk)
            count += len(chunk)
        text.flush()
        return count
    finally:
        text.detach()  # leave the caller's stream open


def _write_xlsx(out, headers: list[str], chunks, title: str) -> int:
    """One sheet, written by XlsxWriter in constant-memory mode: each row goes to a temporary
    file as it is written, so no more than a batch of rows is ever held in memory."""
    import xlsxwriter

    book = xlsxwriter.Workbook(out, {
        "constant_memory": True, "remove_timezone": True,  # Excel has no time zones
        # text is text: never turned into formulas, numbers or links
        "strings_to_formulas": False, "strings_to_numbers": False, "strings_to_urls": False})
    sheet = book.add_worksheet(_sheet_title(title))
    formats = {"date": book.add_format({"num_format": "yyyy-mm-dd"}),
               "datetime": book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
               "quoted": book.add_format({"quote_prefix": True})}
    for col, header in enumerate(headers):
        _xlsx_write(sheet, 0, col, header, formats)
    count = 0
    for chunk in chunks:
        if count + len(chunk) > XLSX_MAX_ROWS:
            raise ValueError(_("Excel holds at most {count} rows; export to CSV or Parquet"
                               " instead").format(count=i18n.number(XLSX_MAX_ROWS)))
        for row in chunk:
            count += 1
            for col, value in enumerate(row):
                _xlsx_write(sheet, count, col, value, formats)
    book.close()
    return count


def _sheet_title(title: str) -> str:
    for bad in "[]:*?/\\":
        title = title.replace(bad, " ")
    return title.strip().strip("'")[:31] or "Export"


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xlsx_write(sheet, row: int, col: int, value, formats: dict) -> None:
    """One cell by its type. Text that looks like a formula is written as text with Excel's
    quote prefix (what typing a leading ' does): it shows as stored and never runs, even when
    edited. Characters XML cannot hold are dropped; text is cut to Excel's cell limit."""
    if value is None:
        return
    if isinstance(value, bool):
        sheet.write_boolean(row, col, value)
    elif isinstance(value, (int, float, Decimal)):
        sheet.write_number(row, col, float(value))
    elif isinstance(value, datetime):
        sheet.write_datetime(row, col, value, formats["datetime"])
    elif isinstance(value, date):
        sheet.write_datetime(row, col, value, formats["date"])
    else:
        text = _XML_ILLEGAL.sub("", value if isinstance(value, str) else str(value))
        text = text[:XLSX_MAX_CELL]
        if text[:1] in _FORMULA_STARTS:
            sheet.write_string(row, col, text, formats["quoted"])
        else:
            sheet.write_string(row, col, text)


def _copy_parquet(db: Database, user: User, entity: Entity, q: Query, path,
                  translated_headers: bool) -> int:
    """Fast path (DuckDB only): COPY writes the export query's rows to a Parquet file without
    passing them through Python. Parquet keeps types (numbers, dates), so nothing is
    neutralised: no spreadsheet runs its cells as formulas."""
    sql, params, headers = _export_select(user, entity, q, translated_headers)
    names, seen = [], set()
    for h in headers:  # Parquet needs distinct column names
        name, n = h, 2
        while name.lower() in seen:
            name, n = f"{h} ({n})", n + 1
        seen.add(name.lower())
        names.append('"' + name.replace('"', '""') + '"')
    cur = db.cursor()
    try:
        if db.dialect != dialect.DUCKDB:
            return dialect.parquet_from_postgresql(cur, sql, params, names, path)
        row = cur.execute(
            f"COPY (SELECT * FROM ({sql}) AS e ({', '.join(names)})) TO $export_file"
            f" (FORMAT parquet)", {**params, "export_file": str(path)}).fetchone()
    finally:
        cur.close()
    return int(row[0]) if row else 0


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(value):
    """Neutralises spreadsheet formulas in user text (CSV injection)."""
    if isinstance(value, str) and value[:1] in _FORMULA_STARTS:
        return "'" + value
    return value


OWNED = {"leads", "customers", "contacts", "deals", "activities", "tasks", "surveys",
         "complaints"}


def ref_label(db: Database, user: User, table: str, record_id: int) -> str:
    """The name of one referenced record (REF_LABELS), e.g. a deal's title; only "#id" when
    the record is someone else's and the user may not see it."""
    label = REF_LABELS[table].format(a="r")
    owner = "r.owner_id" if table in OWNED else "NULL"
    row = db.one(f"SELECT {label} AS label, {owner} AS owner_id FROM {table} r WHERE r.id = $id",
                 {"id": record_id})
    if row is None or (table in OWNED and not may_view(user, row)):
        return f"#{record_id}"
    return row["label"] or f"#{record_id}"


def may_write(user: User, entity: Entity, row: dict | None = None) -> bool:
    try:
        require_write(user, entity, "edit" if row else "create", row)
    except PermissionDenied:
        return False
    return True


def may_view(user: User, row: dict) -> bool:
    try:
        require(user, "view", row)
    except PermissionDenied:
        return False
    return True


def choices(db: Database, user: User, entity: Entity, limit: int = 2000) -> dict[int, str]:
    """{id: name} of the live records the user may see, most recently changed first, for
    pickers."""
    where, params = visible(entity, user)
    params["n"] = limit
    found = db.query(f"SELECT t.id, {entity.title_sql} AS label FROM {entity.table} t"
                     f" WHERE {where} ORDER BY t.updated_at DESC, t.id DESC LIMIT $n", params)
    return {r["id"]: r["label"] or f"#{r['id']}" for r in found}
