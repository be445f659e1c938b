from datetime import date

import plotly.graph_objects as go
import streamlit as st

from crm import activities, calendar, i18n, pipelines, settings
from crm.analytics import forecast, kpis
from crm.dashboard import home_numbers
from crm.i18n import N_, gettext as _
from crm.leads import LEADS
from crm.ui import sales
from crm.ui.charts import localize
from crm.ui.followup import log_toggle, task_list
from crm.ui.guard import require_user
from crm.ui.session import get_db
from crm.ui.text import md_escape

user = require_user("viewer")
db = get_db()
today = date.today()
forecast.snapshot_if_due(db, today)  # the first page load of the day keeps the forecast

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

scope, currency = sales.filters(user, "home", today)
sales.period_caption(scope)
tiles = kpis.tiles(db, user, scope, today)
pipe_now = tiles["open_pipeline"]["now"].get(currency, {})
pipe_before = tiles["open_pipeline"]["before"].get(currency, {})
closed, closed_before = tiles["closed"]["now"], tiles["closed"]["before"]
won = closed["won"].get(currency, {})
won_before = closed_before["won"].get(currency, {})

a, b, c, d = st.columns(4)
sales.tile(a, _("Open pipeline"), sales.money(pipe_now.get("amount", 0), currency),
           pipe_now.get("amount"), pipe_before.get("amount"),
           _("Sum of the amounts of the open deals (in an open stage) in {currency}: {count} "
             "deals. Change: against the deals open at the end of the previous period, with "
             "the amount and probability of their stage history.").format(
               currency=currency, count=i18n.number(pipe_now.get("deals", 0))))
a.caption(_("Open deals: {count}").format(count=i18n.number(pipe_now.get("deals", 0))))
sales.tile(b, _("Weighted pipeline"), sales.money(pipe_now.get("weighted", 0), currency),
           pipe_now.get("weighted"), pipe_before.get("weighted"),
           _("Sum of amount × probability of the open deals in {currency} (the deal's own "
             "probability, else its stage's).").format(currency=currency))
sales.tile(c, _("Won this period"), sales.money(won.get("amount", 0), currency),
           won.get("amount"), won_before.get("amount"),
           _("Sum of the amounts of the deals in a won stage whose close date falls in the "
             "period, in {currency}: {count} deals.").format(
               currency=currency, count=i18n.number(won.get("deals", 0))))
c.caption(_("Won deals: {count}").format(count=i18n.number(won.get("deals", 0))))
sales.tile(d, _("Win rate"), i18n.percent(closed["win_rate"]) or "–", closed["win_rate"],
           closed_before["win_rate"],
           _("Won ÷ (won + lost), counting the deals closed in the period by their close date, "
             "in every currency: {won} won, {lost} lost.").format(
               won=i18n.number(closed["won_deals"]), lost=i18n.number(closed["lost_deals"])))

a, b, c, d = st.columns(4)
sales.tile(a, _("Average won deal"), sales.money(won.get("average"), currency),
           won.get("average"), won_before.get("average"),
           _("Won amount ÷ number of won deals in the period, in {currency}.").format(
               currency=currency))
cycle = closed["cycle_days"]
sales.tile(b, _("Average sales cycle"),
           _("{days} days").format(days=i18n.number(cycle, 1)) if cycle is not None else "–",
           cycle, closed_before["cycle_days"],
           _("Average number of days from a won deal's creation to its close date, over the "
             "deals won in the period."), lower_is_better=True)
conv, conv_before = tiles["conversion"]["now"], tiles["conversion"]["before"]
sales.tile(c, _("Lead → customer"), i18n.percent(conv["rate"]) or "–", conv["rate"],
           conv_before["rate"],
           _("Of the leads created in the period, the share converted into a customer since: "
             "{converted} of {leads}.").format(converted=i18n.number(conv["converted"]),
                                               leads=i18n.number(conv["leads"])))
keep, keep_before = tiles["retention"]["now"], tiles["retention"]["before"]
months = settings.get_all(db)["installed_base_months"]
sales.tile(d, _("Retention"), i18n.percent(keep["rate"]) or "–", keep["rate"],
           keep_before["rate"],
           _("Of the customers active at the end of the previous period (a won deal in the {months} "
             "months before it), the share still active at the end of this one (or today): "
             "{kept} of {before}.").format(months=i18n.number(months),
                                           kept=i18n.number(keep["retained"]),
                                           before=i18n.number(keep["active_before"])))

