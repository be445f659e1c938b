"""Custom fields: typed columns added by an admin, merged into every entity's specs, and the
form layouts over code and custom fields."""
from datetime import date, datetime
from decimal import Decimal

import pytest

from crm import audit, custom_fields, customers, deals, importer, leads, pipelines, records
from crm.auth import PermissionDenied
from crm.db import Database
from crm.fields import ValidationError, convert
from crm.records import Query


def add(db, user, table="leads", **values):
    return custom_fields.add_field(db, user, table, values)


# what information_schema calls each column type on PostgreSQL
PG_TYPES = {"VARCHAR": "character varying", "DOUBLE": "double precision", "BIGINT": "bigint",
            "DECIMAL(18,2)": "numeric", "DATE": "date", "TIMESTAMP": "timestamp without time zone",
            "BOOLEAN": "boolean"}


def column_type(db, table, name):
    found = db.scalar("SELECT data_type FROM information_schema.columns WHERE table_name = $t"
                      " AND column_name = $c", {"t": table, "c": name})
    if db.engine == "postgresql":  # named as DuckDB names it, to compare
        return {v: k for k, v in PG_TYPES.items()}.get(found, found)
    return found


@pytest.mark.parametrize("kind, sql_type, typed, stored", [
    ("text", "VARCHAR", " Blue ", "Blue"),
    ("longtext", "VARCHAR", "a\nb", "a\nb"),
    ("number", "DOUBLE", "1,234.5", 1234.5),
    ("integer", "BIGINT", "42", 42),
    ("money", "DECIMAL(18,2)", "1,000.456", Decimal("1000.46")),
    ("date", "DATE", "2026-03-01", date(2026, 3, 1)),
    ("datetime", "TIMESTAMP", "2026-03-01 14:30", datetime(2026, 3, 1, 14, 30)),
    ("bool", "BOOLEAN", "yes", True),
    ("email", "VARCHAR", "Ana@Example.com", "ana@example.com"),
    ("phone", "VARCHAR", "+98 21 ۱۲۳۴ ۵۶۷۸", "+98 21 1234 5678"),
    ("url", "VARCHAR", "https://example.com/a", "https://example.com/a"),
])
def test_each_type_is_a_real_typed_column_that_takes_form_values(db, team, kind, sql_type,
                                                                  typed, stored):
    add(db, team["admin"], name="extra", label="Extra", type=kind)
    assert column_type(db, "leads", "extra") == sql_type
    spec = leads.LEADS.spec["extra"]
    assert spec.custom and spec.type == kind
    lead_id = leads.create_lead(db, team["reza"], {"last_name": "K", "extra": typed})
    assert records.get(db, team["reza"], leads.LEADS, lead_id)["extra"] == stored


def test_choice_multichoice_and_link_fields(db, team):
    admin = team["admin"]
    add(db, admin, name="temperature", label="Temperature", type="choice",
        choices="Hot = #d62728\nWarm\nCold = #1f77b4", filterable=True, in_list=True)
    add(db, admin, name="interests", label="Interests", type="multichoice",
        choices=["Cars", "Boats", "Planes"], filterable=True)
    add(db, admin, name="account", label="Account", type="ref", ref_table="customers")
    temp = leads.LEADS.spec["temperature"]
    assert temp.choices == ("Hot", "Warm", "Cold")
    assert dict(temp.choice_colors) == {"Hot": "#d62728", "Cold": "#1f77b4"}
    assert temp.choice_label("Hot") == "Hot"  # an admin's words are not translated
    customer = customers.create_customer(db, team["reza"], {"name": "Parsian"})
    a = leads.create_lead(db, team["reza"], {"last_name": "A", "temperature": "hot",
                                             "interests": "boats; CARS", "account": customer})
    b = leads.create_lead(db, team["reza"], {"last_name": "B", "temperature": "Cold",
                                             "interests": ["Planes"]})
    row = records.get(db, team["reza"], leads.LEADS, a)
    assert row["temperature"] == "Hot" and row["interests"] == "Cars; Boats"
    with pytest.raises(ValidationError) as exc:
        leads.create_lead(db, team["reza"], {"last_name": "C", "interests": "Cars; Trains"})
    assert "interests" in exc.value.errors
    with pytest.raises(ValidationError) as exc:  # a link must name a live record
        leads.create_lead(db, team["reza"], {"last_name": "C", "account": 99999})
    assert "account" in exc.value.errors
    other = customers.create_customer(db, team["sam"], {"name": "Not Reza's"})
    with pytest.raises(ValidationError):  # nor one the user may not see
        leads.create_lead(db, team["reza"], {"last_name": "C", "account": other})
    by_filter = records.list_records(db, team["maria"], leads.LEADS,
                                     Query(filters={"temperature": ["Cold"]}))
    assert [r["id"] for r in by_filter.rows] == [b]
    by_multi = records.list_records(db, team["maria"], leads.LEADS,
                                    Query(filters={"interests": ["Boats", "Trains"]}))
    assert [r["id"] for r in by_multi.rows] == [a]
    assert "temperature" in by_filter.rows[0]  # shown in the list


