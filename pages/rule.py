"""One automation rule (admin): written in a form (trigger, conditions, actions) and its run log,
newest first. ?id=new makes a rule."""
import pandas as pd
import streamlit as st

from crm import activities, auth, i18n, rules
from crm.fields import ValidationError
from crm.i18n import gettext as _
from crm.records import NotFound
from crm.ui.guard import require_user
from crm.ui.session import get_db
from crm.ui.tables import grid
from crm.ui.text import md_escape

user = require_user("admin")
db = get_db()
PAGE_SIZE = 20
VALUE_HELP = _("A user, stage or other record by its name or #id; yes/no fields: yes or no; "
               "dates like 2026-01-31.")

raw_id = str(st.query_params.get("id", "new"))
rule = None
if raw_id != "new":
    try:
        rule = rules.get_rule(db, user, int(raw_id))
    except (ValueError, NotFound):
        st.error(_("Rule #{id} does not exist").format(id=md_escape(raw_id)))
        st.page_link("pages/rules.py", label=_("Automation rules"), icon=":material/arrow_back:")
        st.stop()
K = f"rule:{rule.id if rule else 'new'}:"  # every widget key of this rule's form
entities = rules.entities()
users = auth.owner_choices(db)


def key(name: str) -> str:
    return K + name


def action_defaults(i: int, kind: str) -> None:
    """A new action's starting values (set before its widgets exist)."""
    if kind == "create_task":
        st.session_state.update({key(f"a{i}_assignee"): "owner", key(f"a{i}_due"): 1,
                                 key(f"a{i}_priority"): "normal"})
    elif kind == "assign_owner":
        st.session_state.update({key(f"a{i}_mode"): "fixed", key(f"a{i}_users"): []})


def start(current: rules.Rule | None) -> None:
    """Fills the form's session state from the stored rule, once per version (a refused save
    keeps what was typed: nothing here runs again until the rule is saved)."""
    stamp = current.version if current else 0
    if st.session_state.get(key("loaded")) == stamp:
        return
    st.session_state[key("loaded")] = stamp
    if current is None:
        st.session_state.update({key("entity"): "leads", key("trigger"): "created",
                                 key("enabled"): True, key("match"): "all",
                                 key("n_conditions"): 1, key("actions"): ["create_task"]})
        action_defaults(0, "create_task")
        return
    entity = entities.get(current.entity)
    spec = entity.spec if entity else {}
    c = current.config
    state = {"entity": current.entity, "trigger": current.trigger, "name": current.name,
             "enabled": current.enabled, "match": current.match,
             "n_conditions": max(1, len(current.conditions)),
             "actions": [a["kind"] for a in current.actions],
             "t_field": c.get("field"), "t_days": int(c.get("days") or 0),
             "t_when": c.get("when", "before"), "t_score": c.get("score", "csat"),
             "t_threshold": int(c.get("threshold") or 3),
             "t_to": rules.form_text(spec.get(c.get("field")), c.get("to"))}
    for i, cond in enumerate(current.conditions):
        state.update({f"c{i}_field": cond["field"], f"c{i}_op": cond["op"],
                      f"c{i}_value": rules.form_text(spec.get(cond["field"]), cond.get("value"))})
    for i, a in enumerate(current.actions):
        state[f"a{i}_remove"] = False  # a removed action's box would stick to the next one
        if a["kind"] == "create_task":
            state.update({f"a{i}_title": a["title"], f"a{i}_assignee": a["assignee"],
                          f"a{i}_user": a.get("user_id"), f"a{i}_due": a["due_days"],
                          f"a{i}_priority": a.get("priority", "normal")})
        elif a["kind"] == "set_field":
            state.update({f"a{i}_field": a["field"],
                          f"a{i}_value": rules.form_text(spec.get(a["field"]), a["value"])})
        elif a["kind"] == "assign_owner":
            state.update({f"a{i}_mode": a["mode"], f"a{i}_users": a["user_ids"]})
        elif a["kind"] == "add_note":
            state.update({f"a{i}_subject": a["subject"], f"a{i}_notes": a.get("notes", "")})
    st.session_state.update({key(k): v for k, v in state.items()})


