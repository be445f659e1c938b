"""AppTest: the home dashboard and the forecast page on the demo data, per role."""
import base64
import json

import numpy as np
import pytest

from crm import auth, demo
from crm.db import Database
from tests.conftest import PASSWORD
from tests.test_pages import page


@pytest.fixture(scope="module")
def demo_db(new_database):
    path = new_database()
    db = Database(path)
    auth.create_user(db, None, "admin", "Ada Admin", None, PASSWORD, "admin")
    demo.load_demo(db, "small", seed=11, password=PASSWORD)
    auth.create_user(db, auth.get_user(db, "admin"), "vic", "Vic Viewer", None, PASSWORD,
                     "viewer")
    users = {u["username"]: u["id"] for u in auth.list_users(db)}
    db.close()
    return path, users


@pytest.fixture
def env(demo_db, monkeypatch):
    monkeypatch.setenv("CRM_DB", str(demo_db[0]))
    monkeypatch.setenv("CRM_COOKIE_KEY", "test-cookie-key-long-enough-for-hs256-signing")
    return demo_db


def figures(at) -> list[dict]:
    out = []
    for el in at.get("plotly_chart"):
        out.append(json.loads(el.proto.spec))
    return out


def numbers(values) -> list[float]:
    if isinstance(values, dict) and "bdata" in values:
        return list(np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]))
    return list(values)


def test_home_shows_every_tile_and_chart_for_a_manager(env):
    at = page("pages/home.py", user="maria")
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    for wanted in ("Open pipeline", "Weighted pipeline", "Won this period", "Win rate",
                   "Average won deal", "Average sales cycle", "Lead → customer", "Retention",
                   "Customer base", "Installed base", "Open leads"):
        assert wanted in labels
    assert all(m.help for m in at.metric if m.label != "New leads this month")
    at.selectbox(key="home:period").set_value("Last 12 months").run()
    assert not at.exception
    figs = figures(at)
    kinds = [f["data"][0]["type"] for f in figs]
    assert kinds.count("funnel") == 1 and len(figs) == 5  # funnel, won, owners, sources, status
    won = next(f for f in figs if f["layout"].get("yaxis", {}).get("title", {}).get("text", "")
               .startswith("Won"))
    assert sum(numbers(won["data"][0]["y"])) > 0  # the demo has won deals in the last year


def test_home_filters_change_the_figures(env):
    at = page("pages/home.py", user="maria")
    at.selectbox(key="home:period").set_value("Last 12 months").run()
    everyone = {m.label: m.value for m in at.metric}
    at.multiselect(key="home:owners").set_value([env[1]["reza"]]).run()
    assert not at.exception
    only_reza = {m.label: m.value for m in at.metric}
    assert only_reza["Open pipeline"] != everyone["Open pipeline"]


def test_a_rep_sees_their_own_numbers(env):
    at = page("pages/home.py", user="reza")
    assert not at.exception
    assert not at.multiselect  # no owner filter: their own deals
    assert "Your numbers" in [c.value for c in at.caption]


def test_forecast_page_draws_every_section_for_a_manager(env):
    at = page("pages/forecast.py", user="maria")
    assert not at.exception, at.exception
    subheaders = [s.value for s in at.subheader]
    assert subheaders == ["Weighted pipeline by expected close", "Forecast categories and quotas",
                          "Revenue projection", "Stage probabilities learned from the history",
                          "Forecast accuracy"]
    figs = figures(at)
    names = {t.get("name") for f in figs for t in f["data"]}
    assert {"Commit", "Best case", "Closed + commit", "Projection", "80 % interval",
            "95 % interval"} <= names
    mape = next(m for m in at.metric if m.label == "Backtest MAPE")
    assert mape.value.endswith("%")
    at.segmented_control(key="fc:grain").set_value("Quarters").run()
    at.segmented_control(key="fc:by").set_value("Owner").run()
    assert not at.exception


def test_a_manager_sets_a_quota_and_sees_attainment(env):
    at = page("pages/forecast.py", user="maria")
    at.number_input[0].set_value(50000.0)
    at.button(key="FormSubmitter:fc:quota-Save quota").click().run()
    assert not at.exception and not at.error
    db = Database(env[0])
    try:
        assert db.scalar("SELECT count(*) FROM quotas WHERE amount = 50000") == 1
        assert db.scalar("SELECT count(*) FROM audit_log WHERE entity = 'quotas'") >= 1
        assert db.scalar("SELECT count(*) FROM forecast_snapshots") > 0  # taken on first load
    finally:
        db.close()


def test_reps_and_viewers_cannot_set_quotas_or_adopt(env):
    for who in ("reza", "vic"):
        at = page("pages/forecast.py", user=who)
        assert not at.exception
        assert not at.get("form") and not [b for b in at.button if b.key == "fc:adopt"]
        assert len(figures(at)) == 4  # read-only, but every chart
    home = page("pages/home.py", user="vic")
    assert not home.exception
    # (over the last 12 months: on a month's first day this month may hold no records yet)
    home.selectbox(key="home:period").set_value("Last 12 months").run()
    assert not home.exception and len(figures(home)) == 5
    assert home.multiselect  # a viewer sees the whole team and may filter by owner


def test_an_admin_adopts_the_learned_probabilities(env):
    at = page("pages/forecast.py", user="admin")
    table = at.dataframe[-1].value
    learned = dict(zip(table["Stage"], table["Learned"]))
    at.button(key="fc:adopt").click().run()
    assert not at.exception
    db = Database(env[0])
    try:
        now = {r["name"]: r["probability"] for r in db.query(
            "SELECT s.name, s.probability FROM stages s JOIN pipelines p ON p.id = s.pipeline_id"
            " WHERE p.is_default AND s.kind = 'open'")}
        assert db.scalar("SELECT count(*) FROM audit_log WHERE entity = 'stages'"
                         " AND changes LIKE '%learned_from_deals%'") > 0
    finally:
        db.close()
    assert {name: f"{value}%" for name, value in now.items()} == learned


def test_a_custom_period_sets_every_tile(env):
    from datetime import date

    at = page("pages/home.py", user="maria")
    at.selectbox(key="home:period").set_value("Custom").run()
    at.date_input(key="home:from").set_value(date(2025, 1, 1))
    at.date_input(key="home:to").set_value(date(2025, 1, 31)).run()
    assert not at.exception
    assert "2025-01-01 – 2025-01-31, compared with 2024-12-01 – 2024-12-31" in [
        c.value for c in at.caption]
    assert any(c.value.startswith("Won deals: ") for c in at.caption)
