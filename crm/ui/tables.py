"""List pages generated from field specs: search, filters, sort and paging, all done in SQL."""
from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from crm import auth, i18n, records, views
from crm.auth import User
from crm.fields import NUMERIC_TYPES, TEXT_TYPES, Field, multichoice_values
from crm.i18n import gettext as _
from crm.ui.session import get_db
from crm.ui.text import md_escape
from crm.ui.views import ViewBar

PAGE_SIZES = (25, 50, 100, 200)


def list_page(entity: records.Entity, user: User, record_page: str,
              choices: dict[str, dict] | None = None, can_create: bool = True,
              view_param: str = "view") -> None:
    """choices: {field: {id: label}} for reference filters (e.g. a deal's stage); view_param:
    the query parameter of the saved view (a page with two lists gives each its own)."""
    db = get_db()
    t = entity.table
    owners = auth.owner_choices(db)
    from crm.ui.record import custom_link_choices

    choices = {**{f.name: owners for f in entity.fields if f.type == "user"},
               **custom_link_choices(entity, user), **(choices or {})}
    bar = ViewBar(entity, user, views.LIST, t, probe=f"{t}:sort",
                  apply=lambda config: _apply_view(entity, config, choices), param=view_param)
    bar.start()
    head, pick, manage, export, new = st.columns([2.6, 1.7, 0.9, 1, 1.3],
                                                 vertical_alignment="bottom")
    head.title(_(entity.plural))
    bar.picker(pick)
    if can_create and new.button(i18n.entity_text(entity, "New {label}"), type="primary",
                                 icon=":material/add:", key=f"{t}:new", width="stretch"):
        st.switch_page(record_page, query_params={"id": "new"})

    search_col, sort_col, dir_col = st.columns([3, 1.4, 0.8], vertical_alignment="bottom")
    search = search_col.text_input(_("Search"), key=f"{t}:search",
                                   placeholder=_search_hint(entity),
                                   label_visibility="collapsed")
    sortable = [f.name for f in entity.all_fields if f.type != "longtext"]
    if st.session_state.get(f"{t}:sort") not in sortable:  # a field deleted meanwhile
        st.session_state[f"{t}:sort"] = entity.default_sort[0]
    sort = sort_col.selectbox(_("Sort by"), sortable, key=f"{t}:sort",
                              format_func=lambda n: _("Sort: {field}").format(
                                  field=entity.spec[n].shown_label),
                              label_visibility="collapsed")
    descending = dir_col.toggle(_("Desc"), key=f"{t}:desc", help=_("Newest or largest first"))
    with st.expander(_("Filters and columns"), icon=":material/filter_list:"):
        filters = _filters(entity, choices, user)
        trash = st.toggle(_("Show trash (deleted records)"), key=f"{t}:trash")
        columns = _columns_picker(entity)
    bar.notes()
    bar.manage(manage, {"columns": [] if columns == default_columns(entity) else columns,
                        "filters": filters, "search": search, "sort": sort,
                        "descending": descending})

    query = records.Query(search=search, filters=filters, sort=sort, descending=descending,
                          trash=trash, language=i18n.language(), columns=columns or None,
                          page_size=st.session_state.get(f"{t}:page_size", PAGE_SIZES[1]))
    signature = repr((search, filters, sort, descending, trash, query.page_size, columns))
    if st.session_state.get(f"{t}:signature") != signature:
        st.session_state[f"{t}:signature"] = signature
        st.session_state[f"{t}:page"] = 1
    query.page = st.session_state.get(f"{t}:page", 1)

    result = records.list_records(db, user, entity, query)
    with export.popover(_("Export"), icon=":material/download:", width="stretch"):
        formats = {"csv": _("CSV"), "xlsx": _("Excel (xlsx)"), "parquet": _("Parquet")}
        fmt = st.radio(_("Format"), list(formats), key=f"{t}:export_format",
                       format_func=formats.get, horizontal=True,
                       help=_("CSV opens anywhere and imports again; Excel opens in"
                              " spreadsheets; Parquet keeps numbers and dates typed for data"
                              " tools"))
        buttons = {"csv": _("Download CSV"), "xlsx": _("Download Excel"),
                   "parquet": _("Download Parquet")}
        named = st.radio(_("Column names"), ["stable", "translated"], key=f"{t}:export_names",
                         format_func=lambda v: _("Stable names (to import again)")
                         if v == "stable" else _("In my language (to read)"))
        extension, mime = records.EXPORT_FORMATS[fmt]
        st.download_button(
            buttons[fmt],
            file_name=f"{t}.{extension}", mime=mime,
            data=lambda: records.export(db, user, entity, query, fmt,
                                        translated_headers=named == "translated"),
            icon=":material/download:", width="stretch", key=f"{t}:export", on_click="ignore",
            help=_("All rows that match the search and filters, with every exported field"))
    shown_from = (result.page - 1) * result.page_size + 1 if result.total else 0
    shown_to = min(result.total, result.page * result.page_size)
    counted = (i18n.entity_ntext(entity, "{count} {label} in the trash",
                                 "{count} {plural} in the trash", result.total) if trash
               else i18n.entity_ntext(entity, "{count} {label}", "{count} {plural}",
                                      result.total))
    st.caption(_("{counted} · showing {first}–{last} · select a row to open it").format(
        counted=counted, first=i18n.number(shown_from), last=i18n.number(shown_to)))
    if not result.rows:
        st.info(_("Nothing matches. Clear the search or filters, or create a new record.")
                if (search or filters or trash) else
                i18n.entity_text(entity, "No {plural} yet. Use “New {label}” to add one."))
    else:
        frame = _frame(entity, result.rows, records.list_fields(entity, query.columns))
        event = st.dataframe(
            frame, hide_index=True, key=f"{t}:table", on_select="rerun", placeholder="—",
            selection_mode="single-row", column_config=_column_config(entity),
            column_order=_column_order(frame),
        )
        picked = event.selection.rows if event else []
        if picked:
            st.switch_page(record_page, query_params={"id": str(frame.iloc[picked[0]]["id"])})
    _pager(t, result)


