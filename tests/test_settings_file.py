"""The configuration as one YAML file: export, a plan of the changes, an import in one go."""
import pytest
import yaml

from crm import auth, custom_fields, leads, pipelines, settings, settings_file
from crm.auth import PermissionDenied
from crm.db import Database
from crm.settings_file import SettingsFileError
from tests.conftest import PASSWORD


def configure(db, admin):
    custom_fields.add_field(db, admin, "leads", {
        "name": "temperature", "label": "Temperature", "type": "choice",
        "choices": "Hot = #d62728\nCold", "in_list": True, "filterable": True})
    gone = custom_fields.add_field(db, admin, "deals", {"name": "old_code", "label": "Old",
                                                        "type": "text"})
    custom_fields.delete_field(db, admin, gone)
    rows = custom_fields.layout(db, "leads")
    custom_fields.save_layout(db, admin, "leads", [
        {"field": r["field"], "quick": r["field"] in ("last_name", "temperature")}
        for r in reversed(rows)])
    pid = pipelines.create_pipeline(db, admin, "Renewals")
    stages = pipelines.stages_of(db, pid)
    pipelines.update_stage(db, admin, stages[0]["id"], {"probability": 33})
    settings.save(db, admin, {"installed_base_months": 6})


@pytest.fixture
def other(tmp_path):
    """A second installation with its own admin."""
    db = Database(tmp_path / "other.duckdb")
    auth.create_user(db, None, "root", "Root", None, PASSWORD, "admin")
    yield db, auth.get_user(db, "root")
    db.close()


def test_export_then_import_into_another_installation(db, team, other):
    configure(db, team["admin"])
    text = settings_file.export_yaml(db, team["admin"])
    data = yaml.safe_load(text)
    assert data["custom_fields"]["leads"][0]["colors"] == {"Hot": "#d62728"}
    assert data["custom_fields"]["deals"][0]["deleted"] is True
    target, root = other
    custom_fields.load(target)
    planned = settings_file.plan(target, root, text)
    assert ("fields", "leads.temperature", "add") in {(c.section, c.item, c.action)
                                                     for c in planned}
    assert any(c.section == "pipelines" and c.item == "Renewals" for c in planned)
    assert any(c.section == "settings" and c.item == "installed_base_months" and c.after == "6"
               for c in planned)
    assert target.scalar("SELECT count(*) FROM custom_fields") == 0  # the plan wrote nothing
    settings_file.apply(target, root, text)
    assert leads.LEADS.spec["temperature"].choices == ("Hot", "Cold")
    assert target.scalar("SELECT deleted_at IS NOT NULL FROM custom_fields"
                         " WHERE name = 'old_code'")
    layout_sql = "SELECT field, quick FROM field_layouts WHERE entity = 'leads' ORDER BY position"
    assert target.query(layout_sql) == db.query(layout_sql)
    assert not leads.LEADS.spec["email"].quick
    renewals = [p for p in pipelines.list_pipelines(target) if p["name"] == "Renewals"][0]
    source_stages = [(s["name"], s["probability"]) for s in pipelines.stages_of(
        db, [p for p in pipelines.list_pipelines(db) if p["name"] == "Renewals"][0]["id"])]
    assert [(s["name"], s["probability"]) for s in pipelines.stages_of(
        target, renewals["id"])] == source_stages
    assert settings.get_all(target)["installed_base_months"] == 6
    # the same file again changes nothing
    again = settings_file.plan(target, root, text)
    assert [c for c in again if c.action != "keep"] == []


def test_a_bad_file_changes_nothing_and_says_why(db, team):
    admin = team["admin"]
    good = settings_file.export_yaml(db, admin)
    for text, reason in [
        ("{not: [valid", "not valid YAML"), ("just text", "not a CRM settings file"),
        ("crm_settings: 99", "newer version"), (b"\xff\xfe\x00bad", "not UTF-8"),
        ("crm_settings: 1\npipelines: {a: 1}", "wrong shape"),
        ("crm_settings: 1\nsettings: {nope: 1}", "Unknown general settings"),
    ]:
        with pytest.raises(SettingsFileError) as exc:
            settings_file.plan(db, admin, text)
        assert reason in str(exc.value)
    # valid until its last part: the fields it adds first are rolled back too
    data = yaml.safe_load(good)
    data["custom_fields"] = {"leads": [{"name": "fresh_one", "type": "text", "label": "F"}]}
    data["settings"] = {"installed_base_months": 9999}
    with pytest.raises(SettingsFileError):
        settings_file.apply(db, admin, yaml.safe_dump(data))
    assert db.scalar("SELECT count(*) FROM custom_fields") == 0
    assert "fresh_one" not in leads.LEADS.spec
    assert db.scalar("SELECT count(*) FROM information_schema.columns WHERE table_name ="
                     " 'leads' AND column_name = 'fresh_one'") == 0


