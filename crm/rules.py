"""Automation rules: trigger -> conditions -> actions, written by an admin in forms.

Triggers: a record is created; a field changes (optionally to a value, e.g. a deal moved to a
stage); a date is reached (N days before or after a date field, by `python -m crm run-rules`
and at the first page load of the day); a survey answer's score is below a threshold.
Conditions: all or any of (field, operator, value) over the record's fields, read from
`entity.spec` at run time (custom fields included). Actions: create a task, set a field,
assign the owner (fixed or round-robin), add a note to the record's timeline.

How a rule runs
- Inside the transaction of the write that triggers it: the write commands (records.insert,
  insert_many, update_in, update_many, deals.move_deal) call on_created / on_changed. With
  no enabled rule for the entity the hook costs one cached dictionary lookup.
- As whom: the rule's actions run as an automation identity with admin rights, named
  "automation rule #N (by AUTHOR)" in the audit log (the author: the admin who last saved
  the rule). A rule whose author is no longer an active admin fails (logged) until an admin
  saves it again. Records the actions write have no created_by/updated_by user.
- A failing rule never loses the user's write. DuckDB has no SAVEPOINT and a failed statement
  aborts the whole transaction, so every action of a rule is first *planned*: its values
  converted by the field specs, users checked to exist and be active, links checked, with
  reads only. Only when every action of the rule planned cleanly are they carried out; a
  planning error makes the run "failed" (logged with the reason) and nothing of the rule is
  written. Any exception of a rule is caught here. Should a statement of a rule fail anyway
  (which planning is there to prevent), PostgreSQL undoes the rule back to a savepoint; on
  DuckDB the aborted transaction cannot be committed, so the failure is logged on its own and
  the command (run by Database.run) runs again without that rule: the write stands. An import
  is not run again; it is refused with a clear message. A collision with
  another writer (a deadlock) is not the rule's fault: it goes up, and the whole save runs
  again (crm.db.Database.run).
- Loops: actions that write trigger rules again, one level deeper; at MAX_DEPTH a rule that
  would run is logged as "loop limit reached" and its actions are not carried out.
- Every run (the trigger fired and the conditions held) is logged in rule_runs: ok (what the
  actions did), failed (why) or loop_limit.
"""
from __future__ import annotations

import json
import logging
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta
from decimal import Decimal

from crm import audit, dialect
from crm.auth import PermissionDenied, User
from crm.db import CURRENT, SKIPPED_HOOKS, Database, HookAborted, rows
from crm.fields import Field, ValidationError, convert
from crm.i18n import N_, gettext as _

log = logging.getLogger(__name__)

TRIGGERS = ("created", "changed", "date", "survey_below")
TRIGGER_LABELS = {"created": N_("A record is created"), "changed": N_("A field changes"),
                  "date": N_("A date is reached"),
                  "survey_below": N_("A survey score is below a threshold")}
OPS = ("eq", "ne", "contains", "gt", "lt", "empty", "not_empty", "in")
OP_LABELS = {"eq": N_("equals"), "ne": N_("does not equal"), "contains": N_("contains"),
             "gt": N_("is greater than"), "lt": N_("is less than"), "empty": N_("is empty"),
             "not_empty": N_("is not empty"), "in": N_("is one of")}
NO_VALUE = ("empty", "not_empty")
ACTIONS = ("create_task", "set_field", "assign_owner", "add_note")
ACTION_LABELS = {"create_task": N_("Create a task"), "set_field": N_("Set a field"),
                 "assign_owner": N_("Assign the owner"),
                 "add_note": N_("Add a note to the record")}
STATUS_LABELS = {"ok": N_("Done"), "failed": N_("Failed"),
                 "loop_limit": N_("Loop limit reached")}
ENTITY_TABLES = ("leads", "customers", "contacts", "deals", "tasks", "activities", "surveys",
                 "complaints")
SURVEY_SCORES = ("csat", "nps")
MAX_DEPTH = 3  # rules started by rules' writes, then by theirs: the third level stops
DATE_LOOKBACK_DAYS = 7  # a date rule missed while nobody ran the rules still fires this late
CACHE_SECONDS = 30.0  # rules saved by another process are seen after this long at most
LAST_RUN_KEY = "rules_last_run_day"  # in the settings table
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")

_DEPTH: ContextVar[int] = ContextVar("crm_rule_depth", default=0)
_CACHE: dict[str, tuple[float, dict[str, list]]] = {}
_DAILY: dict[str, date] = {}


class RuleError(ValueError):
    """A rule cannot run as written (a field gone, a user locked…): its run is logged failed."""


class RuleAbortedWrite(PermissionDenied, HookAborted):
    """The database aborted the transaction while a rule ran; the write cannot be committed.

    A command run by Database.run (records.create, update, delete, the deal and conversion
    commands...) runs again without the rule, so the write stands. Elsewhere (an import) it is
    a refusal of the save like a permission's: every form, the importer and the command line
    already show such a refusal's message and keep what was typed."""

    def __init__(self, message: str, rule_id: int | None = None):
        super().__init__(message)
        self.hook = rule_id


@dataclass
class Rule:
    id: int
    name: str
    entity: str
    trigger: str
    config: dict
    match: str
    conditions: list[dict]
    actions: list[dict]
    enabled: bool
    created_by: int | None = None
    updated_by: int | None = None
    version: int = 1
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict) -> "Rule":
        return cls(id=row["id"], name=row["name"], entity=row["entity"],
                   trigger=row["trigger_kind"], config=json.loads(row["trigger_config"] or "{}"),
                   match=row["match_kind"], conditions=json.loads(row["conditions"] or "[]"),
                   actions=json.loads(row["actions"] or "[]"), enabled=bool(row["enabled"]),
                   created_by=row.get("created_by"), updated_by=row.get("updated_by"),
                   version=row.get("version", 1))


