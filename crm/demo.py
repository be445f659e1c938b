"""Realistic demo data in the user's language: leads, customers, contacts, and the sales
pipeline on top of them (deals with exact stage history and line items, activities, tasks,
converted leads linked to what they became).

Each load mixes two Faker locales, per LANGUAGES: English (en_US) with a Persian (fa_IR) share;
Persian with an English share (foreign customers); Lithuanian (lt_LT) with an English share.
The language also picks the cities and countries, phone numbers and the deals' currencies.

Faker makes a few thousand names, companies, streets and phone numbers once; numpy then samples
rows from those pools, so a million leads take seconds instead of the minutes that one Faker call
per value would take. The rows go in through a DataFrame scan inside one transaction (a DuckDB
fast path, like the bulk importer) and one audit entry per table instead of one per row.

Ids are drawn from the tables' sequences up front (`nextval` once per row, in the same
transaction), so every link between the generated rows (a deal's customer, a history row's deal,
an activity's contact) is known exactly before anything is written, and later inserts continue
after them.
"""
from __future__ import annotations

import os
import re
import secrets
import string
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable

import numpy as np
import pandas as pd
from faker import Faker

from crm import audit, auth, dialect, i18n, pipelines
from crm.db import Database
from crm.i18n import N_, gettext as _, ngettext
from crm.fields import ValidationError, convert, spec_map
from crm.leads import FIELDS as LEAD_FIELDS
from crm import demo_service  # noqa: E402  issue 10: surveys and complaints
from crm import demo_sales_history
from crm.demo_sales_history import add_sales_history

SIZES = {
    "small": {"leads": 300, "customers": 120, "deals": 150, "activities": 400, "tasks": 120},
    "large": {"leads": 1_000_000, "customers": 20_000, "deals": 120_000, "activities": 200_000,
              "tasks": 50_000},
}
# Share of the deals in the Renewals pipeline, and the won and lost shares in each pipeline.
# The large demo closes fewer deals: the board benchmark needs >= 100,000 open deals in the
# default pipeline out of 120,000.
DEAL_MIX = {
    "small": {"renewals": 0.20, "won": 0.15, "lost": 0.12},
    "large": {"renewals": 0.04, "won": 0.068, "lost": 0.052},
}
# The tables the load fills in bulk: loaded into an empty database, their keys are checked and
# their indexes built once at the end, on PostgreSQL (crm.dialect.bulk_load)
BULK_TABLES = ("leads", "customers", "contacts", "deals", "deal_stage_history", "deal_products",
               "activities", "tasks")
HISTORY_DAYS = 548  # records were created over the last 18 months

DEMO_USERS = (  # username, name, email, role
    ("maria", "Maria Lopez", "maria@example.com", "manager"),
    ("reza", "Reza Ahmadi", "reza@example.com", "rep"),
    ("sam", "Sam Carter", "sam@example.com", "rep"),
    ("lena", "Lena Fischer", "lena@example.com", "rep"),
)

LEAD_STATUS_WEIGHTS = {"new": 0.30, "contacted": 0.25, "qualified": 0.18, "unqualified": 0.15,
                       "converted": 0.12}
SOURCE_WEIGHTS = {"website": 0.28, "referral": 0.16, "cold_call": 0.10, "email_campaign": 0.12,
                  "social_media": 0.12, "event": 0.08, "partner": 0.06, "advertisement": 0.05,
                  "other": 0.03}
INDUSTRY_WEIGHTS = {"manufacturing": 0.14, "retail": 0.13, "technology": 0.14, "finance": 0.08,
                    "healthcare": 0.08, "education": 0.05, "construction": 0.08,
                    "agriculture": 0.04, "transport": 0.06, "hospitality": 0.05, "energy": 0.05,
                    "public_sector": 0.04, "other": 0.06}
COMPANY_SEGMENTS = {"enterprise": 0.15, "mid_market": 0.30, "small_business": 0.40,
                    "government": 0.05, "vip": 0.10}
INDIVIDUAL_SEGMENTS = {"consumer": 0.85, "vip": 0.15}
POWER_WEIGHTS = {"low": 0.25, "medium": 0.40, "high": 0.25, "very_high": 0.10}

# Real cities, so a geographic chart shows a believable spread; weights roughly by population.
US_CITIES = {"New York": 9, "Los Angeles": 8, "Chicago": 5, "Houston": 5, "Phoenix": 3,
             "Philadelphia": 3, "San Antonio": 3, "San Diego": 3, "Dallas": 3, "Austin": 3,
             "San Jose": 2, "Seattle": 3, "Denver": 2, "Boston": 3, "Atlanta": 2, "Miami": 2,
             "Portland": 1, "Minneapolis": 1}
IRAN_CITIES = {"تهران": 12, "مشهد": 4, "اصفهان": 4, "کرج": 3, "شیراز": 3, "تبریز": 3,
               "قم": 2, "اهواز": 2, "کرمانشاه": 1, "رشت": 2, "کرمان": 1, "یزد": 1, "ارومیه": 1,
               "همدان": 1}
LITHUANIA_CITIES = {"Vilnius": 12, "Kaunas": 6, "Klaipėda": 3, "Šiauliai": 2, "Panevėžys": 2,
                    "Alytus": 1, "Marijampolė": 1, "Mažeikiai": 1, "Jonava": 1, "Utena": 1,
                    "Kėdainiai": 1, "Telšiai": 1, "Tauragė": 1}
FOREIGN = {  # country -> cities, for English rows that are abroad
    "Canada": ("Toronto", "Vancouver", "Montreal", "Calgary"),
    "United Kingdom": ("London", "Manchester", "Birmingham", "Leeds"),
    "Germany": ("Berlin", "Hamburg", "Munich", "Frankfurt"),
    "United Arab Emirates": ("Dubai", "Abu Dhabi", "Sharjah"),
    "Turkey": ("Istanbul", "Ankara", "Izmir"),
}
# Persian-speaking customers in the United States live mostly in these cities.
DIASPORA_CITIES = {"Los Angeles": 10, "San Jose": 3, "Houston": 2, "New York": 2, "Dallas": 1,
                   "Seattle": 1, "Boston": 1}


def _abroad(share: float, countries: dict) -> tuple:
    """Places for `share` of the rows, split evenly over the countries (country -> cities)."""
    return tuple((share / len(countries), country, cities) for country, cities in countries.items())


@dataclass(frozen=True)
class Side:
    """One of the two Faker locales of a demo load, and where its customers live."""
    locale: str  # Faker locale
    texts: str  # key of the text tables (TITLES, NOTES, ...): en, fa or lt
    country: str  # its own country (as written in this load): its streets are from here
    places: tuple  # (share, country, {city: weight} or (city, ...)); the shares add up to 1
    phone: tuple | None = None  # (country code, digit groups): +98 901 914 1777; None: Faker's


@dataclass(frozen=True)
class DemoLanguage:
    main: Side  # most rows
    second: Side  # second_share of the rows
    second_share: float
    home_country: str  # customers here are "domestic", the others "foreign"
    currency: str = "USD"  # the demo products' prices; deals in it may get line items
    money_scale: int = 1  # lead values and credit limits: units of `currency` per dollar


IRAN_PHONE, LITHUANIA_PHONE = ("+98", (3, 3)), ("+370", (3,))
LANGUAGES = {
    # English with a Persian share: half of those in Iran, half in the US diaspora
    "en": DemoLanguage(
        main=Side("en_US", "en", "United States",
                  ((0.85, "United States", US_CITIES), *_abroad(0.15, FOREIGN))),
        second=Side("fa_IR", "fa", "Iran", ((0.5, "Iran", IRAN_CITIES),
                                             (0.5, "United States", DIASPORA_CITIES)),
                    IRAN_PHONE),
        second_share=0.3, home_country="United States"),
    # Persian, mostly in Iran and paying in rials; English rows are foreign customers
    "fa": DemoLanguage(
        main=Side("fa_IR", "fa", "ایران", (
            (0.9, "ایران", IRAN_CITIES),
            (0.06, "امارات متحده عربی", {"دبی": 3, "ابوظبی": 1, "شارجه": 1}),
            (0.04, "ترکیه", {"استانبول": 3, "آنکارا": 1, "ازمیر": 1})), IRAN_PHONE),
        second=Side("en_US", "en", "United States", (
            (0.15, "United States", US_CITIES),
            *_abroad(0.85, {**FOREIGN, "United Arab Emirates": ("Dubai", "Dubai", "Abu Dhabi",
                                                                 "Sharjah")}))),
        second_share=0.15, home_country="ایران", currency="IRR", money_scale=100_000),
    # Lithuanian, mostly in Lithuania and paying in euros; English rows are foreign customers
    "lt": DemoLanguage(
        main=Side("lt_LT", "lt", "Lietuva", (
            (0.9, "Lietuva", LITHUANIA_CITIES),
            *_abroad(0.1, {"Latvija": {"Ryga": 3, "Daugpilis": 1},
                           "Lenkija": {"Varšuva": 2, "Krokuva": 1, "Balstogė": 1},
                           "Vokietija": {"Berlynas": 2, "Hamburgas": 1, "Miunchenas": 1}})),
            LITHUANIA_PHONE),
        second=Side("en_US", "en", "United States",
                    ((0.4, "United States", US_CITIES), *_abroad(0.6, FOREIGN))),
        second_share=0.15, home_country="Lietuva", currency="EUR"),
}
HOME_COUNTRY = LANGUAGES["en"].home_country

TITLES = {
    "en": ("CEO", "Owner", "Sales Manager", "Purchasing Manager", "Head of Procurement", "CFO",
           "IT Director", "Operations Manager", "Marketing Manager", "Office Manager",
           "Account Manager", "Project Manager", "Buyer", "Managing Director", "CTO"),
    "fa": ("مدیر عامل", "مدیر فروش", "کارشناس خرید", "مدیر بازرگانی", "مدیر فنی", "مدیر مالی",
           "کارشناس بازاریابی", "مدیر تدارکات", "مدیر فناوری اطلاعات", "مدیر پروژه",
           "مدیر داخلی", "حسابدار", "مدیر کارخانه"),
    "lt": ("Generalinis direktorius", "Direktorius", "Savininkas", "Pardavimų vadovas",
           "Pirkimų vadovas", "Finansų direktorius", "IT vadovas", "Operacijų vadovas",
           "Rinkodaros vadovė", "Biuro administratorė", "Projektų vadovas", "Vyr. buhalterė",
           "Pirkimų specialistas", "Technikos direktorius", "Klientų vadybininkė"),
}
NOTES = {
    "en": ("Met at the trade fair; wants a demo next month.", "Asked for a price list.",
           "Budget approved for next quarter.", "Follow up after the holidays.",
           "Comparing us with two competitors.", "Prefers a call in the afternoon.",
           "Needs a quote for 50 units.", "Was referred by an existing customer.",
           "Interested in the annual plan.", "Decision maker is the CFO."),
    "fa": ("در نمایشگاه آشنا شدیم؛ درخواست دمو دارد.", "لیست قیمت خواست.",
           "بودجه برای فصل بعد تصویب شده است.", "بعد از تعطیلات پیگیری شود.",
           "در حال مقایسه با دو رقیب است.", "ترجیح می‌دهد بعدازظهر تماس بگیریم.",
           "برای ۵۰ عدد پیش‌فاکتور می‌خواهد.", "از طرف یکی از مشتریان معرفی شده است.",
           "به قرارداد سالانه علاقه دارد."),
    "lt": ("Susipažinome parodoje; kitą mėnesį nori demonstracijos.", "Paprašė kainoraščio.",
           "Biudžetas patvirtintas kitam ketvirčiui.", "Susisiekti po švenčių.",
           "Lygina mus su dviem konkurentais.", "Geriau skambinti po pietų.",
           "Reikia pasiūlymo 50 vienetų.", "Rekomendavo esamas klientas.",
           "Domisi metine sutartimi.", "Sprendimą priima finansų direktorius."),
}
PREFERENCES = {
    "en": ("Prefers email over phone", "Call after 2 pm", "Invoices in USD",
           "Interested in annual contracts", "Prefers WhatsApp messages",
           "Wants quarterly business reviews", "Paper invoices by post"),
    "fa": ("تماس فقط در ساعات اداری", "ترجیح ارتباط از طریق ایمیل", "فاکتور رسمی لازم دارد",
           "علاقه‌مند به قراردادهای سالانه", "پیامک برای اطلاع‌رسانی"),
    "lt": ("Pageidauja el. laiškų, o ne skambučių", "Skambinti po 14 val.", "Sąskaitos eurais",
           "Domisi metinėmis sutartimis", "Pageidauja žinučių per WhatsApp",
           "Nori susitikimų kas ketvirtį", "Popierinės sąskaitos paštu"),
}
CONSENT_PURPOSES = {
    "en": ("newsletter", "newsletter and sales calls", "order updates and invoices",
           "product offers by email", "event invitations"),
    "fa": ("خبرنامه", "خبرنامه و تماس فروش", "اطلاع‌رسانی سفارش و فاکتور",
           "پیشنهاد محصولات از طریق پیامک"),
    "lt": ("naujienlaiškis", "naujienlaiškis ir pardavimų skambučiai",
           "užsakymų informacija ir sąskaitos", "pasiūlymai el. paštu", "kvietimai į renginius"),
}
FREE_MAIL = {"en": ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com"),
             "fa": ("gmail.com", "yahoo.com", "mailfa.com", "chmail.ir"),
             "lt": ("gmail.com", "inbox.lt", "one.lt", "yahoo.com", "outlook.com")}

