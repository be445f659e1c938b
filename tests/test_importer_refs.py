"""The set-based import of records that name other records (contacts, tasks, activities,
survey answers, complaints, price records, returns): the same messy file through the row path
and the fast path leaves the same records, audit, import records, rejected rows (row, column,
reason), linked rows and undo (crm/importer_refs.py)."""
from datetime import date, timedelta

import pytest

from crm import activities, customers, deals, importer, leads, market, products, records
from crm import service
from tests.test_importer_fast import RUNS

FUTURE = (date.today() + timedelta(days=30)).isoformat()
LATER = (date.today() + timedelta(days=3)).isoformat() + " 10:00"


def seed(db, team):
    """The same records in each database: customers of three owners (two named alike),
    contacts, leads, deals, products, complaints and competitors, some trashed."""
    admin, reza, sam = team["admin"], team["reza"], team["sam"]
    c = {}
    for name, owner, who in [("Acme", admin, "acme"), ("شرکت پارس", reza, "pars"),
                             ("Sam's Shop", sam, "sams"), ("Twin", admin, "twin1"),
                             ("Twin", reza, "twin2"), ("Gone Ltd", admin, "gone"),
                             ("Reza Retail", reza, "rezaco"), ("1984", admin, "digits")]:
        c[who] = customers.create_customer(db, owner, {"name": name, "owner_id": owner.id})
    customers.delete_customer(db, admin, c["gone"])
    p = {}
    for first, last, email, customer, owner in [
            ("Ada", "Lovelace", "ada@acme.com", "acme", admin),
            ("علی", "رحیمی", "ali@pars.ir", "pars", reza),
            ("Sam", "Buyer", "buyer@sams.com", "sams", sam),
            ("Rita", "Retail", "rita@reza.com", "rezaco", reza)]:
        p[email] = records.create(db, owner, customers.CONTACTS, {
            "customer_id": c[customer], "first_name": first, "last_name": last,
            "email": email, "owner_id": owner.id})
    stage = db.scalar("SELECT min(id) FROM stages")
    d = {}
    for title, customer, owner in [("Acme renewal", "acme", admin), ("Pars deal", "pars", reza),
                                   ("Sam deal", "sams", sam)]:
        d[title] = deals.create_deal(db, owner, {"title": title, "customer_id": c[customer],
                                                 "stage_id": stage, "owner_id": owner.id})
    for first, last, owner in [("Lena", "Lead", admin), ("Rahim", "Rezaei", reza)]:
        leads.create_lead(db, owner, {"first_name": first, "last_name": last,
                                      "owner_id": owner.id})
    for name, code, price in [("GTX Pro", "GTX-1", "100"), ("Old Thing", "OLD-1", "5")]:
        found = records.create(db, admin, products.PRODUCTS, {"name": name, "code": code,
                                                             "unit_price": price})
        if name == "Old Thing":
            records.delete(db, admin, products.PRODUCTS, found)
    service.create_complaint(db, admin, {"subject": "Broken hinge", "customer_id": c["acme"]})
    service.create_complaint(db, reza, {"subject": "Late delivery", "customer_id": c["pars"]})
    for name in ("Rival Inc", "Closed Rival"):
        found = market.create_competitor(db, admin, {"name": name})
        if name == "Closed Rival":
            records.delete(db, admin, market.COMPETITORS, found)


