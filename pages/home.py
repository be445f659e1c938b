import plotly.graph_objects as go
import streamlit as st

from crm import activities
from crm.dashboard import home_numbers
from crm.ui.followup import log_toggle, task_list
from crm.ui.guard import require_user
from crm.ui.session import get_db
from crm.ui.text import md_escape

user = require_user("viewer")

st.title(f"Hello, {md_escape((user.name.split() or [user.username])[0])}")
mine = user.role == "rep"
st.caption("Your numbers" if mine else "The whole team's numbers")

notice = st.session_state.get("demo_password_notice")
if notice:
    st.success("Demo data loaded. The demo team (maria, reza, sam, lena) signs in with this "
               "password. Note it: it is not shown again once dismissed.")
    st.code(notice, language=None)
    if st.button("Dismiss", key="dismiss_demo_password"):
        del st.session_state["demo_password_notice"]
        st.rerun()

numbers = home_numbers(get_db(), user)
a, b, c, d = st.columns(4)
a.metric("Open leads", f"{numbers['open_leads']:,}",
         help="Leads that are new, contacted or qualified")
b.metric("New leads this month", f"{numbers['new_leads_this_month']:,}")
c.metric("Customer base", f"{numbers['customer_base']:,}",
         help="Customers who ever bought: at least one won deal, or a first purchase from "
              "before the CRM")
d.metric("Installed base", f"{numbers['installed_base']:,}",
         help=f"{numbers['installed_base_rule']}. An admin chooses this rule under Settings › "
              "General.")

left, right = st.columns([3, 2])
with left:
    st.subheader("Leads by status")
    statuses = [s.capitalize() for s, _ in numbers["leads_by_status"]]
    counts = [n for _, n in numbers["leads_by_status"]]
    if sum(counts):
        fig = go.Figure(go.Bar(x=statuses, y=counts, text=[f"{n:,}" for n in counts],
                               textposition="auto", marker_color="#4C78A8"))
        fig.update_layout(height=320, margin=dict(l=10, r=10, t=10, b=10),
                          yaxis_title="Leads")
        st.plotly_chart(fig, config={"displayModeBar": False})
    else:
        st.info("No leads yet.")
with right:
    st.subheader("My open tasks")
    groups = activities.my_tasks(get_db(), user, limit=8)
    counts = activities.my_task_counts(get_db(), user)
    if not any(groups.values()):
        st.caption("No open tasks. Add them from a lead, customer or deal.")
    else:
        log = log_toggle("home")
    for name, label in (("overdue", ":red[Overdue]"), ("today", "Today"),
                        ("upcoming", "Upcoming")):
        if groups[name]:
            st.markdown(f"**{label}** ({counts[name]:,})")
            task_list(user, groups[name], key=f"home:{name}", show_related=True, log=log)
    if user.at_least("rep"):
        st.page_link("pages/activities.py", label="All my tasks", icon=":material/task_alt:")