def test_searchable_text_field_is_searched(db, team):
    add(db, team["admin"], name="nickname", label="Nickname", type="text", searchable=True)
    lead_id = leads.create_lead(db, team["reza"], {"last_name": "Z", "nickname": "Zorro"})
    found = records.list_records(db, team["reza"], leads.LEADS, Query(search="zorr"))
    assert [r["id"] for r in found.rows] == [lead_id]


def test_settings_of_a_field_validate_its_values(db, team):
    add(db, team["admin"], name="seats", label="Seats", type="integer", required=True,
        min_value=1, max_value=500, default_value="10")
    spec = leads.LEADS.spec["seats"]
    assert spec.default == 10 and spec.required
    with pytest.raises(ValidationError) as exc:
        leads.create_lead(db, team["reza"], {"last_name": "Q", "seats": "900"})
    assert "more than 500" in exc.value.errors["seats"]
    # left out, the default fills it
    lead_id = leads.create_lead(db, team["reza"], {"last_name": "Q"})
    assert records.get(db, team["reza"], leads.LEADS, lead_id)["seats"] == 10


@pytest.mark.parametrize("name, problem", [
    ("order", "reserved"), ("select", "reserved"), ("user", "reserved"),
    ("email", "already have a column"), ("id", "already have a column"),
    ('x"; DROP TABLE leads; --', "lower-case"), ("Bad Name", "lower-case"), ("1abc", "starts"),
    ("", "Give the field a name"), ("a" * 41, "at most 40"),
])
def test_bad_names_are_refused_with_a_reason(db, team, name, problem):
    with pytest.raises(ValidationError) as exc:
        add(db, team["admin"], name=name, label="Label", type="text")
    assert problem in exc.value.errors["name"]
    assert db.scalar("SELECT count(*) FROM leads") == 0  # the table is still there
    assert db.scalar("SELECT count(*) FROM custom_fields") == 0


def test_a_label_cannot_inject_sql_and_duplicates_are_refused(db, team):
    label = "x'); DROP TABLE leads; --"
    add(db, team["admin"], name="note2", label=label, type="text")
    assert leads.LEADS.spec["note2"].label == label
    with pytest.raises(ValidationError) as exc:
        add(db, team["admin"], name="note2", label="Again", type="text")
    assert "exists" in exc.value.errors["name"]


def test_only_admins_change_fields(db, team):
    for who in ("maria", "reza", "vic"):
        with pytest.raises(PermissionDenied):
            add(db, team[who], name="x1", label="X", type="text")
    with pytest.raises(PermissionDenied):
        custom_fields.list_fields(db, team["reza"], "leads")