def outcome(db, user, entity, text, fast, key=None):
    """Everything an import leaves behind, without times."""
    source = importer.read(text.encode("utf-8"), "refs.csv", fast=fast)
    mapping = importer.propose_mapping(entity, source.headers)
    plan = importer.plan(db, user, entity, source, mapping, key=key)
    assert (plan.staged is not None) == fast, plan.notes
    if fast:  # SQL's verdicts are the row path's: no row it refused is taken after all
        assert all(r.action == "reject" for r in plan.rows)
    rejected = [(r.line, r.errors) for r in plan.rows if r.action == "reject"]
    counts, report = plan.counts, importer.rejected_csv(plan)
    import_id = error = None
    try:
        if counts["create"]:
            import_id = importer.execute(db, user, plan)
    except importer.ImportFileError as exc:
        error = str(exc)
    columns = ", ".join([f.name for f in entity.editable]
                        + ["created_by", "updated_by", "version"])
    table = entity.table
    stored = db.query(f"SELECT r.line + g.k AS line, r.action, r.version_after, {columns}"
                      f" FROM {RUNS} JOIN {table} t ON t.id = r.record_id + g.k"
                      " WHERE r.import_id = $i ORDER BY 1", {"i": import_id})
    audits = db.query(f"SELECT r.line + g.k AS line, a.action, a.changes, a.user_id,"
                      f" a.username FROM {RUNS} JOIN audit_log a ON a.entity = $t AND"
                      " a.record_id = r.record_id + g.k WHERE r.import_id = $i"
                      " AND a.import_id = $i ORDER BY 1, 2", {"i": import_id, "t": table})
    imports = db.query("SELECT entity, filename, mode, key_field, mapping, created_count,"
                       " updated_count, skipped_count, rejected_count, rejected FROM imports")
    touched = db.query("SELECT id, last_activity_at, version FROM deals ORDER BY id")
    undone = importer.undo(db, user, import_id) if import_id else None
    after = db.query(f"SELECT {columns}, deleted_at IS NULL AS live FROM {table} ORDER BY id")
    return {"counts": counts, "rejected": rejected, "report": report, "error": error,
            "stored": stored, "audits": audits, "imports": imports, "touched": touched,
            "undone": undone, "after": after,
            "notes": [n for n in plan.notes if "row by row" not in n]}


@pytest.fixture
def seeded(two_dbs):
    for db, team in two_dbs:
        seed(db, team)
    return two_dbs


def compare(seeded, entity, rows, user="admin", key=None):
    (slow_db, slow_team), (fast_db, fast_team) = seeded
    text = "\n".join(rows) + "\n"
    slow = outcome(slow_db, slow_team[user], entity, text, False, key)
    fast = outcome(fast_db, fast_team[user], entity, text, True, key)
    for part in slow:
        assert fast[part] == slow[part], part
    return fast


CONTACTS = [
    "Customer,First Name,Last Name,Job Title,E-mail Address,Phone,Primary contact,Owner,"
    "Notes,Consent given,Consent date",
    "Acme,Grace,Hopper,CTO,grace@acme.com,+1 555 0100,yes,,first,yes,01.02.2025",
    " acme ,Alan,Turing,,ALAN@acme.com,,no,maria,,,",  # other case and spaces
    "Acmee,Near,Miss,,near@acme.com,,,,,,",  # did you mean acme?
    "Nobody Inc,No,Body,,nobody@x.com,,,,,,",
    "شرکت پارس,مریم,احمدی,مدیر,maryam@pars.ir,۰۹۱۲ ۳۴۵ ۶۷۸۹,بله,Reza Rahimi,یادداشت,,",
    "Sam's Shop,Other,Owners,,other@sams.com,,,,,,",  # a rep sees only their own
    "Twin,Two,Twins,,twin@x.com,,,,,,",  # two customers of that name: the last one
    "Gone Ltd,In,Trash,,trash@x.com,,,,,,",  # a trashed customer is no customer
    ",No,Customer,,nocustomer@x.com,,,,,,",
    "n/a,Null,Customer,,null@x.com,,,,,,",
    "1,By,Id,,byid@x.com,,,,,,",  # a customer's id
    "1984,By,Digits,,digits@x.com,,,,,,",  # a name of digits: the id rule comes first
    "Acme,,,,nolast@acme.com,,,,,,",  # last name required
    "Acme,Bad,Mail,,not-an-email,,,,,,",
    "Acme,Bad,Owner,,badowner@acme.com,,,Nobody Known,,,",
    "Acme,Bad,Phone,,badphone@acme.com,call me,,,,,",
    "Acme,Bad,Date,,baddate@acme.com,,,,,yes,31.02.2025",
    "Acme,Grace,Again,,GRACE@acme.com,,,,,,",  # the same email as row 2
    ",,,,,,,,,,",  # blank: left out
    "Reza Retail,Rita,Again,,rita@reza.com,,,,,,",  # already there (with a key: skipped)
    "Reza Retail,Own,Rep,,own@reza.com,,,reza,,,",
]


@pytest.mark.parametrize("user,key", [("admin", None), ("reza", None), ("admin", "email"),
                                      ("reza", "email")])
