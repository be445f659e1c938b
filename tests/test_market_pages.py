"""AppTest: the market-audit page draws its charts from the records, and the market forms
(competitor, price record, market share, cost price, return, pricing scenarios) save through
their commands."""
import base64
import json
from datetime import date

import numpy as np
import pytest

from crm import market
from crm.market import COMPETITORS
from tests import test_market
from tests.test_pages import page

market_data = test_market.market_data  # the fixture of the computations' tests


def charts(at) -> dict:
    """{title: figure} of the Plotly charts of a run (AppTest sees them as UnknownElement)."""
    found = {}
    for el in at.get("plotly_chart"):
        fig = json.loads(el.proto.spec)
        title = (fig["layout"].get("title") or {}).get("text") or el.proto.id
        found[title] = fig
    return found


def values(series) -> list:
    """A trace's numbers, decoded when Plotly sent them base64-encoded."""
    if isinstance(series, dict) and "bdata" in series:
        return np.frombuffer(base64.b64decode(series["bdata"]),
                             dtype=np.dtype(series["dtype"])).tolist()
    return list(series)


def test_the_market_page_draws_prices_shares_and_profiles(app_env, market_data):
    at = page("pages/market.py", user="vic")  # a viewer reads the dashboard
    assert not at.exception, at.exception
    assert [t.label for t in at.tabs] == ["Prices", "Market share", "Win and loss",
                                          "Strengths and weaknesses", "Features",
                                          "Customer audit", "Pricing aids"]
    at.selectbox(key="mkt:period").set_value(0).run()  # all periods
    drawn = charts(at)
    gap = drawn["Current price gap per product"]["data"][0]
    assert gap["x"] == ["GTX", "Mini"]
    # GTX: list price 100 against Q2's median 115 -> -13.04 %; Mini: 20 against 25 -> -20 %
    assert values(gap["y"]) == pytest.approx([-1500 / 115, -20.0])
    lines = drawn["GTX: our price against the competitors' over time"]["data"]
    by_name = {t["name"]: values(t["y"]) for t in lines}
    assert by_name["Competitors' median"] == [110.0, 115.0]
    assert by_name["Our price"] == [95.0, 100.0]  # seen at 95 in Q1; the list price in Q2
    shares = drawn["Market share by period"]["data"]
    assert [t["name"] for t in shares] == ["Us", "Red", "Blue", "Others"]
    assert values(shares[-1]["y"]) == [35.0, 33.0]  # 100 - (20 + 35 + 10), 100 - (22 + 33 + 12)
    margin = drawn["Cost and margin per quarter"]["data"]
    assert values(margin[1]["y"]) == [40.0, 25.0]
    strengths = drawn["Strengths (up) and weaknesses (down) per company"]["data"]
    assert strengths[0]["x"][0] == "Us" and values(strengths[0]["y"])[0] == 2
    # GTX has no complaints yet: it sits at its latest margin, 25 %, with none
    spread = drawn["Complaints against margin (bigger and red: complaints still open)"]["data"]
    assert spread[0]["text"] == ["GTX"] and values(spread[0]["x"]) == pytest.approx([25.0])
    assert values(spread[0]["y"]) == [0]
    # a region narrows the prices: South holds one GTX price, 200, in Q1
    at.multiselect(key="mkt:region").select("South").run()
    gap = charts(at)["Current price gap per product"]["data"][0]
    assert gap["x"] == ["GTX"] and values(gap["y"]) == pytest.approx([-50.0])


def test_break_even_and_scenarios_from_the_page(app_env, team):
    at = page("pages/market.py", user="reza")
    at.number_input(key="be:fixed").set_value(12000.0)
    at.number_input(key="be:variable").set_value(30.0)
    at.number_input(key="be:price").set_value(50.0).run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Break-even units"] == "600.0" and metrics["Break-even revenue"] == "30,000"
    at.text_input(key="be:name").input("Launch")
    at.button(key="be:save").click().run()
    assert not at.exception
    saved = market.scenarios(app_env, team["reza"], "break_even")
    assert [(s["name"], s["inputs"]["fixed"]) for s in saved] == [("Launch", 12000.0)]
    # another user loads it into the calculator
    other = page("pages/market.py", user="maria")
    other.button(key="be:load").click().run()
    assert other.number_input(key="be:fixed").value == 12000.0
    # a price under the variable cost has no break-even
    other.number_input(key="be:price").set_value(20.0).run()
    assert any("no break-even" in w.value for w in other.warning)


