"""Saved views (crm/views.py) and the board grouped by a choice field (crm/deals.py)."""
import dataclasses
import json
from datetime import date

import pytest

from crm import audit, deals, leads, pipelines, records, views
from crm.auth import PermissionDenied
from crm.fields import Field, ValidationError

LEADS = leads.LEADS


def lead(db, user, last, **values):
    return leads.create_lead(db, user, {"last_name": last, **values})


@pytest.fixture
def stage(db):
    return {s["name"]: s["id"] for s in
            pipelines.stages_of(db, pipelines.default_pipeline_id(db))}


# --- create, update, rename, delete ---------------------------------------------------------

def test_create_stores_config_as_json_and_audits(db, team):
    reza = team["reza"]
    config = {"columns": ["last_name", "email", "status"], "search": "acme",
              "filters": {"status": ["new"], "created_at": (date(2026, 1, 1), None)},
              "sort": "last_name", "descending": False}
    view_id = views.create_view(db, reza, LEADS, "  New   from Acme ", config)
    row = db.one("SELECT * FROM saved_views WHERE id = $id", {"id": view_id})
    assert (row["entity"], row["kind"], row["name"], row["owner_id"], row["shared"]) == (
        "leads", "list", "New from Acme", reza.id, False)
    stored = json.loads(row["config"])
    assert stored["filters"]["created_at"] == ["2026-01-01", None]
    assert stored["columns"] == ["last_name", "email", "status"]
    view = views.get_view(db, reza, view_id, LEADS)
    assert view["config"]["filters"]["created_at"] == (date(2026, 1, 1), None)
    assert view["dropped"] == []
    [entry] = audit.history(db, "saved_views", view_id)
    assert entry["action"] == "create" and entry["username"] == "reza"


def test_names_are_required_short_and_unique_per_owner(db, team):
    reza, sam = team["reza"], team["sam"]
    with pytest.raises(ValidationError) as exc:
        views.create_view(db, reza, LEADS, "   ", {})
    assert "name" in exc.value.errors
    with pytest.raises(ValidationError):
        views.create_view(db, reza, LEADS, "x" * 61, {})
    views.create_view(db, reza, LEADS, "Hot", {})
    with pytest.raises(ValidationError) as exc:
        views.create_view(db, reza, LEADS, "hot", {})
    assert "already have a view" in exc.value.errors["name"]
    views.create_view(db, sam, LEADS, "Hot", {})  # another owner may use the name
    views.create_view(db, reza, dataclasses.replace(LEADS, table="customers"),
                      "Hot", {})  # and so may another page


def test_unknown_fields_are_refused_when_saving(db, team):
    with pytest.raises(ValidationError) as exc:
        views.create_view(db, team["reza"], LEADS, "Bad",
                          {"columns": ["last_name", "nope; DROP TABLE leads"]})
    assert "nope; DROP TABLE leads" in exc.value.errors["config"]
    with pytest.raises(ValidationError):
        views.create_view(db, team["reza"], LEADS, "Bad", {"sort": "password_hash"})
    assert db.scalar("SELECT count(*) FROM saved_views") == 0


def test_update_rename_and_delete(db, team):
    reza = team["reza"]
    view_id = views.create_view(db, reza, LEADS, "Mine", {"search": "a"})
    saved = views.update_view(db, reza, view_id, LEADS, config={"search": "b", "sort": "email"},
                              expected_version=1)
    assert (saved["config"]["search"], saved["config"]["sort"], saved["version"]) == (
        "b", "email", 2)
    with pytest.raises(records.ConflictError):  # someone saved it since version 1
        views.update_view(db, reza, view_id, LEADS, name="Old copy", expected_version=1)
    assert views.rename_view(db, reza, view_id, LEADS, "Renamed")["name"] == "Renamed"
    views.set_default(db, reza, LEADS, view_id)
    views.delete_view(db, reza, view_id)
    assert db.scalar("SELECT count(*) FROM saved_views") == 0
    assert db.scalar("SELECT count(*) FROM saved_view_defaults") == 0  # its default went too
    assert views.default_view(db, reza, LEADS) is None
    actions = [e["action"] for e in audit.history(db, "saved_views", view_id)]
    assert actions.count("update") >= 3 and actions[0] == "delete"


# --- private and shared -----------------------------------------------------------------------