def test_contacts_take_the_fast_path_with_the_row_paths_results(seeded, user, key):
    found = compare(seeded, customers.CONTACTS, CONTACTS, user, key)
    reasons = dict(found["rejected"])
    assert "no 'Nobody Inc' here" in str(reasons[5])
    if user == "admin":
        assert "Did you mean acme?" in str(reasons[4])
        assert found["counts"]["create"] >= 8
        lines = {r["line"]: r for r in found["stored"]}
        db = seeded[1][0]
        twins = db.query("SELECT id FROM customers WHERE name = 'Twin' ORDER BY id")
        assert lines[8]["customer_id"] == twins[-1]["id"]
        assert lines[6]["phone"] == "0912 345 6789" and lines[6]["first_name"] == "مریم"
        assert lines[12]["customer_id"] == 1
    else:
        assert 7 in reasons and 3 in reasons  # Sam's customer; maria as owner
    assert {(a["action"], a["changes"]) for a in found["audits"]} == {("create", None)}
    assert found["undone"]["undone"] == found["counts"]["create"]


TASKS = [
    "Task,Due,Assignee,Priority,Status,Notes,Lead,Customer,Contact,Deal,Complaint",
    "Call back,2025-03-01 10:00,,high,open,,Lena Lead,,,,",
    "Send offer,,maria,normal,open,,,Acme,,Acme renewal,",
    "Visit,03/15/2025,,low,done,,,,ada@acme.com,,",
    "Visit Persian,,Reza Rahimi,high,open,یادداشت,Rahim Rezaei,شرکت پارس,علی رحیمی,Pars deal,"
    "Late delivery",
    "No link,,,low,open,,,,,,",
    "Unknown lead,,,low,open,,Nobody Lead,,,,",
    "Near deal,,,low,open,,,,,Acme renewl,",
    "Sam's,,,low,open,,,Sam's Shop,,,",
    "Bad priority,,,urgent,open,,,Acme,,,",
    ",,,low,open,,,Acme,,,",  # no title
    "Bad due,31.02.2025,,low,open,,,Acme,,,",
    "Complaint only,,,low,open,,,,,,Broken hinge",
    "Trashed customer,,,low,open,,,Gone Ltd,,,",
    "Missing words,,n/a,low,open,,-,Acme,N/A,,",
    "Missing status,,,low,,,,Acme,,,",
    "Reza's own,,reza,low,open,,,Reza Retail,rita@reza.com,,",
]


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_tasks_take_the_fast_path_with_the_row_paths_results(seeded, user):
    found = compare(seeded, activities.TASKS, TASKS, user)
    reasons = dict(found["rejected"])
    assert reasons[6] == {"Link": "Link it to a lead, customer, contact or deal"}
    if user == "admin":
        assert found["counts"]["create"] >= 6


ACTIVITIES = [
    "Type,Subject,When,Duration (minutes),Direction,Outcome,Notes,By,Lead,Customer,Contact,"
    "Deal",
    "call,First call,2025-03-01 10:00,15,outbound,completed,,,,Acme,,Acme renewal",
    "meeting,Later meeting,2025-03-04 11:00,60,,,,,,,,Acme renewal",
    "meeting,Planned,{later},30,,,,,,,,Pars deal".format(later=LATER),
    "email,Persian,1404/01/10,,inbound,,یادداشت,Reza Rahimi,,شرکت پارس,,Pars deal",
    "visit,No link,2025-03-01,,,,,,,,,",
    "call,No when,,,,,,,,Acme,,",
    "chat,Too long,2025-03-01 10:00,2000,,,,,,Acme,,",
    "fax,Bad kind,2025-03-01 10:00,,,,,,,Acme,,",
    "call,Sam's deal,2025-03-01 10:00,,,,,,,,,Sam deal",
    "call,Lead only,2025-03-02 09:00,,,,,,Lena Lead,,,",
    "call,Unknown contact,2025-03-02 09:00,,,,,,,,Nobody There,",
]


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_activities_take_the_fast_path_and_touch_their_deals_alike(seeded, user):
    found = compare(seeded, activities.ACTIVITIES, ACTIVITIES, user)
    if user == "admin":
        assert found["counts"]["create"] >= 5
    touched = [d for d in found["touched"] if d["last_activity_at"] is not None]
    assert touched  # the deals the past activities name (the planned one touches none)