def test_win_loss_and_customer_audit_tabs(app_env, team, market_data):
    from crm import deals, pipelines
    from crm.customers import CUSTOMERS

    maria = team["maria"]
    stages = {s["kind"]: s["id"] for s in
              pipelines.stages_of(app_env, pipelines.default_pipeline_id(app_env))}
    shop = CUSTOMERS.create(app_env, maria, {"name": "Shop", "country": "Iran",
                                             "city": "Tehran"})
    deals.create_deal(app_env, maria, {"title": "w", "stage_id": stages["won"],
                                       "amount": "900", "customer_id": shop,
                                       "competitor_id": market_data["red"]})
    deals.create_deal(app_env, maria, {"title": "l", "stage_id": stages["lost"],
                                       "amount": "300", "lost_reason": "competitor",
                                       "lost_to_competitor": "Red"})
    market.RETURNS.create(app_env, maria, {"customer_id": shop, "kind": "return",
                                           "occurred_on": date.today(), "amount": "50",
                                           "reason": "defective"})
    at = page("pages/market.py", user="maria")
    assert not at.exception
    drawn = charts(at)
    won = drawn["Closed deals where they were named"]["data"]
    assert won[0]["x"] == ["Red"] and values(won[0]["y"]) == [1]
    assert values(drawn["Amount lost to them"]["data"][0]["y"]) == [300.0]
    assert drawn["Won revenue by ABC class"]["data"][0]["labels"] == ["A"]
    assert "Returns and contract cancellations" in drawn
    geo = drawn["Customers by country and city (area) and won revenue (colour)"]["data"][0]
    assert "Tehran" in geo["labels"]
    assert "Break-even" not in drawn  # the break-even chart has no title; the others do


def test_competitor_and_price_record_forms(app_env, team):
    from crm.products import PRODUCTS

    gtx = PRODUCTS.create(app_env, team["maria"], {"name": "GTX", "unit_price": "100",
                                                   "currency": "USD"})
    at = page("pages/competitor.py", user="reza", id="new")
    at.text_input(key="competitors:new:name").input("Rival Inc")
    at.selectbox(key="competitors:new:threat_level").set_value("high")
    at.text_area(key="competitors:new:key_people").input("Jane Doe — CEO")
    at.button(key="FormSubmitter:competitors:new-Create competitor").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    rival = app_env.one("SELECT id, owner_id, threat_level FROM competitors")
    assert (rival["owner_id"], rival["threat_level"]) == (team["reza"].id, "high")
    # a rep records a price seen at a customer; without a product it is refused by the field
    at = page("pages/price_record.py", user="reza", id="new")
    at.number_input(key="price_records:new:price").set_value(90.0)
    at.button(key="FormSubmitter:price_records:new-Create price record").click().run()
    assert any("Name our product" in str(e.value) for e in at.error)
    at.selectbox(key="price_records:new:product_id").set_value(gtx)
    at.selectbox(key="price_records:new:competitor_id").set_value(rival["id"])
    at.text_input(key="price_records:new:competitor_product").input("R-90")
    at.selectbox(key="price_records:new:source").set_value("customer_report")
    at.button(key="FormSubmitter:price_records:new-Create price record").click().run()
    assert not at.error, [e.value for e in at.error]
    assert app_env.one("SELECT product_id, competitor_id, price, source, owner_id"
                       " FROM price_records") == {
        "product_id": gtx, "competitor_id": rival["id"], "price": 90, "source":
        "customer_report", "owner_id": team["reza"].id}
    listed = page("pages/price_records.py", user="sam")  # shared: another rep reads it
    assert "R-90" in listed.dataframe[0].value.to_string()
    # the competitor page: reps see no share form; a manager records a share
    record = page("pages/competitor.py", user="reza", id=str(rival["id"]))
    assert not record.exception
    assert f"cmp:share:{rival['id']}:share" not in [n.key for n in record.number_input]
    record = page("pages/competitor.py", user="maria", id=str(rival["id"]))
    record.number_input(key=f"cmp:share:{rival['id']}:share").set_value(31.5)
    record.button(key=f"FormSubmitter:cmp:share:{rival['id']}-Save share").click().run()
    assert not record.exception and not record.error, [e.value for e in record.error]
    assert app_env.scalar("SELECT share FROM competitor_shares") == pytest.approx(31.5)


