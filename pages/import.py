"""Import: upload a CSV/TSV/Excel file, map its columns to fields, dry run, import, undo.

Reading, mapping, checking and writing are crm.importer's; this page shows them."""
import csv
import itertools
import json
from datetime import date, datetime
from decimal import Decimal

import pandas as pd
import streamlit as st

from crm import auth, custom_fields, i18n, importer, pipelines, records
from crm.auth import PermissionDenied
from crm.fields import ValidationError
from crm.i18n import N_, gettext as _, ngettext
from crm.importer import ImportFileError
from crm.ui.guard import require_user
from crm.ui.session import get_db
from crm.ui.tables import grid
from crm.ui.text import md_escape

user = require_user("rep")
db = get_db()

ENTITIES = {e.table: e for e in importer.entities()}
ENCODINGS = {None: N_("Detect automatically"), "utf-8": "UTF-8",
             "utf-8-sig": N_("UTF-8 with BOM"), "utf-16": "UTF-16",
             "cp1256": N_("Windows-1256 (Persian, Arabic)"),
             "cp1252": N_("Windows-1252 (Western European)")}
DELIMITERS = {None: N_("Detect automatically"), ",": N_("Comma (,)"),
              ";": N_("Semicolon (;)"), "\t": N_("Tab"), "|": N_("Vertical bar (|)")}
COUNTS = {"create": N_("To create"), "update": N_("To update"), "skip": N_("To skip"),
          "reject": N_("Rejected")}
MODES = {"create": N_("Create new records"), "upsert": N_("Create or update (by key)"),
         "update": N_("Update existing records only")}
SHOWN_ROWS = 1000  # rows of a dry run's tables drawn on the page; downloads hold them all


def flash(kind: str, text: str) -> None:
    """A message shown after the next rerun."""
    st.session_state.setdefault("imp_flash", []).append((kind, text))


def drop_plan() -> None:
    """Forgets the dry run, freeing what the importer keeps for it (a big file's staging)."""
    stored = st.session_state.pop("imp_plan", None)
    if stored:
        importer.discard(db, stored[1])


def show_flashes() -> None:
    for kind, text in st.session_state.pop("imp_flash", []):
        getattr(st, kind)(text)


def shown_value(spec, value) -> str:
    """A field's value as people read it, for the old -> new table."""
    if value is None or value == "":
        return "—"
    if isinstance(value, tuple):  # a stage the import will create: ("new stage", name)
        return _("{name} (new)").format(name=value[1])
    if spec.type == "user":
        return auth.owner_choices(db).get(value) or _("user #{id}").format(id=value)
    if spec.type == "ref":
        return records.ref_label(db, user, spec.ref, value)
    if spec.type == "choice":
        return spec.choice_label(value)
    if spec.type == "bool":
        return _("yes") if value else _("no")
    if isinstance(value, datetime):
        return i18n.format_datetime(value)
    if isinstance(value, date):
        return i18n.format_date(value)
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return i18n.number(value, 2 if spec.type == "money" else 0)
    return str(value)


def what(table: str) -> str:
    """The kind of records an import brought in, by its table."""
    entity = ENTITIES.get(table)
    return _(entity.plural) if entity else table


def unique(names: list[str]) -> list[str]:
    """Column titles for a table: a repeated name gets its position added."""
    seen, out = {}, []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def problem_text(entity, row) -> str:
    """A rejected row's problems; a message that names its field already is not prefixed."""
    specs = entity.spec
    labels = {f.shown_label for f in entity.all_fields}
    out = []
    for where, message in row.errors.items():
        where = specs[where].shown_label if where in specs else where
        named = any(str(message).startswith(label + ":") for label in labels)
        out.append(str(message) if named or not where else f"{where}: {message}")
    return "; ".join(out)


def read_upload(upload, encoding, delimiter, sheet):
    """The uploaded file as an importer.Source with its number of data rows, kept for the
    session (reading a big file on every click would be slow)."""
    wanted = (upload.file_id, upload.size, encoding, delimiter, sheet)
    cached = st.session_state.get("imp_source")
    if cached and cached[0] == wanted:
        return cached[1], cached[2]
    data = upload.getvalue()
    source = importer.read(data, upload.name, encoding=encoding, delimiter=delimiter,
                           sheet=sheet)
    if getattr(source, "path", None):  # a big CSV the importer keeps unparsed: about so many
        count = i18n.number(max(data.count(b"\n") - 1, 1))
        count = _("about {count}").format(count=count)
    else:
        count = i18n.number(len(source.rows))
    st.session_state["imp_source"] = (wanted, source, count)
    return source, count


