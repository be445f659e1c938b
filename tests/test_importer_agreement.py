"""What a dry run shows is what the import writes, and what undo refuses it says (issue 8,
items 5-7), on both import paths (the row path, fast=False; the set-based path, fast=True)
and both engines: a contact's customer, which an update keeps, is refused in the dry run; a
record saved after the dry run (in a field the file leaves alone too) refuses the import;
an undo that would link a record to one trashed since refuses that record with the reason."""
import pytest

from crm import customers, importer, importer_updates, leads
from crm.db import Database
from tests.importer_dbs import add_links


def read(text: str, fast: bool) -> importer.Source:
    return importer.read(text.encode("utf-8"), "file.csv", fast=fast)


def set_based(db: Database, entity) -> bool:
    """Whether a fast=True update of entity is planned set-based on db's engine."""
    return db.dialect == "duckdb" or entity.table in importer.PG_TABLES


# --- a contact's customer: set when the contact is created, kept by an update -------------

def contact_world(db, team) -> None:
    admin = team["admin"]
    acme = customers.create_customer(db, admin, {"name": "Acme"})
    customers.create_customer(db, admin, {"name": "Globex"})
    for i in range(6):
        customers.add_contact(db, admin, acme, {"last_name": f"Person {i}",
                                                "email": f"c{i}@x.com"})


CONTACTS = ["E-mail Address,Customer,Job title,Last Name",
            "c0@x.com,Globex,CEO,Person 0",  # another customer: refused
            "c1@x.com,Acme,CEO,Person 1",  # the same customer: the title is written
            "c2@x.com,Globex,,Person 2",  # another customer alone: refused
            "c3@x.com, acme ,,Person 3",  # the same, spelt otherwise: nothing to do
            "c4@x.com,ACME,CTO,Person 4",  # the same customer: the title is written
            "new@x.com,Globex,New,Newman"]  # an upsert's new contact takes it


def contact_state(db) -> dict:
    return {"contacts": db.query("SELECT c.email, x.name AS customer, c.title, c.version"
                                 " FROM contacts c JOIN customers x ON x.id = c.customer_id"
                                 " ORDER BY c.email"),
            "audit": db.query("SELECT action, changes FROM audit_log WHERE entity ="
                              " 'contacts' ORDER BY id"),
            "imports": db.query("SELECT created_count, updated_count, skipped_count,"
                                " rejected_count, rejected FROM imports")}


@pytest.mark.parametrize("mode", ["update", "upsert"])
def test_a_contact_update_naming_another_customer_is_refused_in_the_dry_run(two, mode):
    """A contact stays with its customer (the form locks the field when editing; update_in
    and update_many drop it): the dry run refuses the row, naming the column, where it showed
    Acme -> Globex before and the import then kept Acme."""
    results = []
    for (db, team), fast in zip(two, (False, True)):
        contact_world(db, team)
        source = read("\n".join(CONTACTS) + "\n", fast)
        plan = importer.plan(db, team["admin"], customers.CONTACTS, source,
                             importer.propose_mapping(customers.CONTACTS, source.headers),
                             mode=mode, key="email")
        assert bool(plan.staged_updates) == (fast and set_based(db, customers.CONTACTS))
        assert not any("customer_id" in r.changes for r in plan.rows  # no promise of it
                       if r.action != "reject")
        rejected = {r.line: r.errors for r in plan.rows if r.action == "reject"}
        importer.execute(db, team["admin"], plan)
        results.append((plan.counts, rejected, importer.rejected_csv(plan), contact_state(db)))
    assert results[1] == results[0]
    counts, rejected, report, state = results[0]
    refused = {"Customer": "cannot be changed by an update (it is set when the record is"
                           " created)"}
    assert rejected[2] == rejected[4] == refused
    assert counts == {"create": int(mode == "upsert"), "update": 2, "skip": 1,
                      "reject": 2 + (mode == "update")}
    assert "Customer: cannot be changed by an update" in report.decode("utf-8-sig")
    stored = {r["email"]: r for r in state["contacts"]}
    assert {stored[f"c{i}@x.com"]["customer"] for i in range(6)} == {"Acme"}
    assert (stored["c1@x.com"]["title"], stored["c4@x.com"]["title"]) == ("CEO", "CTO")
    assert stored["c0@x.com"]["title"] is None  # its row refused whole
    assert ("new@x.com" in stored) == (mode == "upsert")
    if mode == "upsert":
        assert stored["new@x.com"]["customer"] == "Globex"


# --- a record saved after the dry run ---------------------------------------------------

def lead_world(db, team, n: int = 20) -> None:
    for i in range(n):
        leads.create_lead(db, team["admin"], {"last_name": f"Lead {i}", "company": f"Old {i}",
                                              "email": f"lead{i}@x.com"})


def save_title(db, team, email: str) -> None:
    found = db.one("SELECT id, version FROM leads WHERE email = $e", {"e": email})
    leads.update_lead(db, team["admin"], found["id"], {"title": "Saved since"},
                      found["version"])


