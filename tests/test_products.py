"""Products: a catalog everyone reads and managers change; imported like any record, and named
by deal imports as product lines."""
from decimal import Decimal

import pytest

from crm import deals, importer, records
from crm.auth import PermissionDenied
from crm.fields import ValidationError
from crm.products import PRODUCTS


def read(text: str):
    return importer.read(text.encode("utf-8"), "file.csv")


def test_managers_change_the_catalog_and_reps_only_read_it(db, team):
    pid = PRODUCTS.create(db, team["maria"], {"name": "GTX Pro", "code": "GTX-P",
                                              "unit_price": "4821", "currency": "USD"})
    assert records.get(db, team["reza"], PRODUCTS, pid)["name"] == "GTX Pro"
    page = records.list_records(db, team["reza"], PRODUCTS, records.Query())
    assert [r["name"] for r in page.rows] == ["GTX Pro"]  # not filtered to the rep's own
    with pytest.raises(PermissionDenied, match="managers and admins"):
        PRODUCTS.create(db, team["reza"], {"name": "Mine", "currency": "USD"})
    with pytest.raises(PermissionDenied, match="managers and admins"):
        PRODUCTS.update(db, team["reza"], pid, {"unit_price": "1"}, 1)
    with pytest.raises(PermissionDenied, match="managers and admins"):
        records.delete(db, team["reza"], PRODUCTS, pid)
    assert not records.may_write(team["reza"], PRODUCTS)
    assert records.may_write(team["maria"], PRODUCTS)
    saved = PRODUCTS.update(db, team["admin"], pid, {"unit_price": "5000"}, 1)
    assert saved["unit_price"] == Decimal("5000.00") and saved["version"] == 2


def test_a_code_belongs_to_one_live_product(db, team):
    admin = team["admin"]
    first = PRODUCTS.create(db, admin, {"name": "One", "code": "SKU-1", "currency": "USD"})
    with pytest.raises(ValidationError, match="already has this Code"):
        PRODUCTS.create(db, admin, {"name": "Two", "code": "sku-1", "currency": "USD"})
    second = PRODUCTS.create(db, admin, {"name": "Two", "code": "SKU-2", "currency": "USD"})
    with pytest.raises(ValidationError, match=f"#{first}"):
        PRODUCTS.update(db, admin, second, {"code": "SKU-1"}, 1)
    records.delete(db, admin, PRODUCTS, first)  # a trashed product frees its code
    PRODUCTS.update(db, admin, second, {"code": "SKU-1"}, 1)


def test_products_import_from_another_crms_export(db, team):
    admin = team["admin"]
    PRODUCTS.create(db, admin, {"name": "Old", "code": "MG-1", "currency": "USD"})
    source = read("product,series,sales_price,sku\nGTX Pro,GTX,\"4,821\",GT-2\n"
                  "MG Special,MG,55,mg-1\nGTX Basic,GTX,550,GT-2\n")
    mapping = importer.propose_mapping(PRODUCTS, source.headers)
    assert mapping == {"product": "name", "series": "category", "sales_price": "unit_price",
                       "sku": "code"}
    plan = importer.plan(db, admin, PRODUCTS, source, mapping)
    assert [r.action for r in plan.rows] == ["create", "reject", "reject"]
    assert "already has this Code" in str(plan.rows[1].errors)
    assert "row 2" in str(plan.rows[2].errors)
    importer.execute(db, admin, plan)
    assert db.one("SELECT name, category, unit_price FROM products WHERE code = 'GT-2'") == {
        "name": "GTX Pro", "category": "GTX", "unit_price": Decimal("4821.00")}
    with pytest.raises(importer.ImportFileError, match="managers and admins"):
        importer.plan(db, team["reza"], PRODUCTS, source, mapping)


