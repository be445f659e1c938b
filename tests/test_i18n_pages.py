"""Every page in Persian and Lithuanian: nothing untranslated from the catalog shows, and every
msgid of the code has a translation."""
import re

import pytest
from babel.messages.pofile import read_po

from crm import (activities, auth, customers, deals, i18n, i18n_tools, leads, pipelines,
                 service)
from crm.products import PRODUCTS
from tests.conftest import PASSWORD, element_strings
from tests.test_pages import page

LANGS = ("fa", "lt")
# Latin words that stay as they are in every language
KEEP = {"CRM", "CSV", "USD", "EUR", "IRR", "GBP", "AED", "CAD", "TRY", "ID", "Excel"}
PEOPLE = {"fa": [("arash", "آرش مدیری", "admin"), ("mina", "مینا فروشی", "manager"),
                 ("reza", "رضا رحیمی", "rep")],
          "lt": [("arash", "Aušra Vadovė", "admin"), ("mina", "Mindaugas Vadybininkas",
                                                         "manager"),
                 ("reza", "Rūta Pardavėja", "rep")]}
DATA = {"fa": {"lead": "کریمی", "company": "شرکت نمونه", "customer": "فروشگاه آفتاب",
               "contact": "احمدی", "deal": "قرارداد پشتیبانی", "task": "تماس پیگیری",
               "product": "پشتیبانی سالانه"},
        "lt": {"lead": "Kazlauskas", "company": "UAB Ąžuolas", "customer": "UAB Saulėtekis",
               "contact": "Petraitė", "deal": "Priežiūros sutartis", "task": "Paskambinti",
               "product": "Metinė priežiūra"}}
PAGES = ["pages/home.py", "pages/leads.py", "pages/lead.py", "pages/customers.py",
         "pages/customer.py", "pages/contact.py", "pages/deals.py", "pages/deal.py",
         "pages/pipeline.py", "pages/activities.py", "pages/task.py", "pages/users.py",
         "pages/pipelines_admin.py", "pages/settings.py", "pages/account.py", "pages/import.py",
         "pages/products.py", "pages/product.py",
         "pages/complaints.py", "pages/complaint.py", "pages/surveys.py", "pages/survey.py",
         "pages/satisfaction.py", "pages/forecast.py", "pages/market.py", "pages/competitors.py",
         "pages/competitor.py", "pages/price_records.py", "pages/price_record.py",
         "pages/returns.py", "pages/return.py"]


@pytest.fixture(autouse=True)
def english_afterwards():
    yield
    i18n.set_language("en")


def _catalog(lang):
    with i18n_tools.po_path(lang).open("rb") as fh:
        return read_po(fh, locale=lang)


def _english_words(lang) -> set[str]:
    """Words of the English msgids that the language's translations never use themselves."""
    catalog = _catalog(lang)
    english, translated = set(), set()
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        texts = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in ids:
            english |= set(re.findall(r"\b[A-Za-z]{3,}\b", re.sub(r"\{\w+\}", "", text)))
        for text in texts:
            translated |= set(re.findall(r"\b[A-Za-z]{3,}\b", text or ""))
    return english - translated - KEEP


def _shown_strings(at) -> list[str]:
    """Texts a page shows: bodies, labels, help texts, placeholders, options, tab labels."""
    return [text for text, _ in element_strings(
        at, ("body", "label", "help", "placeholder", "options", "tab_labels", "display_value"),
        skip=("Html", "Text", "Code"))]


@pytest.mark.parametrize("lang", LANGS)
def test_every_msgid_has_a_translation(lang):
    assert i18n_tools.missing(lang) == []


@pytest.mark.parametrize("lang", LANGS)
def test_translations_keep_their_placeholders(lang):
    bad = []
    for message in _catalog(lang):
        if not message.id or not message.string:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        texts = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(re.findall(r"\{\w+\}", ids[-1]))
        bad += [(ids[0], t) for t in texts if set(re.findall(r"\{\w+\}", t)) != wanted
                and not (len(ids) > 1 and set(re.findall(r"\{\w+\}", t)) <= wanted)]
    assert bad == []