start(rule)
errors: dict = st.session_state.get(key("errors"), {})


def problem(name: str) -> None:
    if name in errors:
        st.error(md_escape(errors[name]), icon=":material/error:")


def field_select(label: str, name: str, fields: list, **kwargs):
    names = [f.name for f in fields]
    labels = {f.name: f.shown_label for f in fields}
    if st.session_state.get(key(name)) not in names + [None]:
        st.session_state[key(name)] = None  # a field of another entity, or one removed
    return st.selectbox(label, names, format_func=lambda n: labels.get(n, n), key=key(name),
                        index=None, **kwargs)


def value_input(label: str, name: str, field_name: str | None) -> None:
    """A value for a field: picked from its choices, users or stages, or typed."""
    spec = entity.spec.get(field_name) if field_name else None
    options = rules.picks(db, spec) if spec else None
    if options is None:
        st.text_input(label, key=key(name), help=VALUE_HELP)
        return
    if st.session_state.get(key(name)) not in ("", *options):
        st.session_state[key(name)] = ""
    st.selectbox(label, ["", *options], key=key(name),
                 format_func=lambda v: options.get(v, "—"))


st.page_link("pages/rules.py", label=_("Automation rules"), icon=":material/arrow_back:")
st.title(md_escape(rule.name) if rule else _("New rule"))
if rule:
    st.caption(md_escape(rules.describe_trigger(db, rule)))
notice = st.session_state.pop(key("notice"), None)
if notice:
    st.success(notice)

# What the rule watches and when it runs: outside the form, so the form below shows the
# fields of the chosen kind of record and the settings of the chosen trigger.
left, right = st.columns(2)
table = left.selectbox(_("Records the rule watches"), list(entities),
                       format_func=lambda t: _(entities[t].plural), key=key("entity"))
trigger = right.selectbox(_("When it runs"), rules.TRIGGERS,
                          format_func=lambda t: _(rules.TRIGGER_LABELS[t]), key=key("trigger"))
problem("entity")
problem("trigger")
entity = entities[table]
trigger_field = None
if trigger in ("changed", "date"):
    with st.columns(2)[0]:
        trigger_field = field_select(
            _("Field that changes") if trigger == "changed" else _("Date field"), "t_field",
            rules.trigger_fields(entity) if trigger == "changed" else rules.date_fields(entity))
    problem("trigger.field")

add_left, add_right = st.columns([3, 1], vertical_alignment="bottom")
new_kind = add_left.selectbox(_("Action to add"), rules.ACTIONS,
                              format_func=lambda k: _(rules.ACTION_LABELS[k]), key=key("new_kind"))
if add_right.button(_("Add action"), key=key("add_action"), icon=":material/add:"):
    action_defaults(len(st.session_state[key("actions")]), new_kind)
    st.session_state[key("actions")] = [*st.session_state[key("actions")], new_kind]
if st.button(_("Add a condition"), key=key("add_condition"), icon=":material/filter_alt:"):
    st.session_state[key("n_conditions")] += 1

