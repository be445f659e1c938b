"""AppTest: the Custom fields & layouts settings page, and forms and lists that gained a field."""
from crm import custom_fields, leads, records
from streamlit.testing.v1 import AppTest

from tests.test_pages import ROOT, TIMEOUT, assert_refused, errors, page, texts

FORM = "studio:new:0:choice"
ADD = f"FormSubmitter:{FORM}-Add field"


def test_admin_adds_a_choice_field_and_a_rep_fills_and_filters_by_it(app_env):
    at = page("pages/fields_admin.py", user="admin")
    assert not at.exception and not errors(at)
    at.selectbox(key="studio:new:type").set_value("choice").run()
    at.text_input(key=f"{FORM}:label").input("Temperature")
    at.text_input(key=f"{FORM}:name").input("temperature")
    at.text_area(key=f"{FORM}:choices").input("Hot = #d62728\nWarm\nCold")
    at.checkbox(key=f"{FORM}:in_list").check()
    at.checkbox(key=f"{FORM}:filterable").check()
    at.button(key=ADD).click().run()
    assert not at.exception and not errors(at)
    spec = leads.LEADS.spec["temperature"]
    assert spec.choices == ("Hot", "Warm", "Cold") and spec.in_list and spec.filter
    # the next add form starts empty
    assert at.text_input(key="studio:new:1:choice:label").value == ""

    form = page("pages/lead.py", user="reza", id="new")
    form.text_input(key="leads:new:last_name").input("Warmington")
    assert form.selectbox(key="leads:new:temperature").options == ["Hot", "Warm", "Cold"]
    form.selectbox(key="leads:new:temperature").set_value("Warm")
    form.button(key="FormSubmitter:leads:new-Create lead").click().run()
    assert not form.exception and not errors(form)
    lead_id = int(form.query_params["id"][0] if isinstance(form.query_params["id"], list)
                  else form.query_params["id"])
    assert app_env.scalar("SELECT temperature FROM leads WHERE id = $i", {"i": lead_id}) == "Warm"
    leads.create_lead(app_env, custom_user(app_env, "reza"), {"last_name": "Coldwell",
                                                                "temperature": "Cold"})

    lst = page("pages/leads.py", user="reza")
    assert "temperature" in lst.dataframe[0].value.columns
    lst.multiselect(key="leads:filter:temperature").set_value(["Warm"]).run()
    frame = lst.dataframe[0].value
    assert list(frame["last_name"]) == ["Warmington"]


def custom_user(db, username):
    from crm import auth

    return auth.get_user(db, username)


def test_a_bad_field_keeps_what_was_typed_and_says_why(app_env):
    at = page("pages/fields_admin.py", user="admin")
    form = "studio:new:0:text"
    at.text_input(key=f"{form}:label").input("My order")
    at.text_input(key=f"{form}:name").input("order")
    at.button(key=f"FormSubmitter:{form}-Add field").click().run()
    assert "reserved word" in " ".join(errors(at))
    assert at.text_input(key=f"{form}:label").value == "My order"
    assert app_env.scalar("SELECT count(*) FROM custom_fields") == 0


def test_rename_and_delete_from_the_page_keep_the_data(app_env, team):
    field_id = custom_fields.add_field(app_env, team["admin"], "leads",
                                       {"name": "region", "label": "Region", "type": "text",
                                        "in_list": True})
    lead_id = leads.create_lead(app_env, team["reza"], {"last_name": "R", "region": "North"})
    at = page("pages/fields_admin.py", user="admin")
    key = f"studio:edit:{field_id}:1"
    at.text_input(key=f"{key}:label").input("Sales region")
    at.button(key=f"FormSubmitter:{key}-Save field").click().run()
    assert not errors(at)
    assert leads.LEADS.spec["region"].label == "Sales region"
    at.button(key=f"studio:delete:{field_id}").click().run()
    assert "region" not in leads.LEADS.spec
    record = page("pages/lead.py", user="reza", id=str(lead_id))
    assert not record.exception
    assert "leads:" + str(lead_id) not in texts(record)
    assert app_env.scalar("SELECT region FROM leads WHERE id = $i", {"i": lead_id}) == "North"
    at.run()
    at.button(key=f"studio:restore:{field_id}").click().run()
    assert records.get(app_env, team["reza"], leads.LEADS, lead_id)["region"] == "North"
    assert "region" in leads.LEADS.spec


