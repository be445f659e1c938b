"""Issue 6, pages (AppTest): tasks from the UI, a new pipeline, new-record defaults, sessions
ended elsewhere, and no user text read as markdown on any page."""
import pytest
from streamlit.testing.v1 import AppTest

from crm import activities, auth, customers, deals, leads, pipelines, service
from tests.conftest import PASSWORD, element_strings
from tests.test_pages import errors, page

HOSTILE = ("![t](http://evil.invalid/x.png) [Reset password](http://evil.invalid/phish) "
           "**bold** :red[alarm] <b>x</b> `code`")
# what must never reach a markdown-rendered string unescaped
MARKUP = ("![t](", "[Reset password](", "**bold**", ":red[", "`code`")


@pytest.fixture
def stage(db):
    return {s["name"]: s["id"] for s in
            pipelines.stages_of(db, pipelines.default_pipeline_id(db))}


# --- 1: tasks can be created from the UI ---------------------------------------------------

@pytest.mark.parametrize("path,link", [("pages/lead.py", "lead_id"),
                                       ("pages/customer.py", "customer_id"),
                                       ("pages/deal.py", "deal_id")])
def test_the_tasks_tab_adds_an_open_task(app_env, team, stage, path, link):
    reza = team["reza"]
    record_id = {"lead_id": lambda: leads.create_lead(app_env, reza, {"last_name": "Lee"}),
                 "customer_id": lambda: customers.create_customer(app_env, reza,
                                                                  {"name": "Acme"}),
                 "deal_id": lambda: deals.create_deal(app_env, reza, {
                     "title": "D", "stage_id": stage["Prospecting"]})}[link]()
    at = page(path, user="reza", id=str(record_id))
    form = f"task:new:{link}:{record_id}"
    at.text_input(key=f"{form}:title").input("Call back about pricing")
    at.button(key=f"FormSubmitter:{form}-Add task").click().run()
    assert not errors(at)
    [task] = activities.tasks_for(app_env, reza, link, record_id)
    assert (task["title"], task["status"]) == ("Call back about pricing", "open")


def test_new_task_page_offers_the_records_to_link_and_creates_it(app_env, team, stage):
    reza, sam = team["reza"], team["sam"]
    mine = customers.create_customer(app_env, reza, {"name": "Reza's customer"})
    theirs = customers.create_customer(app_env, sam, {"name": "Sam's customer"})
    my_deal = deals.create_deal(app_env, reza, {"title": "Reza's deal",
                                                "stage_id": stage["Prospecting"]})
    at = page("pages/activities.py", user="reza")
    at.button(key="tasks:new").click().run()  # "New task" under All tasks
    assert "New task" in [t.value for t in at.title]
    at = page("pages/task.py", user="reza", id="new")
    customer_options = at.selectbox(key="tasks:new:customer_id").options
    assert "Reza's customer" in customer_options and "Sam's customer" not in customer_options
    assert "Reza's deal" in at.selectbox(key="tasks:new:deal_id").options
    at.text_input(key="tasks:new:title").input("Send the contract")
    at.selectbox(key="tasks:new:customer_id").set_value(mine)
    at.selectbox(key="tasks:new:deal_id").set_value(my_deal)
    at.button(key="FormSubmitter:tasks:new-Create task").click().run()
    assert not errors(at)
    [task] = activities.tasks_for(app_env, reza, "deal_id", my_deal)
    assert task["title"] == "Send the contract" and task["status"] == "open"
    assert activities.tasks_for(app_env, reza, "customer_id", mine)
    assert not activities.tasks_for(app_env, sam, "customer_id", theirs)


# --- 2: a new pipeline opens without a crash -------------------------------------------------

def test_new_pipeline_is_created_and_chosen(app_env):
    at = page("pages/pipelines_admin.py", user="admin")
    at.text_input(key="new_pipeline_name").input("Renewals")
    at.button(key="create_pipeline").click().run()
    assert not at.exception, at.exception
    created = {p["name"]: p["id"] for p in pipelines.list_pipelines(app_env)}["Renewals"]
    assert at.selectbox(key="admin_pipeline").value == created
    assert [s["name"] for s in pipelines.stages_of(app_env, created)][0] == "Prospecting"


# --- 3: a new record's form carries its defaults in the widgets themselves ------------------

@pytest.mark.parametrize("path,table,field,expected", [
    ("pages/lead.py", "leads", "status", "new"),
    ("pages/customer.py", "customers", "status", "active"),
    ("pages/customer.py", "customers", "kind", "company"),
])
def test_new_record_forms_send_their_defaults_with_the_widget(app_env, path, table, field,
                                                              expected):
    at = page(path, user="reza", id="new")
    box = at.selectbox(key=f"{table}:new:{field}")
    # The browser shows the widget's default until the session's value arrives; a blank
    # default showed "Choose…" on a required field now and then.
    assert box.proto.HasField("default")
    assert box.options[box.proto.default] == box.format_func(expected)
    assert box.value == expected


# --- 4: a deal whose stage was deleted opens --------------------------------------------------

