"""Custom fields and form layouts: what an admin adds to an entity in Settings.

A custom field is a row of `custom_fields` and a real, typed column of the entity's table, so
SQL and BI tools see it. Entities read their field list from merged(): the code's specs and
the stored custom ones, ordered and grouped by the entity's layout. The merged lists are kept
per process and reloaded when the stored stamp changes (any session, any process)."""
from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import replace
from datetime import datetime

from crm import audit
from crm.auth import PermissionDenied, User
from crm.fields import TEXT_TYPES, Field, ValidationError, convert
from crm.i18n import N_, gettext as _

# the types an admin chooses from, and their column types (portable SQL)
TYPES = {
    "text": "VARCHAR", "longtext": "VARCHAR", "number": "DOUBLE PRECISION",
    "integer": "BIGINT", "money": "DECIMAL(18,2)", "date": "DATE", "datetime": "TIMESTAMP",
    "bool": "BOOLEAN", "choice": "VARCHAR", "multichoice": "VARCHAR", "email": "VARCHAR",
    "phone": "VARCHAR", "url": "VARCHAR", "ref": "BIGINT", "user": "BIGINT",
}
TYPE_LABELS = {
    "text": N_("Text"), "longtext": N_("Long text"), "number": N_("Number"),
    "integer": N_("Whole number"), "money": N_("Money"), "date": N_("Date"),
    "datetime": N_("Date and time"), "bool": N_("Yes/no"), "choice": N_("Single choice"),
    "multichoice": N_("Multiple choice"), "email": N_("Email"), "phone": N_("Phone"),
    "url": N_("Web address"), "ref": N_("Link to a record"), "user": N_("Link to a user"),
}
# what a link field may point at (the tables records.REF_LABELS names)
REF_TABLES = ("customers", "contacts", "leads", "deals", "products", "competitors",
              "complaints")
# entities an admin may extend: the tables of the spec-driven entities
ENTITIES = ("leads", "customers", "contacts", "deals", "activities", "tasks", "products",
            "surveys", "complaints", "competitors", "price_records", "customer_returns")

NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")
# SQL words (DuckDB's and PostgreSQL's reserved, type and column-name keywords: every one
# that is not "unreserved" on either engine; tests compare with the engines' own catalogs) and
# the aliases the list queries add: a column by one of these names would break a query (on
# PostgreSQL a lead column named grant made every INSERT INTO leads fail)
RESERVED = frozenset("""
all analyse analyze and any array as asc asymmetric both case cast check collate column
constraint create default deferrable desc describe distinct do else end except false fetch for
foreign from group having in initially intersect into lambda lateral leading limit not null
offset on only or order pivot pivot_longer pivot_wider placing primary qualify references
returning select show some summarize symmetric table then to trailing true union unique unpivot
using variadic when where window with anti asof at authorization binary by collation columns
concurrently cross freeze full generated glob ilike inner is isnull join left like map natural
notnull outer overlaps positional right semi similar struct tablesample try_cast tuple unpack
verbose between bigint bit boolean char character coalesce dec decimal exists extract float
grouping grouping_id inout int integer interval national nchar none nullif numeric out overlay
position precision real row setof smallint substring time timestamp treat trim values varchar
current_date current_time current_timestamp current_user current_role current_catalog
current_schema localtime localtimestamp session_user user system_user oid ctid xmin xmax
grant greatest least normalize xmlattributes xmlconcat xmlelement xmlexists xmlforest
xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable
owner_name updated_by_name record_title rowid
""".split())
CHOICE_FORBIDDEN = re.compile(r"[;,|\n]")  # the separators of a stored multiple choice
COLOR_RE = re.compile(r"#[0-9a-fA-F]{6}")
STAMP_KEY = "custom_fields_stamp"

_lock = threading.Lock()
_state: dict = {"stamp": None, "custom": {}, "layouts": {}, "merged": {}}


