"""AppTest: the survey and complaint forms, the customer page's service block and the
satisfaction page (charts drawn, follow-up task from the at-risk list)."""
import json
from datetime import date

import pytest

from crm import customers, service
from tests.test_pages import errors, page, texts


@pytest.fixture
def acme(app_env, team):
    cid = customers.create_customer(app_env, team["admin"], {
        "name": "Acme", "segment": "vip", "owner_id": team["reza"].id})
    service.create_survey(app_env, team["admin"], {"customer_id": cid, "channel": "web",
                                                   "answered_on": "2026-01-10", "nps": 9,
                                                   "csat": 5})
    service.create_survey(app_env, team["admin"], {"customer_id": cid, "channel": "web",
                                                   "answered_on": "2026-02-10", "nps": 2,
                                                   "csat": 2})
    service.create_complaint(app_env, team["admin"], {
        "customer_id": cid, "subject": "Pump leaks", "category": "product_failure",
        "severity": "critical", "opened_on": "2026-03-01"})
    return cid


def links(at):
    return [e.proto.label for e in at.get("page_link")]


def charts(at):
    """The Plotly figures of the page, as dicts."""
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def test_new_complaint_from_the_customer_page_in_two_clicks(app_env, team, acme):
    at = page("pages/customer.py", user="maria", id=str(acme))
    assert "Latest NPS" in str(at) and "At risk" in " ".join(w.value for w in at.warning)
    at.button(key="raise_complaint").click().run()  # click 1
    assert at.query_params.get("customer_id") in (str(acme), [str(acme)])
    at.switch_page("pages/complaint.py")  # AppTest does not follow st.switch_page itself
    at.query_params["id"], at.query_params["customer_id"] = "new", str(acme)
    at.run()
    form = "complaints:new"
    assert at.selectbox(key=f"{form}:customer_id").value == acme
    assert at.selectbox(key=f"{form}:owner_id").value == team["reza"].id
    at.text_input(key=f"{form}:subject").input("Invoice twice")
    at.button(key=f"FormSubmitter:{form}-Create complaint").click().run()  # click 2
    assert not errors(at)
    row = app_env.one("SELECT * FROM complaints WHERE subject = 'Invoice twice'")
    assert (row["customer_id"], row["owner_id"], row["status"], row["opened_on"]) == (
        acme, team["reza"].id, "open", date.today())


def test_survey_form_refuses_an_answer_without_scores(app_env, team, acme):
    at = page("pages/survey.py", user="reza", id="new", customer_id=str(acme))
    form = "surveys:new"
    at.button(key=f"FormSubmitter:{form}-Create survey answer").click().run()
    assert "Give a CSAT or an NPS score" in str(at)
    at.number_input(key=f"{form}:nps").set_value(10)
    at.button(key=f"FormSubmitter:{form}-Create survey answer").click().run()
    assert not errors(at)
    assert app_env.scalar("SELECT count(*) FROM surveys WHERE nps = 10 AND owner_id = $r",
                          {"r": team["reza"].id}) == 1


def test_lists_of_surveys_and_complaints(app_env, team, acme):
    at = page("pages/complaints.py", user="reza")
    assert not at.exception
    frame = at.dataframe[0].value
    assert list(frame["subject"]) == ["Pump leaks"]
    at = page("pages/surveys.py", user="sam")  # not sam's customer
    assert not at.exception and not at.dataframe


def test_complaint_page_has_timeline_activities_and_tasks(app_env, team, acme):
    cid = app_env.scalar("SELECT id FROM complaints")
    at = page("pages/complaint.py", user="admin", id=str(cid))
    assert not at.exception
    assert [t.label for t in at.tabs] == ["Details", "Timeline", "Activities", "Tasks"]


