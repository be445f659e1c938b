"""Record pages: all fields in a generated form, the change timeline, related records.

The record id travels in st.query_params so a link to a record can be shared and reloaded."""
from __future__ import annotations

from typing import Callable

import pandas as pd
import streamlit as st

from crm import auth, records
from crm.auth import PermissionDenied, User
from crm.fields import ValidationError, multichoice_values
from crm.ui.forms import clear_form, edited, spec_form, submit_form
from crm.ui.session import get_db
from crm.ui.tables import grid
from crm.ui.text import md_escape
from crm import i18n
from crm.i18n import N_, gettext as _

ACTIONS = {"create": N_("created"), "update": N_("changed"), "delete": N_("moved to the trash"),
           "restore": N_("restored"), "move": N_("moved"), "convert": N_("converted"),
           "reorder": N_("reordered"), "lock": N_("locked"), "unlock": N_("unlocked")}


def _action(action: str) -> str:
    return _(ACTIONS[action]) if action in ACTIONS else action


def record_id_param() -> int | str | None:
    raw = st.query_params.get("id", "new")
    if raw == "new":
        return "new"
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


Choices = Callable[[dict | None], dict[str, dict]]


def field_choices(entity: records.Entity, row: dict | None, extra: Choices | None) -> dict:
    """{field: {id: label}} for the form's pickers: the team for user fields, plus the page's."""
    owners = auth.owner_choices(get_db())
    found = {f.name: owners for f in entity.fields if f.type == "user"}
    found.update(custom_link_choices(entity, user_of_session()))
    found.update(extra(row) if extra else {})
    return found


def inline_create_form(entity: records.Entity, form_key: str, initial: dict, save,
                       submit_label: str, hidden: tuple[str, ...] = (),
                       specs: list | None = None):
    """submit_form for a record made inside another record's page (a task, an activity, a
    contact): the entity's fields as they are now (an admin's custom fields included, in the
    layout's order; those the layout keeps for the record page hidden unless required), with
    the pickers they need."""
    specs = entity.fields if specs is None else specs
    later = tuple(f.name for f in specs
                  if not f.quick and not f.required and f.name not in initial)
    return submit_form(form_key, specs, initial, field_choices(entity, None, None), save,
                       submit_label=submit_label, hidden=tuple(hidden) + later)


def custom_link_choices(entity: records.Entity, user: User | None) -> dict[str, dict]:
    """{field: {id: name}} for an admin's link fields: the records the user may see."""
    if user is None:
        return {}
    return {f.name: records.choices(get_db(), user, records.entity(f.ref))
            for f in entity.custom_fields if f.type == "ref" and f.ref}


def user_of_session() -> User | None:
    from crm.ui.guard import current_user

    return current_user()


def record_page(entity: records.Entity, user: User, list_page: str,
                tabs: dict[str, Callable[[dict], None]] | None = None,
                choices: Choices | None = None, new_values: dict | None = None,
                actions: Callable[[dict], None] | None = None) -> None:
    """choices(row) adds pickers for reference fields (row is None on the create form);
    new_values pre-fills the create form; actions(row) draws controls above the tabs."""
    st.page_link(list_page, label=i18n.entity_text(entity, "All {plural}"),
                 icon=":material/arrow_back:")
    rid = record_id_param()
    if rid == "new":
        if not records.may_write(user, entity):
            st.error(_("Only managers and admins can change the catalog of {plural}").format(
                plural=_(entity.plural)))
            return
        _create(entity, user, field_choices(entity, None, choices), new_values or {})
        return
    db = get_db()
    try:
        if rid is None:
            raise records.NotFound(_("That link has no valid record id"))
        row = records.get(db, user, entity, rid)
    except (records.NotFound, PermissionDenied) as exc:
        st.error(md_escape(exc))
        return
    _header(entity, row)
    if row["deleted_at"] is not None:
        _trashed(entity, user, row)
    elif actions:
        actions(row)
    names = [_("Details"), _("Timeline"), *(tabs or {})]
    shown = st.tabs(names)
    with shown[0]:
        _edit(entity, user, row, field_choices(entity, row, choices))
    with shown[1]:
        timeline(entity, user, row["id"])
    for tab, render in zip(shown[2:], (tabs or {}).values()):
        with tab:
            render(row)


def _header(entity: records.Entity, row: dict) -> None:
    number = f"{_(entity.label)} #{row['id']}"
    st.title(md_escape(row["record_title"]) or number)
    bits = [number]
    if row.get("owner_name"):
        bits.append(_("owner {name}").format(name=md_escape(row["owner_name"])))
    bits.append(_("created {when}").format(when=i18n.format_datetime(row["created_at"])))
    if row.get("updated_by_name"):
        bits.append(_("updated {when} by {name}").format(
            when=i18n.format_datetime(row["updated_at"]),
            name=md_escape(row["updated_by_name"])))
    else:
        bits.append(_("updated {when}").format(when=i18n.format_datetime(row["updated_at"])))
    st.caption(" · ".join(bits))


