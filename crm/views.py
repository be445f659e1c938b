"""Saved views: a list page's (or the pipeline board's) columns, filters, search, sort and
grouping, kept under a name, private to its owner or shared with the team, one default.

A view's config is JSON text:
    {"columns": [field, ...],          # shown columns in order ([] = the entity's default)
     "filters": {field: value},        # what records.Query.filters takes; dates as ISO text
     "search": str, "sort": field | None, "descending": bool,
     # the board only:
     "group_by": field, "mine": bool}
Field names in a config are checked against the entity's specs *when the view is read*
(entity.spec at call time: custom fields come and go), so a view naming a field that no
longer exists still opens, without that field; get_view() says which were dropped.

Every command checks the permission itself: a private view is its owner's alone (others get
NotFound, as if it did not exist); a shared one is read by the team and changed by its owner
or a manager/admin; only managers and admins choose the team's default."""
from __future__ import annotations

import json
import math
from datetime import date, datetime

from crm import audit, records
from crm.auth import PermissionDenied, User, require
from crm.db import Database, rows
from crm.fields import NUMERIC_TYPES, TEXT_TYPES, ValidationError
from crm.i18n import gettext as _

LIST, BOARD = "list", "board"
KINDS = (LIST, BOARD)
TEAM = 0  # saved_view_defaults.user_id of the team's default
NAME_LENGTH = 60
SEARCH_LENGTH = 200


# --- configs -------------------------------------------------------------------------------

def group_fields(entity: records.Entity) -> list[str]:
    """The fields the board can group by: the stage and every single-choice field of the
    entity that a user may set (read from the specs now: custom choice fields included)."""
    from crm import deals

    return deals.group_fields(entity)


def clean_config(entity: records.Entity, config: dict | None, kind: str = LIST
                 ) -> tuple[dict, list[str]]:
    """(config reduced to what the entity's current specs allow, names of the fields dropped).
    Values are converted to what records.Query takes (dates as date objects)."""
    config = config if isinstance(config, dict) else {}
    spec = entity.spec
    dropped: list[str] = []

    def gone(name) -> None:
        if str(name) not in dropped:
            dropped.append(str(name))

    columns: list[str] = []
    for name in config.get("columns") or []:
        if name in spec and name != "id":
            if name not in columns:
                columns.append(name)
        elif name != "id":
            gone(name)
    filters: dict = {}
    raw_filters = config.get("filters") if isinstance(config.get("filters"), dict) else {}
    for name, value in raw_filters.items():
        f = spec.get(name)
        if f is None or not f.filter:
            gone(name)
            continue
        value = _filter_value(f, value)
        if value is not None:
            filters[name] = value
    sort = config.get("sort")
    if sort is not None and sort not in spec:
        gone(sort)
        sort = None
    out = {"columns": columns, "filters": filters,
           "search": str(config.get("search") or "")[:SEARCH_LENGTH],
           "sort": sort, "descending": bool(config.get("descending", True))}
    if kind == BOARD:
        group = config.get("group_by") or "stage_id"
        if group not in group_fields(entity):
            gone(group)
            group = "stage_id"
        out["group_by"] = group
        out["mine"] = bool(config.get("mine"))
    return out, dropped


def same_config(entity: records.Entity, a: dict, b: dict, kind: str = LIST) -> bool:
    """Do two configs show the same thing (an unset sort is the page's default: the entity's
    on a list, the amount on the board)?"""
    def norm(config):
        clean, _dropped = clean_config(entity, config, kind)
        clean["sort"] = clean["sort"] or ("amount" if kind == BOARD
                                          else entity.default_sort[0])
        return clean

    return norm(a) == norm(b)


def _filter_value(f, value):
    """A stored filter value as records.Query takes it; None when nothing usable is left."""
    if f.type in ("date", "datetime"):
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            return None
        start, end = (_day(v) for v in value)
        return None if start is None and end is None else (start, end)
    if f.type == "bool":
        return value if isinstance(value, bool) else None
    if f.type in NUMERIC_TYPES:  # (from, to)
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            return None
        low, high = (_number(v) for v in value)
        return None if low is None and high is None else (low, high)
    if f.type in TEXT_TYPES:  # contains this text
        text = str(value).strip()[:SEARCH_LENGTH] if isinstance(value, (str, int, float)) else ""
        return text or None
    if not isinstance(value, (list, tuple)):
        return None
    if f.type == "choice":
        kept = [v for v in value if v in f.choices]  # a choice removed since: left out
    elif f.type in ("user", "ref"):
        kept = []
        for v in value:
            try:
                kept.append(int(v))
            except (TypeError, ValueError):
                continue
    else:
        kept = [str(v) for v in value]
    return kept or None