# Where Faker's lists for a locale are short or English, the demo adds its own:
# companies "<format with a family name>" (and for lt "<place> <trade>" ones), streets
# "<street> <number>", professions, more family names, and web domains.
COMPANY_FORMATS = {
    "fa": ("گروه صنعتی {}", "بازرگانی {}", "شرکت {} و شرکا", "تولیدی {}", "{} تجارت"),
    "lt": ("UAB „{} ir partneriai“", "{} ir Ko", "IĮ „{}“"),
}
COMPANY_PARTS = {"lt": (  # Faker's lt_LT companies are English: "<place> <trade>" ones instead
    ("Baltijos", "Nemuno", "Vilniaus", "Kauno", "Klaipėdos", "Gintaro", "Šiaurės", "Rytų",
     "Vakarų", "Lietuvos", "Aukštaitijos", "Žemaitijos", "Dzūkijos", "Neries", "Ąžuolo"),
    ("prekyba", "statyba", "logistika", "technologijos", "sprendimai", "baldai", "maistas",
     "energija", "transportas", "projektai", "sistemos", "konsultacijos", "mediena", "pieninė",
     "spaustuvė"),
    ("UAB „{}“", "UAB „{}“", "AB „{}“", "MB „{}“"),
)}
STREETS = {
    "lt": ("Gedimino pr.", "Laisvės al.", "Savanorių pr.", "Konstitucijos pr.", "Ukmergės g.",
           "Vilniaus g.", "Kauno g.", "Žalgirio g.", "Basanavičiaus g.", "Maironio g.",
           "Vytauto g.", "Taikos pr.", "Pramonės g.", "Liepų g.", "Sodų g.", "Mokyklos g.",
           "Ąžuolų g.", "Beržų g.", "Šviesos g.", "Naujoji g.", "Tilžės g.", "Kęstučio g.",
           "Birutės g.", "Respublikos g."),
}
JOBS = {
    "lt": ("Programuotojas", "Vadybininkė", "Inžinierius", "Teisininkė", "Architektas",
           "Vairuotojas", "Ekonomistė", "Gydytoja", "Mokytoja", "Vaistininkė", "Elektrikas",
           "Dizainerė", "Ūkininkas", "Statybininkas", "Slaugytoja", "Buhalterė", "Pardavėja",
           "Kirpėja", "Mechanikas", "Studentas", "Pensininkas", "Verslininkas"),
}
EXTRA_LAST_NAMES = {
    "lt": ("Vasiliauskas", "Balčiūnas", "Mockus", "Navickas", "Rimkus", "Šimkus", "Vaitkus",
           "Žemaitis", "Baranauskas", "Lukošius", "Ramanauskas", "Adomaitis", "Jonaitis",
           "Mažeika", "Vitkus", "Savickas", "Bernotas", "Mikalauskas", "Dambrauskas",
           "Jasiūnas", "Valančius", "Kučinskas", "Barkauskas", "Šukys", "Pranckevičius"),
}
FAKER_TYPOS = {"Vsiliauskas": "Vasiliauskas"}
TLDS = {"lt": ("lt", "lt", "lt", "com", "eu")}
ROMANISED = {"fa"}  # no ASCII spelling of the names in Faker: e-mails from its user names


def _feminine(surname: str) -> str:
    """A married woman's form of a Lithuanian family name: Butkus -> Butkuvienė."""
    for end, new in (("ius", "ienė"), ("us", "uvienė"), ("as", "ienė"), ("is", "ienė"),
                     ("ys", "ienė"), ("a", "ienė"), ("ė", "ienė")):
        if surname.endswith(end):
            return surname[:-len(end)] + new
    return surname


# a woman's family name from a man's, where first names tell women (-a, -ė) from men
WOMENS_FAMILY_NAMES = {"lt": _feminine}

Progress = Callable[[float, str], None]