def test_compiled_catalogs_match_their_po_files():
    import gettext

    for lang in LANGS:
        compiled = gettext.GNUTranslations(i18n_tools.po_path(lang).with_suffix(".mo")
                                           .open("rb"))
        for message in _catalog(lang):
            if message.id and isinstance(message.id, str) and message.string:
                assert compiled.gettext(message.id) == message.string, (lang, message.id)


@pytest.fixture(params=LANGS)
def localized(request, db, monkeypatch):
    lang = request.param
    monkeypatch.setenv("CRM_DB", str(db.path))
    monkeypatch.setenv("CRM_COOKIE_KEY", "test-cookie-key-long-enough-for-hs256-signing")
    monkeypatch.setenv("CRM_LANGUAGE", lang)  # the install default: every page in it
    admin = None
    for username, name, role in PEOPLE[lang]:
        auth.create_user(db, admin, username, name, None, PASSWORD, role)
        admin = admin or auth.get_user(db, "arash")
    pipelines.name_defaults_in(db, lang)  # as the first admin's screen does
    mina = auth.get_user(db, "mina")
    text = DATA[lang]
    stage = pipelines.stages_of(db, pipelines.default_pipeline_id(db))[1]["id"]
    ids = {"lead": leads.create_lead(db, mina, {"last_name": text["lead"],
                                                "company": text["company"],
                                                "status": "qualified", "source": "referral"}),
           "customer": customers.create_customer(db, mina, {"name": text["customer"]})}
    ids["contact"] = customers.add_contact(db, mina, ids["customer"],
                                           {"last_name": text["contact"]})
    ids["deal"] = deals.create_deal(db, mina, {"title": text["deal"], "amount": "1500",
                                               "customer_id": ids["customer"],
                                               "stage_id": stage})
    activities.log_activity(db, mina, {"subject": text["task"], "deal_id": ids["deal"],
                                       "kind": "call"})
    ids["task"] = activities.create_task(db, mina, {"title": text["task"],
                                                    "deal_id": ids["deal"]})
    ids["product"] = PRODUCTS.create(db, mina, {"name": text["product"], "code": "P-1",
                                                "unit_price": "1200", "currency": "EUR"})
    ids["survey"] = service.create_survey(db, mina, {  # a detractor: at risk
        "customer_id": ids["customer"], "answered_on": "2026-01-10", "channel": "web",
        "nps": 3, "csat": 2, "comment": text["task"]})
    ids["complaint"] = service.create_complaint(db, mina, {
        "customer_id": ids["customer"], "subject": text["deal"], "category": "billing",
        "severity": "critical", "opened_on": "2026-02-01"})
    from datetime import date

    from crm import market

    ids["competitor"] = market.COMPETITORS.create(db, mina, {"name": text["company"],
                                                           "threat_level": "high",
                                                           "strengths": text["task"]})
    ids["price_record"] = market.PRICE_RECORDS.create(db, mina, {
        "product_id": ids["product"], "competitor_id": ids["competitor"],
        "competitor_product": text["product"], "price": "1100", "currency": "EUR",
        "observed_on": date(2025, 5, 1), "region": text["customer"]})
    ids["return"] = market.RETURNS.create(db, mina, {"customer_id": ids["customer"],
                                                     "occurred_on": date(2025, 6, 1),
                                                     "amount": "100", "reason": "defective"})
    market.set_share(db, mina, {"competitor_id": ids["competitor"],
                                "period_start": date(2025, 4, 1), "share": "20"})
    market.set_cost(db, mina, {"product_id": ids["product"], "period_start": date(2025, 4, 1),
                               "unit_cost": "700", "currency": "EUR"})
    return lang, ids