with st.form(K + "form"):
    st.text_input(_("Name"), key=key("name"), max_chars=200)
    problem("name")
    st.checkbox(_("Enabled"), key=key("enabled"))

    st.subheader(_("Trigger"))
    if trigger == "changed":
        value_input(_("Changes to (empty: any change)"), "t_to", trigger_field)
        problem("trigger.to")
    elif trigger == "date":
        c1, c2 = st.columns(2)
        c1.number_input(_("Days"), min_value=0, max_value=3650, step=1, key=key("t_days"))
        c2.selectbox(_("Before or after"), ("before", "after"), key=key("t_when"),
                     format_func=lambda w: _("before") if w == "before" else _("after"))
        for name in ("trigger.days", "trigger.when"):
            problem(name)
        st.caption(_("Checked once a day, at the first page load or by `python -m crm "
                     "run-rules`; fires once per record and date."))
    elif trigger == "survey_below":
        c1, c2 = st.columns(2)
        c1.selectbox(_("Score"), rules.SURVEY_SCORES, key=key("t_score"),
                     format_func=str.upper)
        c2.number_input(_("Below"), min_value=1, max_value=10, step=1, key=key("t_threshold"))
        for name in ("trigger.score", "trigger.threshold"):
            problem(name)
    else:
        st.caption(_("Runs when a record is created: in a form, by an import or by another "
                     "rule."))

    st.subheader(_("Conditions"))
    st.radio(_("Run when"), ("all", "any"), key=key("match"), horizontal=True,
             format_func=lambda m: _("all conditions hold") if m == "all"
             else _("any condition holds"))
    fields = rules.condition_fields(entity)
    for i in range(st.session_state[key("n_conditions")]):
        c1, c2, c3 = st.columns([2, 1.5, 2])
        with c1:
            field_select(_("Field"), f"c{i}_field", fields)
        c2.selectbox(_("Operator"), rules.OPS, key=key(f"c{i}_op"),
                     format_func=lambda o: _(rules.OP_LABELS[o]))
        c3.text_input(_("Value"), key=key(f"c{i}_value"),
                      help=VALUE_HELP + " " + _("Is one of: values separated by commas."))
        problem(f"condition.{i}")
    st.caption(_("Leave the field empty to skip a row; no conditions: the rule always runs."))

    st.subheader(_("Actions"))
    problem("actions")
    placeholders = _("Placeholders such as {example} are filled from the record's fields.") \
        .format(example="{" + entity.editable[0].name + "}")
    for i, kind in enumerate(st.session_state[key("actions")]):
        st.markdown(f"**{i + 1}. {_(rules.ACTION_LABELS[kind])}**")
        if kind == "create_task":
            st.text_input(_("Task title"), key=key(f"a{i}_title"), help=placeholders)
            c1, c2, c3, c4 = st.columns(4)
            c1.selectbox(_("Assignee"), ("owner", "user"), key=key(f"a{i}_assignee"),
                         format_func=lambda a: _("The record's owner") if a == "owner"
                         else _("This user:"))
            c2.selectbox(_("User"), list(users), format_func=users.get, index=None,
                         key=key(f"a{i}_user"))
            c3.number_input(_("Due in days"), min_value=0, max_value=3650, step=1,
                            key=key(f"a{i}_due"))
            c4.selectbox(_("Priority"), activities.PRIORITIES, key=key(f"a{i}_priority"),
                         format_func=activities.TASKS.spec["priority"].choice_label)
        elif kind == "set_field":
            c1, c2 = st.columns(2)
            with c1:
                field_select(_("Field"), f"a{i}_field", rules.settable_fields(entity))
            c2.text_input(_("New value (empty clears it)"), key=key(f"a{i}_value"),
                          help=VALUE_HELP)
        elif kind == "assign_owner":
            c1, c2 = st.columns([1, 2])
            c1.radio(_("Owner"), ("fixed", "round_robin"), key=key(f"a{i}_mode"),
                     format_func=lambda m: _("This user") if m == "fixed"
                     else _("Round-robin among these users"))
            c2.multiselect(_("Users"), list(users), format_func=users.get,
                           key=key(f"a{i}_users"))
        elif kind == "add_note":
            st.text_input(_("Note subject"), key=key(f"a{i}_subject"), help=placeholders)
            st.text_area(_("Note text"), key=key(f"a{i}_notes"), help=placeholders)
        st.checkbox(_("Remove this action"), key=key(f"a{i}_remove"))
        problem(f"action.{i}")
    saved = st.form_submit_button(_("Save rule"), type="primary")