def test_private_views_are_their_owners_alone(db, team):
    reza, sam, admin = team["reza"], team["sam"], team["admin"]
    private = views.create_view(db, reza, LEADS, "Private", {})
    shared = views.create_view(db, reza, LEADS, "Team", {}, shared=True)
    assert [v["name"] for v in views.list_views(db, reza, LEADS)] == ["Private", "Team"]
    for other in (sam, admin):  # not even an admin sees someone's private view
        assert [v["name"] for v in views.list_views(db, other, LEADS)] == ["Team"]
        with pytest.raises(records.NotFound):
            views.get_view(db, other, private)
        with pytest.raises(records.NotFound):
            views.update_view(db, other, private, LEADS, name="Mine now")
        with pytest.raises(records.NotFound):
            views.delete_view(db, other, private)
    assert views.get_view(db, sam, shared)["owner_name"] == "Reza Rahimi"
    # a view of another page is not this page's
    with pytest.raises(records.NotFound):
        views.get_view(db, reza, shared, deals.DEALS)


def test_shared_views_change_by_their_owner_or_a_manager(db, team):
    reza, sam, maria = team["reza"], team["sam"], team["maria"]
    shared = views.create_view(db, reza, LEADS, "Team", {}, shared=True)
    with pytest.raises(PermissionDenied):
        views.update_view(db, sam, shared, LEADS, name="Sam's now")
    with pytest.raises(PermissionDenied):
        views.delete_view(db, sam, shared)
    assert views.may_edit(maria, views.get_view(db, maria, shared))
    assert not views.may_edit(sam, views.get_view(db, sam, shared))
    views.rename_view(db, maria, shared, LEADS, "Team (checked)")
    # unsharing takes it away from the team, and the defaults others had on it
    views.set_default(db, sam, LEADS, shared)
    views.update_view(db, reza, shared, LEADS, shared=False)
    assert views.list_views(db, sam, LEADS) == []
    assert views.default_view(db, sam, LEADS) is None
    views.delete_view(db, reza, shared)


def test_viewers_and_nobody_cannot_use_views(db, team):
    with pytest.raises(PermissionDenied):
        views.create_view(db, team["vic"], LEADS, "Mine", {})
    with pytest.raises(PermissionDenied):
        views.list_views(db, team["vic"], LEADS)
    with pytest.raises(PermissionDenied):
        views.list_views(db, None, LEADS)


# --- defaults ----------------------------------------------------------------------------------

def test_own_default_wins_over_the_teams(db, team):
    reza, sam, maria = team["reza"], team["sam"], team["maria"]
    team_view = views.create_view(db, maria, LEADS, "Everyone", {"search": "t"}, shared=True)
    own = views.create_view(db, reza, LEADS, "Mine", {"search": "m"})
    assert views.default_view(db, reza, LEADS) is None
    views.set_default(db, maria, LEADS, team_view, team=True)
    assert views.default_view(db, reza, LEADS)["id"] == team_view
    assert views.default_view(db, sam, LEADS)["id"] == team_view
    views.set_default(db, reza, LEADS, own)
    assert views.default_view(db, reza, LEADS)["id"] == own
    assert views.default_view(db, sam, LEADS)["id"] == team_view
    flags = {v["name"]: (v["my_default"], v["team_default"])
             for v in views.list_views(db, reza, LEADS)}
    assert flags == {"Mine": (True, False), "Everyone": (False, True)}
    views.set_default(db, reza, LEADS, None)  # cleared: the team's again
    assert views.default_view(db, reza, LEADS)["id"] == team_view
    # one default per user and page: setting another replaces it
    other = views.create_view(db, reza, LEADS, "Other", {})
    views.set_default(db, reza, LEADS, own)
    views.set_default(db, reza, LEADS, other)
    assert db.scalar("SELECT count(*) FROM saved_view_defaults WHERE user_id = $u",
                     {"u": reza.id}) == 1


def test_only_managers_set_the_teams_default_and_only_to_a_shared_view(db, team):
    reza, maria = team["reza"], team["maria"]
    shared = views.create_view(db, reza, LEADS, "Shared", {}, shared=True)
    private = views.create_view(db, maria, LEADS, "Private", {})
    with pytest.raises(PermissionDenied):
        views.set_default(db, reza, LEADS, shared, team=True)
    with pytest.raises(ValidationError):
        views.set_default(db, maria, LEADS, private, team=True)
    sams_private = views.create_view(db, team["sam"], LEADS, "Sam's", {})
    with pytest.raises(records.NotFound):  # nobody's default can be a view they cannot open
        views.set_default(db, reza, LEADS, sams_private)
    views.set_default(db, team["admin"], LEADS, shared, team=True)
    assert views.default_view(db, team["sam"], LEADS)["id"] == shared


