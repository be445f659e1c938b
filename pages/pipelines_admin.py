import streamlit as st

from crm import i18n, pipelines
from crm.fields import ValidationError, spec_map
from crm.i18n import gettext as _, ngettext
from crm.ui.forms import submit_form
from crm.ui.guard import require_user
from crm.ui.session import get_db
from crm.ui.text import md_escape

user = require_user("admin")
db = get_db()
STAGE = spec_map(pipelines.STAGE_FIELDS)

st.title(_("Pipelines & stages"))
found = pipelines.list_pipelines(db)
names = {p["id"]: _("{name} (default)").format(name=p["name"]) if p["is_default"] else p["name"]
         for p in found}
# A pipeline just created becomes the chosen one; the choice is set before its widget exists
# (Streamlit refuses to change a widget's value after it was drawn in the same run).
if "admin_pipeline_created" in st.session_state:
    st.session_state["admin_pipeline"] = st.session_state.pop("admin_pipeline_created")
left, right = st.columns([2, 1], vertical_alignment="bottom")
pipeline_id = left.selectbox(_("Pipeline"), list(names), format_func=names.get,
                             key="admin_pipeline")
with right.popover(_("New pipeline"), icon=":material/add:"):
    new_name = st.text_input(_("Name"), key="new_pipeline_name")
    if st.button(_("Create with the standard stages"), key="create_pipeline", type="primary"):
        try:
            created = pipelines.create_pipeline(db, user, new_name)
        except ValidationError as exc:
            st.error(md_escape(" ".join(exc.errors.values())))
        else:
            st.session_state["admin_pipeline_created"] = created
            st.session_state.pop("new_pipeline_name", None)
            st.rerun()

with st.expander(_("Rename this pipeline")):
    renamed = st.text_input(_("New name"), key=f"rename:{pipeline_id}")
    if st.button(_("Rename"), key="rename_pipeline"):
        try:
            pipelines.rename_pipeline(db, user, pipeline_id, renamed)
        except ValidationError as exc:
            st.error(md_escape(" ".join(exc.errors.values())))
        else:
            st.rerun()

stages = pipelines.stages_of(db, pipeline_id)
st.subheader(_("Stages, in board order"))
header = st.columns([2.2, 1.1, 1.1, 1.2, 1.5, 0.5, 0.5, 1])
for col, text in zip(header, [_("Name"), _("Probability %"), _("Rotting days"), _("Kind"),
                              _("Forecast category"), "", "", ""]):
    col.caption(text)
edits: dict[int, dict] = {}
for i, s in enumerate(stages):
    c = st.columns([2.2, 1.1, 1.1, 1.2, 1.5, 0.5, 0.5, 1], vertical_alignment="center")
    sid = s["id"]
    edits[sid] = {
        "name": c[0].text_input(_("Name"), s["name"], key=f"st_name:{sid}",
                                label_visibility="collapsed"),
        "probability": c[1].number_input(_("Probability"), 0, 100, s["probability"],
                                         key=f"st_prob:{sid}", label_visibility="collapsed"),
        "rotting_days": c[2].number_input(_("Rotting days"), 1, 3650, s["rotting_days"],
                                          key=f"st_rot:{sid}", label_visibility="collapsed"),
        "kind": c[3].selectbox(_("Kind"), pipelines.KINDS, pipelines.KINDS.index(s["kind"]),
                               format_func=STAGE["kind"].choice_label, key=f"st_kind:{sid}",
                               label_visibility="collapsed"),
        "forecast_category": c[4].selectbox(
            _("Forecast category"), pipelines.FORECAST_CATEGORIES,
            pipelines.FORECAST_CATEGORIES.index(s["forecast_category"]),
            format_func=STAGE["forecast_category"].choice_label,
            key=f"st_cat:{sid}", label_visibility="collapsed"),
    }
    if c[5].button("", key=f"st_up:{sid}", icon=":material/arrow_upward:", disabled=i == 0,
                   help=_("Move left on the board")):
        pipelines.move_stage(db, user, sid, -1)
        st.rerun()
    if c[6].button("", key=f"st_down:{sid}", icon=":material/arrow_downward:",
                   disabled=i == len(stages) - 1, help=_("Move right on the board")):
        pipelines.move_stage(db, user, sid, +1)
        st.rerun()
    with c[7].popover(_("Delete"), icon=":material/delete:"):
        live = pipelines.deals_in_stage(db, sid)
        trashed = pipelines.deals_in_stage(db, sid, trashed=True)
        held = live + trashed
        others = {o["id"]: o["name"] for o in stages if o["id"] != sid}
        target = None
        if held:
            if trashed:
                held_text = ngettext(
                    "{stage} holds {count} deal and {trashed} in the trash. Move them to:",
                    "{stage} holds {count} deals and {trashed} in the trash. Move them to:",
                    live)
            else:
                held_text = ngettext("{stage} holds {count} deal. Move it to:",
                                     "{stage} holds {count} deals. Move them to:", live)
            st.write(held_text.format(stage=md_escape(s["name"]), count=i18n.number(live),
                                      trashed=i18n.number(trashed)))
            target = st.selectbox(_("Move deals to"), list(others), format_func=others.get,
                                  key=f"st_target:{sid}", index=None)
        else:
            st.write(_("Delete the stage {stage}?").format(stage=md_escape(s["name"])))
        if st.button(_("Delete stage"), key=f"st_delete:{sid}", type="primary",
                     disabled=bool(held) and target is None):
            try:
                pipelines.delete_stage(db, user, sid, move_deals_to=target)
            except ValidationError as exc:
                st.error(md_escape(" ".join(exc.errors.values())))
            else:
                st.rerun()

if st.button(_("Save stage changes"), type="primary", key="save_stages"):
    problems = []
    for s in stages:
        changed = {k: v for k, v in edits[s["id"]].items() if v != s[k]}
        if changed:
            try:
                pipelines.update_stage(db, user, s["id"], changed)
            except ValidationError as exc:
                problems.append(_("{stage}: {problems}").format(
                    stage=s["name"], problems=" ".join(exc.errors.values())))
    if problems:
        for p in problems:
            st.error(md_escape(p))
    else:
        st.toast(_("Stages saved"))
        st.rerun()

st.subheader(_("Add a stage"))
st.caption(_("An open stage goes before the closing (won and lost) stages."))
added = submit_form(f"stage:new:{pipeline_id}", pipelines.STAGE_FIELDS,
                    {"kind": "open", "forecast_category": "pipeline", "probability": 50},
                    {}, lambda values: pipelines.add_stage(db, user, pipeline_id, values),
                    submit_label=_("Add stage"))
if added is not None:
    st.toast(_("Stage added"))
    st.rerun()
