"""The Settings page where an admin adds custom fields and lays out an entity's form."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from crm import custom_fields, i18n, records
from crm.auth import PermissionDenied, User
from crm.custom_fields import TYPE_LABELS
from crm.fields import ValidationError
from crm.i18n import gettext as _
from crm.ui.session import get_db
from crm.ui.text import md_escape

NUMERIC = ("number", "integer", "money")
CHOICES = ("choice", "multichoice")


def entity_picker() -> str:
    tables = list(custom_fields.ENTITIES)
    return st.selectbox(_("Record type"), tables, key="studio:entity",
                        format_func=lambda t: _(records.entity(t).plural))


def fields_table(user: User, table: str) -> list[dict]:
    rows = custom_fields.list_fields(get_db(), user, table)
    if not rows:
        st.info(_("No custom fields yet. Add one below: it appears at once in the form, the"
                  " list, filters, import and export."))
        return rows
    frame = pd.DataFrame([{
        _("Label"): r["label"], _("Name (column)"): r["name"],
        _("Type"): _(TYPE_LABELS.get(r["type"], r["type"])), _("Required"): bool(r["required"]),
        _("In list"): bool(r["in_list"]), _("Filter"): bool(r["filterable"]),
        _("Search"): bool(r["searchable"])} for r in rows])
    from crm.ui.tables import grid

    grid(frame, hide_index=True, width="stretch")
    return rows


def add_form(user: User, table: str) -> None:
    st.subheader(_("Add a field"))
    kind = st.selectbox(_("Type"), list(TYPE_LABELS), key="studio:new:type",
                        format_func=lambda k: _(TYPE_LABELS[k]))
    # a new form (new widgets) after each added field: the browser shows empty boxes
    form_key = f"studio:new:{st.session_state.get('studio:added', 0)}:{kind}"
    values = settings_form(form_key, kind, {}, new=True)
    if values is None or not _saved(form_key, lambda: custom_fields.add_field(
            get_db(), user, table, {**values, "type": kind})):
        return
    st.session_state["studio:added"] = st.session_state.get("studio:added", 0) + 1
    st.toast(_("Field added: it is in the form, list, filters, import and export now"))
    st.rerun()


def edit_form(user: User, rows: list[dict]) -> None:
    if not rows:
        return
    st.subheader(_("Change a field"))
    by_id = {r["id"]: r for r in rows}
    field_id = st.selectbox(_("Field"), list(by_id), key="studio:edit:pick",
                            format_func=lambda i: f"{by_id[i]['label']} ({by_id[i]['name']})")
    row = by_id[field_id]
    st.caption(_("Type: {type}. The name and type stay as they are, so the data stays; add a"
                 " new field for another type.").format(
        type=_(TYPE_LABELS.get(row["type"], row["type"]))))
    form_key = f"studio:edit:{field_id}:{row['version']}"
    values = settings_form(form_key, row["type"], row, new=False)
    if values is not None and _saved(form_key, lambda: custom_fields.update_field(
            get_db(), user, field_id, values, row["version"])):
        st.toast(_("Field saved"))
        st.rerun()
    if st.button(_("Delete this field"), key=f"studio:delete:{field_id}",
                 icon=":material/delete:",
                 help=_("Hides the field everywhere. Its values are kept and come back when"
                        " you restore it.")):
        custom_fields.delete_field(get_db(), user, field_id)
        st.toast(_("Field deleted; restore it under Deleted fields"))
        st.rerun()


def _saved(form_key: str, save) -> bool:
    """Runs save(); refused values go back to the form (shown after a rerun, all kept)."""
    try:
        save()
    except ValidationError as exc:
        st.session_state[f"{form_key}:errors"] = exc.errors
        st.rerun()
    except PermissionDenied as exc:
        st.error(md_escape(exc))
        return False
    return True


def settings_form(form_key: str, kind: str, row: dict, new: bool) -> dict | None:
    """The settings that apply to the type; returns them when submitted. A refused save
    keeps everything typed (the widgets keep their state) and shows the reasons."""
    errors = st.session_state.get(f"{form_key}:errors") or {}
    with st.form(form_key):
        if errors:
            st.error(_("Nothing was saved: {reasons}").format(
                reasons=md_escape(" ".join(errors.values()))))
        left, right = st.columns(2)
        values = {"label": left.text_input(_("Label"), row.get("label", ""),
                                           key=f"{form_key}:label", max_chars=80)}
        if new:
            values["name"] = right.text_input(
                _("Name (column)"), key=f"{form_key}:name", max_chars=40,
                help=_("The column's name in the database and in CSV files: lower-case"
                       " letters, digits and _. It cannot change later."),
                placeholder="e.g. budget_year")
        values["help"] = st.text_input(_("Help text"), row.get("help") or "",
                                       key=f"{form_key}:help", max_chars=300)
        if kind in CHOICES:
            values["choices"] = st.text_area(
                _("Choices, one per line"), custom_fields.choices_text(row) if row else "",
                key=f"{form_key}:choices",
                help=_("Add a colour after = to show the choice as a coloured badge,"
                       " e.g. Hot = #d62728"))
        if kind == "ref":
            targets = list(custom_fields.REF_TABLES)
            current = row.get("ref_table")
            values["ref_table"] = st.selectbox(
                _("Links to"), targets, key=f"{form_key}:ref",
                index=targets.index(current) if current in targets else None,
                format_func=lambda t: _(records.entity(t).plural), disabled=not new,
                placeholder=_("Choose…"))
        if kind in NUMERIC:
            low, high = st.columns(2)
            values["min_value"] = low.text_input(_("Smallest value"), _num(row.get("min_value")),
                                                 key=f"{form_key}:min")
            values["max_value"] = high.text_input(_("Largest value"), _num(row.get("max_value")),
                                                  key=f"{form_key}:max")
        if kind in ("text", "longtext"):
            values["max_length"] = st.number_input(
                _("Most characters"), min_value=0, max_value=5000, step=10,
                value=int(row.get("max_length") or 0), key=f"{form_key}:length",
                help=_("0: the usual limit"))
        values["default_value"] = st.text_input(
            _("Default for new records"), row.get("default_value") or "",
            key=f"{form_key}:default", help=_("Written as you would type it in an import file"))
        values["section"] = st.text_input(_("Form section"), row.get("section") or "",
                                          key=f"{form_key}:section",
                                          placeholder=_("Custom fields"))
        flags = [*st.columns(2), *st.columns(2)]
        values["required"] = flags[0].checkbox(_("Required"), bool(row.get("required")),
                                               key=f"{form_key}:required")
        values["in_list"] = flags[1].checkbox(_("Shown in the list"), bool(row.get("in_list")),
                                              key=f"{form_key}:in_list")
        values["filterable"] = flags[2].checkbox(_("Filter by it"), bool(row.get("filterable")),
                                                 key=f"{form_key}:filterable")
        if kind in ("text", "longtext", "email", "phone", "url"):
            values["searchable"] = flags[3].checkbox(_("Searched"), bool(row.get("searchable")),
                                                     key=f"{form_key}:searchable")
        submitted = st.form_submit_button(_("Add field") if new else _("Save field"),
                                          type="primary")
    return values if submitted else None


def _num(value) -> str:
    if value is None:
        return ""
    return f"{value:g}"


def layout_editor(user: User, table: str) -> None:
    st.caption(_("Order the fields (smaller numbers first), group them into sections, and"
                 " choose which are on the quick-create form and in the list by default."
                 " Required fields are always on the create form."))
    rows = custom_fields.layout(get_db(), table)
    shown_sections = {r["field"]: _shown_section(r) for r in rows}
    frame = pd.DataFrame([{"field": r["field"], "order": (i + 1) * 10, "label": r["label"],
                           "section": shown_sections[r["field"]],
                           "quick": r["quick"], "in_list": r["in_list"]}
                          for i, r in enumerate(rows)])
    edited = st.data_editor(
        frame, key=f"studio:layout:{table}", hide_index=True, width="stretch",
        disabled=["field", "label"], column_order=["order", "label", "section", "quick",
                                                   "in_list"],
        column_config={
            "order": st.column_config.NumberColumn(_("Order"), step=1, required=True),
            "label": st.column_config.TextColumn(_("Field")),
            "section": st.column_config.TextColumn(_("Section"), max_chars=60),
            "quick": st.column_config.CheckboxColumn(_("On the create form")),
            "in_list": st.column_config.CheckboxColumn(_("In the list"))})
    save, reset = st.columns([1, 1])
    if save.button(_("Save layout"), type="primary", key=f"studio:layout:save:{table}"):
        ordered = edited.sort_values("order", kind="stable")
        try:
            custom_fields.save_layout(get_db(), user, table, [
                # an untouched section stays the code's, translated for each reader
                {"field": r["field"], "quick": bool(r["quick"]),
                 "section": None if r["section"] == shown_sections[r["field"]] else r["section"],
                 "in_list": bool(r["in_list"])} for r in ordered.to_dict("records")])
        except ValidationError as exc:
            st.error(md_escape(" ".join(f"{k}: {v}" for k, v in exc.errors.items())))
            return
        st.session_state.pop(f"studio:layout:{table}", None)
        st.toast(_("Layout saved"))
        st.rerun()
    if reset.button(_("Back to the standard layout"), key=f"studio:layout:reset:{table}"):
        custom_fields.reset_layout(get_db(), user, table)
        st.session_state.pop(f"studio:layout:{table}", None)
        st.rerun()


def _shown_section(row: dict) -> str:
    section = row["section"]
    return section if row["custom"] else _(section)  # the code's sections are msgids


def deleted_fields(user: User, table: str) -> None:
    rows = custom_fields.list_fields(get_db(), user, table, deleted=True)
    if not rows:
        st.caption(_("No deleted fields."))
        return
    for r in rows:
        name, action = st.columns([3, 1], vertical_alignment="center")
        name.markdown(_("**{label}** ({name}), deleted {when}").format(
            label=md_escape(r["label"]), name=md_escape(r["name"]),
            when=i18n.format_datetime(r["deleted_at"])))
        if action.button(_("Restore"), key=f"studio:restore:{r['id']}",
                         icon=":material/restore_from_trash:"):
            custom_fields.restore_field(get_db(), user, r["id"])
            st.toast(_("Field restored with its values"))
            st.rerun()


def settings_file(user: User) -> None:
    """Export the configuration as one YAML file; import one with the changes shown first."""
    from crm import settings_file as sf

    st.caption(_("Custom fields, form layouts, pipelines and stages and these settings, in"
                 " one YAML file to copy into another installation. Importing shows every"
                 " change first; it adds and changes, and never removes what the file leaves"
                 " out."))
    db = get_db()
    st.download_button(_("Download the settings file (YAML)"),
                       data=lambda: sf.export_yaml(db, user).encode("utf-8"),
                       file_name="crm-settings.yaml", mime="application/x-yaml",
                       on_click="ignore", icon=":material/download:", key="studio:yaml:out")
    # a new uploader after an import: the applied file leaves the page
    upload = st.file_uploader(_("Import a settings file"), type=["yaml", "yml"],
                              key=f"studio:yaml:in:{st.session_state.get('studio:yaml:n', 0)}",
                              max_upload_size=2)
    if upload is None:
        return
    data = upload.getvalue()
    try:
        changes = sf.plan(db, user, data)
    except (sf.SettingsFileError, PermissionDenied) as exc:
        st.error(md_escape(exc), icon=":material/error:")
        return
    real = [c for c in changes if c.action != "keep"]
    if not real:
        st.success(_("This installation already has every setting of the file."))
        return
    frame = pd.DataFrame([{
        _("Part"): _(sf.SECTIONS[c.section]), _("Item"): c.item, _("Action"): _(sf.ACTIONS[c.action]),
        _("Now"): c.before, _("After the import"): c.after} for c in changes])
    st.markdown(i18n.ngettext("**{count} change** will be applied:",
                              "**{count} changes** will be applied:",
                              len(real)).format(count=i18n.number(len(real))))
    from crm.ui.tables import grid

    grid(frame, hide_index=True, width="stretch")
    if st.button(_("Apply these changes"), type="primary", key="studio:yaml:apply"):
        try:
            sf.apply(db, user, data)
        except (sf.SettingsFileError, PermissionDenied) as exc:
            st.error(_("Nothing was changed: {reason}").format(reason=md_escape(exc)),
                     icon=":material/error:")
            return
        st.session_state["studio:yaml:n"] = st.session_state.get("studio:yaml:n", 0) + 1
        st.toast(_("Settings imported"), icon=":material/check:")
        st.rerun()
