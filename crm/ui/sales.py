"""Shared pieces of the sales dashboards: the period, pipeline, owner and currency filters, KPI
tiles with their change against the previous period, and chart helpers."""
from __future__ import annotations

import html
from datetime import date

import streamlit as st

from crm import auth, i18n, pipelines
from crm.analytics import kpis, periods
from crm.analytics.periods import Scope
from crm.auth import User
from crm.calendar import uses_jalali
from crm.i18n import gettext as _
from crm.ui.session import get_db

CHART = dict(height=330, margin=dict(l=10, r=10, t=30, b=10))
COLORS = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2",
          "#FF9DA6", "#9D755D", "#BAB0AC"]


def chart_text(text) -> str:
    """User text (names, stages) for a Plotly label: Plotly reads a few HTML tags (links,
    bold) in labels, so they are escaped to show as typed."""
    return html.escape("" if text is None else str(text), quote=False)


def filters(user: User, key: str, today: date, periods_too: bool = True
            ) -> tuple[Scope, str]:
    """The filter row: period (this month/quarter/year, last 12 months, custom), pipeline,
    owners (managers and viewers; a rep sees their own) and the currency that amounts are
    shown in (amounts in different currencies are never added). Returns (scope, currency)."""
    db = get_db()
    cols = st.columns([1.3, 1.3, 2, 1] if periods_too else [1.3, 2, 1],
                      vertical_alignment="bottom")
    lang = i18n.language()
    custom = None
    preset = "this_month"
    if periods_too:
        preset = pick(cols[0].selectbox, _("Period"),
                      {p: _(text) for p, text in periods.PRESETS.items()}, f"{key}:period")
        cols = cols[1:]
    if preset == "custom":
        custom = _custom_range(key, today)
    choices = {p["id"]: p["name"] for p in pipelines.list_pipelines(db)}
    pipeline = pick(cols[0].selectbox, _("Pipeline"),
                    {None: _("All pipelines"), **choices}, f"{key}:pipeline")
    owners: list[int] = []
    if user.role != "rep":
        names = auth.owner_choices(db)
        owners = cols[1].multiselect(_("Owners"), list(names), key=f"{key}:owners",
                                     format_func=lambda o: names[o],
                                     placeholder=_("Everyone"))
    else:
        cols[1].caption(_("Your deals"))
    try:
        scope = periods.scope(preset, today, lang, custom, pipeline, owners)
    except ValueError:
        scope = periods.scope("this_month", today, lang, None, pipeline, owners)
    found = kpis.currencies(db, user, scope) or ["USD"]
    currency = cols[2].selectbox(_("Currency"), found, key=f"{key}:currency")
    return scope, currency


def pick(widget, label: str, options: dict, key: str, **kwargs):
    """A choice among {value: shown text}: the widget holds the shown texts themselves, so no
    format function (which would translate in whatever thread calls it) is kept with it."""
    texts = list(options.values())
    chosen = widget(label, texts, key=key, **kwargs)
    return next((k for k, v in options.items() if v == chosen), None)


def _custom_range(key: str, today: date) -> tuple[date, date] | None:
    start_default = today.replace(day=1)
    a, b = st.columns(2)
    if uses_jalali():  # typed in the Jalali calendar, like every date of a Persian user
        texts = (a.text_input(_("First day"), i18n.format_date(start_default), key=f"{key}:from"),
                 b.text_input(_("Last day"), i18n.format_date(today), key=f"{key}:to"))
        try:
            return i18n.parse_date(texts[0]), i18n.parse_date(texts[1])
        except ValueError as exc:
            st.error(str(exc))
            return None
    return (a.date_input(_("First day"), start_default, key=f"{key}:from"),
            b.date_input(_("Last day"), today, key=f"{key}:to"))


def period_caption(scope: Scope) -> None:
    st.caption(_("{start} – {end}, compared with {prev_start} – {prev_end}").format(
        start=i18n.format_date(scope.start), end=i18n.format_date(scope.end),
        prev_start=i18n.format_date(scope.prev_start),
        prev_end=i18n.format_date(scope.prev_end)))


def delta(now, before) -> str | None:
    """The change against the previous period as a signed percentage, None when there is
    nothing to compare with."""
    change = kpis.change(now, before)
    if change is None:
        return None
    return ("+" if change >= 0 else "-") + i18n.percent(abs(change))


def tile(column, label: str, value: str, now, before, help_text: str,
         lower_is_better: bool = False) -> None:
    column.metric(label, value, delta=delta(now, before), help=help_text,
                  delta_color="inverse" if lower_is_better else "normal")


def money(value, currency: str) -> str:
    return i18n.money(value, currency, digits=0) if value is not None else "–"


def show(fig) -> None:
    from crm.ui.charts import localize

    fig.update_layout(**CHART)
    funnel = any(trace.type == "funnel" for trace in fig.data)
    if not funnel:
        fig.update_xaxes(type="category")  # period labels like 2026-11 are names, not dates
    localize(fig)
    if funnel:  # symmetric: never mirrored
        fig.update_xaxes(autorange=True)
    if i18n.is_rtl():  # above the plot: on the right it would cover the mirrored bars
        fig.update_layout(legend=dict(orientation="h", x=1, xanchor="right", y=1.02,
                                      yanchor="bottom"), margin=dict(t=60))
    st.plotly_chart(fig, config={"displayModeBar": False})
