"""AppTest of the automation rules pages (Settings, admin only)."""
import pytest

from crm import leads, rules
from tests.test_pages import assert_refused, errors, page, texts


@pytest.fixture(autouse=True)
def fresh_cache():
    rules.invalidate()
    rules._DAILY.clear()
    yield
    rules.invalidate()


def submit(at, rule="new"):
    at.button(key=f"FormSubmitter:rule:{rule}:form-Save rule").click().run()
    return at


def test_admin_creates_a_rule_in_the_form_and_sees_it_run(app_env, team):
    at = page("pages/rule.py", user="admin", id="new")
    assert not errors(at)
    at.text_input(key="rule:new:name").input("Call new leads")
    at.selectbox(key="rule:new:c0_field").set_value("source")
    at.selectbox(key="rule:new:c0_op").set_value("eq")
    at.text_input(key="rule:new:c0_value").input("referral")
    at.text_input(key="rule:new:a0_title").input("Call {first_name} {last_name}")
    at.selectbox(key="rule:new:a0_assignee").set_value("owner")
    at.number_input(key="rule:new:a0_due").set_value(2)
    submit(at)
    assert not errors(at)
    stored = app_env.one("SELECT id, name, entity, trigger_kind FROM automation_rules")
    assert (stored["name"], stored["entity"], stored["trigger_kind"]) == (
        "Call new leads", "leads", "created")
    # a rep creates a lead from a referral: the rule makes the task and logs the run
    lead = leads.create_lead(app_env, team["reza"], {"first_name": "Ana", "last_name": "Lee",
                                                     "source": "referral"})
    task = app_env.one("SELECT title, owner_id FROM tasks WHERE lead_id = $l", {"l": lead})
    assert task == {"title": "Call Ana Lee", "owner_id": team["reza"].id}
    at = page("pages/rule.py", user="admin", id=str(stored["id"]))
    assert not errors(at)
    log = at.dataframe[0].value
    assert len(log) == 1
    assert log.iloc[0].tolist()[1:3] == [f"Lead #{lead} · Ana Lee", "Done"]
    # the list shows it with its runs
    at = page("pages/rules.py", user="admin")
    assert "Leads: created" in texts(at).replace("\u2060", "").replace("\\", "")
    assert at.toggle(key=f"rule_on:{stored['id']}").value is True
    assert "1 / 0" in texts(at)


def test_a_refused_rule_keeps_what_was_typed(app_env, team):
    at = page("pages/rule.py", user="admin", id="new")
    at.selectbox(key="rule:new:entity").set_value("deals").run()
    at.selectbox(key="rule:new:trigger").set_value("changed").run()
    at.text_input(key="rule:new:name").input("Won deals")
    at.selectbox(key="rule:new:t_field").set_value("amount")
    at.text_input(key="rule:new:t_to").input("a lot")
    at.text_input(key="rule:new:a0_title").input("Thank {title}")
    submit(at)
    shown = " ".join(errors(at))
    assert "must be a number" in shown and "not saved" in shown
    assert at.text_input(key="rule:new:name").value == "Won deals"
    assert at.text_input(key="rule:new:t_to").value == "a lot"
    assert at.text_input(key="rule:new:a0_title").value == "Thank {title}"
    assert app_env.scalar("SELECT count(*) FROM automation_rules") == 0
    at.text_input(key="rule:new:t_to").input("1000")
    submit(at)
    assert not errors(at)
    assert app_env.scalar("SELECT trigger_config FROM automation_rules") == \
        '{"field": "amount", "to": "1000.00"}'