SURVEYS = [
    "Customer,Answered on,Channel,CSAT,NPS,Comment,Contact,Deal,Product,Owner",
    "Acme,2025-03-01,email,5,10,great,ada@acme.com,Acme renewal,GTX Pro,",
    "Acme,2025-03-02,phone,6,,too high,,,,",
    "Acme,2025-03-02,web,,11,,,,,",
    "Acme,2025-03-02,web,,,no scores,,,,",
    "Acme,{future},web,3,,,,,,".format(future=FUTURE),
    "شرکت پارس,1404/01/10,web,4,9,خوب,علی رحیمی,Pars deal,GTX PRO,",
    "Sam's Shop,2025-03-01,web,3,,,,,,",
    "Acme,2025-03-01,web,3,,,,,Old Thing,",  # a trashed product
    "Acme,2025-03-01,web,3,,,,,GTX Pr,",
    ",2025-03-01,web,3,,,,,,",
    "Twin,2025-03-01,web,2,,,,,,maria",
    "Reza Retail,2025-03-01,web,2,,,,,,",
    "Reza Retail,2025-03-01,,2,,no channel,,,,",
]


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_surveys_take_the_fast_path_with_the_row_paths_results(seeded, user):
    found = compare(seeded, service.SURVEYS, SURVEYS, user)
    reasons = dict(found["rejected"])
    if user == "admin":  # an answer without an owner is its customer's
        assert "more than 5" in str(reasons[3]) and "more than 10" in str(reasons[4])
        assert "Give a CSAT or an NPS score" in str(reasons[5])
        owners = {r["line"]: r["owner_id"] for r in found["stored"]}
        db, team = seeded[1]
        assert owners[7] == team["reza"].id and owners[13] == team["reza"].id


def test_a_survey_whose_contact_is_another_customers_refuses_the_import_alike(seeded):
    rows = ["Customer,Answered on,CSAT,Contact,Deal",
            "Acme,2025-03-01,5,,",
            "Acme,2025-03-01,5,علی رحیمی,",
            "Acme,2025-03-01,5,,Pars deal"]
    found = compare(seeded, service.SURVEYS, rows)
    assert found["error"] == "Row 3: It belongs to another customer"
    found = compare(seeded, service.COMPLAINTS,
                    ["Subject,Customer,Deal", "Late,Acme,Acme renewal", "Later,Acme,Pars deal"])
    assert found["error"] is None  # a complaint names no deal: the column is ignored


COMPLAINTS = [
    "Subject,Customer,Product,Category,Severity,Description,Status,Opened on,Resolved on,"
    "Owner,Resolution",
    "Broken screen,Acme,GTX Pro,product_failure,high,,open,2025-03-01,,,",
    "Fixed,Acme,,service,low,,resolved,2025-03-01,2025-03-05,,done",
    "Closed without a date,Acme,,service,low,,rejected,2025-03-01,,,",
    "Resolved before opened,Acme,,service,low,,resolved,2025-03-05,2025-03-01,,",
    "Open with a date,Acme,,service,low,,open,2025-03-01,2025-03-02,,",
    "Future,Acme,,service,low,,open,{future},,,".format(future=FUTURE),
    "No opened,Acme,,service,low,,open,,,,",
    "شکایت,شرکت پارس,,billing,low,,in_progress,1404/01/10,,Reza Rahimi,",
    ",Acme,,service,low,,open,2025-03-01,,,",
    "Sam's,Sam's Shop,,service,low,,open,2025-03-01,,,",
    "Bad severity,Acme,,service,huge,,open,2025-03-01,,,",
    "Twin's,Twin,,service,low,,open,2025-03-01,,,",
    "Reza's closed,Reza Retail,Old Thing,service,low,,resolved,2025-03-01,,,",
    "Reza's resolved,Reza Retail,,service,low,,resolved,2025-03-01,{future},,".format(
        future=FUTURE),
    "No category,Reza Retail,,,low,,open,2025-03-01,,,",
]


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_complaints_take_the_fast_path_with_the_row_paths_results(seeded, user):
    found = compare(seeded, service.COMPLAINTS, COMPLAINTS, user)
    reasons = dict(found["rejected"])
    if user == "admin":
        assert "cannot be before opened on" in str(reasons[5])
        assert "An open complaint has no resolved date" in str(reasons[6])
        lines = {r["line"]: r for r in found["stored"]}
        assert lines[4]["resolved_on"] == date.today()


