from datetime import date

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from crm import auth, calendar, i18n, pipelines
from crm.analytics import forecast, periods
from crm.deals import CURRENCIES
from crm.fields import ValidationError
from crm.i18n import gettext as _
from crm.ui import sales
from crm.ui.guard import require_user
from crm.ui.session import get_db
from crm.ui.tables import grid
from crm.ui.text import md_escape

user = require_user("viewer")
db = get_db()
today = date.today()
lang = i18n.language()
forecast.snapshot_if_due(db, today)

st.title(_("Forecast"))
st.caption(_("Your deals") if user.role == "rep" else _("The whole team's deals"))
scope, currency = sales.filters(user, "fc", today, periods_too=False)
grain_col, by_col = st.columns(2)
grains = {"month": _("Months"), "quarter": _("Quarters")}
grain = sales.pick(grain_col.segmented_control, _("Periods"), grains, "fc:grain",
                   default=grains["month"]) or "month"
stacks = {"stage": _("Stage"), "owner": _("Owner")}
by = sales.pick(by_col.segmented_control, _("Stack by"), stacks, "fc:by",
                default=stacks["stage"]) or "stage"


def label(key: int) -> str:
    if key == forecast.OVERDUE:
        return _("Overdue deals")
    if key == forecast.NO_DATE:
        return _("No date")
    return calendar.label(key, grain)


# 1. weighted pipeline by expected close period ------------------------------------------------
st.subheader(_("Weighted pipeline by expected close"))
weighted = forecast.weighted_by_period(db, user, scope, grain, by, currency, today, lang=lang)
rows = [r for r in weighted["rows"] if r["period"] != forecast.NO_DATE]
if rows:
    columns = [forecast.OVERDUE, *weighted["periods"]]
    groups = list(dict.fromkeys(r["grp"] for r in sorted(rows, key=lambda r: r["position"])))
    fig = go.Figure()
    for i, group in enumerate(groups):
        values = {r["period"]: r["weighted"] for r in rows if r["grp"] == group}
        fig.add_bar(name=sales.chart_text(group), x=[label(k) for k in columns],
                    y=[values.get(k, 0) for k in columns],
                    marker_color=sales.COLORS[i % len(sales.COLORS)])
    fig.update_layout(barmode="stack",
                      yaxis_title=_("Weighted ({currency})").format(currency=currency))
    sales.show(fig)
    overdue = sum(r["weighted"] for r in rows if r["period"] == forecast.OVERDUE)
    undated = sum(r["weighted"] for r in weighted["rows"] if r["period"] == forecast.NO_DATE)
    st.caption(_("Amount × probability of the open deals by expected close date. Overdue: "
                 "the expected close date has passed ({overdue}). Without a date: "
                 "{undated}, not shown.").format(overdue=sales.money(overdue, currency),
                                                 undated=sales.money(undated, currency)))
else:
    st.info(_("No open deals in {currency}.").format(currency=currency))

# 2. forecast categories against quotas ----------------------------------------------------------
st.subheader(_("Forecast categories and quotas"))
cats = forecast.categories(db, user, scope, grain, currency, today, lang=lang)
x = [label(r["period"]) for r in cats]
fig = go.Figure()
for i, name in enumerate(forecast.CATEGORIES):
    fig.add_bar(name=_(forecast.CATEGORY_LABELS[name]), x=x, y=[r[name] for r in cats],
                marker_color=sales.COLORS[[2, 0, 1, 9][i]])
fig.add_scatter(name=_("Closed + commit"), x=x, y=[r["closed_commit"] for r in cats],
                mode="lines+markers", line=dict(color="#2F4B7C"))
fig.add_scatter(name=_("Closed + commit + best case"), x=x,
                y=[r["closed_commit_best"] for r in cats], mode="lines+markers",
                line=dict(color="#F58518", dash="dot"))
if any(r["quota"] for r in cats):
    fig.add_scatter(name=_("Quota"), x=x, y=[r["quota"] for r in cats], mode="markers",
                    marker=dict(symbol="line-ew-open", size=28, color="#E45756",
                                line=dict(width=3)))
fig.update_layout(barmode="stack", yaxis_title=_("Amount ({currency})").format(
    currency=currency))
sales.show(fig)
st.caption(_("Closed: won in the period. Commit, best case and pipeline: open deals by their "
             "forecast category (the deal's, else its stage's) and expected close date, "
             "unweighted; overdue deals count in the current period."))