def load_demo(db: Database, size: str = "small", progress: Progress | None = None,
              owners: Iterable | None = None, seed: int | None = None,
              password: str | None = None, language: str = "en") -> dict:
    """Adds demo leads, customers, contacts, deals (with stage history and line items),
    activities and tasks; returns how many of each it made.

    language: en, fa or lt (see LANGUAGES): the records' language, places, phones and
    currencies.

    owners: user ids (or User objects) to own the records. Without them the active managers
    and reps own them; when there are none, the demo users maria (manager), reza, sam and
    lena (reps) are created with the password from CRM_DEMO_PASSWORD or a random one, which
    the result then holds under 'demo_password'. password: theirs instead (the command line
    prints it before loading, so an interrupted load never leaves users nobody can sign in
    as; see demo_users_to_create). No admin is created here. A second pipeline, Renewals, is
    created unless it exists."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}")
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
    lang = LANGUAGES[language]
    report = progress or (lambda fraction, text: None)
    started = datetime.now()
    result: dict = {"size": size, "language": language}

    report(0.0, _("Preparing demo users"))
    actor = _admin_actor(db)
    owner_ids = _owner_ids(db, owners)
    if not owner_ids:
        result.update(_create_demo_users(db, actor, password))
        owner_ids = _owner_ids(db, None)
    if not owner_ids:
        raise LookupError(
            _("No active user can own the demo records; add a rep or manager first"))
    report(0.05, _("Preparing the pipelines"))
    with i18n.using(language):  # Renewals and its stages named in the load's language
        pipes = _demo_pipelines(db, actor)
    if not pipes:
        raise LookupError(
            _("No pipeline has an open stage for the demo deals; add a stage first"))

    report(0.1, _("Making names, companies and addresses"))
    rng = np.random.default_rng(seed)
    pools = _Pools(seed if seed is not None else int(rng.integers(2**31)), lang)
    now = datetime.now().replace(microsecond=0)
    counts = SIZES[size]

    report(0.2, ngettext("Generating {count} lead", "Generating {count} leads", counts["leads"])
           .format(count=i18n.number(counts["leads"])))
    leads = _leads_frame(rng, pools, lang, counts["leads"], owner_ids, now)
    report(0.35, ngettext("Generating {count} customer", "Generating {count} customers",
                          counts["customers"]).format(count=i18n.number(counts["customers"])))
    customers = _customers_frame(rng, pools, lang, counts["customers"], owner_ids, now)

    rows = sum(counts.values()) + sum(demo_sales_history.HISTORY.get(size, {}).values())
    with db.transaction() as cur, dialect.bulk_load(cur, BULK_TABLES, rows):
        leads.insert(0, "id", _new_ids(cur, "leads", len(leads)))
        customers.insert(0, "id", _new_ids(cur, "customers", len(customers)))
        report(0.4, _("Adding contacts to companies"))
        contacts = _contacts_frame(rng, pools, customers[customers["kind"] == "company"], now)
        contacts.insert(0, "id", _new_ids(cur, "contacts", len(contacts)))
        products, products_added = _demo_products(cur, now, lang)

        report(0.45, ngettext("Generating {count} deal with its history",
                              "Generating {count} deals with their history", counts["deals"])
               .format(count=i18n.number(counts["deals"])))
        sales = _Sales(rng, cur, now, size, lang, owner_ids, pipes, leads, customers,
                       contacts, products)
        report(0.55, _("Generating activities and tasks"))
        sales.make_activities(counts["activities"])
        sales.make_tasks(counts["tasks"])

        report(0.65, _("Saving leads, customers and contacts"))
        _bulk_insert(cur, "leads", leads, {"email": LEAD_EMAIL_SQL})
        _update_from(cur, "leads", sales.lead_links, LEAD_LINK_COLUMNS)
        audit.record(cur, actor, "leads", None, "demo_load",
                     {"rows": (None, len(leads)), "size": (None, size),
                      "converted_links": (None, len(sales.lead_links))})
        _bulk_insert(cur, "customers", customers)
        audit.record(cur, actor, "customers", None, "demo_load",
                     {"rows": (None, len(customers)), "size": (None, size)})
        _bulk_insert(cur, "contacts", contacts)
        audit.record(cur, actor, "contacts", None, "demo_load",
                     {"rows": (None, len(contacts)), "size": (None, size)})
        if products_added:
            audit.record(cur, actor, "products", None, "demo_load",
                         {"rows": (None, products_added)})

        report(0.8, _("Saving deals, activities and tasks"))
        frames = sales.frames()
        for table in ("deals", "deal_stage_history", "deal_products", "activities", "tasks"):
            _bulk_insert(cur, table, frames[table])
        audit.record(cur, actor, "deals", None, "demo_load",
                     {"rows": (None, len(frames["deals"])), "size": (None, size),
                      "stage_history": (None, len(frames["deal_stage_history"])),
                      "line_items": (None, len(frames["deal_products"]))})
        for table in ("activities", "tasks"):
            audit.record(cur, actor, table, None, "demo_load",
                         {"rows": (None, len(frames[table])), "size": (None, size)})
        report(0.9, _("Adding two years of closed sales"))
        result["sales_history"] = add_sales_history(cur, actor, size, now, seed, customers["id"])
        from crm import demo_market  # competitors, prices, costs, returns (market audit)
        result.update(demo_market.load(cur, actor, rng, now, size, language, owner_ids))
        from crm import stage_reach, stage_spans  # the history was bulk-inserted: at once

        stage_spans.rebuild(cur)
        stage_reach.rebuild(cur)

    result.update(demo_service.load(db, actor, size, seed, language, now))  # issue 10
    dialect.vacuum_after_load(db)
    result.update(leads=len(leads), customers=len(customers), contacts=len(contacts),
                  products=products_added, converted_leads=len(sales.lead_links),
                  **{t: len(f) for t, f in frames.items()},
                  seconds=round((datetime.now() - started).total_seconds(), 2))
    report(1.0, _("Demo data loaded"))
    return result


def demo_password() -> str:
    """CRM_DEMO_PASSWORD, or a fresh random password that passes the strength rule."""
    return os.environ.get("CRM_DEMO_PASSWORD") or random_password()


def random_password(length: int = 16) -> str:
    alphabet = string.ascii_letters + string.digits
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(length))
        if auth.password_problem(pw) is None:
            return pw


# --- users ------------------------------------------------------------------------------

def _admin_actor(db: Database) -> auth.User:
    row = db.one("SELECT username FROM users WHERE role = 'admin' AND active ORDER BY id LIMIT 1")
    return (auth.get_user(db, row["username"]) if row else None) or auth.SYSTEM


def _owner_ids(db: Database, owners: Iterable | None) -> list[int]:
    if owners is not None:
        return [int(getattr(o, "id", o)) for o in owners]
    rows = db.query("SELECT id FROM users WHERE active AND role IN ('manager', 'rep') ORDER BY id")
    return [r["id"] for r in rows]


def demo_users_to_create(db: Database) -> list[str]:
    """The demo users load_demo (without owners) would create: none while an active manager
    or rep exists to own the records."""
    if _owner_ids(db, None):
        return []
    taken = {r["username"] for r in db.query("SELECT username FROM users")}
    return [username for username, *_ in DEMO_USERS if username not in taken]


def _create_demo_users(db: Database, actor: auth.User, password: str | None = None) -> dict:
    from_env = password is None and bool(os.environ.get("CRM_DEMO_PASSWORD"))
    password = password or demo_password()
    taken = {r["username"] for r in db.query("SELECT username FROM users")}
    made = []
    for username, name, email, role in DEMO_USERS:
        if username in taken:
            continue
        auth.create_user(db, actor, username, name, email, password, role)
        made.append(username)
    out: dict = {"demo_users": made}
    if made and not from_env:
        out["demo_password"] = password
    return out


# --- pools of Faker values --------------------------------------------------------------

class _Pools:
    """A few thousand Faker values for each of the load's two locales, made once per load.

    Phone numbers go through the phone spec first: some of Faker's en_US ones carry an
    extension ('x123') that the spec rightly refuses."""

    def __init__(self, seed: int, language: DemoLanguage):
        lead_spec = spec_map(LEAD_FIELDS)
        self.sides = (self._make(language.main, seed, lead_spec),
                      self._make(language.second, seed + 1, lead_spec))
        main, second = self.sides
        # One category list per key over both locales, so rows are just integer codes.
        self.codes = {}
        for key in main:
            if key.startswith("_"):
                continue
            cats = pd.Index(_unique(list(main[key]) + list(second[key])))
            self.codes[key] = (cats, cats.get_indexer(main[key]), cats.get_indexer(second[key]))

    @staticmethod
    def _make(side: Side, seed: int, spec) -> dict[str, np.ndarray]:
        fake, lang = Faker(side.locale), side.texts
        fake.seed_instance(seed)

        def many(method, n):
            return _unique(getattr(fake, method)() for _ in range(n))

        first = many("first_name", 1500)
        last = _unique([FAKER_TYPOS.get(v, v) for v in many("last_name", 1500)]
                       + list(EXTRA_LAST_NAMES.get(lang, ())))
        if lang in COMPANY_PARTS:
            places, trades, formats = COMPANY_PARTS[lang]
            companies = [fmt.format(f"{place} {trade}") for place in places for trade in trades
                         for fmt in formats]
        else:
            companies = list(many("company", 1500))
        # Faker's Persian list is short: add "<family name> Trading" kinds
        companies = _unique(companies + [fmt.format(name) for name in last
                                         for fmt in COMPANY_FORMATS.get(lang, ())])
        female = np.zeros(len(first), dtype=bool)
        # positions of each family name's form for a man and for a woman
        masculine = feminine = np.arange(len(last))
        if lang in WOMENS_FAMILY_NAMES:
            male = last
            women = [WOMENS_FAMILY_NAMES[lang](v) for v in male]
            last = _unique(list(male) + women)
            female = np.array([v.endswith(("a", "ė")) for v in first], dtype=bool)
            masculine, feminine = np.arange(len(last)), np.arange(len(last))
            his, hers = last.searchsorted(male), last.searchsorted(women)
            masculine[hers], feminine[his] = his, hers
        raw_phones = (fake.phone_number() for _ in range(1500))
        if side.phone:
            raw_phones = (_phone(v, *side.phone) for v in raw_phones)
        phones = _valid(spec["phone"], raw_phones)
        streets = (many("street_address", 1500) if lang not in STREETS else _unique(
            f"{fake.random_element(STREETS[lang])} {fake.random_int(1, 150)}"
            + (f"-{fake.random_int(1, 60)}" if fake.random_int(0, 1) else "")
            for _ in range(1500)))
        tlds = TLDS.get(lang)
        if lang not in ROMANISED:
            domains = np.array([_domain(c, fake, tlds) for c in companies], dtype=object)
            first_slug = np.array([_slug(v) or "info" for v in first], dtype=object)
            last_slug = np.array([_slug(v) or "mail" for v in last], dtype=object)
        else:  # Persian names have no ASCII spelling in Faker; use its romanised user names
            domains = np.array([fake.domain_name() for _ in companies], dtype=object)
            first_slug = np.array([_slug(fake.user_name()) or "user" for _ in first],
                                  dtype=object)
            last_slug = np.array([_slug(fake.user_name()) or "mail" for _ in last],
                                 dtype=object)
        return {
            "first": first, "last": last, "first_slug": first_slug, "last_slug": last_slug,
            "company": companies, "domain": domains, "phone": phones, "street": streets,
            "job": np.array(JOBS[lang], dtype=object) if lang in JOBS else many("job", 600),
            "title": np.array(TITLES[lang], dtype=object),
            "note": np.array(NOTES[lang], dtype=object),
            "preference": np.array(PREFERENCES[lang], dtype=object),
            "purpose": np.array(CONSENT_PURPOSES[lang], dtype=object),
            "free_mail": np.array(FREE_MAIL[lang], dtype=object),
            "_female": female, "_masculine": masculine, "_feminine": feminine,
        }

    def pick(self, rng, key: str, second: np.ndarray, idx: np.ndarray | None = None,
             mask: np.ndarray | None = None) -> pd.Categorical:
        """Per row, a value from the second locale's pool where second, else from the main
        one; missing where not mask.

        A Categorical is integer codes plus the pool, so a million rows cost almost nothing
        to build and DuckDB reads them as an ENUM that casts to VARCHAR on insert."""
        cats, main, other = self.codes[key]
        if idx is None:
            idx = rng.integers(0, 1 << 30, len(second))
        codes = np.where(second, other[idx % len(other)], main[idx % len(main)])
        if mask is not None:
            codes = np.where(mask, codes, -1)
        return pd.Categorical.from_codes(codes, categories=cats)

    def agree(self, second: np.ndarray, first_idx: np.ndarray, last_idx: np.ndarray
              ) -> np.ndarray:
        """last_idx with the family name's form that agrees with the first name (Lithuanian:
        Jonas Kazlauskas, Rūta Kazlauskienė); unchanged for the other locales."""
        out = last_idx
        for rows, pool in ((~second, self.sides[0]), (second, self.sides[1])):
            female = pool["_female"]
            if not female.any():
                continue
            out = out.copy() if out is last_idx else out
            at = last_idx[rows] % len(pool["last"])
            out[rows] = np.where(female[first_idx[rows] % len(female)], pool["_feminine"][at],
                                 pool["_masculine"][at])
        return out


def _phone(raw: str, code: str, groups: tuple) -> str:
    """A Faker phone number in international form: '0901 914 1777' -> '+98 901 914 1777'."""
    digits = "".join(str(unicodedata.digit(c)) for c in raw if c.isdigit())
    if raw.lstrip(" (").startswith("+"):  # +98 ..., +(370) ...
        digits = digits[len(code) - 1:]
    else:  # a national number: 0 before the area code
        digits = digits.lstrip("0")
    parts, at = [code], 0
    for size in groups:
        parts.append(digits[at:at + size])
        at += size
    parts.append(digits[at:])
    return " ".join(p for p in parts if p)


def _unique(values) -> np.ndarray:
    return np.array(sorted(set(v.strip() for v in values if v and v.strip())), dtype=object)


def _valid(spec, values) -> np.ndarray:
    ok = []
    for v in values:
        try:
            ok.append(convert(spec, v))
        except ValueError:
            continue
    return _unique(ok)


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", ascii_text.lower())


def _domain(company: str, fake: Faker, tlds: tuple | None = None) -> str:
    ascii_name = unicodedata.normalize("NFKD", company).encode("ascii", "ignore").decode()
    words = [w for w in re.split(r"[^A-Za-z]+", ascii_name)
             if w and w not in ("Inc", "LLC", "Ltd", "PLC", "Group", "UAB", "AB", "MB", "ir",
                                "Ko")]
    base = "".join(_slug(w) for w in words[:2])
    tld = fake.random_element(tlds) if tlds else fake.tld()
    return f"{base}.{tld}" if base else fake.domain_name()


# --- rows ---------------------------------------------------------------------------------

def _choice(rng, weights: dict, n: int, mask: np.ndarray | None = None) -> pd.Categorical:
    keys = list(weights)
    p = np.array(list(weights.values()), dtype=float)
    codes = rng.choice(len(keys), n, p=p / p.sum())
    if mask is not None:
        codes = np.where(mask, codes, -1)
    return pd.Categorical.from_codes(codes, categories=keys)


def _obj(values) -> np.ndarray:
    """A Categorical (or array) as plain Python strings, for building text row by row."""
    return np.asarray(values, dtype=object)


def _null_unless(mask: np.ndarray, values) -> np.ndarray:
    out = _obj(values).copy()
    out[~mask] = None
    return out


def _timestamps(rng, n: int, now: datetime) -> tuple[np.ndarray, np.ndarray]:
    """created_at over the last 18 months; updated_at later, for half of the rows."""
    now64 = np.datetime64(now, "s")
    created = now64 - rng.integers(0, HISTORY_DAYS * 86400, n).astype("timedelta64[s]")
    age = (now64 - created).astype(np.int64)
    edited = rng.random(n) < 0.5
    later = (age * rng.random(n) * edited).astype(np.int64).astype("timedelta64[s]")
    return created, created + later


def _dates_between(rng, start: np.ndarray, end: datetime) -> np.ndarray:
    """A day between each start timestamp's day and end's day (never after end)."""
    start_d = start.astype("datetime64[D]")
    span = (np.datetime64(end, "D") - start_d).astype(np.int64)
    days = (rng.random(len(start)) * (span + 1)).astype(np.int64)
    return start_d + np.minimum(days, span).astype("timedelta64[D]")


def _date_column(values: np.ndarray) -> pd.Series:
    return pd.Series(values.astype("datetime64[s]"))


def _money(values: np.ndarray) -> pd.Series:
    """Floats with NaN as a nullable column, so DuckDB stores NULL (not NaN)."""
    return pd.Series(pd.array(values, dtype="Float64"))


def _consent(rng, pools, second, created, now, share: float) -> dict:
    """Consent for some; most of those with the day they gave it (never before the record)."""
    n = len(second)
    consent = rng.random(n) < share
    dated = consent & (rng.random(n) < 0.9)
    dates = _dates_between(rng, created, now)
    return {
        "consent": consent,
        "consent_date": _date_column(np.where(dated, dates, np.datetime64("NaT", "D"))),
        "consent_purpose": pools.pick(rng, "purpose", second, mask=consent),
    }


def _personal_email(rng, pools, second, first_idx, last_idx) -> np.ndarray:
    """first.last, first_last or firstlast, sometimes with a number, at a free mail domain."""
    n = len(second)
    sep = np.array([".", "_", ""], dtype=object)[rng.integers(0, 3, n)]
    number = np.where(rng.random(n) < 0.4, rng.integers(1, 999, n).astype(str), "")
    return (_obj(pools.pick(rng, "first_slug", second, first_idx)) + sep
            + _obj(pools.pick(rng, "last_slug", second, last_idx)) + number.astype(object)
            + "@" + _obj(pools.pick(rng, "free_mail", second)))


# The leads' email is put together by DuckDB from the parts (a million Python string joins
# would take seconds): first.last@company-domain for business addresses, else a free mail.
LEAD_EMAIL_SQL = (
    "CAST(_e_first AS VARCHAR) || CASE WHEN _e_business THEN '.' ELSE _e_sep END"
    " || CAST(_e_last AS VARCHAR) || CASE WHEN _e_business THEN '' ELSE _e_number END || '@'"
    " || CAST(CASE WHEN _e_business THEN _e_company_domain ELSE _e_free_domain END AS VARCHAR)"
)


def _leads_frame(rng, pools: _Pools, lang: DemoLanguage, n: int, owner_ids: list[int],
                 now: datetime):
    second = rng.random(n) < lang.second_share
    first_idx, last_idx, company_idx = (rng.integers(0, 1 << 30, n) for _ in range(3))
    last_idx = pools.agree(second, first_idx, last_idx)
    has_company = rng.random(n) < 0.7
    has_email = rng.random(n) < 0.85
    created, updated = _timestamps(rng, n, now)
    owner = np.array(owner_ids, dtype=np.int64)[rng.integers(0, len(owner_ids), n)]
    value = np.round(rng.lognormal(8.6, 1.1, n) / 50) * 50 * lang.money_scale
    numbers = [""] + [str(i) for i in range(1, 1000)]
    return pd.DataFrame({
        "first_name": pools.pick(rng, "first", second, first_idx),
        "last_name": pools.pick(rng, "last", second, last_idx),
        "company": pools.pick(rng, "company", second, company_idx, mask=has_company),
        "title": pools.pick(rng, "title", second, mask=has_company & (rng.random(n) < 0.8)),
        "phone": pools.pick(rng, "phone", second, mask=rng.random(n) < 0.75),
        "source": _choice(rng, SOURCE_WEIGHTS, n, mask=rng.random(n) < 0.95),
        "status": _choice(rng, LEAD_STATUS_WEIGHTS, n),
        "owner_id": owner,
        "estimated_value": _money(np.where(rng.random(n) < 0.75, value, np.nan)),
        "notes": pools.pick(rng, "note", second, mask=rng.random(n) < 0.12),
        **_consent(rng, pools, second, created, now, 0.45),
        "created_at": created, "updated_at": updated,
        "created_by": owner, "updated_by": owner, "version": 1,
        # parts of the email (see LEAD_EMAIL_SQL); a missing first part makes it NULL
        "_e_first": pools.pick(rng, "first_slug", second, first_idx, mask=has_email),
        "_e_last": pools.pick(rng, "last_slug", second, last_idx),
        "_e_sep": pd.Categorical.from_codes(rng.integers(0, 3, n), categories=[".", "_", ""]),
        "_e_number": pd.Categorical.from_codes(
            np.where(rng.random(n) < 0.4, rng.integers(1, 1000, n), 0), categories=numbers),
        "_e_business": has_company & (rng.random(n) < 0.6),
        "_e_company_domain": pools.pick(rng, "domain", second, company_idx),
        "_e_free_domain": pools.pick(rng, "free_mail", second),
        "_second": second,
    })


def _customers_frame(rng, pools: _Pools, lang: DemoLanguage, n: int, owner_ids: list[int],
                     now: datetime):
    second = rng.random(n) < lang.second_share
    company = rng.random(n) < 0.6
    individual = ~company
    first_idx, last_idx, company_idx = (rng.integers(0, 1 << 30, n) for _ in range(3))
    last_idx = pools.agree(second, first_idx, last_idx)
    created, updated = _timestamps(rng, n, now)
    owner = np.array(owner_ids, dtype=np.int64)[rng.integers(0, len(owner_ids), n)]

    person = (_obj(pools.pick(rng, "first", second, first_idx)) + " "
              + _obj(pools.pick(rng, "last", second, last_idx)))
    name = np.where(company, _obj(pools.pick(rng, "company", second, company_idx)), person)

    # each locale's rows live where its side of the language says
    country, city = _places(rng, lang.main, n)
    second_country, second_city = _places(rng, lang.second, n)
    country = np.where(second, second_country, country)
    city = np.where(second, second_city, city)
    # a street from the locale whose country it is; elsewhere an English one
    street_second = np.where(country == lang.main.country, False,
                             np.where(country == lang.second.country, True,
                                      lang.second.texts == "en"))
    street = _obj(pools.pick(rng, "street", street_second))

    mailbox = np.array(["info", "sales", "contact", "office"], dtype=object)[
        rng.integers(0, 4, n)]
    email = np.where(company, mailbox + "@" + _obj(pools.pick(rng, "domain", second, company_idx)),
                     _personal_email(rng, pools, second, first_idx, last_idx))
    segment = np.where(company, _obj(_choice(rng, COMPANY_SEGMENTS, n)),
                       _obj(_choice(rng, INDIVIDUAL_SEGMENTS, n)))
    limit = np.where(company, rng.choice([5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 5e5], n),
                     rng.choice([500, 1e3, 2e3, 5e3, 1e4, 2e4], n)) * lang.money_scale

    now_d = np.datetime64(now, "D")
    bought = rng.random(n) < 0.7
    # A third were customers before the CRM: they bought up to three years before entry.
    legacy = rng.random(n) < 0.35
    before_entry = (created.astype("datetime64[D]")
                    - rng.integers(0, 3 * 365, n).astype("timedelta64[D]"))
    first_purchase = np.minimum(np.where(legacy, before_entry, _dates_between(rng, created, now)),
                                now_d)
    active = np.where(bought, rng.random(n) < 0.85, rng.random(n) < 0.5)
    age = rng.integers(18 * 365, 80 * 365, n).astype("timedelta64[D]")

    return pd.DataFrame({
        "name": name,
        "kind": np.where(company, "company", "individual").astype(object),
        "residency": np.where(country == lang.home_country, "domestic", "foreign"
                              ).astype(object),
        "industry": _choice(rng, INDUSTRY_WEIGHTS, n, mask=company & (rng.random(n) < 0.95)),
        "email": _null_unless(rng.random(n) < 0.9, email),
        "phone": pools.pick(rng, "phone", second, mask=rng.random(n) < 0.9),
        "mobile": pools.pick(rng, "phone", second, mask=individual & (rng.random(n) < 0.8)),
        "address": _null_unless(rng.random(n) < 0.85, street),
        "city": city,
        "country": country,
        "segment": _null_unless(rng.random(n) < 0.95, segment),
        "credit_limit": _money(np.where(rng.random(n) < 0.7, limit, np.nan)),
        "purchasing_power": _choice(rng, POWER_WEIGHTS, n, mask=rng.random(n) < 0.85),
        "birthday": _date_column(np.where(individual & (rng.random(n) < 0.8), now_d - age,
                                          np.datetime64("NaT", "D"))),
        "profession": pools.pick(rng, "job", second, mask=individual & (rng.random(n) < 0.7)),
        "preferences": pools.pick(rng, "preference", second, mask=rng.random(n) < 0.3),
        **_consent(rng, pools, second, created, now, 0.55),
        "owner_id": owner,
        "status": np.where(active, "active", "inactive").astype(object),
        "first_purchase_date": _date_column(np.where(bought, first_purchase,
                                                     np.datetime64("NaT", "D"))),
        "notes": pools.pick(rng, "note", second, mask=rng.random(n) < 0.15),
        "created_at": created, "updated_at": updated,
        "created_by": owner, "updated_by": owner, "version": 1,
        "_second": second,
    })


def _places(rng, side: Side, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n (country, city) pairs drawn from the side's places."""
    countries, cities, p = [], [], []
    for share, country, towns in side.places:
        weights = towns if isinstance(towns, dict) else dict.fromkeys(towns, 1)
        total = sum(weights.values())
        for town, weight in weights.items():
            countries.append(country)
            cities.append(town)
            p.append(share * weight / total)
    at = rng.choice(len(p), n, p=np.array(p) / sum(p))
    return np.array(countries, dtype=object)[at], np.array(cities, dtype=object)[at]