PRICES = [
    "Our product,Competitor,Competitor's product,Price,Currency,Observed on,Source,Region,"
    "Recorded by,Notes",
    "GTX Pro,Rival Inc,RX 9000,\"1,199.00\",USD,2025-03-01,price_list,EU,,",
    "GTX Pro,,,99,EUR,2025-03-01,website,,,ours at a reseller",
    ",,,5,USD,2025-03-01,other,,,neither product",
    ",,Their thing,5,USD,2025-03-01,other,,,no competitor",
    ",Closed Rival,Old model,5,USD,2025-03-01,other,,,a trashed competitor",
    "GTX Pr,Rival Inc,,5,USD,2025-03-01,other,,,",
    "GTX Pro,Rivl Inc,X,5,USD,2025-03-01,other,,,",
    "Old Thing,,,5,USD,2025-03-01,other,,,",
    "GTX Pro,,,-5,USD,2025-03-01,other,,,",
    "GTX Pro,,,5,USD,{future},other,,,".format(future=FUTURE),
    "gtx-1,Rival Inc,مدل ایرانی,\"۱٬۲۳۴٫۵\",IRR,1404/01/10,inquiry,تهران,Reza Rahimi,",
    "GTX Pro,,,5,USD,,other,,,no date",
    "GTX Pro,,,5,USD,2025-03-01,,,,no source",
    ",rival inc,  ,5,USD,2025-03-01,other,,maria,a competitor without their product",
]


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_price_records_take_the_fast_path_with_the_row_paths_results(seeded, user):
    found = compare(seeded, market.PRICE_RECORDS, PRICES, user)
    reasons = dict(found["rejected"])
    assert "Name our product or the competitor's product" in str(reasons[4])
    assert "Choose the competitor" in str(reasons[5])


RETURNS = [
    "Customer,Kind,Date,Amount,Currency,Reason,Owner,Notes",
    "Acme,return,2025-03-01,\"1,200.50\",USD,defective,,",
    "Acme,cancellation,2025-03-02,,EUR,contract_ended,maria,",
    "شرکت پارس,return,1404/01/10,۱۰۰,USD,price,Reza Rahimi,یادداشت",
    "Sam's Shop,return,2025-03-01,5,USD,,,",
    "Acme,return,{future},5,USD,,,".format(future=FUTURE),
    "Acme,swap,2025-03-01,5,USD,,,",
    "Acme,return,,5,USD,,,",
    "Acmee,return,2025-03-01,5,USD,,,",
    "Acme,return,2025-03-01,-5,USD,,,",
    "Twin,return,2025-03-01,5,USD,,,",
    "Reza Retail,,2025-03-01,5,USD,,,no kind",
    "Reza Retail,return,2025-03-01,5,USD,,reza,",
]


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_returns_take_the_fast_path_with_the_row_paths_results(seeded, user):
    found = compare(seeded, market.RETURNS, RETURNS, user)
    assert found["counts"]["reject"] >= 4


def test_updates_of_these_records_go_row_by_row_with_their_reason():
    # contacts, tasks, activities, price records, returns, competitors, survey answers:
    # set-based (tests/test_importer_ref_updates.py); complaints too
    # (tests/test_importer_complaint_updates.py)
    assert importer._fast_refusal(service.COMPLAINTS, {}, "upsert", "subject") is None
    for entity in (team_entity(),):
        assert importer._fast_refusal(entity, {}, "create", None) is None
        assert importer._fast_refusal(entity, {}, "upsert", "notes") \
            == f"{entity.plural} are checked by rules of their own"


COMPETITORS = [
    "Competitor,This is our company,Website,Country,Threat level,Owner,Managers,Strategy",
    "Nova Corp,no,https://nova.example,DE,high,,Jane Doe - CEO,price war",
    "nova corp ,,,,low,,,",  # the same name as row 2
    "rival inc,,,,,,,",  # a live competitor's name
    "Closed Rival,,,,,,,",  # a trashed one's: free again
    "رقیب ایرانی,,,IR,medium,Reza Rahimi,,",
    "Threat typo,,,,hgh,,,",
    ",,,,low,,,",
    "Long site,," + "w" * 301 + ",,,,,",
    "Owned,,,,,maria,,",
    "Us,yes,,,,,,",
    "After a reject,,,,,,,",
    "Threat typo,,,,low,,,",  # the name of a rejected row is free
]


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_competitors_take_the_fast_path_with_the_row_paths_results(seeded, user):
    found = compare(seeded, market.COMPETITORS, COMPETITORS, user)
    reasons = dict(found["rejected"])
    assert reasons[3] == {"Name": "the same Name as row 2"}
    assert "already has this Name" in reasons[4]["Name"]
    assert 5 not in reasons and 13 not in reasons


