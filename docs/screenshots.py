"""Takes the README screenshots from a running app: python docs/screenshots.py URL USER PASSWORD.

Needs Chromium (/usr/bin/chromium) and the playwright package; start the app on demo data first."""
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
        page.goto(url + "/home")
        expect(page.get_by_text("Leads by status")).to_be_visible(timeout=30_000)
        page.wait_for_timeout(2000)
        page.screenshot(path=OUT / "home.png")
        page.set_viewport_size({"width": 1800, "height": 1000})
        page.goto(url + "/pipeline")
        expect(page.locator("[data-deal-id]").first).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=OUT / "pipeline.png")
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(url + "/deal?id=1")
        expect(page.get_by_role("tab", name="Stage history")).to_be_visible(timeout=30_000)
        page.get_by_role("tab", name="Stage history").click()
        page.wait_for_timeout(1500)
        page.screenshot(path=OUT / "deal.png")
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
