"""Browser test of the Kanban board widget (crm/ui/kanban.py) on tests/kanban_demo_app.py.

The v2 component is not in an iframe: it is mounted in an open shadow root inside the page
(`[data-testid="stBidiComponentIsolated"]`), and Playwright's CSS locators pierce it.

Skips when Chromium is missing, unless CRM_E2E=1 (CI), where a missing browser is a failure."""
import pytest

from tests.browser import chromium, require_chromium, streamlit_server

require_chromium()

from playwright.sync_api import expect  # noqa: E402

XSS = "<img src=x onerror=alert(1)>"
TIMEOUT = 30_000


@pytest.fixture(scope="module")
def server():
    with streamlit_server("tests/kanban_demo_app.py") as url:
        yield url


@pytest.fixture
def page(server, tmp_path):
    """A fresh session of the demo app with the board drawn; collects dialogs (alerts)."""
    with chromium() as browser:
        pg = browser.new_page(viewport={"width": 1300, "height": 900})
        pg.dialogs = []

        def on_dialog(dialog):
            pg.dialogs.append(dialog.message)
            dialog.dismiss()

        pg.on("dialog", on_dialog)
        pg.goto(server)
        expect(pg.locator('[data-deal-id="101"]')).to_be_visible(timeout=TIMEOUT)
        yield pg


def column(page, stage_id):
    return page.locator(f'[data-stage-id="{stage_id}"]')


def expect_header(page, stage_id, count, total, weighted):
    col = column(page, stage_id)
    expect(col.locator(".kb-count")).to_have_text(count, timeout=TIMEOUT)
    expect(col.locator(".kb-total")).to_have_text(total, timeout=TIMEOUT)
    expect(col.locator(".kb-weighted")).to_have_text(weighted, timeout=TIMEOUT)


def rerun(page):
    """Cause an unrelated rerun and wait until it has finished."""
    runs = page.get_by_text("Script runs:")
    before = int(runs.inner_text().split(":")[1])
    page.get_by_role("button", name="Rerun").click()
    expect(runs).to_have_text(f"Script runs: {before + 1}", timeout=TIMEOUT)


def test_board_lives_in_the_page_dom_not_an_iframe(page):
    assert len(page.frames) == 1
    host = page.locator('[data-testid="stBidiComponentIsolated"]')
    expect(host).to_have_count(1)
    assert host.evaluate("e => e.shadowRoot !== null")
    expect(page.locator("[data-stage-id]")).to_have_count(3)
    card = page.locator('[data-deal-id="101"]')
    expect(card).to_have_attribute("draggable", "true")
    expect(card).to_have_attribute("aria-label", "Website relaunch")
    expect(column(page, 3)).to_have_attribute("data-kind", "won")


def test_headers_cards_and_badges(page, tmp_path):
    expect_header(page, 1, "6 deals", "EUR 270,500", "weighted 54,100")
    expect_header(page, 2, "1 deal", "EUR 250,000", "weighted 150,000")
    expect_header(page, 3, "1 deal", "EUR 18,000", "weighted 18,000")
    expect(column(page, 1).locator(".kb-prob")).to_have_text("20%")
    expect(column(page, 1).locator(".kb-more")).to_have_text("+ 3 more")
    rotting = page.locator('[data-deal-id="201"]')
    expect(rotting).to_have_class("kb-card kb-rotting")
    expect(rotting.locator(".kb-badge-rotting")).to_have_text("rotting")
    expect(rotting.locator(".kb-badge-overdue")).to_have_text("task overdue")
    expect(rotting.locator(".kb-next")).to_have_text("Send revised offer")
    expect(page.locator('[data-deal-id="101"] .kb-days')).to_have_text("3 d in stage")
    expect(page.locator('[data-deal-id="101"] .kb-amount')).to_have_text("EUR 120,000")
    expect(page.locator('[data-deal-id="301"] .kb-badge')).to_have_count(0)
    page.screenshot(path=str(tmp_path / "kanban.png"))


def test_user_text_is_text_not_html(page):
    card = page.locator('[data-deal-id="102"]')
    expect(card.locator(".kb-card-title")).to_have_text(XSS)
    expect(card.locator(".kb-customer")).to_have_text("Evil Corp <b>bold</b>")
    expect(card.locator(".kb-next")).to_have_text("<script>alert(2)</script>")
    expect(card).to_have_attribute("aria-label", XSS)
    assert card.locator("img, b, script").count() == 0
    page.wait_for_timeout(500)  # an onerror would have fired by now
    assert page.dialogs == []


def test_drag_moves_the_card_once_and_updates_both_headers(page, tmp_path):
    page.screenshot(path=str(tmp_path / "before.png"))
    page.locator('[data-deal-id="101"]').drag_to(column(page, 2))
    expect(column(page, 2).locator('[data-deal-id="101"]')).to_be_visible(timeout=TIMEOUT)
    expect_header(page, 1, "5 deals", "EUR 150,500", "weighted 30,100")
    expect_header(page, 2, "2 deals", "EUR 370,000", "weighted 222,000")
    expect(page.get_by_text("Moves handled: 1")).to_be_visible(timeout=TIMEOUT)
    page.screenshot(path=str(tmp_path / "after.png"))

    # Trigger values are one-shot: an unrelated rerun does not deliver the drop again.
    rerun(page)
    expect(page.get_by_text("Moves handled: 1")).to_be_visible()
    expect_header(page, 2, "2 deals", "EUR 370,000", "weighted 222,000")

    # Dropping a card on its own column sends nothing.
    page.locator('[data-deal-id="102"]').drag_to(column(page, 1))
    rerun(page)
    expect(page.get_by_text("Moves handled: 1")).to_be_visible()
    expect(column(page, 1).locator('[data-deal-id="102"]')).to_be_visible()
    expect_header(page, 1, "5 deals", "EUR 150,500", "weighted 30,100")

    # The XSS card can be moved too and still shows as text; nothing alerted.
    page.locator('[data-deal-id="102"]').drag_to(column(page, 3))
    expect(page.get_by_text("Moves handled: 2")).to_be_visible(timeout=TIMEOUT)
    expect_header(page, 3, "2 deals", "EUR 48,000", "weighted 48,000")
    expect(column(page, 3).locator('[data-deal-id="102"] .kb-card-title')).to_have_text(XSS)
    assert page.dialogs == []


def test_click_opens_the_deal_once(page):
    page.locator('[data-deal-id="103"]').click()
    expect(page.get_by_text("Last opened deal: 103")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text("Opens handled: 1")).to_be_visible()
    rerun(page)
    expect(page.get_by_text("Opens handled: 1")).to_be_visible()
    expect(page.get_by_text("Moves handled: 0")).to_be_visible()
    page.locator('[data-deal-id="201"]').press("Enter")  # keyboard opens too
    expect(page.get_by_text("Last opened deal: 201")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text("Opens handled: 2")).to_be_visible()
