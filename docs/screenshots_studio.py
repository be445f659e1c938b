"""Screenshots of the low-code studio (issue 12) on the small demo, from a server of its own:

    python docs/screenshots_studio.py

An admin's choice field with colours on the leads, a rule, a shared view; then the settings
pages, the leads list with the field's badges and the board grouped by the field."""
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.browser import chromium, crm_server, wait_for_session_cookie  # noqa: E402
from tests.conftest import PASSWORD  # noqa: E402

OUT = Path(__file__).parent / "screenshots"


def prepare(db, admin):
    from crm import custom_fields, demo, rules

    demo.load_demo(db, "small", owners=[admin], seed=3)
    custom_fields.add_field(db, admin, "leads", {
        "name": "temperature", "label": "Temperature", "type": "choice",
        "choices": "Hot = #d62728\nWarm = #ff7f0e\nCold = #1f77b4", "in_list": True,
        "filterable": True})
    custom_fields.add_field(db, admin, "deals", {
        "name": "region", "label": "Region", "type": "choice",
        "choices": "North = #2ca02c\nSouth = #9467bd\nExport = #8c564b", "filterable": True})
    with db.transaction() as cur:
        cur.execute("UPDATE leads SET temperature = CASE id % 3 WHEN 0 THEN 'Hot'"
                    " WHEN 1 THEN 'Warm' ELSE 'Cold' END")
        cur.execute("UPDATE deals SET region = CASE id % 3 WHEN 0 THEN 'North'"
                    " WHEN 1 THEN 'South' ELSE 'Export' END")
    rules.save_rule(db, admin, {
        "name": "Call hot leads within a day", "entity": "leads", "trigger": "changed",
        "trigger_config": {"field": "temperature", "to": "Hot"}, "match": "all",
        "conditions": [], "actions": [{"kind": "create_task", "title": "Call {last_name}",
                                       "assignee": "owner", "due_days": 1,
                                       "priority": "high"}], "enabled": True})


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, \
            crm_server(Path(tmp) / "crm.duckdb", prepare=prepare) as url, chromium() as b:
        page = b.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url + "/")
        page.get_by_role("textbox").first.fill("admin")
        page.locator("input[type=password]").fill(PASSWORD)
        page.keyboard.press("Enter")
        wait_for_session_cookie(page)
        for path, name in [("/fields_admin", "studio-fields"), ("/leads", "studio-leads"),
                           ("/rules", "studio-rules")]:
            page.goto(url + path)
            page.wait_for_timeout(5000)
            page.screenshot(path=OUT / f"{name}.png")
        page.goto(url + "/fields_admin")
        page.wait_for_timeout(4000)
        page.get_by_role("tab").nth(1).click()
        page.wait_for_timeout(2000)
        page.screenshot(path=OUT / "studio-layout.png")
        page.goto(url + "/pipeline")
        page.wait_for_timeout(5000)
        page.get_by_role("button", name="Filters").first.click()
        page.wait_for_timeout(800)
        page.get_by_role("combobox", name="Group by").click()
        page.get_by_role("option", name="Region").click()
        page.keyboard.press("Escape")
        page.wait_for_timeout(4000)
        page.screenshot(path=OUT / "studio-board-by-region.png")


if __name__ == "__main__":
    main()