def test_edit_a_rule_add_an_action_and_switch_it_off(app_env, team):
    rule_id = rules.save_rule(app_env, team["admin"], {
        "name": "Owner", "entity": "leads", "trigger": "created",
        "actions": [{"kind": "add_note", "subject": "Hello {last_name}"}]})
    at = page("pages/rule.py", user="admin", id=str(rule_id))
    k = f"rule:{rule_id}:"
    assert at.text_input(key=k + "a0_subject").value == "Hello {last_name}"
    at.selectbox(key=k + "new_kind").set_value("assign_owner").run()
    at.button(key=k + "add_action").click().run()
    at.radio(key=k + "a1_mode").set_value("round_robin")
    at.multiselect(key=k + "a1_users").set_value([team["reza"].id, team["sam"].id])
    submit(at, rule_id)
    assert not errors(at)
    stored = rules.get_rule(app_env, team["admin"], rule_id)
    assert [a["kind"] for a in stored.actions] == ["add_note", "assign_owner"]
    assert stored.actions[1]["user_ids"] == [team["reza"].id, team["sam"].id]
    first = leads.create_lead(app_env, team["admin"], {"last_name": "A"})
    second = leads.create_lead(app_env, team["admin"], {"last_name": "B"})
    owners = [app_env.scalar("SELECT owner_id FROM leads WHERE id = $i", {"i": i})
              for i in (first, second)]
    assert owners == [team["reza"].id, team["sam"].id]
    at = page("pages/rules.py", user="admin")
    at.toggle(key=f"rule_on:{rule_id}").set_value(False).run()
    assert rules.get_rule(app_env, team["admin"], rule_id).enabled is False
    leads.create_lead(app_env, team["admin"], {"last_name": "C"})
    assert app_env.scalar("SELECT count(*) FROM rule_runs") == 2


def test_run_log_is_paginated_newest_first(app_env, team):
    rule_id = rules.save_rule(app_env, team["admin"], {
        "name": "Note", "entity": "leads", "trigger": "created",
        "actions": [{"kind": "add_note", "subject": "Hi {last_name}"}]})
    for i in range(25):
        leads.create_lead(app_env, team["admin"], {"last_name": f"N{i:02d}"})
    at = page("pages/rule.py", user="admin", id=str(rule_id))
    log = at.dataframe[0].value
    assert len(log) == 20 and log.iloc[0].tolist()[1].endswith("N24")
    at.button(key=f"rule:{rule_id}:log_next").click().run()
    log = at.dataframe[0].value
    assert len(log) == 5 and log.iloc[-1].tolist()[1].endswith("N00")
    assert "Page 2 of 2 (25 runs)" in texts(at)


def test_rules_pages_are_for_admins(app_env, team):
    at = page("pages/home.py", user="maria")
    assert_refused(at, "pages/rules.py")
    at = page("pages/home.py", user="reza")
    assert_refused(at, "pages/rule.py")


def test_hostile_rule_name_stays_text(app_env, team):
    rule_id = rules.save_rule(app_env, team["admin"], {
        "name": "**bold** <img src=x onerror=alert(1)> [x](http://evil)", "entity": "leads",
        "trigger": "created", "actions": [{"kind": "add_note", "subject": "s"}]})
    at = page("pages/rules.py", user="admin")
    assert not errors(at)
    at = page("pages/rule.py", user="admin", id=str(rule_id))
    assert "\\*\\*bold\\*\\*" in at.title[0].value


@pytest.mark.parametrize("lang", ("fa", "lt"))
def test_rules_pages_show_no_untranslated_english(app_env, team, monkeypatch, lang):
    import re

    from crm import i18n
    from tests.test_i18n_pages import _english_words, _shown_strings

    monkeypatch.setenv("CRM_LANGUAGE", lang)
    rule_id = rules.save_rule(app_env, team["admin"], {
        "name": "R", "entity": "deals", "trigger": "date",
        "trigger_config": {"field": "expected_close_date", "days": 3, "when": "before"},
        "conditions": [{"field": "amount", "op": "gt", "value": "10"}],
        "actions": [{"kind": "create_task", "title": "T {title}", "assignee": "owner",
                     "due_days": 1},
                    {"kind": "set_field", "field": "next_step", "value": "call"},
                    {"kind": "assign_owner", "mode": "round_robin",
                     "user_ids": [team["reza"].id]},
                    {"kind": "add_note", "subject": "N"}]})
    english = _english_words(lang)
    try:
        for path, params in (("pages/rules.py", {}), ("pages/rule.py", {"id": str(rule_id)}),
                             ("pages/rule.py", {"id": "new"})):
            at = page(path, user="admin", **params)
            assert not at.exception, (lang, path, at.exception)
            words = {w for s in _shown_strings(at) for w in re.findall(r"\b[A-Za-z]{3,}\b", s)}
            words -= {"Ada", "Admin", "admin", "Maria", "Manager", "Reza", "Rahimi", "Sam",
                      "Seller"}  # the team's names (users to choose)
            assert sorted(words & english) == [], (lang, path)
    finally:
        i18n.set_language("en")


