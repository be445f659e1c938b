"""Browser test of the dashboards: every chart is drawn (Plotly's SVG is there) on the home and
forecast pages of the demo data, and changing a filter redraws them.

Skips when Chromium is missing, unless CRM_E2E=1 (CI), where a missing browser is a failure."""
import contextlib

import pytest

from tests.browser import chromium, require_chromium, streamlit_server, wait_for_session_cookie
from tests.conftest import PASSWORD

require_chromium()

from playwright.sync_api import expect  # noqa: E402


@contextlib.contextmanager
def demo_server(db_file):
    from crm import auth, demo
    from crm.db import Database

    db = Database(db_file)
    auth.create_user(db, None, "admin", "Ada Admin", "ada@example.com", PASSWORD, "admin")
    demo.load_demo(db, "small", seed=5, password=PASSWORD)
    db.close()  # the server process needs the file lock
    with streamlit_server("app.py", {"CRM_DB": str(db_file),
                                     "CRM_COOKIE_KEY": "e2e-" + "k" * 40}) as url:
        yield url


@pytest.fixture
def server(tmp_path):
    with demo_server(tmp_path / "crm.duckdb") as url:
        yield url


@pytest.fixture
def page():
    with chromium() as browser:
        yield browser.new_page(viewport={"width": 1400, "height": 1000})


def drawn_charts(page) -> int:
    """Charts whose Plotly SVG is in the page, with at least one drawn trace."""
    return page.locator(".js-plotly-plot .main-svg g.trace").evaluate_all(
        "traces => new Set(traces.map(t => t.closest('.js-plotly-plot'))).size")


def test_every_chart_is_drawn_and_filters_redraw_them(server, page):
    page.goto(server + "/")
    page.get_by_role("textbox", name="Username").fill("maria")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Hello, Maria")).to_be_visible(timeout=30_000)
    wait_for_session_cookie(page)

    # home: funnel, won by month, pipeline by owner, lead sources, leads by status
    expect(page.locator(".js-plotly-plot")).to_have_count(5, timeout=30_000)
    page.wait_for_function(
        "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 5", timeout=30_000)
    assert drawn_charts(page) == 5
    period = page.locator("[data-testid=stCaptionContainer]", has_text="compared with")
    before = period.inner_text()
    page.get_by_role("combobox", name="Period").click()
    page.get_by_role("option", name="Last 12 months").click()
    expect(period).not_to_have_text(before, timeout=30_000)
    expect(page.locator(".js-plotly-plot")).to_have_count(5, timeout=30_000)
    page.wait_for_timeout(1000)
    assert drawn_charts(page) == 5
    won = page.locator(".js-plotly-plot").nth(1)
    expect(won.locator(".xtick")).to_have_count(12, timeout=30_000)  # a bar slot per month

    # forecast: weighted pipeline, categories, projection, accuracy
    page.get_by_role("link", name="Forecast").click()
    expect(page.get_by_role("heading", name="Revenue projection")).to_be_visible(timeout=30_000)
    expect(page.locator(".js-plotly-plot")).to_have_count(4, timeout=30_000)
    page.wait_for_timeout(1000)
    assert drawn_charts(page) == 4
    expect(page.get_by_text("Backtest MAPE")).to_be_visible()
    page.locator(".st-key-fc-grain").get_by_text("Quarters").click()
    first = page.locator(".js-plotly-plot").first
    expect(first.locator(".xtick", has_text="Q")).not_to_have_count(0, timeout=30_000)
    expect(page.locator(".js-plotly-plot")).to_have_count(4, timeout=30_000)
    page.wait_for_timeout(1000)
    assert drawn_charts(page) == 4