# --- stale field names and applying a view --------------------------------------------------

def test_a_view_naming_a_deleted_field_still_opens_without_it(db, team):
    reza = team["reza"]
    config = {"columns": ["last_name", "status", "email"], "filters": {"status": ["new"]},
              "sort": "status"}
    view_id = views.create_view(db, reza, LEADS, "Status", config)
    # the status field is deleted (a custom field an admin removed): the entity's specs no
    # longer have it
    without = dataclasses.replace(LEADS, code_fields=[f for f in LEADS.fields if f.name != "status"])
    view = views.get_view(db, reza, view_id, without)
    assert view["dropped"] == ["status"]
    assert view["config"]["columns"] == ["last_name", "email"]
    assert view["config"]["filters"] == {} and view["config"]["sort"] is None
    lead(db, reza, "Still")
    page = records.list_records(db, reza, without, views.query_for(without, view["config"]))
    assert [r["last_name"] for r in page.rows] == ["Still"]
    assert "status" not in page.rows[0]
    # a stored choice that is no longer offered is left out of the filter too (the config
    # written as an older version might have left it)
    with db.transaction() as cur:
        cur.execute("UPDATE saved_views SET config = $c WHERE id = $id", {
            "c": json.dumps({"filters": {"status": ["gone", "new"], "nope": [1]},
                             "columns": ["ghost"]}), "id": view_id})
    view = views.get_view(db, reza, view_id, LEADS)
    assert view["config"]["filters"] == {"status": ["new"]}
    assert view["dropped"] == ["ghost", "nope"]
    assert view["config"]["columns"] == []


def test_a_views_filters_sort_and_columns_apply_to_the_list(db, team):
    reza, sam = team["reza"], team["sam"]
    lead(db, reza, "Brown", email="b@example.com", status="new", source="referral")
    lead(db, reza, "Adams", status="new", source="website")
    lead(db, reza, "Clark", status="contacted")
    lead(db, sam, "Sam's", status="new")
    view_id = views.create_view(db, reza, LEADS, "New ones", {
        "columns": ["email", "last_name", "source"], "filters": {"status": ["new"]},
        "sort": "last_name", "descending": False}, shared=True)
    config = views.get_view(db, reza, view_id, LEADS)["config"]
    page = records.list_records(db, reza, LEADS, views.query_for(LEADS, config))
    assert [r["last_name"] for r in page.rows] == ["Adams", "Brown"]
    assert page.total == 2
    assert [k for k in page.rows[1] if k not in ("owner_id", "owner_name")] == [
        "id", "email", "last_name", "source"]
    assert page.rows[1]["email"] == "b@example.com"
    # the same shared view, opened by Sam, still shows only what Sam may see
    page = records.list_records(db, sam, LEADS, views.query_for(LEADS, config))
    assert [r["last_name"] for r in page.rows] == ["Sam's"]
    # search text and descending order
    config = {**config, "search": "a", "descending": True}
    page = records.list_records(db, reza, LEADS, views.query_for(LEADS, config))
    assert [r["last_name"] for r in page.rows] == ["Brown", "Adams"]


def test_columns_of_a_view_may_name_reference_fields(db, team, stage):
    maria = team["maria"]
    deals.create_deal(db, maria, {"title": "Big", "amount": "5", "stage_id": stage["Proposal"]})
    q = records.Query(columns=["stage_id", "title", "source"])
    page = records.list_records(db, maria, deals.DEALS, q)
    assert page.rows[0]["stage_id__label"] == "Proposal"
    assert page.rows[0]["title"] == "Big"


# --- the board grouped by a choice field --------------------------------------------------------

