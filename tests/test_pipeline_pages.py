"""AppTest: the deal form, the 'Move to' controls, conversion, activities and tasks, settings."""
from datetime import datetime, timedelta

import pytest

from crm import activities, customers, deals, leads, pipelines, records
from tests.test_pages import errors, page, texts


@pytest.fixture
def stage(db):
    return {s["name"]: s["id"] for s in
            pipelines.stages_of(db, pipelines.default_pipeline_id(db))}


def deal_of(db, user, stage, title="Deal", **values):
    return deals.create_deal(db, user, {"title": title, "amount": "1000",
                                        "stage_id": stage["Prospecting"], **values})


def test_deal_form_creates_a_deal_for_a_customer(app_env, team, stage):
    acme = customers.create_customer(app_env, team["reza"], {"name": "Acme"})
    at = page("pages/deal.py", user="reza", id="new", customer_id=str(acme))
    assert at.selectbox(key="deals:new:customer_id").value == acme
    at.text_input(key="deals:new:title").input("Acme — licences")
    at.number_input(key="deals:new:amount").set_value(12000.0)
    at.selectbox(key="deals:new:stage_id").set_value(stage["Proposal"])
    at.button(key="FormSubmitter:deals:new-Create deal").click().run()
    assert not errors(at)
    deal = app_env.one("SELECT * FROM deals")
    assert (deal["title"], deal["customer_id"], deal["stage_id"], float(deal["amount"])) == (
        "Acme — licences", acme, stage["Proposal"], 12000.0)
    assert app_env.scalar("SELECT count(*) FROM deal_stage_history") == 1


def test_invalid_deal_form_keeps_the_input(app_env, stage):
    at = page("pages/deal.py", user="reza", id="new")
    at.number_input(key="deals:new:amount").set_value(-5.0)
    at.number_input(key="deals:new:probability").set_value(150)
    at.button(key="FormSubmitter:deals:new-Create deal").click().run()
    shown = " ".join(errors(at))
    assert "Title is required" in shown
    assert "cannot be less than 0" in shown and "cannot be more than 100" in shown
    assert at.number_input(key="deals:new:amount").value == -5.0
    assert app_env.scalar("SELECT count(*) FROM deals") == 0


def test_a_move_made_elsewhere_after_choosing_the_stage_is_a_conflict(app_env, team, stage):
    """The move checks the deal the user saw when choosing the stage, not the one the click's
    run reads again: a move by someone else in between is reported, and a retry moves from
    the stage now shown."""
    deal_id = deal_of(app_env, team["reza"], stage)
    at = page("pages/deal.py", user="reza", id=str(deal_id))
    at.selectbox(key="move_to").set_value(stage["Negotiation"]).run()
    deals.move_deal(app_env, team["maria"], deal_id, stage["Proposal"])  # another session
    at.button(key="move_button").click().run()
    assert any("Someone changed this deal" in w.value for w in at.warning)
    assert records.get(app_env, team["reza"], deals.DEALS, deal_id)["stage_id"] == \
        stage["Proposal"]
    at.button(key="move_button").click().run()
    assert records.get(app_env, team["reza"], deals.DEALS, deal_id)["stage_id"] == \
        stage["Negotiation"]


def test_move_to_on_the_deal_page(app_env, team, stage):
    deal_id = deal_of(app_env, team["reza"], stage)
    at = page("pages/deal.py", user="reza", id=str(deal_id))
    at.selectbox(key="move_to").set_value(stage["Negotiation"]).run()
    at.button(key="move_button").click().run()
    assert records.get(app_env, team["reza"], deals.DEALS, deal_id)["stage_id"] == \
        stage["Negotiation"]
    # lost needs the reason: without it nothing moves and the page says why
    at.selectbox(key="move_to").set_value(stage["Lost"]).run()
    at.button(key="move_button").click().run()
    assert any("lost" in e.lower() for e in errors(at))
    assert records.get(app_env, team["reza"], deals.DEALS, deal_id)["stage_id"] == \
        stage["Negotiation"]
    at.selectbox(key="move_lost_reason").set_value("price")
    # the known competitors are offered (a new name can be typed too: the command adds it)
    from crm.market import COMPETITORS

    COMPETITORS.create(app_env, team["maria"], {"name": "Rival Inc"})
    at.run()
    assert "Rival Inc" in at.selectbox(key="move_competitor").options
    at.selectbox(key="move_competitor").set_value("Rival Inc")
    at.button(key="move_button").click().run()
    deal = records.get(app_env, team["reza"], deals.DEALS, deal_id)
    assert (deal["stage_id"], deal["lost_reason"], deal["lost_to_competitor"]) == (
        stage["Lost"], "price", "Rival Inc")
    history = deals.stage_history(app_env, team["reza"], deal_id)
    assert [h["to_stage"] for h in history] == ["Prospecting", "Negotiation", "Lost"]