def test_deals_import_product_lines_by_name_or_code_with_near_misses(db, team):
    admin = team["admin"]
    gtx = PRODUCTS.create(db, admin, {"name": "GTX Pro", "code": "GT-2", "unit_price": "100",
                                      "currency": "USD"})
    PRODUCTS.create(db, admin, {"name": "Support", "code": "SUP", "unit_price": "20.5",
                                "currency": "USD"})
    PRODUCTS.create(db, admin, {"name": "Unpriced", "currency": "USD"})
    source = read("title,stage,product,amount\n"
                  "Lines priced,Negotiation,GTX Pro x 2; sup,\n"
                  "Own amount,Negotiation,2 x gt-2,999\n"
                  "Typo,Negotiation,GTXPro,\n"
                  "No price,Negotiation,Unpriced,\n"
                  "No lines,Negotiation,,10\n")
    mapping = importer.propose_mapping(deals.DEALS, source.headers)
    assert mapping["product"] == "product_lines"
    plan = importer.plan(db, admin, deals.DEALS, source, mapping)
    assert [r.action for r in plan.rows] == ["create", "create", "reject", "reject", "create"]
    assert "Did you mean GTX Pro?" in str(plan.rows[2].errors)
    assert "no unit price" in str(plan.rows[3].errors)
    importer.execute(db, admin, plan)
    found = {r["title"]: r for r in db.query("SELECT id, title, amount FROM deals")}
    assert found["Lines priced"]["amount"] == Decimal("220.50")  # 2 x 100 + 20.5
    assert found["Own amount"]["amount"] == Decimal("999.00")  # the file's amount stands
    lines = deals.line_items(db, admin, found["Lines priced"]["id"])
    assert [(x["product_id"], x["description"], x["quantity"]) for x in lines] == [
        (gtx, "GTX Pro", Decimal("2.000")), (lines[1]["product_id"], "Support", Decimal("1.000"))]
    assert deals.line_items(db, admin, found["No lines"]["id"]) == []
    history = db.scalar("SELECT amount FROM deal_stage_history WHERE deal_id = $d",
                        {"d": found["Lines priced"]["id"]})
    assert history == Decimal("220.50")  # the first stage row carries the priced amount