def test_board_groups_open_deals_by_a_choice_field(db, team, stage):
    maria = team["maria"]
    pipeline = pipelines.default_pipeline_id(db)
    web = deals.create_deal(db, maria, {"title": "W1", "amount": "100", "source": "website",
                                        "stage_id": stage["Prospecting"]})
    deals.create_deal(db, maria, {"title": "W2", "amount": "300", "source": "website",
                                  "stage_id": stage["Proposal"]})
    deals.create_deal(db, maria, {"title": "None", "amount": "50",
                                  "stage_id": stage["Prospecting"]})
    deals.create_deal(db, maria, {"title": "Won", "amount": "999", "source": "website",
                                  "stage_id": stage["Won"]})  # not open: not on this board
    assert "source" in deals.group_fields() and "currency" not in deals.group_fields()
    columns = deals.board(db, maria, pipeline, group_by="source")
    by_id = {c["id"]: c for c in columns}
    assert list(by_id)[-1] == deals.NO_VALUE and by_id[deals.NO_VALUE]["name"] == "(none)"
    assert [c["value"] for c in columns[:-1]] == list(leads.SOURCES)
    assert (by_id["website"]["count"], by_id["website"]["total"]) == (2, 400.0)
    assert [c["title"] for c in by_id["website"]["cards"]] == ["W2", "W1"]
    assert by_id["website"]["weighted"] == pytest.approx(100 * 0.10 + 300 * 0.50)
    assert (by_id[deals.NO_VALUE]["count"], by_id[deals.NO_VALUE]["total"]) == (1, 50.0)
    assert by_id["referral"]["count"] == 0 and by_id["referral"]["cards"] == []
    # the same filters as the stage board: search, one card per column
    columns = deals.board(db, maria, pipeline, group_by="source", search="w1")
    assert [(c["id"], c["count"]) for c in columns if c["count"]] == [("website", 1)]
    columns = deals.board(db, maria, pipeline, group_by="source", per_stage=1)
    website = next(c for c in columns if c["id"] == "website")
    assert (len(website["cards"]), website["more"]) == (1, 1)
    # moving a card sets the field through the deal's update command
    version = records.get(db, maria, deals.DEALS, web)["version"]
    deals.set_group_field(db, maria, web, "source", "referral", version)
    assert records.get(db, maria, deals.DEALS, web)["source"] == "referral"
    with pytest.raises(records.ConflictError):  # a stale card is not moved
        deals.set_group_field(db, maria, web, "source", "event", version)
    deals.set_group_field(db, maria, web, "source", None, version + 1)  # to "(none)"
    assert records.get(db, maria, deals.DEALS, web)["source"] is None
    assert [e["action"] for e in audit.history(db, "deals", web)][:2] == ["update", "update"]
    with pytest.raises(ValidationError):
        deals.set_group_field(db, maria, web, "source", "not a source", None)
    with pytest.raises(ValidationError):
        deals.set_group_field(db, maria, web, "title", "x", None)
    with pytest.raises(ValidationError):
        deals.board(db, maria, pipeline, group_by="title")


def test_grouped_board_move_checks_permission(db, team, stage):
    sams = deals.create_deal(db, team["sam"], {"title": "Sam's", "amount": "1",
                                               "stage_id": stage["Prospecting"]})
    with pytest.raises(PermissionDenied):
        deals.set_group_field(db, team["reza"], sams, "source", "event", None)
    columns = deals.board(db, team["reza"], pipelines.default_pipeline_id(db),
                          group_by="source")
    assert sum(c["count"] for c in columns) == 0  # a rep's board holds their own deals


def test_board_groups_by_a_custom_choice_field(db, team, stage):
    """An admin's custom single-choice field groups the board too; a board view naming it
    falls back to stages once the field is deleted."""
    from crm import custom_fields

    field_id = custom_fields.add_field(db, team["admin"], "deals", {
        "name": "region", "label": "Region", "type": "choice", "choices": "north\nsouth",
        "filterable": True})
    maria = team["maria"]
    deal_id = deals.create_deal(db, maria, {"title": "N", "amount": "10",
                                            "stage_id": stage["Prospecting"]})
    deals.set_group_field(db, maria, deal_id, "region", "north", None)
    columns = deals.board(db, maria, pipelines.default_pipeline_id(db), group_by="region")
    assert [(c["id"], c["count"]) for c in columns] == [
        ("north", 1), ("south", 0), (deals.NO_VALUE, 0)]
    view_id = views.create_view(db, maria, deals.DEALS, "By region", {"group_by": "region"},
                                kind=views.BOARD)
    assert views.get_view(db, maria, view_id, deals.DEALS, views.BOARD)["config"][
        "group_by"] == "region"
    custom_fields.delete_field(db, team["admin"], field_id)
    view = views.get_view(db, maria, view_id, deals.DEALS, views.BOARD)
    assert (view["config"]["group_by"], view["dropped"]) == ("stage_id", ["region"])