def _contacts_frame(rng, pools: _Pools, companies: pd.DataFrame, now: datetime):
    """1-3 people per company customer, the first one primary, mail at the company's domain."""
    per = rng.integers(1, 4, len(companies))
    n = int(per.sum())
    customer_ids = np.repeat(companies["id"].to_numpy(np.int64), per)
    owner = np.repeat(companies["owner_id"].to_numpy(np.int64), per)
    parent_created = np.repeat(companies["created_at"].to_numpy("datetime64[s]"), per)
    second = np.repeat(companies["_second"].to_numpy(bool), per)
    domain = np.repeat(np.array([e.split("@", 1)[1] if isinstance(e, str) else ""
                                 for e in companies["email"]], dtype=object), per)
    primary = np.zeros(n, dtype=bool)
    primary[np.r_[0, np.cumsum(per)[:-1]].astype(np.int64)] = True

    first_idx, last_idx = rng.integers(0, 1 << 30, n), rng.integers(0, 1 << 30, n)
    last_idx = pools.agree(second, first_idx, last_idx)
    local = (_obj(pools.pick(rng, "first_slug", second, first_idx)) + "."
             + _obj(pools.pick(rng, "last_slug", second, last_idx)))
    has_mail = (domain != "") & (rng.random(n) < 0.9)
    # Contacts were added on or soon after their company.
    age = (np.datetime64(now, "s") - parent_created).astype(np.int64)
    created = parent_created + (age * rng.random(n) * 0.2).astype(np.int64).astype(
        "timedelta64[s]")
    return pd.DataFrame({
        "customer_id": customer_ids,
        "first_name": pools.pick(rng, "first", second, first_idx),
        "last_name": pools.pick(rng, "last", second, last_idx),
        "title": pools.pick(rng, "title", second, mask=rng.random(n) < 0.9),
        "email": _null_unless(has_mail, local + "@" + domain),
        "phone": pools.pick(rng, "phone", second, mask=rng.random(n) < 0.8),
        "is_primary": primary,
        **_consent(rng, pools, second, created, now, 0.4),
        "owner_id": owner,
        "created_at": created, "updated_at": created,
        "created_by": owner, "updated_by": owner, "version": 1,
    })


# --- the sales pipeline: deals, stage history, line items, activities, tasks ---------------

RENEWALS = N_("Renewals")
DAY = 86_400
OPEN, WON, LOST = 0, 1, 2
FRESH, ACTIVE, ROTTING, CLOSED = 0, 1, 2, 3  # open deals: touched lately, or not (rotting)
CONVERTED_LINK_SHARE = 0.3  # companies that came from a converted lead, linked both ways

PRODUCTS = (  # name, code, unit price (USD), deal topic (en, fa, lt)
    ("ERP licence (per user)", "ERP-LIC", 1200,
     ("ERP licences", "خرید لایسنس ERP", "ERP licencijos")),
    ("CRM cloud subscription (per user, annual)", "CRM-SUB", 480,
     ("CRM cloud subscriptions", "اشتراک ابری CRM", "CRM debesijos prenumeratos")),
    ("Implementation services (per day)", "SVC-DAY", 1100,
     ("Implementation project", "پروژه پیاده‌سازی", "Diegimo projektas")),
    ("Training workshop", "TRN-WS", 2400,
     ("Staff training", "آموزش کارکنان", "Darbuotojų mokymai")),
    ("Premium support (annual)", "SUP-PRM", 6000,
     ("Annual support contract", "قرارداد پشتیبانی سالانه", "Metinė palaikymo sutartis")),
    ("Data migration package", "MIG-PKG", 4500,
     ("Data migration", "انتقال داده‌ها", "Duomenų perkėlimas")),
    ("Integration connector", "INT-CON", 2000,
     ("System integration", "یکپارچه‌سازی سامانه‌ها", "Sistemų integracija")),
    ("POS terminal", "HW-POS", 890, ("POS terminals", "خرید پایانه فروش", "Kasos terminalai")),
    ("Barcode scanner", "HW-SCN", 240,
     ("Barcode scanners", "خرید بارکدخوان", "Brūkšninių kodų skaitytuvai")),
    ("Rack server", "HW-SRV", 7800,
     ("Server upgrade", "ارتقای سرورها", "Serverių atnaujinimas")),
    ("Consulting (per hour)", "SVC-HR", 180,
     ("Consulting hours", "ساعات مشاوره", "Konsultavimo valandos")),
    ("Hosting (monthly)", "HST-MO", 350, ("Hosting", "میزبانی سرور", "Prieglobos paslaugos")),
)
PRODUCT_TOPIC_LANGS = ("en", "fa", "lt")
TOPIC_FIRST = {"fa"}  # deal titles "<topic> — <customer>" in these languages
DEAL_TOPICS = {
    "en": ("Hardware refresh", "Cloud migration", "Website redesign", "Security audit",
           "Fleet tracking", "Office network upgrade", "Warehouse system", "Pilot project",
           "Framework agreement", "Expansion to new branches", "Reporting dashboard",
           "Online shop launch"),
    "fa": ("نوسازی تجهیزات", "مهاجرت به فضای ابری", "طراحی مجدد وب‌سایت", "ممیزی امنیتی",
           "سامانه ردیابی ناوگان", "ارتقای شبکه اداری", "سامانه انبارداری", "پروژه آزمایشی",
           "قرارداد چارچوبی", "توسعه به شعبه‌های جدید", "داشبورد گزارش‌گیری",
           "راه‌اندازی فروشگاه اینترنتی"),
    "lt": ("Įrangos atnaujinimas", "Perkėlimas į debesiją", "Svetainės pertvarkymas",
           "Saugumo auditas", "Transporto stebėjimas", "Biuro tinklo atnaujinimas",
           "Sandėlio sistema", "Bandomasis projektas", "Preliminarioji sutartis",
           "Plėtra į naujus filialus", "Ataskaitų skydelis", "Internetinės parduotuvės atidarymas"),
}
RENEWAL_TOPICS = {
    "en": ("Annual support renewal", "Licence renewal", "Subscription renewal",
           "Maintenance contract renewal", "Hosting renewal"),
    "fa": ("تمدید قرارداد پشتیبانی سالانه", "تمدید لایسنس", "تمدید اشتراک",
           "تمدید قرارداد نگهداری", "تمدید میزبانی"),
    "lt": ("Metinio palaikymo pratęsimas", "Licencijos pratęsimas", "Prenumeratos pratęsimas",
           "Priežiūros sutarties pratęsimas", "Prieglobos pratęsimas"),
}
NEXT_STEPS = {
    "en": ("Send the proposal", "Schedule a demo", "Call the CFO about the budget",
           "Send the contract draft", "Agree on the delivery date", "Follow up on the quote",
           "Meet the IT team", "Prepare a discount offer", "Wait for the purchase order",
           "Book an on-site visit"),
    "fa": ("ارسال پیشنهاد قیمت", "هماهنگی جلسه دمو", "تماس با مدیر مالی درباره بودجه",
           "ارسال پیش‌نویس قرارداد", "توافق روی تاریخ تحویل", "پیگیری پیش‌فاکتور",
           "جلسه با تیم فناوری اطلاعات", "آماده‌سازی پیشنهاد تخفیف", "در انتظار سفارش خرید"),
    "lt": ("Išsiųsti pasiūlymą", "Suplanuoti demonstraciją",
           "Paskambinti finansų direktoriui dėl biudžeto", "Išsiųsti sutarties projektą",
           "Suderinti pristatymo datą", "Priminti apie pasiūlymą", "Susitikti su IT komanda",
           "Paruošti nuolaidos pasiūlymą", "Laukti pirkimo užsakymo",
           "Suplanuoti vizitą pas klientą"),
}
DEAL_NOTES = {
    "en": ("Decision expected after the board meeting.", "Budget confirmed by finance.",
           "Needs approval from headquarters.", "Price is the main concern.",
           "Our champion is the operations manager.", "Legal is reviewing the contract.",
           "They run a tender; two other vendors are invited."),
    "fa": ("تصمیم‌گیری بعد از جلسه هیئت مدیره.", "بودجه توسط واحد مالی تأیید شده است.",
           "نیاز به تأیید دفتر مرکزی دارد.", "قیمت مهم‌ترین دغدغه است.",
           "واحد حقوقی در حال بررسی قرارداد است.", "مناقصه برگزار می‌کنند؛ دو رقیب دیگر هم هستند."),
    "lt": ("Sprendimas laukiamas po valdybos posėdžio.", "Biudžetą patvirtino finansų skyrius.",
           "Reikia būstinės pritarimo.", "Svarbiausia – kaina.",
           "Mus palaiko operacijų vadovas.", "Teisininkai peržiūri sutartį.",
           "Vyksta konkursas; pakviesti dar du tiekėjai."),
}
COMPETITORS = {
    "en": ("Northwind Systems", "Contoso Software", "Globex Corp", "Initech", "Umbrella Solutions",
           "Stark Digital"),
    "fa": ("داده‌پردازان پارس", "نرم‌افزار سپهر", "همکاران فناوری", "راهکار نوین",
           "پردازش هوشمند آریا"),
    "lt": ("Baltijos IT sprendimai", "Nemuno sistemos", "Vilniaus programinė įranga",
           "Duomenų centras LT", "Gintaro technologijos"),
}
LOST_REASON_WEIGHTS = {"price": 0.22, "competitor": 0.20, "no_budget": 0.14, "no_decision": 0.14,
                       "timing": 0.10, "product_fit": 0.07, "went_silent": 0.10, "other": 0.03}