# --- the merged field lists -------------------------------------------------------------

def merged(table: str, code_fields: list[Field]) -> list[Field]:
    """The entity's fields: the code's, then the custom ones, in the layout's order."""
    key = (table, id(code_fields))
    found = _state["merged"].get(key)
    if found is None or found[0] is not code_fields:  # an id reused by another list
        found = (code_fields, _merge(code_fields, _state["custom"].get(table, []),
                                     _state["layouts"].get(table, {})))
        _state["merged"][key] = found
    return found[1]


def _merge(code: list[Field], custom: list[Field], layout: dict) -> list[Field]:
    fields = list(code) + list(custom)
    if not layout:
        return fields
    out = []
    for f in fields:
        row = layout.get(f.name)
        if row:
            changes = {"quick": bool(row["quick"]) or f.required}
            if row["section"]:
                changes["section"] = row["section"]
            if row["in_list"] is not None:
                changes["in_list"] = bool(row["in_list"])
            f = replace(f, **changes)
        out.append(f)
    unplaced = len(fields)  # fields the layout does not know yet go last, in their order
    order = {f.name: (layout[f.name]["position"] if f.name in layout else unplaced + i)
             for i, f in enumerate(fields)}
    return sorted(out, key=lambda f: order[f.name])


def load(db) -> None:
    """Reads the custom fields and layouts of the database into the process's lists."""
    stamp = _stamp(db)
    custom: dict[str, list[Field]] = {}
    for row in db.query("SELECT * FROM custom_fields WHERE deleted_at IS NULL"
                        " ORDER BY entity, position, id"):
        try:
            custom.setdefault(row["entity"], []).append(to_field(row))
        except ValueError:  # a row edited by hand into nonsense: leave it out, keep running
            continue
    layouts: dict[str, dict] = {}
    for row in db.query("SELECT * FROM field_layouts ORDER BY entity, position"):
        layouts.setdefault(row["entity"], {})[row["field"]] = row
    with _lock:
        _state.update(stamp=stamp, custom=custom, layouts=layouts, merged={})


def refresh(db) -> None:
    """Reloads when someone (another session or process) changed fields since: one small
    query per page run."""
    if _stamp(db) != _state["stamp"]:
        load(db)


def _stamp(db) -> str | None:
    return db.scalar("SELECT value FROM settings WHERE key = $k", {"k": STAMP_KEY})


def _bump(cur) -> None:
    stamp = datetime.now().isoformat()
    if cur.execute("SELECT 1 FROM settings WHERE key = $k", {"k": STAMP_KEY}).fetchone():
        cur.execute("UPDATE settings SET value = $v, updated_at = $t WHERE key = $k",
                    {"k": STAMP_KEY, "v": stamp, "t": datetime.now()})
    else:
        cur.execute("INSERT INTO settings (key, value, updated_at) VALUES ($k, $v, $t)",
                    {"k": STAMP_KEY, "v": stamp, "t": datetime.now()})


def to_field(row: dict) -> Field:
    """The spec of a stored custom field."""
    choices = tuple(json.loads(row["choices"])) if row.get("choices") else ()
    colors = tuple(tuple(c) for c in json.loads(row["choice_colors"])) \
        if row.get("choice_colors") else ()
    base = Field(row["name"], row["label"], row["type"], choices=choices, custom=True,
                 ref=row.get("ref_table"))
    default = None
    if row.get("default_value") not in (None, ""):
        try:
            default = convert(base, row["default_value"])
        except ValueError:
            default = None
    return Field(
        row["name"], row["label"], row["type"], required=bool(row["required"]),
        choices=choices, choice_colors=colors, custom=True,
        max_length=row.get("max_length") or None,
        min_value=row.get("min_value"), max_value=row.get("max_value"),
        default=default, help=row.get("help") or None,
        in_list=bool(row.get("in_list")), filter=bool(row.get("filterable")),
        searchable=bool(row.get("searchable")) and row["type"] in TEXT_TYPES,
        section=row.get("section") or "Custom fields", ref=row.get("ref_table"))