def test_cost_price_form_on_the_product_page_and_return_form(app_env, team):
    from crm.customers import CUSTOMERS
    from crm.products import PRODUCTS

    gtx = PRODUCTS.create(app_env, team["maria"], {"name": "GTX", "unit_price": "100",
                                                   "currency": "USD"})
    at = page("pages/product.py", user="maria", id=str(gtx))
    at.number_input(key=f"prd:cost:{gtx}:unit_cost").set_value(62.5)
    at.button(key=f"FormSubmitter:prd:cost:{gtx}-Save cost price").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    today = date.today()
    assert app_env.one("SELECT period_start, unit_cost, currency FROM product_costs") == {
        "period_start": date(today.year, (today.month - 1) // 3 * 3 + 1, 1),
        "unit_cost": 62.5, "currency": "USD"}
    assert "37.5%" in " ".join(str(d.value.to_string()) for d in at.dataframe)  # the margin
    shop = CUSTOMERS.create(app_env, team["reza"], {"name": "Shop"})
    at = page("pages/return.py", user="reza", id="new", customer_id=str(shop))
    at.selectbox(key="customer_returns:new:kind").set_value("cancellation")
    at.number_input(key="customer_returns:new:amount").set_value(250.0)
    at.selectbox(key="customer_returns:new:reason").set_value("service")
    at.button(key="FormSubmitter:customer_returns:new-Create return or cancellation").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert app_env.one("SELECT customer_id, kind, amount, reason FROM customer_returns") == {
        "customer_id": shop, "kind": "cancellation", "amount": 250, "reason": "service"}


def test_deal_page_picks_the_competition(app_env, team):
    from crm import deals, pipelines

    rival = COMPETITORS.create(app_env, team["maria"], {"name": "Rival"})
    stage = pipelines.stages_of(app_env, pipelines.default_pipeline_id(app_env))[0]["id"]
    deal = deals.create_deal(app_env, team["maria"], {"title": "D", "stage_id": stage})
    at = page("pages/deal.py", user="maria", id=str(deal))
    box = at.selectbox(key=f"deals:{deal}:v1:competitor_id")
    assert box.options == ["Rival"]
    box.set_value(rival)
    at.button(key=f"FormSubmitter:deals:{deal}:v1-Save changes").click().run()
    assert not at.error, [e.value for e in at.error]
    assert app_env.scalar("SELECT competitor_id FROM deals WHERE id = $i", {"i": deal}) == rival


def test_hostile_names_are_text_in_the_charts(app_env, team):
    from crm.products import PRODUCTS

    maria = team["maria"]
    gtx = PRODUCTS.create(app_env, maria, {"name": "<a href='https://evil.example'>GTX</a>",
                                           "unit_price": "100", "currency": "USD"})
    rival = COMPETITORS.create(app_env, maria, {"name": "<b>Rival</b>",
                                                "strengths": "<img src=x onerror=alert(1)>"})
    market.PRICE_RECORDS.create(app_env, maria, {"product_id": gtx, "competitor_id": rival,
                                                 "competitor_product": "<i>R</i>",
                                                 "price": "90", "observed_on": date.today()})
    at = page("pages/market.py", user="maria")
    assert not at.exception
    drawn = charts(at)
    gap = drawn["Current price gap per product"]["data"][0]
    assert gap["x"] == ["&lt;a href='https://evil.example'&gt;GTX&lt;/a&gt;"]
    strengths = drawn["Strengths (up) and weaknesses (down) per company"]["data"][0]
    assert strengths["x"] == ["&lt;b&gt;Rival&lt;/b&gt;"]
    assert strengths["hovertext"] == ["&lt;img src=x onerror=alert(1)&gt;"]


def test_the_edited_comparison_becomes_cells():
    import pandas as pd

    from crm.ui.market import matrix_from_frame

    frame = pd.DataFrame([{"feature": " API ", "p1": "yes", "c2:R": None},
                          {"feature": None, "p1": "no", "c2:R": "no"},  # a new empty row
                          {"feature": "Offline", "p1": " ", "c2:R": "partial"}])
    assert matrix_from_frame(frame, ["p1", "c2:R"]) == (
        ["API", "Offline"], {("API", "p1"): "yes", ("API", "c2:R"): None,
                             ("Offline", "p1"): None, ("Offline", "c2:R"): "partial"})
