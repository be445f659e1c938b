"""Lead and customer commands: permissions, audit, optimistic concurrency, trash."""
from decimal import Decimal

import pytest

from crm import audit, customers, leads, records
from crm.auth import PermissionDenied
from crm.fields import ValidationError
from crm.records import ConflictError, Query


def test_create_writes_row_and_audit_in_one_go(db, team):
    lead_id = leads.create_lead(db, team["reza"], {"last_name": "Tehrani", "first_name": "Shirin",
                                                   "estimated_value": "900"})
    row = records.get(db, team["reza"], leads.LEADS, lead_id)
    assert row["owner_id"] == team["reza"].id  # empty owner means the creator
    assert row["version"] == 1 and row["status"] == "new"
    [entry] = audit.history(db, "leads", lead_id)
    assert entry["action"] == "create" and entry["username"] == "reza"
    assert entry["changes"]["last_name"] == [None, "Tehrani"]


def test_invalid_create_writes_nothing(db, team):
    with pytest.raises(ValidationError) as exc:
        leads.create_lead(db, team["admin"], {"last_name": "X", "email": "nope"})
    assert "email" in exc.value.errors
    assert db.scalar("SELECT count(*) FROM leads") == 0
    assert db.scalar("SELECT count(*) FROM audit_log WHERE entity = 'leads'") == 0


def test_rep_cannot_touch_another_reps_lead_even_through_the_function(db, team):
    lead_id = leads.create_lead(db, team["reza"], {"last_name": "Mine"})
    with pytest.raises(PermissionDenied):
        leads.update_lead(db, team["sam"], lead_id, {"status": "contacted"}, 1)
    with pytest.raises(PermissionDenied):
        leads.delete_lead(db, team["sam"], lead_id)
    with pytest.raises(PermissionDenied):
        records.get(db, team["sam"], leads.LEADS, lead_id)
    assert records.list_records(db, team["sam"], leads.LEADS, Query()).total == 0
    assert records.list_records(db, team["maria"], leads.LEADS, Query()).total == 1


def test_rep_cannot_give_a_lead_to_someone_else(db, team):
    with pytest.raises(PermissionDenied):
        leads.create_lead(db, team["reza"], {"last_name": "X", "owner_id": team["sam"].id})
    lead_id = leads.create_lead(db, team["maria"], {"last_name": "X", "owner_id": team["sam"].id})
    assert records.get(db, team["sam"], leads.LEADS, lead_id)["owner_id"] == team["sam"].id


def test_viewer_reads_dashboards_but_no_records(db, team):
    with pytest.raises(PermissionDenied):
        leads.create_lead(db, team["vic"], {"last_name": "X"})
    with pytest.raises(PermissionDenied):
        records.list_records(db, team["vic"], leads.LEADS, Query())


def test_update_records_old_and_new_values(db, team):
    lead_id = leads.create_lead(db, team["reza"], {"last_name": "A", "estimated_value": 10})
    row = leads.update_lead(db, team["reza"], lead_id,
                            {"status": "contacted", "estimated_value": Decimal("25.5")}, 1)
    assert row["version"] == 2 and row["status"] == "contacted"
    latest = audit.history(db, "leads", lead_id)[0]
    assert latest["action"] == "update"
    assert latest["changes"] == {"status": ["new", "contacted"], "estimated_value": [10.0, 25.5]}


def test_saving_a_stale_copy_is_refused_and_says_what_changed(db, team):
    lead_id = leads.create_lead(db, team["admin"], {"last_name": "Stale", "status": "new"})
    base = records.get(db, team["admin"], leads.LEADS, lead_id)
    leads.update_lead(db, team["maria"], lead_id, {"status": "qualified"}, 1)
    with pytest.raises(ConflictError) as exc:
        leads.update_lead(db, team["admin"], lead_id, {"status": "contacted", "title": "CEO"},
                          base["version"], base)
    [change] = exc.value.changed
    assert change["field"] == "status"
    assert (change["yours_was"], change["theirs"], change["yours"]) == (
        "new", "qualified", "contacted")
    assert "Maria Manager changed this record" in str(exc.value)
    row = records.get(db, team["admin"], leads.LEADS, lead_id)
    assert row["status"] == "qualified" and row["title"] is None  # nothing of the stale save