# --- commands ---------------------------------------------------------------------------

def _require_admin(user: User) -> None:
    if user is None or user.role != "admin":
        raise PermissionDenied(_("Only an admin can change fields and layouts"))


def _entity(table: str):
    from crm import records

    if table not in ENTITIES:
        raise ValidationError({"entity": _("{entity} cannot have custom fields").format(
            entity=table)})
    return records.entity(table)


def list_fields(db, user: User, table: str, deleted: bool = False) -> list[dict]:
    """The custom fields of an entity as stored, live ones or those in the trash."""
    if user is None or user.role not in ("admin", "manager"):
        raise PermissionDenied(_("Only managers and admins can see the field settings"))
    state = "IS NOT NULL" if deleted else "IS NULL"
    return db.query(f"SELECT * FROM custom_fields WHERE entity = $e AND deleted_at {state}"
                    " ORDER BY position, id", {"e": table})


def add_field(db, user: User, table: str, values: dict) -> int:
    """Adds a custom field: its stored definition and its typed column, in one transaction."""
    _require_admin(user)
    entity = _entity(table)
    name = (values.get("name") or "").strip().lower()
    kind = values.get("type")
    errors = {}
    if kind not in TYPES:
        errors["type"] = _("Choose a field type")
    problem = _name_problem(db, table, name)
    if problem:
        errors["name"] = problem
    clean, more = _clean_settings({**values, "type": kind})
    errors.update(more)
    if not (clean.get("label") or "").strip():
        errors["label"] = _("Give the field a label")
    if errors:
        raise ValidationError(errors)
    now = datetime.now()
    with db.transaction() as cur:
        position = cur.execute("SELECT coalesce(max(position), 0) + 1 FROM custom_fields"
                               " WHERE entity = $e", {"e": table}).fetchone()[0]
        # the name is a checked identifier, quoted too; the type comes from TYPES
        cur.execute(f'ALTER TABLE {entity.table} ADD COLUMN "{name}" {TYPES[kind]}')
        row = {**clean, "entity": table, "name": name, "type": kind, "position": position,
               "created_at": now, "updated_at": now, "created_by": user.id or None,
               "updated_by": user.id or None, "version": 1}
        cols = list(row)
        new_id = cur.execute(
            f"INSERT INTO custom_fields ({', '.join(cols)})"
            f" VALUES ({', '.join('$' + c for c in cols)}) RETURNING id", row).fetchone()[0]
        audit.record(cur, user, "custom_fields", new_id, "create",
                     {"entity": [None, table], "name": [None, name], "type": [None, kind],
                      "label": [None, clean["label"]]})
        _bump(cur)
    load(db)
    return new_id


def suggest_name(db, table: str, label: str) -> str:
    """A free, valid column name made from a label ("Lead score (old CRM)" -> lead_score_old_crm;
    a label in another script -> field_1)."""
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")[:34] or "field"
    if not base[0].isalpha():
        base = f"f_{base}"[:34]
    first = 1 if base == "field" else 2  # field_1, field_2 ...; score, score_2 ...
    names = itertools.chain([] if base == "field" else [base],
                            (f"{base}_{n}" for n in itertools.count(first)))
    return next(n for n in names if not _name_problem(db, table, n))


def add_text_fields(db, user: User, table: str, labels: list[str]) -> dict[str, str]:
    """A text custom field for each label (columns of an import file nothing else takes), all
    or none; returns {label: field name}. Long-text when a label asks for more than a line."""
    _require_admin(user)
    out = {}
    with db.transaction():  # add_field joins it: all the fields or none
        for label in labels:
            name = suggest_name(db, table, label)
            add_field(db, user, table, {"name": name, "label": label.strip()[:80] or name,
                                        "type": "longtext", "section": N_("Imported")})
            out[label] = name
    load(db)
    return out


