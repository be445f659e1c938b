"""The importer: reading messy files, mapping, coercion, references, dry run, one transaction,
duplicates, undo."""
import shutil
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

from crm import customers, deals, importer, leads, pipelines, records
from crm.fields import ValidationError
from crm.importer import ImportFileError


def read(text: str, encoding="utf-8", name="file.csv", **options):
    return importer.read(text.encode(encoding), name, **options)


# --- reading ---------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1256"])
def test_persian_text_reads_in_every_common_encoding(encoding):
    # Windows-1256 has the Arabic forms of yeh and kaf (as old Persian files do)
    text = "نام,شهر\nعلی,تهران\nمریم,شیراز\n"
    if encoding == "cp1256":
        text = text.replace("ی", "ي")
    source = read(text, encoding)
    assert source.headers == ["نام", "شهر"] and source.rows[1] == text.splitlines()[2].split(",")
    assert source.encoding == encoding  # detected, shown on the page, can be overridden


def test_windows_1252_and_the_delimiters_are_detected():
    source = read("Name;City;Notes\nJosé;Málaga;ça va\nZoë;Köln;x\n", "cp1252")
    assert source.delimiter == ";" and source.rows[0] == ["José", "Málaga", "ça va"]
    assert read("a\tb\n1\t2\n").delimiter == "\t"
    assert read("a|b\n1|2\n").delimiter == "|"


def test_quoted_newlines_and_ragged_rows():
    source = read('name,notes\n"Smith","two\nlines"\nJones\nKim,x,extra\n')
    assert source.rows[0] == ["Smith", "two\nlines"]
    assert source.rows[1] == ["Jones", ""] and source.rows[2] == ["Kim", "x"]
    assert source.ragged == [3, 4]  # rows as a spreadsheet numbers them (header = 1)


@pytest.mark.parametrize("data,message", [
    (b"", "empty"), (b"name,email\n", "no data rows"), (b"\x00\x01\x02binary\x00" * 50, "binary"),
    (b"\n\n  \n", "no rows"), (b"PK\x03\x04not really a workbook", "Excel")])
def test_bad_files_get_a_clear_message(data, message):
    with pytest.raises(ImportFileError, match=message):
        importer.read(data, "bad.csv")


# --- mapping and coercion --------------------------------------------------------------------

def test_other_crms_headers_are_mapped():
    proposed = importer.propose_mapping(leads.LEADS, ["First Name", "E-mail Address",
                                                      "Company Name", "Lead Source", "Junk"])
    assert proposed == {"First Name": "first_name", "E-mail Address": "email",
                        "Company Name": "company", "Lead Source": "source", "Junk": None}
    deal_map = importer.propose_mapping(deals.DEALS, ["Deal Stage", "Close Date", "close_value",
                                                      "sales_agent", "account", "Deal Name"])
    assert deal_map == {"Deal Stage": "stage_id", "Close Date": "expected_close_date",
                        "close_value": "amount", "sales_agent": "owner_id",
                        "account": "customer_id", "Deal Name": "title"}


@pytest.mark.parametrize("text,value", [
    ("1,234.56", "1234.56"), ("1.234,56", "1234.56"), ("1 234,56 €", "1234.56"),
    ("$1,234", "1234"), ("۱٬۲۳۴٫۵", "1234.5"), ("12,5", "12.5"), ("(300)", "-300"),
    ("IRR 1,500,000", "1500000")])
def test_numbers_in_many_spellings(text, value):
    assert importer.number(text) == Decimal(value)


def test_a_columns_day_month_order_is_decided_from_the_whole_column():
    spec = leads.LEADS.spec["consent_date"]
    us = importer.coerce(spec, ["03/04/2025", "12/25/2025", ""])
    assert us.values == [date(2025, 3, 4), date(2025, 12, 25), None] and "month/day" in us.note
    eu = importer.coerce(spec, ["03/04/2025", "25/12/2025"])
    assert eu.values == [date(2025, 4, 3), date(2025, 12, 25)] and "day/month" in eu.note
    dotted = importer.coerce(spec, ["03.04.2025", "2025-05-06", "1404/01/01", "N/A", "soon"])
    assert dotted.values[:4] == [date(2025, 4, 3), date(2025, 5, 6), date(2025, 3, 21), None]
    assert 4 in dotted.errors


def test_choices_and_booleans_in_common_spellings():
    status, consent = leads.LEADS.spec["status"], leads.LEADS.spec["consent"]
    assert importer.coerce(status, ["Qualified", "cold call", "NEW"]).errors == {
        1: pytest.approx(importer.coerce(status, ["cold call"]).errors[0])}
    assert importer.coerce(status, ["Qualified", "new"]).values == ["qualified", "new"]
    column = importer.coerce(status, ["Qualifed"])
    assert "Did you mean qualified" in column.errors[0]
    assert importer.coerce(consent, ["yes", "No", "1", "x", ""]).values == [
        True, False, True, True, None]


