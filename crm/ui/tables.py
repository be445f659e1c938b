"""List pages generated from field specs: search, filters, sort and paging, all done in SQL."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from crm import auth, records
from crm.auth import User
from crm.fields import Field
from crm.ui.session import get_db

PAGE_SIZES = (25, 50, 100, 200)


def list_page(entity: records.Entity, user: User, record_page: str,
              choices: dict[str, dict] | None = None, can_create: bool = True) -> None:
    """choices: {field: {id: label}} for reference filters (e.g. a deal's stage)."""
    db = get_db()
    t = entity.table
    head, export, new = st.columns([3, 1, 1.3], vertical_alignment="bottom")
    head.title(entity.plural)
    if can_create and new.button(f"New {entity.label.lower()}", type="primary",
                                 icon=":material/add:", key=f"{t}:new", width="stretch"):
        st.switch_page(record_page, query_params={"id": "new"})

    owners = auth.owner_choices(db)
    choices = {**{f.name: owners for f in entity.fields if f.type == "user"}, **(choices or {})}
    search_col, sort_col, dir_col = st.columns([3, 1.4, 0.8], vertical_alignment="bottom")
    search = search_col.text_input("Search", key=f"{t}:search", placeholder=_search_hint(entity),
                                   label_visibility="collapsed")
    sortable = [f for f in entity.all_fields if f.in_list]
    sort = sort_col.selectbox("Sort by", [f.name for f in sortable], key=f"{t}:sort",
                              index=[f.name for f in sortable].index(entity.default_sort[0]),
                              format_func=lambda n: f"Sort: {entity.spec[n].label}",
                              label_visibility="collapsed")
    descending = dir_col.toggle("Desc", value=entity.default_sort[1] == "desc",
                                key=f"{t}:desc")
    with st.expander("Filters", icon=":material/filter_list:"):
        filters = _filters(entity, choices, user)
        trash = st.toggle("Show trash (deleted records)", key=f"{t}:trash")

    query = records.Query(search=search, filters=filters, sort=sort, descending=descending,
                          trash=trash,
                          page_size=st.session_state.get(f"{t}:page_size", PAGE_SIZES[1]))
    signature = repr((search, filters, sort, descending, trash, query.page_size))
    if st.session_state.get(f"{t}:signature") != signature:
        st.session_state[f"{t}:signature"] = signature
        st.session_state[f"{t}:page"] = 1
    query.page = st.session_state.get(f"{t}:page", 1)

    result = records.list_records(db, user, entity, query)
    export.download_button(
        "Export CSV", data=lambda: records.export_csv(db, user, entity, query),
        file_name=f"{t}.csv", mime="text/csv", icon=":material/download:", width="stretch",
        key=f"{t}:export", on_click="ignore",
        help="All rows that match the search and filters, with every exported field")
    shown_from = (result.page - 1) * result.page_size + 1 if result.total else 0
    shown_to = min(result.total, result.page * result.page_size)
    noun = entity.label.lower() if result.total == 1 else entity.plural.lower()
    st.caption(f"{result.total:,} {noun}{' in the trash' if trash else ''}"
               f" · showing {shown_from:,}–{shown_to:,} · select a row to open it")
    if not result.rows:
        st.info("Nothing matches. Clear the search or filters, or create a new record."
                if (search or filters or trash) else
                f"No {entity.plural.lower()} yet. Use “New {entity.label.lower()}” to add one.")
    else:
        frame = _frame(entity, result.rows)
        event = st.dataframe(
            frame, hide_index=True, key=f"{t}:table", on_select="rerun", placeholder="—",
            selection_mode="single-row", column_config=_column_config(entity),
            column_order=[c for c in frame.columns if c != "id"],
        )
        picked = event.selection.rows if event else []
        if picked:
            st.switch_page(record_page, query_params={"id": str(frame.iloc[picked[0]]["id"])})
    _pager(t, result)


def _search_hint(entity: records.Entity) -> str:
    names = [f.label.lower() for f in entity.fields if f.searchable]
    return "Search " + ", ".join(names)


def _filters(entity: records.Entity, choices: dict[str, dict], user: User) -> dict:
    t = entity.table
    out: dict = {}
    specs = [f for f in entity.all_fields if f.filter]
    cols = st.columns(3)
    for i, f in enumerate(specs):
        with cols[i % 3]:
            key = f"{t}:filter:{f.name}"
            if f.type == "choice":
                chosen = st.multiselect(f.label, list(f.choices), key=key,
                                        format_func=f.choice_label, placeholder="Any")
            elif f.type in ("user", "ref"):
                if f.type == "user" and user.role == "rep":
                    continue  # reps only ever see their own records
                options = choices.get(f.name, {})
                chosen = st.multiselect(f.label, list(options), key=key,
                                        format_func=lambda i, o=options: o.get(i, f"#{i}"),
                                        placeholder="Any")
            elif f.type == "bool":
                pick = st.selectbox(f.label, ["Any", "Yes", "No"], key=key)
                chosen = None if pick == "Any" else pick == "Yes"
            elif f.type in ("date", "datetime"):
                picked = st.date_input(f"{f.label} between", value=(), key=key,
                                       format="YYYY-MM-DD")
                chosen = None
                if picked:
                    start = picked[0]
                    end = picked[1] if len(picked) > 1 else picked[0]
                    chosen = (start, end)
            else:
                continue
            if chosen not in (None, [], ()):
                out[f.name] = chosen
    return out


def _frame(entity: records.Entity, rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for f in entity.all_fields:
        if f.name in frame and f.type == "ref":
            frame[f.name] = frame[f.name + "__label"]
        if f.name in frame and f.type == "choice":
            frame[f.name] = [f.choice_label(v) if isinstance(v, str) else None
                             for v in frame[f.name]]
        if f.name in frame and f.type == "money":
            frame[f.name] = frame[f.name].astype("float64")
    cols = [f.name for f in entity.all_fields if f.in_list and f.name in frame]
    return frame[cols + ["owner_name"]]


def _column_config(entity: records.Entity) -> dict:
    config: dict = {"owner_name": st.column_config.TextColumn("Owner")}
    for f in entity.all_fields:
        config[f.name] = _column(f)
    return config


def _column(f: Field):
    if f.type == "money":
        return st.column_config.NumberColumn(f.label, format="localized")
    if f.type == "datetime":
        return st.column_config.DatetimeColumn(f.label, format="YYYY-MM-DD HH:mm")
    if f.type == "date":
        return st.column_config.DateColumn(f.label, format="YYYY-MM-DD")
    if f.type == "bool":
        return st.column_config.CheckboxColumn(f.label)
    if f.type in ("number", "integer"):
        return st.column_config.NumberColumn(f.label, format="%d")
    return st.column_config.TextColumn(f.label)


def _pager(t: str, result: records.Page) -> None:
    prev_col, info_col, next_col, size_col = st.columns([1, 2, 1, 1.3],
                                                        vertical_alignment="center")
    # callbacks run before the next script run, so a click costs one run, not two
    prev_col.button("Previous", key=f"{t}:prev", disabled=result.page <= 1,
                    icon=":material/chevron_left:", width="stretch",
                    on_click=st.session_state.__setitem__, args=(f"{t}:page", result.page - 1))
    info_col.markdown(f"Page {result.page:,} of {result.pages:,}", text_alignment="center")
    next_col.button("Next", key=f"{t}:next", disabled=result.page >= result.pages,
                    icon=":material/chevron_right:", icon_position="right", width="stretch",
                    on_click=st.session_state.__setitem__, args=(f"{t}:page", result.page + 1))
    st.session_state.setdefault(f"{t}:page_size", result.page_size)
    size_col.selectbox("Rows per page", PAGE_SIZES, key=f"{t}:page_size",
                       label_visibility="collapsed", format_func=lambda n: f"{n} per page")