def default_columns(entity: records.Entity) -> list[str]:
    """The columns a list shows without a view: the specs' in_list fields (id is always there,
    the owner always shown beside them)."""
    return [f.name for f in records.list_fields(entity) if f.name not in ("id", "owner_id")]


def _columns_picker(entity: records.Entity) -> list[str]:
    """The shown columns in the order picked; the standard ones when none is picked."""
    key = f"{entity.table}:columns"
    options = [f.name for f in entity.all_fields if f.name not in ("id", "owner_id")]
    st.session_state[key] = [n for n in st.session_state.get(key) or [] if n in options]
    picked = st.multiselect(_("Columns"), options, key=key,
                            format_func=lambda n: entity.spec[n].shown_label,
                            placeholder=_("Standard columns"),
                            help=_("Shown in the order picked; remove them all for the "
                                   "standard columns"))
    return picked or default_columns(entity)


def _apply_view(entity: records.Entity, config: dict | None, choices: dict[str, dict]) -> None:
    """Writes a saved view's config (None: the standard view) into the list's widgets."""
    t, state = entity.table, st.session_state
    config = config or {}
    state[f"{t}:search"] = config.get("search") or ""
    state[f"{t}:sort"] = config.get("sort") or entity.default_sort[0]
    state[f"{t}:desc"] = bool(config.get("descending", entity.default_sort[1] == "desc"))
    state[f"{t}:columns"] = list(config.get("columns") or default_columns(entity))
    state[f"{t}:trash"] = False
    wanted = config.get("filters") or {}
    for f in entity.all_fields:
        if not f.filter:
            continue
        key, value = f"{t}:filter:{f.name}", wanted.get(f.name)
        if f.type == "choice":
            state[key] = [v for v in value or [] if v in f.choices]
        elif f.type in ("user", "ref"):
            options = choices.get(f.name, {})
            state[key] = [v for v in value or [] if v in options]
        elif f.type == "bool":
            state[key] = "any" if value is None else "yes" if value else "no"
        elif f.type in NUMERIC_TYPES:
            low, high = value or (None, None)
            state[key + ":from"] = "" if low is None else f"{low:g}"
            state[key + ":to"] = "" if high is None else f"{high:g}"
        elif f.type in TEXT_TYPES:
            state[key] = value or ""
        elif f.type in ("date", "datetime"):
            start, end = value or (None, None)
            state[key] = (start, end) if start and end else (start,) if start else ()
            state[key + ":jalali:from"] = i18n.format_date(start) if start else ""
            state[key + ":jalali:to"] = i18n.format_date(end) if end else ""