def test_board_views_keep_grouping_and_filters(db, team):
    maria = team["maria"]
    config = {"group_by": "forecast_category", "search": "acme", "mine": True,
              "filters": {"owner_id": [team["reza"].id],
                          "expected_close_date": [None, "2026-12-31"]},
              "sort": "expected_close_date"}
    view_id = views.create_view(db, maria, deals.DEALS, "Forecast", config, kind=views.BOARD)
    view = views.get_view(db, maria, view_id, deals.DEALS, views.BOARD)
    assert view["config"]["group_by"] == "forecast_category" and view["config"]["mine"]
    assert view["config"]["filters"]["expected_close_date"] == (None, date(2026, 12, 31))
    # an unset sort is the board's own (by amount), not the list's
    assert views.same_config(deals.DEALS, {"group_by": "source"},
                             {"group_by": "source", "sort": "amount"}, views.BOARD)
    assert not views.same_config(deals.DEALS, {}, {"sort": "amount"})
    # board views and list views of deals are kept apart
    assert views.list_views(db, maria, deals.DEALS) == []
    assert [v["id"] for v in views.list_views(db, maria, deals.DEALS, views.BOARD)] == [view_id]
    with pytest.raises(records.NotFound):
        views.get_view(db, maria, view_id, deals.DEALS, views.LIST)
    with pytest.raises(ValidationError):
        views.create_view(db, maria, deals.DEALS, "Bad", {"group_by": "title"},
                          kind=views.BOARD)


# --- pages (AppTest) -------------------------------------------------------------------------

def test_leads_page_saves_a_view_and_reopens_it_from_its_link(app_env, team):
    from tests.test_pages import errors, page

    reza = team["reza"]
    lead(app_env, reza, "Adams", status="new")
    lead(app_env, reza, "Brown", status="new", email="brown@example.com")
    lead(app_env, reza, "Clark", status="contacted")
    at = page("pages/leads.py", user="reza")
    assert at.selectbox(key="leads:view:pick").value == 0  # the standard view
    at.multiselect(key="leads:filter:status").set_value(["new"])
    at.selectbox(key="leads:sort").set_value("last_name")
    at.toggle(key="leads:desc").set_value(False)
    at.multiselect(key="leads:columns").set_value(["email", "last_name"]).run()
    frame = at.dataframe[0].value
    assert list(frame["last_name"]) == ["Adams", "Brown"]
    assert [c for c in frame.columns if c not in ("id", "owner_name")] == ["email", "last_name"]
    at.text_input(key="leads:view:new_name").input("New *ones*")
    at.checkbox(key="leads:view:new_shared").check()
    at.button(key="leads:view:save").click().run()
    assert not errors(at)
    view = app_env.one("SELECT * FROM saved_views")
    assert (view["name"], view["shared"], view["owner_id"]) == ("New *ones*", True, reza.id)
    assert json.loads(view["config"]) == {
        "columns": ["email", "last_name"], "descending": False,
        "filters": {"status": ["new"]}, "search": "", "sort": "last_name"}
    assert at.query_params["view"] == str(view["id"])
    assert at.selectbox(key="leads:view:pick").value == view["id"]
    # the name is user text: escaped where it reaches markdown
    assert any(r"**New \*ones\*** · shared with the team" in m.value for m in at.markdown)

    # the link opens the view in a new session: filters, sort and columns as saved
    again = page("pages/leads.py", user="reza", view=str(view["id"]))
    assert not errors(again)
    assert again.multiselect(key="leads:filter:status").value == ["new"]
    assert again.selectbox(key="leads:view:pick").value == view["id"]
    frame = again.dataframe[0].value
    assert list(frame["last_name"]) == ["Adams", "Brown"]
    assert [c for c in frame.columns if c not in ("id", "owner_name")] == ["email", "last_name"]
    # picking the standard view puts everything back and takes the view out of the address
    again.selectbox(key="leads:view:pick").set_value(0).run()
    assert "view" not in again.query_params
    assert again.multiselect(key="leads:filter:status").value == []
    assert len(again.dataframe[0].value) == 3
    # ...and picking the view again applies it
    again.selectbox(key="leads:view:pick").set_value(view["id"]).run()
    assert len(again.dataframe[0].value) == 2 and again.query_params["view"] == str(view["id"])


