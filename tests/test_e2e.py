"""Browser test in headless Chromium against a real server.

Skips when Chromium is missing, unless CRM_E2E=1 (CI), where a missing browser is a failure."""
import pytest

from tests.browser import chromium, crm_server, require_chromium
from tests.conftest import PASSWORD

require_chromium()

from playwright.sync_api import expect  # noqa: E402


@pytest.fixture
def server(db_url):
    """On each engine (conftest: a DuckDB file, or a new PostgreSQL database)."""
    with crm_server(db_url,
                    leads=[{"last_name": "Preexisting", "company": "Hiddenco"}],
                    deals=[("Alpha deal", "1000", "Prospecting"),
                           ("Beta deal", "3000", "Prospecting"),
                           ("<img src=x onerror=alert(1)>", "500", "Qualification")]) as url:
        yield url


@pytest.fixture
def page():
    with chromium() as browser:
        yield browser.new_page(viewport={"width": 1300, "height": 900})


def test_leads_needs_sign_in_then_a_new_lead_shows_in_the_list(server, page):
    # A freshly started server serves /leads without running app.py: the guard must hold.
    page.goto(server + "/leads")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
    assert page.get_by_text("Preexisting").count() == 0
    assert page.get_by_text("Hiddenco").count() == 0

    page.get_by_role("textbox", name="Username").fill("admin")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Leads")).to_be_visible(timeout=30_000)
    # the grid draws on a canvas; its cells live in an accessible (hidden) table
    expect(page.get_by_text("Preexisting", exact=True)).to_be_attached(timeout=15_000)

    page.get_by_role("button", name="New lead").click()
    expect(page.get_by_role("heading", name="New lead")).to_be_visible(timeout=30_000)
    page.get_by_role("textbox", name="First name").fill("Dariush")
    page.get_by_role("textbox", name="Last name *").fill("Browserson")
    page.get_by_role("textbox", name="Email").fill("dariush@example.com")
    page.get_by_role("button", name="Create lead").click()
    expect(page.get_by_role("heading", name="Dariush Browserson")).to_be_visible(timeout=30_000)

    page.get_by_role("link", name="All leads").click()
    expect(page.get_by_role("heading", name="Leads")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Browserson", exact=True)).to_be_attached(timeout=15_000)
    expect(page.get_by_text("2 leads")).to_be_visible()

    # the session cookie signs a reload back in; signing out removes it
    page.goto(server + "/customers")
    expect(page.get_by_role("heading", name="Customers")).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
    page.goto(server + "/leads")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
    assert page.get_by_text("Browserson").count() == 0


def sign_in(page, server, path):
    page.goto(server + path)
    page.get_by_role("textbox", name="Username").fill("admin")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def header(page, stage_name):
    column = page.locator("[data-stage-id]").filter(has_text=stage_name).first
    return column.locator(".kb-count"), column.locator(".kb-total")


def test_dragging_a_card_moves_the_deal_and_updates_the_totals(server, page):
    alerts = []
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    # wide enough for every column: a board that scrolls mid-drag drops another card
    page.set_viewport_size({"width": 2200, "height": 1400})
    sign_in(page, server, "/pipeline")
    expect(page.get_by_role("heading", name="Pipeline")).to_be_visible(timeout=30_000)
    count, total = header(page, "Prospecting")
    expect(count).to_have_text("2 deals", timeout=30_000)
    expect(total).to_have_text("$4,000")
    # user text is shown as text and runs nothing
    expect(page.locator("[data-deal-id]").filter(has_text="<img src=x onerror=alert(1)>")
           ).to_have_count(1)

    card = page.locator("[data-deal-id]").filter(has_text="Beta deal")
    card.drag_to(header(page, "Proposal")[0])
    expect(count).to_have_text("1 deal", timeout=30_000)
    expect(total).to_have_text("$1,000")
    proposal_count, proposal_total = header(page, "Proposal")
    expect(proposal_count).to_have_text("1 deal")
    expect(proposal_total).to_have_text("$3,000")

    # a lost stage asks why before the deal moves
    page.locator("[data-deal-id]").filter(has_text="Alpha deal").drag_to(
        header(page, "Lost")[0])
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible(timeout=30_000)
    dialog.get_by_role("combobox").first.click()
    page.get_by_role("option", name="Price").click()
    dialog.get_by_role("button", name="Mark as lost").click()
    lost_count, _ = header(page, "Lost")
    expect(lost_count).to_have_text("1 deal", timeout=30_000)
    expect(count).to_have_text("0 deals")
    assert alerts == []