def test_quick_create_form_shows_the_layouts_quick_fields(app_env, team):
    rows = custom_fields.layout(app_env, "leads")
    custom_fields.save_layout(app_env, team["admin"], "leads", [
        {"field": r["field"], "quick": r["field"] in ("last_name", "email")} for r in rows])
    at = page("pages/lead.py", user="reza", id="new")
    keys = {w.key for w in at.text_input}
    assert "leads:new:last_name" in keys and "leads:new:email" in keys
    assert "leads:new:company" not in keys
    at.text_input(key="leads:new:last_name").input("Quick")
    at.button(key="FormSubmitter:leads:new-Create lead").click().run()
    assert not errors(at)
    assert app_env.scalar("SELECT count(*) FROM leads WHERE last_name = 'Quick'") == 1


def test_only_admins_open_the_page(app_env):
    at = page("app.py", user="maria")
    assert_refused(at, "pages/fields_admin.py")
    direct = AppTest.from_file(str(ROOT / "pages/fields_admin.py"), default_timeout=TIMEOUT)
    direct.session_state["authentication_status"] = True
    direct.session_state["username"] = "maria"
    direct.run()  # a fresh server runs the page file itself: its guard refuses
    assert any("cannot open this page" in e for e in errors(direct))
    assert not direct.text_input


def test_settings_file_import_shows_the_changes_then_applies_them(app_env, team):
    from crm import settings_file

    source = settings_file.export_yaml(app_env, team["admin"])
    import yaml

    data = yaml.safe_load(source)
    data["custom_fields"] = {"customers": [{"name": "vat_no", "type": "text",
                                            "label": "VAT number <b>x</b>"}]}
    text = yaml.safe_dump(data, allow_unicode=True).encode()
    at = page("pages/settings.py", user="admin")
    at.file_uploader(key="studio:yaml:in:0").set_value(("crm.yaml", text, "application/x-yaml"))
    at.run()
    assert not at.exception and not errors(at)
    assert "1 change" in texts(at)
    assert app_env.scalar("SELECT count(*) FROM custom_fields") == 0  # shown, not applied
    at.button(key="studio:yaml:apply").click().run()
    assert not errors(at)
    assert app_env.scalar("SELECT label FROM custom_fields WHERE name = 'vat_no'") == \
        "VAT number <b>x</b>"
    bad = page("pages/settings.py", user="admin")
    bad.file_uploader(key="studio:yaml:in:0").set_value(("crm.yaml", b"{oops", "text/plain"))
    bad.run()
    assert "not valid YAML" in " ".join(errors(bad))


def test_a_filterable_number_and_text_field_get_their_own_filters_on_the_list(app_env, team):
    """Filter by it on a money or text field: a from-to pair of number boxes and a
    "contains" box under Filters, and a saved view with them fills those boxes again."""
    from crm import views

    admin, reza = team["admin"], team["reza"]
    for name, kind in (("budget", "money"), ("nickname", "text")):
        custom_fields.add_field(app_env, admin, "leads", {
            "name": name, "label": name.title(), "type": kind, "filterable": True})
    for last, budget, nick in (("Small", "100", "Red fox"), ("Mid", "500", "Blue jay"),
                               ("Big", "9000", "Grey fox")):
        leads.create_lead(app_env, reza, {"last_name": last, "budget": budget,
                                          "nickname": nick})
    at = page("pages/leads.py", user="reza")
    assert not at.exception and not errors(at)
    at.text_input(key="leads:filter:budget:from").input("100")
    at.text_input(key="leads:filter:budget:to").input("500")
    at.text_input(key="leads:filter:nickname").input("fox").run()
    assert not at.exception and not errors(at)
    assert list(at.dataframe[0].value["last_name"]) == ["Small"]
    at.text_input(key="leads:filter:budget:to").input("").run()
    assert sorted(at.dataframe[0].value["last_name"]) == ["Big", "Small"]
    at.text_input(key="leads:filter:budget:from").input("۹٬۰۰۰").run()  # Persian digits
    assert list(at.dataframe[0].value["last_name"]) == ["Big"]
    at.text_input(key="leads:filter:budget:from").input("lots").run()
    assert "is not a number" in " ".join(errors(at))

    view_id = views.create_view(app_env, reza, leads.LEADS, "Mid budgets",
                                {"filters": {"budget": [200, 1000], "nickname": "jay"}})
    again = page("pages/leads.py", user="reza", view=str(view_id))
    assert not again.exception and not errors(again)
    assert again.text_input(key="leads:filter:budget:from").value == "200"
    assert again.text_input(key="leads:filter:nickname").value == "jay"
    assert list(again.dataframe[0].value["last_name"]) == ["Mid"]