def test_deals_updated_from_a_file_get_its_product_lines_and_undo_gives_theirs_back(db, team):
    """An update or upsert replaces a deal's product lines with the file's; the amount is
    the lines' sum unless the file gives one (as on create); undo brings the old lines and
    amount back; a deal whose lines are the file's already is unchanged."""
    admin = team["admin"]
    gtx = PRODUCTS.create(db, admin, {"name": "GTX Pro", "code": "GT-2", "unit_price": "100",
                                      "currency": "USD"})
    sup = PRODUCTS.create(db, admin, {"name": "Support", "code": "SUP", "unit_price": "20.5",
                                      "currency": "USD"})
    source = read("title,stage,product,amount\n"
                  "Relined,Negotiation,GTX Pro,\n"
                  "Own amount,Negotiation,SUP,\n"
                  "Same lines,Negotiation,SUP x 3,\n"
                  "No lines,Negotiation,,10\n")
    mapping = importer.propose_mapping(deals.DEALS, source.headers)
    importer.execute(db, admin, importer.plan(db, admin, deals.DEALS, source, mapping))
    ids = {r["title"]: r["id"] for r in db.query("SELECT id, title FROM deals")}
    before = {r["id"]: r for r in db.query("SELECT id, amount, version FROM deals")}

    source = read("title,product,amount\n"
                  "Relined,GTX Pro x 2; sup,\n"
                  "Own amount,2 x gt-2,999\n"
                  "Same lines,Support x 3,\n"
                  "No lines,Support,\n")
    mapping = importer.propose_mapping(deals.DEALS, source.headers)
    plan = importer.plan(db, admin, deals.DEALS, source, mapping, mode="upsert", key="title")
    assert [r.action for r in plan.rows] == ["update", "update", "skip", "update"]
    assert plan.rows[0].changes["product_lines"] == ("GTX Pro × 1", "GTX Pro × 2; Support × 1")
    assert plan.rows[0].changes["amount"] == (Decimal("100.00"), Decimal("220.50"))
    assert plan.rows[1].changes["amount"] == (Decimal("20.50"), Decimal("999"))
    assert plan.rows[3].changes["product_lines"] == (None, "Support × 1")
    assert not any("new deals only" in n for n in plan.notes)
    import_id = importer.execute(db, admin, plan)

    def lines(title):
        return [(x["product_id"], x["description"], x["quantity"], x["unit_price"])
                for x in deals.line_items(db, admin, ids[title])]

    amounts = {r["title"]: r["amount"] for r in db.query("SELECT title, amount FROM deals")}
    assert lines("Relined") == [(gtx, "GTX Pro", Decimal("2.000"), Decimal("100.00")),
                                (sup, "Support", Decimal("1.000"), Decimal("20.50"))]
    assert amounts["Relined"] == Decimal("220.50")
    assert lines("Own amount") == [(gtx, "GTX Pro", Decimal("2.000"), Decimal("100.00"))]
    assert amounts["Own amount"] == Decimal("999.00")  # the file's amount stands
    assert amounts["No lines"] == Decimal("20.50") and len(lines("No lines")) == 1
    changes = db.scalar("SELECT changes FROM audit_log WHERE entity = 'deals' AND record_id = $d"
                        " AND changes LIKE '%product_lines%'", {"d": ids["Relined"]})
    assert "GTX Pro × 2; Support × 1" in changes

    done = importer.undo(db, admin, import_id)
    assert done["refused"] == []
    assert lines("Relined") == [(gtx, "GTX Pro", Decimal("1.000"), Decimal("100.00"))]
    assert lines("Own amount") == [(sup, "Support", Decimal("1.000"), Decimal("20.50"))]
    assert lines("No lines") == []
    after = {r["id"]: r["amount"] for r in db.query("SELECT id, amount FROM deals"
                                                    " WHERE deleted_at IS NULL")}
    assert after == {i: r["amount"] for i, r in before.items()}


def test_an_undo_leaves_product_lines_changed_since_the_import(db, team):
    admin = team["admin"]
    PRODUCTS.create(db, admin, {"name": "GTX Pro", "unit_price": "100", "currency": "USD"})
    source = read("title,stage\nDeal,Negotiation\n")
    mapping = importer.propose_mapping(deals.DEALS, source.headers)
    importer.execute(db, admin, importer.plan(db, admin, deals.DEALS, source, mapping))
    deal_id = db.scalar("SELECT id FROM deals")
    source = read("title,product\nDeal,GTX Pro x 3\n")
    plan = importer.plan(db, admin, deals.DEALS, source,
                         importer.propose_mapping(deals.DEALS, source.headers),
                         mode="update", key="title")
    import_id = importer.execute(db, admin, plan)
    deals.add_line_item(db, admin, deal_id, {"description": "Extra", "quantity": 1,
                                             "unit_price": 5})
    done = importer.undo(db, admin, import_id)
    assert done["undone"] == 0 and done["refused"][0]["record_id"] == deal_id
    assert len(deals.line_items(db, admin, deal_id)) == 2


# --- pages -----------------------------------------------------------------------------------