def test_board_page_shows_totals_and_moves_without_dragging(app_env, team, stage):
    first = deal_of(app_env, team["reza"], stage, "First", amount="100")
    deal_of(app_env, team["sam"], stage, "Second", amount="300")
    at = page("pages/pipeline.py", user="maria")
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Open deals"], metrics["Open pipeline (USD)"], metrics["Weighted (USD)"]) == (
        "2", "400", "40")
    at.selectbox(key="plain_deal").set_value(first)
    at.selectbox(key="plain_stage").set_value(stage["Won"]).run()
    at.button(key="plain_move").click().run()
    assert not errors(at)
    deal = records.get(app_env, team["maria"], deals.DEALS, first)
    assert deal["stage_id"] == stage["Won"] and deal["closed_on"] is not None
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Open deals"], metrics["Open pipeline (USD)"]) == ("1", "300")


def test_a_rep_sees_only_their_deals_on_the_board(app_env, team, stage):
    deal_of(app_env, team["reza"], stage, "Reza's")
    deal_of(app_env, team["sam"], stage, "Sam's")
    at = page("pages/pipeline.py", user="reza")
    assert {m.label: m.value for m in at.metric}["Open deals"] == "1"
    options = at.selectbox(key="plain_deal").options
    assert any("Reza's" in o for o in options) and not any("Sam's" in o for o in options)


def test_log_an_activity_and_complete_a_task_on_a_deal(app_env, team, stage):
    deal_id = deal_of(app_env, team["reza"], stage)
    activities.create_task(app_env, team["reza"], {"title": "Send the offer",
                                                   "deal_id": deal_id,
                                                   "due_at": datetime.now() - timedelta(hours=1)})
    at = page("pages/deal.py", user="reza", id=str(deal_id))
    form = f"activity:new:deal_id:{deal_id}"
    at.text_input(key=f"{form}:subject").input("Discovery call")
    at.selectbox(key=f"{form}:outcome").set_value("interested")
    at.number_input(key=f"{form}:duration_minutes").set_value(25)
    at.button(key=f"FormSubmitter:{form}-Log activity").click().run()
    assert not errors(at)
    [logged] = activities.timeline(app_env, team["reza"], "deal_id", deal_id)
    assert (logged["subject"], logged["outcome"], logged["duration_minutes"]) == (
        "Discovery call", "interested", 25)
    task_id = app_env.scalar("SELECT id FROM tasks")
    at.button(key=f"done:deal_id:{deal_id}:{task_id}").click().run()
    assert app_env.scalar("SELECT status FROM tasks") == "done"
    assert len(activities.timeline(app_env, team["reza"], "deal_id", deal_id)) == 2


def test_home_lists_my_overdue_tasks(app_env, team, stage):
    deal_id = deal_of(app_env, team["reza"], stage, "Overdue deal")
    activities.create_task(app_env, team["reza"], {"title": "Call back", "deal_id": deal_id,
                                                   "due_at": datetime.now() - timedelta(days=1)})
    at = page("app.py", user="reza")
    assert "Overdue" in texts(at)
    assert any("Call back" in m.value for m in at.markdown)
    assert any(c.value.startswith("Overdue deal · due") for c in at.caption)


def test_convert_a_qualified_lead_from_its_page(app_env, team, stage):
    existing = customers.create_customer(app_env, team["reza"], {
        "name": "Persepolis Trading", "kind": "company", "email": "info@persepolis.ir"})
    lead_id = leads.create_lead(app_env, team["reza"], {
        "first_name": "Shirin", "last_name": "Tehrani", "company": "Persepolis Trading",
        "email": "shirin@persepolis.ir", "status": "qualified", "estimated_value": "7000"})
    at = page("pages/lead.py", user="reza", id=str(lead_id))
    assert any("look like this lead" in w.value for w in at.warning)
    at.radio(key=f"convert_customer:{lead_id}").set_value(existing)
    at.button(key=f"convert_button:{lead_id}").click().run()
    lead = records.get(app_env, team["reza"], leads.LEADS, lead_id)
    assert lead["status"] == "converted" and lead["converted_customer_id"] == existing
    deal = records.get(app_env, team["reza"], deals.DEALS, lead["converted_deal_id"])
    assert deal["customer_id"] == existing and float(deal["amount"]) == 7000.0
    assert app_env.scalar("SELECT count(*) FROM customers") == 1  # no duplicate made