# --- planning and running --------------------------------------------------------------------

LEADS_CSV = ("First Name,Last Name,E-mail Address,Company,Status,Owner,Estimated value\n"
             "Ada,Lovelace,ada@example.com,Analytical,qualified,Reza Rahimi,\"1,500.00\"\n"
             "Alan,Turing,alan@example.com,Bletchley,New,,\n"
             ",NoEmail,not-an-email,,new,,\n"
             "Grace,Hopper,ADA@example.com,Navy,new,,\n")


def test_dry_run_then_one_transaction(db, team):
    source = read(LEADS_CSV)
    mapping = importer.propose_mapping(leads.LEADS, source.headers)
    plan = importer.plan(db, team["admin"], leads.LEADS, source, mapping, key="email")
    assert plan.counts == {"create": 2, "update": 0, "skip": 0, "reject": 2}
    by_line = {r.line: r for r in plan.rows}
    assert "not-an-email" in str(by_line[4].errors)
    assert "row 2" in str(by_line[5].errors)  # the same email twice in the file
    assert db.scalar("SELECT count(*) FROM leads") == 0  # a dry run writes nothing
    import_id = importer.execute(db, team["admin"], plan)
    found = db.query("SELECT first_name, owner_id, estimated_value FROM leads ORDER BY id")
    assert [(r["first_name"], r["owner_id"]) for r in found] == [
        ("Ada", team["reza"].id), ("Alan", team["admin"].id)]
    assert found[0]["estimated_value"] == Decimal("1500.00")
    assert db.scalar("SELECT count(*) FROM audit_log WHERE import_id = $i AND entity = 'leads'",
                     {"i": import_id}) == 2
    assert "NoEmail" in importer.rejected_csv(plan).decode("utf-8-sig")


def test_upsert_updates_by_key_and_undo_restores(db, team):
    admin = team["admin"]
    lead_id = leads.create_lead(db, admin, {"last_name": "Lovelace", "email": "ada@example.com",
                                            "company": "Old"})
    source = read("email,company,last_name\nADA@example.com,New Co,Lovelace\n"
                  "bob@example.com,Bob Co,Builder\n")
    plan = importer.plan(db, admin, leads.LEADS, source,
                         importer.propose_mapping(leads.LEADS, source.headers),
                         mode="upsert", key="email")
    assert plan.counts["update"] == 1 and plan.counts["create"] == 1
    assert plan.rows[0].changes == {"company": ("Old", "New Co")}
    import_id = importer.execute(db, admin, plan)
    assert records.get(db, admin, leads.LEADS, lead_id)["company"] == "New Co"
    result = importer.undo(db, admin, import_id)
    assert result == {"undone": 2, "refused": []}
    assert records.get(db, admin, leads.LEADS, lead_id)["company"] == "Old"
    assert db.scalar("SELECT count(*) FROM leads WHERE deleted_at IS NULL") == 1
    with pytest.raises(Exception, match="undone already"):
        importer.undo(db, admin, import_id)


def test_undo_leaves_records_changed_since_and_says_so(db, team):
    admin = team["admin"]
    source = read("last_name\nOne\nTwo\n")
    import_id = importer.execute(db, admin, importer.plan(
        db, admin, leads.LEADS, source, {"last_name": "last_name"}))
    two = db.scalar("SELECT id FROM leads WHERE last_name = 'Two'")
    leads.update_lead(db, admin, two, {"company": "edited"}, 1)
    result = importer.undo(db, admin, import_id)
    assert result["undone"] == 1 and result["refused"][0]["record_id"] == two
    assert db.scalar("SELECT deleted_at IS NULL FROM leads WHERE id = $i", {"i": two})