def samples(source) -> list[str]:
    """An example value per column from the first rows (a big file is not parsed whole)."""
    if getattr(source, "path", None):
        with open(source.path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, delimiter=source.delimiter)
            next(reader, None)
            head = list(itertools.islice(reader, 50))
    else:
        head = source.rows[:50]
    found = []
    for i in range(len(source.headers)):
        found.append(next((r[i] for r in head if i < len(r) and r[i].strip()), ""))
    return found


def cells(plan, row) -> list[str]:
    """A row as it was in the file, one cell per header."""
    kept = getattr(row, "cells", None)
    found = list(kept) if kept is not None else list(plan.source.rows[row.line - 2])
    width = len(plan.source.headers)
    return (found + [""] * width)[:width]


def apply_mapping(saved: dict, keys: list[tuple[str, str]], pick: str) -> None:
    """Callback: the chosen saved mapping fills the column pickers (before they are drawn)."""
    chosen = saved.get(st.session_state.get(pick), {})
    for header, key in keys:
        if header in chosen:
            st.session_state[key] = chosen[header]


def keep_as_fields(table: str, keys: list[tuple[str, str]], pick: str) -> None:
    """Callback: a custom field for each chosen ignored column, which then maps to it."""
    chosen = st.session_state.get(pick) or []
    try:
        made = custom_fields.add_text_fields(db, user, table, chosen)
    except (ValidationError, PermissionDenied) as exc:
        errors = exc.errors.values() if isinstance(exc, ValidationError) else [str(exc)]
        st.session_state["imp_keep_error"] = " ".join(errors)
        return
    for header, key in keys:
        if header in made:
            st.session_state[key] = made[header]
    st.session_state[pick] = []


def saved_mappings(table: str) -> dict[str, dict]:
    """Mappings to reuse: the saved ones, by name, then those of earlier imports."""
    found = {m["name"]: m["mapping"] for m in importer.mappings(db, user, table)}
    for item in importer.history(db, user, limit=20):
        if item["entity"] == table and item["mapping"]:
            name = _("Import #{id}: {file}").format(id=i18n.number(item["id"]),
                                                    file=item["filename"])
            found.setdefault(name, json.loads(item["mapping"]))
    return found


# --- the page ----------------------------------------------------------------------------------

st.title(_("Import"))
st.caption(_("Bring records in from a spreadsheet or another CRM's export. Nothing is written "
             "until you have seen the dry run and confirmed; an import can be undone."))
show_flashes()