def test_rename_keeps_data_delete_hides_and_restore_brings_it_back(db, team):
    admin = team["admin"]
    field_id = add(db, admin, name="region", label="Region", type="text", in_list=True)
    lead_id = leads.create_lead(db, team["reza"], {"last_name": "R", "region": "North"})
    custom_fields.update_field(db, admin, field_id, {"label": "Sales region"}, 1)
    assert leads.LEADS.spec["region"].label == "Sales region"
    assert records.get(db, admin, leads.LEADS, lead_id)["region"] == "North"
    with pytest.raises(ValidationError):
        custom_fields.update_field(db, admin, field_id, {"label": "Stale"}, 1)  # version 2 now
    with pytest.raises(ValidationError):
        custom_fields.update_field(db, admin, field_id, {"type": "integer"}, 2)
    custom_fields.delete_field(db, admin, field_id)
    assert "region" not in leads.LEADS.spec
    assert "region" not in importer.targets(leads.LEADS)
    header = records.export(db, admin, leads.LEADS, Query()).decode("utf-8-sig").splitlines()[0]
    assert "region" not in header
    assert db.scalar("SELECT region FROM leads WHERE id = $i", {"i": lead_id}) == "North"
    # a lead saved while the field is hidden keeps the hidden value
    leads.update_lead(db, admin, lead_id, {"first_name": "Rita"}, 1)
    custom_fields.restore_field(db, admin, field_id)
    assert records.get(db, admin, leads.LEADS, lead_id)["region"] == "North"
    assert [e["action"] for e in audit.history(db, "custom_fields", field_id)] == [
        "restore", "delete", "update", "create"]


def test_choices_in_use_cannot_be_removed(db, team):
    admin = team["admin"]
    field_id = add(db, admin, name="tier", label="Tier", type="choice", choices="Gold\nSilver")
    leads.create_lead(db, team["reza"], {"last_name": "T", "tier": "Gold"})
    with pytest.raises(ValidationError) as exc:
        custom_fields.update_field(db, admin, field_id, {"choices": "Silver\nBronze"}, 1)
    assert "Gold" in exc.value.errors["choices"]
    custom_fields.update_field(db, admin, field_id, {"choices": "Gold\nSilver\nBronze"}, 1)
    assert leads.LEADS.spec["tier"].choices == ("Gold", "Silver", "Bronze")


def test_fields_reach_import_and_export_and_deals_validation(db, team):
    admin = team["admin"]
    add(db, admin, name="segment_code", label="Segment code", type="text")
    add(db, admin, "deals", name="risk", label="Risk", type="choice", choices="Low\nHigh",
        required=True)
    assert "segment_code" in importer.targets(leads.LEADS)
    lead_id = leads.create_lead(db, admin, {"last_name": "E", "segment_code": "S-1"})
    csv = records.export(db, admin, leads.LEADS, Query()).decode("utf-8-sig")
    assert "segment_code" in csv.splitlines()[0] and "S-1" in csv
    assert lead_id
    stage = pipelines.stages_of(db, pipelines.default_pipeline_id(db))[0]["id"]
    with pytest.raises(ValidationError) as exc:  # the deal's own command checks the new field
        deals.create_deal(db, admin, {"title": "D", "stage_id": stage})
    assert "risk" in exc.value.errors
    deal_id = deals.create_deal(db, admin, {"title": "D", "stage_id": stage, "risk": "high"})
    assert db.scalar("SELECT risk FROM deals WHERE id = $i", {"i": deal_id}) == "High"


def test_another_process_sees_a_new_field_after_refresh(db, team, tmp_path):
    add(db, team["admin"], name="shoe_size", label="Shoe size", type="integer")
    custom_fields._state.update(stamp="stale", custom={}, merged={})  # another process's view
    assert "shoe_size" not in leads.LEADS.spec
    custom_fields.refresh(db)
    assert "shoe_size" in leads.LEADS.spec