def test_deals_resolve_stage_owner_and_customer_by_name(db, team):
    admin = team["admin"]
    acme = customers.create_customer(db, admin, {"name": "Acme"})
    source = read("Deal Name,Deal Stage,account,sales_agent,close_value,Close Date\n"
                  "Big one,proposal,ACME,reza,\"12,000\",2026-03-31\n"
                  "Typo,Propsal,Acme,reza,10,\n"
                  "New stage,Pilot,Acme,nobody,5,\n")
    mapping = importer.propose_mapping(deals.DEALS, source.headers)
    plan = importer.plan(db, admin, deals.DEALS, source, mapping)
    assert plan.counts == {"create": 1, "update": 0, "skip": 0, "reject": 2}
    assert "Did you mean proposal" in str(plan.rows[1].errors)
    assert "nobody" in str(plan.rows[2].errors)
    importer.execute(db, admin, plan)
    deal = db.one("SELECT * FROM deals")
    stage = {s["name"]: s["id"] for s in pipelines.stages_of(db, pipelines.default_pipeline_id(db))}
    assert (deal["customer_id"], deal["stage_id"], deal["owner_id"], deal["amount"]) == (
        acme, stage["Proposal"], team["reza"].id, Decimal("12000.00"))
    assert db.scalar("SELECT count(*) FROM deal_stage_history WHERE deal_id = $d",
                     {"d": deal["id"]}) == 1
    # --create-missing adds the stage the file names
    source = read("title,stage\nPilot deal,Pilot\n")
    plan = importer.plan(db, admin, deals.DEALS, source, {"title": "title", "stage": "stage_id"},
                         create_missing=True)
    importer.execute(db, admin, plan)
    stages = {s["name"]: s["id"] for s in pipelines.stages_of(db, pipelines.default_pipeline_id(db))}
    assert db.scalar("SELECT stage_id FROM deals WHERE title = 'Pilot deal'") == stages["Pilot"]
    with pytest.raises(ImportFileError, match="admin"):  # adding stages is an admin's job
        importer.plan(db, team["maria"], deals.DEALS, source,
                      {"title": "title", "stage": "stage_id"}, create_missing=True)
    # a lost deal needs its reason, as on the board
    source = read("title,stage,lost reason\nGone,Lost,\nGone too,Lost,Price\n")
    plan = importer.plan(db, admin, deals.DEALS, source,
                         importer.propose_mapping(deals.DEALS, source.headers))
    assert [r.action for r in plan.rows] == ["reject", "create"]


def test_a_rep_imports_only_into_their_own_records(db, team):
    source = read("last_name,owner\nMine,reza\nTheirs,sam\n")
    plan = importer.plan(db, team["reza"], leads.LEADS, source,
                         {"last_name": "last_name", "owner": "owner_id"})
    assert [r.action for r in plan.rows] == ["create", "reject"]
    with pytest.raises(Exception):
        importer.plan(db, team["vic"], leads.LEADS, source, {"last_name": "last_name"})


def test_a_failure_midway_writes_nothing(db, team, monkeypatch):
    source = read("last_name\nOne\nTwo\nThree\n")
    plan = importer.plan(db, team["admin"], leads.LEADS, source, {"last_name": "last_name"})

    def failing(cur, *args):  # after the leads are in, before their audit entries
        assert cur.execute("SELECT count(*) FROM leads").fetchall()[0][0] == 3
        raise RuntimeError("disk full")

    monkeypatch.setattr(importer.records.audit, "record_each", failing)
    with pytest.raises(RuntimeError):
        importer.execute(db, team["admin"], plan)
    assert db.scalar("SELECT count(*) FROM leads") == 0
    assert db.scalar("SELECT count(*) FROM imports") == 0
    monkeypatch.undo()
    # the row path (deals: one command per record) too, failing at the third record
    stage = pipelines.stages_of(db, pipelines.default_pipeline_id(db))[0]["name"]
    source = read(f"title,stage\nA,{stage}\nB,{stage}\nC,{stage}\n")
    plan = importer.plan(db, team["admin"], deals.DEALS, source, {"title": "title",
                                                                  "stage": "stage_id"})
    real, calls = importer._insert, []

    def failing_third(cur, user, entity, values):
        calls.append(values)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(cur, user, entity, values)

    monkeypatch.setattr(importer, "_insert", failing_third)
    with pytest.raises(RuntimeError):
        importer.execute(db, team["admin"], plan)
    assert len(calls) == 3
    assert db.scalar("SELECT count(*) FROM deals") == 0
    assert db.scalar("SELECT count(*) FROM imports") == 0


CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=30)


@given(st.lists(st.tuples(CELL, CELL), min_size=1, max_size=15))
@hyp_settings(max_examples=40, deadline=None)
def test_every_row_is_imported_exactly_or_reported(tmp_path_factory, duckdb_template, rows):
    """Messy cells (quotes, delimiters, newlines, any script): each row is either imported as
    it was or reported with a reason, and undo brings the database back."""
    import csv
    import io

    from crm import auth
    from crm.db import Database
    from tests.conftest import PASSWORD

    path = tmp_path_factory.mktemp("prop") / "crm.duckdb"
    shutil.copyfile(duckdb_template, path)  # a new migrated database per example, copied
    db = Database(path)
    try:
        auth.create_user(db, None, "admin", "Admin", None, PASSWORD, "admin")
        admin = auth.get_user(db, "admin")
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["last_name", "company"])
        writer.writerows(rows)
        if not any(cell.strip() for row in rows for cell in row):
            with pytest.raises(ImportFileError):  # nothing but blank rows: said, not imported
                importer.read(out.getvalue().encode("utf-8"), "p.csv", delimiter=",")
            return
        source = importer.read(out.getvalue().encode("utf-8"), "p.csv", delimiter=",")
        plan = importer.plan(db, admin, leads.LEADS, source,
                             {"last_name": "last_name", "company": "company"})
        # blank rows are skipped as spreadsheets leave them; every other row is in the plan
        assert len(plan.rows) == sum(1 for r in rows if any(c.strip() for c in r))
        import_id = importer.execute(db, admin, plan)
        stored = db.query("SELECT last_name, company FROM leads ORDER BY id")
        created = [r for r in plan.rows if r.action == "create"]
        assert len(stored) == len(created)
        for row, record in zip(created, stored):
            assert (record["last_name"], record["company"]) == (
                row.values["last_name"], row.values["company"])
        for row in plan.rows:
            assert row.action == "create" or row.errors
        importer.undo(db, admin, import_id)
        assert db.scalar("SELECT count(*) FROM leads WHERE deleted_at IS NULL") == 0
    finally:
        db.close()