def wizard() -> None:
    # 1. what and which file
    st.subheader(_("1. File"))
    left, right = st.columns([1, 2])
    writable = [t for t, e in ENTITIES.items() if records.may_write(user, e)]
    table = left.selectbox(_("Import into"), writable, key="imp_entity",
                           format_func=lambda t: _(ENTITIES[t].plural))
    entity = ENTITIES[table]
    upload = right.file_uploader(_("CSV, TSV or Excel file"),
                                 type=["csv", "tsv", "txt", "xlsx"], key="imp_file")
    if upload is None:
        st.info(_("Choose a file to import. The first row must name the columns."),
                icon=":material/upload_file:")
        return
    data_sig = f"{upload.file_id}"
    encoding = delimiter = sheet = None
    is_excel = upload.getvalue()[:4] == b"PK\x03\x04"
    options = st.columns(3)
    if is_excel:
        try:
            names = importer.sheets(upload.getvalue())
        except Exception:  # a damaged workbook: read() below says so in words
            names = []
        if len(names) > 1:
            sheet = options[0].selectbox(_("Sheet"), names, key=f"imp_sheet:{data_sig}")
    else:
        encoding = options[0].selectbox(_("Encoding"), list(ENCODINGS), key=f"imp_enc:{data_sig}",
                                        format_func=lambda e: _(ENCODINGS[e]))
        delimiter = options[1].selectbox(_("Delimiter"), list(DELIMITERS),
                                         key=f"imp_sep:{data_sig}",
                                         format_func=lambda d: _(DELIMITERS[d]))
    try:
        source, rows = read_upload(upload, encoding, delimiter, sheet)
    except ImportFileError as exc:
        st.error(md_escape(str(exc)), icon=":material/error:")
        return
    cols = i18n.number(len(source.headers))
    if is_excel:
        st.caption(_("Excel sheet: {sheet} · rows: {rows} · columns: {columns}").format(
            sheet=md_escape(sheet or (names[0] if names else "")), rows=rows, columns=cols))
    else:
        shown_encoding = ENCODINGS.get(source.encoding)
        st.caption(_("Encoding: {encoding} · delimiter: {delimiter} · rows: {rows} · "
                     "columns: {columns}").format(
            encoding=md_escape(_(shown_encoding) if shown_encoding else source.encoding),
            delimiter=md_escape(_(DELIMITERS.get(source.delimiter, source.delimiter or ""))),
            rows=rows, columns=cols))
    if len(set(source.headers)) < len(source.headers):
        st.warning(_("Some column names repeat; rename them in the file so each can be mapped "
                     "on its own."), icon=":material/warning:")

    # 2. column mapping
    st.subheader(_("2. Columns"))
    fields = importer.importable(entity)
    by_name = {f.name: f for f in fields}
    targets = {f.name: f for f in importer.mapping_fields(entity)}  # with the importer's own
    proposed = importer.propose_mapping(entity, source.headers)
    keys = [(h, f"imp_map:{table}:{data_sig}:{i}:{h}") for i, h in enumerate(source.headers)]
    saved = saved_mappings(table)
    if saved:
        pick = f"imp_saved_pick:{table}:{data_sig}"
        st.selectbox(_("Use a saved mapping"), list(saved), index=None, key=pick,
                     placeholder=_("Choose a saved mapping"), on_change=apply_mapping,
                     args=(saved, keys, pick))
    head = st.columns([2, 2, 3])
    for col, text in zip(head, (_("Column in the file"), _("Example"), _("Field"))):
        col.caption(text)
    mapping = {}
    choices = [None, *targets]
    for i, (header, sample) in enumerate(zip(source.headers, samples(source))):
        c = st.columns([2, 2, 3], vertical_alignment="center")
        c[0].markdown(md_escape(header))
        c[1].markdown(md_escape(sample[:60] + ("…" if len(sample) > 60 else "")) or "—")
        key = keys[i][1]
        if key not in st.session_state or st.session_state[key] not in choices:
            st.session_state[key] = proposed.get(header)
        mapping[header] = c[2].selectbox(
            _("Field for {column}").format(column=md_escape(header)), choices, key=key,
            label_visibility="collapsed",
            format_func=lambda n: _("Ignore") if n is None else targets[n].shown_label)
    ignored = [h for h, n in mapping.items() if n is None]
    if ignored and user.role == "admin" and table in custom_fields.ENTITIES:
        with st.popover(_("Keep ignored columns"), icon=":material/add_column_right:"):
            pick = f"imp_keep:{table}:{data_sig}"
            st.multiselect(_("Columns to keep in new custom fields"), ignored, key=pick,
                           help=_("Each becomes a text field of its own, named after the"
                                  " column, shown in forms and exports from now on."))
            st.button(_("Add as custom fields"), key=f"imp_keep_go:{table}",
                      on_click=keep_as_fields, args=(table, keys, pick),
                      disabled=not st.session_state.get(pick))
        if "imp_keep_error" in st.session_state:
            st.error(md_escape(st.session_state.pop("imp_keep_error")), icon=":material/error:")
    used = [n for n in mapping.values() if n]
    if len(used) != len(set(used)):
        st.warning(_("Two columns go to the same field; only the last one is kept."),
                   icon=":material/warning:")
    with st.popover(_("Save mapping"), icon=":material/bookmark_add:"):
        name = st.text_input(_("Name of the mapping"), key="imp_map_name")
        if st.button(_("Save"), key="imp_map_save"):
            try:
                importer.save_mapping(db, user, entity, name, mapping)
            except ValidationError as exc:
                st.warning(md_escape(" ".join(exc.errors.values())))
            except PermissionDenied as exc:
                st.warning(md_escape(str(exc)))
            else:
                st.toast(_("Mapping {name} saved").format(name=md_escape(name.strip())),
                         icon=":material/check:")

    # 3. how
    st.subheader(_("3. How"))
    mode = st.radio(_("Mode"), list(MODES), key="imp_mode", horizontal=True,
                    format_func=lambda m: _(MODES[m]))
    key_choices = ([None] if mode == "create" else []) + [n for n in by_name if n in used]
    default_key = "email" if "email" in key_choices else key_choices[0] if key_choices else None
    key_widget = f"imp_key:{table}:{mode}"
    if key_widget not in st.session_state or st.session_state[key_widget] not in key_choices:
        st.session_state[key_widget] = default_key
    key_field = st.selectbox(
        _("Skip rows that match an existing record by") if mode == "create"
        else _("Find existing records by"), key_choices, key=key_widget,
        format_func=lambda n: _("Do not check for duplicates") if n is None
        else by_name[n].shown_label,
        help=_("Rows with the same value twice in the file are rejected."))
    pipeline_id, create_missing = None, False
    if table == "deals":
        found = pipelines.list_pipelines(db)
        names = {p["id"]: p["name"] for p in found}
        default = pipelines.default_pipeline_id(db)
        pipeline_id = st.selectbox(_("Pipeline"), list(names), format_func=names.get,
                                   index=list(names).index(default) if default in names else 0,
                                   key="imp_pipeline")
        if user.at_least("admin"):
            create_missing = st.checkbox(_("Create stages the file names that the pipeline "
                                           "lacks"), key="imp_create_missing")

    # 4. dry run
    st.subheader(_("4. Dry run"))
    signature = (data_sig, table, encoding, delimiter, sheet, tuple(mapping.items()), mode,
                 key_field, create_missing, pipeline_id)
    if st.button(_("Dry run"), key="imp_dry_run", icon=":material/fact_check:"):
        bar = st.progress(0.1, text=_("Reading the file…"))
        bar.progress(0.4, text=_("Checking {count} rows…").format(count=rows))
        drop_plan()
        try:
            result = importer.plan(db, user, entity, source, mapping, mode=mode, key=key_field,
                                   create_missing=create_missing, pipeline_id=pipeline_id)
        except (ImportFileError, PermissionDenied) as exc:
            st.error(md_escape(str(exc)), icon=":material/error:")
        else:
            st.session_state["imp_plan"] = (signature, result)
        bar.empty()
    stored = st.session_state.get("imp_plan")
    plan = stored[1] if stored and stored[0] == signature else None
    if plan is None:
        if stored:
            drop_plan()
            st.info(_("The file, mapping or mode changed since the dry run; run it again."))
        else:
            st.caption(_("The dry run shows what the import would do; it writes nothing."))
    else:
        show_plan(entity, plan, key_field)

    # 5. import
    st.subheader(_("5. Import"))
    to_write = plan.count("create") + plan.count("update") if plan else 0
    label = _("Import") if plan is None else ngettext(
        "Import {n} row", "Import {n} rows", to_write).format(n=i18n.number(to_write))
    if st.button(label, key="imp_execute", type="primary", icon=":material/upload:",
                 disabled=plan is None or to_write == 0):
        bar = st.progress(0.5, text=_("Writing {count} rows…").format(
            count=i18n.number(to_write)))
        try:
            import_id = importer.execute(db, user, plan)
        except (ImportFileError, PermissionDenied, ValidationError, records.WriteConflict) as exc:
            bar.empty()
            st.error(md_escape(str(exc)), icon=":material/error:")
        else:
            st.session_state.pop("imp_plan", None)
            flash("success", _("Import #{id} done: {created} created, {updated} updated, "
                               "{skipped} skipped, {rejected} rejected.").format(
                id=i18n.number(import_id), created=i18n.number(plan.count("create")),
                updated=i18n.number(plan.count("update")),
                skipped=i18n.number(plan.count("skip")),
                rejected=i18n.number(plan.count("reject"))))
            st.rerun()
    if plan is None:
        st.caption(_("Run the dry run first."))
    elif to_write == 0:
        st.caption(_("The dry run found no rows to write."))


