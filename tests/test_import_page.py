"""AppTest of the Import page: upload, detection, mapping, dry run, import, history and undo;
bad files say what is wrong and crash nothing."""
import io

import pytest

from crm import customers, importer, leads, records
from tests.test_pages import errors, page

PAGE = "pages/import.py"
PERSIAN_CSV = ("First Name,Last Name,E-mail Address,Company,Lead Source,Consent,Consent date\n"
               "علی,رضایی,ali@example.ir,شرکت آفتاب,referral,yes,25/12/2025\n"
               "مریم,احمدی,maryam@example.ir,بازرگانی نور,,بله,03/04/2025\n"
               "Ada,Lovelace,not-an-email,Analytical,,,\n").encode("utf-8")


def upload(at, data: bytes, name="leads.csv", mime="text/csv"):
    at.file_uploader(key="imp_file").set_value((name, data, mime))
    return at.run()


def captions(at) -> str:
    return " ".join(c.value for c in at.caption)


def live_leads(db) -> list[str]:
    return [r["last_name"] for r in
            db.query("SELECT last_name FROM leads WHERE deleted_at IS NULL ORDER BY id")]


def test_upload_dry_run_import_and_undo(app_env, team):
    at = page(PAGE, user="admin")
    assert not at.exception and "No imports yet" in captions(at)
    upload(at, PERSIAN_CSV)
    assert not at.exception and not errors(at)
    assert "UTF" in captions(at) and "rows: 3" in captions(at)  # what was detected
    mapped = {s.label: s.value for s in at.selectbox if s.label.startswith("Field for")}
    assert mapped["Field for First Name"] == "first_name"
    assert mapped["Field for E\\-mail Address"] == "email"
    assert at.button(key="imp_execute").disabled  # no dry run yet
    at.button(key="imp_dry_run").click().run()
    assert not at.exception and not errors(at)
    counts = {m.label: m.value for m in at.metric}
    assert counts == {"To create": "2", "To update": "0", "To skip": "0", "Rejected": "1"}
    assert any("day/month/year" in i.value for i in at.info)  # how the dates were read
    rejected = at.dataframe[0].value
    assert list(rejected["Row"]) == ["4"] and "not-an-email" in rejected["Problem"][0]
    assert app_env.scalar("SELECT count(*) FROM leads") == 0  # a dry run writes nothing
    button = at.button(key="imp_execute")
    assert button.label == "Import 2 rows" and not button.disabled
    button.click().run()
    assert not at.exception and not errors(at)
    assert "Import #1 done: 2 created" in at.success[0].value
    assert live_leads(app_env) == ["رضایی", "احمدی"]
    assert at.button(key="imp_execute").disabled  # the same plan is not written twice
    history = at.dataframe[-1].value
    assert list(history["file"]) == ["leads.csv"] and list(history["created"]) == ["2"]
    at.button(key="imp_undo:1").click().run()
    assert not at.exception and not errors(at)
    assert "2 records restored" in at.success[0].value
    assert live_leads(app_env) == []
    assert at.dataframe[-1].value["undone"][0] != ""
    assert not [b for b in at.button if b.key == "imp_undo:1"]  # nothing left to undo


def test_upsert_shows_old_and_new_values_and_undo_reports_refusals(app_env, team):
    admin = team["admin"]
    lead = leads.create_lead(app_env, admin, {"last_name": "Lovelace", "company": "Old Co",
                                              "email": "ada@example.com"})
    at = page(PAGE, user="admin")
    upload(at, b"email,company,last_name\nADA@example.com,New Co,Lovelace\n"
               b"bob@example.com,Bob Co,Builder\n")
    at.radio(key="imp_mode").set_value("upsert").run()
    assert at.selectbox(key="imp_key:leads:upsert").value == "email"  # the default key
    at.button(key="imp_dry_run").click().run()
    assert {m.label: m.value for m in at.metric}["To update"] == "1"
    changes = at.dataframe[0].value
    assert list(changes.columns) == ["Row", "Email", "Field", "Before", "After"]
    assert list(changes.iloc[0]) == ["2", "ADA@example.com", "Company", "Old Co", "New Co"]
    at.button(key="imp_execute").click().run()
    assert records.get(app_env, admin, leads.LEADS, lead)["company"] == "New Co"
    bob = app_env.scalar("SELECT id FROM leads WHERE last_name = 'Builder'")
    leads.update_lead(app_env, admin, bob, {"company": "edited since"}, 1)
    at.button(key="imp_undo:1").click().run()
    assert not at.exception
    assert "1 record restored" in at.success[0].value
    assert "changed since the import: rows 3" in at.warning[0].value
    assert records.get(app_env, admin, leads.LEADS, lead)["company"] == "Old Co"


