"""The satisfaction page's pieces: filters, Plotly figures (localized) and the at-risk list."""
from __future__ import annotations

import re

import plotly.graph_objects as go
import streamlit as st

from crm import auth, calendar, customers, i18n, service
from crm.analytics import satisfaction as sat
from crm.auth import PermissionDenied, User
from crm.fields import Field, ValidationError
from crm.i18n import N_, gettext as _
from crm.ui.charts import localize
from crm.ui.service import reason_text
from crm.ui.session import get_db
from crm.ui.tables import date_range
from crm.ui.text import md_escape

CSAT_COLORS = {1: "#d62728", 2: "#ff9896", 3: "#c7c7c7", 4: "#98df8a", 5: "#2ca02c"}
DIMENSION_NAMES = {"segment": N_("By segment"), "product": N_("By product"),
                   "owner": N_("By owner")}
AGE_NAMES = (N_("0–7 days"), N_("8–30 days"), N_("31–90 days"), N_("over 90 days"))
_PERIOD = Field("period", N_("Period"), "date")
_SEGMENT = customers.CUSTOMERS.spec["segment"]
_CATEGORY = service.COMPLAINTS.spec["category"]


_ARABIC_SCRIPT = re.compile("[\u0600-\u06ff]")


def _bidi(text: str) -> str:
    """A label for a chart: Plotly reads a few HTML tags (links, bold) in its text, so user
    text (product and owner names) has < > & escaped as entities, which Plotly shows as they
    are. Plotly also draws SVG text left to right: a Persian label that starts with a digit
    or ends with brackets comes out scrambled, so a right-to-left embedding keeps it in
    reading order."""
    text = (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if i18n.is_rtl() and _ARABIC_SCRIPT.search(text):
        return "\u202b" + text + "\u202c"
    return text


def filters(user: User) -> sat.Filters:
    """Period (default: the last two years), segment, product and owner (not for reps: they
    see their own)."""
    db = get_db()
    cols = st.columns([2, 1.3, 1.3, 1.3])
    with cols[0]:
        start, end = date_range(_PERIOD, "sat:period")
    if start is None and end is None:
        start, end = sat.default_period()
    segments = cols[1].multiselect(_SEGMENT.shown_label, list(_SEGMENT.choices),
                                   format_func=_SEGMENT.choice_label, key="sat:segments",
                                   placeholder=_("Any"))
    products = service.product_choices(db)
    chosen_products = cols[2].multiselect(_("Product"), list(products), format_func=products.get,
                                          key="sat:products", placeholder=_("Any"))
    owners = []
    if user.role != "rep":
        people = auth.owner_choices(db)
        owners = cols[3].multiselect(_("Owner"), list(people), format_func=people.get,
                                     key="sat:owners", placeholder=_("Any"))
    st.caption(_("{start} – {end}").format(start=i18n.format_date(start),
                                           end=i18n.format_date(end)))
    return sat.Filters(start=start, end=end, segments=segments, products=chosen_products,
                       owners=owners)


def stake_currency(user: User) -> str | None:
    """With deals in several currencies (no exchange rates), the at-risk stake is counted in
    one of them, the most used by default."""
    currencies = sat.stake_currencies(get_db(), user)
    if len(currencies) < 2:
        return None
    return st.columns([1, 3])[0].selectbox(
        _("Count what is at stake in"), currencies, key="sat:currency",
        help=_("Deals in other currencies are left out of the stake: the CRM has no exchange "
               "rates."))


def _layout(fig: go.Figure, height: int = 320, **more) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), **more)
    return localize(fig)


def _show(fig: go.Figure, key: str) -> None:
    st.plotly_chart(fig, config={"displayModeBar": False}, key=key)


def nps_trend_chart(trend: list[dict]) -> go.Figure:
    """NPS per month (line), the number of answers written at each point."""
    x = [_bidi(calendar.label(r["period"])) for r in trend]
    y = [round(r["nps"], 1) for r in trend]
    answers = [i18n.number(r["answers"]) for r in trend]
    fig = go.Figure(go.Scatter(
        x=x, y=y, mode="lines+markers+text", text=answers, textposition="top center",
        textfont=dict(size=10, color="#666"), line=dict(color="#4C78A8", width=2),
        customdata=[[i18n.number(r["nps"], 1), a] for r, a in zip(trend, answers)],
        hovertemplate=_("NPS {nps} · {answers} answers").format(
            nps="%{customdata[0]}", answers="%{customdata[1]}") + "<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#999", width=1, dash="dot"))
    return _layout(fig, yaxis_title=_("NPS"), xaxis_type="category",
                   yaxis_range=[min([-100, *y]) if y and min(y) < -50 else -50, 100])