def show_plan(entity, plan, key_field) -> None:
    counts = st.columns(4)
    for col, action in zip(counts, ("create", "update", "skip", "reject")):
        col.metric(_(COUNTS[action]), i18n.number(plan.count(action)))
    for note in plan.notes:
        st.info(md_escape(note), icon=":material/info:")
    if plan.new_stages:
        st.info(_("New stages for the pipeline: {stages}").format(
            stages=md_escape(", ".join(sorted(plan.new_stages)))), icon=":material/add:")
    rejected = [r for r in plan.rows if r.action == "reject"]
    if rejected:
        st.markdown("**" + _("Rejected rows") + "**")
        headers = unique([_("Row"), _("Problem"), *plan.source.headers])
        frame = pd.DataFrame(
            [[i18n.number(r.line), problem_text(entity, r), *cells(plan, r)]
             for r in rejected[:SHOWN_ROWS]], columns=headers)
        grid(frame, hide_index=True)
        if len(rejected) > SHOWN_ROWS:
            st.caption(_("The first {shown} of {count} rejected rows; the download has them "
                         "all.").format(shown=i18n.number(SHOWN_ROWS),
                                        count=i18n.number(len(rejected))))
        st.download_button(_("Download the rejected rows (CSV)"), importer.rejected_csv(plan),
                           file_name=_("rejected-{file}").format(
                               file=plan.source.filename.rsplit(".", 1)[0]) + ".csv",
                           mime="text/csv", key="imp_rejected_csv",
                           icon=":material/download:",
                           help=_("Fix the rows and import the file again."))
    updates = [r for r in plan.rows if r.action == "update"]
    if updates:
        st.markdown("**" + _("Changes to existing records") + "**")
        specs = {**importer.PSEUDO.get(entity.table, {}), **entity.spec}  # and product lines
        lines = []
        for r in updates:
            for name, (old, new) in r.changes.items():
                if len(lines) >= SHOWN_ROWS:
                    break
                lines.append([i18n.number(r.line), str(r.values.get(key_field) or ""),
                              specs[name].shown_label, shown_value(specs[name], old),
                              shown_value(specs[name], new)])
        key_label = specs[key_field].shown_label if key_field in specs else _("Key")
        grid(pd.DataFrame(lines, columns=unique(
            [_("Row"), key_label, _("Field"), _("Before"), _("After")])), hide_index=True)