def entities() -> dict:
    """table -> records.Entity of the entities rules can watch."""
    from crm.activities import ACTIVITIES, TASKS
    from crm.customers import CONTACTS, CUSTOMERS
    from crm.deals import DEALS
    from crm.leads import LEADS
    from crm.service import COMPLAINTS, SURVEYS

    return {e.table: e for e in (LEADS, CUSTOMERS, CONTACTS, DEALS, TASKS, ACTIVITIES,
                                 SURVEYS, COMPLAINTS)}


# --- which fields fit where (read from entity.spec at call time: custom fields count) --------

def condition_fields(entity) -> list[Field]:
    return [f for f in entity.all_fields if f.name not in ("updated_at",)]


def trigger_fields(entity) -> list[Field]:
    """Fields whose change can trigger a rule."""
    return [f for f in entity.fields if f.editable or f.create_only]


def date_fields(entity) -> list[Field]:
    return [f for f in entity.all_fields if f.type in ("date", "datetime")
            and f.name != "updated_at"]


def settable_fields(entity) -> list[Field]:
    return [f for f in entity.fields if f.editable and not f.create_only
            and f.name != entity.parent and f.name != "owner_id"]


# --- values typed into the forms -> stored values ---------------------------------------------

def _stored(value):
    """A clean value as JSON keeps it (convert() turns it back)."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def parse_value(db_or_cur, spec: Field, raw):
    """A value typed for a field (text from a form) as stored in a rule; ValueError says why.
    Users and referenced records may be given by id (#12 or 12) or by name."""
    if spec.type in ("user", "ref") and isinstance(raw, str) and raw.strip() \
            and not raw.strip().lstrip("#").isdigit():
        return _resolve_name(db_or_cur, spec, raw.strip())
    if spec.type in ("user", "ref") and isinstance(raw, str):
        raw = raw.strip().lstrip("#")
    value = convert(spec, raw)
    if value is None:
        raise ValueError(_("Give a value for {field}").format(field=spec.shown_label))
    return _stored(value)


def _resolve_name(db_or_cur, spec: Field, text: str) -> int:
    from crm.records import REF_LABELS

    if spec.type == "user":
        sql = ("SELECT id FROM users WHERE lower(username) = lower($t) OR lower(name) = lower($t)"
               " ORDER BY id")
    elif spec.ref == "stages":  # stage names repeat across pipelines: "Pipeline › Stage" too
        sql = ("SELECT s.id FROM stages s JOIN pipelines p ON p.id = s.pipeline_id"
               " WHERE lower(s.name) = lower($t) OR lower(p.name || ' › ' || s.name) = lower($t)"
               " OR lower(p.name || ' / ' || s.name) = lower($t) ORDER BY s.id")
    elif spec.ref in REF_LABELS:
        sql = (f"SELECT r.id FROM {spec.ref} r WHERE lower({REF_LABELS[spec.ref].format(a='r')})"
               f" = lower($t) ORDER BY r.id")
    else:
        raise ValueError(_("{label} must be chosen from the list").format(label=spec.shown_label))
    found = [r["id"] for r in _query(db_or_cur, sql, {"t": text})]
    if not found:
        raise ValueError(_("No {field} is called {name}").format(field=spec.shown_label,
                                                                 name=text))
    if len(found) > 1:
        raise ValueError(_("Several records are called {name}; give the id instead, e.g. "
                           "#{id}").format(name=text, id=found[0]))
    return found[0]


def _query(db_or_cur, sql: str, params: dict) -> list[dict]:
    if isinstance(db_or_cur, Database):
        return db_or_cur.query(sql, params)
    return rows(db_or_cur, sql, params)


def value_text(db: Database, spec: Field | None, value) -> str:
    """A stored rule value as people read it (a stage's name, not its id)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(value_text(db, spec, v) for v in value)
    if spec is None:
        return str(value)
    if spec.type == "choice":
        return spec.choice_label(value)
    if spec.type == "bool":
        return _("yes") if convert(spec, value) else _("no")
    if spec.type == "user":
        row = db.one("SELECT name FROM users WHERE id = $id", {"id": int(value)})
        return row["name"] if row else f"#{value}"
    if spec.type == "ref":
        from crm.records import REF_LABELS

        if spec.ref == "stages":
            row = db.one("SELECT p.name || ' › ' || s.name AS label FROM stages s"
                         " JOIN pipelines p ON p.id = s.pipeline_id WHERE s.id = $id",
                         {"id": int(value)})
        elif spec.ref in REF_LABELS:
            row = db.one(f"SELECT {REF_LABELS[spec.ref].format(a='r')} AS label"
                         f" FROM {spec.ref} r WHERE r.id = $id", {"id": int(value)})
        else:
            row = None
        return f"{row['label']} (#{value})" if row and row["label"] else f"#{value}"
    return str(value)


# --- saving rules (admin) ---------------------------------------------------------------------

def _require_admin(user: User) -> None:
    if user is None or user.role != "admin":
        raise PermissionDenied(_("Only an admin can change automation rules"))


def clean_rule(db: Database, values: dict) -> dict:
    """Validates a rule as typed in the form; returns the columns to store or raises
    ValidationError with keys name, entity, trigger, trigger.<setting>, condition.<i>,
    action.<i>."""
    errors: dict[str, str] = {}
    name = (values.get("name") or "").strip()
    if not name:
        errors["name"] = _("Give the rule a name")
    elif len(name) > 200:
        errors["name"] = _("The name is too long (at most 200 characters)")
    table = values.get("entity")
    kind = values.get("trigger")
    if table not in ENTITY_TABLES:
        errors["entity"] = _("Choose what the rule watches")
        raise ValidationError(errors)
    if kind not in TRIGGERS:
        errors["trigger"] = _("Choose when the rule runs")
        raise ValidationError(errors)
    entity = entities()[table]
    spec = entity.spec
    raw = values.get("trigger_config") or {}
    config: dict = {}
    if kind == "changed":
        f = spec.get(raw.get("field") or "")
        if f is None or f not in trigger_fields(entity):
            errors["trigger.field"] = _("Choose the field whose change runs the rule")
        else:
            config["field"] = f.name
            to = raw.get("to")
            if to not in (None, ""):
                try:
                    config["to"] = parse_value(db, f, to)
                except ValueError as exc:
                    errors["trigger.to"] = str(exc)
    elif kind == "date":
        f = spec.get(raw.get("field") or "")
        if f is None or f not in date_fields(entity):
            errors["trigger.field"] = _("Choose a date field")
        else:
            config["field"] = f.name
        days = _int(raw.get("days"), 0, 3650)
        if days is None:
            errors["trigger.days"] = _("Days must be a whole number from 0 to 3650")
        else:
            config["days"] = days
        if raw.get("when") not in ("before", "after"):
            errors["trigger.when"] = _("Choose before or after")
        else:
            config["when"] = raw["when"]
    elif kind == "survey_below":
        if table != "surveys":
            errors["trigger"] = _("Survey scores are watched on survey answers")
        if raw.get("score") not in SURVEY_SCORES:
            errors["trigger.score"] = _("Choose CSAT or NPS")
        else:
            config["score"] = raw["score"]
        high = 5 if raw.get("score") == "csat" else 10
        threshold = _int(raw.get("threshold"), 1, high)
        if threshold is None:
            errors["trigger.threshold"] = _("The threshold must be a whole number from 1 to "
                                            "{high}").format(high=high)
        else:
            config["threshold"] = threshold
    match = values.get("match") or "all"
    if match not in ("all", "any"):
        errors["match"] = _("Choose all or any")
    conditions = []
    for i, c in enumerate(values.get("conditions") or []):
        if not c.get("field"):
            continue  # an empty row of the form
        try:
            conditions.append(_clean_condition(db, entity, c))
        except ValueError as exc:
            errors[f"condition.{i}"] = str(exc)
    actions = []
    for i, a in enumerate(values.get("actions") or []):
        try:
            actions.append(_clean_action(db, entity, a))
        except ValidationError as exc:
            errors[f"action.{i}"] = " ".join(exc.errors.values())
        except ValueError as exc:
            errors[f"action.{i}"] = str(exc)
    if not values.get("actions"):
        errors["actions"] = _("Add at least one action")
    if errors:
        raise ValidationError(errors)
    return {"name": name, "entity": table, "trigger_kind": kind,
            "trigger_config": json.dumps(config), "match_kind": match,
            "conditions": json.dumps(conditions), "actions": json.dumps(actions),
            "enabled": bool(values.get("enabled", True))}


def _int(raw, low: int, high: int) -> int | None:
    try:
        number = int(str(raw).strip())
    except (TypeError, ValueError):
        return None
    return number if low <= number <= high else None


def _clean_condition(db: Database, entity, c: dict) -> dict:
    f = entity.spec.get(c["field"])
    if f is None:
        raise ValueError(_("{field} is not a field of this record").format(field=c["field"]))
    op = c.get("op")
    if op not in OPS:
        raise ValueError(_("Choose an operator"))
    out = {"field": f.name, "op": op}
    if op in NO_VALUE:
        return out
    raw = c.get("value")
    if op == "in":
        parts = [p for p in str(raw or "").split(",") if p.strip()]
        if not parts:
            raise ValueError(_("Give the values, separated by commas"))
        out["value"] = [parse_value(db, f, p) for p in parts]
    elif op == "contains":
        if raw in (None, ""):
            raise ValueError(_("Give the text to look for"))
        out["value"] = str(raw)
    else:
        if op in ("gt", "lt") and f.type not in ("money", "number", "integer", "date",
                                                 "datetime"):
            raise ValueError(_("{field} is not a number or a date").format(
                field=f.shown_label))
        out["value"] = parse_value(db, f, raw)
    return out


def _clean_action(db: Database, entity, a: dict) -> dict:
    kind = a.get("kind")
    if kind == "create_task":
        title = (a.get("title") or "").strip()
        if not title:
            raise ValueError(_("Give the task a title"))
        if len(title) > 200:
            raise ValueError(_("The title is too long (at most 200 characters)"))
        assignee = a.get("assignee") or "owner"
        if assignee not in ("owner", "user"):
            raise ValueError(_("Choose who gets the task"))
        user_id = None
        if assignee == "user":
            user_id = _active_user(db, a.get("user_id"))
        due = _int(a.get("due_days"), 0, 3650)
        if due is None:
            raise ValueError(_("Due in days must be a whole number from 0 to 3650"))
        priority = a.get("priority") or "normal"
        from crm.activities import PRIORITIES

        if priority not in PRIORITIES:
            raise ValueError(_("Choose a priority"))
        return {"kind": kind, "title": title, "assignee": assignee, "user_id": user_id,
                "due_days": due, "priority": priority}
    if kind == "set_field":
        f = entity.spec.get(a.get("field") or "")
        if f is None or f not in settable_fields(entity):
            raise ValueError(_("Choose the field to set"))
        raw = a.get("value")
        if raw in (None, ""):
            value = None  # clears the field
            if f.required:
                raise ValueError(_("{label} is required").format(label=f.shown_label))
        else:
            value = parse_value(db, f, raw)
        return {"kind": kind, "field": f.name, "value": value}
    if kind == "assign_owner":
        if not entity.owned:
            raise ValueError(_("These records have no owner"))
        mode = a.get("mode") or "fixed"
        if mode not in ("fixed", "round_robin"):
            raise ValueError(_("Choose a fixed user or round-robin"))
        users = [_active_user(db, u) for u in (a.get("user_ids") or [])]
        if not users:
            raise ValueError(_("Choose the user") if mode == "fixed"
                             else _("Choose the users to take turns"))
        if mode == "fixed" and len(users) > 1:
            raise ValueError(_("A fixed owner is one user"))
        return {"kind": kind, "mode": mode, "user_ids": list(dict.fromkeys(users))}
    if kind == "add_note":
        subject = (a.get("subject") or "").strip()
        if not subject:
            raise ValueError(_("Give the note a subject"))
        if len(subject) > 200:
            raise ValueError(_("The subject is too long (at most 200 characters)"))
        notes = (a.get("notes") or "").strip()
        if len(notes) > 5000:
            raise ValueError(_("The note is too long (at most 5000 characters)"))
        return {"kind": kind, "subject": subject, "notes": notes}
    raise ValueError(_("Choose an action"))


def _active_user(db_or_cur, user_id) -> int:
    try:
        uid = int(user_id)
    except (TypeError, ValueError):
        raise ValueError(_("Choose the user")) from None
    found = _query(db_or_cur, "SELECT id FROM users WHERE id = $id AND active"
                              " AND deleted_at IS NULL AND role <> 'viewer'", {"id": uid})
    if not found:
        raise ValueError(_("User #{id} is not an active user who can own records").format(
            id=uid))
    return uid


def save_rule(db: Database, user: User, values: dict, rule_id: int | None = None,
              expected_version: int | None = None) -> int:
    """Creates (rule_id None) or changes a rule; admin only; validated, audited, one
    transaction. The saving admin becomes the rule's author (whose authority it acts with)."""
    _require_admin(user)
    clean = clean_rule(db, values)
    now = datetime.now()
    with db.transaction() as cur:
        if rule_id is None:
            clean.update(created_at=now, created_by=user.id or None, updated_at=now,
                         updated_by=user.id or None)
            cols = list(clean)
            rule_id = cur.execute(
                f"INSERT INTO automation_rules ({', '.join(cols)})"
                f" VALUES ({', '.join('$' + c for c in cols)}) RETURNING id", clean).fetchone()[0]
            audit.record(cur, user, "automation_rules", rule_id, "create",
                         {"name": (None, clean["name"])})
        else:
            current = _current(cur, rule_id)
            if expected_version is not None and current["version"] != expected_version:
                raise ValidationError({"name": _(
                    "Someone changed this rule after you opened it; reload the page")})
            changes = {k: (current[k], v) for k, v in clean.items() if current[k] != v}
            clean.update(updated_at=now, updated_by=user.id or None, id=rule_id)
            assigns = ", ".join(f"{k} = ${k}" for k in clean if k != "id")
            cur.execute(f"UPDATE automation_rules SET {assigns}, version = version + 1"
                        f" WHERE id = $id", clean)
            audit.record(cur, user, "automation_rules", rule_id, "update", changes)
    invalidate(db)
    return rule_id


def _current(cur, rule_id: int) -> dict:
    found = rows(cur, "SELECT * FROM automation_rules WHERE id = $id AND deleted_at IS NULL",
                 {"id": int(rule_id)})
    if not found:
        from crm.records import NotFound

        raise NotFound(_("Rule #{id} does not exist").format(id=rule_id))
    return found[0]


def set_enabled(db: Database, user: User, rule_id: int, enabled: bool) -> None:
    _require_admin(user)
    with db.transaction() as cur:
        current = _current(cur, rule_id)
        if bool(current["enabled"]) == bool(enabled):
            return
        cur.execute("UPDATE automation_rules SET enabled = $e, version = version + 1,"
                    " updated_at = $now, updated_by = $by WHERE id = $id",
                    {"e": bool(enabled), "now": datetime.now(), "by": user.id or None,
                     "id": rule_id})
        audit.record(cur, user, "automation_rules", rule_id, "update",
                     {"enabled": (bool(current["enabled"]), bool(enabled))})
    invalidate(db)


def delete_rule(db: Database, user: User, rule_id: int) -> None:
    """Moves a rule to the trash (its run log stays)."""
    _require_admin(user)
    with db.transaction() as cur:
        _current(cur, rule_id)
        cur.execute("UPDATE automation_rules SET deleted_at = $now, deleted_by = $by,"
                    " enabled = FALSE, version = version + 1 WHERE id = $id",
                    {"now": datetime.now(), "by": user.id or None, "id": rule_id})
        audit.record(cur, user, "automation_rules", rule_id, "delete")
    invalidate(db)


# --- reading rules ----------------------------------------------------------------------------

def list_rules(db: Database, user: User) -> list[dict]:
    """Every live rule with its last run, number of runs and of failures."""
    _require_admin(user)
    return db.query(
        "SELECT r.id, r.name, r.entity, r.trigger_kind, r.enabled, r.version, s.last_run,"
        " coalesce(s.runs, 0) AS runs, coalesce(s.failures, 0) AS failures"
        " FROM automation_rules r LEFT JOIN (SELECT rule_id, max(ran_at) AS last_run,"
        " count(*) AS runs, sum(CASE WHEN status = 'ok' THEN 0 ELSE 1 END) AS failures"
        " FROM rule_runs GROUP BY rule_id) s ON s.rule_id = r.id"
        " WHERE r.deleted_at IS NULL ORDER BY r.id")


def get_rule(db: Database, user: User, rule_id: int) -> Rule:
    _require_admin(user)
    found = db.query("SELECT * FROM automation_rules WHERE id = $id AND deleted_at IS NULL",
                     {"id": int(rule_id)})
    if not found:
        from crm.records import NotFound

        raise NotFound(_("Rule #{id} does not exist").format(id=rule_id))
    return Rule.from_row(found[0])


def runs(db: Database, user: User, rule_id: int, page: int = 1, page_size: int = 20):
    """One page of a rule's run log, newest first (a records.Page)."""
    from crm.records import Page

    _require_admin(user)
    total = db.scalar("SELECT count(*) FROM rule_runs WHERE rule_id = $r", {"r": rule_id})
    pages = max(1, -(-total // page_size))
    page = max(1, min(int(page), pages))
    found = db.query(
        "SELECT id, entity, record_id, status, message, depth, ran_at FROM rule_runs"
        " WHERE rule_id = $r ORDER BY ran_at DESC, id DESC LIMIT $n OFFSET $o",
        {"r": rule_id, "n": page_size, "o": (page - 1) * page_size})
    return Page(found, total, page, page_size)


def describe_trigger(db: Database, rule: Rule) -> str:
    """The trigger in words, e.g. "Deals: Stage changes to Sales › Won (#5)"."""
    entity = entities().get(rule.entity)
    plural = _(entity.plural) if entity else rule.entity
    spec = entity.spec if entity else {}
    c = rule.config
    f = spec.get(c.get("field"))
    name = f.shown_label if f else c.get("field")
    if rule.trigger == "created":
        return _("{entity}: created").format(entity=plural)
    if rule.trigger == "changed" and c.get("to") is not None:
        return _("{entity}: {field} changes to {value}").format(
            entity=plural, field=name, value=value_text(db, f, c["to"]))
    if rule.trigger == "changed":
        return _("{entity}: {field} changes").format(entity=plural, field=name)
    if rule.trigger == "date":
        text = (_("{entity}: {days} days before {field}") if c.get("when") == "before"
                else _("{entity}: {days} days after {field}"))
        return text.format(entity=plural, days=c.get("days"), field=name)
    if rule.trigger == "survey_below":
        return _("{entity}: {score} below {threshold}").format(
            entity=plural, score=str(c.get("score", "")).upper(), threshold=c.get("threshold"))
    return rule.trigger


# --- the cache of enabled rules ---------------------------------------------------------------

def invalidate(db: Database | None = None) -> None:
    if db is None:
        _CACHE.clear()
    else:
        _CACHE.pop(str(db.path), None)


def _load(cur) -> dict[str, list[Rule]]:
    by_table: dict[str, list[Rule]] = {}
    for row in rows(cur, "SELECT * FROM automation_rules WHERE enabled AND deleted_at IS NULL"
                         " ORDER BY id"):
        try:
            rule = Rule.from_row(row)
        except (ValueError, TypeError):  # hand-edited JSON: skipped, the page shows the rule
            log.warning("automation rule %s cannot be read", row.get("id"))
            continue
        by_table.setdefault(rule.entity, []).append(rule)
    return by_table


def _enabled(cur, table: str) -> list[Rule]:
    """The enabled rules of a table: one dictionary lookup while the cache is fresh."""
    db = CURRENT.get()
    if db is None:  # a bare cursor outside Database.transaction(): read them
        return _load(cur).get(table, [])
    key = str(db.path)
    hit = _CACHE.get(key)
    now = time.monotonic()
    if hit is None or now - hit[0] > CACHE_SECONDS:
        hit = (now, _load(cur))
        _CACHE[key] = hit
    return hit[1].get(table, [])


# --- hooks the write commands call ------------------------------------------------------------

def watched(cur, table: str) -> bool:
    """Whether any enabled rule watches the table (one cached lookup)."""
    return bool(_enabled(cur, table))


def on_created(cur, user: User, entity, ids: list[int]) -> None:
    """Records of entity were inserted in this transaction: runs the created (and survey
    score) rules. Never raises for a rule's failure (see the module's doc)."""
    rules = _enabled(cur, entity.table)
    if not rules:
        return
    wanted = [r for r in rules if r.trigger in ("created", "survey_below")]
    for record_id in ids:
        _fire(cur, entity, record_id, wanted, None)


def on_changed(cur, user: User, entity, record_id: int, changes: dict) -> None:
    """A record was updated in this transaction; changes is {field: (old, new)}."""
    rules = _enabled(cur, entity.table)
    if not rules or not changes:
        return
    _fire(cur, entity, record_id, [r for r in rules if r.trigger in ("changed", "survey_below")],
          changes)


def on_changed_many(cur, user: User, entity, ids: list[int], changes: list[dict]) -> None:
    rules = _enabled(cur, entity.table)
    if not rules:
        return
    wanted = [r for r in rules if r.trigger in ("changed", "survey_below")]
    for record_id, change in zip(ids, changes):
        if change:
            _fire(cur, entity, record_id, wanted, change)


def _triggered(rule: Rule, changes: dict | None, row_getter) -> bool:
    c = rule.config
    if rule.trigger == "created":
        return changes is None
    if rule.trigger == "changed":
        if changes is None or c.get("field") not in changes:
            return False
        if c.get("to") is None:
            return True
        entity = entities()[rule.entity]
        f = entity.spec.get(c["field"])
        if f is None:
            raise RuleError(_("The field {field} no longer exists").format(field=c["field"]))
        return _equal(changes[c["field"]][1], convert(f, c["to"]))
    if rule.trigger == "survey_below":
        score = c.get("score")
        if changes is not None and score not in changes:
            return False
        value = row_getter().get(score)
        return value is not None and value < int(c.get("threshold", 0))
    return False


def _fire(cur, entity, record_id: int, rules: list[Rule], changes: dict | None) -> None:
    row: dict | None = None

    def get_row() -> dict:
        nonlocal row
        if row is None:
            from crm.records import fetch

            row = fetch(cur, entity, record_id) or {}
        return row

    skipped = SKIPPED_HOOKS.get()
    for rule in rules:
        if rule.id in skipped:  # it aborted this save once (logged): the save runs without it
            continue
        try:
            if not _triggered(rule, changes, get_row):
                continue
        except RuleError as exc:
            _log(cur, rule, record_id, "failed", str(exc))
            continue
        _run(cur, rule, entity, get_row())
        row = None  # the rule may have changed it: the next one reads it again


def _run(cur, rule: Rule, entity, row: dict) -> str | None:
    """Runs one rule on one record inside the caller's transaction; returns the logged status
    (None: the conditions did not hold). Raises only RuleAbortedWrite, and a collision with
    another writer (the caller's unit of work runs again)."""
    record_id = row.get("id")
    if record_id is None or row.get("deleted_at") is not None:
        return None  # gone, or in the trash (a stage's deals, trashed ones too, moved in bulk)
    try:
        if not _conditions_hold(rule, entity, row):
            return None
    except RuleError as exc:
        _log(cur, rule, record_id, "failed", str(exc))
        return "failed"
    depth = _DEPTH.get()
    if depth >= MAX_DEPTH:
        _log(cur, rule, record_id, "loop_limit",
             _("Loop limit reached: rules started by rules {depth} levels deep").format(
                 depth=depth), depth)
        return "loop_limit"
    token = _DEPTH.set(depth + 1)
    try:
        try:
            actor, author = _actor(cur, rule)
            plans = _plan(cur, rule, entity, row, actor, author)
        except (RuleError, ValidationError, ValueError, PermissionDenied, LookupError) as exc:
            _log(cur, rule, record_id, "failed", _message(exc), depth)
            return "failed"
        done = []
        # PostgreSQL undoes a failed statement back to a savepoint and the save goes on;
        # DuckDB has none (see the module's doc)
        savepoint = f"crm_rule_{depth}" if dialect.of(cur) == dialect.POSTGRESQL else None
        if savepoint:
            cur.execute(f"SAVEPOINT {savepoint}")
        try:
            for execute in plans:
                done.append(execute())
        except Exception as exc:  # planned cleanly yet failed: not expected
            if dialect.is_write_conflict(exc):  # lost to another writer: the whole save reruns
                raise
            if savepoint:
                cur.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                done = []  # undone
            _check_alive(cur, rule, record_id, exc, depth)
            _log(cur, rule, record_id, "failed", _("After {done}: {error}").format(
                done="; ".join(done) or "-", error=_message(exc)), depth)
            return "failed"
        if savepoint:
            cur.execute(f"RELEASE SAVEPOINT {savepoint}")
        _log(cur, rule, record_id, "ok", "; ".join(done), depth)
        return "ok"
    finally:
        _DEPTH.reset(token)


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.errors.values())
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_alive(cur, rule: Rule, record_id, exc: Exception, depth: int) -> None:
    """After an unexpected error: when the database aborted the transaction, nothing more can
    be written in it; the failure is logged on its own and the write refused."""
    try:
        cur.execute("SELECT 1").fetchall()
        return
    except Exception:
        pass
    db = CURRENT.get()
    if db is not None:
        try:
            other = db.cursor()
            try:
                other.execute("BEGIN TRANSACTION")
                _log(other, rule, record_id, "failed", _message(exc), depth)
                other.execute("COMMIT")
            finally:
                other.close()
        except Exception:  # logging is best effort here; the refusal below says it all
            log.exception("could not log the failure of rule %s", rule.id)
    raise RuleAbortedWrite(_("Automation rule #{id} failed in the database ({error}); the "
                             "save was undone. An admin can disable the rule under Settings "
                             "> Automation rules.").format(id=rule.id, error=_message(exc)),
                           rule.id)


def _log(cur, rule: Rule, record_id, status: str, message: str | None, depth: int | None = None
         ) -> None:
    cur.execute(
        "INSERT INTO rule_runs (rule_id, entity, record_id, status, message, depth, ran_at)"
        " VALUES ($r, $e, $id, $s, $m, $d, $at)",
        {"r": rule.id, "e": rule.entity, "id": record_id, "s": status,
         "m": (message or "")[:2000] or None,
         "d": _DEPTH.get() if depth is None else depth, "at": datetime.now()})


# --- conditions -------------------------------------------------------------------------------

def _conditions_hold(rule: Rule, entity, row: dict) -> bool:
    if not rule.conditions:
        return True
    spec = entity.spec
    results = []
    for c in rule.conditions:
        f = spec.get(c.get("field"))
        if f is None:
            raise RuleError(_("The field {field} no longer exists").format(field=c.get("field")))
        results.append(check_condition(f, c["op"], row.get(f.name), c.get("value")))
    return any(results) if rule.match == "any" else all(results)


def check_condition(spec: Field, op: str, actual, stored) -> bool:
    """Whether the record's value satisfies (op, stored value of the rule)."""
    if op == "empty":
        return actual is None or actual == ""
    if op == "not_empty":
        return not (actual is None or actual == "")
    if op == "contains":
        return actual is not None and str(stored).lower() in str(actual).lower()
    if op == "in":
        return actual is not None and any(_equal(actual, _typed(spec, v)) for v in stored)
    wanted = _typed(spec, stored)
    if op == "eq":
        return actual is not None and _equal(actual, wanted)
    if op == "ne":
        return actual is None or not _equal(actual, wanted)
    if actual is None:
        return False
    a, b = _comparable(actual, wanted)
    try:
        return a > b if op == "gt" else a < b if op == "lt" else False
    except TypeError:
        raise RuleError(_("{field} cannot be compared with {value}").format(
            field=spec.shown_label, value=stored)) from None


def _typed(spec: Field, stored):
    try:
        return convert(spec, stored)
    except ValueError as exc:
        raise RuleError(str(exc)) from None


def _comparable(a, b):
    if isinstance(a, datetime) and isinstance(b, date) and not isinstance(b, datetime):
        return a.date(), b
    if isinstance(b, datetime) and isinstance(a, date) and not isinstance(a, datetime):
        return a, b.date()
    if isinstance(a, (int, float, Decimal)) and isinstance(b, (int, float, Decimal)) \
            and not isinstance(a, bool):
        return Decimal(str(a)), Decimal(str(b))
    return a, b


def _equal(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = _comparable(a, b)
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    try:
        return a == b
    except TypeError:
        return False


# --- actions: planned (reads only) then carried out --------------------------------------------

def _actor(cur, rule: Rule) -> tuple[User, int]:
    """The identity a rule's actions run as (admin rights, named after the rule and its author,
    who must still be an active admin) and the author's id."""
    author = rule.updated_by or rule.created_by
    found = rows(cur, "SELECT username FROM users WHERE id = $id AND active AND role = 'admin'"
                      " AND deleted_at IS NULL", {"id": author or 0})
    if not found:
        raise RuleError(_("The rule's author is no longer an active admin; an admin must save "
                          "the rule again"))
    actor = User(id=0, username=f"automation rule #{rule.id} (by {found[0]['username']})",
                 name=_("Automation"), email=None, role="admin")
    return actor, author


def fill(template: str, row: dict) -> str:
    """{field} placeholders filled from the record as plain text; unknown ones stay visible."""
    def one(m):
        name = m.group(1)
        if name not in row:
            return m.group(0)
        value = row[name]
        if value is None:
            return ""
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M")
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return format(value, "f")
        return str(value)
    return PLACEHOLDER.sub(one, template)


def _links(entity, row: dict) -> dict:
    """Where a task or note made for the record belongs."""
    own = {"leads": "lead_id", "customers": "customer_id", "contacts": "contact_id",
           "deals": "deal_id", "complaints": "complaint_id"}
    if entity.table in own:
        return {own[entity.table]: row["id"]}
    from crm.activities import LINKS

    if entity.table == "surveys":
        names = ("customer_id", "contact_id", "deal_id")
    else:  # tasks and activities: the same records as theirs
        names = LINKS
    return {k: row[k] for k in names if row.get(k) is not None}


def _plan(cur, rule: Rule, entity, row: dict, actor: User, author: int) -> list:
    """Validates every action against the record as the earlier actions will leave it; returns
    the callables that write. Reads only: nothing is written until every action planned."""
    planned_row = dict(row)
    plans = []
    for i, action in enumerate(rule.actions):
        kind = action.get("kind")
        if kind == "create_task":
            plans.append(_plan_task(cur, entity, planned_row, actor, action))
        elif kind == "add_note":
            plans.append(_plan_note(cur, entity, planned_row, actor, author, action))
        elif kind == "set_field":
            plans.append(_plan_set(cur, entity, planned_row, actor, action))
        elif kind == "assign_owner":
            plans.append(_plan_owner(cur, rule, i, entity, planned_row, actor, action))
        else:
            raise RuleError(_("Unknown action {kind}").format(kind=kind))
    return plans


def _plan_task(cur, entity, row: dict, actor: User, action: dict):
    from crm import activities
    from crm.fields import validate

    if action.get("assignee") == "user":
        owner = action.get("user_id")
    else:
        owner = row.get("owner_id")
        if owner is None:
            raise RuleError(_("The record has no owner to give the task to"))
    _active_user(cur, owner)
    title = fill(action["title"], row)
    title = title if len(title) <= 200 else title[:199] + "…"
    due = datetime.combine(date.today() + timedelta(days=int(action.get("due_days") or 0)),
                           dtime(9, 0))
    values = {"title": title, "owner_id": owner, "due_at": due,
              "priority": action.get("priority") or "normal", "status": "open",
              **_links(entity, row)}
    clean = validate(activities.TASKS.fields, values)  # custom fields of tasks included
    activities._check_links(cur, actor, clean)

    def execute() -> str:
        task_id = activities.insert_task(cur, actor, values)
        return _("task #{id} created").format(id=task_id)
    return execute


def _plan_note(cur, entity, row: dict, actor: User, author: int, action: dict):
    from crm import activities
    from crm.fields import validate

    subject = fill(action["subject"], row)
    subject = subject if len(subject) <= 200 else subject[:199] + "…"
    notes = fill(action.get("notes") or "", row)[:5000] or None
    values = {"kind": "note", "subject": subject, "notes": notes,
              "occurred_at": datetime.now().replace(second=0, microsecond=0),
              "owner_id": author, **_links(entity, row)}  # "by": the rule's author
    clean = validate(activities.ACTIVITIES.fields, values)
    activities._check_links(cur, actor, clean)

    def execute() -> str:
        note_id = activities.insert_activity(cur, actor, values)
        return _("note #{id} added").format(id=note_id)
    return execute


def _plan_set(cur, entity, row: dict, actor: User, action: dict):
    from crm import records
    from crm.fields import validate

    f = entity.spec.get(action.get("field"))
    if f is None or f not in settable_fields(entity):
        raise RuleError(_("The field {field} can no longer be set").format(
            field=action.get("field")))
    specs, values = [f], {f.name: action.get("value")}
    if f.only_when:  # kept only while another field has a value: that one as it is now
        other = entity.spec[f.only_when[0]]
        specs.append(other)
        values[other.name] = row.get(other.name)
    clean = {f.name: validate(specs, values, partial=True)[f.name]}
    merged = {**{g.name: row.get(g.name) for g in entity.editable}, **clean}
    records._check(entity, merged)
    records._check_unique(cur, entity, clean, row["id"])
    row.update(clean)
    # the other field goes along, unchanged: a partial update judges only_when by what it gets
    written = {**clean, **{k: v for k, v in values.items() if k != f.name}}
    return _update_plan(cur, entity, row, actor, written,
                        _("{field} set to {value}").format(
                            field=f.shown_label, value=fill("{v}", {"v": clean[f.name]})))


def _update_plan(cur, entity, row: dict, actor: User, values: dict, done: str):
    from crm import records

    record_id = row["id"]

    def execute() -> str:
        if entity.update_in:
            entity.update_in(cur, actor, record_id, values, None)
        else:
            records.update_in(cur, actor, entity, record_id, values, None)
        return done
    return execute


def _plan_owner(cur, rule: Rule, index: int, entity, row: dict, actor: User, action: dict):
    users = [int(u) for u in action.get("user_ids") or []]
    if not entity.owned or not users:
        raise RuleError(_("No owner to assign"))
    active = {r["id"]: r["name"] for r in rows(
        cur, f"SELECT id, name FROM users WHERE active AND deleted_at IS NULL AND role <> 'viewer'"
             f" AND id IN ({', '.join('$u' + str(i) for i in range(len(users)))})",
        {f"u{i}": u for i, u in enumerate(users)})}
    state = None
    if action.get("mode") == "round_robin":
        found = rows(cur, "SELECT last_position FROM rule_round_robin WHERE rule_id = $r"
                          " AND action_index = $i", {"r": rule.id, "i": index})
        state = found[0]["last_position"] if found else None
        start = -1 if state is None else state
        position = None
        for step in range(1, len(users) + 1):
            candidate = (start + step) % len(users)
            if users[candidate] in active:
                position = candidate
                break
        if position is None:
            raise RuleError(_("None of the rule's users is active"))
    else:
        position = 0
        if users[0] not in active:
            raise RuleError(_("User #{id} is not an active user who can own records").format(
                id=users[0]))
    owner = users[position]
    row["owner_id"] = owner
    update = _update_plan(cur, entity, row, actor, {"owner_id": owner},
                          _("owner set to {name}").format(name=active[owner]))
    if action.get("mode") != "round_robin":
        return update

    def execute() -> str:
        params = {"r": rule.id, "i": index, "p": position, "now": datetime.now()}
        if state is None:
            cur.execute("INSERT INTO rule_round_robin (rule_id, action_index, last_position,"
                        " updated_at) VALUES ($r, $i, $p, $now)", params)
        else:
            cur.execute("UPDATE rule_round_robin SET last_position = $p, updated_at = $now"
                        " WHERE rule_id = $r AND action_index = $i", params)
        return update()
    return execute


# --- date rules -------------------------------------------------------------------------------

def run_date_rules(db: Database, today: date | None = None) -> dict:
    """Fires every enabled date rule on the records whose date (plus or minus the rule's days)
    is today or in the DATE_LOOKBACK_DAYS before, once per record per date. Each record in its
    own transaction. Returns {"rules", "checked", "ok", "failed", "loop_limit"}."""
    today = today or date.today()
    summary = {"rules": 0, "checked": 0, "ok": 0, "failed": 0, "loop_limit": 0}
    found = db.query("SELECT * FROM automation_rules WHERE enabled AND deleted_at IS NULL"
                     " AND trigger_kind = 'date' ORDER BY id")
    for row in found:
        rule = Rule.from_row(row)
        entity = entities().get(rule.entity)
        summary["rules"] += 1
        f = entity.spec.get(rule.config.get("field")) if entity else None
        if f is None or f.type not in ("date", "datetime"):
            with db.transaction() as cur:
                _log(cur, rule, None, "failed", _("The field {field} no longer exists").format(
                    field=rule.config.get("field")))
            summary["failed"] += 1
            continue
        shift = int(rule.config.get("days") or 0)
        shift = -shift if rule.config.get("when") == "before" else shift
        # the date fires on day D + shift: due when that day is in (today - lookback, today]
        hi = today - timedelta(days=shift)
        lo = hi - timedelta(days=DATE_LOOKBACK_DAYS)
        day = f"CAST(t.{f.name} AS DATE)"
        due = db.query(
            f"SELECT t.id, {day} AS fired_for FROM {entity.table} t"
            f" WHERE t.deleted_at IS NULL AND {day} > $lo AND {day} <= $hi"
            f" AND NOT EXISTS (SELECT 1 FROM rule_date_fired d WHERE d.rule_id = $r"
            f" AND d.record_id = t.id AND d.fired_for = {day}) ORDER BY t.id",
            {"lo": lo, "hi": hi, "r": rule.id})
        for item in due:
            summary["checked"] += 1
            status = _run_date_one(db, rule, entity, item["id"], item["fired_for"])
            if status:
                summary[status] += 1
    return summary


def _run_date_one(db: Database, rule: Rule, entity, record_id: int, fired_for: date
                  ) -> str | None:
    from crm.records import fetch

    def mark(cur) -> None:
        cur.execute("INSERT INTO rule_date_fired (rule_id, record_id, fired_for, fired_at)"
                    " VALUES ($r, $id, $d, $now)",
                    {"r": rule.id, "id": record_id, "d": fired_for, "now": datetime.now()})

    try:
        with db.transaction() as cur:
            row = fetch(cur, entity, record_id)
            if row is None:
                return None
            token = _DEPTH.set(0)
            try:
                status = _run(cur, rule, entity, row)
            finally:
                _DEPTH.reset(token)
            if status is not None:
                mark(cur)
            return status
    except RuleAbortedWrite:  # logged; remember the date so it does not fail every day
        with db.transaction() as cur:
            mark(cur)
        return "failed"


def run_daily_if_due(db: Database, today: date | None = None) -> dict | None:
    """At the first page load of the day: runs the date rules once per day (the day is kept in
    the settings table). Costs a dictionary lookup once this process has seen today."""
    today = today or date.today()
    key = str(db.path)
    if _DAILY.get(key) == today:
        return None
    with db.transaction() as cur:
        found = cur.execute("SELECT value FROM settings WHERE key = $k",
                            {"k": LAST_RUN_KEY}).fetchone()
        if found and found[0] == today.isoformat():
            _DAILY[key] = today
            return None
        params = {"k": LAST_RUN_KEY, "v": today.isoformat(), "t": datetime.now()}
        if found:
            cur.execute("UPDATE settings SET value = $v, updated_at = $t WHERE key = $k", params)
        else:
            cur.execute("INSERT INTO settings (key, value, updated_at) VALUES ($k, $v, $t)",
                        params)
    _DAILY[key] = today
    return run_date_rules(db, today)


def picks(db: Database, spec: Field) -> dict[str, str] | None:
    """{form text: label} of the values a field can take, for a picker (None: typed)."""
    if spec.type == "choice":
        return {c: spec.choice_label(c) for c in spec.choices}
    if spec.type == "bool":
        return {"yes": _("yes"), "no": _("no")}
    if spec.type == "user":
        from crm.auth import owner_choices

        return {f"#{k}": v for k, v in owner_choices(db).items()}
    if spec.type == "ref" and spec.ref == "stages":
        from crm.pipelines import stage_choices

        return {f"#{k}": v for k, v in stage_choices(db).items()}
    return None


def form_text(spec: Field | None, stored) -> str:
    """A stored rule value as typed back into the rule form (parse_value reads it again)."""
    if stored is None:
        return ""
    if isinstance(stored, list):
        return ", ".join(form_text(spec, v) for v in stored)
    if spec is not None and spec.type in ("user", "ref"):
        return f"#{stored}"
    if spec is not None and spec.type == "bool":
        return "yes" if convert(spec, stored) else "no"
    return str(stored)


def record_label(db: Database, table: str, record_id: int | None) -> str:
    """How a run log names its record: the entity's label and the record's title."""
    entity = entities().get(table)
    if entity is None or record_id is None:
        return "" if record_id is None else f"#{record_id}"
    row = db.one(f"SELECT {entity.title_sql} AS title FROM {entity.table} t WHERE t.id = $id",
                 {"id": int(record_id)})
    title = row["title"] if row and row["title"] else ""
    return f"{_(entity.label)} #{record_id}" + (f" · {title}" if title else "")