def _search_hint(entity: records.Entity) -> str:
    names = [f.shown_label for f in entity.fields if f.searchable]
    return _("Search: {fields}").format(fields=", ".join(names))


def _filters(entity: records.Entity, choices: dict[str, dict], user: User) -> dict:
    t = entity.table
    out: dict = {}
    # reps only ever see their own records: no owner filter (other user fields vary), and no
    # gap where it would have been
    specs = [f for f in entity.all_fields
             if f.filter and not (f.name == "owner_id" and user.role == "rep")]
    cols = st.columns(3)
    for i, f in enumerate(specs):
        with cols[i % 3]:
            key = f"{t}:filter:{f.name}"
            if f.type in ("choice", "multichoice"):
                chosen = st.multiselect(f.shown_label, list(f.choices), key=key,
                                        format_func=f.choice_label, placeholder=_("Any"))
            elif f.type in ("user", "ref"):
                options = choices.get(f.name, {})
                chosen = st.multiselect(f.shown_label, list(options), key=key,
                                        format_func=lambda i, o=options: o.get(i, f"#{i}"),
                                        placeholder=_("Any"))
            elif f.type == "bool":
                answers = {"any": _("Any"), "yes": _("Yes"), "no": _("No")}
                pick = st.selectbox(f.shown_label, list(answers), key=key,
                                    format_func=answers.get)
                chosen = None if pick == "any" else pick == "yes"
            elif f.type in ("date", "datetime"):
                chosen = date_range(f, key)
            elif f.type in NUMERIC_TYPES:
                chosen = number_range(f, key)
            elif f.type in TEXT_TYPES:
                chosen = st.text_input(f.shown_label, key=key, placeholder=_("Contains…"),
                                       max_chars=200).strip() or None
            else:
                continue
            if chosen not in (None, [], (), (None, None)):
                out[f.name] = chosen
    return out


def number_range(f: Field, key: str) -> tuple:
    """(from, to), both ends included; (None, None) when both boxes are empty. Typed as in a
    form (1,250.5; Persian digits too): plain boxes, no steppers to crowd a narrow column."""
    low_col, high_col = st.columns(2)
    typed = (low_col.text_input(_("{field} between").format(field=f.shown_label),
                                key=key + ":from", max_chars=40),
             high_col.text_input(_("and"), key=key + ":to", max_chars=40))
    from crm.importer import number  # how the forms read a typed number (1 234,5; ۱٬۲۳۴)

    try:
        return tuple(float(number(text, f)) if text.strip() else None for text in typed)
    except ValueError as exc:
        st.error(md_escape(exc), icon=":material/error:")
        return None, None


def date_range(f: Field, key: str) -> tuple:
    """(from, to) typed by the user in their calendar; (None, None) when empty."""
    label = _("{field} between").format(field=f.shown_label)
    if i18n.language() != "fa":
        # a saved view may have set the state already: then no default beside it
        empty = {} if key in st.session_state else {"value": ()}
        picked = st.date_input(label, key=key, format="YYYY-MM-DD", **empty)
        if not picked:
            return None, None
        return picked[0], picked[1] if len(picked) > 1 else picked[0]
    # Persian: two boxes in the Jalali calendar (the date picker only knows the Gregorian one)
    example = i18n.format_date(date(2026, 1, 31))
    start_col, end_col = st.columns(2)
    typed = (start_col.text_input(label, key=key + ":jalali:from", placeholder=example),
             end_col.text_input(_("and"), key=key + ":jalali:to", placeholder=example))
    try:
        start, end = (i18n.parse_date(text) for text in typed)
    except ValueError as exc:
        st.error(md_escape(exc), icon=":material/error:")
        return None, None
    return start, end