def csat_chart(csat: dict) -> go.Figure:
    scores = list(range(1, 6))
    counts = [csat["counts"][s] for s in scores]
    fig = go.Figure(go.Bar(x=[i18n.number(s) for s in scores], y=counts,
                           marker_color=[CSAT_COLORS[s] for s in scores],
                           text=[i18n.number(n) for n in counts], textposition="auto"))
    return _layout(fig, xaxis_title=_("CSAT score"), yaxis_title=_("Answers"),
                   xaxis_type="category")


def _group_label(dimension: str, row: dict) -> str:
    if row["key"] is None:
        return _bidi(_("(none)"))
    if dimension == "segment":
        return _bidi(_SEGMENT.choice_label(row["key"]))
    if dimension == "category":
        return _bidi(_CATEGORY.choice_label(row["key"]))
    return _bidi(str(row["label"] or f"#{row['key']}"))


def nps_by_chart(dimension: str, rows: list[dict]) -> go.Figure:
    rows = [r for r in rows if r["answers"]][:15]
    labels = [_group_label(dimension, r) for r in rows]
    values = [round(r["nps"], 1) for r in rows]
    fig = go.Figure(go.Bar(
        x=labels, y=values, marker_color=["#2ca02c" if v >= 0 else "#d62728" for v in values],
        text=[_("{nps} ({answers})").format(nps=i18n.number(r["nps"]),
                                            answers=i18n.number(r["answers"])) for r in rows],
        textposition="outside", textangle=0, cliponaxis=False))
    return _layout(fig, yaxis_title=_("NPS"), xaxis_type="category", height=360)


def csat_by_chart(dimension: str, rows: list[dict]) -> go.Figure:
    """Each group's CSAT answers by score as shares (stacked to 100 %), % satisfied on top."""
    rows = [r for r in rows if r["csat_answers"]][:15]
    labels = [_group_label(dimension, r) for r in rows]
    fig = go.Figure()
    for s in range(1, 6):
        shares = [100 * r[f"csat_{s}"] / r["csat_answers"] for r in rows]
        fig.add_trace(go.Bar(x=labels, y=shares, name=i18n.number(s),
                             marker_color=CSAT_COLORS[s],
                             customdata=[i18n.percent(v / 100) for v in shares],
                             hovertemplate="%{customdata}<extra>" + i18n.number(s) + "</extra>"))
    fig.add_trace(go.Scatter(
        x=labels, y=[103] * len(rows), mode="text", showlegend=False, hoverinfo="skip",
        text=[i18n.percent(r["satisfied"]) for r in rows], textfont=dict(size=11)))
    return _layout(fig, barmode="stack", yaxis_title=_("% of answers"), xaxis_type="category",
                   legend=dict(orientation="h", y=1.12, x=0, title=_("CSAT")), height=360)


def complaints_chart(dimension: str, rows: list[dict]) -> go.Figure:
    """Closed and open complaints per category (columns) or product (bars: long names)."""
    rows = rows[:15]
    labels = [_group_label(dimension, r) for r in rows]
    closed = [r["total"] - r["unresolved"] for r in rows]
    still_open = [r["unresolved"] for r in rows]
    if dimension == "product":
        fig = go.Figure([
            go.Bar(y=labels, x=closed, name=_("Closed"), marker_color="#9ecae1",
                   orientation="h"),
            go.Bar(y=labels, x=still_open, name=_("Open"), marker_color="#e6550d",
                   orientation="h")])
        return _layout(fig, barmode="stack", xaxis_title=_("Complaints"),
                       yaxis=dict(type="category", autorange="reversed", automargin=True),
                       legend=dict(orientation="h", y=1.1, x=0),
                       height=max(260, 32 * len(rows) + 90))
    fig = go.Figure([
        go.Bar(x=labels, y=closed, name=_("Closed"), marker_color="#9ecae1"),
        go.Bar(x=labels, y=still_open, name=_("Open"), marker_color="#e6550d")])
    return _layout(fig, barmode="stack", yaxis_title=_("Complaints"), xaxis_type="category",
                   legend=dict(orientation="h", y=1.1, x=0))


def age_chart(buckets: list[dict]) -> go.Figure:
    counts = [b["count"] for b in buckets]
    fig = go.Figure(go.Bar(x=[_bidi(_(n)) for n in AGE_NAMES], y=counts,
                           marker_color=["#fdd0a2", "#fdae6b", "#f16913", "#a63603"],
                           text=[i18n.number(n) for n in counts], textposition="auto"))
    return _layout(fig, yaxis_title=_("Open complaints"), xaxis_type="category")


def _days(value) -> str:
    return "—" if value is None else _("{days} days").format(days=i18n.number(value, 1))


def _score(value) -> str:
    return "—" if value is None else i18n.number(value, 1)


