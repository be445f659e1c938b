"""AppTest: sign-in, role-based navigation, lead and customer forms (valid, invalid, stale)."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from crm import auth, leads, records
from crm.ui import navigation
from tests.conftest import PASSWORD

TIMEOUT = 30
ROOT = Path(__file__).resolve().parent.parent


def page(path, user=None, state=None, **params):
    """Runs a page the way the server does: through app.py when signed in, and on its own
    when not (a fresh server serves /<page> without running app.py)."""
    at = AppTest.from_file(str(ROOT / ("app.py" if user else path)), default_timeout=TIMEOUT)
    for k, v in (state or {}).items():  # e.g. the language picked on the sign-in page
        at.session_state[k] = v
    if user:
        at.session_state["authentication_status"] = True
        at.session_state["username"] = user
        at.run()
        if path != "app.py":
            at.switch_page(path)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def assert_refused(at, path):
    """The page is either missing from the role's navigation or its guard refuses it.
    (Which of the two depends on whether app.py's st.navigation has run in this process.)"""
    try:
        at.switch_page(path)
    except ValueError as exc:
        assert "Could not find a navigation page" in str(exc)
        return
    at.run()
    assert any("cannot open this page" in e for e in errors(at))
    assert not at.dataframe and not at.text_input


def texts(at):
    return " ".join(str(e.value) for e in [*at.markdown, *at.title, *at.caption])


def errors(at):
    return [e.value for e in at.error]


def test_first_visit_asks_for_the_first_admin(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_DB", str(tmp_path / "fresh.duckdb"))
    at = page("app.py")
    assert at.title[0].value == "Welcome to the CRM"
    at.text_input(key="fa_name").input("Ada Admin")
    at.text_input(key="fa_username").input("ada")
    at.text_input(key="fa_email").input("ada@example.com")
    at.text_input(key="fa_password").input("weak")
    at.text_input(key="fa_repeat").input("weak")
    at.button[0].click().run()
    assert "at least 10 characters" in " ".join(errors(at))
    at.text_input(key="fa_password").input(PASSWORD)
    at.text_input(key="fa_repeat").input(PASSWORD)
    at.button[0].click().run()
    assert at.session_state["username"] == "ada"
    assert "Hello, Ada" in texts(at)


def test_unsigned_visit_to_leads_shows_login_and_no_data(app_env, team):
    leads.create_lead(app_env, team["admin"], {"last_name": "Secretvalue"})
    at = page("pages/leads.py")
    assert "Sign in" in texts(at) or any(f for f in at.get("form"))
    assert "Secretvalue" not in str(at)
    assert not at.dataframe


def test_sign_in_then_role_navigation(app_env):
    at = page("app.py")
    at.text_input[0].input("reza")
    at.text_input[1].input(PASSWORD)
    at.button[0].click().run()
    at.run()
    assert at.session_state["authentication_status"] is True
    assert "Hello, Reza" in texts(at)
    links = [p.proto.label for p in at.sidebar.get("page_link")]
    assert links == ["Home", "Leads", "Customers", "Pipeline", "Deals", "Products",
                     "Competitors", "Price records", "Returns and cancellations",
                     "Activities & tasks", "Complaints", "Surveys", "Forecast", "Satisfaction",
                     "Market audit", "Import",
                     "My account"]  # a rep has no Settings


def test_wrong_password_says_so_and_fifth_failure_locks(app_env):
    at = page("app.py")
    for attempt in range(5):
        at.text_input[0].input("sam")
        at.text_input[1].input("wrong password")
        at.button[0].click().run()
    assert any("locked for 15 minutes" in e for e in errors(at))
    at.text_input[0].input("sam")
    at.text_input[1].input(PASSWORD)
    at.button[0].click().run()
    assert any("locked" in e for e in errors(at))
    assert not at.session_state["authentication_status"]


@pytest.mark.parametrize("role,expected", [
    ("admin", ["Home", "Leads", "Customers", "Pipeline", "Deals", "Products", "Competitors", "Price records",
               "Returns and cancellations", "Activities & tasks", "Complaints", "Surveys",
               "Forecast", "Satisfaction", "Market audit", "Import",
               "Users", "Pipelines & stages", "Custom fields & layouts", "Automation rules",
               "General", "My account"]),
    ("manager", ["Home", "Leads", "Customers", "Pipeline", "Deals", "Products", "Competitors", "Price records",
               "Returns and cancellations", "Activities & tasks", "Complaints", "Surveys",
               "Forecast", "Satisfaction", "Market audit", "Import",
               "My account"]),
    ("rep", ["Home", "Leads", "Customers", "Pipeline", "Deals", "Products", "Competitors", "Price records",
               "Returns and cancellations", "Activities & tasks", "Complaints", "Surveys",
               "Forecast", "Satisfaction", "Market audit", "Import",
               "My account"]),
    ("viewer", ["Home", "Forecast", "Satisfaction", "Market audit", "My account"]),
])
def test_menu_per_role(role, expected):
    assert [p[2] for p in navigation.allowed(role) if p[5]] == expected


def test_viewer_cannot_open_leads(app_env, team):
    leads.create_lead(app_env, team["admin"], {"last_name": "Secretvalue"})
    at = page("app.py", user="vic")
    assert "Hello, Vic" in texts(at)
    assert_refused(at, "pages/leads.py")
    assert "Secretvalue" not in str(at)
    direct = AppTest.from_file(str(ROOT / "pages/leads.py"), default_timeout=TIMEOUT)
    direct.session_state["authentication_status"] = True
    direct.session_state["username"] = "vic"
    direct.run()  # a fresh server runs the page file itself: its guard refuses
    assert any("cannot open this page" in e for e in errors(direct))
    assert not direct.dataframe


def test_lead_form_creates_a_lead(app_env, team):
    at = page("pages/lead.py", user="reza", id="new")
    at.text_input(key="leads:new:first_name").input("Shirin")
    at.text_input(key="leads:new:last_name").input("Tehrani")
    at.text_input(key="leads:new:email").input("shirin@example.ir")
    at.number_input(key="leads:new:estimated_value").set_value(1500.0)
    at.selectbox(key="leads:new:source").set_value("referral")
    at.button(key="FormSubmitter:leads:new-Create lead").click().run()
    assert not errors(at)
    lead_id = int(at.query_params["id"][0] if isinstance(at.query_params["id"], list)
                  else at.query_params["id"])
    row = records.get(app_env, team["reza"], leads.LEADS, lead_id)
    assert (row["last_name"], row["source"], float(row["estimated_value"])) == (
        "Tehrani", "referral", 1500.0)
    assert at.title[0].value == "Shirin Tehrani"


def test_invalid_lead_form_shows_messages_and_keeps_what_was_typed(app_env):
    at = page("pages/lead.py", user="reza", id="new")
    at.text_input(key="leads:new:first_name").input("Kept")
    at.text_input(key="leads:new:email").input("not-an-email")
    at.text_input(key="leads:new:company").input("x" * 201)
    at.number_input(key="leads:new:estimated_value").set_value(-5.0)
    at.button(key="FormSubmitter:leads:new-Create lead").click().run()
    shown = " ".join(errors(at))
    assert "Last name is required" in shown
    assert "not a valid email" in shown
    assert "too long" in shown
    assert "cannot be less than 0" in shown
    assert at.text_input(key="leads:new:first_name").value == "Kept"
    assert at.text_input(key="leads:new:email").value == "not-an-email"
    assert app_env.scalar("SELECT count(*) FROM leads") == 0


def test_customer_form_and_contacts(app_env, team):
    at = page("pages/customer.py", user="maria", id="new")
    at.text_input(key="customers:new:name").input("Acme Iran")
    at.selectbox(key="customers:new:kind").set_value("company")
    at.text_input(key="customers:new:city").input("Tabriz")
    at.number_input(key="customers:new:credit_limit").set_value(5000.0)
    at.button(key="FormSubmitter:customers:new-Create customer").click().run()
    assert not errors(at)
    cid = app_env.scalar("SELECT id FROM customers WHERE name = 'Acme Iran'")
    assert cid is not None
    form = f"contact:new:{cid}"
    at.text_input(key=f"{form}:last_name").input("Karimi")
    at.text_input(key=f"{form}:email").input("bad@")
    at.button(key=f"FormSubmitter:{form}-Add contact").click().run()
    assert any("not a valid email" in e for e in errors(at))
    assert at.text_input(key=f"{form}:last_name").value == "Karimi"
    at.text_input(key=f"{form}:email").input("karimi@acme.ir")
    at.button(key=f"FormSubmitter:{form}-Add contact").click().run()
    assert app_env.scalar("SELECT count(*) FROM contacts WHERE customer_id = $c", {"c": cid}) == 1


def test_invalid_customer_form(app_env):
    at = page("pages/customer.py", user="maria", id="new")
    at.text_input(key="customers:new:email").input("nobody")
    at.number_input(key="customers:new:credit_limit").set_value(-1.0)
    at.button(key="FormSubmitter:customers:new-Create customer").click().run()
    shown = " ".join(errors(at))
    assert "Name is required" in shown and "cannot be less than 0" in shown
    assert at.text_input(key="customers:new:email").value == "nobody"


def test_stale_save_is_refused_with_the_differences_and_keeps_typing(app_env, team):
    lead_id = leads.create_lead(app_env, team["admin"], {"last_name": "Race"})
    at = page("pages/lead.py", user="admin", id=str(lead_id))
    leads.update_lead(app_env, team["maria"], lead_id, {"status": "qualified"}, 1)
    form = f"leads:{lead_id}:v1"
    at.selectbox(key=f"{form}:status").set_value("contacted")
    at.text_input(key=f"{form}:title").input("CFO")
    at.button(key=f"FormSubmitter:{form}-Save changes").click().run()
    warning = " ".join(w.value for w in at.warning)
    assert "Not saved: Maria Manager changed this lead" in warning
    changed = at.dataframe[0].value
    assert list(changed["Field"]) == ["Status"]
    assert list(changed["Saved by them"]) == ["qualified"]
    assert at.text_input(key=f"{form}:title").value == "CFO"
    assert records.get(app_env, team["admin"], leads.LEADS, lead_id)["title"] is None
    at.button(key=f"{form}:overwrite").click().run()
    row = records.get(app_env, team["admin"], leads.LEADS, lead_id)
    assert (row["status"], row["title"], row["version"]) == ("contacted", "CFO", 3)


def test_rep_opening_someone_elses_lead_sees_no_data(app_env, team):
    lead_id = leads.create_lead(app_env, team["sam"], {"last_name": "Private"})
    at = page("pages/lead.py", user="reza", id=str(lead_id))
    assert any("own records" in e for e in errors(at))
    assert "Private" not in texts(at)


def test_leads_list_filters_and_opens(app_env, team):
    for i in range(3):
        leads.create_lead(app_env, team["admin"], {"last_name": f"Listed{i}",
                                                   "status": "new" if i else "qualified"})
    at = page("pages/leads.py", user="admin")
    assert len(at.dataframe[0].value) == 3
    at.multiselect(key="leads:filter:status").set_value(["qualified"]).run()
    assert list(at.dataframe[0].value["last_name"]) == ["Listed0"]
    at.text_input(key="leads:search").input("nothing-like-this").run()
    assert not at.dataframe and "Nothing matches" in " ".join(i.value for i in at.info)


def test_timeline_shows_who_changed_what(app_env, team):
    lead_id = leads.create_lead(app_env, team["admin"], {"last_name": "Timeline"})
    leads.update_lead(app_env, team["maria"], lead_id, {"status": "contacted"}, 1)
    at = page("pages/lead.py", user="admin", id=str(lead_id))
    frames = [d.value for d in at.dataframe]
    timeline = next(f for f in frames if "Who" in f.columns)
    first = timeline.iloc[0]
    assert (first["Who"], first["Field"], first["Before"], first["After"]) == (
        "maria", "Status", "New", "Contacted")


def test_timeline_names_the_import_that_created_a_record(app_env, team):
    from crm import importer

    source = importer.read(b"Last Name,Email\nImported,imp@example.com\n", "in.csv")
    plan = importer.plan(app_env, team["admin"], leads.LEADS, source,
                         importer.propose_mapping(leads.LEADS, source.headers), key="email")
    import_id = importer.execute(app_env, team["admin"], plan)
    lead_id = app_env.scalar("SELECT id FROM leads WHERE last_name = 'Imported'")
    at = page("pages/lead.py", user="admin", id=str(lead_id))
    timeline = next(d.value for d in at.dataframe if "Who" in d.value.columns)
    assert list(timeline["What"]) == [f"imported (import #{import_id})"]


def test_users_page_is_admin_only_and_adds_users(app_env):
    assert_refused(page("app.py", user="maria"), "pages/users.py")
    at = page("pages/users.py", user="admin")
    at.text_input(key="nu_name").input("Nora New")
    at.text_input(key="nu_username").input("nora")
    at.text_input(key="nu_password").input(PASSWORD)
    at.button(key="FormSubmitter:add_user-Add user").click().run()
    assert not errors(at)
    assert auth.get_user(app_env, "nora").role == "rep"


def test_first_admin_with_demo_data_shows_the_demo_password_until_dismissed(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("CRM_DB", str(tmp_path / "fresh.duckdb"))
    monkeypatch.delenv("CRM_DEMO_PASSWORD", raising=False)
    at = page("app.py")
    at.text_input(key="fa_name").input("Ada Admin")
    at.text_input(key="fa_username").input("ada")
    at.text_input(key="fa_password").input(PASSWORD)
    at.text_input(key="fa_repeat").input(PASSWORD)
    at.checkbox(key="fa_demo").check()
    at.button[0].click().run()
    password = at.code[0].value
    at.run()  # any rerun (the cookie component causes one) keeps it on screen
    assert at.code[0].value == password
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Open leads"]) > 0
    from crm.db import Database

    assert auth.verify_login(Database(tmp_path / "fresh.duckdb"), "reza", password)
    at.button(key="dismiss_demo_password").click().run()
    assert not at.code
