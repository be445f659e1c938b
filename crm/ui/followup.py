"""Follow-up on any record page: the activity timeline with 'log activity', and its tasks."""
from __future__ import annotations

from datetime import datetime

import streamlit as st

from crm import activities, i18n
from crm.auth import PermissionDenied, User
from crm.fields import ValidationError, spec_map
from crm.i18n import gettext as _
from crm.ui.record import inline_create_form
from crm.ui.session import get_db
from crm.ui.text import md_escape

HIDDEN_LINKS = tuple(activities.LINKS)
_ACTIVITY = spec_map(activities.ACTIVITY_FIELDS)


def activity_tab(user: User, link: str, record_id: int, key: str = "") -> None:
    """Timeline of activities of the record, newest first, with a form to log one."""
    db = get_db()
    with st.expander(_("Log an activity"), icon=":material/add_comment:",
                     expanded=not activities.timeline(db, user, link, record_id, limit=1)):
        logged = inline_create_form(
            activities.ACTIVITIES, f"activity:new:{link}:{record_id}{key}",
            {"owner_id": user.id, link: record_id, "kind": "call",
             "occurred_at": datetime.now().replace(second=0, microsecond=0)},
            lambda values: activities.log_activity(db, user, values),
            submit_label=_("Log activity"), hidden=HIDDEN_LINKS)
        if logged is not None:
            st.toast(_("Activity logged"))
            st.rerun()
    entries = activities.timeline(db, user, link, record_id)
    if not entries:
        st.caption(_("No activities yet."))
        return
    for e in entries:
        with st.container(border=True):
            head = [f"**{activities_label(e['kind'])}**", i18n.format_datetime(e["occurred_at"])]
            if e["duration_minutes"]:
                head.append(_("{minutes} min").format(
                    minutes=i18n.number(e["duration_minutes"])))
            if e["direction"]:
                head.append(_ACTIVITY["direction"].choice_label(e["direction"]))
            if e["outcome"]:
                head.append(_ACTIVITY["outcome"].choice_label(e["outcome"]))
            st.markdown(" · ".join(head))
            st.text(e["subject"] + (f"\n{e['notes']}" if e["notes"] else ""))
            if e["by_name"]:
                st.caption(_("by {name}").format(name=md_escape(e["by_name"])))


def activities_label(kind: str) -> str:
    icons = {"call": "📞", "email": "✉️", "meeting": "👥", "visit": "🚗", "note": "📝",
             "social_message": "💬", "chat": "💬"}
    return f"{icons.get(kind, '')} {_ACTIVITY['kind'].choice_label(kind)}"


def tasks_tab(user: User, link: str, record_id: int) -> None:
    """The record's tasks, open first, each with 'done'; and a form to add one."""
    db = get_db()
    found = activities.tasks_for(db, user, link, record_id)
    if found:
        task_list(user, found, key=f"{link}:{record_id}")
    else:
        st.caption(_("No tasks yet."))
    with st.expander(_("Add a task"), icon=":material/add_task:", expanded=not found):
        added = inline_create_form(
            activities.TASKS, f"task:new:{link}:{record_id}",
            {"owner_id": user.id, link: record_id, "due_at": activities.due_default()},
            lambda values: activities.create_task(db, user, values),
            submit_label=_("Add task"), hidden=HIDDEN_LINKS + ("status",))
        if added is not None:
            st.toast(_("Task added"))
            st.rerun()


def log_toggle(key: str) -> bool:
    return st.toggle(_("Log an activity when I complete a task"), value=True, key=f"log:{key}")


def task_list(user: User, tasks: list[dict], key: str, show_related: bool = False,
              log: bool | None = None) -> None:
    """Rows of tasks with a 'Done' button on the open ones; completing optionally logs it
    (log None: the list shows its own switch for that)."""
    if log is None:
        log = log_toggle(key)
    for task in tasks:
        is_open = task.get("status", "open") == "open"
        text, done = st.columns([7, 1], vertical_alignment="center")
        mark = ":material/radio_button_unchecked:" if is_open else ":material/check_circle:"
        text.markdown(f"{mark} {md_escape(task['title'])}")
        due = task.get("due_at")
        details = [_("due {when}").format(when=i18n.format_datetime(due)) if due
                   else _("no due date")]
        if show_related and task.get("related"):
            details.insert(0, task["related"])
        text.caption(md_escape(" · ".join(details)))
        if is_open and done.button("", key=f"done:{key}:{task['id']}", icon=":material/check:",
                                   help=_("Mark done")):
            try:
                activities.complete_task(get_db(), user, task["id"],
                                         log={"kind": "note", "outcome": "completed"}
                                         if log else None)
            except (PermissionDenied, ValidationError) as exc:
                st.error(md_escape(exc))
                return
            st.toast(_("Task done; noted in the activities") if log else _("Task done"))
            st.rerun()