def test_the_timeline_shows_custom_values_as_people_read_them(app_env, team):
    """A change of a custom field on the record page's timeline: the linked record's name,
    not its id; the date and time in the user's format; a number's fraction kept; the
    multiple choices as the list shows them."""
    from crm import customers

    admin, reza = team["admin"], team["reza"]
    for name, kind, extra in (("account", "ref", {"ref_table": "customers"}),
                              ("last_call", "datetime", {}), ("score", "number", {}),
                              ("seats", "integer", {}),
                              ("tags", "multichoice", {"choices": "Cars\nBoats"})):
        custom_fields.add_field(app_env, admin, "leads", {"name": name, "label": name.title(),
                                                          "type": kind, **extra})
    parsian = customers.create_customer(app_env, reza, {"name": "Parsian Co"})
    lead_id = leads.create_lead(app_env, reza, {"last_name": "T"})
    leads.update_lead(app_env, reza, lead_id, {
        "account": parsian, "last_call": "2026-03-01 14:30", "score": "42.5", "seats": "7",
        "tags": "Boats; Cars"}, 1)
    at = page("pages/lead.py", user="reza", id=str(lead_id))
    assert not at.exception and not errors(at)
    timeline = next(d.value for d in at.dataframe if "Who" in d.value.columns)
    changed = timeline[timeline["What"] == "changed"]
    after = dict(zip(changed["Field"], changed["After"]))
    assert after == {"Account": "Parsian Co", "Last_Call": "2026-03-01 14:30", "Score": "42.50",
                     "Seats": "7", "Tags": "Cars, Boats"}


def test_the_record_page_of_an_existing_lead_shows_and_saves_a_new_field(app_env, team):
    """A field added after the lead was made is on its record page at once, in its section,
    and saving the page writes it."""
    lead_id = leads.create_lead(app_env, team["reza"], {"last_name": "Older"})
    custom_fields.add_field(app_env, team["admin"], "leads", {
        "name": "shoe_size", "label": "Shoe size", "type": "integer", "section": "Body"})
    at = page("pages/lead.py", user="reza", id=str(lead_id))
    assert not at.exception and not errors(at)
    assert "**Body**" in [m.value for m in at.markdown]
    box = at.number_input(key=f"leads:{lead_id}:v1:shoe_size")
    assert box.value is None
    box.set_value(44)
    at.button(key=f"FormSubmitter:leads:{lead_id}:v1-Save changes").click().run()
    assert not at.exception and not errors(at)
    assert app_env.scalar("SELECT shoe_size FROM leads WHERE id = $i", {"i": lead_id}) == 44