def test_changing_the_mapping_makes_the_dry_run_stale(app_env, team):
    at = page(PAGE, user="reza")
    upload(at, b"Last Name,Company\nOne,A\nTwo,B\n")
    at.button(key="imp_dry_run").click().run()
    assert not at.button(key="imp_execute").disabled
    company = [s for s in at.selectbox if s.label == "Field for Company"][0]
    company.set_value(None).run()  # "Ignore"
    assert at.button(key="imp_execute").disabled
    assert any("run it again" in i.value for i in at.info)
    at.button(key="imp_dry_run").click().run()
    at.button(key="imp_execute").click().run()
    rows = app_env.query("SELECT last_name, company, owner_id FROM leads ORDER BY id")
    assert [(r["last_name"], r["company"], r["owner_id"]) for r in rows] == [
        ("One", None, team["reza"].id), ("Two", None, team["reza"].id)]


def test_a_rep_sees_only_their_own_imports(app_env, team):
    source = importer.read(b"last_name\nSam's\n", "sams.csv")
    importer.execute(app_env, team["sam"], importer.plan(
        app_env, team["sam"], leads.LEADS, source, {"last_name": "last_name"}))
    at = page(PAGE, user="reza")
    assert "No imports yet" in captions(at)
    at = page(PAGE, user="maria")
    assert list(at.dataframe[-1].value["file"]) == ["sams.csv"]


@pytest.mark.parametrize("data,message", [
    (b"", "empty"), (b"name,email\n", "no data rows"),
    (b"\x00\x01\x02binary\x00" * 50, "binary"), (b"PK\x03\x04not really a workbook", "Excel")])
def test_a_bad_file_shows_an_error_and_nothing_crashes(app_env, team, data, message):
    at = page(PAGE, user="admin")
    upload(at, data, name="bad.csv")
    assert not at.exception
    assert any(message in e for e in errors(at))
    assert not [b for b in at.button if b.key == "imp_dry_run"]


def test_encoding_and_delimiter_can_be_overridden(app_env, team):
    at = page(PAGE, user="admin")
    upload(at, "نام;شهر\nعلی;تهران\n".replace("ی", "ي").encode("cp1256"))
    assert "1256" in captions(at)  # Windows-1256, detected
    at.selectbox(key=[s.key for s in at.selectbox if s.key.startswith("imp_enc:")][0]) \
        .set_value("utf-8").run()
    assert any("cannot be read as utf" in e for e in errors(at))
    at.selectbox(key=[s.key for s in at.selectbox if s.key.startswith("imp_enc:")][0]) \
        .set_value("cp1256").run()
    at.selectbox(key=[s.key for s in at.selectbox if s.key.startswith("imp_sep:")][0]) \
        .set_value(",").run()
    assert not errors(at) and "columns: 1" in captions(at)