def headline(numbers: dict) -> None:
    nps, csat, times = numbers["nps"], numbers["csat"], numbers["resolution"]
    a, b, c, d, e = st.columns(5)
    a.metric(_("NPS"), _score(nps["nps"]),
             help=_("% promoters (9–10) minus % detractors (0–6) of {count} answers").format(
                 count=i18n.number(nps["answers"])))
    b.metric(_("CSAT satisfied"), "—" if csat["satisfied"] is None
             else i18n.percent(csat["satisfied"]),
             help=_("Share of CSAT answers of 4 or 5, of {count} answers").format(
                 count=i18n.number(csat["answers"])))
    c.metric(_("Open complaints"), i18n.number(times["unresolved"]),
             help=_("Opened in the period and still open or in progress"))
    d.metric(_("Average resolution"), _days(times["average_days"]),
             help=_("From opened to resolved, over {count} resolved complaints").format(
                 count=i18n.number(times["resolved"])))
    e.metric(_("90th percentile"), _days(times["p90_days"]),
             help=_("Nine in ten resolved complaints took at most this long"))


def dimension_tabs(by: dict) -> None:
    tabs = st.tabs([_(DIMENSION_NAMES[d]) for d in sat.DIMENSIONS])
    for tab, dimension in zip(tabs, sat.DIMENSIONS):
        with tab:
            rows = by[dimension]
            if not rows:
                st.caption(_("No answers match the filters."))
                continue
            left, right = st.columns(2)
            with left:
                st.markdown("**{}**".format(_("NPS (answers)")))
                _show(nps_by_chart(dimension, rows), f"sat:nps_by:{dimension}")
            with right:
                st.markdown("**{}**".format(_("CSAT: % satisfied (4–5) and answers by score")))
                _show(csat_by_chart(dimension, rows), f"sat:csat_by:{dimension}")


def at_risk_list(user: User, rows: list[dict]) -> None:
    """Each customer at risk: a link to its page, why, what is at stake, and a button that
    gives its owner a follow-up task."""
    if not rows:
        st.caption(_("No customer is at risk."))
        return
    st.caption(_("{shown} of {total} customers at risk, the most at stake first. At stake: "
                 "open pipeline plus revenue won in the last 12 months.").format(
        shown=i18n.number(len(rows)), total=i18n.number(rows[0]["total"])))
    for row in rows:
        with st.container(border=True):
            name_col, why_col, stake_col, button_col = st.columns(
                [2.2, 2.6, 1.4, 1.5], vertical_alignment="center")
            if user.at_least("rep"):
                name_col.page_link("pages/customer.py", query_params={"id": row["id"]},
                                   label=md_escape(row["name"]), icon=":material/domain:")
            else:  # viewers read dashboards, not customer records
                name_col.markdown(md_escape(row["name"]))
            if row["owner_name"]:
                name_col.caption(_("owner {name}").format(name=md_escape(row["owner_name"])))
            why_col.markdown(md_escape(reason_text(row["reasons"])))
            scores = []
            if row["latest_nps"] is not None:
                scores.append(_("NPS {score}").format(score=i18n.number(row["latest_nps"])))
            if row["latest_csat"] is not None:
                scores.append(_("CSAT {score}").format(score=i18n.number(row["latest_csat"])))
            if row["severe_open"]:
                scores.append(i18n.ngettext("{count} severe complaint open",
                                            "{count} severe complaints open",
                                            row["severe_open"]).format(
                    count=i18n.number(row["severe_open"])))
            why_col.caption(" · ".join(scores))
            stake_col.markdown(md_escape(i18n.money(row["stake"], row["currency"], 0)))
            stake_col.caption(_("at stake") if row["currency"] or not row["stake"]
                              else _("at stake, in several currencies"))
            _follow_up(user, row, button_col)


def _follow_up(user: User, row: dict, col) -> None:
    if row["open_tasks"]:
        col.caption(i18n.ngettext("{count} open task", "{count} open tasks",
                                  row["open_tasks"]).format(count=i18n.number(row["open_tasks"])))
    if not user.at_least("rep"):
        return
    if col.button(_("Follow-up task"), key=f"sat:follow:{row['id']}", icon=":material/add_task:",
                  help=_("A high-priority task for the customer's owner, due tomorrow")):
        try:
            service.create_follow_up(get_db(), user, row["id"],
                                     [_(REASON_NOTES[r]) for r in row["reasons"]])
        except (PermissionDenied, ValidationError) as exc:
            st.error(md_escape(exc))
            return
        st.toast(_("Follow-up task created for {name}").format(
            name=md_escape(row["owner_name"]) if row["owner_name"] else _("you")),
            icon=":material/check:")
        st.rerun()


REASON_NOTES = {"detractor": N_("Latest NPS answer is a detractor (0–6)"),
                "severe_complaint": N_("Has an open complaint of high or critical severity"),
                "dropped": N_("Satisfaction dropped since the previous answer")}