def _number(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _day(value) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _to_json(config: dict) -> str:
    def plain(v):
        if isinstance(v, (date, datetime)):
            return v.isoformat()
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return json.dumps(plain(config), ensure_ascii=False, sort_keys=True)


def _parse(text: str | None) -> dict:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def query_for(entity: records.Entity, config: dict, **extra) -> records.Query:
    """The records.Query a view's config stands for (extra: page, page_size, language...)."""
    clean, _dropped = clean_config(entity, config)
    return records.Query(search=clean["search"], filters=clean["filters"], sort=clean["sort"],
                         descending=clean["descending"], columns=clean["columns"] or None,
                         **extra)


# --- reads ---------------------------------------------------------------------------------

_COLUMNS = ("v.id, v.entity, v.kind, v.name, v.owner_id, v.shared, v.config, v.created_at,"
            " v.updated_at, v.version, u.name AS owner_name")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown view kind {kind!r}")


def list_views(db: Database, user: User, entity: records.Entity, kind: str = LIST
               ) -> list[dict]:
    """The views of the entity the user may open: their own and the team's shared ones,
    their own first, by name. Each has my_default and team_default flags."""
    require(user, "view")
    _check_kind(kind)
    found = db.query(
        f"SELECT {_COLUMNS} FROM saved_views v LEFT JOIN users u ON u.id = v.owner_id"
        " WHERE v.entity = $e AND v.kind = $k AND (v.owner_id = $me OR v.shared)"
        " ORDER BY CASE WHEN v.owner_id = $me THEN 0 ELSE 1 END, lower(v.name), v.id",
        {"e": entity.table, "k": kind, "me": user.id})
    defaults = _defaults(db, user, entity.table, kind)
    for view in found:
        view["config"] = _parse(view["config"])
        view["my_default"] = defaults.get(user.id) == view["id"]
        view["team_default"] = defaults.get(TEAM) == view["id"]
    return found


def _defaults(db_or_cur, user: User, table: str, kind: str) -> dict[int, int]:
    sql = ("SELECT user_id, view_id FROM saved_view_defaults WHERE entity = $e AND kind = $k"
           " AND user_id IN ($me, $team)")
    params = {"e": table, "k": kind, "me": user.id, "team": TEAM}
    found = db_or_cur.query(sql, params) if isinstance(db_or_cur, Database) \
        else rows(db_or_cur, sql, params)
    return {r["user_id"]: r["view_id"] for r in found}


def _fetch(db_or_cur, view_id) -> dict | None:
    try:
        view_id = int(view_id)
    except (TypeError, ValueError):
        return None
    sql = (f"SELECT {_COLUMNS} FROM saved_views v LEFT JOIN users u ON u.id = v.owner_id"
           " WHERE v.id = $id")
    found = db_or_cur.query(sql, {"id": view_id}) if isinstance(db_or_cur, Database) \
        else rows(db_or_cur, sql, {"id": view_id})
    return found[0] if found else None


def _not_found(view_id) -> records.NotFound:
    return records.NotFound(_("View #{id} does not exist or is private").format(id=view_id))


def _visible(user: User, view: dict | None) -> bool:
    return view is not None and (view["owner_id"] == user.id or bool(view["shared"]))


def get_view(db: Database, user: User, view_id, entity: records.Entity | None = None,
             kind: str | None = None) -> dict:
    """One view the user may open, its config cleaned against the entity's current fields:
    "dropped" lists the fields it named that no longer exist. With entity (and kind), a view
    of another page is refused as not found."""
    require(user, "view")
    view = _fetch(db, view_id)
    if not _visible(user, view) or (entity is not None and view["entity"] != entity.table) or (
            kind is not None and view["kind"] != kind):
        raise _not_found(view_id)
    if entity is None:
        entity = _entity(view["entity"])
    view["config"], view["dropped"] = clean_config(entity, _parse(view["config"]), view["kind"])
    return view


def _entity(table: str) -> records.Entity:
    from crm.importer import entities

    for entity in entities():
        if entity.table == table:
            return entity
    raise records.NotFound(table)


def default_view(db: Database, user: User, entity: records.Entity, kind: str = LIST
                 ) -> dict | None:
    """The view the page opens with: the user's own default, else the team's, else None.
    A default the user can no longer open (made private since) is passed over."""
    require(user, "view")
    _check_kind(kind)
    defaults = _defaults(db, user, entity.table, kind)
    for who in (user.id, TEAM):
        if who in defaults:
            try:
                return get_view(db, user, defaults[who], entity, kind)
            except records.NotFound:
                continue
    return None


def may_edit(user: User, view: dict) -> bool:
    """May the user change or delete the view: their own, or a shared one as manager/admin."""
    if user is None or user.role == "viewer":
        return False
    return view["owner_id"] == user.id or (bool(view["shared"]) and user.sees_all)


# --- writes --------------------------------------------------------------------------------

def _clean_name(cur, user: User, table: str, kind: str, name, owner_id: int,
                view_id: int | None = None) -> str:
    name = " ".join(str(name or "").split())
    if not name:
        raise ValidationError({"name": _("Give the view a name")})
    if len(name) > NAME_LENGTH:
        raise ValidationError({"name": _("A view's name has at most {limit} characters")
                               .format(limit=NAME_LENGTH)})
    taken = cur.execute(
        "SELECT id FROM saved_views WHERE entity = $e AND kind = $k AND owner_id = $o"
        " AND lower(name) = lower($n) AND id <> $id LIMIT 1",
        {"e": table, "k": kind, "o": owner_id, "n": name, "id": view_id or 0}).fetchone()
    if taken:
        raise ValidationError({"name": _("You already have a view called {name}").format(
            name=name)})
    return name


def _valid_config(entity: records.Entity, config: dict, kind: str) -> dict:
    """A config to store: every field it names must exist (the page only offers those)."""
    clean, dropped = clean_config(entity, config, kind)
    if dropped:
        raise ValidationError({"config": _("Not a field of {plural}: {fields}").format(
            plural=_(entity.plural), fields=", ".join(dropped))})
    return clean


def _writer(user: User) -> None:
    require(user, "view")  # viewers and nobody-signed-in stop here
    if user.role == "viewer":
        raise PermissionDenied(_("Viewers have read-only access to dashboards"))


def create_view(db: Database, user: User, entity: records.Entity, name: str, config: dict,
                shared: bool = False, kind: str = LIST) -> int:
    """Saves the config as a new view of the user's; returns its id."""
    _writer(user)
    _check_kind(kind)
    clean = _valid_config(entity, config, kind)
    now = datetime.now()
    with db.transaction() as cur:
        name = _clean_name(cur, user, entity.table, kind, name, user.id)
        text = _to_json(clean)
        view_id = cur.execute(
            "INSERT INTO saved_views (entity, kind, name, owner_id, shared, config, created_at,"
            " updated_at, created_by, updated_by) VALUES ($e, $k, $n, $o, $s, $c, $now, $now,"
            " $by, $by) RETURNING id",
            {"e": entity.table, "k": kind, "n": name, "o": user.id, "s": bool(shared),
             "c": text, "now": now, "by": user.id or None}).fetchone()[0]
        audit.record(cur, user, "saved_views", view_id, "create",
                     {"name": (None, name), "shared": (None, bool(shared)),
                      "config": (None, text)})
    return view_id


def _editable(cur, user: User, view_id, entity: records.Entity | None = None) -> dict:
    view = _fetch(cur, view_id)
    if not _visible(user, view) or (entity is not None and view["entity"] != entity.table):
        raise _not_found(view_id)
    if not may_edit(user, view):
        raise PermissionDenied(_("Only its owner, a manager or an admin can change a shared "
                                 "view"))
    return view


def update_view(db: Database, user: User, view_id: int, entity: records.Entity, *,
                name: str | None = None, config: dict | None = None,
                shared: bool | None = None, expected_version: int | None = None) -> dict:
    """Changes a view's name, config or sharing (what is given). Returns the view as stored.
    Making a shared view private takes it away from the team: defaults pointing at it from
    others are dropped."""
    _writer(user)
    with db.transaction() as cur:
        view = _editable(cur, user, view_id, entity)
        if expected_version is not None and view["version"] != expected_version:
            raise records.ConflictError(view, [])
        sets: dict = {}
        if name is not None:
            sets["name"] = _clean_name(cur, user, view["entity"], view["kind"], name,
                                       view["owner_id"], view["id"])
        if config is not None:
            sets["config"] = _to_json(_valid_config(entity, config, view["kind"]))
        if shared is not None:
            sets["shared"] = bool(shared)
        changes = {k: (view[k], v) for k, v in sets.items() if view[k] != v}
        if not changes:
            return _as_read(view, entity)
        assigns = ", ".join(f"{k} = ${k}" for k in changes)
        cur.execute(f"UPDATE saved_views SET {assigns}, version = version + 1,"
                    f" updated_at = $now, updated_by = $by WHERE id = $id",
                    {**{k: v for k, (_o, v) in changes.items()}, "now": datetime.now(),
                     "by": user.id or None, "id": view["id"]})
        if changes.get("shared", (None, True))[1] is False:
            cur.execute("DELETE FROM saved_view_defaults WHERE view_id = $id AND user_id <> $o",
                        {"id": view["id"], "o": view["owner_id"]})
        audit.record(cur, user, "saved_views", view["id"], "update", changes)
        return _as_read(_fetch(cur, view["id"]), entity)


def _as_read(view: dict, entity: records.Entity) -> dict:
    view = dict(view)
    view["config"], view["dropped"] = clean_config(entity, _parse(view["config"]),
                                                   view["kind"])
    return view


def rename_view(db: Database, user: User, view_id: int, entity: records.Entity,
                name: str) -> dict:
    return update_view(db, user, view_id, entity, name=name)


def delete_view(db: Database, user: User, view_id: int) -> None:
    """Deletes the view and every default that pointed at it (kept in the audit log)."""
    _writer(user)
    with db.transaction() as cur:
        view = _editable(cur, user, view_id)
        cur.execute("DELETE FROM saved_view_defaults WHERE view_id = $id", {"id": view["id"]})
        cur.execute("DELETE FROM saved_views WHERE id = $id", {"id": view["id"]})
        audit.record(cur, user, "saved_views", view["id"], "delete",
                     {"name": (view["name"], None), "config": (view["config"], None)})


def set_default(db: Database, user: User, entity: records.Entity, view_id: int | None,
                kind: str = LIST, team: bool = False) -> None:
    """Makes the view the user's own default for the page (team=True: the team's, which only
    a manager or admin may choose, and only a shared view). view_id None clears it."""
    _writer(user)
    _check_kind(kind)
    if team and not user.sees_all:
        raise PermissionDenied(_("Only managers and admins choose the team's default view"))
    who = TEAM if team else user.id
    with db.transaction() as cur:
        if view_id is not None:
            view = _fetch(cur, view_id)
            if not _visible(user, view) or view["entity"] != entity.table or \
                    view["kind"] != kind:
                raise _not_found(view_id)
            if team and not view["shared"]:
                raise ValidationError({"shared": _(
                    "Share the view with the team before making it the team's default")})
        old = cur.execute(
            "SELECT view_id FROM saved_view_defaults WHERE entity = $e AND kind = $k"
            " AND user_id = $u", {"e": entity.table, "k": kind, "u": who}).fetchone()
        old = old[0] if old else None
        if old == view_id:
            return
        cur.execute("DELETE FROM saved_view_defaults WHERE entity = $e AND kind = $k"
                    " AND user_id = $u", {"e": entity.table, "k": kind, "u": who})
        if view_id is not None:
            cur.execute("INSERT INTO saved_view_defaults (entity, kind, user_id, view_id,"
                        " set_at, set_by) VALUES ($e, $k, $u, $v, $now, $by)",
                        {"e": entity.table, "k": kind, "u": who, "v": int(view_id),
                         "now": datetime.now(), "by": user.id or None})
        audit.record(cur, user, "saved_views", view_id if view_id is not None else old,
                     "update", {"team_default" if team else "my_default": (old, view_id)})