def test_layout_orders_groups_and_chooses_quick_and_list_fields(db, team):
    admin = team["admin"]
    add(db, admin, name="budget_note", label="Budget note", type="text")
    rows = custom_fields.layout(db, "leads")
    names = [r["field"] for r in rows]
    assert names[-1] == "budget_note"
    order = ["budget_note", "last_name"] + [n for n in names if n not in
                                            ("budget_note", "last_name")]
    layout = [{"field": n, "section": "Money" if n == "budget_note" else None,
               "quick": n in ("budget_note", "last_name"), "in_list": n == "budget_note"}
              for n in order]
    custom_fields.save_layout(db, admin, "leads", layout)
    fields = leads.LEADS.fields
    assert [f.name for f in fields[:2]] == ["budget_note", "last_name"]
    spec = leads.LEADS.spec
    assert spec["budget_note"].section == "Money" and spec["budget_note"].in_list
    assert not spec["email"].quick and spec["last_name"].quick and spec["last_name"].required
    with pytest.raises(ValidationError):
        custom_fields.save_layout(db, admin, "leads", [{"field": "nope"}])
    with pytest.raises(PermissionDenied):
        custom_fields.save_layout(db, team["maria"], "leads", layout)
    custom_fields.reset_layout(db, admin, "leads")
    assert leads.LEADS.fields[0].name != "budget_note"


def test_fields_survive_reopening_the_database(tmp_path, team, db):
    add(db, team["admin"], name="vat_id", label="VAT id", type="text")
    path = db.path
    db.close()
    custom_fields._state.update(stamp=None, custom={}, merged={})
    again = Database(path)
    try:
        assert "vat_id" in leads.LEADS.spec
    finally:
        again.close()


def test_a_field_on_a_referenced_table_adds_and_updates(db, team):
    """customers are referenced by contacts and deals: DuckDB must still add and update."""
    admin = team["admin"]
    customer = customers.create_customer(db, admin, {"name": "Ref Co"})
    customers.CONTACTS.create(db, admin, {"customer_id": customer, "last_name": "C"})
    add(db, admin, "customers", name="loyalty", label="Loyalty", type="integer")
    saved = records.update(db, admin, customers.CUSTOMERS, customer, {"loyalty": "3"}, 1)
    assert saved["loyalty"] == 3


def test_convert_of_new_types():
    from crm.fields import Field

    url = Field("site", "Site", "url", custom=True)
    with pytest.raises(ValueError):
        convert(url, "javascript:alert(1)")
    multi = Field("tags", "Tags", "multichoice", choices=("A", "B"), custom=True)
    assert convert(multi, "b|a") == "A; B"
    assert convert(multi, []) is None


def test_backup_and_restore_carry_custom_fields_and_their_values(db, team, tmp_path):
    from crm import backup

    add(db, team["admin"], "customers", name="loyalty_tier", label="Loyalty tier",
        type="choice", choices="Gold\nSilver")
    customer = customers.create_customer(db, team["admin"], {"name": "Kept Co",
                                                            "loyalty_tier": "Gold"})
    backup.backup(db, tmp_path / "bk")
    target = Database(tmp_path / "restored.duckdb")
    try:
        backup.restore(target, tmp_path / "bk")
        assert target.scalar("SELECT loyalty_tier FROM customers WHERE id = $i",
                             {"i": customer}) == "Gold"
        assert customers.CUSTOMERS.spec["loyalty_tier"].choices == ("Gold", "Silver")
    finally:
        target.close()


# what each engine's keyword catalog calls the words a column may be named unquoted
UNRESERVED = {"duckdb": ("SELECT keyword_name, keyword_category FROM duckdb_keywords()",
                         "unreserved"),
              "postgresql": ("SELECT word, catcode FROM pg_get_keywords()", "U")}


def test_every_keyword_the_engine_reserves_is_refused_as_a_name(db, team):
    """Names are used unquoted in the list, insert and update queries: a keyword of the
    engine's that is not unreserved would break them (PostgreSQL's grant did: after a lead
    field named grant no lead could be created)."""
    sql, unreserved = UNRESERVED[db.engine]
    words = [w for w, category in (tuple(r.values()) for r in db.query(sql))
             if category != unreserved and custom_fields.NAME_RE.fullmatch(w)]
    assert len(words) > 50  # the catalog was read
    accepted = [w for w in words if not custom_fields._name_problem(db, "leads", w)]
    assert accepted == []
    with pytest.raises(ValidationError) as exc:
        add(db, team["admin"], name="grant", label="Grant", type="text")
    assert "reserved" in exc.value.errors["name"]


