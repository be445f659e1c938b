"""The Import page in a real browser: upload a CSV with Persian rows, dry run, import, find the
rows in the leads list, undo the import.

Skips when Chromium is missing, unless CRM_E2E=1 (CI), where a missing browser is a failure."""
import pytest

from crm import auth
from crm.db import Database
from tests.browser import chromium, require_chromium, streamlit_server
from tests.conftest import PASSWORD

require_chromium()

from playwright.sync_api import expect  # noqa: E402

CSV = ("First Name,Last Name,E-mail Address,Company,Lead Source\n"
       "علی,رضایی,ali@example.ir,شرکت آفتاب,referral\n"
       "مریم,احمدی,maryam@example.ir,بازرگانی نور,\n"
       "Ada,Lovelace,not-an-email,Analytical,\n")


@pytest.fixture(scope="module")
def server(new_database, tmp_path_factory):
    """On each engine (conftest: a DuckDB file, or a new PostgreSQL database)."""
    db_file = new_database()
    db = Database(db_file)
    auth.create_user(db, None, "admin", "Ada Admin", "ada@example.com", PASSWORD, "admin")
    db.close()  # the server process needs the file lock
    with streamlit_server("app.py", {"CRM_DB": str(db_file),
                                     "CRM_COOKIE_KEY": "e2e-" + "k" * 40}) as url:
        yield url, tmp_path_factory.mktemp("e2e_import")


def settle(page):
    page.wait_for_function("!document.querySelector('[data-testid=stStatusWidget]')",
                           timeout=30_000)
    page.wait_for_timeout(400)


def test_upload_dry_run_import_and_undo(server):
    url, folder = server
    csv_file = folder / "leads-fa.csv"
    csv_file.write_text(CSV, encoding="utf-8")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "/")
        page.get_by_role("textbox", name="Username").fill("admin")
        page.get_by_role("textbox", name="Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible(timeout=30_000)
        settle(page)

        page.get_by_role("link", name="Import").click()
        expect(page.get_by_role("heading", name="Import", exact=True)).to_be_visible(
            timeout=30_000)
        page.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(
            str(csv_file))
        expect(page.get_by_role("button", name="Dry run")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("rows: 3")).to_be_visible()
        expect(page.get_by_text("علی", exact=True)).to_be_visible()  # the sample column
        settle(page)

        page.get_by_role("button", name="Dry run").click()
        metric = page.locator("[data-testid=stMetric]", has_text="To create")
        expect(metric).to_contain_text("2", timeout=30_000)
        expect(page.locator("[data-testid=stMetric]", has_text="Rejected")).to_contain_text("1")
        expect(page.get_by_role("button", name="Download the rejected rows (CSV)")).to_be_visible()
        settle(page)

        page.get_by_role("button", name="Import 2 rows").click()
        expect(page.get_by_text("Import #1 done: 2 created")).to_be_visible(timeout=30_000)
        settle(page)

        page.get_by_role("link", name="Leads").click()
        expect(page.get_by_role("heading", name="Leads")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("رضایی", exact=True)).to_be_attached(timeout=15_000)
        expect(page.get_by_text("احمدی", exact=True)).to_be_attached()
        expect(page.get_by_text("2 leads")).to_be_visible()
        settle(page)

        page.get_by_role("link", name="Import").click()
        expect(page.get_by_text("Import history")).to_be_visible(timeout=30_000)
        settle(page)
        page.get_by_role("button", name="Undo", exact=True).click()
        page.get_by_role("button", name="Undo import").click()
        expect(page.get_by_text("2 records restored")).to_be_visible(timeout=30_000)
        settle(page)

        page.get_by_role("link", name="Leads").click()
        expect(page.get_by_role("heading", name="Leads")).to_be_visible(timeout=30_000)
        settle(page)
        expect(page.get_by_text("رضایی", exact=True)).to_have_count(0, timeout=15_000)
        assert not page.get_by_text("Traceback").count()