def typed() -> dict:
    """The rule as typed in the form, for rules.save_rule."""
    s = st.session_state
    config = {}
    if trigger in ("changed", "date"):
        config["field"] = s.get(key("t_field"))
    if trigger == "changed":
        config["to"] = s.get(key("t_to"))
    if trigger == "date":
        config.update(days=s.get(key("t_days")), when=s.get(key("t_when")))
    if trigger == "survey_below":
        config.update(score=s.get(key("t_score")), threshold=s.get(key("t_threshold")))
    conditions = [{"field": s.get(key(f"c{i}_field")), "op": s.get(key(f"c{i}_op")),
                   "value": s.get(key(f"c{i}_value"))}
                  for i in range(s[key("n_conditions")])]
    actions = []
    for i, kind in enumerate(s[key("actions")]):
        if s.get(key(f"a{i}_remove")):
            continue
        actions.append({"kind": kind, "title": s.get(key(f"a{i}_title")),
                        "assignee": s.get(key(f"a{i}_assignee")),
                        "user_id": s.get(key(f"a{i}_user")), "due_days": s.get(key(f"a{i}_due")),
                        "priority": s.get(key(f"a{i}_priority")),
                        "field": s.get(key(f"a{i}_field")), "value": s.get(key(f"a{i}_value")),
                        "mode": s.get(key(f"a{i}_mode")), "user_ids": s.get(key(f"a{i}_users")),
                        "subject": s.get(key(f"a{i}_subject")),
                        "notes": s.get(key(f"a{i}_notes"))})
    return {"name": s.get(key("name")), "entity": table, "trigger": trigger,
            "trigger_config": config, "match": s.get(key("match")), "conditions": conditions,
            "actions": actions, "enabled": s.get(key("enabled"))}


if saved:
    values = typed()
    try:
        rule_id = rules.save_rule(db, user, values, rule.id if rule else None,
                                  rule.version if rule else None)
    except ValidationError as exc:
        st.session_state[key("errors")] = exc.errors
        st.rerun()
    st.session_state.pop(key("errors"), None)
    kept = [a["kind"] for a in values["actions"]]
    if rule is not None:  # removed actions leave the form
        st.session_state[key("actions")] = kept
        st.session_state[key("loaded")] = None
    target = f"rule:{rule_id}:"
    st.session_state[target + "notice"] = _("Rule saved")
    st.switch_page("pages/rule.py", query_params={"id": str(rule_id)}) if rule is None \
        else st.rerun()

if errors:
    st.error(_("The rule was not saved; see the messages above."))

if rule is not None:
    with st.popover(_("Delete rule"), icon=":material/delete:"):
        st.write(_("The rule stops running; its run log is kept."))
        if st.button(_("Delete"), key=key("delete"), type="primary"):
            rules.delete_rule(db, user, rule.id)
            st.switch_page("pages/rules.py")

    st.subheader(_("Run log"))
    page_no = st.session_state.get(key("log_page"), 1)
    log_page = rules.runs(db, user, rule.id, page_no, PAGE_SIZE)
    if not log_page.rows:
        st.caption(_("The rule has not run yet."))
    else:
        frame = pd.DataFrame([{
            _("When"): i18n.format_datetime(r["ran_at"]),
            _("Record"): rules.record_label(db, r["entity"], r["record_id"]),
            _("Result"): _(rules.STATUS_LABELS.get(r["status"], r["status"])),
            _("Details"): r["message"] or ""} for r in log_page.rows])
        grid(frame, hide_index=True, width="stretch")
        prev_col, info_col, next_col = st.columns([1, 2, 1], vertical_alignment="center")
        if prev_col.button(_("Newer"), key=key("log_prev"), disabled=log_page.page <= 1,
                           icon=":material/chevron_left:"):
            st.session_state[key("log_page")] = log_page.page - 1
            st.rerun()
        info_col.caption(_("Page {page} of {pages} ({total} runs)").format(
            page=i18n.number(log_page.page), pages=i18n.number(log_page.pages),
            total=i18n.number(log_page.total)))
        if next_col.button(_("Older"), key=key("log_next"),
                           disabled=log_page.page >= log_page.pages,
                           icon=":material/chevron_right:"):
            st.session_state[key("log_page")] = log_page.page + 1
            st.rerun()