def test_leads_page_updates_renames_defaults_and_deletes_a_view(app_env, team):
    from tests.test_pages import errors, page

    reza = team["reza"]
    lead(app_env, reza, "Adams", status="new")
    lead(app_env, reza, "Clark", status="contacted")
    view_id = views.create_view(app_env, reza, LEADS, "Mine", {"filters": {"status": ["new"]}})
    at = page("pages/leads.py", user="reza", view=str(view_id))
    assert at.button(key="leads:view:update").disabled  # nothing changed yet
    at.text_input(key="leads:search").input("ada").run()
    at.button(key="leads:view:update").click().run()
    assert not errors(at)
    assert views.get_view(app_env, reza, view_id)["config"]["search"] == "ada"
    at.text_input(key=f"leads:view:rename:{view_id}").input("Adams only")
    at.button(key="leads:view:rename").click().run()
    assert views.get_view(app_env, reza, view_id)["name"] == "Adams only"
    at.button(key="leads:view:default").click().run()
    assert views.default_view(app_env, reza, LEADS)["id"] == view_id
    # a fresh visit without a link opens the default
    fresh = page("pages/leads.py", user="reza")
    assert fresh.selectbox(key="leads:view:pick").value == view_id
    assert fresh.text_input(key="leads:search").value == "ada"
    assert list(fresh.dataframe[0].value["last_name"]) == ["Adams"]
    fresh.button(key="leads:view:delete").click().run()
    assert not errors(fresh)
    assert app_env.scalar("SELECT count(*) FROM saved_views") == 0
    assert fresh.selectbox(key="leads:view:pick").value == 0
    assert len(fresh.dataframe[0].value) == 2


def test_a_link_to_someone_elses_private_view_opens_the_standard_list(app_env, team):
    from tests.test_pages import errors, page, texts

    private = views.create_view(app_env, team["sam"], LEADS, "Sam's <b>secret</b>",
                                {"search": "zzz"})
    at = page("pages/leads.py", user="reza", view=str(private))
    assert not errors(at)
    assert "does not exist or is private" in texts(at)
    assert at.text_input(key="leads:search").value == ""
    assert "view" not in at.query_params
    # a rep cannot change a manager's shared view from the page: no edit buttons
    shared = views.create_view(app_env, team["maria"], LEADS, "Team", {}, shared=True)
    at = page("pages/leads.py", user="reza", view=str(shared))
    keys = [b.key for b in at.button]
    assert "leads:view:default" in keys and "leads:view:delete" not in keys
    assert "leads:view:team" not in keys
    at = page("pages/leads.py", user="maria", view=str(shared))
    assert "leads:view:team" in [b.key for b in at.button]


