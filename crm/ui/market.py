"""The market-audit screens: the tabs of the market-audit page, and the market parts of the
competitor and product pages. Numbers come from crm/analytics/market.py; this only draws."""
from __future__ import annotations

from datetime import date

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from crm import calendar, i18n, market, records
from crm.analytics import market as am
from crm.auth import PermissionDenied, User
from crm.customers import CUSTOMERS
from crm.fields import ValidationError
from crm.i18n import N_, gettext as _
from crm.market import PRICE_RECORDS
from crm.ui.charts import localize
from crm.ui.forms import submit_form
from crm.ui.session import get_db
from crm.ui.tables import grid
from crm.ui.text import md_escape

COLORS = {"us": "#2E7D32", "low": "#E45756", "median": "#4C78A8", "high": "#F58518",
          "yes": "#54A24B", "no": "#E45756", "partial": "#EECA3B", "text": "#9ECAE9",
          "empty": "#EEEEEE"}
CHART = {"displayModeBar": False}
PERIODS = {4: N_("Last 4 quarters"), 8: N_("Last 8 quarters"), 12: N_("Last 12 quarters"),
           0: N_("All periods")}


def _layout(fig: go.Figure, height: int = 340, **extra) -> go.Figure:
    extra.setdefault("margin", dict(l=10, r=10, t=40, b=10))
    fig.update_layout(height=height, legend=dict(orientation="h", y=-0.2), **extra)
    return localize(fig)


def _show(fig: go.Figure, key: str, height: int = 340, **extra) -> None:
    st.plotly_chart(_layout(fig, height, **extra), config=CHART, key=key)


def _plain(text) -> str:
    """User text for Plotly, which reads a few HTML tags (links, breaks) in its labels: as
    entities, the text shows as typed and makes no markup."""
    return ("" if text is None else str(text)).replace("&", "&amp;").replace(
        "<", "&lt;").replace(">", "&gt;")


def _period(key: int) -> str:
    return calendar.label(key, "quarter")