current = periods.next_keys(today, grain, 1, lang)[0]
start, end = periods.bounds(current, grain, lang)
st.markdown("**" + _("Quota attainment, {period}").format(period=label(current)) + "**")
reached = forecast.attainment(db, user, scope, start, end, currency)
if reached:
    grid(pd.DataFrame({
        _("Rep"): [r["name"] for r in reached],
        _("Quota"): [sales.money(r["quota"], currency) if r["quota"] else "–" for r in reached],
        _("Won"): [sales.money(r["won"], currency) for r in reached],
        _("Attainment"): [i18n.percent(r["attainment"]) if r["attainment"] is not None
                          else "–" for r in reached],
        _("Commit"): [sales.money(r["commit"], currency) for r in reached],
    }), hide_index=True)
else:
    st.caption(_("No quota and nothing won in this period."))

if user.sees_all:
    with st.expander(_("Set quotas"), icon=":material/flag:"):
        reps = auth.owner_choices(db)
        keys = periods.next_keys(today, grain, 12, lang, back=3)
        with st.form("fc:quota", clear_on_submit=False):
            a, b, c, d = st.columns(4)
            rep = a.selectbox(_("Rep"), list(reps), format_func=lambda r: reps[r])
            chosen = sales.pick(b.selectbox, _("Period"), {k: label(k) for k in keys},
                                "fc:quota_period", index=3)
            amount = c.number_input(_("Quota"), min_value=0.0, step=1000.0)
            quota_currency = d.selectbox(_("Currency"), CURRENCIES,
                                         index=CURRENCIES.index(currency)
                                         if currency in CURRENCIES else 0)
            if st.form_submit_button(_("Save quota"), type="primary"):
                try:
                    forecast.set_quota(db, user, {
                        "user_id": rep, "grain": grain,
                        "day": periods.bounds(chosen, grain, lang)[0], "amount": amount,
                        "currency": quota_currency}, lang)
                    st.toast(_("Quota saved"))
                    st.rerun()
                except ValidationError as exc:
                    st.error(" · ".join(exc.errors.values()))
        upload = st.file_uploader(
            _("Import quotas from CSV"), type=["csv"], key="fc:quota_file",
            help=_("Columns: username, period (2026-11, 2026-Q4, or a Jalali 1405-09), amount, "
                   "currency (optional, USD). All rows or none."))
        if upload is not None and st.button(_("Import quotas"), key="fc:import"):
            try:
                done = forecast.import_quotas(db, user, upload.getvalue())
                st.success(_("{count} quotas imported").format(count=i18n.number(
                    done["imported"])))
            except ValidationError as exc:  # the file's text is in the message: plain
                st.error(md_escape(" · ".join(exc.errors.values())))
        listed = forecast.list_quotas(db, user, *(
            periods.bounds(keys[0], grain, lang)[0], periods.bounds(keys[-1], grain, lang)[1]))
        if listed:
            grid(pd.DataFrame({
                _("Rep"): [r["name"] for r in listed],
                _("Period"): [label(periods.period_key(r["period_start"], grain, lang))
                              if r["grain"] == grain else
                              f"{i18n.format_date(r['period_start'])} – "
                              f"{i18n.format_date(r['period_end'])}" for r in listed],
                _("Quota"): [sales.money(r["amount"], r["currency"]) for r in listed],
            }), hide_index=True)

# 3. projection of won revenue --------------------------------------------------------------------
st.subheader(_("Revenue projection"))


@st.cache_data(show_spinner=False, max_entries=64)
def projection(values: tuple, horizon: int) -> dict:
    return forecast.project(list(values), horizon)


history = forecast.monthly_won(db, user, scope, currency, today, lang)
result = projection(tuple(r["amount"] for r in history), 12)
if not result["enough"]:
    st.info(_("Too little history for a projection: {months} months of won deals in "
              "{currency}, at least {needed} are needed.").format(
                months=i18n.number(result["months"]), currency=currency,
                needed=i18n.number(forecast.MIN_MONTHS)))