def _trashed(entity: records.Entity, user: User, row: dict) -> None:
    st.warning(i18n.entity_text(entity, "This {label} is in the trash since {when}.",
                                when=i18n.format_datetime(row["deleted_at"])),
               icon=":material/delete:")
    if st.button(_("Restore"), key=f"{entity.table}:restore",
                 icon=":material/restore_from_trash:"):
        _trash_command(records.restore, entity, user, row,
                       i18n.entity_text(entity, "{Label} restored"))


def _trash_command(command, entity: records.Entity, user: User, row: dict, done: str) -> None:
    """Runs records.delete or records.restore on the row; says why if it may not."""
    try:
        command(get_db(), user, entity, row["id"])
    except PermissionDenied as exc:
        st.error(md_escape(exc))
        return
    st.toast(done)
    st.rerun()


def _create(entity: records.Entity, user: User, choices: dict, initial: dict) -> None:
    st.title(i18n.entity_text(entity, "New {label}"))
    # the layout may leave fields for the record page; required ones are always asked
    later = tuple(f.name for f in entity.fields
                  if not f.quick and not f.required and f.name not in initial)
    new_id = submit_form(f"{entity.table}:new", entity.fields, {"owner_id": user.id, **initial},
                         choices, lambda values: entity.create(get_db(), user, values),
                         submit_label=i18n.entity_text(entity, "Create {label}"), hidden=later)
    if new_id is None:
        return
    st.toast(i18n.entity_text(entity, "{Label} created"))
    st.query_params["id"] = str(new_id)
    st.rerun()


def _form_key(entity: records.Entity, base: dict) -> str:
    return f"{entity.table}:{base['id']}:v{base['version']}"


def _edit(entity: records.Entity, user: User, row: dict, choices: dict) -> None:
    t, rid = entity.table, row["id"]
    base_key, conflict_key = f"{t}:{rid}:base", f"{t}:{rid}:conflict"
    base = st.session_state.get(base_key)
    if base is None or (base["version"] != row["version"]
                        and not edited(_form_key(entity, base), entity.fields, base)):
        base = row  # nothing typed yet: just show the newest copy
        st.session_state[base_key] = base
    form_key = _form_key(entity, base)
    conflict = st.session_state.get(conflict_key)
    if conflict:
        _conflict_panel(entity, user, row, conflict, base_key, conflict_key, form_key)
    elif base["version"] != row["version"]:
        st.info(_("{name} saved this record after you opened it. Your edits are kept; saving "
                  "will show what changed.").format(
            name=md_escape(row.get("updated_by_name") or _("Someone"))))
    errors = st.session_state.get(f"{form_key}:errors")
    readonly = row["deleted_at"] is not None or not records.may_write(user, entity, row)
    values = spec_form(form_key, entity.fields, base, choices, errors,
                       submit_label=_("Save changes"), disabled=readonly, editing=True)
    _delete_button(entity, user, row, readonly)
    if values is None:
        return
    try:
        saved = entity.update(get_db(), user, rid, values, base["version"], base)
    except ValidationError as exc:
        st.session_state[f"{form_key}:errors"] = exc.errors
        st.rerun()
    except records.WriteConflict as exc:  # nobody's save won: the form keeps the values
        st.error(md_escape(exc))
        return
    except records.ConflictError as exc:
        st.session_state[conflict_key] = {"current": exc.current, "changed": exc.changed,
                                          "mine": values}
        st.session_state.pop(f"{form_key}:errors", None)
        st.rerun()
    except (PermissionDenied, records.NotFound) as exc:
        st.error(md_escape(exc))
        return
    _saved(entity, saved, base_key, form_key)


def _saved(entity, saved: dict, base_key: str, old_form_key: str) -> None:
    st.session_state.pop(f"{old_form_key}:errors", None)
    clear_form(old_form_key, entity.fields)
    st.session_state[base_key] = saved
    st.toast(_("Saved"), icon=":material/check:")
    st.rerun()


def _conflict_panel(entity, user, row, conflict, base_key, conflict_key, form_key) -> None:
    current = conflict["current"]
    st.warning(i18n.entity_text(
        entity, "Not saved: {name} changed this {label} at {when} after you opened it. Your "
        "values are still in the form below.",
        name=md_escape(current.get("updated_by_name") or _("someone")),
        when=i18n.format_datetime(current["updated_at"])), icon=":material/sync_problem:")
    if conflict["changed"]:
        show = pd.DataFrame([{_("Field"): _field_label(c),
                              _("When you opened it"): _text(c["yours_was"]),
                              _("Saved by them"): _text(c["theirs"]),
                              _("Yours"): _text(c["yours"])}
                             for c in conflict["changed"]])
        grid(show, hide_index=True)
    keep, theirs = st.columns(2)
    if keep.button(_("Save my values over theirs"), key=f"{form_key}:overwrite",
                   type="primary"):
        try:
            saved = entity.update(get_db(), user, row["id"], conflict["mine"],
                                  current["version"], current)
        except records.WriteConflict as exc:
            st.error(md_escape(exc))
            return
        except records.ConflictError as exc:  # changed yet again
            st.session_state[conflict_key] = {**conflict, "current": exc.current,
                                              "changed": exc.changed}
            st.rerun()
        except (ValidationError, PermissionDenied, records.NotFound) as exc:
            st.error(md_escape(exc))
            return
        st.session_state.pop(conflict_key, None)
        _saved(entity, saved, base_key, form_key)
    if theirs.button(_("Discard mine, load theirs"), key=f"{form_key}:discard"):
        st.session_state.pop(conflict_key, None)
        clear_form(form_key, entity.fields)
        st.session_state[base_key] = row
        st.rerun()