def _table(frame: pd.DataFrame, space: int = 860, **options) -> None:
    """A small table in the reading direction; right to left its columns are sized to fit the
    space (pixels), since the grid opens scrolled to the left (its first columns would
    hide)."""
    if i18n.is_rtl() and len(frame.columns):
        width = max(50, space // len(frame.columns))
        options["column_config"] = {c: st.column_config.Column(width=width)
                                    for c in frame.columns}
    grid(frame, hide_index=True, **options)


def _pct(value, digits: int = 1) -> str:
    return "—" if value is None else i18n.percent(value, digits)


def _money(value, currency) -> str:
    """Whole amounts in tables (rials run long); prices under 100 keep their cents."""
    if value is None:
        return "—"
    return i18n.money(value, currency, 2 if abs(float(value)) < 100 else 0)


def competitor_picker(db, user: User, label: str, key: str, where=st) -> str | None:
    """Who a deal was lost to: one of the known competitors, or a new name typed in (it becomes
    a competitor record). Picking keeps typos from making near-duplicate competitors."""
    names = list(dict.fromkeys(market.competitor_choices(db, user).values()))
    return where.selectbox(label, names, index=None, key=key, accept_new_options=True,
                           placeholder=_("Pick one, or type a new name"))


# --- filters ----------------------------------------------------------------------------------

def filters(db, user: User) -> dict:
    """Period, product and region filters at the top of the market-audit page."""
    period_col, product_col, region_col = st.columns([1, 1.4, 1.6])
    quarters = period_col.selectbox(_("Period"), list(PERIODS), index=1, key="mkt:period",
                                    format_func=lambda n: _(PERIODS[n]))
    products = records.choices(db, user, _products())
    product = product_col.selectbox(_("Product"), [None, *products], key="mkt:product",
                                    format_func=lambda i: _("All products") if i is None
                                    else products.get(i, f"#{i}"))
    regions = region_col.multiselect(_("Region"), market.regions(db, user), key="mkt:region",
                                     placeholder=_("All regions"))
    since = am.quarters_back(date.today(), quarters) if quarters else None
    return {"since": since, "product": product, "products": products, "regions": regions}


def _products():
    from crm.products import PRODUCTS

    return PRODUCTS


# --- prices -----------------------------------------------------------------------------------

def prices_tab(db, user: User, f: dict) -> None:
    rows = am.positioning(db, user, f["product"], f["regions"], f["since"])
    gaps = am.current_gaps(rows)
    if not rows:
        st.info(_("No price records match. Record prices under Price records, or import "
                  "them."))
        st.page_link("pages/price_records.py", label=_("Price records"),
                     icon=":material/sell:")
        return
    st.subheader(_("Where our prices stand"))
    st.caption(_("Our list price against the median of the competitors' prices observed in "
                 "the latest quarter with observations; prices in another currency than the "
                 "product's are left out."))
    if gaps:
        fig = go.Figure(go.Bar(
            x=[_plain(g["product"]) for g in gaps], y=[(g["gap_median"] or 0) * 100 for g in gaps],
            marker_color=[COLORS["low"] if (g["gap_median"] or 0) > 0 else COLORS["us"]
                          for g in gaps],
            text=[_pct(g["gap_median"]) for g in gaps], textposition="auto",
            hovertext=[_("{n} prices observed").format(n=i18n.number(g["observed"]))
                       for g in gaps]))
        _show(fig, "mkt:gap", 320, yaxis_title=_("Gap, %"),
              title=_("Current price gap per product"))
        _table(pd.DataFrame([{
            _("Product"): g["product"], _("Quarter"): _period(g["period"]),
            _("Our list price"): _money(g["ours"], g["currency"]),
            _("Lowest"): _money(g["low"], g["currency"]),
            _("Median"): _money(g["median"], g["currency"]),
            _("Highest"): _money(g["high"], g["currency"]),
            _("Gap to the median"): _pct(g["gap_median"]),
            _("Gap to the lowest"): _pct(g["gap_low"]),
            _("Prices observed"): i18n.number(g["observed"])} for g in gaps]))
    products = list(dict.fromkeys((r["product_id"], r["product"]) for r in rows))
    chosen = f["product"] or st.selectbox(
        _("Product for the charts"), [p for p, _n in products], key="mkt:chart_product",
        format_func=dict(products).get)
    series = [r for r in rows if r["product_id"] == chosen]
    if series:
        name, currency = series[0]["product"], series[0]["currency"]
        x = [_period(r["period"]) for r in series]
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=x, y=[r["high"] for r in series], name=_("Highest"),
                                 line=dict(color=COLORS["high"], dash="dot")))
        fig.add_trace(go.Scatter(x=x, y=[r["low"] for r in series], name=_("Lowest"),
                                 line=dict(color=COLORS["low"], dash="dot"), fill="tonexty",
                                 fillcolor="rgba(76,120,168,0.12)"))
        fig.add_trace(go.Scatter(x=x, y=[r["median"] for r in series],
                                 name=_("Competitors' median"),
                                 line=dict(color=COLORS["median"], width=3)))
        fig.add_trace(go.Scatter(x=x, y=[r["ours"] for r in series], name=_("Our price"),
                                 line=dict(color=COLORS["us"], width=3)))
        _show(fig, "mkt:positioning", 360,
              title=_("{product}: our price against the competitors' over time").format(
                  product=_plain(name)), yaxis_title=currency)
        left, right = st.columns(2)
        with left:
            medians = [r for r in am.prices_by_competitor(db, user, chosen, f["regions"],
                                                          f["since"])]
            fig = go.Figure(go.Bar(
                x=[_plain(r["competitor"]) or _("Us") for r in medians],
                y=[float(r["median"]) for r in medians],
                marker_color=[COLORS["us"] if r["competitor_id"] is None else COLORS["median"]
                              for r in medians],
                text=[i18n.money(r["median"], currency, 0) for r in medians],
                textposition="auto"))
            _show(fig, "mkt:by_rival", 320, title=_("Median price by competitor"),
                  yaxis_title=currency)
        with right:
            margins = am.margins(db, user, chosen, f["since"])
            if margins:
                x = [_period(r["period"]) for r in margins]
                fig = go.Figure()
                fig.add_trace(go.Bar(x=x, y=[r["cost"] for r in margins], name=_("Cost price"),
                                     marker_color=COLORS["high"]))
                fig.add_trace(go.Bar(x=x, y=[r["margin"] for r in margins], name=_("Margin"),
                                     marker_color=COLORS["us"],
                                     text=[_pct(r["margin_share"]) for r in margins],
                                     textposition="auto"))
                _show(fig, "mkt:margin", 320, barmode="stack",
                      title=_("Cost and margin per quarter"), yaxis_title=currency)
            else:
                st.caption(_("No cost prices for this product yet: add them on the product's "
                             "page to see its margin per quarter."))
    sources = am.prices_by_source(db, user, f["product"], f["regions"], f["since"])
    source_field = PRICE_RECORDS.spec["source"]
    with st.expander(_("Where the prices come from")):
        _table(pd.DataFrame([{_("Source"): source_field.choice_label(r["source"]),
                            _("Region"): r["region"] or "—",
                            _("Prices observed"): i18n.number(r["observed"])}
                           for r in sources]))
    complaints_beside_margins(db, user, f)