def test_a_manager_adds_a_product_from_the_form_and_a_rep_only_reads_it(app_env, team):
    from tests.test_pages import page

    at = page("pages/product.py", user="maria", id="new")
    at.text_input(key="products:new:name").input("GTX Pro")
    at.text_input(key="products:new:code").input("GT-2")
    at.number_input(key="products:new:unit_price").set_value(4821.0)
    at.button(key="FormSubmitter:products:new-Create product").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    pid = app_env.scalar("SELECT id FROM products WHERE code = 'GT-2'")
    assert app_env.scalar("SELECT unit_price FROM products WHERE id = $i", {"i": pid}) == 4821
    # a second product with the same code is refused next to the field, the typing kept
    at = page("pages/product.py", user="maria", id="new")
    at.text_input(key="products:new:name").input("Copy")
    at.text_input(key="products:new:code").input("gt-2")
    at.button(key="FormSubmitter:products:new-Create product").click().run()
    assert any("already has this Code" in str(e.value) for e in at.error)
    assert at.text_input(key="products:new:name").value == "Copy"
    # a rep sees the list without "New product" and the record without a way to save
    listed = page("pages/products.py", user="reza")
    assert not listed.exception
    assert "GTX Pro" in listed.dataframe[0].value.to_string()
    assert "products:new" not in [b.key for b in listed.button]
    record = page("pages/product.py", user="reza", id=str(pid))
    assert not record.exception
    assert record.text_input(key=f"products:{pid}:v1:name").disabled
    refused = page("pages/product.py", user="reza", id="new")
    assert any("managers and admins" in str(e.value) for e in refused.error)


# --- users ------------------------------------------------------------------------------------

def test_users_import_without_passwords_and_undo_takes_them_away(db, team):
    from crm import auth
    from crm.team import USERS

    source = read("Username,Full name,E-mail,Role\nnima,Nima Navid,Nima@Example.com,manager\n"
                  "Bad Name,Bad,bad@example.com,rep\nreza,Dup,reza@example.com,rep\n"
                  "lina,Lina,,boss\n")
    mapping = importer.propose_mapping(USERS, source.headers)
    assert mapping == {"Username": "username", "Full name": "name", "E-mail": "email",
                       "Role": "role"}
    plan = importer.plan(db, team["admin"], USERS, source, mapping, key="username")
    assert [r.action for r in plan.rows] == ["create", "reject", "skip", "reject"]
    assert "lowercase" in str(plan.rows[1].errors)
    import_id = importer.execute(db, team["admin"], plan)
    nima = db.one("SELECT id, email, role, active, password_hash FROM users"
                  " WHERE username = 'nima'")
    assert (nima["email"], nima["role"], nima["active"], nima["password_hash"]) == (
        "nima@example.com", "manager", True, "")
    assert not auth.verify_login(db, "nima", "")  # no password, no sign-in
    assert "nima" not in auth.credentials(db)["usernames"]
    assert next(p for p in auth.list_users(db) if p["username"] == "nima")["has_password"] is False
    auth.reset_password(db, team["admin"], "nima", "correct horse 43")
    assert auth.verify_login(db, "nima", "correct horse 43")
    for someone in ("maria", "reza"):  # only admins bring people in
        with pytest.raises(importer.ImportFileError, match="admin"):
            importer.plan(db, team[someone], USERS, source, mapping, key="username")
    with pytest.raises(importer.ImportFileError, match="Users page"):
        importer.plan(db, team["admin"], USERS, source, mapping, mode="upsert", key="username")
    assert importer.undo(db, team["admin"], import_id)["undone"] == 0  # nima changed since
    again = importer.execute(db, team["admin"], importer.plan(
        db, team["admin"], USERS, read("username,name\nomid,Omid\n"), {"username": "username",
                                                                       "name": "name"}))
    assert importer.undo(db, team["admin"], again) == {"undone": 1, "refused": []}
    assert db.one("SELECT active, deleted_at IS NOT NULL AS gone FROM users"
                  " WHERE username = 'omid'") == {"active": False, "gone": True}
    assert "omid" not in [p["username"] for p in auth.list_users(db)]
    assert "omid" not in auth.owner_choices(db).values()


def test_the_import_page_offers_what_the_user_may_write(app_env, team):
    from tests.test_pages import page

    options = {who: page("pages/import.py", user=who).selectbox(key="imp_entity").options
               for who in ("admin", "maria", "reza")}
    assert {"Products", "Users"} <= set(options["admin"])
    assert "Products" in options["maria"] and "Users" not in options["maria"]
    assert not {"Products", "Users"} & set(options["reza"]) and "Leads" in options["reza"]