def test_tasks_activities_and_contacts_added_inside_a_record_page_get_custom_fields(app_env,
                                                                                   team):
    """The Tasks and Activities tabs of a record and the customer page's "Add a contact" are
    forms of their own: an admin's fields on tasks, activities and contacts are on them too (a
    required one made every task added there fail before, with no box to fill it)."""
    from crm import customers

    admin, reza = team["admin"], team["reza"]
    custom_fields.add_field(app_env, admin, "tasks", {
        "name": "effort", "label": "Effort", "type": "choice", "choices": "S\nM\nL",
        "required": True})
    custom_fields.add_field(app_env, admin, "activities", {
        "name": "mood", "label": "Mood", "type": "text"})
    custom_fields.add_field(app_env, admin, "contacts", {
        "name": "nickname", "label": "Nickname", "type": "text"})
    lead_id = leads.create_lead(app_env, reza, {"last_name": "Lee"})
    at = page("pages/lead.py", user="reza", id=str(lead_id))
    form = f"task:new:lead_id:{lead_id}"
    at.text_input(key=f"{form}:title").input("Call back")
    at.selectbox(key=f"{form}:effort").set_value("M")
    at.button(key=f"FormSubmitter:{form}-Add task").click().run()
    assert not at.exception and not errors(at)
    assert app_env.one("SELECT title, effort FROM tasks") == {"title": "Call back", "effort": "M"}
    form = f"activity:new:lead_id:{lead_id}"
    at.text_input(key=f"{form}:subject").input("Talked")
    at.text_input(key=f"{form}:mood").input("Cheerful")
    at.button(key=f"FormSubmitter:{form}-Log activity").click().run()
    assert not at.exception and not errors(at)
    assert app_env.scalar("SELECT mood FROM activities") == "Cheerful"

    cid = customers.create_customer(app_env, reza, {"name": "Acme"})
    at = page("pages/customer.py", user="reza", id=str(cid))
    form = f"contact:new:{cid}"
    at.text_input(key=f"{form}:last_name").input("Karimi")
    at.text_input(key=f"{form}:nickname").input("Kay")
    at.button(key=f"FormSubmitter:{form}-Add contact").click().run()
    assert not at.exception and not errors(at)
    assert app_env.scalar("SELECT nickname FROM contacts") == "Kay"


def test_a_rep_filters_by_a_custom_user_field(app_env, team):
    """Reps get no owner filter (they see only their own records), but a field of an admin's
    that names a user (a partner, a second rep) is a filter like any other."""
    custom_fields.add_field(app_env, team["admin"], "leads", {
        "name": "partner", "label": "Partner", "type": "user", "filterable": True})
    leads.create_lead(app_env, team["reza"], {"last_name": "WithSam", "partner": team["sam"].id})
    leads.create_lead(app_env, team["reza"], {"last_name": "Alone"})
    at = page("pages/leads.py", user="reza")
    keys = {m.key for m in at.multiselect}
    assert "leads:filter:owner_id" not in keys
    at.multiselect(key="leads:filter:partner").set_value([team["sam"].id]).run()
    assert not at.exception and not errors(at)
    assert list(at.dataframe[0].value["last_name"]) == ["WithSam"]


def test_the_form_layout_tab_saves_an_order_sections_and_choices(app_env, team):
    """The Form layout tab's table: a field moved first, put in a new section and kept off the
    create form is saved so; untouched rows keep the code's (translated) sections; "Back to
    the standard layout" forgets it all."""
    custom_fields.add_field(app_env, team["admin"], "leads", {
        "name": "budget_note", "label": "Budget note", "type": "text"})
    at = page("pages/fields_admin.py", user="admin")
    rows = custom_fields.layout(app_env, "leads")
    email = [r["field"] for r in rows].index("email")
    note = [r["field"] for r in rows].index("budget_note")
    at.session_state["studio:layout:leads"] = {
        "edited_rows": {note: {"order": 1, "section": "Money matters", "in_list": True},
                        email: {"quick": False}},
        "added_rows": [], "deleted_rows": []}
    at.button(key="studio:layout:save:leads").click().run()
    assert not at.exception and not errors(at)
    stored = {r["field"]: r for r in app_env.query("SELECT * FROM field_layouts")}
    assert stored["budget_note"]["position"] == 1
    assert stored["budget_note"]["section"] == "Money matters" and stored["budget_note"]["in_list"]
    assert not stored["email"]["quick"] and stored["last_name"]["section"] is None
    assert leads.LEADS.fields[0].name == "budget_note"
    assert not leads.LEADS.spec["email"].quick
    form = page("pages/lead.py", user="reza", id="new")
    assert "leads:new:email" not in {w.key for w in form.text_input}
    at.button(key="studio:layout:reset:leads").click().run()
    assert app_env.scalar("SELECT count(*) FROM field_layouts") == 0
    assert leads.LEADS.spec["email"].quick