def _frame(entity: records.Entity, rows: list[dict], shown: list[Field] | None = None
           ) -> pd.DataFrame:
    """The page's rows as people read them: names instead of ids, choices, numbers and dates
    in the user's language and calendar."""
    frame = pd.DataFrame(rows)
    for f in entity.all_fields:
        if f.name not in frame or f.name == "id":
            continue
        if f.type == "ref":
            frame[f.name] = frame[f.name + "__label"]
        elif f.choice_colors:  # coloured badges: a list of labels per cell
            frame[f.name] = [[f.choice_label(c) for c in multichoice_values(v)]
                             if isinstance(v, str) else [] for v in frame[f.name]]
        elif f.type == "choice":
            frame[f.name] = [f.choice_label(v) if isinstance(v, str) else None
                             for v in frame[f.name]]
        elif f.type == "multichoice":
            frame[f.name] = [", ".join(f.choice_label(c) for c in multichoice_values(v))
                             if isinstance(v, str) else None for v in frame[f.name]]
        elif f.type in ("money", "number", "integer"):
            # whole amounts without ".00": a list reads faster, and rial amounts stay short
            frame[f.name] = [None if v is None or v != v else
                             i18n.number(v, 0 if float(v).is_integer() else 2)
                             for v in frame[f.name]]
        elif f.type == "date":
            frame[f.name] = [i18n.format_date(v) if v is not None and v == v else None
                             for v in frame[f.name]]
        elif f.type == "datetime":
            frame[f.name] = [i18n.format_datetime(v) if v is not None and v == v else None
                             for v in frame[f.name]]
    shown = records.list_fields(entity) if shown is None else shown
    cols = [f.name for f in shown if f.name in frame]
    return frame[cols + (["owner_name"] if entity.owned else [])]


# Right to left, the grid is mirrored: first column on the right. The grid always opens
# scrolled to the left, so its columns are sized to fit the page rather than their content;
# otherwise the first columns would sit off-screen on the right.
RTL_WIDTHS = {"datetime": 105, "date": 85, "money": 95, "number": 70, "integer": 70,
              "choice": 85, "bool": 50, "email": 130, "user": 90, "ref": 110}


def _column_order(frame: pd.DataFrame) -> list[str]:
    shown = [c for c in frame.columns if c != "id"]
    return shown[::-1] if i18n.is_rtl() else shown


def grid(frame: pd.DataFrame, **options):
    """st.dataframe in the reading direction: right to left, the first column is on the
    right. For small tables (history, users, import reports) that fit the page."""
    columns = list(options.pop("column_order", None) or frame.columns)
    return st.dataframe(frame, column_order=columns[::-1] if i18n.is_rtl() else columns,
                        **options)


def _column_config(entity: records.Entity) -> dict:
    rtl = i18n.is_rtl()

    def width(kind: str):
        return RTL_WIDTHS.get(kind, 100) if rtl else None

    config: dict = {"owner_name": st.column_config.TextColumn(_("Owner"), width=width("user"),
                                                              alignment="right" if rtl else None)}
    for f in entity.all_fields:
        if f.type == "bool":
            config[f.name] = st.column_config.CheckboxColumn(f.shown_label, width=width("bool"))
        elif f.choice_colors:
            colors = dict(f.choice_colors)
            config[f.name] = st.column_config.MultiselectColumn(
                f.shown_label, options=[f.choice_label(c) for c in f.choices],
                color=[colors.get(c, "#9e9e9e") for c in f.choices], width=width("choice"))
        else:
            config[f.name] = st.column_config.TextColumn(
                f.shown_label, width=width(f.type), alignment="right" if rtl else None)
    return config


def _pager(t: str, result: records.Page) -> None:
    prev_col, info_col, next_col, size_col = st.columns([1, 2, 1, 1.3],
                                                        vertical_alignment="center")
    # callbacks run before the next script run, so a click costs one run, not two
    prev_col.button(_("Previous"), key=f"{t}:prev", disabled=result.page <= 1,
                    icon=":material/chevron_left:", width="stretch",
                    on_click=st.session_state.__setitem__, args=(f"{t}:page", result.page - 1))
    info_col.markdown(_("Page {page} of {pages}").format(page=i18n.number(result.page),
                                                         pages=i18n.number(result.pages)),
                      text_alignment="center")
    next_col.button(_("Next"), key=f"{t}:next", disabled=result.page >= result.pages,
                    icon=":material/chevron_right:", icon_position="right", width="stretch",
                    on_click=st.session_state.__setitem__, args=(f"{t}:page", result.page + 1))
    st.session_state.setdefault(f"{t}:page_size", result.page_size)
    size_col.selectbox(_("Rows per page"), PAGE_SIZES, key=f"{t}:page_size",
                       label_visibility="collapsed",
                       format_func=lambda n: _("{count} per page").format(count=i18n.number(n)))