def test_excel_sheets_can_be_chosen(app_env, team):
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "Notes"
    book.active.append(["nothing", "here"])
    book.active.append(["x", "y"])
    sheet = book.create_sheet("Leads")
    sheet.append(["Last Name", "Company"])
    sheet.append(["Kazlauskas", "UAB Ąžuolas"])
    out = io.BytesIO()
    book.save(out)
    at = page(PAGE, user="admin")
    upload(at, out.getvalue(), name="book.xlsx",
           mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert "Notes" in captions(at)
    at.selectbox(key=[s.key for s in at.selectbox if s.key.startswith("imp_sheet:")][0]) \
        .set_value("Leads").run()
    assert "Leads" in captions(at)
    at.button(key="imp_dry_run").click().run()
    at.button(key="imp_execute").click().run()
    assert live_leads(app_env) == ["Kazlauskas"]


def test_a_saved_mapping_fills_the_pickers(app_env, team):
    at = page(PAGE, user="admin")
    upload(at, "Pavardė,Įmonė\nVienas,A\n".encode())
    pickers = [s for s in at.selectbox if s.label.startswith("Field for")]
    assert [p.value for p in pickers] == [None, None]  # nothing recognised
    pickers[0].set_value("last_name")
    pickers[1].set_value("company")
    at.run()
    at.text_input(key="imp_map_name").input("my export")
    at.button(key="imp_map_save").click().run()
    upload(at, "Pavardė,Įmonė\nDu,B\n".encode(), name="again.csv")  # a new file: pickers start over
    assert [s.value for s in at.selectbox if s.label.startswith("Field for")] == [None, None]
    picker = [s for s in at.selectbox if s.key.startswith("imp_saved_pick:leads")][0]
    picker.set_value("my export").run()
    assert [s.value for s in at.selectbox if s.label.startswith("Field for")] == [
        "last_name", "company"]
    # stored in the database: another session (and the command line) finds it by name
    assert importer.mappings(app_env, team["admin"], "leads") == [
        {"id": 1, "name": "my export", "mapping": {"Pavardė": "last_name", "Įmonė": "company"}}]
    later = page(PAGE, user="maria")
    upload(later, "Pavardė,Įmonė\nTrys,C\n".encode(), name="third.csv")
    picker = [s for s in later.selectbox if s.key.startswith("imp_saved_pick:leads")][0]
    assert "my export" in picker.options
    # saving without a name says so and stores nothing
    later.text_input(key="imp_map_name").input("  ")
    later.button(key="imp_map_save").click().run()
    assert not later.exception and any("name" in w.value for w in later.warning)
    assert len(importer.mappings(app_env, team["admin"], "leads")) == 1


def test_deals_import_into_a_pipeline_and_contacts_by_customer_name(app_env, team):
    acme = customers.create_customer(app_env, team["admin"], {"name": "Acme"})
    at = page(PAGE, user="admin")
    at.selectbox(key="imp_entity").set_value("deals").run()
    upload(at, b"Deal Name,Deal Stage,account,close_value\nBig one,Proposal,ACME,\"12,000\"\n"
               b"Pilot,Trial,Acme,5\n")
    assert at.selectbox(key="imp_pipeline").value is not None
    at.button(key="imp_dry_run").click().run()
    assert {m.label: m.value for m in at.metric}["Rejected"] == "1"
    at.checkbox(key="imp_create_missing").check().run()
    at.button(key="imp_dry_run").click().run()
    assert any("Trial" in i.value for i in at.info)
    at.button(key="imp_execute").click().run()
    assert not errors(at)
    assert app_env.scalar("SELECT count(*) FROM stages WHERE name = 'Trial'") == 1
    assert app_env.scalar("SELECT count(*) FROM deals WHERE customer_id = $c", {"c": acme}) >= 1
    at.selectbox(key="imp_entity").set_value("contacts").run()
    upload(at, b"Customer,First Name,Last Name\nacme,Jon,Snow\n", name="contacts.csv")
    at.button(key="imp_dry_run").click().run()
    at.button(key="imp_execute").click().run()
    assert not errors(at)
    assert app_env.scalar("SELECT customer_id FROM contacts WHERE last_name = 'Snow'") == acme


def test_reps_do_not_get_to_create_stages(app_env, team):
    at = page(PAGE, user="reza")
    at.selectbox(key="imp_entity").set_value("deals").run()
    upload(at, b"title,stage\nX,Proposal\n")
    assert not [c for c in at.checkbox if c.key == "imp_create_missing"]


def test_a_row_naming_a_new_stage_is_imported(app_env, team):
    at = page(PAGE, user="admin")
    at.selectbox(key="imp_entity").set_value("deals").run()
    upload(at, b"title,stage\nPilot deal,Trial\n")
    at.checkbox(key="imp_create_missing").check().run()
    at.button(key="imp_dry_run").click().run()
    assert {m.label: m.value for m in at.metric}["To create"] == "1"


def test_file_names_headers_and_cells_never_render_as_markdown(app_env, team):
    from tests.conftest import element_strings

    hostile = "![t](http://evil.invalid/x.png) [Reset](http://evil.invalid/p) **bold**"
    at = page(PAGE, user="admin")
    data = f'"{hostile}",last_name\n"{hostile}",Smith\n'.encode()
    upload(at, data, name=f"{hostile}.csv")
    at.button(key="imp_dry_run").click().run()
    at.button(key="imp_execute").click().run()
    assert not at.exception and not errors(at)
    shown = element_strings(at, ("body", "label", "help"))
    assert any("Reset" in s for s, _ in shown)  # the hostile text is on the page ...
    assert not [s for s, _ in shown if "](" in s or "**bold**" in s]  # ... as text only


def test_a_big_file_goes_through_the_page(app_env, team):
    """Over importer.FAST_ROWS lines the importer keeps the file unparsed: the page still shows
    the row count, examples and the rejected row's cells, and imports it."""
    fast_rows = getattr(importer, "FAST_ROWS", None)
    if fast_rows is None:
        pytest.skip("the importer has no set-based path")
    lines = ["First Name,Last Name,Email"] + [f"N{i},L{i},u{i}@example.com"
                                               for i in range(fast_rows + 10)]
    lines[5] = "X,,bad"
    at = page(PAGE, user="admin")
    at.default_timeout = 120
    upload(at, ("\n".join(lines) + "\n").encode(), name="big.csv")
    assert not at.exception and not errors(at)
    assert "rows: about" in captions(at)
    assert "N0" in " ".join(m.value for m in at.markdown)  # an example from the first rows
    at.button(key="imp_dry_run").click().run()
    counts = {m.label: m.value for m in at.metric}
    assert counts["Rejected"] == "1"
    assert list(at.dataframe[0].value.iloc[0])[-3:] == ["X", "", "bad"]
    at.button(key="imp_execute").click().run()
    assert not errors(at)
    assert app_env.scalar("SELECT count(*) FROM leads") == fast_rows + 9


def test_activities_and_tasks_are_importable_on_the_page(app_env, team):
    acme = customers.create_customer(app_env, team["admin"], {"name": "Acme"})
    at = page(PAGE, user="admin")
    at.selectbox(key="imp_entity").set_value("tasks").run()
    upload(at, b"Task,Due date,Customer\nSend the offer,2026-06-01,ACME\nNo link,2026-06-01,\n",
           name="tasks.csv")
    at.button(key="imp_dry_run").click().run()
    assert not at.exception and not errors(at)
    assert {m.label: m.value for m in at.metric}["Rejected"] == "1"
    assert "Link it to" in at.dataframe[0].value["Problem"][0]
    at.button(key="imp_execute").click().run()
    assert not errors(at)
    assert app_env.scalar("SELECT customer_id FROM tasks WHERE title = 'Send the offer'") == acme
    assert "Tasks" in list(at.dataframe[-1].value["what"])
    at.selectbox(key="imp_entity").set_value("activities").run()
    upload(at, b"Type,Subject,Date,Customer\nCall,Follow-up,2025-01-02 09:00,Acme\n",
           name="calls.csv")
    at.button(key="imp_dry_run").click().run()
    at.button(key="imp_execute").click().run()
    assert not errors(at)
    assert app_env.scalar("SELECT kind FROM activities WHERE customer_id = $c", {"c": acme}) == (
        "call")


def test_ignored_columns_can_be_kept_in_new_custom_fields(app_env, team):
    data = ("Last Name,Lead score (old CRM),امتیاز\n"
            "Keeper,87,خوب\n").encode("utf-8")
    at = page(PAGE, user="admin")
    upload(at, data)
    keep = [m for m in at.multiselect if m.label == "Columns to keep in new custom fields"][0]
    assert keep.options == ["Lead score (old CRM)", "امتیاز"]
    keep.set_value(["Lead score (old CRM)", "امتیاز"]).run()
    [go] = [b for b in at.button if (b.key or "").startswith("imp_keep_go:")]
    go.click().run()
    assert not at.exception and not errors(at)
    mapped = {s.label: s.value for s in at.selectbox if s.label.startswith("Field for")}
    assert mapped["Field for Lead score \\(old CRM\\)"] == "lead_score_old_crm"
    assert mapped["Field for امتیاز"] == "field_1"
    assert leads.LEADS.spec["field_1"].label == "امتیاز"
    at.button(key="imp_dry_run").click().run()
    at.button(key="imp_execute").click().run()
    assert not errors(at)
    assert app_env.one("SELECT lead_score_old_crm, field_1 FROM leads WHERE last_name ="
                       " 'Keeper'") == {"lead_score_old_crm": "87", "field_1": "خوب"}
    rep = page(PAGE, user="reza")  # only admins add fields
    upload(rep, data)
    assert not [m for m in rep.multiselect if m.label == "Columns to keep in new custom fields"]