def complaints_beside_margins(db, user: User, f: dict) -> None:
    """Products people complain about, beside what each earns: many complaints at a thin margin
    is where to look first."""
    st.subheader(_("Complaints and margin per product"))
    found = am.complaints_and_margins(db, user, f["since"], f["product"])
    if not found:
        st.caption(_("No complaints about products and no cost prices in this period."))
        return
    placed = [r for r in found if r["margin_share"] is not None]
    if placed:
        fig = go.Figure(go.Scatter(
            x=[r["margin_share"] * 100 for r in placed], y=[r["complaints"] for r in placed],
            mode="markers+text", text=[_plain(r["product"]) for r in placed],
            textposition="top center",
            marker=dict(size=[10 + 3 * min(r["still_open"], 10) for r in placed],
                        color=[COLORS["low"] if r["still_open"] else COLORS["median"]
                               for r in placed]),
            hoverinfo="text",
            hovertext=[_("{product}: margin {margin}, {complaints} complaints, {open} still "
                         "open").format(product=_plain(r["product"]),
                                        margin=_pct(r["margin_share"]),
                                        complaints=i18n.number(r["complaints"]),
                                        open=i18n.number(r["still_open"])) for r in placed]))
        xs = [r["margin_share"] * 100 for r in placed]
        pad = max(5.0, (max(xs) - min(xs)) * 0.15)  # room for the names at the edges
        top = max(r["complaints"] for r in placed)
        fig.update_traces(textfont=dict(size=11))
        _show(fig, "mkt:complaints_margin", 380,
              title=_("Complaints against margin (bigger and red: complaints still open)"),
              xaxis=dict(title=_("Margin at the latest cost price (%)"),
                         range=[min(xs) - pad, max(xs) + pad]),
              yaxis=dict(title=_("Complaints"),
                         range=[-0.08 * top - 1, 1.15 * top + 1]))
    _table(pd.DataFrame([{_("Product"): r["product"],
                          _("Complaints"): i18n.number(r["complaints"]),
                          _("Still open"): i18n.number(r["still_open"]),
                          _("Margin"): _pct(r["margin_share"])} for r in found]))


# --- market share -----------------------------------------------------------------------------

def share_tab(db, user: User, f: dict) -> None:
    shares = am.market_shares(db, user, f["since"])
    if shares:
        periods = list(dict.fromkeys(r["period"] for r in shares))
        names = list(dict.fromkeys((r["competitor_id"], r["name"], r["is_us"]) for r in shares))
        fig = go.Figure()
        for cid, name, is_us in names:
            by_period = {r["period"]: r["share"] for r in shares if r["competitor_id"] == cid}
            fig.add_trace(go.Bar(x=[_period(p) for p in periods],
                                 y=[by_period.get(p) for p in periods], name=_plain(name),
                                 marker_color=COLORS["us"] if is_us else None))
        rest = [am.share_rest([r["share"] for r in shares if r["period"] == p]) for p in periods]
        fig.add_trace(go.Bar(x=[_period(p) for p in periods], y=rest, name=_("Others"),
                             marker_color="#CCCCCC"))
        _show(fig, "mkt:shares", 380, barmode="stack", title=_("Market share by period"),
              yaxis_title=_("Share, %"))
        latest = periods[-1]
        st.caption(_("Latest period: {period}").format(period=_period(latest)))
    else:
        st.info(_("No market shares recorded yet."))
    if user.sees_all:
        with st.expander(_("Record a market share"), icon=":material/add:"):
            choices = market.competitor_choices(db, user, include_us=True)
            if market.us(db) is None:
                st.caption(_("Tip: make a competitor record marked “This is our company” to "
                             "record our own share."))
            saved = submit_form("mkt:share:new", market.SHARE_FIELDS,
                                {"period_start": date.today()}, {"competitor_id": choices},
                                lambda values: market.set_share(db, user, values),
                                submit_label=_("Save share"))
            if saved is not None:
                st.toast(_("Saved"))
                st.rerun()


# --- win / loss -------------------------------------------------------------------------------

def _currencies(db, user: User, f: dict) -> list[str]:
    """The deals' currencies, read once per page run (two tabs pick from them; at the large
    demo the count over every deal took 0.15-0.45 s on PostgreSQL)."""
    if "currencies" not in f:
        f["currencies"] = am.deal_currencies(db, user) or ["USD"]
    return f["currencies"]


def win_loss_tab(db, user: User, f: dict) -> None:
    currencies = _currencies(db, user, f)
    currency = st.selectbox(_("Currency of the amounts"), currencies, key="mkt:wl_currency")
    rows = am.win_loss(db, user, currency, f["since"])
    if not rows:
        st.info(_("No deal names a competitor yet. Name the competitor on a deal (“Competing "
                  "against”) or when marking it lost."))
        return
    left, right = st.columns(2)
    names = [_plain(r["name"]) for r in rows]
    with left:
        fig = go.Figure()
        fig.add_trace(go.Bar(x=names, y=[r["won"] for r in rows], name=_("Won by us"),
                             marker_color=COLORS["us"]))
        fig.add_trace(go.Bar(x=names, y=[r["lost_to_them"] for r in rows],
                             name=_("Lost to them"), marker_color=COLORS["low"]))
        fig.add_trace(go.Bar(x=names, y=[r["lost"] - r["lost_to_them"] for r in rows],
                             name=_("Lost to others"), marker_color="#BBBBBB"))
        _show(fig, "mkt:wl", 340, barmode="stack", title=_("Closed deals where they were named"),
              yaxis_title=_("Deals"))
    with right:
        fig = go.Figure(go.Bar(x=names, y=[r["amount_lost"] for r in rows],
                               marker_color=COLORS["low"],
                               text=[i18n.money(r["amount_lost"], currency, 0) for r in rows],
                               textposition="auto"))
        _show(fig, "mkt:lost_amount", 340, title=_("Amount lost to them"),
              yaxis_title=currency)
    _table(pd.DataFrame([{
        _("Competitor"): r["name"], _("Won by us"): i18n.number(r["won"]),
        _("Lost"): i18n.number(r["lost"]), _("Lost to them"): i18n.number(r["lost_to_them"]),
        _("Win rate"): _pct(r["win_rate"], 0), _("Still open"): i18n.number(r["open"]),
        _("Amount lost to them"): i18n.money(r["amount_lost"], currency)} for r in rows]))
    st.caption(_("Win rate: deals won over deals closed, among the deals where the competitor "
                 "was named."))


