import plotly.graph_objects as go
import streamlit as st

from crm import activities, i18n
from crm.dashboard import home_numbers
from crm.i18n import N_, gettext as _
from crm.leads import LEADS
from crm.ui.followup import log_toggle, task_list
from crm.ui.charts import localize
from crm.ui.guard import require_user
from crm.ui.session import get_db
from crm.ui.text import md_escape

user = require_user("viewer")

st.title(_("Hello, {name}").format(name=md_escape((user.name.split() or [user.username])[0])))
mine = user.role == "rep"
st.caption(_("Your numbers") if mine else _("The whole team's numbers"))

notice = st.session_state.get("demo_password_notice")
if notice:
    st.success(_("Demo data loaded. The demo team (maria, reza, sam, lena) signs in with this "
                 "password. Note it: it is not shown again once dismissed."))
    st.code(notice, language=None)
    if st.button(_("Dismiss"), key="dismiss_demo_password"):
        del st.session_state["demo_password_notice"]
        st.rerun()

numbers = home_numbers(get_db(), user)
a, b, c, d = st.columns(4)
a.metric(_("Open leads"), i18n.number(numbers["open_leads"]),
         help=_("Leads that are new, contacted or qualified"))
b.metric(_("New leads this month"), i18n.number(numbers["new_leads_this_month"]))
c.metric(_("Customer base"), i18n.number(numbers["customer_base"]),
         help=_("Customers who ever bought: at least one won deal, or a first purchase from "
                "before the CRM"))
d.metric(_("Installed base"), i18n.number(numbers["installed_base"]),
         help=_("{rule}. An admin chooses this rule under Settings › General.").format(
             rule=numbers["installed_base_rule"]))

left, right = st.columns([3, 2])
with left:
    st.subheader(_("Leads by status"))
    status_field = LEADS.spec["status"]
    statuses = [status_field.choice_label(s) for s, _n in numbers["leads_by_status"]]
    counts = [n for _s, n in numbers["leads_by_status"]]
    if sum(counts):
        fig = go.Figure(go.Bar(x=statuses, y=counts, text=[i18n.number(n) for n in counts],
                               textposition="auto", marker_color="#4C78A8"))
        fig.update_layout(height=320, margin=dict(l=10, r=10, t=10, b=10),
                          yaxis_title=_("Leads"))
        st.plotly_chart(localize(fig), config={"displayModeBar": False})
    else:
        st.info(_("No leads yet."))
with right:
    st.subheader(_("My open tasks"))
    groups = activities.my_tasks(get_db(), user, limit=8)
    counts = activities.my_task_counts(get_db(), user)
    if not any(groups.values()):
        st.caption(_("No open tasks. Add them from a lead, customer or deal."))
    else:
        log = log_toggle("home")
    for name, label, color in (("overdue", N_("Overdue"), "red"), ("today", N_("Today"), None),
                               ("upcoming", N_("Upcoming"), None)):
        if groups[name]:
            shown = f":{color}[{_(label)}]" if color else _(label)
            st.markdown(f"**{shown}** ({i18n.number(counts[name])})")
            task_list(user, groups[name], key=f"home:{name}", show_related=True, log=log)
    if user.at_least("rep"):
        st.page_link("pages/activities.py", label=_("All my tasks"), icon=":material/task_alt:")