def test_every_page_shows_no_untranslated_english(localized):
    lang, ids = localized
    english = _english_words(lang)
    params = {"pages/lead.py": ids["lead"], "pages/customer.py": ids["customer"],
              "pages/contact.py": ids["contact"], "pages/deal.py": ids["deal"],
              "pages/task.py": ids["task"], "pages/product.py": ids["product"],
              "pages/complaint.py": ids["complaint"], "pages/survey.py": ids["survey"],
              "pages/competitor.py": ids["competitor"], "pages/price_record.py": ids["price_record"],
              "pages/return.py": ids["return"]}
    untranslated = {}
    for path in PAGES:
        extra = {"id": str(params[path])} if path in params else {}
        at = page(path, user="arash", **extra)
        assert not at.exception, (lang, path, at.exception)
        words = {w for s in _shown_strings(at) for w in re.findall(r"\b[A-Za-z]{3,}\b", s)}
        leaked = sorted(words & english)
        if leaked:
            untranslated[path] = leaked
    assert untranslated == {}
    i18n.set_language("en")


def test_the_language_follows_the_user(localized, monkeypatch):
    lang, _ = localized
    monkeypatch.setenv("CRM_LANGUAGE", "en")
    at = page("pages/home.py", user="arash")
    assert "Open leads" in [m.label for m in at.metric]  # the install default: English
    at.session_state["chosen_language"] = lang
    at.run()
    assert "Open leads" not in [m.label for m in at.metric]
    assert i18n_tools.load(lang)["Open leads"].string in [m.label for m in at.metric]


def test_persian_forms_take_jalali_dates_and_persian_digits(app_env, team):
    from decimal import Decimal
    from datetime import date

    i18n.set_language("fa")  # AppTest formats choices in this thread too
    at = page("pages/lead.py", user="admin", state={"chosen_language": "fa"}, id="new")
    at.text_input(key="leads:new:last_name").input("کریمی")
    at.text_input(key="leads:new:estimated_value:jalali").input("۱٬۵۰۰٫۵۰")
    at.checkbox(key="leads:new:consent").check()
    at.text_input(key="leads:new:consent_date:jalali").input("۱۴۰۴/۰۱/۰۱")
    at.button(key="FormSubmitter:leads:new-" + i18n_tools.load("fa")["Create lead"].string
              ).click().run()
    assert not at.error, [e.value for e in at.error]
    lead = app_env.one("SELECT estimated_value, consent_date FROM leads")
    assert lead == {"estimated_value": Decimal("1500.50"), "consent_date": date(2025, 3, 21)}
    # a number that is no number is said next to the field, and what was typed stays
    at = page("pages/lead.py", user="admin", state={"chosen_language": "fa"}, id="new")
    at.text_input(key="leads:new:last_name").input("دوم")
    at.text_input(key="leads:new:estimated_value:jalali").input("زیاد")
    at.button(key="FormSubmitter:leads:new-" + i18n_tools.load("fa")["Create lead"].string
              ).click().run()
    assert at.error and at.text_input(key="leads:new:estimated_value:jalali").value == "زیاد"
    assert app_env.scalar("SELECT count(*) FROM leads") == 1


def test_persian_lists_run_right_to_left_and_fit_the_page(app_env, team):
    import json

    from crm import leads as lead_records

    lead_records.create_lead(app_env, team["admin"], {"last_name": "کریمی",
                                                      "estimated_value": "1500"})
    i18n.set_language("fa")
    at = page("pages/leads.py", user="admin", state={"chosen_language": "fa"})
    grid = at.dataframe[0].proto
    order = list(grid.column_order)
    assert order[0] == "owner_name" and order[-1] == "created_at"  # first column on the right
    config = json.loads(grid.columns)
    widths = [config[name].get("width") for name in order]
    assert all(widths) and sum(widths) <= 1000  # sized to fit the page, not their content
    assert "۱٬۵۰۰" in at.dataframe[0].value.to_string()
    english = page("pages/leads.py", user="admin")
    assert list(english.dataframe[0].proto.column_order)[0] == "created_at"
