"""Persian and Lithuanian users in a real browser: every page in their language, Persian right to
left in its own font, Jalali dates typed and shown, the board's columns mirrored.

Skips when Chromium is missing, unless CRM_E2E=1 (CI), where a missing browser is a failure."""
import pytest

from crm import auth, customers, deals, i18n, leads, pipelines
from crm.db import Database
from tests.browser import chromium, require_chromium, streamlit_server, wait_for_session_cookie
from tests.conftest import PASSWORD

require_chromium()

from playwright.sync_api import TimeoutError as PlaywrightTimeout, expect  # noqa: E402

PAGES = ["/", "/leads", "/lead?id={lead}", "/customers", "/customer?id={customer}", "/deals",
         "/deal?id={deal}", "/pipeline", "/activities", "/users", "/pipelines_admin",
         "/settings", "/account", "/market", "/competitors", "/price_records", "/returns"]
TITLES = {"/market": "Market audit", "/competitors": "Competitors",
          "/price_records": "Price records", "/returns": "Returns and cancellations",
          "/leads": "Leads", "/customers": "Customers", "/deals": "Deals",
          "/pipeline": "Pipeline", "/users": "Users", "/pipelines_admin": "Pipelines & stages",
          "/settings": "General settings", "/account": "My account"}


def tr(lang, msgid):
    with i18n.using(lang):
        return i18n.gettext(msgid)


@pytest.fixture(scope="module")
def server(new_database):
    """On each engine (conftest: a DuckDB file, or a new PostgreSQL database)."""
    db_file = new_database()
    db = Database(db_file)
    auth.create_user(db, None, "arash", "آرش مدیری", None, PASSWORD, "admin")
    arash = auth.get_user(db, "arash")
    auth.set_language(db, arash, "fa")
    auth.create_user(db, arash, "ausra", "Aušra Vadovė", None, PASSWORD, "admin")
    auth.set_language(db, auth.get_user(db, "ausra"), "lt")
    pipelines.name_defaults_in(db, "fa")
    stage = pipelines.stages_of(db, pipelines.default_pipeline_id(db))
    ids = {"lead": leads.create_lead(db, arash, {"first_name": "علي", "last_name": "كريمي",
                                                 "company": "شرکت نمونه",
                                                 "email": "ali@example.ir"}),
           "customer": customers.create_customer(db, arash, {"name": "فروشگاه آفتاب"})}
    ids["deal"] = deals.create_deal(db, arash, {"title": "قرارداد پشتیبانی", "amount": "150000000",
                                                "currency": "IRR", "stage_id": stage[0]["id"],
                                                "customer_id": ids["customer"],
                                                "expected_close_date": "2026-12-21"})
    db.close()
    with streamlit_server("app.py", {"CRM_DB": str(db_file),
                                     "CRM_COOKIE_KEY": "e2e-" + "k" * 40}) as url:
        yield url, ids


def sign_in(page, url, username):
    page.goto(url + "/")
    page.get_by_role("textbox").nth(0).fill(username)
    page.locator("input[type=password]").fill(PASSWORD)
    page.locator("[data-testid=stFormSubmitButton] button").click()
    expect(page.locator(".st-key-sign_out button")).to_be_visible(timeout=30_000)
    wait_for_session_cookie(page)


def settle(page):
    page.wait_for_function("!document.querySelector('[data-testid=stStatusWidget]')",
                           timeout=30_000)
    page.wait_for_timeout(400)


@pytest.mark.e2e_duckdb_only  # on PostgreSQL: the Persian dates, board and search (CI time)
@pytest.mark.parametrize("username,lang", [("arash", "fa"), ("ausra", "lt")])
def test_every_page_in_the_users_language(server, username, lang):
    url, ids = server
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        sign_in(page, url, username)
        for path in PAGES:
            page.goto(url + path.format(**ids))
            expect(page.locator("h1").first).to_be_visible(timeout=30_000)
            settle(page)
            assert not page.get_by_text("Traceback").count(), path
            # a loaded page signs in from the cookie in a second run: wait for its layout
            want = "rtl" if lang == "fa" else "ltr"
            try:
                page.wait_for_function("getComputedStyle(document.querySelector('.stApp'))"
                                       f".direction === '{want}'", timeout=15_000)
            except PlaywrightTimeout:
                raise AssertionError(f"{path} is not laid out {want}") from None
            if path in TITLES:
                expect(page.locator("h1").first).to_contain_text(tr(lang, TITLES[path]))
        if lang == "fa":
            font = page.evaluate("getComputedStyle(document.querySelector('h1')).fontFamily")
            assert "Vazirmatn" in font
            assert page.evaluate("document.fonts.check('16px Vazirmatn')")
        page.close()


def test_persian_dates_are_jalali_and_the_board_runs_right_to_left(server):
    url, ids = server
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        sign_in(page, url, "arash")
        page.goto(url + f"/deal?id={ids['deal']}")
        close = page.get_by_role("textbox", name=tr("fa", "Expected close"))
        expect(close).to_have_value("۱۴۰۵/۰۹/۳۰", timeout=30_000)  # 2026-12-21
        close.fill("۱۴۰۵/۱۰/۱۵")
        page.get_by_role("button", name=tr("fa", "Save changes")).click()
        expect(page.get_by_role("textbox", name=tr("fa", "Expected close"))).to_have_value(
            "۱۴۰۵/۱۰/۱۵", timeout=30_000)
        page.goto(url + "/pipeline")
        board = page.locator(".kb-wrap")
        expect(board).to_have_attribute("dir", "rtl", timeout=30_000)
        first, second = (page.locator("[data-stage-id]").nth(i).bounding_box() for i in (0, 1))
        assert first["x"] > second["x"]  # the first stage is on the right
        expect(page.locator(".kb-total").first).to_contain_text("۱۵۰٬۰۰۰٬۰۰۰")
        page.close()


def test_searching_in_persian_finds_arabic_letter_forms(server):
    url, _ = server
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        sign_in(page, url, "arash")
        page.goto(url + "/leads")
        expect(page.locator("h1").first).to_be_visible(timeout=30_000)
        page.locator("[data-testid=stTextInput] input").first.fill("کریمی")
        page.keyboard.press("Enter")
        expect(page.get_by_text("كريمي", exact=True)).to_be_attached(timeout=30_000)
        page.close()
