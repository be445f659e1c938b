"""Browser test of the market-audit page: every tab opens and draws its charts, in English and in
Persian (right to left), on demo data.

Skips when Chromium is missing, unless CRM_E2E=1 (CI), where a missing browser is a failure."""
import pytest

from tests.browser import chromium, crm_server, require_chromium, wait_for_session_cookie
from tests.conftest import PASSWORD

require_chromium()

from playwright.sync_api import expect  # noqa: E402

TABS = 7
# charts each tab draws on the demo data (at least)
CHARTS = [3, 1, 2, 1, 1, 4, 3]


def demo(db, admin):
    from crm import demo as demo_data

    demo_data.load_demo(db, "small", owners=[admin], seed=11)


# on PostgreSQL in Persian only (its Jalali quarters; CI time)
@pytest.mark.parametrize("lang", [pytest.param("en", marks=pytest.mark.e2e_duckdb_only), "fa"])
def test_every_market_tab_draws_its_charts(db_url, lang):
    with crm_server(db_url, prepare=demo, env={"CRM_LANGUAGE": lang}) as url, \
            chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/market")
        page.get_by_role("textbox").first.fill("admin")
        page.locator("input[type=password]").fill(PASSWORD)
        page.locator("button[kind=secondaryFormSubmit], button[data-testid*=FormSubmit]"
                     ).first.click()
        wait_for_session_cookie(page)
        tabs = page.get_by_role("tab")
        expect(tabs).to_have_count(TABS, timeout=60_000)
        for i in range(TABS):
            tabs.nth(i).click()
            panel = page.locator("[role=tabpanel]:visible")
            charts = panel.locator(".js-plotly-plot")
            expect(charts.nth(CHARTS[i] - 1)).to_be_visible(timeout=30_000)
            # drawn: each chart has its SVG with marks in it
            for k in range(CHARTS[i]):
                chart = charts.nth(k)
                chart.scroll_into_view_if_needed()
                expect(chart.locator("svg.main-svg").first).to_be_attached()
                expect(chart.locator("g.trace, g.slice, g.hm").first).to_be_attached(
                    timeout=15_000)
        direction = page.evaluate(
            "getComputedStyle(document.querySelector('.stApp')).direction")
        assert direction == ("rtl" if lang == "fa" else "ltr")
        assert not [e for e in errors if "plotly" in e.lower()], errors