def history() -> None:
    st.divider()
    st.subheader(_("Import history"))
    items = importer.history(db, user, limit=50)
    if not items:
        st.caption(_("No imports yet."))
        return
    frame = pd.DataFrame([{
        "id": i18n.number(i["id"]), "when": i18n.format_datetime(i["created_at"]),
        "who": i["by_name"] or "—", "what": what(i["entity"]), "file": i["filename"],
        "created": i18n.number(i["created_count"]), "updated": i18n.number(i["updated_count"]),
        "skipped": i18n.number(i["skipped_count"]),
        "rejected": i18n.number(i["rejected_count"]),
        "undone": i18n.format_datetime(i["undone_at"]) if i["undone_at"] else ""}
        for i in items])
    titles = {"id": _("Import"), "when": _("When"), "who": _("Who"), "what": _("What"),
              "file": _("File"), "created": _("Records created"),
              "updated": _("Records updated"), "skipped": _("Rows skipped"),
              "rejected": _("Rows rejected"), "undone": _("Undone")}
    grid(frame, hide_index=True, column_config={
        k: st.column_config.TextColumn(v) for k, v in titles.items()})
    undoable = [i for i in items if i["undone_at"] is None
                and i["created_count"] + i["updated_count"] > 0][:10]
    for item in undoable:
        text, button = st.columns([5, 1], vertical_alignment="center")
        text.markdown(_("Import #{id} · {what} · {file} · {when}").format(
            id=i18n.number(item["id"]), what=md_escape(what(item["entity"])),
            file=md_escape(item["filename"]),
            when=i18n.format_datetime(item["created_at"])))
        with button.popover(_("Undo"), icon=":material/undo:"):
            st.write(_("Undo import #{id}? Its new records go to the trash and updated records "
                       "get their old values back. Records changed since the import are left "
                       "as they are.").format(id=i18n.number(item["id"])))
            if st.button(_("Undo import"), key=f"imp_undo:{item['id']}", type="primary"):
                undo(item["id"])


def undo(import_id: int) -> None:
    try:
        result = importer.undo(db, user, import_id)
    except ValidationError as exc:
        st.error(md_escape(" ".join(exc.errors.values())), icon=":material/error:")
        return
    except (PermissionDenied, records.NotFound) as exc:
        st.error(md_escape(str(exc)), icon=":material/error:")
        return
    flash("success", ngettext("Import #{id} undone: {n} record restored.",
                              "Import #{id} undone: {n} records restored.",
                              result["undone"]).format(id=i18n.number(import_id),
                                                       n=i18n.number(result["undone"])))
    if result["refused"]:
        flash("warning", ngettext(
            "{n} record was left as it is because it changed since the import: rows {rows}.",
            "{n} records were left as they are because they changed since the import: rows "
            "{rows}.", len(result["refused"])).format(
            n=i18n.number(len(result["refused"])),
            rows=", ".join(i18n.number(r["line"]) for r in result["refused"][:50])))
    st.rerun()


wizard()
history()