def test_pipeline_settings_add_and_save_stages(app_env, team):
    at = page("pages/pipelines_admin.py", user="admin")
    pid = pipelines.default_pipeline_id(app_env)
    form = f"stage:new:{pid}"
    at.text_input(key=f"{form}:name").input("Demo")
    at.number_input(key=f"{form}:probability").set_value(40)
    at.button(key=f"FormSubmitter:{form}-Add stage").click().run()
    names = [s["name"] for s in pipelines.stages_of(app_env, pid)]
    assert names.index("Demo") == names.index("Won") - 1
    demo = next(s for s in pipelines.stages_of(app_env, pid) if s["name"] == "Demo")
    at.number_input(key=f"st_prob:{demo['id']}").set_value(60)
    at.button(key="save_stages").click().run()
    assert pipelines.get_stage(app_env, demo["id"])["probability"] == 60


def test_contact_page_shows_its_customer_and_logs_activities(app_env, team):
    acme = customers.create_customer(app_env, team["reza"], {"name": "Acme"})
    contact = customers.add_contact(app_env, team["reza"], acme, {"last_name": "Karimi"})
    at = page("pages/contact.py", user="reza", id=str(contact))
    assert at.title[0].value == "Karimi"
    form = f"activity:new:contact_id:{contact}"
    at.text_input(key=f"{form}:subject").input("Intro call")
    at.button(key=f"FormSubmitter:{form}-Log activity").click().run()
    assert not errors(at)
    [logged] = activities.timeline(app_env, team["reza"], "contact_id", contact)
    assert logged["subject"] == "Intro call"
    at = page("pages/contact.py", user="sam", id=str(contact))  # not sam's customer
    assert any("own records" in e for e in errors(at))


def test_plain_move_of_a_stale_card_warns_and_keeps_the_other_change(app_env, team, stage):
    deal_id = deal_of(app_env, team["reza"], stage, "Stale *deal*")
    at = page("pages/pipeline.py", user="maria")
    at.selectbox(key="plain_deal").set_value(deal_id)
    at.selectbox(key="plain_stage").set_value(stage["Won"]).run()
    # someone else moves the deal after this board was drawn
    deals.move_deal(app_env, team["reza"], deal_id, stage["Negotiation"])
    at.button(key="plain_move").click().run()
    assert not errors(at)
    assert records.get(app_env, team["maria"], deals.DEALS, deal_id)["stage_id"] == \
        stage["Negotiation"]
    [warning] = [w.value for w in at.warning]
    assert "meanwhile" in warning and r"Stale \*deal\*" in warning
    # the board now shows the deal where it is; a second click moves it on purpose
    assert any("Stale *deal* · Negotiation" in o for o in at.selectbox(key="plain_deal").options)
    at.selectbox(key="plain_deal").set_value(deal_id)
    at.selectbox(key="plain_stage").set_value(stage["Won"])
    at.button(key="plain_move").click().run()
    assert not errors(at) and not at.warning
    assert records.get(app_env, team["maria"], deals.DEALS, deal_id)["stage_id"] == stage["Won"]


def test_a_stale_drop_on_lost_warns_instead_of_asking_why(app_env, team, stage):
    deal_id = deal_of(app_env, team["reza"], stage, "Old <b>news</b>")
    at = page("pages/pipeline.py", user="maria")
    version = records.get(app_env, team["maria"], deals.DEALS, deal_id)["version"]
    deals.move_deal(app_env, team["reza"], deal_id, stage["Proposal"])
    # what the board's drop callback records for a card drawn before that move
    # (AppTest cannot drag, nor keep a dialog open across runs)
    at.session_state["board_pending_move"] = (deal_id, stage["Lost"], version)
    at.run()
    assert "lost_dialog_reason" not in [s.key for s in at.selectbox]  # no dialog
    [warning] = [w.value for w in at.warning]
    assert r"Old <b>news</b>" not in warning and "meanwhile" in warning
    assert records.get(app_env, team["maria"], deals.DEALS, deal_id)["stage_id"] == \
        stage["Proposal"]
    # with the version it now has, the same drop asks for the reason
    current = records.get(app_env, team["maria"], deals.DEALS, deal_id)["version"]
    at.session_state["board_pending_move"] = (deal_id, stage["Lost"], current)
    at.run()
    assert "lost_dialog_reason" in [s.key for s in at.selectbox] and not at.warning