# currency of a deal by the customer's country: (currency, cumulative share), rest USD
CURRENCY_BY_COUNTRY = {
    "Germany": (("EUR", 0.85),), "United Kingdom": (("GBP", 0.7),), "Canada": (("CAD", 0.6),),
    "United Arab Emirates": (("AED", 0.6),), "Turkey": (("TRY", 0.3), ("EUR", 0.6)),
    "Iran": (("IRR", 0.5), ("AED", 0.75), ("EUR", 0.85)),
    "ایران": (("IRR", 0.92), ("AED", 0.96)), "امارات متحده عربی": (("AED", 0.7),),
    "ترکیه": (("TRY", 0.3), ("EUR", 0.6)),
    "Lietuva": (("EUR", 1.0),), "Latvija": (("EUR", 1.0),), "Lenkija": (("EUR", 0.8),),
    "Vokietija": (("EUR", 1.0),),
}
# Deal amounts are drawn in dollars (1,000-500,000, to 100); a currency listed here has its own
# units per dollar, rounding and range: rials, 500 million to 50 billion.
AMOUNTS = {"IRR": (100_000, 1_000_000, 500_000_000, 50_000_000_000)}
ACTIVITY_KIND_WEIGHTS = {"call": 0.34, "email": 0.30, "meeting": 0.12, "visit": 0.05,
                         "note": 0.11, "social_message": 0.04, "chat": 0.04}
ACTIVITY_SUBJECTS = {
    "call": {"en": ("Discovery call", "Follow-up call", "Call about the proposal",
                    "Pricing questions", "Check-in call", "Call with the decision maker"),
             "fa": ("تماس اولیه", "تماس پیگیری", "تماس درباره پیشنهاد قیمت",
                    "پرسش درباره قیمت‌ها", "تماس با مدیر خرید"),
             "lt": ("Pirminis skambutis", "Pakartotinis skambutis", "Skambutis dėl pasiūlymo",
                    "Klausimai dėl kainų", "Skambutis sprendimų priėmėjui")},
    "email": {"en": ("Sent the proposal", "Sent the price list", "Reply about delivery times",
                     "Sent case studies", "Sent the contract draft"),
              "fa": ("ارسال پیشنهاد قیمت", "ارسال لیست قیمت", "پاسخ درباره زمان تحویل",
                     "ارسال پیش‌نویس قرارداد"),
              "lt": ("Išsiųstas pasiūlymas", "Išsiųstas kainoraštis",
                     "Atsakymas dėl pristatymo terminų", "Išsiųstas sutarties projektas")},
    "meeting": {"en": ("Product demo", "Kick-off meeting", "Negotiation meeting",
                       "Quarterly business review", "Requirements workshop"),
                "fa": ("جلسه معرفی محصول", "جلسه مذاکره", "جلسه بررسی نیازها",
                       "جلسه شروع پروژه"),
                "lt": ("Produkto demonstracija", "Projekto pradžios susitikimas",
                       "Derybų susitikimas", "Poreikių aptarimas")},
    "visit": {"en": ("Site visit", "Visit at the customer's office", "Installation check"),
              "fa": ("بازدید از محل مشتری", "بازدید از دفتر مشتری", "بررسی نصب"),
              "lt": ("Vizitas objekte", "Vizitas kliento biure", "Įdiegimo patikra")},
    "note": {"en": ("Internal note", "Budget details", "Competitor situation",
                    "Decision process"),
             "fa": ("یادداشت داخلی", "جزئیات بودجه", "وضعیت رقبا", "روند تصمیم‌گیری"),
             "lt": ("Vidinė pastaba", "Biudžeto detalės", "Konkurentų padėtis",
                    "Sprendimų priėmimo eiga")},
    "social_message": {"en": ("LinkedIn message", "Instagram message"),
                       "fa": ("پیام در لینکدین", "پیام اینستاگرام", "پیام تلگرام"),
                       "lt": ("Žinutė per LinkedIn", "Žinutė per Facebook")},
    "chat": {"en": ("Website chat", "WhatsApp chat"),
             "fa": ("گفتگوی آنلاین سایت", "گفتگو در واتساپ"),
             "lt": ("Pokalbis svetainėje", "Pokalbis per WhatsApp")},
}
ACTIVITY_NOTES = {
    "en": ("Asked for references from the same industry.", "Wants the offer in two options.",
           "Sounded positive; waiting for the budget.", "Prefers to talk after the holidays.",
           "Raised concerns about the implementation time.", "Confirmed the number of users.",
           "Needs the invoice address changed."),
    "fa": ("درخواست معرفی مشتریان هم‌صنف داشت.", "پیشنهاد را در دو گزینه می‌خواهد.",
           "نظر مثبت داشت؛ منتظر بودجه است.", "ترجیح می‌دهد بعد از تعطیلات صحبت کنیم.",
           "نگران زمان پیاده‌سازی است.", "تعداد کاربران را تأیید کرد."),
    "lt": ("Paprašė tos pačios srities klientų rekomendacijų.",
           "Nori pasiūlymo dviem variantais.", "Nusiteikęs teigiamai; laukia biudžeto.",
           "Siūlo pasikalbėti po švenčių.", "Nerimauja dėl diegimo trukmės.",
           "Patvirtino naudotojų skaičių."),
}
# per activity kind: outcome -> share (the rest: no outcome)
ACTIVITY_OUTCOMES = {
    "call": {"completed": 0.35, "no_answer": 0.15, "left_message": 0.12, "interested": 0.15,
             "not_interested": 0.05, "follow_up_needed": 0.18},
    "email": {"interested": 0.2, "follow_up_needed": 0.2, "completed": 0.1},
    "meeting": {"completed": 0.5, "interested": 0.25, "follow_up_needed": 0.2,
                "not_interested": 0.05},
    "visit": {"completed": 0.6, "interested": 0.2, "follow_up_needed": 0.2},
    "note": {},
    "social_message": {"interested": 0.25, "follow_up_needed": 0.25},
    "chat": {"interested": 0.25, "follow_up_needed": 0.25},
}
TASK_TITLES = {
    "en": ("Send the revised proposal", "Call back about pricing", "Prepare the contract",
           "Schedule a product demo", "Follow up on the quote", "Send the invoice",
           "Confirm the delivery date", "Book the kick-off meeting", "Ask for a reference",
           "Check the budget approval"),
    "fa": ("ارسال پیشنهاد اصلاح‌شده", "تماس مجدد درباره قیمت", "آماده‌سازی قرارداد",
           "هماهنگی جلسه دمو", "پیگیری پیش‌فاکتور", "ارسال فاکتور", "تأیید تاریخ تحویل",
           "هماهنگی جلسه شروع پروژه"),
    "lt": ("Išsiųsti pataisytą pasiūlymą", "Perskambinti dėl kainų", "Paruošti sutartį",
           "Suplanuoti produkto demonstraciją", "Priminti apie pasiūlymą", "Išsiųsti sąskaitą",
           "Patvirtinti pristatymo datą", "Suplanuoti projekto pradžios susitikimą",
           "Paprašyti rekomendacijos", "Patikrinti, ar biudžetas patvirtintas"),
}
TASK_NOTES = {
    "en": ("Mention the volume discount.", "Copy the account manager.",
           "Use the new price list."),
    "fa": ("تخفیف حجمی را یادآوری کن.", "مدیر حساب را در جریان بگذار.",
           "از لیست قیمت جدید استفاده شود."),
    "lt": ("Paminėti kiekio nuolaidą.", "Informuoti kliento vadybininką.",
           "Naudoti naują kainoraštį."),
}
PRIORITY_WEIGHTS = {"low": 0.2, "normal": 0.6, "high": 0.2}


def _new_ids(cur, table: str, n: int) -> np.ndarray:
    """n ids drawn from the table's sequence (table names are constants of this module), so
    the rows can link to each other before they are written and later inserts come after."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    draw = f"SELECT nextval('{table}_id_seq') AS id FROM generate_series(1, $n)"
    found = cur.execute(draw, {"n": n}).fetchnumpy()["id"]
    return np.sort(np.asarray(found, dtype=np.int64))


def _ids_by_time(ids: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The ids handed out in the order the rows were created (as if entered one by one)."""
    out = np.empty(len(ids), dtype=np.int64)
    out[np.argsort(times, kind="stable")] = ids
    return out


LEAD_LINK_COLUMNS = ("first_name", "last_name", "title", "company", "email", "phone", "owner_id",
                     "consent", "consent_date", "consent_purpose", "notes", "created_at",
                     "updated_at", "created_by", "updated_by", "version", "converted_at",
                     "converted_customer_id", "converted_contact_id", "converted_deal_id")


def _update_from(cur, table: str, frame: pd.DataFrame, columns: Iterable[str]):
    """Fast path (DuckDB only): UPDATE table rows by id from a DataFrame (names are ours)."""
    if frame.empty:
        return
    view = f"demo_{table}_update"
    cur.register(view, frame)
    try:
        sets = ", ".join(f"{c} = u.{c}" for c in columns)
        update = (f"UPDATE {table} SET {sets}, estimated_value = coalesce("
                  f"u.estimated_value, {table}.estimated_value) FROM {view} u"
                  f" WHERE {table}.id = u.id")
        cur.execute(update)
    finally:
        cur.unregister(view)


def _demo_pipelines(db: Database, actor: auth.User) -> list[dict]:
    """The default pipeline, then Renewals (made here unless it exists), with their stages."""
    names = {RENEWALS.lower(), _(RENEWALS).lower()}

    def renewals_id():
        return next((p["id"] for p in pipelines.list_pipelines(db)
                     if p["name"].strip().lower() in names), None)

    renewal = renewals_id()
    if renewal is None:
        try:
            renewal = pipelines.create_pipeline(db, actor, _(RENEWALS))
        except ValidationError:  # made meanwhile by someone else
            renewal = renewals_id()
    out = []
    for pid, is_renewal in ((pipelines.default_pipeline_id(db), False), (renewal, True)):
        if pid is None or any(p["id"] == pid for p in out):
            continue
        stages = pipelines.stages_of(db, pid)
        opens = [s for s in stages if s["kind"] == "open"]
        if opens:
            out.append({"id": pid, "renewal": is_renewal, "open": opens,
                        "won": next((s for s in stages if s["kind"] == "won"), None),
                        "lost": next((s for s in stages if s["kind"] == "lost"), None)})
    return out


def _demo_products(cur, now: datetime, lang: DemoLanguage) -> tuple[pd.DataFrame, int]:
    """The demo products (added once, priced in the language's currency, found by code later);
    returns those in the currency most of them have, cheapest first."""
    codes = [p[1] for p in PRODUCTS]
    names = {f"c{i}": c for i, c in enumerate(codes)}
    marks = ", ".join("$" + k for k in names)
    in_codes = f"code IN ({marks})"  # placeholders only; the codes are parameters
    have = {r[0] for r in cur.execute("SELECT code FROM products WHERE " + in_codes,
                                      names).fetchall()}
    missing = [p for p in PRODUCTS if p[1] not in have]
    if missing:
        _bulk_insert(cur, "products", pd.DataFrame({
            "id": _new_ids(cur, "products", len(missing)),
            "name": [p[0] for p in missing], "code": [p[1] for p in missing],
            "unit_price": _money(np.array([p[2] * _per_dollar(lang.currency) for p in missing],
                                          dtype=float)),
            "currency": lang.currency, "active": True, "created_at": now, "updated_at": now,
            "version": 1}))
    found = cur.execute("SELECT id, code, name, unit_price, currency FROM products WHERE "
                        + in_codes + " AND unit_price > 0 ORDER BY unit_price, id",
                        names).fetchall()
    currencies = [r[4] for r in found]
    currency = max(set(currencies), key=currencies.count) if found else lang.currency
    topics = {p[1]: p[3] for p in PRODUCTS}
    seen: set = set()
    rows = []
    for pid, code, name, price, cur_ in found:
        if code not in seen and cur_ == currency:  # an admin may have added a code twice
            seen.add(code)
            rows.append((pid, name, int(round(price * 100)), currency, *topics[code]))
    frame = pd.DataFrame(rows, columns=["id", "name", "cents", "currency",
                                        *(f"topic_{k}" for k in PRODUCT_TOPIC_LANGS)])
    return frame, len(missing)