def test_soft_delete_and_restore(db, team):
    lead_id = leads.create_lead(db, team["reza"], {"last_name": "Gone"})
    leads.delete_lead(db, team["reza"], lead_id)
    assert records.list_records(db, team["reza"], leads.LEADS, Query()).total == 0
    trash = records.list_records(db, team["reza"], leads.LEADS, Query(trash=True))
    assert [r["id"] for r in trash.rows] == [lead_id]
    with pytest.raises(records.NotFound):
        leads.update_lead(db, team["reza"], lead_id, {"status": "contacted"}, 2)
    leads.restore_lead(db, team["reza"], lead_id)
    assert records.list_records(db, team["reza"], leads.LEADS, Query()).total == 1
    actions = [e["action"] for e in audit.history(db, "leads", lead_id)]
    assert actions == ["restore", "delete", "create"]


def test_referenced_customer_can_be_updated_deleted_and_restored(db, team):
    # DuckDB refuses some updates of rows another table references; contacts reference customers.
    cid = customers.create_customer(db, team["admin"], {"name": "Acme", "kind": "company"})
    customers.add_contact(db, team["admin"], cid, {"last_name": "Bob", "email": "bob@acme.com"})
    row = customers.update_customer(db, team["admin"], cid, {"city": "Tabriz"}, 1)
    assert row["city"] == "Tabriz"
    customers.delete_customer(db, team["admin"], cid)
    customers.restore_customer(db, team["admin"], cid)
    assert [c["last_name"] for c in customers.contacts_of(db, team["admin"], cid)] == ["Bob"]


def test_contacts_follow_the_customers_permissions(db, team):
    cid = customers.create_customer(db, team["reza"], {"name": "Reza's client"})
    with pytest.raises(PermissionDenied):
        customers.add_contact(db, team["sam"], cid, {"last_name": "Intruder"})
    with pytest.raises(ValidationError):
        customers.add_contact(db, team["admin"], 999, {"last_name": "Orphan"})


def test_search_filter_sort_and_paging_happen_in_sql(db, team):
    for i in range(30):
        leads.create_lead(db, team["admin"], {
            "last_name": f"Person{i:02d}", "company": "Acme" if i % 3 == 0 else "Other",
            "status": "qualified" if i % 2 else "new", "source": "website",
            "estimated_value": i * 10})
    q = Query(search="acme", filters={"status": ["new"]}, sort="estimated_value",
              descending=False, page=2, page_size=2)
    page = records.list_records(db, team["admin"], leads.LEADS, q)
    assert page.total == 5  # i in 0, 6, 12, 18, 24
    assert [r["last_name"] for r in page.rows] == ["Person12", "Person18"]
    assert page.pages == 3


def test_search_text_is_data_not_sql_or_wildcards(db, team):
    leads.create_lead(db, team["admin"], {"last_name": "O'Brien", "company": "100% Cotton"})
    leads.create_lead(db, team["admin"], {"last_name": "Plain", "company": "1000 Cotton"})
    for text, expected in [("O'Brien", 1), ("100%", 1), ("'; DROP TABLE leads; --", 0)]:
        page = records.list_records(db, team["admin"], leads.LEADS, Query(search=text))
        assert page.total == expected, text
    assert db.scalar("SELECT count(*) FROM leads") == 2


def test_home_numbers_are_scoped_for_reps(db, team):
    from crm.dashboard import home_numbers

    leads.create_lead(db, team["reza"], {"last_name": "A"})
    leads.create_lead(db, team["sam"], {"last_name": "B", "status": "qualified"})
    customers.create_customer(db, team["admin"], {"name": "C", "first_purchase_date": "2025-01-02"})
    customers.create_customer(db, team["admin"], {"name": "D", "first_purchase_date": "2025-01-02",
                                                  "status": "inactive"})
    customers.create_customer(db, team["admin"], {"name": "E"})
    everyone = home_numbers(db, team["vic"])
    assert everyone["open_leads"] == 2
    assert (everyone["customer_base"], everyone["installed_base"]) == (2, 1)
    assert home_numbers(db, team["reza"])["open_leads"] == 1


