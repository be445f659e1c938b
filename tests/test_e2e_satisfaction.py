"""Browser test: the satisfaction page draws its Plotly charts, and a follow-up task is created
from the at-risk list (headless Chromium against a real server)."""
import pytest

from tests.browser import chromium, crm_server, require_chromium, wait_for_session_cookie
from tests.conftest import PASSWORD

require_chromium()

from playwright.sync_api import expect  # noqa: E402


@pytest.fixture
def server(db_url):
    """On each engine (conftest: a DuckDB file, or a new PostgreSQL database)."""
    from crm import auth, customers, service
    from crm.db import Database

    path = db_url
    db = Database(path)  # the records first, by the system; crm_server adds the admin
    acme = customers.create_customer(db, auth.SYSTEM, {"name": "Acme Unhappy",
                                                       "segment": "vip"})
    calm = customers.create_customer(db, auth.SYSTEM, {"name": "Calm Corp",
                                                       "segment": "enterprise"})
    for cid, day, nps, csat in ((acme, "2026-01-10", 9, 5), (acme, "2026-03-10", 2, 1),
                                (calm, "2026-02-10", 10, 5), (calm, "2026-04-10", 8, 4)):
        service.create_survey(db, auth.SYSTEM, {"customer_id": cid, "answered_on": day,
                                                "channel": "email", "nps": nps, "csat": csat})
    service.create_complaint(db, auth.SYSTEM, {"customer_id": acme, "subject": "Broken pump",
                                               "category": "product_failure",
                                               "severity": "critical",
                                               "opened_on": "2026-03-01"})
    db.close()
    with crm_server(path) as url:
        yield url, path, acme


def test_satisfaction_page_draws_charts_and_creates_a_follow_up_task(server):
    url, path, acme = server
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "/satisfaction")
        page.get_by_role("textbox", name="Username").fill("admin")
        page.get_by_role("textbox", name="Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Customer satisfaction")).to_be_visible(
            timeout=30_000)
        wait_for_session_cookie(page)
        # the charts are drawn: Plotly has put their traces into the page
        expect(page.locator(".js-plotly-plot .scatterlayer .trace").first).to_be_attached(
            timeout=30_000)
        assert page.locator(".js-plotly-plot").count() >= 7
        expect(page.locator(".js-plotly-plot .barlayer .point").first).to_be_attached()
        assert page.locator(".js-plotly-plot .barlayer .point").count() >= 5
        # the at-risk list links to the customer and gives its owner a follow-up task
        link = page.get_by_role("link", name="Acme Unhappy")
        expect(link).to_be_visible()
        assert page.get_by_role("link", name="Calm Corp").count() == 0
        page.get_by_role("button", name="Follow-up task").first.click()
        expect(page.get_by_text("1 open task")).to_be_visible(timeout=30_000)
        link.click()
        expect(page.get_by_role("heading", name="Acme Unhappy")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("At risk:")).to_be_visible()
        page.get_by_role("tab", name="Tasks").click()
        expect(page.get_by_text("Acme Unhappy is at risk")).to_be_visible(
            timeout=30_000)