def _per_dollar(currency: str) -> int:
    return AMOUNTS.get(currency, (1,))[0]


def _texts(rng, texts: dict, langs: tuple[str, str], second: np.ndarray,
           mask: np.ndarray | None = None) -> pd.Categorical:
    """Per row a text from texts[langs[1]] where second, else from texts[langs[0]]."""
    main, other = list(texts[langs[0]]), list(texts[langs[1]])
    cats = pd.Index(_unique(main + other))
    main_codes, other_codes = cats.get_indexer(main), cats.get_indexer(other)
    idx = rng.integers(0, 1 << 30, len(second))
    codes = np.where(second, other_codes[idx % len(other)], main_codes[idx % len(main)])
    if mask is not None:
        codes = np.where(mask, codes, -1)
    return pd.Categorical.from_codes(codes, categories=cats)


def _texts_by_kind(rng, table: dict, langs: tuple[str, str], kinds: np.ndarray,
                   second: np.ndarray) -> pd.Categorical:
    """Like _texts, with separate lists per kind (kinds holds the keys of table)."""
    cats = pd.Index(_unique(t for by_lang in table.values() for lang in langs
                            for t in by_lang[lang]))
    codes = np.full(len(kinds), -1, dtype=np.int64)
    idx = rng.integers(0, 1 << 30, len(kinds))
    for kind, by_lang in table.items():
        rows = kinds == kind
        main, other = (cats.get_indexer(list(by_lang[lang])) for lang in langs)
        codes[rows] = np.where(second[rows], other[idx[rows] % len(other)],
                               main[idx[rows] % len(main)])
    return pd.Categorical.from_codes(codes, categories=cats)


def _weights(values: dict) -> tuple[list, np.ndarray]:
    p = np.array(list(values.values()), dtype=float)
    return list(values), p / p.sum()


def _ts(seconds: np.ndarray, mask: np.ndarray | None = None) -> pd.Series:
    """Seconds since the epoch (naive local time, like datetime.now()) as a TIMESTAMP column."""
    values = np.asarray(seconds, dtype=np.int64).astype("datetime64[s]")
    if mask is not None:
        values = np.where(mask, values, np.datetime64("NaT", "s"))
    return pd.Series(values)


