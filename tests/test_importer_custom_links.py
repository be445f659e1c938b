"""Custom link fields (crm/custom_fields.py, type "ref") in big files go set-based, on creates
and updates: resolved by name as the row path resolves them (the same words, near-miss
suggestions and visibility), checked live and visible at the write as records._check_links
checks them (crm/importer_recheck.py); compared with the row path on two databases."""
import pytest

from crm import importer, leads, market, records
from tests.importer_dbs import add_links
from tests.test_importer_complaint_updates import reports
from tests.test_importer_ref_updates import compare_entity
from tests.test_importer_refs import compare


LEADS = [
    "First Name,Last Name,Email,Referred by,Main rival,Owner",
    "Ann,One,ann@x.com,Acme,Rival Inc,",
    "Bo,Two,bo@x.com, acme ,rival inc,",
    "Cy,Three,cy@x.com,Acmee,Rivl Inc,",  # near misses: did you mean?
    "Di,Four,di@x.com,Nobody Inc,,",
    "Ed,Five,ed@x.com,شرکت پارس,,Reza Rahimi",
    "Fa,Six,fa@x.com,Sam's Shop,,",  # a rep sees their own customers alone
    "Gi,Seven,gi@x.com,Twin,,",  # two of that name: the last one
    "Hu,Eight,hu@x.com,Gone Ltd,,",  # trashed: no customer
    "Io,Nine,io@x.com,1,,",  # an id
    "Jo,Ten,jo@x.com,1984,,",  # a name of digits
    "Ka,Eleven,ka@x.com,n/a,-,",
    "Li,Twelve,li@x.com,Reza Retail,,reza",
]


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_new_leads_with_custom_links_take_the_fast_path_with_the_row_paths_results(
        linked, user):
    found = compare(linked, leads.LEADS, LEADS, user)
    reasons = dict(found["rejected"])
    assert "Did you mean rival inc?" in str(reasons[4])
    assert ("Did you mean acme?" in str(reasons[4])) == (user == "admin")  # a rep's alone
    if user == "admin":
        assert found["counts"]["create"] >= 7, found


def test_a_custom_link_to_a_trashed_record_refuses_the_import_alike(linked):
    """The resolver reads competitors whole (trashed too): the row path's write refuses a
    trashed one (records._check_links), and so does the set-based write."""
    found = compare(linked, leads.LEADS, LEADS[:3] + ["Mo,Thirteen,mo@x.com,,Closed Rival,"])
    assert found["error"] and "does not exist" in found["error"], found["error"]


def test_a_customer_trashed_since_the_dry_run_refuses_alike(linked):
    from tests.test_importer_recheck import compare as compare_after, trash_customer

    found = compare_after(linked, leads.LEADS, LEADS[:3], trash_customer("Acme"))
    assert found["error"] == "Row 2: Referred by: record #{} does not exist".format(
        linked[0][0].scalar("SELECT id FROM customers WHERE name = 'Acme'"))


def seed_leads(db, team) -> None:
    add_links(db, team)
    ids = {r["name"]: r["id"] for r in db.query("SELECT id, name FROM customers")}
    rival = market.create_competitor(db, team["admin"], {"name": "Rival Inc"})
    gone = market.create_competitor(db, team["admin"], {"name": "Closed Rival"})
    records.delete(db, team["admin"], market.COMPETITORS, gone)
    for i in range(40):
        user = team["reza" if i % 2 else "admin"]
        leads.create_lead(db, user, {
            "first_name": f"L{i}", "last_name": "Lead", "email": f"l{i}@x.com",
            "owner_id": user.id, "referrer": None if i % 3 == 0 else ids[
                "Bletchley Park Trust" if i % 2 else "Analytical Engines Ltd"],
            "rival": rival if i % 4 == 0 else None})


def lead_file() -> str:
    lines = ["Email,Referred by,Main rival,Last name"]
    refs = ["Bletchley Park Trust", "", "Analytical Engines", "UAB Saulė", "پارسیان تجارت",
            "analytical engines ltd", "Nobody"]
    for i in range(40):
        rival = ["Rival Inc", "", "Rivl"][i % 3] if i % 5 else ""
        lines.append(f"l{i}@x.com,{refs[i % 7]},{rival},Lead{'' if i % 6 else ' Changed'}")
    lines.append("new@x.com,Bletchley Park Trust,,New")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mode", ["update", "upsert"])
@pytest.mark.parametrize("user", ["admin", "reza"])
def test_custom_links_in_an_update_are_written_set_based_as_the_row_path_writes_them(
        two, mode, user, monkeypatch):
    made = reports(monkeypatch)
    final = compare_entity(two, leads.LEADS, seed_leads, lead_file(), mode, user, "email",
                           "email", monkeypatch)
    assert len(made) == 2 and made[1] == made[0] and b"Nobody" in made[1]
    assert final[3]["undone"] == final[0]["update"] + final[0]["create"]


def test_custom_links_no_longer_keep_a_file_on_the_row_path():
    from crm import customers

    with_links = {f.name: f for f in leads.LEADS.fields}
    assert importer.importable  # (the leads' fields carry no custom link outside a test)
    assert "referrer" not in with_links or with_links["referrer"].custom
    assert importer._fast_refusal(customers.CUSTOMERS, {"N": "name"}, "create", None) is None


def test_undo_of_custom_links_to_a_record_trashed_since_refuses_alike(two):
    """The undo gives the leads their old links back as records.update_in does, which refuses
    a link to a record trashed since (the set-based undo leaves it to the row path): those
    leads are refused with the reason (a ValidationError ended the undo before), the others
    undone, alike."""
    from tests.test_importer_fast import deal_world
    from tests.test_importer_ref_updates import table_state

    found = []
    for (db, team), fast in zip(two, (False, True)):
        deal_world(db, team)
        seed_leads(db, team)
        source = importer.read(lead_file().encode(), "f.csv", fast=fast)
        plan = importer.plan(db, team["admin"], leads.LEADS, source,
                             importer.propose_mapping(leads.LEADS, source.headers),
                             mode="update", key="email")
        assert bool(plan.staged_updates) == fast
        import_id = importer.execute(db, team["admin"], plan)
        with db.transaction() as cur:
            cur.execute("UPDATE customers SET deleted_at = now() WHERE name ="
                        " 'Analytical Engines Ltd'")
        gone = db.scalar("SELECT id FROM customers WHERE name = 'Analytical Engines Ltd'")
        found.append((importer.undo(db, team["admin"], import_id),
                      table_state(db, "leads", "email")))
    assert found[1] == found[0]
    undone = found[0][0]
    assert undone["undone"] > 0 and undone["refused"]
    assert {r["reason"] for r in undone["refused"]} == {
        f"Referred by: record #{gone} does not exist"}