else:
    last = history[-1]["period"]
    y, m = divmod(last, 100)
    ahead = [(y + (m + i - 1) // 12) * 100 + (m + i - 1) % 12 + 1 for i in range(1, 13)]
    past_x = [calendar.label(r["period"]) for r in history]
    next_x = [calendar.label(k) for k in ahead]
    chart, side = st.columns([4, 1])
    with chart:
        fig = go.Figure()
        fig.add_scatter(name=_("95 % interval"), x=next_x + next_x[::-1],
                        y=result["upper95"] + result["lower95"][::-1], fill="toself",
                        fillcolor="rgba(76,120,168,0.15)", line=dict(width=0),
                        hoverinfo="skip")
        fig.add_scatter(name=_("80 % interval"), x=next_x + next_x[::-1],
                        y=result["upper80"] + result["lower80"][::-1], fill="toself",
                        fillcolor="rgba(76,120,168,0.30)", line=dict(width=0),
                        hoverinfo="skip")
        fig.add_scatter(name=_("Won"), x=past_x, y=[r["amount"] for r in history],
                        mode="lines+markers", line=dict(color="#54A24B"))
        fig.add_scatter(name=_("Projection"), x=next_x, y=result["forecast"],
                        mode="lines+markers", line=dict(color="#4C78A8", dash="dash"))
        fig.update_layout(yaxis_title=_("Won ({currency})").format(currency=currency))
        fig.update_xaxes(categoryorder="array", categoryarray=past_x + next_x)
        sales.show(fig)
    with side:
        side.metric(_("Backtest MAPE"),
                    i18n.percent(result["mape"], 1) if result["mape"] is not None else "–",
                    help=_("Rolling origin: each of the last 6 months forecast one month ahead "
                           "from the months before it; the mean of |actual − forecast| ÷ "
                           "actual."))
        side.metric(_("Next month"), sales.money(result["forecast"][0], currency))
        if result["months"] >= forecast.SEASONAL_MONTHS:
            method = _("Exponential smoothing (ETS, damped trend, yearly season) on {months} "
                       "months of won revenue, with 80 % and 95 % prediction intervals.")
        else:
            method = _("Exponential smoothing (ETS, damped trend) on {months} months of won "
                       "revenue, with 80 % and 95 % prediction intervals.")
        side.caption(method.format(months=i18n.number(result["months"])))

# 4. learned stage probabilities ------------------------------------------------------------
st.subheader(_("Stage probabilities learned from the history"))
pipeline = scope.pipeline_id or pipelines.default_pipeline_id(db)
learned = forecast.learned_probabilities(db, user, pipeline) if pipeline else []
if learned:
    grid(pd.DataFrame({
        _("Stage"): [r["stage"] for r in learned],
        _("Configured"): [i18n.percent(r["configured"] / 100) for r in learned],
        _("Learned"): [i18n.percent(r["learned"]) if r["learned"] is not None else "–"
                       for r in learned],
        _("95 % interval"): [f"{i18n.percent(r['low'])} – {i18n.percent(r['high'])}"
                             if r["low"] is not None else "–" for r in learned],
        _("Closed deals"): [i18n.number(r["deals"]) for r in learned],
    }), hide_index=True)
    st.caption(_("Of the closed deals (won or lost) that reached a stage, the share won; the "
                 "interval is Wilson's. Open deals are left out: their outcome is unknown."))
    if user.role == "admin" and st.button(
            _("Adopt the learned probabilities"), key="fc:adopt",
            help=_("Sets each stage's probability to the learned one where at least {count} "
                   "closed deals stand behind it.").format(
                       count=i18n.number(forecast.MIN_LEARNED_DEALS))):
        changed = forecast.adopt_learned(db, user, pipeline)
        st.toast(_("{count} stages changed").format(count=i18n.number(len(changed))))
        st.rerun()

# 5. forecast accuracy over time --------------------------------------------------------------
st.subheader(_("Forecast accuracy"))
past = forecast.accuracy(db, user, scope, currency, today, lang=lang)
if past:
    x = [calendar.label(r["period"]) for r in past]
    fig = go.Figure([
        go.Bar(name=_("Forecast (weighted)"), x=x, y=[r["weighted"] for r in past],
               marker_color=sales.COLORS[0]),
        go.Bar(name=_("Forecast (closed + commit)"), x=x, y=[r["commit"] for r in past],
               marker_color=sales.COLORS[1]),
        go.Bar(name=_("Won"), x=x, y=[r["won"] for r in past], marker_color=sales.COLORS[2])])
    fig.update_layout(barmode="group", yaxis_title=_("Amount ({currency})").format(
        currency=currency))
    sales.show(fig)
    st.caption(_("For each past month: the open pipeline expected to close in it, as the "
                 "snapshot taken closest before the month began saw it, against what was won."))
    errors = [abs(r["error"]) for r in past if r["error"] is not None]
    if errors:
        st.metric(_("Mean absolute error of the weighted forecast"),
                  i18n.percent(sum(errors) / len(errors)),
                  help=_("The mean of |won − forecast| ÷ forecast over the {count} months "
                         "shown.").format(count=i18n.number(len(errors))))
else:
    st.info(_("No forecast snapshot covers a past month yet: one is kept every day."))