# --- saved mappings --------------------------------------------------------------------------

def test_saved_mappings_persist_replace_by_name_and_are_checked(db, team):
    from crm.fields import ValidationError

    admin, reza = team["admin"], team["reza"]
    first = importer.save_mapping(db, admin, leads.LEADS, "HubSpot export",
                                  {"Surname": "last_name", "Junk": None})
    other = importer.save_mapping(db, reza, "leads", "Mine", {"Surname": "last_name"})
    importer.save_mapping(db, admin, "customers", "hubspot export", {"Firm": "name"})
    assert importer.mappings(db, team["maria"], leads.LEADS) == [
        {"id": first, "name": "HubSpot export",
         "mapping": {"Surname": "last_name", "Junk": None}},
        {"id": other, "name": "Mine", "mapping": {"Surname": "last_name"}}]
    # the same name in another case replaces it, keeping its id
    again = importer.save_mapping(db, admin, "leads", " hubspot EXPORT ",
                                  {"Surname": "last_name", "Firm": "company"})
    assert again == first
    assert importer.find_mapping(db, admin, "leads", "HUBSPOT export")["mapping"] == {
        "Surname": "last_name", "Firm": "company"}
    assert db.scalar("SELECT count(*) FROM import_mappings WHERE entity = 'leads'") == 2
    assert [r["action"] for r in db.query(
        "SELECT action FROM audit_log WHERE entity = 'import_mappings' AND record_id = $i"
        " ORDER BY id", {"i": first})] == ["create", "update"]
    with pytest.raises(ValidationError, match="name"):
        importer.save_mapping(db, admin, "leads", "  ", {"Surname": "last_name"})
    with pytest.raises(ValidationError, match="shoe_size"):
        importer.save_mapping(db, admin, "leads", "Bad", {"Shoe": "shoe_size"})
    with pytest.raises(records.PermissionDenied):  # a rep replaces only their own
        importer.save_mapping(db, reza, "leads", "HubSpot export", {})
    with pytest.raises(records.PermissionDenied):
        importer.save_mapping(db, team["vic"], "leads", "Viewer's", {})


# --- activities and tasks --------------------------------------------------------------------

def test_activities_link_to_records_by_name_and_touch_their_deal(db, team):
    from crm import activities

    admin = team["admin"]
    acme = customers.create_customer(db, admin, {"name": "Acme"})
    stage = pipelines.stages_of(db, pipelines.default_pipeline_id(db))[0]["id"]
    deal = deals.create_deal(db, admin, {"title": "Big one", "customer_id": acme,
                                         "stage_id": stage})
    source = read("Type,Subject,Date,Deal,Customer,Duration (minutes)\n"
                  "call,Intro call,2025-03-04 10:30,big ONE,,15\n"
                  "Meeting,Demo,04.03.2025,,acme,60\n"
                  "call,Lost soul,2025-03-05,,,\n"
                  "call,Who?,2025-03-05,Small one,,\n")
    mapping = importer.propose_mapping(activities.ACTIVITIES, source.headers)
    assert mapping == {"Type": "kind", "Subject": "subject", "Date": "occurred_at",
                       "Deal": "deal_id", "Customer": "customer_id",
                       "Duration (minutes)": "duration_minutes"}
    plan = importer.plan(db, admin, activities.ACTIVITIES, source, mapping)
    assert [r.action for r in plan.rows] == ["create", "create", "reject", "reject"]
    assert "Link it to" in str(plan.rows[2].errors)
    assert "Small one" in str(plan.rows[3].errors)
    import_id = importer.execute(db, admin, plan)
    found = db.query("SELECT kind, subject, deal_id, customer_id, duration_minutes"
                     " FROM activities ORDER BY id")
    assert [(r["kind"], r["subject"], r["deal_id"], r["customer_id"], r["duration_minutes"])
            for r in found] == [("call", "Intro call", deal, None, 15),
                                ("meeting", "Demo", None, acme, 60)]
    # as the form does it: the deal was touched by the call
    assert str(db.scalar("SELECT last_activity_at FROM deals WHERE id = $d", {"d": deal})
               ) == "2025-03-04 10:30:00"
    assert db.scalar("SELECT count(*) FROM audit_log WHERE entity = 'activities'"
                     " AND import_id = $i", {"i": import_id}) == 2
    assert importer.undo(db, admin, import_id)["undone"] == 2
    assert db.scalar("SELECT count(*) FROM activities WHERE deleted_at IS NULL") == 0