def test_export_uses_spec_columns_filters_and_defuses_formulas(db, team):
    import csv
    import io

    leads.create_lead(db, team["reza"], {"last_name": "=HYPERLINK(\"x\")", "company": "Ketab"})
    leads.create_lead(db, team["reza"], {"last_name": "Ahmadi", "company": "کتاب‌فروشی",
                                         "status": "qualified"})
    leads.create_lead(db, team["sam"], {"last_name": "NotMine"})
    data = records.export_csv(db, team["reza"], leads.LEADS, Query(sort="last_name",
                                                                  descending=False))
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [r["last_name"] for r in rows] == ["'=HYPERLINK(\"x\")", "Ahmadi"]
    assert {r["company"] for r in rows} == {"Ketab", "کتاب‌فروشی"}
    assert rows[0]["owner_username"] == "reza"
    assert set(f.name for f in records.export_columns(leads.LEADS)) <= set(rows[0])
    only = records.export_csv(db, team["reza"], leads.LEADS,
                              Query(filters={"status": ["qualified"]}))
    assert only.decode("utf-8-sig").count("\n") == 2  # header + one row


def test_owner_of_a_referenced_customer_can_change(db, team):
    # DuckDB rejects updates of indexed (e.g. foreign-key) columns on referenced rows
    cid = customers.create_customer(db, team["admin"], {"name": "Acme"})
    customers.add_contact(db, team["admin"], cid, {"last_name": "Bob"})
    row = customers.update_customer(db, team["admin"], cid, {"owner_id": team["reza"].id}, 1)
    assert row["owner_id"] == team["reza"].id
    lead_id = leads.create_lead(db, team["admin"], {"last_name": "L"})
    assert leads.update_lead(db, team["maria"], lead_id, {"owner_id": team["sam"].id},
                             1)["owner_id"] == team["sam"].id


def test_a_contact_stays_with_its_customer(db, team):
    first = customers.create_customer(db, team["admin"], {"name": "First"})
    second = customers.create_customer(db, team["admin"], {"name": "Second"})
    contact = customers.add_contact(db, team["admin"], first, {"last_name": "Bob"})
    row = records.update(db, team["admin"], customers.CONTACTS, contact,
                         {"customer_id": second, "title": "CTO"}, 1)
    assert (row["customer_id"], row["title"]) == (first, "CTO")


def test_a_partial_update_keeps_a_field_that_depends_on_another(db, team):
    """A birthday is kept only for individuals: an update that gives the birthday alone (a
    form section, an import of birthdays) checks the stored kind, not the kind's default."""
    admin = team["admin"]
    ana = customers.CUSTOMERS.create(db, admin, {"name": "Ana", "kind": "individual",
                                                "birthday": "1990-01-02"})
    saved = records.update(db, admin, customers.CUSTOMERS, ana, {"birthday": "1991-05-05"}, 1)
    assert str(saved["birthday"]) == "1991-05-05"
    saved = records.update(db, admin, customers.CUSTOMERS, ana, {"kind": "company"},
                           saved["version"])
    assert saved["birthday"] is None  # no longer a person
    bob = customers.CUSTOMERS.create(db, admin, {"name": "Bob", "kind": "individual"})
    with db.transaction() as cur:  # the importer's bulk update
        [changes] = records.update_many(cur, admin, customers.CUSTOMERS,
                                        [(bob, {"birthday": "1985-03-04"}, 1)])
    assert str(changes["birthday"][1]) == "1985-03-04"
    assert str(db.scalar("SELECT birthday FROM customers WHERE id = $i", {"i": bob})) == \
        "1985-03-04"