def test_satisfaction_page_draws_its_charts_and_creates_a_follow_up(app_env, team, acme):
    at = page("pages/satisfaction.py", user="maria")
    assert not at.exception
    figures = charts(at)
    # trend, CSAT, 3 dimensions x 2, complaints by category and product, age
    assert len(figures) == 11
    trend = figures[0]
    assert trend["data"][0]["text"] == ["1", "1"]  # one answer each month
    assert "Acme" in links(at)
    at.button(key=f"sat:follow:{acme}").click().run()
    task = app_env.one("SELECT * FROM tasks WHERE customer_id = $c", {"c": acme})
    assert (task["owner_id"], task["priority"]) == (team["reza"].id, "high")
    assert "1 open task" in texts(at)


def test_viewers_read_the_page_without_follow_up_buttons(app_env, team, acme):
    at = page("pages/satisfaction.py", user="vic")
    assert not at.exception
    assert "Acme" in texts(at) and "Acme" not in links(at)  # no link to a record page
    assert not [b for b in at.button if b.key and b.key.startswith("sat:follow")]


def test_user_text_in_charts_is_not_markup(app_env, team, acme):
    product = app_env.scalar(
        "INSERT INTO products (name, code, unit_price, currency, active, created_at) VALUES"
        " ('<a href=\"https://evil.example\">Pump</a>', 'P', 1, 'USD', TRUE, now())"
        " RETURNING id")
    service.create_survey(app_env, team["admin"], {"customer_id": acme, "channel": "web",
                                                   "answered_on": "2026-03-10", "nps": 8,
                                                   "product_id": product})
    at = page("pages/satisfaction.py", user="admin")
    shown = json.dumps(charts(at), ensure_ascii=False)
    assert "&lt;a href=" in shown and "<a href" not in shown


def test_empty_satisfaction_page(app_env, team):
    at = page("pages/satisfaction.py", user="admin")
    assert not at.exception
    assert "No customer is at risk." in texts(at)


def test_import_page_brings_in_survey_answers(app_env, team, acme):
    from tests.test_import_page import upload

    at = page("pages/import.py", user="admin")
    at.selectbox(key="imp_entity").set_value("surveys").run()
    upload(at, b"Customer,Date,Channel,NPS,CSAT\nAcme,2026-04-01,phone,10,5\n"
               b"Acme,2026-04-02,fax,3,\n", name="answers.csv")
    assert not at.exception and not errors(at)
    at.button(key="imp_dry_run").click().run()
    counts = {m.label: m.value for m in at.metric}
    assert counts["To create"] == "1" and counts["Rejected"] == "1"  # no channel "fax"
    at.button(key="imp_execute").click().run()
    assert not at.exception and not errors(at)
    assert app_env.scalar("SELECT count(*) FROM surveys WHERE answered_on = '2026-04-01'"
                          " AND channel = 'phone' AND nps = 10") == 1


def test_at_risk_stake_counted_in_a_chosen_currency(app_env, team, acme):
    from crm import deals, pipelines

    admin = team["admin"]
    stage = pipelines.stages_of(app_env, pipelines.default_pipeline_id(app_env))[0]["id"]
    beta = customers.create_customer(app_env, admin, {"name": "Beta"})
    service.create_survey(app_env, admin, {"customer_id": beta, "channel": "web",
                                           "answered_on": "2026-02-10", "nps": 1})
    for cid, amount, currency in ((acme, 100, "USD"), (acme, 50, "USD"), (beta, 500, "EUR")):
        deals.create_deal(app_env, admin, {"title": "d", "amount": amount, "stage_id": stage,
                                           "customer_id": cid, "currency": currency})
    at = page("pages/satisfaction.py", user="admin")
    assert at.selectbox(key="sat:currency").value == "USD"  # the most used
    ranked = [name for name in links(at) if name in ("Acme", "Beta")]
    assert ranked == ["Acme", "Beta"]  # 150 dollars; Beta has none
    at.selectbox(key="sat:currency").set_value("EUR").run()
    assert [name for name in links(at) if name in ("Acme", "Beta")] == ["Beta", "Acme"]
    assert "€500" in texts(at)