def test_tasks_go_in_as_create_task_does_and_reps_link_only_what_they_see(db, team):
    from crm import activities

    reza, sam = team["reza"], team["sam"]
    own = leads.create_lead(db, reza, {"first_name": "Ali", "last_name": "Karimi"})
    leads.create_lead(db, sam, {"first_name": "Other", "last_name": "Person"})
    source = read("Task,Due date,Lead,Priority,Assignee\n"
                  "Call back,2026-05-01 14:00,ali karimi,high,reza\n"
                  "Not mine,2026-05-01,Other Person,,\n"
                  "For Sam,2026-05-02,Ali Karimi,,sam\n")
    mapping = importer.propose_mapping(activities.TASKS, source.headers)
    assert mapping == {"Task": "title", "Due date": "due_at", "Lead": "lead_id",
                       "Priority": "priority", "Assignee": "owner_id"}
    plan = importer.plan(db, reza, activities.TASKS, source, mapping)
    assert [r.action for r in plan.rows] == ["create", "reject", "reject"]
    assert "Other Person" in str(plan.rows[1].errors)  # sam's lead is not reza's to see
    assert "themselves" in str(plan.rows[2].errors)
    importer.execute(db, reza, plan)
    task = db.one("SELECT * FROM tasks")
    assert (task["title"], task["lead_id"], task["priority"], task["status"], task["owner_id"],
            str(task["due_at"])) == ("Call back", own, "high", "open", reza.id,
                                     "2026-05-01 14:00:00")
    # the same checks as create_task, inside the caller's transaction
    from crm.fields import ValidationError

    with pytest.raises(ValidationError, match="Link it"):
        with db.transaction() as cur:
            activities.insert_task(cur, reza, {"title": "Nowhere"})
    assert db.scalar("SELECT count(*) FROM tasks") == 1


# --- deals with their own dates --------------------------------------------------------------

def test_a_won_deal_keeps_its_engage_and_close_dates(db, team):
    admin = team["admin"]
    source = read("opportunity_id,deal_stage,engage_date,close_date,close_value\n"
                  "Won one,Won,2016-10-20,2017-03-01,1054\n"
                  "Open one,Proposal,20.10.2016,,5\n"
                  "Backwards,Won,2017-03-01,2016-10-20,1\n")
    mapping = importer.propose_mapping(deals.DEALS, source.headers)
    assert mapping["engage_date"] == "created_at" and mapping["close_date"] == (
        "expected_close_date")
    plan = importer.plan(db, admin, deals.DEALS, source, mapping)
    assert [r.action for r in plan.rows] == ["create", "create", "reject"]
    assert "before the engage date" in str(plan.rows[2].errors)
    importer.execute(db, admin, plan)
    won = db.one("SELECT * FROM deals WHERE title = 'Won one'")
    history = db.query("SELECT changed_at FROM deal_stage_history WHERE deal_id = $d",
                       {"d": won["id"]})
    assert [str(h["changed_at"]) for h in history] == ["2016-10-20 00:00:00"]
    assert str(won["created_at"]) == "2016-10-20 00:00:00"
    assert won["closed_on"] == date(2017, 3, 1)
    still_open = db.one("SELECT * FROM deals WHERE title = 'Open one'")
    assert still_open["closed_on"] is None and str(still_open["created_at"]).startswith(
        "2016-10-20")