# --- strengths and weaknesses -----------------------------------------------------------------

THREAT_COLORS = {"high": "#E45756", "medium": "#F58518", "low": "#54A24B", None: "#9D9D9D"}


def profiles_tab(db, user: User) -> None:
    profiles = am.profiles(db, user)
    if not profiles:
        st.info(_("No competitors yet."))
        st.page_link("pages/competitors.py", label=_("Competitors"), icon=":material/swords:")
        return
    threat = market.COMPETITORS.spec["threat_level"]
    names = [_plain(p["name"]) for p in profiles]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=names, y=[len(p["strength_list"]) for p in profiles],
                         name=_("Strengths"), marker_color=COLORS["us"],
                         hovertext=["<br>".join(map(_plain, p["strength_list"])) for p in profiles]))
    fig.add_trace(go.Bar(x=names, y=[-len(p["weakness_list"]) for p in profiles],
                         name=_("Weaknesses"), marker_color=COLORS["low"],
                         hovertext=["<br>".join(map(_plain, p["weakness_list"])) for p in profiles]))
    _show(fig, "mkt:sw", 320, barmode="relative",
          title=_("Strengths (up) and weaknesses (down) per company"),
          yaxis_title=_("Count"))
    ours = next((p for p in profiles if p["is_us"]), None)
    others = [p for p in profiles if not p["is_us"]]
    if not others:
        return
    pick = st.selectbox(_("Compare us with"), [p["id"] for p in others], key="mkt:compare",
                        format_func={p["id"]: p["name"] for p in others}.get)
    theirs = next(p for p in others if p["id"] == pick)
    left, right = st.columns(2)
    for col, p, title in ((left, ours, _("Us")), (right, theirs, theirs["name"])):
        with col, st.container(border=True):
            st.markdown(f"**{md_escape(title)}**")
            if p is None:
                st.caption(_("No record describes our company yet: mark one competitor "
                             "record “This is our company”."))
                continue
            bits = []
            if p["threat_level"] and not p["is_us"]:
                bits.append(_("Threat: {level}").format(level=threat.choice_label(
                    p["threat_level"])))
            if p["share"] is not None:
                bits.append(_("Latest share: {share}").format(
                    share=i18n.percent(p["share"] / 100, 1)))
            if bits:
                st.caption(" · ".join(bits))
            st.markdown(_("**Strengths**"))
            st.text("\n".join(f"+ {s}" for s in p["strength_list"]) or "—")
            st.markdown(_("**Weaknesses**"))
            st.text("\n".join(f"− {s}" for s in p["weakness_list"]) or "—")
            if p["strategy"]:
                st.markdown(_("**Strategy**"))
                st.text(p["strategy"])
    _table(pd.DataFrame([{_("Company"): p["name"],
                        _("Threat level"): threat.choice_label(p["threat_level"]) or "—",
                        _("Latest share"): "—" if p["share"] is None
                        else i18n.percent(p["share"] / 100, 1),
                        _("Strengths"): "; ".join(p["strength_list"]),
                        _("Weaknesses"): "; ".join(p["weakness_list"])} for p in profiles]))


# --- feature comparison -----------------------------------------------------------------------

KIND_VALUE = {"no": 0.0, "partial": 0.5, "yes": 1.0, "text": 0.75, "empty": None}