@pytest.mark.parametrize("name", ["type", "year", "value", "name_2", "comment"])
def test_unreserved_keywords_work_as_names_in_every_query(db, team, name):
    add(db, team["admin"], name=name, label="Word", type="choice", choices="A\nB",
        filterable=True, in_list=True, searchable=True)
    lead_id = leads.create_lead(db, team["reza"], {"last_name": "K", name: "A"})
    leads.update_lead(db, team["reza"], lead_id, {name: "B"}, 1)
    page = records.list_records(db, team["reza"], leads.LEADS,
                                Query(filters={name: ["B"]}, sort=name, search="K"))
    assert [(r["id"], r[name]) for r in page.rows] == [(lead_id, "B")]
    assert "B" in records.export(db, team["admin"], leads.LEADS, Query()).decode("utf-8-sig")


def test_number_and_text_fields_filter_by_a_range_and_by_contained_text(db, team):
    """"Filter by it" on a number, whole number, money or text field: a from-to range (both
    ends included, either open) or the text it contains; saved views keep both."""
    from crm import views

    admin = team["admin"]
    add(db, admin, name="score", label="Score", type="number", filterable=True)
    add(db, admin, name="seats", label="Seats", type="integer", filterable=True)
    add(db, admin, name="budget", label="Budget", type="money", filterable=True)
    add(db, admin, name="nickname", label="Nickname", type="text", filterable=True)
    made = {}
    for name, score, seats, budget, nick in [("A", "1.5", "1", "100", "Red fox"),
                                             ("B", "10", "5", "250.50", "Blue 50%"),
                                             ("C", "20.25", "9", "1000", "علی رضا"),
                                             ("D", None, None, None, None)]:
        made[name] = leads.create_lead(db, team["reza"], {
            "last_name": name, "score": score, "seats": seats, "budget": budget,
            "nickname": nick})

    def found(**filters):
        page = records.list_records(db, team["reza"], leads.LEADS,
                                    Query(filters=filters, sort="last_name",
                                          descending=False))
        return [r["last_name"] for r in page.rows]

    assert found(score=(1.5, 10)) == ["A", "B"]
    assert found(score=(10.5, None)) == ["C"]
    assert found(seats=(None, 5)) == ["A", "B"]
    assert found(budget=(250.5, 250.5)) == ["B"]
    assert found(score=(None, None)) == ["A", "B", "C", "D"]
    assert found(nickname="FOX") == ["A"]
    assert found(nickname="50%") == ["B"]  # % is the text, not a wildcard
    assert found(nickname="0%") == ["B"]
    assert found(nickname="علي") == ["C"]  # Arabic yeh finds the Persian one, as search does
    assert found(nickname="  ") == ["A", "B", "C", "D"]
    config, dropped = views.clean_config(leads.LEADS, {"filters": {
        "score": [1, None], "seats": ["x", "3"], "nickname": " fox ", "budget": [None, None]}})
    assert config["filters"] == {"score": (1.0, None), "seats": (None, 3.0), "nickname": "fox"}
    assert dropped == []
    view_id = views.create_view(db, team["reza"], leads.LEADS, "Foxes",
                                {"filters": {"score": (1, 2), "nickname": "fox"}})
    stored = views.get_view(db, team["reza"], view_id)
    assert views.query_for(leads.LEADS, stored["config"]).filters == {
        "score": (1.0, 2.0), "nickname": "fox"}


def test_length_limit_and_section_of_a_field(db, team):
    add(db, team["admin"], name="code_name", label="Code name", type="text", max_length=5,
        section="Secret things")
    spec = leads.LEADS.spec["code_name"]
    assert spec.max_length == 5 and spec.section == "Secret things"
    with pytest.raises(ValidationError) as exc:
        leads.create_lead(db, team["reza"], {"last_name": "L", "code_name": "toolong"})
    assert "at most 5" in exc.value.errors["code_name"]
    assert leads.create_lead(db, team["reza"], {"last_name": "L", "code_name": "short"})
    with pytest.raises(ValidationError) as exc:
        add(db, team["admin"], name="code_2", label="Code", type="text", max_length=9000)
    assert "max_length" in exc.value.errors