def test_a_second_record_of_our_company_refuses_the_import_alike(seeded):
    rows = ["Competitor,This is our company", "Them,no", "Us,yes", "Us again,yes"]
    found = compare(seeded, market.COMPETITORS, rows)
    assert found["error"] == "Row 4: Competitor #{id} already describes our company".format(
        id=seeded[1][0].scalar("SELECT max(id) FROM competitors") + 2)


def test_a_record_of_our_company_there_refuses_an_imported_one_alike(seeded):
    for db, team in seeded:
        market.create_competitor(db, team["admin"], {"name": "We", "is_us": True})
    found = compare(seeded, market.COMPETITORS, ["Competitor,This is our company", "Them,no",
                                                 "Us,yes"])
    assert found["error"] == "Row 3: Competitor #{id} already describes our company".format(
        id=seeded[1][0].scalar("SELECT id FROM competitors WHERE name = 'We'"))


def test_the_near_miss_suggestion_is_difflibs():
    """importer.closest skips the full ratio of candidates that cannot win, and answers as
    difflib.get_close_matches(n=1, cutoff=0.75) does, ties included."""
    import difflib
    import random

    rng = random.Random(8)
    letters = "abcde fgh"
    for _round in range(300):
        known = {"".join(rng.choice(letters) for _i in range(rng.randint(1, 9)))
                 for _k in range(rng.randint(0, 40))}
        word = "".join(rng.choice(letters) for _i in range(rng.randint(1, 9)))
        assert importer.closest(word, known) == difflib.get_close_matches(
            word, list(known), n=1, cutoff=0.75)
    names = [f"customer {i}" for i in range(2000)]
    assert importer.closest("custmer 7", names) == difflib.get_close_matches(
        "custmer 7", names, n=1, cutoff=0.75)


def test_a_contacts_file_over_fast_rows_goes_the_fast_way_by_itself(seeded, monkeypatch):
    monkeypatch.setattr(importer, "FAST_ROWS", 10)
    db, team = seeded[1]
    source = importer.read(("\n".join(CONTACTS) + "\n").encode(), "contacts.csv")
    assert source.path is not None
    plan = importer.plan(db, team["admin"], customers.CONTACTS, source,
                         importer.propose_mapping(customers.CONTACTS, source.headers))
    assert plan.staged and not any("row by row" in n for n in plan.notes)
    importer.execute(db, team["admin"], plan)
    assert db.scalar("SELECT count(*) FROM contacts") == 4 + plan.counts["create"]


USERS = [
    "Username,Full name,Email,Role,Active",
    "nina,Nina New,NINA@example.com,rep,yes",
    "omid,امید امیدی,omid@example.ir,manager,",
    "Bad Name,Bad Name,,rep,",  # not a username
    "ab,Too Short,,rep,",
    "nina,Nina Again,,rep,",  # the same username as row 2
    "maria,Maria Twice,,rep,",  # a live user's
    "x" * 33 + ",Too Long,,rep,",
    "paul,,,rep,",  # no name
    "quinn,Quinn,,boss,",
    "rosa,Rosa,not-an-email,rep,",
    "stan,Stan,,admin,no",
]


def test_users_take_the_fast_path_with_the_row_paths_results(seeded):
    found = compare(seeded, team_entity(), USERS)
    reasons = dict(found["rejected"])
    assert reasons[6] == {"Username": "the same Username as row 2"}
    assert found["counts"]["create"] == 3
    assert {r["username"] for r in found["stored"]} == {"nina", "omid", "stan"}
    for db, _team in seeded:  # no password: an admin sets one before they sign in
        assert db.scalar("SELECT password_hash FROM users WHERE username = 'nina'") == ""


def test_a_username_once_taken_refuses_the_import_alike(seeded):
    for db, team in seeded:  # an import undone leaves its users trashed, their names taken
        source = importer.read(b"Username,Full name\nzoe,Zoe\n", "u.csv")
        plan = importer.plan(db, team["admin"], team_entity(), source,
                             importer.propose_mapping(team_entity(), source.headers))
        importer.undo(db, team["admin"], importer.execute(db, team["admin"], plan))
    found = compare(seeded, team_entity(), ["Username,Full name", "yan,Yan", "zoe,Zoe"])
    assert found["error"] == "Row 3: Username 'zoe' is taken"


def team_entity():
    from crm import team

    return team.USERS