def features_tab(db, user: User, f: dict) -> None:
    products = f["products"]
    if not products:
        st.info(_("Add products first: the comparison sets each of ours against the "
                  "competitors' equivalents."))
        return
    compared = market.compared_products(db, user)
    ids = list(products)
    best = max(range(len(ids)), key=lambda i: (compared.get(ids[i], 0), -i))
    product = f["product"] or st.selectbox(_("Product"), ids, index=best,
                                           key="mkt:feature_product", format_func=products.get)
    st.caption(_("Our product against the competitors' products its price records compare it "
                 "with."))
    features, cols, cells = market.feature_matrix(db, user, product)
    if features and cols:
        labels = [c["label"] for c in cols]
        z, text = [], []
        for feat in features:
            values = [cells.get((feat, c["key"])) for c in cols]
            z.append([KIND_VALUE[market.answer_kind(v)] for v in values])
            text.append([_shown_answer(v) for v in values])
        fig = go.Figure(go.Heatmap(
            z=z, x=[_plain(v) for v in labels], y=[_plain(v) for v in features],
            text=[[_plain(v) for v in row] for row in text], texttemplate="%{text}", showscale=False,
            zmin=0, zmax=1, xgap=2, ygap=2, hoverongaps=False,
            colorscale=[[0, COLORS["no"]], [0.5, COLORS["partial"]], [0.75, COLORS["text"]],
                        [1, COLORS["yes"]]]))
        fig.update_yaxes(autorange="reversed")
        fig.update_xaxes(side="top", tickangle=0 if len(cols) <= 4 else -30)
        _show(fig, "mkt:features", 160 + 44 * len(features), margin=dict(l=10, r=10, t=120,
                                                                          b=10))
        st.caption(_("Green: yes · amber: partial · red: no · blue: a short note"))
    else:
        st.info(_("No features compared yet."))
    if not user.sees_all:
        return
    with st.expander(_("Edit the comparison"), icon=":material/edit:", expanded=not features):
        if not cols:
            st.caption(_("Add products (or price records of competitors' products) first."))
            return
        frame = pd.DataFrame([{"feature": feat, **{c["key"]: cells.get((feat, c["key"]), "")
                                                   for c in cols}} for feat in features],
                             columns=["feature", *[c["key"] for c in cols]])
        config = {"feature": st.column_config.TextColumn(_("Feature"), required=True,
                                                         max_chars=200)}
        for c in cols:
            config[c["key"]] = st.column_config.TextColumn(
                c["label"], max_chars=200, help=_("yes, no, partial or a short note"))
        edited = st.data_editor(frame, num_rows="dynamic", hide_index=True,
                                column_config=config, key="mkt:feature_editor")
        if st.button(_("Save the comparison"), type="primary", key="mkt:feature_save"):
            names, new_cells = matrix_from_frame(edited, [c["key"] for c in cols])
            try:
                changed = market.save_feature_matrix(db, user, names, new_cells)
            except (ValidationError, PermissionDenied) as exc:
                st.error(md_escape(exc))
                return
            st.session_state.pop("mkt:feature_editor", None)
            st.toast(i18n.ngettext("{n} change saved", "{n} changes saved", changed).format(
                n=i18n.number(changed)))
            st.rerun()


def matrix_from_frame(frame: pd.DataFrame, keys: list[str]) -> tuple[list[str], dict]:
    """The data editor's rows as (feature names in order, {(feature, column key): value});
    rows without a feature name are left out, empty cells are None."""
    names, cells = [], {}
    for _i, row in frame.iterrows():
        feature = row.get("feature")
        if not isinstance(feature, str) or not feature.strip():
            continue
        names.append(feature.strip())
        for key in keys:
            value = row.get(key)
            cells[(feature.strip(), key)] = value if isinstance(value, str) and value.strip() \
                else None
    return names, cells


def _shown_answer(value) -> str:
    kind = market.answer_kind(value)
    if kind in market.FEATURE_LABELS:
        return _(market.FEATURE_LABELS[kind])
    return "" if value is None else str(value)[:24]


# --- customer audit ---------------------------------------------------------------------------

