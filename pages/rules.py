"""Automation rules (admin): every rule with its switch, trigger, last run, runs and failures."""
import streamlit as st

from crm import i18n, rules
from crm.i18n import gettext as _
from crm.ui.guard import require_user
from crm.ui.session import get_db
from crm.ui.text import md_escape

user = require_user("admin")
db = get_db()

st.title(_("Automation rules"))
st.caption(_("A rule watches one kind of record: when its trigger happens and its conditions "
             "hold, its actions run as part of the same save. Date rules run once a day."))
if st.button(_("New rule"), key="new_rule", icon=":material/add:", type="primary"):
    st.switch_page("pages/rule.py", query_params={"id": "new"})

found = rules.list_rules(db, user)
if not found:
    st.info(_("No rules yet."))


def toggle(rule_id: int) -> None:
    rules.set_enabled(db, user, rule_id, st.session_state[f"rule_on:{rule_id}"])


widths = [0.8, 2.4, 3.4, 1.6, 1.2]
if found:
    header = st.columns(widths)
    for col, text in zip(header, [_("Enabled"), _("Rule"), _("Trigger"), _("Last run"),
                                  _("Runs / failures")]):
        col.caption(text)
for r in found:
    rule = rules.get_rule(db, user, r["id"])
    c = st.columns(widths, vertical_alignment="center")
    c[0].toggle(_("Enabled"), value=bool(r["enabled"]), key=f"rule_on:{r['id']}",
                label_visibility="collapsed", on_change=toggle, args=(r["id"],))
    c[1].page_link("pages/rule.py", label=md_escape(r["name"]), query_params={"id": r["id"]},
                   icon=":material/bolt:")
    c[2].write(md_escape(rules.describe_trigger(db, rule)))
    c[3].write(i18n.format_datetime(r["last_run"]) if r["last_run"] else _("never"))
    c[4].write(f"{i18n.number(r['runs'])} / {i18n.number(r['failures'])}")