def update_field(db, user: User, field_id: int, values: dict, expected_version: int) -> dict:
    """Changes a field's settings (not its name or type: the column keeps its data)."""
    _require_admin(user)
    current = db.one("SELECT * FROM custom_fields WHERE id = $id", {"id": int(field_id)})
    if current is None:
        raise ValidationError({"field": _("That field does not exist")})
    for fixed in ("name", "type", "entity"):
        if fixed in values and values[fixed] != current[fixed]:
            raise ValidationError({fixed: _("A field's name and type cannot change; add a new"
                                            " field instead")})
    clean, errors = _clean_settings({**current, **values, "type": current["type"]})
    if not (clean.get("label") or "").strip():
        errors["label"] = _("Give the field a label")
    removed = set(json.loads(current["choices"] or "[]")) - set(
        json.loads(clean.get("choices") or "[]"))
    if removed and not errors:
        used = _choices_in_use(db, current, removed)
        if used:
            errors["choices"] = _("These choices are still in use and cannot be removed:"
                                  " {choices}").format(choices=", ".join(sorted(used)))
    if errors:
        raise ValidationError(errors)
    changes = {k: (current.get(k), v) for k, v in clean.items() if current.get(k) != v}
    with db.transaction() as cur:
        found = cur.execute("SELECT version FROM custom_fields WHERE id = $id",
                            {"id": int(field_id)}).fetchone()
        if found[0] != expected_version:
            raise ValidationError({"field": _("Someone else changed this field after you"
                                              " opened it; reload and try again")})
        if changes:
            assigns = ", ".join(f"{k} = ${k}" for k in changes)
            cur.execute(f"UPDATE custom_fields SET {assigns}, updated_at = $now, updated_by = $by,"
                        " version = version + 1 WHERE id = $id",
                        {**{k: v for k, (_o, v) in changes.items()}, "now": datetime.now(),
                         "by": user.id or None, "id": int(field_id)})
            audit.record(cur, user, "custom_fields", int(field_id), "update", changes)
            _bump(cur)
    load(db)
    return db.one("SELECT * FROM custom_fields WHERE id = $id", {"id": int(field_id)})


def _choices_in_use(db, current: dict, removed: set[str]) -> set[str]:
    name, table = current["name"], current["entity"]
    used = set()
    for choice in removed:
        if current["type"] == "multichoice":
            hit = db.scalar(f"SELECT 1 FROM {table} WHERE position($v IN '; ' || \"{name}\""
                            f" || '; ') > 0 LIMIT 1", {"v": f"; {choice}; "})
        else:
            hit = db.scalar(f'SELECT 1 FROM {table} WHERE "{name}" = $v LIMIT 1', {"v": choice})
        if hit:
            used.add(choice)
    return used


def delete_field(db, user: User, field_id: int) -> None:
    """Hides the field everywhere; its column and values stay, so it can be restored.
    (DuckDB cannot drop a column of a table that others reference, and nothing is lost.)"""
    _set_deleted(db, user, field_id, datetime.now(), "delete")


def restore_field(db, user: User, field_id: int) -> None:
    _set_deleted(db, user, field_id, None, "restore")


def _set_deleted(db, user: User, field_id: int, when, action: str) -> None:
    _require_admin(user)
    with db.transaction() as cur:
        found = cur.execute("SELECT id FROM custom_fields WHERE id = $id",
                            {"id": int(field_id)}).fetchone()
        if found is None:
            raise ValidationError({"field": _("That field does not exist")})
        cur.execute("UPDATE custom_fields SET deleted_at = $when, updated_at = $now,"
                    " updated_by = $by, version = version + 1 WHERE id = $id",
                    {"when": when, "now": datetime.now(), "by": user.id or None,
                     "id": int(field_id)})
        audit.record(cur, user, "custom_fields", int(field_id), action)
        _bump(cur)
    load(db)