def customers_tab(db, user: User, f: dict) -> None:
    currencies = _currencies(db, user, f)
    c1, c2, c3 = st.columns(3)
    currency = c1.selectbox(_("Currency of the revenue"), currencies, key="mkt:abc_currency")
    a = c2.number_input(_("A: customers making the top … % of revenue"), min_value=1,
                        max_value=98, value=80, step=5, key="mkt:abc_a")
    b = c3.number_input(_("B: up to … % of revenue"), min_value=2, max_value=99, value=95,
                        step=1, key="mkt:abc_b")
    if b <= a:
        st.error(_("The B share must be above the A share."))
        return
    # the classes, purchasing power and places from one statement (one sum of won revenue)
    abc, power, places = am.customer_audit(db, user, currency, a / 100, b / 100,
                                           since=f["since"])
    if abc["classes"]:
        left, right = st.columns([1, 2])
        with left:
            fig = go.Figure(go.Pie(
                labels=[r["class"] for r in abc["classes"]],
                values=[r["revenue"] for r in abc["classes"]], hole=0.45, sort=False,
                marker=dict(colors=[COLORS["us"], COLORS["high"], "#BBBBBB"]),
                text=[_("{count} customers").format(count=i18n.number(r["customers"]))
                      for r in abc["classes"]], textinfo="label+percent"))
            _show(fig, "mkt:abc", 320, title=_("Won revenue by ABC class"))
        with right:
            _table(pd.DataFrame([{
                _("Class"): r["class"], _("Customers"): i18n.number(r["customers"]),
                _("Revenue"): i18n.money(r["revenue"], currency, 0),
                _("Share of revenue"): _pct(r["share"]),
                _("Credit limits"): _money(r["credit_limit"], currency),
                _("High purchasing power"): i18n.number(r["strong_buyers"])}
                for r in abc["classes"]]), space=540)
            power_field = CUSTOMERS.spec["purchasing_power"]
            _table(pd.DataFrame([{
                _("Customer"): r["name"], _("Class"): r["class"],
                _("Revenue"): i18n.money(r["revenue"], currency, 0),
                _("Purchasing power"): power_field.choice_label(r["purchasing_power"]) or "—",
                _("Credit limit"): _money(r["credit_limit"], currency),
                _("City"): r["city"] or "—", _("Country"): r["country"] or "—"}
                for r in abc["top"][:15]]), space=540, height=260)
    else:
        st.info(_("No won deals in this currency and period yet."))
    left, right = st.columns(2)
    with left:
        from crm.customers import PURCHASING_POWER

        order = {k: i for i, k in enumerate(PURCHASING_POWER)}
        power = sorted(power, key=lambda r: order.get(r["purchasing_power"], -1))
        field = CUSTOMERS.spec["purchasing_power"]
        x = [field.choice_label(r["purchasing_power"]) or _("Not set") for r in power]
        fig = go.Figure(go.Bar(
            x=x, y=[r["customers"] for r in power], marker_color=COLORS["median"],
            text=[_("Credit limits: {amount}").format(amount=i18n.compact(r["credit_limit"]))
                  for r in power], textposition="auto"))
        _show(fig, "mkt:power", 340, title=_("Purchasing power and credit limits"),
              yaxis_title=_("Customers"))
    with right:
        returns = am.returns_summary(db, user, currency, f["since"])
        if returns:
            kind_field, periods = market.RETURNS.spec["kind"], []
            periods = list(dict.fromkeys(r["period"] for r in returns))
            fig = go.Figure()
            for kind in market.RETURN_KINDS:
                per = {}
                for r in returns:
                    if r["kind"] == kind:
                        per[r["period"]] = per.get(r["period"], 0) + r["n"]
                fig.add_trace(go.Bar(x=[_period(p) for p in periods],
                                     y=[per.get(p, 0) for p in periods],
                                     name=kind_field.choice_label(kind),
                                     marker_color=COLORS["low"] if kind == "cancellation"
                                     else COLORS["high"]))
            _show(fig, "mkt:returns", 340, barmode="group",
                  title=_("Returns and contract cancellations"), yaxis_title=_("Count"))
            reasons: dict = {}
            for r in returns:
                reasons[r["reason"]] = reasons.get(r["reason"], 0) + float(r["amount"])
            reason_field = market.RETURNS.spec["reason"]
            st.caption(_("Amount by reason: {list}").format(list=", ".join(
                f"{md_escape(reason_field.choice_label(k) or '—')} "
                f"{i18n.money(v, currency, 0)}" for k, v in
                sorted(reasons.items(), key=lambda kv: -kv[1]))))
        else:
            st.info(_("No returns or cancellations recorded."))
        links = st.columns(2)
        links[0].page_link("pages/returns.py", label=_("Returns and cancellations"),
                           icon=":material/assignment_return:")
        if user.at_least("rep"):
            links[1].page_link("pages/return.py", label=_("Record a return or cancellation"),
                               icon=":material/add:", query_params={"id": "new"})
    if places:
        countries = sorted({r["country"] for r in places})
        ids = [f"country:{c}" for c in countries] + [f"city:{r['country']}:{r['city']}"
                                                     for r in places]
        labels = countries + [r["city"] for r in places]
        parents = [""] * len(countries) + [f"country:{r['country']}" for r in places]
        values = [sum(r["customers"] for r in places if r["country"] == c)
                  for c in countries] + [r["customers"] for r in places]
        revenue = [sum(float(r["revenue"]) for r in places if r["country"] == c)
                   for c in countries] + [float(r["revenue"]) for r in places]
        fig = go.Figure(go.Treemap(
            ids=ids, labels=[_plain(v) for v in labels], parents=parents, values=values, branchvalues="total",
            marker=dict(colors=revenue, colorscale="Greens", showscale=False),
            customdata=[i18n.money(v, currency, 0) for v in revenue],
            hovertemplate="%{label}<br>%{value}<br>%{customdata}<extra></extra>"))
        _show(fig, "mkt:geo", 420,
              title=_("Customers by country and city (area) and won revenue (colour)"))
        by_country = {}
        for r in places:
            c = by_country.setdefault(r["country"], [0, 0.0])
            c[0] += r["customers"]
            c[1] += float(r["revenue"])
        _table(pd.DataFrame([{_("Country"): k, _("Customers"): i18n.number(v[0]),
                            _("Revenue"): i18n.money(v[1], currency, 0)}
                           for k, v in sorted(by_country.items(), key=lambda kv: -kv[1][1])]), height=220)


# --- pricing aids -----------------------------------------------------------------------------

BREAK_EVEN_INPUTS = (("fixed", N_("Fixed costs"), 50000.0), ("variable", N_("Variable cost per unit"), 30.0),
                     ("price", N_("Price per unit"), 50.0))
PATH_INPUTS = (
    ("periods", N_("Periods"), 8.0), ("reference_price", N_("Market reference price"), 100.0),
    ("base_units", N_("Units per period at the reference price"), 1000.0),
    ("elasticity", N_("Price elasticity of demand"), 1.5),
    ("growth", N_("Market growth per period, %"), 5.0),
    ("unit_cost", N_("Cost per unit"), 40.0),
    ("skim_start", N_("Skimming: first price"), 180.0),
    ("skim_end", N_("Skimming: last price"), 110.0),
    ("penetration_start", N_("Penetration: first price"), 70.0),
    ("penetration_end", N_("Penetration: last price"), 95.0))