numbers = home_numbers(db, user, bases=False)  # the tiles count the bases of the period
bases, bases_before = tiles["bases"]["now"], tiles["bases"]["before"]
a, b, c, d = st.columns(4)
a.metric(_("Open leads"), i18n.number(numbers["open_leads"]),
         help=_("Leads that are new, contacted or qualified"))
b.metric(_("New leads this month"), i18n.number(numbers["new_leads_this_month"]))
sales.tile(c, _("Customer base"), i18n.number(bases["customer_base"]), bases["customer_base"],
           bases_before["customer_base"],
           _("Customers who ever bought: at least one won deal, or a first purchase from "
             "before the CRM, by the end of the period (or today)"))
sales.tile(d, _("Installed base"), i18n.number(bases["installed_base"]),
           bases["installed_base"], bases_before["installed_base"],
           _("{rule}. An admin chooses this rule under Settings › General.").format(
               rule=numbers["installed_base_rule"]))

others = [code for code in tiles["open_pipeline"]["now"] if code != currency]
if others:
    st.caption(_("Other currencies, never added to the above: {list}").format(
        list=" · ".join(_("{open} open ({weighted} weighted)").format(
            open=sales.money(tiles["open_pipeline"]["now"][code]["amount"], code),
            weighted=sales.money(tiles["open_pipeline"]["now"][code]["weighted"], code))
            for code in others)))

left, right = st.columns(2)
with left:
    st.subheader(_("Funnel by stage"))
    pipeline = scope.pipeline_id or pipelines.default_pipeline_id(db)
    funnel = kpis.funnel(db, user, scope, pipeline) if pipeline else []
    if any(r["deals"] for r in funnel):
        fig = go.Funnel(y=[sales.chart_text(r["stage"]) for r in funnel],
                        x=[r["deals"] for r in funnel],
                        text=[i18n.number(r["deals"]) for r in funnel], textinfo="text",
                        marker_color=sales.COLORS[0])
        sales.show(go.Figure(fig))
        st.caption(_("Deals created in the period that reached each stage or a later one."))
    else:
        st.info(_("No deals were created in this period."))
with right:
    st.subheader(_("Won revenue by month"))
    by_month = kpis.won_by_month(db, user, scope, currency)
    if any(r["amount"] for r in by_month):
        fig = go.Figure(go.Bar(x=[calendar.label(r["period"]) for r in by_month],
                               y=[r["amount"] for r in by_month],
                               text=[sales.money(r["amount"], currency) for r in by_month],
                               textposition="auto", marker_color=sales.COLORS[2]))
        fig.update_layout(yaxis_title=_("Won ({currency})").format(currency=currency))
        sales.show(fig)
    else:
        st.info(_("Nothing was won in {currency} in this period.").format(currency=currency))

left, right = st.columns(2)
with left:
    st.subheader(_("Open pipeline by owner"))
    by_owner = kpis.pipeline_by_owner(db, user, scope, currency)
    if by_owner:
        names = [sales.chart_text(r["owner"]) for r in by_owner]
        fig = go.Figure([go.Bar(name=_("Amount"), x=names, y=[r["amount"] for r in by_owner],
                                marker_color=sales.COLORS[0]),
                         go.Bar(name=_("Weighted"), x=names,
                                y=[r["weighted"] for r in by_owner],
                                marker_color=sales.COLORS[1])])
        fig.update_layout(barmode="group",
                          yaxis_title=_("Open ({currency})").format(currency=currency))
        sales.show(fig)
    else:
        st.info(_("No open deals in {currency}.").format(currency=currency))
with right:
    st.subheader(_("Lead sources"))
    sources = kpis.lead_sources(db, user, scope)
    if sources:
        source_field = LEADS.spec["source"]
        labels = [source_field.choice_label(r["source"]) if r["source"] else _("Not given")
                  for r in sources]
        fig = go.Figure([go.Bar(name=_("Converted"), x=labels,
                                y=[r["converted"] for r in sources],
                                marker_color=sales.COLORS[2]),
                         go.Bar(name=_("Not converted"), x=labels,
                                y=[r["leads"] - r["converted"] for r in sources],
                                marker_color=sales.COLORS[9])])
        fig.update_layout(barmode="stack", yaxis_title=_("Leads created in the period"))
        sales.show(fig)
    else:
        st.info(_("No leads were created in this period."))

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
    groups = activities.my_tasks(db, user, limit=8)
    counts = activities.my_task_counts(db, user)
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
