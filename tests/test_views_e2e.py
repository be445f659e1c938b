"""Browser test of saved views: a link to a board view grouped by a choice field, where
dragging a card sets that field, and a link to a list view. Skips without Chromium unless
CRM_E2E=1."""
import pytest

from tests.browser import chromium, crm_server, require_chromium, wait_for_session_cookie
from tests.conftest import PASSWORD

require_chromium()

from playwright.sync_api import expect  # noqa: E402

IDS = {}


def prepare(db, admin):
    from crm import deals, leads, pipelines, views

    stage = {s["name"]: s["id"] for s in
             pipelines.stages_of(db, pipelines.default_pipeline_id(db))}
    for title, amount, source in [("Web deal", "1000", "website"),
                                  ("Second web deal", "500", "website"),
                                  ("<img src=x onerror=alert(1)>", "300", "referral")]:
        deals.create_deal(db, admin, {"title": title, "amount": amount, "source": source,
                                      "stage_id": stage["Prospecting"]})
    IDS["board"] = views.create_view(db, admin, deals.DEALS, "By source <b>!</b>",
                                     {"group_by": "source"}, shared=True, kind=views.BOARD)
    for last, status in [("Newton", "new"), ("Newman", "new"), ("Oldham", "contacted")]:
        leads.create_lead(db, admin, {"last_name": last, "status": status})
    IDS["leads"] = views.create_view(db, admin, leads.LEADS, "New leads",
                                     {"filters": {"status": ["new"]}}, shared=True)


@pytest.fixture(scope="module")
def server(new_database):
    """On each engine (conftest: a DuckDB file, or a new PostgreSQL database)."""
    with crm_server(new_database(), prepare=prepare) as url:
        yield url


@pytest.fixture
def page():
    with chromium() as browser:
        yield browser.new_page(viewport={"width": 2200, "height": 1400})


def sign_in(page, url, path):
    page.goto(url + path)
    page.get_by_role("textbox", name="Username").fill("admin")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible(timeout=30_000)
    wait_for_session_cookie(page)


def header(page, column_id):
    column = page.locator(f'[data-stage-id="{column_id}"]')
    return column.locator(".kb-count"), column.locator(".kb-total")


def test_a_board_view_link_groups_by_source_and_a_drop_sets_it(server, page):
    alerts = []
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    sign_in(page, server, f"/pipeline?view={IDS['board']}")
    page.goto(f"{server}/pipeline?view={IDS['board']}")  # the link, opened signed in
    web_count, web_total = header(page, "website")
    expect(web_count).to_have_text("2 deals", timeout=30_000)
    expect(web_total).to_have_text("$1,500")
    referral_count, referral_total = header(page, "referral")
    expect(referral_count).to_have_text("1 deal")
    expect(page.locator('[data-stage-id="__none__"]')).to_contain_text("(none)")
    expect(page.locator("[data-deal-id]").filter(has_text="<img src=x onerror=alert(1)>")
           ).to_have_count(1)
    # the view's name is text in its picker
    expect(page.get_by_role("combobox", name="View")).to_have_value("By source <b>!</b>")
    # opened as saved: the save/manage button shows no "changed" mark
    assert page.get_by_role("button", name="•").count() == 0

    page.locator("[data-deal-id]").filter(has_text="Second web deal").drag_to(
        referral_count)
    expect(referral_count).to_have_text("2 deals", timeout=30_000)
    expect(referral_total).to_have_text("$800")
    expect(web_count).to_have_text("1 deal")
    assert "view=" in page.url and alerts == []


@pytest.mark.e2e_duckdb_only  # on PostgreSQL: the file's other tests (CI time)
def test_a_list_view_link_opens_the_list_filtered(server, page):
    sign_in(page, server, f"/leads?view={IDS['leads']}")
    page.goto(f"{server}/leads?view={IDS['leads']}")
    expect(page.get_by_text("2 leads")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Newton", exact=True)).to_be_attached(timeout=15_000)
    assert page.get_by_text("Oldham", exact=True).count() == 0
