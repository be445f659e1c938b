"""The whole configuration as one YAML file: custom fields, form layouts, pipelines and
stages, the team's shared views, automation rules, general settings. Exported from one installation and imported into another, with the
list of changes shown before anything is applied; the import is one transaction.

Importing adds and changes; it never removes what the file leaves out (a stage that holds
deals, a field with values): those are listed as kept."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import yaml

from crm import custom_fields, pipelines, rules, settings, views
from crm.auth import PermissionDenied, User
from crm.fields import ValidationError
from crm.i18n import N_, gettext as _

FORMAT = 1
MAX_BYTES = 2_000_000
STAGE_KEYS = ("probability", "rotting_days", "kind", "forecast_category")
# a custom field's settings in the file -> its column in custom_fields
FIELD_KEYS = {"label": "label", "help": "help", "required": "required",
              "default": "default_value", "section": "section", "in_list": "in_list",
              "filterable": "filterable", "searchable": "searchable", "min": "min_value",
              "max": "max_value", "max_length": "max_length", "links_to": "ref_table"}
SECTIONS = {"fields": N_("Custom fields"), "layouts": N_("Form layouts"),
            "pipelines": N_("Pipelines"), "stages": N_("Stages"),
            "views": N_("Shared views"), "rules": N_("Automation rules"),
            "settings": N_("General settings")}
ACTIONS = {"add": N_("add"), "change": N_("change"), "keep": N_("keep"),
           "delete": N_("delete"), "restore": N_("restore")}


class SettingsFileError(ValueError):
    """A file that is not a CRM settings file, or holds something this version refuses."""


@dataclass
class Change:
    section: str  # a key of SECTIONS
    item: str
    action: str  # a key of ACTIONS
    before: str | None = None
    after: str | None = None


def _require_admin(user: User) -> None:
    if user is None or user.role != "admin":
        raise PermissionDenied(_("Only an admin can export or import the settings"))


# --- export -------------------------------------------------------------------------------

def export_yaml(db, user: User) -> str:
    _require_admin(user)
    data = {"crm_settings": FORMAT, "exported_at": datetime.now().replace(microsecond=0),
            "custom_fields": {}, "layouts": {}, "pipelines": [], "views": [], "rules": [],
            "settings": {}}
    for row in db.query("SELECT * FROM custom_fields ORDER BY entity, position, id"):
        data["custom_fields"].setdefault(row["entity"], []).append(_field_entry(row))
    for row in db.query("SELECT * FROM field_layouts ORDER BY entity, position"):
        data["layouts"].setdefault(row["entity"], []).append(
            {"field": row["field"], "section": row["section"], "quick": bool(row["quick"]),
             "in_list": row["in_list"]})
    for p in pipelines.list_pipelines(db):
        data["pipelines"].append({
            "name": p["name"], "default": bool(p["is_default"]),
            "stages": [{"name": s["name"], **{k: s[k] for k in STAGE_KEYS}}
                       for s in pipelines.stages_of(db, p["id"])]})
    data["views"] = _export_views(db)
    data["rules"] = _export_rules(db)
    data["settings"] = {k: _plain(v) for k, v in settings.get_all(db).items()}
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)


def _field_entry(row: dict) -> dict:
    entry = {"name": row["name"], "type": row["type"]}
    for key, column in FIELD_KEYS.items():
        value = row.get(column)
        if value not in (None, False, ""):
            entry[key] = value
    if row.get("choices"):
        entry["choices"] = json.loads(row["choices"])
    if row.get("choice_colors"):
        entry["colors"] = dict(tuple(c) for c in json.loads(row["choice_colors"]))
    if row.get("deleted_at"):
        entry["deleted"] = True
    return entry


def _plain(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


# --- import -------------------------------------------------------------------------------

def plan(db, user: User, text: str | bytes) -> list[Change]:
    """What importing the file would change; writes nothing."""
    _require_admin(user)
    return _run(db, user, parse(text), apply=False)


def apply(db, user: User, text: str | bytes) -> list[Change]:
    """Imports the file: every change of plan(), in one transaction (all or nothing)."""
    _require_admin(user)
    data = parse(text)
    try:
        with db.transaction():  # the commands below join it
            return _run(db, user, data, apply=True)
    finally:
        custom_fields.load(db)  # as committed (or as before, after a rollback)


def parse(text: str | bytes) -> dict:
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise SettingsFileError(_("The file is larger than a settings file can be"))
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise SettingsFileError(_("The file is not UTF-8 text")) from None
    if len(text) > MAX_BYTES:
        raise SettingsFileError(_("The file is larger than a settings file can be"))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = _(" (line {line})").format(line=where.line + 1) if where else ""
        raise SettingsFileError(_("The file is not valid YAML{where}").format(where=line)) \
            from None
    if not isinstance(data, dict) or "crm_settings" not in data:
        raise SettingsFileError(_("This is not a CRM settings file (no crm_settings key)"))
    if not isinstance(data["crm_settings"], int) or data["crm_settings"] > FORMAT:
        raise SettingsFileError(_("This settings file was made by a newer version of the CRM"))
    for key, kind in (("custom_fields", dict), ("layouts", dict), ("pipelines", list),
                      ("views", list), ("rules", list), ("settings", dict)):
        if data.get(key) is None:
            data[key] = kind()
        if not isinstance(data[key], kind):
            raise SettingsFileError(_("{key} has the wrong shape in the file").format(key=key))
    return data


def _run(db, user: User, data: dict, apply: bool) -> list[Change]:
    changes: list[Change] = []
    changes += _fields(db, user, data["custom_fields"], apply)
    changes += _layouts(db, user, data["layouts"], apply)
    changes += _pipelines(db, user, data["pipelines"], apply)
    changes += _views(db, user, data["views"], apply)
    changes += _rules(db, user, data["rules"], apply)
    changes += _settings(db, user, data["settings"], apply)
    return changes


def _fields(db, user: User, wanted: dict, apply: bool) -> list[Change]:
    out = []
    for table, entries in wanted.items():
        if table not in custom_fields.ENTITIES or not isinstance(entries, list):
            raise SettingsFileError(_("{entity} cannot have custom fields").format(entity=table))
        stored = {r["name"]: r for r in db.query(
            "SELECT * FROM custom_fields WHERE entity = $e", {"e": table})}
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("name") or not entry.get("type"):
                raise SettingsFileError(_("A custom field of {entity} has no name or type")
                                        .format(entity=table))
            name = str(entry["name"])
            values = _field_values(entry)
            item = f"{table}.{name}"
            current = stored.get(name)
            try:
                if current is None:
                    out.append(Change("fields", item, "add", None, _describe(values)))
                    if apply:
                        new_id = custom_fields.add_field(db, user, table,
                                                         {"name": name, **values})
                        if entry.get("deleted"):
                            custom_fields.delete_field(db, user, new_id)
                    continue
                if current["type"] != values["type"]:
                    raise ValidationError({"type": _(
                        "{field} is a {stored} field here and a {wanted} field in the file; a"
                        " field's type cannot change").format(
                        field=item, stored=current["type"], wanted=values["type"])})
                before = _describe({**_field_values(_field_entry(current))})
                after = _describe(values)
                if before != after:
                    out.append(Change("fields", item, "change", before, after))
                    if apply:
                        custom_fields.update_field(db, user, current["id"], values,
                                                   current["version"])
                deleted = bool(entry.get("deleted"))
                if deleted != bool(current["deleted_at"]):
                    out.append(Change("fields", item, "delete" if deleted else "restore"))
                    if apply:
                        (custom_fields.delete_field if deleted else custom_fields.restore_field)(
                            db, user, current["id"])
            except ValidationError as exc:
                raise SettingsFileError(f"{item}: " + "; ".join(exc.errors.values())) from None
    return out


def _field_values(entry: dict) -> dict:
    values = {column: entry.get(key) for key, column in FIELD_KEYS.items()}
    values["type"] = entry.get("type")
    choices = entry.get("choices") or []
    if not isinstance(choices, list):
        raise SettingsFileError(_("The choices of {field} must be a list").format(
            field=entry.get("name")))
    values["choices"] = [str(c) for c in choices]
    colors = entry.get("colors") or {}
    if not isinstance(colors, dict):
        raise SettingsFileError(_("The colours of {field} must be choice: colour pairs").format(
            field=entry.get("name")))
    values["choice_colors"] = [(str(k), str(v)) for k, v in colors.items()]
    if values["default_value"] is not None:
        values["default_value"] = str(values["default_value"])
    return values


def _describe(values: dict) -> str:
    shown = {k: v for k, v in values.items() if v not in (None, "", False, [], ())}
    return json.dumps(shown, ensure_ascii=False, sort_keys=True, default=str)


def _layouts(db, user: User, wanted: dict, apply: bool) -> list[Change]:
    out = []
    for table, rows in wanted.items():
        if table not in custom_fields.ENTITIES or not isinstance(rows, list):
            raise SettingsFileError(_("{entity} has no form layout").format(entity=table))
        current = [{"field": r["field"], "section": r["section"], "quick": bool(r["quick"]),
                    "in_list": r["in_list"]} for r in db.query(
            "SELECT * FROM field_layouts WHERE entity = $e ORDER BY position", {"e": table})]
        clean = []
        for r in rows:
            if not isinstance(r, dict) or "field" not in r:
                raise SettingsFileError(_("A layout row of {entity} names no field").format(
                    entity=table))
            clean.append({"field": str(r["field"]), "section": r.get("section"),
                          "quick": bool(r.get("quick", True)), "in_list": r.get("in_list")})
        if clean == current:
            continue
        out.append(Change("layouts", table, "change" if current else "add",
                          ", ".join(r["field"] for r in current) or None,
                          ", ".join(r["field"] for r in clean)))
        if apply:
            try:
                custom_fields.save_layout(db, user, table, clean)
            except ValidationError as exc:
                raise SettingsFileError(f"{table}: " + "; ".join(
                    f"{k} {v}" for k, v in exc.errors.items())) from None
    return out


def _pipelines(db, user: User, wanted: list, apply: bool) -> list[Change]:
    out = []
    existing = {p["name"].lower(): p for p in pipelines.list_pipelines(db)}
    for entry in wanted:
        if not isinstance(entry, dict) or not str(entry.get("name") or "").strip():
            raise SettingsFileError(_("A pipeline in the file has no name"))
        name = str(entry["name"]).strip()
        stages = entry.get("stages") or []
        if not isinstance(stages, list) or not all(isinstance(s, dict) and s.get("name")
                                                   for s in stages):
            raise SettingsFileError(_("The stages of {pipeline} must each have a name").format(
                pipeline=name))
        current = existing.get(name.lower())
        try:
            if current is None:
                out.append(Change("pipelines", name, "add", None,
                                  ", ".join(str(s["name"]) for s in stages)))
                pid = pipelines.create_pipeline(db, user, name) if apply else None
                out += _stages(db, user, name, pid, stages, apply, fresh=True)
            else:
                out += _stages(db, user, name, current["id"], stages, apply, fresh=False)
        except ValidationError as exc:
            raise SettingsFileError(f"{name}: " + "; ".join(exc.errors.values())) from None
    return out


def _stages(db, user: User, pipeline: str, pid: int | None, wanted: list[dict], apply: bool,
            fresh: bool) -> list[Change]:
    out = []
    stored = {s["name"].lower(): s for s in pipelines.stages_of(db, pid)} if pid else {}
    if fresh and apply:  # a new pipeline starts with the standard stages: keep only the file's
        names = {str(s["name"]).strip().lower() for s in wanted}
        for key, s in list(stored.items()):
            if key not in names:
                pipelines.delete_stage(db, user, s["id"])
                del stored[key]
    for s in wanted:
        values = {"name": str(s["name"]).strip(), **{k: s.get(k) for k in STAGE_KEYS
                                                      if s.get(k) is not None}}
        item = f"{pipeline} › {values['name']}"
        current = stored.get(values["name"].lower())
        if current is None:
            if not fresh:
                out.append(Change("stages", item, "add", None, _describe(values)))
            if apply:
                pipelines.add_stage(db, user, pid, values)
            continue
        differs = {k: v for k, v in values.items() if k != "name" and current[k] != v}
        if differs:
            out.append(Change("stages", item, "change",
                              _describe({k: current[k] for k in differs}), _describe(differs)))
            if apply:
                pipelines.update_stage(db, user, current["id"], differs)
    if not fresh:
        names = {str(s["name"]).strip().lower() for s in wanted}
        for key, s in stored.items():
            if key not in names:
                out.append(Change("stages", f"{pipeline} › {s['name']}", "keep", s["name"],
                                  None))
    if apply and pid:
        order = [str(s["name"]).strip().lower() for s in wanted]
        _order_stages(db, user, pid, order)
    return out


def _order_stages(db, user: User, pid: int, order: list[str]) -> None:
    """The file's stages in the file's order; stages it leaves out keep their place after."""
    stages = pipelines.stages_of(db, pid)
    rank = {name: i for i, name in enumerate(order)}
    ordered = sorted(stages, key=lambda s: (rank.get(s["name"].lower(), len(order)),
                                            s["position"]))
    if [s["id"] for s in ordered] != [s["id"] for s in stages]:
        pipelines.reorder_stages(db, user, pid, [s["id"] for s in ordered])


def _export_views(db) -> list[dict]:
    """The shared views (private ones are their owners'). Filters that name records by id
    (owners, stages, customers) are left out: ids differ between installations."""
    from crm import records

    defaults = {r["view_id"] for r in db.query(
        "SELECT view_id FROM saved_view_defaults WHERE user_id = $team", {"team": views.TEAM})}
    out = []
    for row in db.query("SELECT * FROM saved_views WHERE shared ORDER BY entity, kind, id"):
        config = json.loads(row["config"] or "{}")
        spec = records.entity(row["entity"]).spec
        config["filters"] = {k: v for k, v in (config.get("filters") or {}).items()
                             if k in spec and spec[k].type not in ("user", "ref")}
        out.append({"entity": row["entity"], "kind": row["kind"], "name": row["name"],
                     "team_default": row["id"] in defaults, "config": config})
    return out


def _views(db, user: User, wanted: list, apply: bool) -> list[Change]:
    from crm import records

    out = []
    for entry in wanted:
        if not isinstance(entry, dict) or not entry.get("name") \
                or entry.get("entity") not in custom_fields.ENTITIES \
                or entry.get("kind", views.LIST) not in views.KINDS \
                or not isinstance(entry.get("config") or {}, dict):
            raise SettingsFileError(_("A shared view in the file has no name, a wrong record"
                                      " type or a wrong shape"))
        entity, kind = records.entity(entry["entity"]), entry.get("kind", views.LIST)
        name, config = str(entry["name"]), entry.get("config") or {}
        item = f"{entry['entity']} › {name}"
        found = db.one("SELECT id, config FROM saved_views WHERE entity = $e AND kind = $k"
                       " AND shared AND lower(name) = lower($n) ORDER BY id LIMIT 1",
                       {"e": entity.table, "k": kind, "n": name})
        try:
            shown = json.dumps(config, ensure_ascii=False, sort_keys=True, default=str)
            if found is None:
                out.append(Change("views", item, "add", None, shown))
                view_id = views.create_view(db, user, entity, name, config, shared=True,
                                            kind=kind) if apply else None
            else:
                view_id = found["id"]
                before = views.clean_config(entity, json.loads(found["config"]), kind)[0]
                after = views.clean_config(entity, config, kind)[0]
                if before != after:
                    out.append(Change("views", item, "change", found["config"], shown))
                    if apply:
                        views.update_view(db, user, view_id, entity, config=config)
            if entry.get("team_default") and apply:
                views.set_default(db, user, entity, view_id, kind=kind, team=True)
        except ValidationError as exc:
            raise SettingsFileError(f"{item}: " + "; ".join(exc.errors.values())) from None
    return out


def _export_rules(db) -> list[dict]:
    """The live rules as their form takes them, records and users named instead of ids (ids
    differ between installations; rules.parse_value finds them by name again)."""
    out = []
    for row in db.query("SELECT * FROM automation_rules WHERE deleted_at IS NULL ORDER BY id"):
        rule = rules.Rule.from_row(row)
        entity = rules.entities().get(rule.entity)
        spec = entity.spec if entity else {}
        config = dict(rule.config)
        if "to" in config:
            config["to"] = _portable(db, spec.get(config.get("field")), config["to"])
        conditions = [{**c, "value": _portable(db, spec.get(c["field"]), c.get("value"))}
                      if "value" in c else c for c in rule.conditions]
        actions = []
        for a in rule.actions:
            a = dict(a)
            if a.get("user_id") is not None:
                a["user"] = _username(db, a.pop("user_id"))
            if a.get("user_ids"):
                a["users"] = [_username(db, u) for u in a.pop("user_ids")]
            if a.get("kind") == "set_field":
                a["value"] = _portable(db, spec.get(a.get("field")), a.get("value"))
            actions.append({k: v for k, v in a.items() if v is not None})
        out.append({"name": rule.name, "entity": rule.entity, "trigger": rule.trigger,
                    "trigger_config": config, "match": rule.match, "conditions": conditions,
                    "actions": actions, "enabled": rule.enabled})
    return out


def _portable(db, spec, stored):
    from crm.records import REF_LABELS

    if stored is None or spec is None:
        return stored
    if isinstance(stored, list):
        return ", ".join(str(_portable(db, spec, v)) for v in stored)
    if spec.type == "user":
        return _username(db, stored)
    if spec.type == "ref" and spec.ref == "stages":
        return db.scalar("SELECT p.name || ' › ' || s.name FROM stages s JOIN pipelines p"
                         " ON p.id = s.pipeline_id WHERE s.id = $id", {"id": int(stored)}) \
            or f"#{stored}"
    if spec.type == "ref" and spec.ref in REF_LABELS:
        return db.scalar(f"SELECT {REF_LABELS[spec.ref].format(a='r')} FROM {spec.ref} r"
                         f" WHERE r.id = $id", {"id": int(stored)}) or f"#{stored}"
    return rules.form_text(spec, stored)


def _username(db, user_id) -> str:
    return db.scalar("SELECT username FROM users WHERE id = $id", {"id": int(user_id)}) \
        or f"#{user_id}"


def _user_id(db, username, rule: str) -> int:
    """A user of this installation by username (or #id, for one that had no username)."""
    text = str(username)
    if text.startswith("#") and text[1:].isdecimal():
        return int(text[1:])
    found = db.scalar("SELECT id FROM users WHERE lower(username) = lower($u)", {"u": text})
    if found is None:
        raise SettingsFileError(_("{rule}: no user is called {name} here").format(
            rule=rule, name=text))
    return found


def _rules(db, user: User, wanted: list, apply: bool) -> list[Change]:
    out = []
    for entry in wanted:
        if not isinstance(entry, dict) or not entry.get("name"):
            raise SettingsFileError(_("An automation rule in the file has no name"))
        name = str(entry["name"])
        values = {k: entry.get(k) for k in ("name", "entity", "trigger", "trigger_config",
                                              "match", "conditions", "enabled")}
        values["trigger_config"] = dict(values["trigger_config"] or {})
        actions = []
        for a in entry.get("actions") or []:
            a = dict(a)
            if "user" in a:
                a["user_id"] = _user_id(db, a.pop("user"), name)
            if "users" in a:
                a["user_ids"] = [_user_id(db, u, name) for u in a.pop("users") or []]
            actions.append(a)
        values["actions"] = actions
        found = db.one("SELECT * FROM automation_rules WHERE deleted_at IS NULL"
                       " AND lower(name) = lower($n) ORDER BY id LIMIT 1", {"n": name})
        try:
            clean = rules.clean_rule(db, values)
        except ValidationError as exc:
            raise SettingsFileError(f"{name}: " + "; ".join(exc.errors.values())) from None
        shown = _describe({k: clean[k] for k in ("entity", "trigger_kind", "trigger_config",
                                                  "match_kind", "conditions", "actions",
                                                  "enabled")})
        if found is None:
            out.append(Change("rules", name, "add", None, shown))
            if apply:
                rules.save_rule(db, user, values)
            continue
        before = _describe({k: found[k] for k in ("entity", "trigger_kind", "trigger_config",
                                                  "match_kind", "conditions", "actions",
                                                  "enabled")})
        if before != shown:
            out.append(Change("rules", name, "change", before, shown))
            if apply:
                rules.save_rule(db, user, values, found["id"], found["version"])
    return out


def _settings(db, user: User, wanted: dict, apply: bool) -> list[Change]:
    known = {f.name for f in settings.FIELDS}
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise SettingsFileError(_("Unknown general settings in the file: {names}").format(
            names=", ".join(unknown)))
    current = settings.get_all(db)
    out, values = [], {}
    for key, value in wanted.items():
        if str(_plain(current.get(key))) != str(value):
            out.append(Change("settings", key, "change", str(_plain(current.get(key))),
                              str(value)))
            values[key] = value
    if values and apply:
        try:
            settings.save(db, user, values)
        except ValidationError as exc:
            raise SettingsFileError("; ".join(exc.errors.values())) from None
    return out