def test_batched_creates_match_the_one_by_one_command(db, team):
    """An import's creates go in through records.insert_many: rows and audit entries exactly as
    records.insert writes them, the same refusals."""
    values = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
              "estimated_value": Decimal("1234.50"), "consent": True,
              "consent_date": date(2024, 2, 29), "source": "referral", "owner_id": team["reza"].id}
    with db.transaction() as cur:
        one = records.insert(cur, team["admin"], leads.LEADS, values)
    with db.transaction() as cur:
        two, three = records.insert_many(cur, team["admin"], leads.LEADS,
                                         [values, {"last_name": "Mine"}])
    skip = {"id", "created_at", "updated_at"}
    rows = {r["id"]: {k: v for k, v in r.items() if k not in skip}
            for r in db.query("SELECT * FROM leads")}
    assert rows[one] == rows[two]
    assert rows[three]["owner_id"] == team["admin"].id and rows[three]["status"] == "new"
    audits = {r["record_id"]: r["changes"] for r in db.query(
        "SELECT record_id, changes FROM audit_log WHERE entity = 'leads'")}
    assert audits[one] == audits[two]
    # the refusals: a rep assigning someone else, a contact under another rep's customer
    with pytest.raises(records.RowError) as refused, db.transaction() as cur:
        records.insert_many(cur, team["reza"], leads.LEADS,
                            [{"last_name": "Ok"}, {"last_name": "No", "owner_id": team["sam"].id}])
    assert refused.value.index == 1
    theirs = customers.create_customer(db, team["sam"], {"name": "Sam's"})
    with pytest.raises(records.RowError, match="own records"), db.transaction() as cur:
        records.insert_many(cur, team["reza"], customers.CONTACTS,
                            [{"last_name": "X", "customer_id": theirs}])
    assert db.scalar("SELECT count(*) FROM leads") == 3


def test_batched_updates_match_the_one_by_one_command(db, team):
    admin = team["admin"]
    base = {"last_name": "Lovelace", "email": "ada@example.com", "company": "Old",
            "estimated_value": "10"}
    one = leads.create_lead(db, admin, base)
    two = leads.create_lead(db, admin, {**base, "email": "ada2@example.com"})
    change = {"company": "New", "estimated_value": Decimal("12.50"), "consent": True,
              "owner_id": team["reza"].id}
    records.update(db, admin, leads.LEADS, one, change, 1)
    with db.transaction() as cur:
        done = records.update_many(cur, admin, leads.LEADS, [(two, change, 1)])
    assert done == [{"company": ("Old", "New"), "estimated_value": (Decimal("10.00"),
                                                                   Decimal("12.50")),
                     "consent": (False, True), "owner_id": (admin.id, team["reza"].id)}]
    skip = {"id", "email", "created_at", "updated_at"}
    got = {r["id"]: {k: v for k, v in r.items() if k not in skip}
           for r in db.query("SELECT * FROM leads")}
    assert got[one] == got[two] and got[two]["version"] == 2
    audits = {r["record_id"]: r["changes"] for r in db.query(
        "SELECT record_id, changes FROM audit_log WHERE entity = 'leads' AND action = 'update'")}
    assert audits[one] == audits[two]
    # a stale version, a rep's record of someone else, a rule broken by the merged values
    for items, reason in (([(two, {"company": "X"}, 1)], records.ConflictError),
                          ([(one, {"consent": False, "consent_date": date(2024, 1, 1)}, 2)],
                           ValidationError)):
        with pytest.raises(records.RowError) as refused, db.transaction() as cur:
            records.update_many(cur, admin, leads.LEADS, items)
        assert isinstance(refused.value.error, reason)
    with pytest.raises(records.RowError, match="own records"), db.transaction() as cur:
        records.update_many(cur, team["sam"], leads.LEADS, [(two, {"company": "X"}, 2)])
    # an import planned before someone saved is refused whole, with the row
    source = read("email,company\nada2@example.com,Newer\n")
    plan = importer.plan(db, admin, leads.LEADS, source, {"email": "email", "company": "company"},
                         mode="update", key="email")
    records.update(db, admin, leads.LEADS, two, {"title": "CEO"}, 2)
    with pytest.raises(ImportFileError, match="Row 2: the record changed since the dry run"):
        importer.execute(db, admin, plan)
    assert db.scalar("SELECT company FROM leads WHERE id = $i", {"i": two}) == "New"


def test_imports_go_through_each_entitys_own_commands(db, team):
    """Creates and updates from a file obey the rules the forms' commands add to the generic
    ones: one competitor record is our company, closing a complaint dates it, a deal's contact
    belongs to its customer."""
    from crm import market, service

    admin = team["admin"]
    market.COMPETITORS.create(db, admin, {"name": "Us", "is_us": True})
    source = read("name,is_us\nAlso us,yes\n")
    plan = importer.plan(db, admin, market.COMPETITORS, source,
                         {"name": "name", "is_us": "is_us"})
    with pytest.raises(ImportFileError, match="already describes our company"):
        importer.execute(db, admin, plan)
    acme = customers.create_customer(db, admin, {"name": "Acme"})
    other = customers.create_customer(db, admin, {"name": "Other"})
    theirs = customers.add_contact(db, admin, other, {"last_name": "Stranger"})
    complaint = service.create_complaint(db, admin, {
        "customer_id": acme, "subject": "Late delivery", "category": "delivery",
        "severity": "low"})
    source = read("subject,status\nLate delivery,resolved\n")
    importer.execute(db, admin, importer.plan(
        db, admin, service.COMPLAINTS, source, {"subject": "subject", "status": "status"},
        mode="update", key="subject"))
    assert db.scalar("SELECT resolved_on FROM complaints WHERE id = $i",
                     {"i": complaint}) == date.today()
    stage = pipelines.stages_of(db, pipelines.default_pipeline_id(db))[0]["id"]
    deals.create_deal(db, admin, {"title": "Big one", "customer_id": acme, "stage_id": stage})
    source = read("title,contact\nBig one,Stranger\n")
    plan = importer.plan(db, admin, deals.DEALS, source, {"title": "title",
                                                          "contact": "contact_id"},
                         mode="update", key="title")
    with pytest.raises(ImportFileError, match="Row 2"):
        importer.execute(db, admin, plan)
    assert db.scalar("SELECT contact_id FROM deals") is None
    assert theirs


