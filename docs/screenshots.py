"""Takes the README screenshots from a running app (--sales: the home dashboard and forecast):

    python docs/screenshots.py URL USER PASSWORD [PERSIAN_USER PERSIAN_PASSWORD]
    python docs/screenshots.py --sales URL USER PASSWORD [PERSIAN_USER PERSIAN_PASSWORD]

The Persian ones sign in as PERSIAN_USER after choosing فارسی on the sign-in page (which makes
it that user's language). Needs Chromium (/usr/bin/chromium) and the playwright package; start
the app on demo data first (e.g. `python -m crm init --demo --language fa`)."""
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OUT = Path(__file__).parent / "screenshots"


def main(url: str, username: str, password: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url + "/leads")
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
        page.screenshot(path=OUT / "sign-in.png")
        page.get_by_role("textbox", name="Username").fill(username)
        page.get_by_role("textbox", name="Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Leads")).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=OUT / "leads.png")
        page.goto(url + "/lead?id=1")
        expect(page.get_by_role("tab", name="Timeline")).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=OUT / "lead.png", full_page=True)
        page.goto(url + "/customer?id=1")
        expect(page.get_by_role("tab", name="Contacts")).to_be_visible(timeout=30_000)
        page.get_by_role("tab", name="Contacts").click()
        page.wait_for_timeout(1000)
        page.screenshot(path=OUT / "customer-contacts.png")
        page.goto(url + "/pipeline")
        expect(page.locator("[data-deal-id]").first).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=OUT / "pipeline.png")
        page.goto(url + "/deal?id=1")
        expect(page.get_by_role("tab", name="Stage history")).to_be_visible(timeout=30_000)
        page.get_by_role("tab", name="Stage history").click()
        page.wait_for_timeout(1500)
        page.screenshot(path=OUT / "deal.png")
        browser.close()


def persian(url: str, username: str, password: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url + "/")
        page.get_by_role("combobox").first.click()
        page.get_by_role("option", name="فارسی").click()
        expect(page.locator(".stApp")).to_have_css("direction", "rtl", timeout=30_000)
        page.wait_for_timeout(1500)  # the rerun in Persian redraws the form: type after it
        page.get_by_role("textbox").nth(0).fill(username)
        page.locator("input[type=password]").fill(password)
        page.locator("[data-testid=stFormSubmitButton] button").click()
        expect(page.locator(".st-key-sign_out button")).to_be_visible(timeout=30_000)
        for path, name, ready in (("/leads", "fa-leads", "[data-testid=stDataFrame]"),
                                  ("/lead?id=new", "fa-lead", "[data-testid=stForm]"),
                                  ("/pipeline", "fa-pipeline", "[data-deal-id]")):
            page.goto(url + path)
            expect(page.locator(ready).first).to_be_visible(timeout=30_000)
            page.wait_for_timeout(2000)
            page.screenshot(path=OUT / f"{name}.png")
        browser.close()


def sales(url: str, username: str, password: str, lang: str = "en") -> None:
    """The sales dashboard (home) and the forecast page, tall enough for their charts:
    dashboard.png and forecast.png, or fa-dashboard.png and fa-forecast.png."""
    prefix = "fa-" if lang == "fa" else ""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.goto(url + "/")
        if lang == "fa":
            page.get_by_role("combobox").first.click()
            page.get_by_role("option", name="فارسی").click()
            expect(page.locator(".stApp")).to_have_css("direction", "rtl", timeout=30_000)
            page.wait_for_timeout(1500)
        page.get_by_role("textbox").nth(0).fill(username)
        page.locator("input[type=password]").fill(password)
        page.locator("[data-testid=stFormSubmitButton] button").click()
        expect(page.locator(".st-key-sign_out button")).to_be_visible(timeout=30_000)
        page.wait_for_function("document.cookie.includes('crm_session=')", timeout=30_000)
        for path, name, charts in (("/", "dashboard", 5), ("/forecast", "forecast", 4)):
            page.goto(url + path)
            expect(page.locator(".js-plotly-plot")).to_have_count(charts, timeout=30_000)
            page.wait_for_timeout(2500)
            page.screenshot(path=OUT / f"{prefix}{name}.png")
        browser.close()


if __name__ == "__main__":
    if sys.argv[1] == "--sales":  # --sales URL USER PASSWORD [PERSIAN_USER PERSIAN_PASSWORD]
        sales(*sys.argv[2:5])
        if len(sys.argv) > 6:
            sales(sys.argv[2], *sys.argv[5:7], lang="fa")
        sys.exit()
    main(*sys.argv[1:4])
    if len(sys.argv) > 5:
        persian(sys.argv[1], *sys.argv[4:6])
