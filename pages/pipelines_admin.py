import streamlit as st

from crm import pipelines
from crm.fields import ValidationError
from crm.ui.forms import submit_form
from crm.ui.guard import require_user
from crm.ui.session import get_db
from crm.ui.text import md_escape

user = require_user("admin")
db = get_db()
label = {k: k.replace("_", " ").capitalize() for k in
         (*pipelines.KINDS, *pipelines.FORECAST_CATEGORIES)}

st.title("Pipelines & stages")
found = pipelines.list_pipelines(db)
names = {p["id"]: p["name"] + (" (default)" if p["is_default"] else "") for p in found}
# A pipeline just created becomes the chosen one; the choice is set before its widget exists
# (Streamlit refuses to change a widget's value after it was drawn in the same run).
if "admin_pipeline_created" in st.session_state:
    st.session_state["admin_pipeline"] = st.session_state.pop("admin_pipeline_created")
left, right = st.columns([2, 1], vertical_alignment="bottom")
pipeline_id = left.selectbox("Pipeline", list(names), format_func=names.get,
                             key="admin_pipeline")
with right.popover("New pipeline", icon=":material/add:"):
    new_name = st.text_input("Name", key="new_pipeline_name")
    if st.button("Create with the standard stages", key="create_pipeline", type="primary"):
        try:
            created = pipelines.create_pipeline(db, user, new_name)
        except ValidationError as exc:
            st.error(md_escape(" ".join(exc.errors.values())))
        else:
            st.session_state["admin_pipeline_created"] = created
            st.session_state.pop("new_pipeline_name", None)
            st.rerun()

with st.expander("Rename this pipeline"):
    renamed = st.text_input("New name", key=f"rename:{pipeline_id}")
    if st.button("Rename", key="rename_pipeline"):
        try:
            pipelines.rename_pipeline(db, user, pipeline_id, renamed)
        except ValidationError as exc:
            st.error(md_escape(" ".join(exc.errors.values())))
        else:
            st.rerun()

stages = pipelines.stages_of(db, pipeline_id)
st.subheader("Stages, in board order")
header = st.columns([2.2, 1.1, 1.1, 1.2, 1.5, 0.5, 0.5, 1])
for col, text in zip(header, ["Name", "Probability %", "Rotting days", "Kind",
                              "Forecast category", "", "", ""]):
    col.caption(text)
edits: dict[int, dict] = {}
for i, s in enumerate(stages):
    c = st.columns([2.2, 1.1, 1.1, 1.2, 1.5, 0.5, 0.5, 1], vertical_alignment="center")
    sid = s["id"]
    edits[sid] = {
        "name": c[0].text_input("Name", s["name"], key=f"st_name:{sid}",
                                label_visibility="collapsed"),
        "probability": c[1].number_input("Probability", 0, 100, s["probability"],
                                         key=f"st_prob:{sid}", label_visibility="collapsed"),
        "rotting_days": c[2].number_input("Rotting", 1, 3650, s["rotting_days"],
                                          key=f"st_rot:{sid}", label_visibility="collapsed"),
        "kind": c[3].selectbox("Kind", pipelines.KINDS, pipelines.KINDS.index(s["kind"]),
                               format_func=label.get, key=f"st_kind:{sid}",
                               label_visibility="collapsed"),
        "forecast_category": c[4].selectbox(
            "Forecast", pipelines.FORECAST_CATEGORIES,
            pipelines.FORECAST_CATEGORIES.index(s["forecast_category"]), format_func=label.get,
            key=f"st_cat:{sid}", label_visibility="collapsed"),
    }
    if c[5].button("", key=f"st_up:{sid}", icon=":material/arrow_upward:", disabled=i == 0,
                   help="Move left on the board"):
        pipelines.move_stage(db, user, sid, -1)
        st.rerun()
    if c[6].button("", key=f"st_down:{sid}", icon=":material/arrow_downward:",
                   disabled=i == len(stages) - 1, help="Move right on the board"):
        pipelines.move_stage(db, user, sid, +1)
        st.rerun()
    with c[7].popover("Delete", icon=":material/delete:"):
        live = pipelines.deals_in_stage(db, sid)
        trashed = pipelines.deals_in_stage(db, sid, trashed=True)
        held = live + trashed
        others = {o["id"]: o["name"] for o in stages if o["id"] != sid}
        target = None
        if held:
            st.write(f"{md_escape(s['name'])} holds {live:,} deal(s)"
                     + (f" and {trashed:,} in the trash" if trashed else "")
                     + ". Move them to:")
            target = st.selectbox("Move deals to", list(others), format_func=others.get,
                                  key=f"st_target:{sid}", index=None)
        else:
            st.write(f"Delete the stage {md_escape(s['name'])}?")
        if st.button("Delete stage", key=f"st_delete:{sid}", type="primary",
                     disabled=bool(held) and target is None):
            try:
                pipelines.delete_stage(db, user, sid, move_deals_to=target)
            except ValidationError as exc:
                st.error(md_escape(" ".join(exc.errors.values())))
            else:
                st.rerun()

if st.button("Save stage changes", type="primary", key="save_stages"):
    problems = []
    for s in stages:
        changed = {k: v for k, v in edits[s["id"]].items() if v != s[k]}
        if changed:
            try:
                pipelines.update_stage(db, user, s["id"], changed)
            except ValidationError as exc:
                problems.append(f"{s['name']}: " + " ".join(exc.errors.values()))
    if problems:
        for p in problems:
            st.error(md_escape(p))
    else:
        st.toast("Stages saved")
        st.rerun()

st.subheader("Add a stage")
st.caption("An open stage goes before the closing (won and lost) stages.")
added = submit_form(f"stage:new:{pipeline_id}", pipelines.STAGE_FIELDS,
                    {"kind": "open", "forecast_category": "pipeline", "probability": 50},
                    {}, lambda values: pipelines.add_stage(db, user, pipeline_id, values),
                    submit_label="Add stage")
if added is not None:
    st.toast("Stage added")
    st.rerun()