def test_a_type_clash_is_refused(db, team):
    admin = team["admin"]
    custom_fields.add_field(db, admin, "leads", {"name": "score2", "label": "S",
                                                 "type": "integer"})
    text = yaml.safe_dump({"crm_settings": 1, "custom_fields": {
        "leads": [{"name": "score2", "type": "text", "label": "S"}]}})
    with pytest.raises(SettingsFileError) as exc:
        settings_file.plan(db, admin, text)
    assert "type cannot change" in str(exc.value)


def test_only_admins(db, team):
    with pytest.raises(PermissionDenied):
        settings_file.export_yaml(db, team["maria"])
    with pytest.raises(PermissionDenied):
        settings_file.plan(db, team["maria"], "crm_settings: 1")


def test_shared_views_travel_without_filters_by_record_ids(db, team, other):
    from crm import views

    maria = team["maria"]
    shared = views.create_view(db, maria, leads.LEADS, "Hot new", {
        "filters": {"status": ["new"], "owner_id": [team["reza"].id]}, "sort": "last_name"},
        shared=True)
    views.set_default(db, maria, leads.LEADS, shared, team=True)
    views.create_view(db, maria, leads.LEADS, "Mine only", {"search": "x"})  # private
    text = settings_file.export_yaml(db, team["admin"])
    exported = yaml.safe_load(text)["views"]
    assert [v["name"] for v in exported] == ["Hot new"]
    assert exported[0]["config"]["filters"] == {"status": ["new"]}
    assert exported[0]["team_default"] is True
    target, root = other
    custom_fields.load(target)
    settings_file.apply(target, root, text)
    [view] = views.list_views(target, root, leads.LEADS)
    assert view["name"] == "Hot new" and view["shared"] and view["team_default"]
    assert view["config"]["filters"] == {"status": ["new"]}
    assert [c for c in settings_file.plan(target, root, text) if c.action != "keep"] == []


def test_rules_travel_with_records_and_users_named(db, team, other):
    from crm import rules

    stage = pipelines.stages_of(db, pipelines.default_pipeline_id(db))[2]
    rules.save_rule(db, team["admin"], {
        "name": "Proposal follow-up", "entity": "deals", "trigger": "changed",
        "trigger_config": {"field": "stage_id", "to": f"#{stage['id']}"},
        "match": "all", "conditions": [{"field": "amount", "op": "gt", "value": "1000"}],
        "actions": [{"kind": "create_task", "title": "Call about {title}", "assignee": "user",
                     "user_id": team["maria"].id, "due_days": 2, "priority": "high"}],
        "enabled": True})
    text = settings_file.export_yaml(db, team["admin"])
    [exported] = yaml.safe_load(text)["rules"]
    assert exported["trigger_config"]["to"].endswith("› " + stage["name"])
    assert exported["actions"][0]["user"] == "maria"
    target, root = other
    custom_fields.load(target)
    with pytest.raises(SettingsFileError) as exc:  # maria does not work there yet
        settings_file.plan(target, root, text)
    assert "no user is called maria" in str(exc.value)
    auth.create_user(target, root, "maria", "Maria M", None, PASSWORD, "manager")
    settings_file.apply(target, root, text)
    [rule] = rules.list_rules(target, root)
    stored = rules.get_rule(target, root, rule["id"])
    target_stage = pipelines.stages_of(target, pipelines.default_pipeline_id(target))[2]
    assert stored.config["to"] == target_stage["id"]
    assert stored.actions[0]["user_id"] == auth.get_user(target, "maria").id
    assert [c for c in settings_file.plan(target, root, text) if c.action != "keep"] == []