def _delete_button(entity: records.Entity, user: User, row: dict, readonly: bool) -> None:
    if readonly:
        return
    with st.popover(_("Delete"), icon=":material/delete:"):
        st.write(i18n.entity_text(entity,
                                  "Move this {label} to the trash? You can restore it later."))
        if st.button(_("Move to trash"), key=f"{entity.table}:delete", type="primary"):
            _trash_command(records.delete, entity, user, row,
                           i18n.entity_text(entity, "{Label} moved to the trash"))


def _field_label(change: dict) -> str:
    label = change["label"]  # an English field label: its msgid
    return _(label)


TIMELINE_COLUMNS = (N_("When"), N_("Who"), N_("What"), N_("Field"), N_("Before"), N_("After"))


def _text(value) -> str:
    if value is None or value == "":
        return "—"
    return str(value)


def timeline(entity: records.Entity, user: User, record_id: int) -> None:
    entries = records.history(get_db(), user, entity, record_id)
    if not entries:
        st.caption(_("No changes recorded yet."))
        return
    spec = entity.spec
    owners = auth.owner_choices(get_db())
    lines = []
    for e in entries:
        if not e["changes"]:
            what = _action(e["action"])
            if e.get("import_id") and e["action"] == "create":
                what = _("imported (import #{id})").format(id=e["import_id"])
            lines.append({"When": e["at"], "Who": e["username"], "What": what,
                          "Field": "", "Before": "", "After": ""})
        for name, (old, new) in e["changes"].items():
            f = spec.get(name)
            lines.append({"When": e["at"], "Who": e["username"], "What": _action(e["action"]),
                          "Field": f.shown_label if f else name,
                          "Before": _shown(f, old, owners, user),
                          "After": _shown(f, new, owners, user)})
    for line in lines:
        line["When"] = i18n.format_datetime(line["When"])
    grid(pd.DataFrame(lines), hide_index=True,
                 column_config={name: st.column_config.TextColumn(_(name))
                                for name in TIMELINE_COLUMNS})


def _shown(f, value, owners, user: User | None = None) -> str:
    """A value of the audit log as the record page shows it (links by name, numbers, dates
    and choices in the user's language)."""
    if f is not None and f.type == "user" and value is not None:
        return owners.get(value, _("user #{id}").format(id=value))
    if f is not None and f.type == "ref" and f.ref and value is not None and user is not None:
        try:  # a name the user may see, else "#id"
            return records.ref_label(get_db(), user, f.ref, int(value))
        except (KeyError, TypeError, ValueError):
            return _text(value)
    if f is not None and f.type == "choice":
        return f.choice_label(value) or "—"
    if f is not None and f.type == "multichoice" and value:
        return ", ".join(f.choice_label(c) for c in multichoice_values(value))
    if f is not None and f.type == "bool":
        return _("yes") if value else _("no")
    if f is not None and f.type == "date" and value:
        return i18n.format_date(_as_date(value))
    if f is not None and f.type == "datetime" and value:
        from datetime import datetime

        return i18n.format_datetime(datetime.fromisoformat(value) if isinstance(value, str)
                                    else value)
    if f is not None and f.type in ("money", "number", "integer") and value is not None:
        if f.type == "money":
            return i18n.number(value, 2)
        # a fraction is kept (42.5 is not 42), as the list shows it
        return i18n.number(value, 0 if float(value).is_integer() else 2)
    return _text(value)


def _as_date(value):
    from datetime import date

    return date.fromisoformat(value[:10]) if isinstance(value, str) else value


def related_choices(user: User, row: dict | None) -> dict[str, dict]:
    """Pickers for the links of an activity or task to its lead, customer, contact or deal:
    on a new one, the records the user may see; on an existing one (links locked), the names
    of its links."""
    from crm import activities, customers, deals, leads, service

    db = get_db()
    if row is None:
        return {"lead_id": records.choices(db, user, leads.LEADS),
                "customer_id": customers.customer_choices(db, user),
                "contact_id": customers.contact_choices(db, user),
                "deal_id": records.choices(db, user, deals.DEALS),
                "complaint_id": records.choices(db, user, service.COMPLAINTS)}
    return {link: {row[link]: records.ref_label(db, user, spec.ref, row[link])}
            for link, spec in ((f.name, f) for f in activities.TASK_FIELDS
                               if f.name in activities.LINKS) if row.get(link) is not None}