@pytest.mark.parametrize("written_by", ["set-based", "row path"])
def test_a_record_saved_since_the_dry_run_in_a_field_the_file_leaves_refuses_alike(
        two, written_by, monkeypatch):
    """The row path writes its updates with the versions its dry run saw: a lead saved since
    (here its title; the file brings the company) refuses the import with the row's line.
    The set-based write, and the row path writing a set-based dry run, refuse it alike."""
    results = []
    for (db, team), fast in zip(two, (False, True)):
        lead_world(db, team)
        text = "Email,Company\n" + "".join(f"lead{i}@x.com,New {i}\n" for i in range(20))
        plan = importer.plan(db, team["admin"], leads.LEADS, read(text, fast),
                             {"Email": "email", "Company": "company"}, mode="update",
                             key="email")
        assert bool(plan.staged_updates) == (fast and set_based(db, leads.LEADS))
        assert (plan.counts["update"], plan.counts["reject"]) == (20, 0)
        save_title(db, team, "lead12@x.com")
        save_title(db, team, "lead7@x.com")
        if written_by == "row path":  # what execute() does when the staging cannot write
            monkeypatch.setattr(importer_updates, "writable", lambda *a: False)
        with pytest.raises(importer.ImportFileError) as refused:
            importer.execute(db, team["admin"], plan)
        monkeypatch.undo()
        results.append((str(refused.value), db.query(
            "SELECT email, company, title, version FROM leads ORDER BY email"),
            db.scalar("SELECT count(*) FROM imports")))
    assert results[1] == results[0]
    error, stored, imports = results[0]
    assert error == "Row 9: the record changed since the dry run; run it again."
    assert imports == 0 and not any(r["company"].startswith("New") for r in stored)


def test_a_record_saved_since_in_the_files_field_is_refused_as_the_counts_changed(two):
    """A lead saved since with the file's own value is no update any more: the set-based
    write sees other counts than its dry run's and refuses, as before; the row path refuses
    it by the version (the words differ: the row path knows the row)."""
    errors = []
    for (db, team), fast in zip(two, (False, True)):
        lead_world(db, team, 5)
        text = "Email,Company\n" + "".join(f"lead{i}@x.com,New {i}\n" for i in range(5))
        plan = importer.plan(db, team["admin"], leads.LEADS, read(text, fast),
                             {"Email": "email", "Company": "company"}, mode="update",
                             key="email")
        found = db.one("SELECT id, version FROM leads WHERE email = 'lead2@x.com'")
        leads.update_lead(db, team["admin"], found["id"], {"company": "New 2"},
                          found["version"])
        with pytest.raises(importer.ImportFileError) as refused:
            importer.execute(db, team["admin"], plan)
        errors.append(str(refused.value))
    assert errors[0] == "Row 4: the record changed since the dry run; run it again."
    assert "changed since the dry run" in errors[1]


# --- undo of a custom link to a record trashed since -------------------------------------

def link_world(db, team) -> None:
    admin = team["admin"]
    add_links(db, team)
    acme = customers.create_customer(db, admin, {"name": "Acme"})
    globex = customers.create_customer(db, admin, {"name": "Globex"})
    for i in range(8):
        leads.create_lead(db, admin, {"last_name": f"Lead {i}", "email": f"l{i}@x.com",
                                      "referrer": acme if i % 2 else globex})


def test_undo_refuses_a_link_back_to_a_record_trashed_since_with_the_reason(two):
    """The undo would give the leads their old "Referred by" back; where that customer is in
    the trash now, update_in would refuse the link: that lead is refused with the reason (it
    raised a ValidationError before, undoing nothing), the others undone, on both paths."""
    results = []
    for (db, team), fast in zip(two, (False, True)):
        admin = team["admin"]
        link_world(db, team)
        text = "Email,Referred by,Last name\n" + "".join(
            f"l{i}@x.com,{'Globex' if i % 2 else 'Acme'},Lead {i}{' x' if i == 6 else ''}\n"
            for i in range(8))
        plan = importer.plan(db, admin, leads.LEADS, read(text, fast),
                             importer.propose_mapping(leads.LEADS, text.split("\n", 1)[0]
                                                      .split(",")),
                             mode="update", key="email")
        assert bool(plan.staged_updates) == fast
        import_id = importer.execute(db, admin, plan)
        acme = db.scalar("SELECT id FROM customers WHERE name = 'Acme'")
        customers.delete_customer(db, admin, acme)
        undone = importer.undo(db, admin, import_id)
        results.append((undone, db.query(
            "SELECT l.email, l.last_name, c.name AS referrer, l.version FROM leads l"
            " JOIN customers c ON c.id = l.referrer ORDER BY l.email"), acme))
    assert results[1] == results[0]
    undone, stored, acme = results[0]
    gone = [f"l{i}@x.com" for i in range(8) if i % 2]  # their old link: Acme, trashed
    assert undone["undone"] == 4
    assert sorted((r["line"], r["reason"]) for r in undone["refused"]) == [
        (i + 2, f"Referred by: record #{acme} does not exist") for i in range(1, 8, 2)]
    linked = {r["email"]: r["referrer"] for r in stored}
    assert all(linked[e] == "Globex" for e in gone)  # left as the import made them
    assert all(linked[f"l{i}@x.com"] == "Globex" for i in range(0, 8, 2))  # undone
    assert {r["email"]: r["last_name"] for r in stored}["l6@x.com"] == "Lead 6"


def test_undo_refuses_a_link_back_only_where_the_record_changes(two):
    """A restored link that the record holds already is no change, and no refusal (as
    update_in checks the changes only): the undo of an import that changed other fields."""
    for (db, team), fast in zip(two, (False, True)):
        admin = team["admin"]
        link_world(db, team)
        text = "Email,Last name\n" + "".join(f"l{i}@x.com,Renamed {i}\n" for i in range(8))
        plan = importer.plan(db, admin, leads.LEADS, read(text, fast),
                             {"Email": "email", "Last name": "last_name"}, mode="update",
                             key="email")
        import_id = importer.execute(db, admin, plan)
        customers.delete_customer(db, admin, db.scalar(
            "SELECT id FROM customers WHERE name = 'Acme'"))
        undone = importer.undo(db, admin, import_id)
        assert undone == {"undone": 8, "refused": []}
        assert db.scalar("SELECT count(*) FROM leads WHERE last_name LIKE 'Lead %'") == 8