def layout(db, table: str) -> list[dict]:
    """Every field of the entity (code and custom) with its place in the layout."""
    entity = _entity(table)
    return [{"field": f.name, "label": f.shown_label, "section": f.section,
             "quick": f.quick, "in_list": f.in_list, "required": f.required,
             "custom": f.custom} for f in entity.fields if f.editable or f.custom]


def save_layout(db, user: User, table: str, rows: list[dict]) -> None:
    """Stores the order (the rows' order), sections, quick-create and list choices."""
    _require_admin(user)
    entity = _entity(table)
    known = {f.name: f for f in entity.fields}
    errors = {}
    for row in rows:
        if row.get("field") not in known:
            errors[str(row.get("field"))] = _("is not a field of this record")
        elif len((row.get("section") or "").strip()) > 60:
            errors[row["field"]] = _("A section name has at most 60 characters")
    if errors:
        raise ValidationError(errors)
    with db.transaction() as cur:
        cur.execute("DELETE FROM field_layouts WHERE entity = $e", {"e": table})
        for position, row in enumerate(rows, start=1):
            spec = known[row["field"]]
            cur.execute(
                "INSERT INTO field_layouts (entity, field, position, section, quick, in_list)"
                " VALUES ($e, $f, $p, $s, $q, $l)",
                {"e": table, "f": row["field"], "p": position,
                 "s": (row.get("section") or "").strip() or None,
                 "q": bool(row.get("quick", True)) or spec.required,
                 "l": bool(row.get("in_list", spec.in_list))})
        audit.record(cur, user, "field_layouts", None, "update",
                     {"entity": [None, table], "fields": [None, [r["field"] for r in rows]]})
        _bump(cur)
    load(db)


def reset_layout(db, user: User, table: str) -> None:
    _require_admin(user)
    _entity(table)
    with db.transaction() as cur:
        cur.execute("DELETE FROM field_layouts WHERE entity = $e", {"e": table})
        audit.record(cur, user, "field_layouts", None, "delete", {"entity": [table, None]})
        _bump(cur)
    load(db)