def _day(seconds: np.ndarray, mask: np.ndarray | None = None) -> pd.Series:
    days = (np.asarray(seconds, dtype=np.int64) // DAY).astype("datetime64[D]")
    if mask is not None:
        days = np.where(mask, days, np.datetime64("NaT", "D"))
    return _date_column(days)


def _ints(values: np.ndarray, mask: np.ndarray | None = None) -> pd.Series:
    """Integers with NULL where not mask (or where negative, for 'no link' markers)."""
    values = np.asarray(values, dtype=np.int64)
    missing = values < 0 if mask is None else ~mask
    return pd.Series(pd.arrays.IntegerArray(values, missing))


def _between(rng, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return lo + (rng.random(len(lo)) * np.maximum(hi - lo, 0)).astype(np.int64)


class _Sales:
    """Deals with stage history and line items, activities, tasks and converted-lead links,
    made from the (id-carrying) frames of leads, customers and contacts. Times are int64
    seconds since the epoch; row positions link the arrays, ids link the tables."""

    def __init__(self, rng, cur, now: datetime, size: str, lang: DemoLanguage,
                 owner_ids: list[int], pipes: list[dict], leads: pd.DataFrame,
                 customers: pd.DataFrame, contacts: pd.DataFrame, products: pd.DataFrame):
        self.rng, self.size, self.owner_ids, self.pipes = rng, size, owner_ids, pipes
        self.langs = (lang.main.texts, lang.second.texts)  # keys of the text tables
        self._cur = cur  # ids come from the sequences, inside the caller's transaction
        self.now = int(np.datetime64(now, "s").astype(np.int64))
        self.leads, self.contacts, self.products = leads, contacts, products
        self.item_currency = products["currency"].iloc[0] if len(products) else lang.currency
        # customers
        self.c_id = customers["id"].to_numpy(np.int64)
        self.c_owner = customers["owner_id"].to_numpy(np.int64)
        self.c_created = _seconds(customers["created_at"])
        self.c_second = customers["_second"].to_numpy(bool)
        self.c_country = customers["country"].to_numpy(object)
        self.c_name = customers["name"].to_numpy(object)
        self.c_bought = customers["first_purchase_date"].notna().to_numpy()
        # contacts: grouped by company in customer order, the first of each group is primary
        self.k_id = contacts["id"].to_numpy(np.int64)
        self.k_cust = np.searchsorted(self.c_id, contacts["customer_id"].to_numpy(np.int64))
        nc = len(self.c_id)
        self.k_start = np.searchsorted(self.k_cust, np.arange(nc), "left")
        self.k_count = np.searchsorted(self.k_cust, np.arange(nc), "right") - self.k_start
        # leads
        self.l_id = leads["id"].to_numpy(np.int64)
        self.l_owner = leads["owner_id"].to_numpy(np.int64).copy()
        self.l_created = _seconds(leads["created_at"])
        self.l_end = np.full(len(leads), self.now, dtype=np.int64)  # activities until then
        self.l_second = leads["_second"].to_numpy(bool).copy()
        self.l_status = np.asarray(leads["status"], dtype=object)
        self._deals()
        self._link_converted_leads()
        self.activities: list[dict] = []
        self.tasks: list[dict] = []

    # --- deals ------------------------------------------------------------------------

    def _deals(self):
        rng, now, n = self.rng, self.now, SIZES[self.size]["deals"]
        mix = DEAL_MIX[self.size]
        n_ren = int(round(n * mix["renewals"])) if len(self.pipes) > 1 else 0
        pipe = np.r_[np.zeros(n - n_ren, np.int64), np.ones(n_ren, np.int64)]
        outcome = np.zeros(n, np.int64)
        for p_i, p in enumerate(self.pipes):
            members = np.flatnonzero(pipe == p_i)
            won = int(round(len(members) * mix["won"])) if p["won"] else 0
            lost = int(round(len(members) * mix["lost"])) if p["lost"] else 0
            kinds = np.r_[np.full(won, WON), np.full(lost, LOST),
                          np.full(len(members) - won - lost, OPEN)]
            outcome[members] = rng.permutation(kinds)
        # Customers: a few big accounts get many deals; renewals go to those who have bought.
        # A customer entered in the last 3 days has no deals yet.
        eligible = self.c_created <= now - 3 * DAY
        if not eligible.any():
            eligible[:] = True
        weight = rng.lognormal(0, 0.8, len(self.c_id)) * eligible
        cust = rng.choice(len(self.c_id), n, p=weight / weight.sum())
        if n_ren:
            renew = weight * self.c_bought
            renew = renew if renew.sum() > 0 else weight
            cust[pipe == 1] = rng.choice(len(self.c_id), n_ren, p=renew / renew.sum())
        self.pipe, self.outcome, self.cust = pipe, outcome, cust
        self.n = n
        self._choose_converted_deals()
        self._stage_paths()
        self._times()
        self._values()

    def _choose_converted_deals(self):
        """Some companies came from a converted lead; one of their deals (if any) was made by
        that conversion."""
        rng = self.rng
        with_contacts = np.flatnonzero(self.k_count > 0)
        converted_leads = np.flatnonzero(self.l_status == "converted")
        m = min(len(converted_leads), int(round(CONVERTED_LINK_SHARE * len(with_contacts))))
        self.link_cust = rng.choice(with_contacts, m, replace=False)
        self.link_lead = rng.choice(converted_leads, m, replace=False)
        first_deal = np.full(len(self.c_id), -1, dtype=np.int64)
        rows = np.flatnonzero(self.pipe == 0)
        found, at = np.unique(self.cust[rows], return_index=True)
        first_deal[found] = rows[at]
        self.link_deal = first_deal[self.link_cust]
        self.deal_lead = np.full(self.n, -1, dtype=np.int64)  # position in the leads frame
        has = self.link_deal >= 0
        self.deal_lead[self.link_deal[has]] = self.link_lead[has]
        self.converted = self.deal_lead >= 0

    def _stage_paths(self):
        """Each deal passed its pipeline's open stages in order from a start stage to the last
        one it reached; won and lost deals then moved to the closing stage."""
        rng, n = self.rng, self.n
        width = max(len(p["open"]) for p in self.pipes)
        self.open_ids = np.full((len(self.pipes), width), -1, dtype=np.int64)
        self.open_rot = np.full((len(self.pipes), width), np.nan)
        self.k_open = np.array([len(p["open"]) for p in self.pipes])
        self.won_id = np.array([p["won"]["id"] if p["won"] else -1 for p in self.pipes])
        self.lost_id = np.array([p["lost"]["id"] if p["lost"] else -1 for p in self.pipes])
        prob, category = {}, {}
        for p_i, p in enumerate(self.pipes):
            for i, s in enumerate(p["open"]):
                self.open_ids[p_i, i] = s["id"]
                self.open_rot[p_i, i] = s["rotting_days"] if s["rotting_days"] else np.nan
            for s in p["open"] + [s for s in (p["won"], p["lost"]) if s]:
                prob[s["id"]], category[s["id"]] = s["probability"], s["forecast_category"]
        self.stage_prob = np.zeros(max(prob) + 1, dtype=np.int64)
        self.stage_prob[list(prob)] = list(prob.values())
        self.stage_category = category
        last = np.zeros(n, dtype=np.int64)
        for p_i in range(len(self.pipes)):
            k = self.k_open[p_i]
            early = 0.75 ** np.arange(k)  # more deals in the early stages
            late = 0.3 ** (k - 1 - np.arange(k))  # won deals mostly went through all of them
            for kind, w in ((OPEN, early), (LOST, early), (WON, late)):
                rows = np.flatnonzero((self.pipe == p_i) & (self.outcome == kind))
                last[rows] = rng.choice(k, len(rows), p=w / w.sum())
        start = np.minimum(np.where(rng.random(n) < 0.25, 1, 0), last)
        self.last, self.start = last, start
        self.L = last - start + 1 + (self.outcome != OPEN)
        closing = np.where(self.outcome == WON, self.won_id[self.pipe], self.lost_id[self.pipe])
        self.stage = np.where(self.outcome == OPEN, self.open_ids[self.pipe, last], closing)

    def _times(self):
        """A time per history row: entered the current stage at t_last, earlier stages lasted
        a few days each; never before the customer existed (a converted lead's deal starts
        exactly when the customer was made). Open deals are fresh, active (a recent
        activity) or rotting (no move and no activity for longer than the stage allows)."""
        rng, now, n, L = self.rng, self.now, self.n, self.L
        rows = int(L.sum())
        deal_of = np.repeat(np.arange(n), L)
        first = np.r_[0, np.cumsum(L)[:-1]]
        j = np.arange(rows) - first[deal_of]
        d = (rng.exponential(9 * DAY, rows) + 3600).astype(np.int64)
        d[j == 0] = 0
        rot = self.open_rot[self.pipe, self.last]
        rot_eff = np.where(np.isnan(rot), 30.0, rot)
        u = rng.random(n)
        cat = np.where(u < 0.45, FRESH, np.where(u < 0.75, ACTIVE, ROTTING))
        cat = np.where(np.isnan(rot) & (cat == ROTTING), FRESH, cat)
        cat = np.where(self.outcome == OPEN, cat, CLOSED)
        r = rng.random(n)
        age = np.select(
            [cat == FRESH, cat == ACTIVE, cat == ROTTING],
            [r * rot_eff, rot_eff + r * np.maximum(75 - rot_eff, 5), rot_eff + 2 + r * 100],
            r * 530) * DAY
        t_last = now - age.astype(np.int64)
        cs = np.cumsum(d)
        within = cs - cs[first][deal_of]  # time from the first row to this one
        total = within[first + L - 1]
        off = (now - (t_last[deal_of] - (total[deal_of] - within))).astype(float)
        lower = self.c_created[self.cust] + np.where(self.converted, 0, 3600)
        limit = (now - lower).astype(float)
        o_first = off[first]
        factor = np.where(self.converted | (o_first > limit), limit / np.maximum(o_first, 1), 1.0)
        t = now - np.round(off * factor[deal_of]).astype(np.int64)
        t[first[self.converted]] = lower[self.converted]
        for level in range(1, int(L.max())):  # strictly increasing within each deal
            at = np.flatnonzero(j == level)
            t[at] = np.maximum(t[at], t[at - 1] + 1)
        self.deal_of, self.row_j, self.row_t = deal_of, j, t
        self.created = t[first]
        self.entered = t[first + L - 1]
        self.rot_eff = rot_eff
        # rescaling may have made a rotting deal recent again
        cat = np.where((cat == ROTTING) & (now - self.entered < (rot_eff + 1.5) * DAY), FRESH, cat)
        self.cat = cat
        # activities on the deal fall between its creation and this
        self.act_end = np.where(self.outcome != OPEN, self.entered,
                                np.where(cat == ROTTING,
                                         now - ((rot_eff + 1) * DAY).astype(np.int64) - 3600, now))

    def _values(self):
        rng, n, now = self.rng, self.n, self.now
        cust, pipe, outcome = self.cust, self.pipe, self.outcome
        second = self.c_second[cust]
        renewal = np.array([p["renewal"] for p in self.pipes])[pipe]
        is_open = outcome == OPEN
        # amount: log-normal, 1k-500k, rounded to 100
        base = np.where(renewal, rng.lognormal(np.log(6000), 0.9, n),
                        rng.lognormal(np.log(12000), 1.25, n))
        cents = np.clip(np.round(base / 100) * 100, 1000, 500_000).astype(np.int64) * 100
        # currency by country
        country = self.c_country[cust]
        u = rng.random(n)
        currency = np.full(n, "USD", dtype=object)
        for name, options in CURRENCY_BY_COUNTRY.items():
            here = country == name
            for code, upto in reversed(options):
                currency[here & (u < upto)] = code
        for code, (per_dollar, step, low, high) in AMOUNTS.items():
            here = currency == code
            cents[here] = np.clip(np.round(cents[here] / 100 * per_dollar / step) * step,
                                  low, high).astype(np.int64) * 100
        # line items for ~30% of the deals (those in the currency the products are priced in)
        priced = currency == self.item_currency
        share = min(1.0, 0.3 / max(priced.mean(), 1e-9))
        self.with_items = np.flatnonzero(priced & (rng.random(n) < share))
        cents, first_product = self._line_items(cents)
        # titles: "<customer> — <topic>" (Persian: topic first), topic from the first product
        topics = [{lang: p[f"topic_{lang}"] for lang in PRODUCT_TOPIC_LANGS}
                  for _, p in self.products.iterrows()]
        n_prod = len(topics)
        topics += [dict(zip(DEAL_TOPICS, texts)) for texts in zip(*DEAL_TOPICS.values())]
        n_general = len(DEAL_TOPICS["en"])
        topics += [dict(zip(RENEWAL_TOPICS, texts)) for texts in zip(*RENEWAL_TOPICS.values())]
        topic = np.where(first_product >= 0, first_product,
                         n_prod + rng.integers(0, n_general, n))
        renewal_topic = n_prod + n_general + rng.integers(0, len(RENEWAL_TOPICS["en"]), n)
        topic = np.where(renewal, renewal_topic, topic)
        name = self.c_name[cust]
        main, other = (self._titles(lang, topics, topic, name) for lang in self.langs)
        title = np.where(second, other, main)
        # contact: mostly the primary one of a company
        count, start = self.k_count[cust], self.k_start[cust]
        r = rng.random(n)
        pick = np.where(r < 0.6, start, start + rng.integers(0, 1 << 30, n) % np.maximum(count, 1))
        contact = np.where((count > 0) & ((r < 0.9) | self.converted), pick, -1)
        contact = np.where(self.converted, start, contact)
        self.contact = np.where(contact >= 0, self.k_id[np.maximum(contact, 0)], -1)
        # stage probability override on some open deals; a forecast category on a few
        stage_p = self.stage_prob[self.stage]
        shift = rng.choice([-20, -15, -10, -5, 5, 10, 15, 20], n)
        override = is_open & (rng.random(n) < 0.10)
        probability = np.where(override, np.clip(stage_p + shift, 5, 95), -1)
        fc_override = is_open & (rng.random(n) < 0.04)
        stage_cat = np.array([self.stage_category[s] for s in self.stage], dtype=object)
        forecast = np.where(stage_cat == "pipeline", "best_case",
                            np.where(stage_cat == "best_case", "commit", "best_case")
                            ).astype(object)
        # an override on a deal that moved was set by an edit after its last move
        edited = (override | fc_override) & (self.L > 1)
        updated = np.where(edited, _between(rng, self.entered, np.full(n, now)), self.entered)
        # source: lead sources for new business; a converted lead's deal keeps the lead's
        keys, p = _weights(SOURCE_WEIGHTS)
        source = np.array(keys, dtype=object)[rng.choice(len(keys), n, p=p)]
        source[renewal | (rng.random(n) < 0.08)] = None
        conv = self.converted
        lead_source = np.asarray(self.leads["source"].iloc[self.deal_lead[conv]], dtype=object)
        source[conv] = [s if isinstance(s, str) else None for s in lead_source]
        # lost: a reason always, the competitor when it went to one (and sometimes on price)
        keys, p = _weights(LOST_REASON_WEIGHTS)
        reason = np.array(keys, dtype=object)[rng.choice(len(keys), n, p=p)]
        lost = outcome == LOST
        rival_shown = lost & ((reason == "competitor") | ((reason == "price")
                                                           & (rng.random(n) < 0.35)))
        # expected close: open ones -60..+180 days (later stages sooner); closed ones near
        # the day they closed
        today = now // DAY
        frac = self.last / np.maximum(self.k_open[pipe] - 1, 1)
        ahead = (rng.random(n) * 180 * (1 - 0.6 * frac)).astype(np.int64)
        slipped = rng.random(n) < 0.12
        expected_open = today + np.where(slipped, -rng.integers(1, 61, n), ahead)
        expected_closed = self.entered // DAY + rng.integers(-25, 16, n)
        expected = np.where(is_open, expected_open, expected_closed)
        owner = self.c_owner[cust]
        self.amount_cents, self.owner, self.second = cents, owner, second
        self.override = probability
        self.deal_id = _ids_by_time(_new_ids(self._cur, "deals", n), self.created)
        self.deal = pd.DataFrame({
            "id": self.deal_id,
            "title": title,
            "customer_id": self.c_id[cust],
            "contact_id": _ints(self.contact),
            "owner_id": owner,
            "amount": _money(cents / 100),
            "currency": currency,
            "pipeline_id": np.array([p["id"] for p in self.pipes], dtype=np.int64)[pipe],
            "stage_id": self.stage,
            "expected_close_date": _date_column(expected.astype("datetime64[D]")),
            "probability": _ints(probability),
            "forecast_category": _null_unless(fc_override, forecast),
            "source": source,
            "lost_reason": _null_unless(lost, reason),
            "lost_to_competitor": _null_unless(
                rival_shown, _obj(_texts(rng, COMPETITORS, self.langs, second))),
            "next_step": _texts(rng, NEXT_STEPS, self.langs, second,
                                mask=is_open & (rng.random(n) < 0.85)),
            "notes": _texts(rng, DEAL_NOTES, self.langs, second, mask=rng.random(n) < 0.15),
            "closed_on": _day(self.entered, mask=~is_open),
            "stage_entered_at": _ts(self.entered),
            "lead_id": _ints(np.where(conv, self.l_id[np.maximum(self.deal_lead, 0)], -1)),
            "created_at": _ts(self.created),
            "updated_at": _ts(updated),
            "created_by": owner, "updated_by": owner,
            "version": self.L + edited,
        })

    @staticmethod
    def _titles(lang: str, topics: list[dict], topic: np.ndarray, name: np.ndarray):
        text = np.array([t[lang] for t in topics], dtype=object)[topic]
        return text + " — " + name if lang in TOPIC_FIRST else name + " — " + text

    def _line_items(self, cents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """1-3 distinct products per chosen deal, quantities fitted to the deal's size; the
        deal's amount becomes exactly the sum of quantity x unit price. Returns the amounts
        (cents) and the first product's position per deal (-1: none)."""
        rng, deals_ = self.rng, self.with_items
        first_product = np.full(self.n, -1, dtype=np.int64)
        m, n_prod = len(deals_), len(self.products)
        if m == 0 or n_prod == 0:
            self.items = pd.DataFrame()
            return cents, first_product
        price = self.products["cents"].to_numpy(np.int64)  # cheapest first
        target = np.minimum(cents[deals_], 420_000 * 100 * _per_dollar(self.item_currency))
        k = rng.choice([1, 2, 3], m, p=[0.45, 0.35, 0.2])
        share = target / k
        allowed = price[None, :] <= share[:, None]
        allowed[:, 0] = True
        keys = np.where(allowed, rng.random((m, n_prod)), 2.0)
        order = np.argsort(keys, axis=1)
        k = np.minimum(k, allowed.sum(axis=1))
        total = np.zeros(m, dtype=np.int64)
        lines = []
        for line in range(3):
            has = np.flatnonzero(k > line)
            product = order[has, line]
            discount = rng.choice([0, 0, 0, 5, 10, 15], len(has))
            unit = np.round(price[product] * (100 - discount) / 100).astype(np.int64)
            last = k[has] == line + 1
            fit = np.maximum(np.round(share[has] / unit), 1)
            rest = np.maximum(np.ceil((target[has] - total[has]) / unit), 1)
            quantity = np.where(last, rest, fit).astype(np.int64)
            total[has] += quantity * unit
            lines.append((has, product, quantity, unit))
        cents = cents.copy()
        cents[deals_] = total
        first_product[deals_] = order[:, 0]
        has = np.concatenate([h for h, *_ in lines])
        product = np.concatenate([p for _, p, *_ in lines])
        deal_rows = deals_[has]
        self.items = pd.DataFrame({
            "deal_row": deal_rows,
            "product_id": self.products["id"].to_numpy(np.int64)[product],
            "description": self.products["name"].to_numpy(object)[product],
            "quantity": np.concatenate([q for *_, q, _ in lines]).astype(float),
            "unit_price": _money(np.concatenate([u for *_, u in lines]) / 100),
        })
        return cents, first_product

    def _link_converted_leads(self):
        """The chosen converted leads became their company, its primary contact and (when the
        company has a deal in the default pipeline) that deal: the lead takes the contact's
        name and details, the customer's owner, and was converted when the customer was made."""
        rng, now = self.rng, self.now
        cp, lp = self.link_cust, self.link_lead
        kp = self.k_start[cp]
        m = len(cp)
        converted_at = self.c_created[cp]
        window = now - HISTORY_DAYS * DAY
        gap = np.maximum(np.minimum(rng.uniform(1, 60, m) * DAY, (converted_at - window) * 0.9),
                         60).astype(np.int64)
        created = converted_at - gap
        owner = self.c_owner[cp]
        k = self.contacts
        # the primary contact was made by the conversion, with the customer
        made = np.asarray(converted_at, dtype=np.int64).astype("datetime64[s]")
        for col in ("created_at", "updated_at"):
            values = k[col].to_numpy("datetime64[s]").copy()
            values[kp] = made
            k[col] = values

        def col(name):
            return [None if (v is None or v != v) else v for v in np.asarray(k[name], object)[kp]]

        deal = self.link_deal
        has_deal = deal >= 0
        self.lead_links = pd.DataFrame({
            "id": self.l_id[lp],
            "first_name": col("first_name"), "last_name": col("last_name"),
            "title": col("title"), "company": list(self.c_name[cp]),
            "email": col("email"), "phone": col("phone"),
            "owner_id": owner,
            "estimated_value": _money(np.where(has_deal, self.amount_cents[np.maximum(deal, 0)]
                                               / 100, np.nan)),
            "consent": k["consent"].to_numpy(bool)[kp],
            "consent_date": k["consent_date"].iloc[kp].reset_index(drop=True),
            "consent_purpose": col("consent_purpose"),
            "notes": pd.Series([None] * m, dtype=object),
            "created_at": _ts(created), "updated_at": _ts(converted_at),
            "created_by": owner, "updated_by": owner, "version": 2,
            "converted_at": _ts(converted_at),
            "converted_customer_id": self.c_id[cp],
            "converted_contact_id": self.k_id[kp],
            "converted_deal_id": _ints(np.where(has_deal, self.deal_id[np.maximum(deal, 0)], -1)),
        })
        self.l_owner[lp] = owner
        self.l_created[lp] = created
        self.l_end[lp] = converted_at
        self.l_second[lp] = self.c_second[cp]

    # --- activities and tasks -----------------------------------------------------------

    def _links(self, kind: str, idx: np.ndarray) -> dict:
        """Owner, language, time window and link columns for rows about records idx."""
        none = np.full(len(idx), -1, dtype=np.int64)
        if kind == "deal":
            return {"owner": self.owner[idx], "second": self.second[idx],
                    "lo": self.created[idx], "hi": self.act_end[idx],
                    "deal_id": self.deal_id[idx], "customer_id": self.c_id[self.cust[idx]],
                    "contact_id": self.contact[idx], "lead_id": none}
        if kind == "customer":
            return {"owner": self.c_owner[idx], "second": self.c_second[idx],
                    "lo": self.c_created[idx], "hi": np.full(len(idx), self.now),
                    "deal_id": none, "customer_id": self.c_id[idx], "contact_id": none,
                    "lead_id": none}
        if kind == "contact":
            cust = self.k_cust[idx]
            return {"owner": self.c_owner[cust], "second": self.c_second[cust],
                    "lo": _seconds(self.contacts["created_at"])[idx],
                    "hi": np.full(len(idx), self.now), "deal_id": none,
                    "customer_id": self.c_id[cust], "contact_id": self.k_id[idx],
                    "lead_id": none}
        return {"owner": self.l_owner[idx], "second": self.l_second[idx],
                "lo": self.l_created[idx], "hi": self.l_end[idx], "deal_id": none,
                "customer_id": none, "contact_id": none, "lead_id": self.l_id[idx]}

    def make_activities(self, n_total: int):
        rng, now = self.rng, self.now
        # one recent activity on each 'active' open deal keeps it from rotting
        forced = np.flatnonzero(self.cat == ACTIVE)
        if len(forced) > n_total // 2:
            forced = np.sort(rng.choice(forced, n_total // 2, replace=False))
        rest = n_total - len(forced)
        n_deal, n_cust, n_contact = (int(round(rest * s)) for s in (0.55, 0.2, 0.07))
        n_lead = rest - n_deal - n_cust - n_contact
        weight = np.select([self.outcome == WON, self.outcome == LOST], [1.4, 0.8], 1.0) * self.L
        parts = []
        f = self._links("deal", forced)
        f["lo"] = np.maximum(f["lo"], now - (self.rot_eff[forced] * DAY).astype(np.int64) + 3600)
        parts.append(f)
        parts.append(self._links("deal", rng.choice(self.n, n_deal, p=weight / weight.sum())))
        parts.append(self._links("customer", rng.integers(0, len(self.c_id), n_cust)))
        if len(self.k_id):
            parts.append(self._links("contact", rng.integers(0, len(self.k_id), n_contact)))
        else:
            n_lead += n_contact
        talked = np.flatnonzero(self.l_status != "new")
        if len(talked):
            parts.append(self._links("lead", rng.choice(talked, n_lead)))
        rows = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        n = len(rows["owner"])
        when = _between(rng, rows["lo"], rows["hi"])
        # the deal's latest activity
        last = np.full(self.n, -1, dtype=np.int64)
        on_deal = rows["deal_id"] >= 0
        position = np.argsort(self.deal_id)
        deal_row = position[np.searchsorted(self.deal_id[position], rows["deal_id"][on_deal])]
        np.maximum.at(last, deal_row, when[on_deal])
        self.deal["last_activity_at"] = _ts(last, mask=last >= 0)

        kinds_list, p = _weights(ACTIVITY_KIND_WEIGHTS)
        kind = np.array(kinds_list, dtype=object)[rng.choice(len(kinds_list), n, p=p)]
        second = rows["second"]
        outcome = np.full(n, None, dtype=object)
        u = rng.random(n)
        for k_name, shares in ACTIVITY_OUTCOMES.items():
            here = kind == k_name
            upto = 0.0
            for name, share in shares.items():
                outcome[here & (u >= upto) & (u < upto + share)] = name
                upto += share
        two_way = np.isin(kind, ["call", "email", "social_message", "chat"])
        direction = np.where(rng.random(n) < 0.65, "outbound", "inbound").astype(object)
        minutes = np.select(
            [kind == "call", kind == "meeting", kind == "visit"],
            [np.clip(rng.lognormal(np.log(8), 0.8, n), 1, 90).astype(np.int64),
             rng.choice([30, 45, 60, 90, 120], n), rng.choice([30, 60, 90, 120, 180], n)], -1)
        created = np.minimum(when + rng.integers(0, 1800, n), now)
        created = np.maximum(created, when)
        self.activities_frame = pd.DataFrame({
            "id": _ids_by_time(_new_ids(self._cur, "activities", n), created),
            "kind": kind,
            "subject": _texts_by_kind(rng, ACTIVITY_SUBJECTS, self.langs, kind, second),
            "occurred_at": _ts(when),
            "duration_minutes": _ints(minutes),
            "direction": _null_unless(two_way, direction),
            "outcome": outcome,
            "notes": _texts(rng, ACTIVITY_NOTES, self.langs, second, mask=rng.random(n) < 0.35),
            "lead_id": _ints(rows["lead_id"]), "customer_id": _ints(rows["customer_id"]),
            "contact_id": _ints(rows["contact_id"]), "deal_id": _ints(rows["deal_id"]),
            "owner_id": rows["owner"],
            "created_at": _ts(created), "updated_at": _ts(created),
            "created_by": rows["owner"], "updated_by": rows["owner"], "version": 1,
        })

    def make_tasks(self, n_total: int):
        """Open tasks (overdue, due today, upcoming, a few undated), done and cancelled ones.
        Every owner gets two overdue, two for today and two upcoming open tasks."""
        rng, now = self.rng, self.now
        is_open = self.outcome == OPEN
        parts, states = [], []
        # the guaranteed ones first
        for owner in self.owner_ids:
            mine = np.flatnonzero(is_open & (self.owner == owner))
            if len(mine):
                parts.append(self._links("deal", rng.choice(mine, 6)))
            elif (self.c_owner == owner).any():
                parts.append(self._links("customer",
                                         rng.choice(np.flatnonzero(self.c_owner == owner), 6)))
            elif (self.l_owner == owner).any():
                parts.append(self._links("lead",
                                         rng.choice(np.flatnonzero(self.l_owner == owner), 6)))
            else:
                continue
            states.append(np.array(["overdue", "overdue", "today", "today", "upcoming",
                                    "upcoming"], dtype=object))
        rest = max(n_total - 6 * len(parts), 0)
        # A person has a few dozen overdue tasks and a dozen for today at most, also in the
        # large demo (my_tasks lists the first 200 by due date: hundreds of overdue tasks
        # would hide today's); the rest of those shares is done.
        per_owner = max(rest, 1) / len(self.owner_ids)
        overdue, today = min(0.135, 40 / per_owner), min(0.0675, 12 / per_owner)
        state = rng.choice(["overdue", "today", "upcoming", "undated", "done", "cancelled"],
                           rest, p=[overdue, today, 0.225, 0.0225, 0.585 - overdue - today + 0.0675,
                                    0.10]).astype(object)
        link = rng.choice(["deal", "customer", "lead"], rest, p=[0.6, 0.25, 0.15])
        open_deals = np.flatnonzero(is_open)
        open_leads = np.flatnonzero(np.isin(self.l_status, ["new", "contacted", "qualified"]))
        any_leads = np.flatnonzero(self.l_status != "new")
        for kind in ("deal", "customer", "lead"):
            for closed in (False, True):
                sel = (link == kind) & (np.isin(state, ["done", "cancelled"]) == closed)
                count = int(sel.sum())
                if not count:
                    continue
                if kind == "deal":
                    pool = np.arange(self.n) if closed else open_deals
                elif kind == "customer":
                    pool = np.arange(len(self.c_id))
                else:
                    pool = any_leads if closed else open_leads
                if not len(pool):
                    continue
                parts.append(self._links(kind, rng.choice(pool, count)))
                states.append(state[sel])
        rows = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        state = np.concatenate(states)
        n = len(state)
        lo, hi = rows["lo"], np.maximum(rows["hi"], rows["lo"])
        tomorrow = (now // DAY + 1) * DAY
        to_midnight = tomorrow - now
        r = rng.random(n)
        overdue = np.minimum(np.maximum(now - (3600 + r * 21 * DAY).astype(np.int64),
                                        lo + ((now - lo) * r * 0.5).astype(np.int64)), now - 1)
        overdue = overdue // 60 * 60  # whole minutes, still before now
        today = now + np.maximum((to_midnight * (0.3 + 0.6 * r)).astype(np.int64), 1)
        today = np.maximum(np.minimum(-(-today // 60) * 60, tomorrow - 60), now + 1)
        upcoming = (tomorrow + rng.integers(0, 30, n) * DAY
                    + (9 * 3600 + rng.integers(0, 17, n) * 1800))
        closed_due = _between(rng, lo, hi) // 60 * 60
        due = np.select([state == "overdue", state == "today", state == "upcoming",
                         state == "undated"], [overdue, today, upcoming, now], closed_due)
        done = state == "done"
        finished = np.isin(state, ["done", "cancelled"])
        created = np.clip(np.minimum(due, now) - (3600 + rng.random(n) * 10 * DAY).astype(
            np.int64), lo, now)
        ended = np.clip(due + rng.integers(-2 * DAY, 2 * DAY, n), created, now)
        keys, p = _weights(PRIORITY_WEIGHTS)
        owner = rows["owner"]
        self.tasks_frame = pd.DataFrame({
            "id": _ids_by_time(_new_ids(self._cur, "tasks", n), created),
            "title": _texts(rng, TASK_TITLES, self.langs, rows["second"]),
            "due_at": _ts(due, mask=state != "undated"),
            "owner_id": owner,
            "status": np.where(done, "done", np.where(finished, "cancelled", "open")
                               ).astype(object),
            "priority": np.array(keys, dtype=object)[rng.choice(len(keys), n, p=p)],
            "notes": _texts(rng, TASK_NOTES, self.langs, rows["second"], mask=rng.random(n) < 0.15),
            "lead_id": _ints(rows["lead_id"]), "customer_id": _ints(rows["customer_id"]),
            "contact_id": _ints(rows["contact_id"]), "deal_id": _ints(rows["deal_id"]),
            "completed_at": _ts(ended, mask=done),
            "created_at": _ts(created),
            "updated_at": _ts(np.where(finished, ended, created)),
            "created_by": owner, "updated_by": owner,
            "version": np.where(finished, 2, 1),
        })

    # --- frames to insert -------------------------------------------------------------

    def frames(self) -> dict[str, pd.DataFrame]:
        """Deals, their stage history and line items, activities and tasks, ready to insert."""
        deal_of, j, t = self.deal_of, self.row_j, self.row_t
        L = self.L[deal_of]
        closing = (self.outcome[deal_of] != OPEN) & (j == L - 1)
        pipe = self.pipe[deal_of]
        position = np.minimum(self.start[deal_of] + j, self.k_open[pipe] - 1)
        to_stage = np.where(closing, self.stage[deal_of], self.open_ids[pipe, position])
        from_stage = np.r_[-1, to_stage[:-1]]
        from_stage[j == 0] = -1
        probability = self.stage_prob[to_stage]
        # created with an override and never moved: the history row holds the override
        own = (self.override[deal_of] >= 0) & (L == 1)
        probability = np.where(own, self.override[deal_of], probability)
        history = pd.DataFrame({
            "id": _ids_by_time(_new_ids(self._cur, "deal_stage_history", len(t)), t),
            "deal_id": self.deal_id[deal_of],
            "from_stage_id": _ints(from_stage),
            "to_stage_id": to_stage,
            "changed_at": _ts(t),
            "changed_by": self.owner[deal_of],
            "amount": _money(self.amount_cents[deal_of] / 100),
            "probability": probability,
        })
        items = pd.DataFrame()
        if not self.items.empty:
            rows = self.items["deal_row"].to_numpy(np.int64)
            items = pd.DataFrame({
                "id": _ids_by_time(_new_ids(self._cur, "deal_products", len(rows)),
                                   self.created[rows]),
                "deal_id": self.deal_id[rows], **self.items.drop(columns="deal_row"),
                "created_at": _ts(self.created[rows]), "created_by": self.owner[rows]})
        return {"deals": self.deal, "deal_stage_history": history, "deal_products": items,
                "activities": self.activities_frame, "tasks": self.tasks_frame}


def _seconds(column) -> np.ndarray:
    return np.asarray(pd.Series(column).to_numpy("datetime64[s]"), dtype=np.int64)


def _bulk_insert(cur, table: str, frame: pd.DataFrame, computed: dict[str, str] | None = None):
    """Fast path (DuckDB only): one INSERT ... SELECT over the registered DataFrame.

    The id column is left out, so ids come from the table's sequence. Columns whose name
    starts with '_' are parts that `computed` (column -> SQL expression) puts together."""
    if frame.empty:
        return
    computed = computed or {}
    cols = [c for c in frame.columns if not c.startswith("_")] + list(computed)
    exprs = [computed.get(c, c) for c in cols]  # names and expressions are ours, not input
    view = f"demo_{table}_frame"
    cur.register(view, frame)
    try:
        insert = (f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(exprs)}"
                  f" FROM {view}")
        cur.execute(insert)
    finally:
        cur.unregister(view)


__all__ = ["load_demo", "demo_password", "random_password", "demo_users_to_create", "SIZES",
           "DEMO_USERS"]