def test_deal_page_opens_a_deal_whose_stage_was_deleted(app_env, team, stage):
    deal_id = deals.create_deal(app_env, team["admin"], {"title": "Orphan",
                                                         "stage_id": stage["Qualification"]})
    with app_env.transaction() as cur:
        cur.execute("UPDATE stages SET deleted_at = now() WHERE id = $s",
                    {"s": stage["Qualification"]})
    at = page("pages/deal.py", user="admin", id=str(deal_id))
    assert not at.exception
    assert any("stage no longer exists" in w.value for w in at.warning)
    at.selectbox(key="move_to").set_value(stage["Proposal"]).run()
    at.button(key="move_button").click().run()
    assert app_env.scalar("SELECT stage_id FROM deals WHERE id = $d", {"d": deal_id}) == \
        stage["Proposal"]


# --- 8: signing out ends the user's other live sessions ---------------------------------------

def test_signing_out_ends_the_other_sessions_of_that_user(app_env):
    first, second = page("app.py", user="reza"), page("app.py", user="reza")
    assert "Hello, Reza" in [t.value for t in second.title][0]
    first.button(key="sign_out").click().run()
    first.run()
    assert not first.session_state["authentication_status"]
    second.run()  # any interaction of the other session
    assert not second.session_state["authentication_status"]
    assert not second.title or "Hello" not in second.title[0].value
    assert any(b.label == "Sign in" for b in second.button)


def test_a_new_sign_in_after_signing_out_works(app_env):
    at = page("app.py", user="reza")
    at.button(key="sign_out").click().run()
    at.run()
    at.text_input[0].input("reza")
    at.text_input[1].input(PASSWORD)
    at.button[0].click().run()
    at.run()
    assert at.session_state["authentication_status"] is True


# --- 6: user text never renders as markdown ---------------------------------------------------

def _markdown_strings(at: AppTest) -> list[tuple[str, str]]:
    """Every string of the page that Streamlit renders as markdown: bodies, labels, helps,
    radio options, tab labels."""
    return element_strings(at, ("body", "label", "help", "tab_labels"), radio_options=True)


def test_no_page_renders_user_text_as_markdown(app_env, team, stage):
    admin = team["admin"]
    auth.update_user(app_env, admin, team["maria"].id, name=HOSTILE)
    lead = leads.create_lead(app_env, team["maria"], {"last_name": HOSTILE, "company": HOSTILE,
                                                      "status": "qualified"})
    leads.create_lead(app_env, admin, {"last_name": HOSTILE, "company": HOSTILE})
    customer = customers.create_customer(app_env, team["maria"], {"name": HOSTILE,
                                                                  "city": HOSTILE})
    contact = customers.add_contact(app_env, admin, customer, {"last_name": HOSTILE,
                                                               "title": HOSTILE})
    deal = deals.create_deal(app_env, team["maria"], {"title": HOSTILE, "customer_id": customer,
                                                      "stage_id": stage["Prospecting"]})
    activities.log_activity(app_env, team["maria"], {"subject": HOSTILE, "deal_id": deal})
    task = activities.create_task(app_env, admin, {"title": HOSTILE, "deal_id": deal})
    survey = service.create_survey(app_env, team["maria"], {
        "customer_id": customer, "answered_on": "2026-01-10", "channel": "web", "nps": 2,
        "comment": HOSTILE})
    complaint = service.create_complaint(app_env, team["maria"], {
        "customer_id": customer, "subject": HOSTILE, "category": "other", "severity": "high",
        "description": HOSTILE, "opened_on": "2026-01-11"})
    with app_env.transaction() as cur:  # someone named a stage like that, too
        cur.execute("UPDATE stages SET name = $n WHERE id = $s",
                    {"n": HOSTILE, "s": stage["Negotiation"]})
    # the maria lead has a duplicate-looking customer: conversion options show names
    pages = [("pages/home.py", {}), ("pages/leads.py", {}), ("pages/lead.py", {"id": lead}),
             ("pages/customers.py", {}), ("pages/customer.py", {"id": customer}),
             ("pages/contact.py", {"id": contact}), ("pages/deals.py", {}),
             ("pages/deal.py", {"id": deal}), ("pages/pipeline.py", {}),
             ("pages/activities.py", {}), ("pages/task.py", {"id": task}),
             ("pages/users.py", {}), ("pages/pipelines_admin.py", {}),
             ("pages/settings.py", {}), ("pages/account.py", {}), ("pages/import.py", {}),
             ("pages/complaints.py", {}), ("pages/complaint.py", {"id": complaint}),
             ("pages/surveys.py", {}), ("pages/survey.py", {"id": survey}),
             ("pages/satisfaction.py", {}), ("pages/forecast.py", {})]
    admin_only = ("pages/users.py", "pages/pipelines_admin.py", "pages/settings.py")
    for path, params in pages:
        for as_user in ("admin",) if path in admin_only else ("admin", "maria"):
            at = page(path, user=as_user, **{k: str(v) for k, v in params.items()})
            assert not at.exception, (path, at.exception)
            leaked = [(where, s) for s, where in _markdown_strings(at)
                      if any(m in s for m in MARKUP)]
            assert not leaked, (path, as_user, leaked)
    # and the check itself sees user text where it is shown
    at = page("pages/lead.py", user="admin", id=str(lead))
    assert any("Reset password" in s for s, _ in _markdown_strings(at))
