"""Activities (calls, emails, meetings…) and tasks, linked to a lead, customer, contact or deal."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from crm import records
from crm.auth import User, require
from crm.db import Database, retried
from crm.fields import Field, ValidationError, validate
from crm.i18n import N_, gettext as _

KINDS = ("call", "email", "meeting", "visit", "note", "social_message", "chat")
DIRECTIONS = ("outbound", "inbound")
OUTCOMES = ("completed", "no_answer", "left_message", "interested", "not_interested",
            "follow_up_needed")
TASK_STATUSES = ("open", "done", "cancelled")
PRIORITIES = ("low", "normal", "high")
LINKS = ("lead_id", "customer_id", "contact_id", "deal_id",
         "complaint_id")  # where an activity or task belongs

_LINK_FIELDS = [
    Field("lead_id", "Lead", "ref", ref="leads", create_only=True, export=True),
    Field("customer_id", "Customer", "ref", ref="customers", create_only=True),
    Field("contact_id", "Contact", "ref", ref="contacts", create_only=True),
    Field("deal_id", "Deal", "ref", ref="deals", create_only=True),
    Field("complaint_id", "Complaint", "ref", ref="complaints", create_only=True),
]

ACTIVITY_FIELDS = [
    Field("kind", "Type", "choice", required=True, choices=KINDS, default="call",
          filter=True, in_list=True),
    Field("subject", "Subject", required=True, searchable=True, in_list=True),
    Field("occurred_at", "When", "datetime", required=True, in_list=True, filter=True),
    Field("duration_minutes", "Duration (minutes)", "integer", min_value=0, max_value=24 * 60),
    Field("direction", "Direction", "choice", choices=DIRECTIONS),
    Field("outcome", "Outcome", "choice", choices=OUTCOMES, in_list=True),
    Field("notes", "Notes", "longtext", searchable=True),
    Field("owner_id", "By", "user", filter=True),
    *_LINK_FIELDS,
]

TASK_FIELDS = [
    Field("title", "Task", required=True, searchable=True, in_list=True),
    Field("due_at", "Due", "datetime", in_list=True, filter=True),
    Field("owner_id", "Assignee", "user", filter=True),
    Field("priority", "Priority", "choice", required=True, choices=PRIORITIES,
          default="normal", in_list=True, filter=True),
    Field("status", "Status", "choice", required=True, choices=TASK_STATUSES, default="open",
          in_list=True, filter=True),
    Field("notes", "Notes", "longtext"),
    *_LINK_FIELDS,
]



def _linked_entities():
    from crm.customers import CONTACTS, CUSTOMERS
    from crm.deals import DEALS
    from crm.leads import LEADS
    from crm.service import COMPLAINTS

    return {"lead_id": LEADS, "customer_id": CUSTOMERS, "contact_id": CONTACTS,
            "deal_id": DEALS, "complaint_id": COMPLAINTS}


_MISSING = {"lead_id": N_("That lead does not exist"),
            "customer_id": N_("That customer does not exist"),
            "contact_id": N_("That contact does not exist"),
            "deal_id": N_("That deal does not exist"),
            "complaint_id": N_("That complaint does not exist")}


def _check_links(cur, user: User, clean: dict) -> None:
    """At least one link; each linked record exists and the user may see it."""
    linked = {k: clean.get(k) for k in LINKS if clean.get(k) is not None}
    if not linked:
        raise ValidationError({"deal_id": _("Link it to a lead, customer, contact or deal")})
    entities = _linked_entities()
    for name, rid in linked.items():
        row = records.fetch(cur, entities[name], rid)
        if row is None or row["deleted_at"] is not None:
            raise ValidationError({name: _(_MISSING[name])})
        require(user, "view", row)


@retried  # run again on a write conflict, or without a rule that aborted it
def log_activity(db: Database, user: User, values: dict) -> int:
    with db.transaction() as cur:
        return insert_activity(cur, user, values)


def insert_activity(cur, user: User, values: dict) -> int:
    values = {"occurred_at": datetime.now().replace(second=0, microsecond=0), **values}
    clean = validate(ACTIVITIES.fields, values)
    _check_links(cur, user, clean)
    activity_id = records.insert(cur, user, ACTIVITIES, values)
    if clean.get("deal_id") and clean["occurred_at"] <= datetime.now():
        # the deal was touched: rotting counts from its latest activity (a planned, future
        # meeting is not a touch yet)
        cur.execute(
            "UPDATE deals SET last_activity_at = $at WHERE id = $d"
            " AND (last_activity_at IS NULL OR last_activity_at < $at)",
            {"at": clean["occurred_at"], "d": clean["deal_id"]})
    return activity_id


@retried
def create_task(db: Database, user: User, values: dict) -> int:
    with db.transaction() as cur:
        return insert_task(cur, user, values)


def insert_task(cur, user: User, values: dict) -> int:
    """create_task inside a transaction of the caller's (the importer's)."""
    clean = validate(TASKS.fields, values)
    _check_links(cur, user, clean)
    return records.insert(cur, user, TASKS, values)


def update_task(db: Database, user: User, task_id: int, values: dict, expected_version: int,
                base: dict | None = None) -> dict:
    return records.update(db, user, TASKS, task_id, values, expected_version, base)


@retried
def complete_task(db: Database, user: User, task_id: int, log: dict | None = None) -> dict:
    """Marks a task done; with log (activity values) also logs what was done, linked to the
    same records, in the same transaction."""
    with db.transaction() as cur:
        task = records.fetch(cur, TASKS, task_id)
        if task is None or task["deleted_at"] is not None:
            raise records.NotFound(_("Task #{id} does not exist").format(id=task_id))
        done = records.update_in(cur, user, TASKS, task_id, {"status": "done"}, None)
        cur.execute("UPDATE tasks SET completed_at = $t WHERE id = $id",
                    {"t": datetime.now(), "id": task_id})
        if log is not None:
            links = {k: task[k] for k in LINKS if task[k] is not None}
            insert_activity(cur, user, {"subject": task["title"], **log, **links})
        return done


def timeline(db: Database, user: User, link: str, record_id: int, limit: int = 100
             ) -> list[dict]:
    """Activities of one lead, customer, contact or deal, newest first."""
    _require_linked(db, user, link, record_id)
    return db.query(
        "SELECT a.id, a.kind, a.subject, a.occurred_at, a.duration_minutes, a.direction,"
        " a.outcome, a.notes, u.name AS by_name FROM activities a"
        " LEFT JOIN users u ON u.id = a.owner_id"
        f" WHERE a.{link} = $id AND a.deleted_at IS NULL"
        " ORDER BY a.occurred_at DESC, a.id DESC LIMIT $n", {"id": record_id, "n": limit})


def tasks_for(db: Database, user: User, link: str, record_id: int) -> list[dict]:
    _require_linked(db, user, link, record_id)
    return db.query(
        "SELECT t.id, t.title, t.due_at, t.status, t.priority, t.version, u.name AS assignee"
        " FROM tasks t LEFT JOIN users u ON u.id = t.owner_id"
        f" WHERE t.{link} = $id AND t.deleted_at IS NULL"
        " ORDER BY t.status = 'open' DESC, t.due_at NULLS LAST, t.id", {"id": record_id})


def _require_linked(db: Database, user: User, link: str, record_id: int) -> None:
    """Reading what hangs on a record needs the right to see the record itself."""
    if link not in LINKS:
        raise ValueError(link)
    records.get(db, user, _linked_entities()[link], record_id)


def my_tasks(db: Database, user: User, now: datetime | None = None, limit: int = 50
             ) -> dict[str, list[dict]]:
    """The user's open tasks: overdue, due today, upcoming (and those with no due date); each
    group the first `limit` by due date. my_task_counts() gives the full counts."""
    now = now or datetime.now()
    groups = {}
    for name, (where, params) in _task_groups(now).items():
        groups[name] = db.query(
            "SELECT t.id, t.title, t.due_at, t.priority, t.version, t.lead_id, t.customer_id,"
            " t.contact_id, t.deal_id, t.complaint_id, coalesce(d.title, k.subject, c.name,"
            " trim(coalesce(l.first_name, '') || ' ' || l.last_name),"
            " trim(coalesce(p.first_name, '') || ' ' || p.last_name)) AS related"
            " FROM tasks t LEFT JOIN deals d ON d.id = t.deal_id"
            " LEFT JOIN complaints k ON k.id = t.complaint_id"
            " LEFT JOIN customers c ON c.id = t.customer_id LEFT JOIN leads l ON l.id = t.lead_id"
            " LEFT JOIN contacts p ON p.id = t.contact_id"
            f" WHERE t.owner_id = $me AND t.status = 'open' AND t.deleted_at IS NULL AND {where}"
            " ORDER BY t.due_at NULLS LAST, t.id LIMIT $n", {"me": user.id, "n": limit, **params})
    return groups


def my_task_counts(db: Database, user: User, now: datetime | None = None) -> dict[str, int]:
    now = now or datetime.now()
    return {name: db.scalar(
        "SELECT count(*) FROM tasks t WHERE t.owner_id = $me AND t.status = 'open'"
        f" AND t.deleted_at IS NULL AND {where}", {"me": user.id, **params})
        for name, (where, params) in _task_groups(now).items()}


def _task_groups(now: datetime) -> dict[str, tuple[str, dict]]:
    tomorrow = datetime.combine(now.date() + timedelta(days=1), time())
    return {
        "overdue": ("t.due_at < $now", {"now": now}),
        "today": ("t.due_at >= $now AND t.due_at < $tomorrow", {"now": now, "tomorrow": tomorrow}),
        "upcoming": ("(t.due_at >= $tomorrow OR t.due_at IS NULL)", {"tomorrow": tomorrow}),
    }


def due_default() -> datetime:
    return datetime.combine(date.today() + timedelta(days=1), time(9, 0))


ACTIVITIES = records.Entity(table="activities", label="Activity", plural="Activities",
                            code_fields=ACTIVITY_FIELDS, title_sql="t.subject",
                            default_sort=("occurred_at", "desc"), creator=log_activity,
                            insert_in=insert_activity)
TASKS = records.Entity(table="tasks", label="Task", plural="Tasks", code_fields=TASK_FIELDS,
                       title_sql="t.title", default_sort=("due_at", "asc"),
                       creator=create_task, updater=update_task, insert_in=insert_task)
