import streamlit as st

from crm.analytics import satisfaction as sat
from crm.i18n import gettext as _
from crm.ui import satisfaction as ui
from crm.ui.guard import require_user
from crm.ui.session import get_db

user = require_user("viewer")
db = get_db()

st.title(_("Customer satisfaction"))
st.caption(_("Your customers") if user.role == "rep" else _("The whole team's customers"))
chosen = ui.filters(user)
numbers = sat.page_numbers(db, user, chosen, limit=0)  # the at-risk list comes below
ui.headline(numbers)

trend_col, csat_col = st.columns([2, 1])
with trend_col:
    st.subheader(_("NPS over time"))
    if numbers["trend"]:
        st.plotly_chart(ui.nps_trend_chart(numbers["trend"]), config={"displayModeBar": False},
                        key="sat:nps_trend")
        st.caption(_("Promoters (9–10) minus detractors (0–6), in %, per month; the number "
                     "above each point is how many answered."))
    else:
        st.info(_("No NPS answers match the filters."))
with csat_col:
    st.subheader(_("CSAT distribution"))
    if numbers["csat"]["answers"]:
        st.plotly_chart(ui.csat_chart(numbers["csat"]), config={"displayModeBar": False},
                        key="sat:csat")
    else:
        st.info(_("No CSAT answers match the filters."))

st.subheader(_("NPS and CSAT by segment, product and owner"))
ui.dimension_tabs(numbers["by"])

st.subheader(_("Complaints"))
by_category, by_age = st.columns(2)
with by_category:
    st.markdown("**{}**".format(_("By category")))
    if numbers["complaints"]["category"]:
        st.plotly_chart(ui.complaints_chart("category", numbers["complaints"]["category"]),
                        config={"displayModeBar": False}, key="sat:complaints:category")
    else:
        st.caption(_("No complaints match the filters."))
with by_age:
    st.markdown("**{}**".format(_("Open complaints by age")))
    st.plotly_chart(ui.age_chart(numbers["age"]), config={"displayModeBar": False},
                    key="sat:age")
st.markdown("**{}**".format(_("By product")))
if numbers["complaints"]["product"]:
    st.plotly_chart(ui.complaints_chart("product", numbers["complaints"]["product"]),
                    config={"displayModeBar": False}, key="sat:complaints:product")
else:
    st.caption(_("No complaints match the filters."))

st.subheader(_("Customers at risk"))
chosen.currency = ui.stake_currency(user)
ui.at_risk_list(user, sat.at_risk(db, user, chosen, limit=20))