def test_undo_of_updates_restores_exactly_and_refuses_records_changed_since(db, team):
    """Old values back (set-based on DuckDB, row by row on PostgreSQL: the same), one audit
    entry each; records changed or trashed since are left and reported, newest first."""
    admin = team["admin"]
    ids = [leads.create_lead(db, admin, {"last_name": f"L{i}", "email": f"l{i}@example.com",
                                         "company": "Old", "estimated_value": "10.50",
                                         "consent": i == 0})
           for i in range(4)]
    source = read("email,company,estimated value,consent given\n" + "".join(
        f"l{i}@example.com,New {i},{i}.25,yes\n" for i in range(4)))
    plan = importer.plan(db, admin, leads.LEADS, source,
                         importer.propose_mapping(leads.LEADS, source.headers),
                         mode="update", key="email")
    import_id = importer.execute(db, admin, plan)
    leads.update_lead(db, admin, ids[1], {"title": "Since"}, 2)
    leads.delete_lead(db, admin, ids[2])
    result = importer.undo(db, admin, import_id)
    assert result["undone"] == 2
    assert [(r["line"], r["record_id"], r["reason"]) for r in result["refused"]] == [
        (4, ids[2], "changed since the import"), (3, ids[1], "changed since the import")]
    found = {r["id"]: r for r in db.query("SELECT * FROM leads")}
    for i in (0, 3):
        assert (found[ids[i]]["company"], found[ids[i]]["estimated_value"],
                found[ids[i]]["consent"], found[ids[i]]["version"]) == (
            "Old", Decimal("10.50"), i == 0, 3)
    assert found[ids[1]]["company"] == "New 1" and found[ids[1]]["title"] == "Since"
    undone = db.query("SELECT record_id, changes FROM audit_log WHERE action = 'update' AND"
                      " import_id IS NULL AND record_id IN ($a, $b) ORDER BY id",
                      {"a": ids[0], "b": ids[3]})
    assert [(r["record_id"], r["changes"]) for r in undone] == [
        (ids[3], '{"company": ["New 3", "Old"], "estimated_value": [3.25, 10.5],'
                 ' "consent": [true, false]}'),
        (ids[0], '{"company": ["New 0", "Old"], "estimated_value": [0.25, 10.5]}')]


def test_a_deal_whose_contact_works_for_another_customer_is_rejected_in_the_dry_run(db, team):
    """deals.insert_deal refuses it; the dry run says so for its row, and the other rows go in
    (it used to fail the whole import when written)."""
    admin = team["admin"]
    acme = customers.create_customer(db, admin, {"name": "Acme"})
    other = customers.create_customer(db, admin, {"name": "Other"})
    customers.add_contact(db, admin, acme, {"last_name": "Insider"})
    customers.add_contact(db, admin, other, {"last_name": "Stranger"})
    source = read("title,stage,customer,contact\nMine,Proposal,Acme,Insider\n"
                  "Theirs,Proposal,Acme,Stranger\nNo customer,Proposal,,Stranger\n")
    plan = importer.plan(db, admin, deals.DEALS, source, importer.propose_mapping(
        deals.DEALS, source.headers))
    assert [r.action for r in plan.rows] == ["create", "reject", "create"]
    assert plan.rows[1].errors == {"Contact": "The contact works for another customer"}
    importer.execute(db, admin, plan)
    assert db.scalar("SELECT count(*) FROM deals") == 2