def parse_choices(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Choices typed one per line, each optionally with its colour: "Hot = #d62728"."""
    choices, colors = [], []
    for line in text.splitlines():
        found = _CHOICE_LINE.match(line.strip())
        if not found or not found["name"].strip():
            continue
        choices.append(found["name"].strip())
        if found["color"]:
            colors.append((found["name"].strip(), found["color"].lower()))
    return choices, colors


def choices_text(row: dict) -> str:
    """The stored choices as typed: one per line, with its colour."""
    colors = dict(tuple(c) for c in json.loads(row.get("choice_colors") or "[]"))
    return "\n".join(f"{c} = {colors[c]}" if c in colors else c
                     for c in json.loads(row.get("choices") or "[]"))


_CHOICE_LINE = re.compile(r"^(?P<name>.*?)(?:\s*=\s*(?P<color>#[0-9a-fA-F]{6}))?$")


# --- validation ---------------------------------------------------------------------------

def _name_problem(db, table: str, name: str) -> str | None:
    if not name:
        return _("Give the field a name (lower-case letters, digits and _)")
    if not NAME_RE.fullmatch(name):
        return _("A name starts with a letter and has only lower-case letters, digits and _"
                 " (at most 40)")
    if name in RESERVED or name.endswith("__label"):
        return _("{name} is a reserved word; choose another name").format(name=name)
    stored = db.one("SELECT deleted_at FROM custom_fields WHERE entity = $t AND name = $n",
                    {"t": table, "n": name})
    if stored:
        return _("A field named {name} exists (restore it from the deleted fields)").format(
            name=name) if stored["deleted_at"] else _("A field named {name} exists").format(
            name=name)
    taken = db.scalar("SELECT 1 FROM information_schema.columns WHERE table_name = $t"
                      " AND lower(column_name) = $n", {"t": table, "n": name})
    if taken:
        from crm import records

        return _("{entity} already have a column named {name}").format(
            entity=_(records.entity(table).plural), name=name)
    return None


def _clean_settings(values: dict) -> tuple[dict, dict]:
    """The stored settings of a field from form values, and field -> message for bad ones."""
    kind = values.get("type")
    errors: dict[str, str] = {}
    label = (values.get("label") or "").strip()
    if len(label) > 80:
        errors["label"] = _("A label has at most 80 characters")
    clean = {"label": label, "help": (values.get("help") or "").strip()[:300] or None,
             "required": bool(values.get("required")),
             "section": (values.get("section") or "").strip()[:60] or None,
             "in_list": bool(values.get("in_list")),
             "filterable": bool(values.get("filterable")),
             "searchable": bool(values.get("searchable")) and kind in TEXT_TYPES}
    choices = values.get("choices") or []
    typed_colors = []
    if isinstance(choices, str) and not choices.startswith("["):
        choices, typed_colors = parse_choices(choices)
    elif isinstance(choices, str):
        choices = json.loads(choices)
    choices = list(dict.fromkeys(c.strip() for c in choices if c and c.strip()))
    if kind in ("choice", "multichoice"):
        if not choices:
            errors["choices"] = _("Give at least one choice, one per line")
        bad = [c for c in choices if CHOICE_FORBIDDEN.search(c) or len(c) > 80]
        if bad:
            errors["choices"] = _("Choices cannot contain ; , or | and have at most 80"
                                  " characters: {choices}").format(choices=", ".join(bad))
        clean["choices"] = json.dumps(choices, ensure_ascii=False)
        colors = values.get("choice_colors") or typed_colors
        if isinstance(colors, str):
            colors = json.loads(colors)
        if isinstance(colors, dict):
            colors = list(colors.items())
        colors = [(c, color) for c, color in colors if c in choices and color]
        if any(not COLOR_RE.fullmatch(color) for _c, color in colors):
            errors["choice_colors"] = _("Colours are written like #1f77b4")
        clean["choice_colors"] = json.dumps(colors) if colors else None
    else:
        clean["choices"], clean["choice_colors"] = None, None
    if kind == "ref":
        if values.get("ref_table") not in REF_TABLES:
            errors["ref_table"] = _("Choose what the field links to")
        clean["ref_table"] = values.get("ref_table")
    else:
        clean["ref_table"] = None
    for bound in ("min_value", "max_value"):
        raw = values.get(bound)
        if kind in ("number", "integer", "money") and raw not in (None, ""):
            try:
                clean[bound] = float(raw)
            except (TypeError, ValueError):
                errors[bound] = _("Must be a number")
        else:
            clean[bound] = None
    if (clean.get("min_value") is not None and clean.get("max_value") is not None
            and clean["min_value"] > clean["max_value"]):
        errors["max_value"] = _("The maximum is below the minimum")
    raw = values.get("max_length")
    if kind in ("text", "longtext") and raw not in (None, "", 0):
        try:
            clean["max_length"] = int(raw)
            if not 1 <= clean["max_length"] <= 5000:
                raise ValueError
        except (TypeError, ValueError):
            errors["max_length"] = _("A length between 1 and 5000")
    else:
        clean["max_length"] = None
    default = values.get("default_value")
    clean["default_value"] = None
    if default not in (None, "") and kind in TYPES and not errors:
        probe = Field("probe", label or "probe", kind, custom=True,
                      choices=tuple(choices), min_value=clean.get("min_value"),
                      max_value=clean.get("max_value"), max_length=clean.get("max_length"))
        try:
            value = convert(probe, default)
            clean["default_value"] = None if value is None else str(value)
        except ValueError as exc:
            errors["default_value"] = str(exc)
    return clean, errors
