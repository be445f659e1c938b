"""Browser test of the dashboards: every chart is drawn (Plotly's SVG is there) on the home and
forecast pages of the demo data, and changing a filter redraws them.

Skips when Chromium is missing, unless CRM_E2E=1 (CI), where a missing browser is a failure."""
import contextlib
import re

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
def server(db_url):
    """On each engine (conftest: a DuckDB file, or a new PostgreSQL database)."""
    with demo_server(db_url) as url:
        yield url


@pytest.fixture
def page():
    with chromium() as browser:
        yield browser.new_page(viewport={"width": 1400, "height": 1000})


def drawn_charts(page) -> int:
    """Charts whose Plotly SVG is in the page, with at least one drawn trace."""
    return page.locator(".js-plotly-plot .main-svg g.trace").evaluate_all(
        "traces => new Set(traces.map(t => t.closest('.js-plotly-plot'))).size")


def expect_drawn(page, count: int) -> None:
    """Waits until exactly count charts are drawn: while a rerun replaces the charts, the
    old ones stay in the page for a moment beside the new (a busy machine saw 8 of 5)."""
    page.wait_for_function(
        "n => new Set([...document.querySelectorAll('.js-plotly-plot .main-svg g.trace')]"
        ".map(t => t.closest('.js-plotly-plot'))).size === n", arg=count, timeout=30_000)
    assert drawn_charts(page) == count


def test_every_chart_is_drawn_and_filters_redraw_them(server, page):
    page.goto(server + "/")
    page.get_by_role("textbox", name="Username").fill("maria")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Hello, Maria")).to_be_visible(timeout=30_000)
    wait_for_session_cookie(page)

    # home: funnel, won by month, pipeline by owner, lead sources, leads by status; the
    # default period (this month) may hold no records yet on its first day, so the five are
    # counted over the last 12 months, which the demo data always fills
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
    period = page.locator("[data-testid=stCaptionContainer]", has_text="compared with")
    before = period.inner_text()
    page.get_by_role("combobox", name="Period").click()
    page.get_by_role("option", name="Last 12 months").click()
    expect(period).not_to_have_text(before, timeout=30_000)
    expect(page.locator(".js-plotly-plot")).to_have_count(5, timeout=30_000)
    expect_drawn(page, 5)
    won = page.locator(".js-plotly-plot").nth(1)
    expect(won.locator(".xtick")).to_have_count(12, timeout=30_000)  # a bar slot per month

    # forecast: weighted pipeline, categories, projection, accuracy
    page.get_by_role("link", name="Forecast").click()
    expect(page.get_by_role("heading", name="Revenue projection")).to_be_visible(timeout=30_000)
    expect(page.locator(".js-plotly-plot")).to_have_count(4, timeout=30_000)
    expect_drawn(page, 4)
    expect(page.get_by_text("Backtest MAPE")).to_be_visible()
    page.locator(".st-key-fc-grain").get_by_text("Quarters").click()
    first = page.locator(".js-plotly-plot").first
    expect(first.locator(".xtick", has_text="Q")).not_to_have_count(0, timeout=30_000)
    expect(page.locator(".js-plotly-plot")).to_have_count(4, timeout=30_000)
    expect_drawn(page, 4)


def _open(page, name: str):
    """Opens a select box's list (a click alone leaves a long list closed at times)."""
    box = page.get_by_role("combobox", name=name)
    expect(box).to_be_visible(timeout=30_000)
    page.wait_for_timeout(800)  # the rerun the last choice started has drawn the page
    box.click()
    page.wait_for_timeout(300)
    if not page.get_by_role("option").count():
        page.keyboard.press("ArrowDown")
    expect(page.get_by_role("option").first).to_be_visible(timeout=10_000)
    return box


@pytest.mark.e2e_duckdb_only  # on PostgreSQL: the file's other tests (CI time)
def test_a_lost_deal_names_a_competitor_picked_or_typed(server, page):
    """The lost-to-competitor picker offers the known competitors and takes a new name, which
    becomes a competitor record."""
    page.goto(server + "/")
    page.get_by_role("textbox", name="Username").fill("maria")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Hello, Maria")).to_be_visible(timeout=30_000)
    wait_for_session_cookie(page)
    page.goto(server + "/pipeline")
    expander = page.get_by_text("Move a deal without dragging")
    expect(expander).to_be_visible(timeout=30_000)
    expander.click()
    _open(page, "Deal")
    page.get_by_role("option").first.click()
    _open(page, "Move to")
    page.get_by_role("option", name=re.compile(r"^Lost")).click()
    _open(page, "Lost reason *")
    page.get_by_role("option").first.click()
    rival = _open(page, "Lost to competitor (optional)")  # the known competitors are offered
    rival.fill("Brand New Rival")
    page.keyboard.press("Enter")
    deal_box = page.get_by_role("combobox", name="Deal")
    expect(deal_box).to_have_value(re.compile("·"))  # "title · stage" of the chosen deal
    page.get_by_role("button", name="Move", exact=True).click()
    expect(page.get_by_text("Moved to Lost")).to_be_visible(timeout=30_000)
    expect(deal_box).to_have_value("", timeout=10_000)  # the form shows empty again
    page.goto(server + "/competitors")  # the grid draws on a canvas: search, read the count
    search = page.get_by_placeholder(re.compile(r"^Search"))
    expect(search).to_be_visible(timeout=30_000)
    search.fill("Brand New Rival")
    search.press("Enter")
    expect(page.get_by_text(re.compile(r"^1 competitor · showing 1–1"))).to_be_visible(
        timeout=30_000)
