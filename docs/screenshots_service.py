"""Screenshots of the service pages (issue 10) from two running apps:

    python docs/screenshots_service.py URL USER PASSWORD [PERSIAN_URL PERSIAN_USER PASSWORD]

Start each app on demo data first (`python -m crm init --demo [--language fa]`)."""
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OUT = Path(__file__).parent / "screenshots"


def shots(url: str, username: str, password: str, prefix: str = "") -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url + "/satisfaction")
        page.get_by_role("textbox").first.fill(username)
        page.locator("input[type=password]").fill(password)
        page.keyboard.press("Enter")
        page.wait_for_function("document.cookie.includes('crm_session=')", timeout=30_000)
        expect(page.locator(".js-plotly-plot .scatterlayer .trace").first).to_be_attached(
            timeout=30_000)
        page.set_viewport_size({"width": 1400, "height": 3300})  # the page scrolls inside
        page.wait_for_timeout(3500)
        page.screenshot(path=OUT / f"{prefix}satisfaction.png")
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(url + "/complaints")
        page.wait_for_timeout(4000)
        page.screenshot(path=OUT / f"{prefix}complaints.png")
        page.goto(url + "/complaint?id=1")
        page.wait_for_timeout(4000)
        page.screenshot(path=OUT / f"{prefix}complaint.png")
        page.goto(url + "/customer?id=1")
        page.wait_for_timeout(4000)
        page.screenshot(path=OUT / f"{prefix}customer-service.png")
        browser.close()


if __name__ == "__main__":
    shots(*sys.argv[1:4])
    if len(sys.argv) > 4:
        shots(*sys.argv[4:7], prefix="fa-")