def test_board_grouped_by_source_moves_a_deal_without_dragging(app_env, team, stage):
    from tests.test_pages import errors, page, texts

    maria = team["maria"]
    web = deals.create_deal(app_env, maria, {"title": "Web deal", "amount": "100",
                                             "source": "website",
                                             "stage_id": stage["Prospecting"]})
    deals.create_deal(app_env, maria, {"title": "Other deal", "amount": "300",
                                       "stage_id": stage["Proposal"]})
    at = page("pages/pipeline.py", user="maria")
    assert at.selectbox(key="board_group").value == "stage_id"
    at.selectbox(key="board_group").set_value("source").run()
    assert not errors(at)
    assert "Grouped by Source (under Filters)." in texts(at)
    options = at.selectbox(key="plain_stage").options
    assert options[0] == "Website" and options[-1] == "(none)"
    # totals over all columns: the open deals
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Open deals"], metrics["Open pipeline (USD)"]) == ("2", "400")
    at.selectbox(key="plain_deal").set_value(web)
    at.selectbox(key="plain_stage").set_value("referral").run()
    at.button(key="plain_move").click().run()
    assert not errors(at)
    deal = records.get(app_env, maria, deals.DEALS, web)
    assert (deal["source"], deal["stage_id"]) == ("referral", stage["Prospecting"])
    assert audit.history(app_env, "deals", web)[0]["changes"] == {
        "source": ["website", "referral"]}
    # a drop on "(none)" (what the board's drop callback records) clears the field
    at.session_state["board_pending_move"] = (web, deals.NO_VALUE, deal["version"])
    at.run()
    assert not errors(at)
    assert records.get(app_env, maria, deals.DEALS, web)["source"] is None
    # a stale drop is refused with a notice, and the other change stands
    version = records.get(app_env, maria, deals.DEALS, web)["version"]
    deals.update_deal(app_env, team["admin"], web, {"source": "event"}, version)
    at.session_state["board_pending_move"] = (web, "partner", version)
    at.run()
    assert "meanwhile" in " ".join(w.value for w in at.warning)
    assert records.get(app_env, maria, deals.DEALS, web)["source"] == "event"

    # saved as a board view, the grouping comes back from the link
    at.text_input(key="board:view:new_name").input("By source")
    at.button(key="board:view:save").click().run()
    assert not errors(at)
    view = app_env.one("SELECT * FROM saved_views")
    assert (view["entity"], view["kind"]) == ("deals", "board")
    assert json.loads(view["config"])["group_by"] == "source"
    again = page("pages/pipeline.py", user="maria", view=str(view["id"]))
    assert again.selectbox(key="board_group").value == "source"
    assert again.button(key="board:view:update").disabled  # opened as saved
    assert again.selectbox(key="plain_stage").options[-1] == "(none)"
    # the list of deals offers no board views, and the board no list views
    assert page("pages/deals.py", user="maria").selectbox(key="deals:view:pick").options == [
        "Standard view"]


def test_two_lists_on_one_page_keep_their_own_views(app_env, team):
    from crm import activities
    from tests.test_pages import errors, page

    reza = team["reza"]
    tasks_view = views.create_view(app_env, reza, activities.TASKS, "Open tasks",
                                   {"filters": {"status": ["open"]}})
    at = page("pages/activities.py", user="reza", tasks_view=str(tasks_view))
    assert not errors(at)
    assert at.selectbox(key="tasks:view:pick").value == tasks_view
    assert at.selectbox(key="activities:view:pick").value == 0
    assert at.query_params["tasks_view"] == str(tasks_view)
    assert "activities_view" not in at.query_params and "view" not in at.query_params


def test_a_column_linking_to_a_table_without_names_shows_the_id(db, team, stage):
    """A link field to a table the lists cannot name (a custom "link to another record")
    is shown as #id instead of failing the list."""
    with db.transaction() as cur:
        cur.execute("ALTER TABLE deals ADD COLUMN task_link BIGINT")
    linked = dataclasses.replace(deals.DEALS, code_fields=[
        *deals.FIELDS, Field("task_link", "Task", "ref", ref="tasks")])
    deal_id = deals.create_deal(db, team["maria"], {"title": "T", "stage_id":
                                                    stage["Proposal"]})
    with db.transaction() as cur:
        cur.execute("UPDATE deals SET task_link = 42 WHERE id = $id", {"id": deal_id})
    page = records.list_records(db, team["maria"], linked,
                                records.Query(columns=["title", "task_link"]))
    assert (page.rows[0]["task_link"], page.rows[0]["task_link__label"]) == (42, "#42")


@pytest.mark.parametrize("lang", ["en", "fa"])
def test_a_views_date_filter_fills_the_date_inputs(app_env, team, lang):
    """The period of a view lands in the date picker, or in Persian in the two Jalali boxes
    (the same Gregorian days)."""
    from crm import i18n
    from tests.test_pages import errors, page

    view_id = views.create_view(app_env, team["reza"], LEADS, "This autumn", {
        "filters": {"created_at": (date(2026, 9, 23), date(2026, 12, 21))}})
    try:
        i18n.set_language(lang)
        at = page("pages/leads.py", user="reza", state={"chosen_language": lang},
                  view=str(view_id))
        assert not errors(at) and not at.exception
        if lang == "en":
            assert at.date_input(key="leads:filter:created_at").value == (
                date(2026, 9, 23), date(2026, 12, 21))
        else:
            assert at.text_input(key="leads:filter:created_at:jalali:from").value == \
                i18n.format_date(date(2026, 9, 23))
            assert at.text_input(key="leads:filter:created_at:jalali:to").value == \
                i18n.format_date(date(2026, 12, 21))
        assert at.button(key="leads:view:update").disabled  # as saved: nothing changed
    finally:
        i18n.set_language("en")