def test_deal_moved_to_a_stage_picked_from_the_pipelines(app_env, team):
    from crm import deals, pipelines

    stages = {s["name"]: s["id"] for s in
              pipelines.stages_of(app_env, pipelines.default_pipeline_id(app_env))}
    at = page("pages/rule.py", user="admin", id="new")
    at.selectbox(key="rule:new:entity").set_value("deals").run()
    at.selectbox(key="rule:new:trigger").set_value("changed").run()
    at.selectbox(key="rule:new:t_field").set_value("stage_id").run()
    picker = at.selectbox(key="rule:new:t_to")
    won = f"#{stages['Won']}"
    assert any(o.endswith("› Won") for o in picker.options)  # shown as "Pipeline › Stage"
    picker.set_value(won)
    at.text_input(key="rule:new:name").input("Won deals get a thank-you task")
    at.text_input(key="rule:new:a0_title").input("Thank {title}")
    submit(at)
    assert not errors(at)
    deal = deals.create_deal(app_env, team["reza"], {"title": "Big", "stage_id":
                                                     stages["Prospecting"]})
    deals.move_deal(app_env, team["reza"], deal, stages["Won"])
    assert app_env.scalar("SELECT title FROM tasks WHERE deal_id = $d", {"d": deal}) == \
        "Thank Big"
    at = page("pages/rules.py", user="admin")
    shown = texts(at).replace("\u2060", "").replace("\\", "")
    assert "Deals: Stage changes to" in shown and f"Won (#{stages['Won']})" in shown


def test_removing_an_action_keeps_the_others(app_env, team):
    rule_id = rules.save_rule(app_env, team["admin"], {
        "name": "Two", "entity": "leads", "trigger": "created",
        "actions": [{"kind": "add_note", "subject": "first"},
                    {"kind": "add_note", "subject": "second"},
                    {"kind": "add_note", "subject": "third"}]})
    k = f"rule:{rule_id}:"
    at = page("pages/rule.py", user="admin", id=str(rule_id))
    at.checkbox(key=k + "a0_remove").check()
    submit(at, rule_id)
    assert not errors(at)
    assert [a["subject"] for a in rules.get_rule(app_env, team["admin"], rule_id).actions] == \
        ["second", "third"]
    assert at.text_input(key=k + "a0_subject").value == "second"
    assert at.checkbox(key=k + "a0_remove").value is False
    submit(at, rule_id)  # saving again removes nothing more
    assert [a["subject"] for a in rules.get_rule(app_env, team["admin"], rule_id).actions] == \
        ["second", "third"]


def test_the_first_page_load_of_the_day_runs_the_date_rules(app_env, team):
    rule_id = rules.save_rule(app_env, team["admin"], {
        "name": "Today", "entity": "leads", "trigger": "date",
        "trigger_config": {"field": "created_at", "days": 0, "when": "after"},
        "actions": [{"kind": "add_note", "subject": "Created today: {last_name}"}]})
    leads.create_lead(app_env, team["reza"], {"last_name": "Due"})
    page("pages/home.py", user="reza")  # any page, any signed-in user
    assert app_env.scalar("SELECT count(*) FROM rule_runs WHERE rule_id = $r",
                          {"r": rule_id}) == 1
    page("pages/leads.py", user="maria")  # later loads the same day: nothing more
    assert app_env.scalar("SELECT count(*) FROM rule_runs") == 1
