"""Two app servers (two `streamlit run` processes) on one PostgreSQL database, a browser
session on each: they edit the same lead and move the same deal. One save wins, the other gets
the conflict screen, and nothing is lost."""
import pytest
from playwright.sync_api import expect

from crm import auth, deals, leads, pipelines, records
from crm.db import Database
from tests.browser import chromium, require_chromium, streamlit_server, wait_for_session_cookie
from tests.conftest import PASSWORD, _create_database, _drop_database

require_chromium()


@pytest.fixture(scope="module")
def servers(pg_cluster):
    name = _create_database(pg_cluster, "crm_two_servers", "crm_template")
    url = pg_cluster.url(name)
    db = Database(url)
    auth.create_user(db, None, "admin", "Ada Admin", "ada@example.com", PASSWORD, "admin")
    admin = auth.get_user(db, "admin")
    stages = {s["name"]: s["id"] for s in
              pipelines.stages_of(db, pipelines.default_pipeline_id(db))}
    ids = {"lead": leads.create_lead(db, admin, {"last_name": "Shared", "company": "Before"}),
           "deal": deals.create_deal(db, admin, {"title": "Contested", "amount": "500",
                                                 "stage_id": stages["Prospecting"]}),
           "stages": stages}
    # no CRM_COOKIE_KEY: the servers find their shared key in the database
    env = {"CRM_DB": url, "CRM_COOKIE_KEY": ""}
    try:
        with streamlit_server("app.py", env) as one, streamlit_server("app.py", env) as two:
            yield db, admin, ids, one, two
    finally:
        db.close()
        _drop_database(pg_cluster, name)


@pytest.fixture(scope="module")
def pages(servers):
    _db, _admin, _ids, one, two = servers
    with chromium() as browser:
        opened = []
        for url in (one, two):
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.goto(url + "/")
            page.get_by_role("textbox", name="Username").fill("admin")
            page.get_by_role("textbox", name="Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("button", name="Sign out")).to_be_visible(timeout=30_000)
            wait_for_session_cookie(page)
            opened.append((page, url))
        yield opened


def test_both_servers_sign_cookies_with_the_key_kept_in_the_database(servers, pages):
    from crm import settings
    from crm.ui import cookie

    db = servers[0]
    key = settings.shared_cookie_key(db)
    for page, _url in pages:
        token = next(c["value"] for c in page.context.cookies() if c["name"] == "crm_session")
        assert cookie.decode(token, key)["username"] == "admin"
        assert cookie.decode(token, "another-key-" + "x" * 32) is None
    # signed in on the first server, the same browser is signed in on the second
    page, _url = pages[0]
    other = page.context.new_page()
    other.goto(pages[1][1] + "/")
    expect(other.get_by_role("button", name="Sign out")).to_be_visible(timeout=30_000)
    other.close()


def test_the_same_lead_saved_on_two_servers_one_wins_the_other_sees_the_conflict(servers,
                                                                                  pages):
    db, admin, ids, _one, _two = servers
    (first, url_one), (second, url_two) = pages
    for page, url in pages:  # both open the lead before either saves
        page.goto(url + f"/lead?id={ids['lead']}")
        expect(page.get_by_role("textbox", name="Company")).to_have_value("Before",
                                                                          timeout=30_000)
    first.get_by_role("textbox", name="Company").fill("From server one")
    first.get_by_role("button", name="Save changes").click()
    expect(first.get_by_text("Saved", exact=True)).to_be_visible(timeout=30_000)
    second.get_by_role("textbox", name="Company").fill("From server two")
    second.get_by_role("button", name="Save changes").click()
    expect(second.get_by_text("Not saved:", exact=False)).to_be_visible(timeout=30_000)
    lead = records.get(db, admin, leads.LEADS, ids["lead"])
    assert (lead["company"], lead["version"]) == ("From server one", 2)
    # nothing is lost: the second keeps its values and may save them over the first's
    expect(second.get_by_role("textbox", name="Company")).to_have_value("From server two")
    second.get_by_role("button", name="Save my values over theirs").click()
    expect(second.get_by_text("Saved", exact=True)).to_be_visible(timeout=30_000)
    lead = records.get(db, admin, leads.LEADS, ids["lead"])
    assert (lead["company"], lead["version"]) == ("From server two", 3)


def _choose(page, stage: str) -> None:
    box = page.get_by_role("combobox", name="Move to")
    expect(box).to_be_visible(timeout=30_000)
    page.wait_for_timeout(800)  # the page has settled
    box.click()
    page.wait_for_timeout(300)
    if not page.get_by_role("option").count():
        page.keyboard.press("ArrowDown")
    page.get_by_role("option", name=f"{stage} (", exact=False).click()
    expect(page.get_by_role("button", name="Move", exact=True)).to_be_enabled(timeout=30_000)
    page.wait_for_timeout(800)


def test_the_same_deal_moved_on_two_servers_one_wins_the_other_is_told(servers, pages):
    db, admin, ids, _one, _two = servers
    (first, url_one), (second, url_two) = pages
    for page, url in pages:
        page.goto(url + f"/deal?id={ids['deal']}")
        expect(page.get_by_text("Stage: Prospecting", exact=False)).to_be_visible(
            timeout=30_000)
    _choose(first, "Proposal")  # both choose while the deal is in Prospecting
    _choose(second, "Negotiation")
    first.get_by_role("button", name="Move", exact=True).click()
    expect(first.get_by_text("Moved to Proposal", exact=False)).to_be_visible(timeout=30_000)
    second.get_by_role("button", name="Move", exact=True).click()
    expect(second.get_by_text("Someone changed this deal a moment ago", exact=False)
           ).to_be_visible(timeout=30_000)
    deal = records.get(db, admin, deals.DEALS, ids["deal"])
    assert deal["stage_id"] == ids["stages"]["Proposal"] and deal["version"] == 2
    history = deals.stage_history(db, admin, ids["deal"])
    assert sorted((h["from_stage"] or "", h["to_stage"]) for h in history) == \
        [("", "Prospecting"), ("Prospecting", "Proposal")]
    # the second looks again (the page shows Proposal now) and its retry moves from there
    expect(second.get_by_text("Stage: Proposal", exact=False)).to_be_visible(timeout=30_000)
    second.get_by_role("button", name="Move", exact=True).click()
    expect(second.get_by_text("Moved to Negotiation", exact=False)).to_be_visible(
        timeout=30_000)
    assert records.get(db, admin, deals.DEALS, ids["deal"])["version"] == 3