def _scenario_inputs(db, user: User, kind: str, specs, prefix: str) -> dict:
    """Number inputs for the specs, filled from a saved scenario when one is loaded."""
    saved = market.scenarios(db, user, kind)
    if saved:
        load_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
        pick = load_col.selectbox(_("Saved scenarios"), [s["id"] for s in saved],
                                  key=f"{prefix}:pick", format_func={
                                      s["id"]: _("{name} (by {owner})").format(
                                          name=s["name"], owner=s["owner_name"] or "—")
                                      for s in saved}.get)
        if button_col.button(_("Load"), key=f"{prefix}:load", width="stretch"):
            chosen = next(s for s in saved if s["id"] == pick)
            for name, _label, _default in specs:
                if name in chosen["inputs"]:
                    st.session_state[f"{prefix}:{name}"] = float(chosen["inputs"][name])
            st.session_state[f"{prefix}:name"] = chosen["name"]
            st.rerun()
    values = {}
    cols = st.columns(min(len(specs), 5))
    for i, (name, label, default) in enumerate(specs):
        values[name] = cols[i % len(cols)].number_input(
            _(label), value=default, min_value=0.0, key=f"{prefix}:{name}",
            step=1.0 if name in ("periods",) else None)
    return values


def _save_scenario(db, user: User, kind: str, prefix: str, values: dict) -> None:
    name_col, save_col = st.columns([3, 1], vertical_alignment="bottom")
    name = name_col.text_input(_("Scenario name"), key=f"{prefix}:name")
    if save_col.button(_("Save scenario"), key=f"{prefix}:save", width="stretch",
                       icon=":material/save:"):
        try:
            market.save_scenario(db, user, kind, name, values)
        except (ValidationError, PermissionDenied) as exc:
            st.error(md_escape(exc))
            return
        st.toast(_("Scenario saved"))


def pricing_tab(db, user: User) -> None:
    st.subheader(_("Break-even"))
    values = _scenario_inputs(db, user, "break_even", BREAK_EVEN_INPUTS, "be")
    result = am.break_even(values["fixed"], values["variable"], values["price"])
    if result.reachable:
        a, b, c = st.columns(3)
        a.metric(_("Break-even units"), i18n.number(result.units, 1))
        b.metric(_("Break-even revenue"), i18n.number(result.revenue, 0))
        c.metric(_("Contribution per unit"), i18n.number(result.contribution, 2))
        lines = am.break_even_lines(values["fixed"], values["variable"], values["price"],
                                    max(1.0, result.units * 2))
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=[p["units"] for p in lines], y=[p["revenue"] for p in lines],
                                 name=_("Revenue"), line=dict(color=COLORS["us"], width=3)))
        fig.add_trace(go.Scatter(x=[p["units"] for p in lines], y=[p["cost"] for p in lines],
                                 name=_("Total cost"), line=dict(color=COLORS["low"], width=3)))
        fig.add_trace(go.Scatter(x=[result.units], y=[result.revenue], mode="markers",
                                 name=_("Break-even"),
                                 marker=dict(size=12, color=COLORS["median"])))
        _show(fig, "mkt:breakeven", 340, xaxis_title=_("Units"), yaxis_title=_("Amount"))
    else:
        st.warning(_("The price does not cover the variable cost: every unit sold loses money, "
                     "so there is no break-even point."))
    if user.at_least("rep"):
        _save_scenario(db, user, "break_even", "be", values)

    st.divider()
    st.subheader(_("Skimming or penetration pricing"))
    st.caption(_("Units per period = units at the reference price × (1 + growth) ^ period × "
                 "(reference price ÷ price) ^ elasticity; each price moves in a straight line "
                 "from its first to its last value."))
    values = _scenario_inputs(db, user, "pricing_path", PATH_INPUTS, "pp")
    inputs = am.PricingInputs(**{**values, "periods": max(1, int(values["periods"])),
                                 "growth": values["growth"] / 100})
    skim, pen = am.pricing_path(inputs, "skimming"), am.pricing_path(inputs, "penetration")
    names = {"skimming": _("Skimming"), "penetration": _("Penetration")}
    left, right = st.columns(2)
    with left:
        fig = go.Figure()
        for rows_, key, color in ((skim, "skimming", COLORS["high"]),
                                  (pen, "penetration", COLORS["median"])):
            fig.add_trace(go.Scatter(x=[r["period"] for r in rows_], y=[r["price"] for r in rows_],
                                     name=names[key], line=dict(color=color, width=3)))
        _show(fig, "mkt:path_price", 320, title=_("Price path"), xaxis_title=_("Period"),
              yaxis_title=_("Price"))
    with right:
        fig = go.Figure()
        for rows_, key, color in ((skim, "skimming", COLORS["high"]),
                                  (pen, "penetration", COLORS["median"])):
            fig.add_trace(go.Bar(x=[r["period"] for r in rows_], y=[r["units"] for r in rows_],
                                 name=names[key], marker_color=color))
        _show(fig, "mkt:path_units", 320, barmode="group", title=_("Units sold"),
              xaxis_title=_("Period"), yaxis_title=_("Units"))
    _table(pd.DataFrame([{_("Strategy"): names[key], _("Units"): i18n.number(rows_[-1]["units_total"]),
                        _("Revenue"): i18n.number(rows_[-1]["revenue_total"]),
                        _("Margin"): i18n.number(rows_[-1]["margin_total"])}
                       for rows_, key in ((skim, "skimming"), (pen, "penetration"))]))
    if user.at_least("rep"):
        _save_scenario(db, user, "pricing_path", "pp", values)