def test_a_deal_update_that_changes_the_stage_moves_it_and_undo_moves_it_back(db, team):
    """A file that updates deals' stages moves them as the board does (stage history, close
    date, lost reason; the file's probability kept over the stage's); undo moves them back
    with the old values. The stage used to be dropped silently while the dry run showed it."""
    admin = team["admin"]
    stage = {s["name"]: s["id"] for s in pipelines.stages_of(db, pipelines.default_pipeline_id(db))}
    won = deals.create_deal(db, admin, {"title": "To win", "stage_id": stage["Proposal"],
                                        "amount": 100, "probability": 40})
    lost = deals.create_deal(db, admin, {"title": "To lose", "stage_id": stage["Proposal"],
                                         "amount": 200})
    kept = deals.create_deal(db, admin, {"title": "Kept", "stage_id": stage["Proposal"],
                                         "amount": 300})
    deals.move_deal(db, admin, kept, stage["Lost"], "Price", "Rival Co")
    before = {r["id"]: r for r in db.query("SELECT * FROM deals ORDER BY id")}
    source = read("title,stage,lost reason,probability,amount\n"
                  "To win,Won,,,150\nTo lose,Lost,Price,,\nKept,Proposal,,70,\n")
    plan = importer.plan(db, admin, deals.DEALS, source, importer.propose_mapping(
        deals.DEALS, source.headers), mode="update", key="title")
    assert plan.counts["update"] == 3, [r.errors for r in plan.rows]
    import_id = importer.execute(db, admin, plan)
    after = {r["id"]: r for r in db.query("SELECT * FROM deals ORDER BY id")}
    assert (after[won]["stage_id"], after[won]["amount"], after[won]["closed_on"]) == (
        stage["Won"], Decimal("150.00"), date.today())
    assert (after[lost]["stage_id"], after[lost]["lost_reason"]) == (stage["Lost"], "price")
    assert (after[kept]["stage_id"], after[kept]["lost_reason"], after[kept]["closed_on"],
            after[kept]["probability"]) == (stage["Proposal"], None, None, 70)
    history = db.query("SELECT deal_id, from_stage_id, to_stage_id FROM deal_stage_history"
                       " WHERE deal_id IN ($a, $b, $c) ORDER BY id",
                       {"a": won, "b": lost, "c": kept})
    assert history[-3:] == [
        {"deal_id": won, "from_stage_id": stage["Proposal"], "to_stage_id": stage["Won"]},
        {"deal_id": lost, "from_stage_id": stage["Proposal"], "to_stage_id": stage["Lost"]},
        {"deal_id": kept, "from_stage_id": stage["Lost"], "to_stage_id": stage["Proposal"]}]
    assert db.scalar("SELECT count(*) FROM audit_log WHERE entity = 'deals' AND action = 'move'"
                     " AND record_id = $d", {"d": won}) == 1
    result = importer.undo(db, admin, import_id)
    assert (result["undone"], result["refused"]) == (3, [])
    undone = {r["id"]: r for r in db.query("SELECT * FROM deals ORDER BY id")}
    for deal_id in (won, lost, kept):
        for name in ("stage_id", "amount", "probability", "forecast_category", "lost_reason",
                     "lost_to_competitor", "closed_on"):
            assert undone[deal_id][name] == before[deal_id][name], (deal_id, name)
    assert db.scalar("SELECT count(*) FROM deal_stage_history WHERE deal_id = $d",
                     {"d": kept}) == 4  # created, lost, reopened by the file, lost again


def test_a_superscript_digit_where_a_record_is_named_is_reported_not_a_crash(db, team):
    """'²' passes str.isdigit() but int() refuses it: the row path took it for an id and
    crashed; it is a name that matches nothing now, with the row's reason."""
    admin = team["admin"]
    customers.create_customer(db, admin, {"name": "Acme"})
    source = read("title,stage,customer\nSquared,Proposal,²\nPersian id,Proposal,۱\n")
    plan = importer.plan(db, admin, deals.DEALS, source, importer.propose_mapping(
        deals.DEALS, source.headers))
    assert [r.action for r in plan.rows] == ["reject", "create"]
    assert "no '²' here" in str(plan.rows[0].errors)


def test_undo_of_a_complaint_closed_by_a_file_clears_the_resolved_date_its_command_set(db, team):
    """update_complaint_in resolves a closed complaint today; the import's record keeps the
    date it had, so undo reopens it without one (it used to keep today's date)."""
    from crm import service

    admin = team["admin"]
    acme = customers.create_customer(db, admin, {"name": "Acme"})
    complaint = service.create_complaint(db, admin, {"customer_id": acme, "subject": "Late"})
    source = read("subject,status\nLate,resolved\n")
    plan = importer.plan(db, admin, service.COMPLAINTS, source,
                         {"subject": "subject", "status": "status"}, mode="update",
                         key="subject")
    assert plan.counts["update"] == 1, [r.errors for r in plan.rows]
    import_id = importer.execute(db, admin, plan)
    assert db.one("SELECT status, resolved_on FROM complaints WHERE id = $i",
                  {"i": complaint}) == {"status": "resolved", "resolved_on": date.today()}
    assert importer.undo(db, admin, import_id)["refused"] == []
    assert db.one("SELECT status, resolved_on FROM complaints WHERE id = $i",
                  {"i": complaint}) == {"status": "open", "resolved_on": None}