# --- competitor and product pages -------------------------------------------------------------

def competitor_shares(user: User, competitor: dict) -> None:
    db = get_db()
    shares = market.shares_of(db, user, competitor["id"])
    if shares:
        rows_ = [(_period(s["period"]), float(s["share"]), s["source"])
                 for s in reversed(shares)]
        fig = go.Figure(go.Scatter(x=[r[0] for r in rows_], y=[r[1] for r in rows_],
                                   mode="lines+markers", line=dict(color=COLORS["median"],
                                                                   width=3)))
        _show(fig, f"cmp:shares:{competitor['id']}", 280, yaxis_title=_("Share, %"))
        _table(pd.DataFrame([{_("Period"): r[0], _("Market share %"): i18n.number(r[1], 1),
                            _("Source"): r[2] or "—"} for r in reversed(rows_)]))
    else:
        st.caption(_("No market shares recorded yet."))
    if user.sees_all and competitor["deleted_at"] is None:
        saved = submit_form(f"cmp:share:{competitor['id']}", market.SHARE_FIELDS,
                            {"competitor_id": competitor["id"], "period_start": date.today()},
                            {}, lambda values: market.set_share(db, user, values),
                            submit_label=_("Save share"), hidden=("competitor_id",))
        if saved is not None:
            st.toast(_("Saved"))
            st.rerun()


def competitor_deals(user: User, competitor: dict) -> None:
    found = market.lost_deals(get_db(), user, competitor["id"])
    if not found:
        st.caption(_("No deals name this competitor."))
        return
    for d in found:
        st.page_link("pages/deal.py", query_params={"id": d["id"]}, icon=":material/handshake:",
                     label=md_escape(f"{d['title']} · {d['stage']} · "
                                     + i18n.money(d["amount"] or 0, d["currency"])))


def competitor_prices(user: User, competitor: dict) -> None:
    page = records.list_records(get_db(), user, PRICE_RECORDS, records.Query(
        fixed={"competitor_id": competitor["id"]}, page_size=50, sort="observed_on"))
    if not page.rows:
        st.caption(_("No prices of this competitor recorded yet."))
    else:
        source = PRICE_RECORDS.spec["source"]
        _table(pd.DataFrame([{_("Observed on"): i18n.format_date(r["observed_on"]),
                            _("Our product"): r["product_id__label"] or "—",
                            _("Competitor's product"): r["competitor_product"] or "—",
                            _("Price"): i18n.money(r["price"], r["currency"]),
                            _("Source"): source.choice_label(r["source"]),
                            _("Region"): r["region"] or "—"} for r in page.rows]))
    if user.at_least("rep"):
        st.page_link("pages/price_record.py", query_params={"id": "new"},
                     label=_("Record a price"), icon=":material/add:")


def product_costs(user: User, product: dict) -> None:
    db = get_db()
    found = am.margins(db, user, product["id"])
    if found:
        x = [_period(r["period"]) for r in found]
        fig = go.Figure()
        fig.add_trace(go.Bar(x=x, y=[r["cost"] for r in found], name=_("Cost price"),
                             marker_color=COLORS["high"]))
        fig.add_trace(go.Bar(x=x, y=[r["margin"] for r in found], name=_("Margin"),
                             marker_color=COLORS["us"],
                             text=[_pct(r["margin_share"]) for r in found],
                             textposition="auto"))
        _show(fig, f"prd:margin:{product['id']}", 300, barmode="stack",
              yaxis_title=product["currency"])
        _table(pd.DataFrame([{_("Quarter"): _period(r["period"]),
                            _("Cost price"): _money(r["cost"], r["currency"]),
                            _("List price"): _money(r["price"], r["currency"]),
                            _("Margin"): _money(r["margin"], r["currency"]),
                            _("Margin %"): _pct(r["margin_share"])}
                           for r in reversed(found)]))
    else:
        st.caption(_("No cost prices yet."))
    if user.sees_all and product["deleted_at"] is None:
        saved = submit_form(f"prd:cost:{product['id']}", market.COST_FIELDS,
                            {"product_id": product["id"], "period_start": date.today(),
                             "currency": product["currency"]}, {},
                            lambda values: market.set_cost(db, user, values),
                            submit_label=_("Save cost price"), hidden=("product_id",))
        if saved is not None:
            st.toast(_("Saved"))
            st.rerun()
