"""Realistic demo data: leads, customers and contacts in English and Persian (Faker en_US, fa_IR).

Faker makes a few thousand names, companies, streets and phone numbers once; numpy then samples
rows from those pools, so a million leads take seconds instead of the minutes that one Faker call
per value would take. The rows go in through a DataFrame scan inside one transaction (a DuckDB
fast path, like the bulk importer), with ids from the tables' sequences and one audit entry per
table instead of one per row.
"""
from __future__ import annotations

import os
import re
import secrets
import string
import unicodedata
from datetime import datetime
from typing import Callable, Iterable

import numpy as np
import pandas as pd
from faker import Faker

from crm import audit, auth
from crm.db import Database
from crm.fields import convert, spec_map
from crm.leads import FIELDS as LEAD_FIELDS

SIZES = {
    "small": {"leads": 300, "customers": 120},
    "large": {"leads": 1_000_000, "customers": 20_000},
}
PERSIAN_SHARE = 0.3  # rows made from the fa_IR locale; the rest are en_US
HOME_COUNTRY = "United States"  # customers here are "domestic", the others "foreign"
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
FOREIGN = {  # country -> cities, for en_US rows that are abroad
    "Canada": ("Toronto", "Vancouver", "Montreal", "Calgary"),
    "United Kingdom": ("London", "Manchester", "Birmingham", "Leeds"),
    "Germany": ("Berlin", "Hamburg", "Munich", "Frankfurt"),
    "United Arab Emirates": ("Dubai", "Abu Dhabi", "Sharjah"),
    "Turkey": ("Istanbul", "Ankara", "Izmir"),
}
# Persian-speaking customers in the home country live mostly in these cities.
DIASPORA_CITIES = {"Los Angeles": 10, "San Jose": 3, "Houston": 2, "New York": 2, "Dallas": 1,
                   "Seattle": 1, "Boston": 1}

TITLES = {
    "en": ("CEO", "Owner", "Sales Manager", "Purchasing Manager", "Head of Procurement", "CFO",
           "IT Director", "Operations Manager", "Marketing Manager", "Office Manager",
           "Account Manager", "Project Manager", "Buyer", "Managing Director", "CTO"),
    "fa": ("مدیر عامل", "مدیر فروش", "کارشناس خرید", "مدیر بازرگانی", "مدیر فنی", "مدیر مالی",
           "کارشناس بازاریابی", "مدیر تدارکات", "مدیر فناوری اطلاعات", "مدیر پروژه",
           "مدیر داخلی", "حسابدار", "مدیر کارخانه"),
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
}
PREFERENCES = {
    "en": ("Prefers email over phone", "Call after 2 pm", "Invoices in USD",
           "Interested in annual contracts", "Prefers WhatsApp messages",
           "Wants quarterly business reviews", "Paper invoices by post"),
    "fa": ("تماس فقط در ساعات اداری", "ترجیح ارتباط از طریق ایمیل", "فاکتور رسمی لازم دارد",
           "علاقه‌مند به قراردادهای سالانه", "پیامک برای اطلاع‌رسانی"),
}
CONSENT_PURPOSES = {
    "en": ("newsletter", "newsletter and sales calls", "order updates and invoices",
           "product offers by email", "event invitations"),
    "fa": ("خبرنامه", "خبرنامه و تماس فروش", "اطلاع‌رسانی سفارش و فاکتور",
           "پیشنهاد محصولات از طریق پیامک"),
}
FREE_MAIL = {"en": ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com"),
             "fa": ("gmail.com", "yahoo.com", "mailfa.com", "chmail.ir")}
FA_COMPANY_FORMATS = ("گروه صنعتی {}", "بازرگانی {}", "شرکت {} و شرکا", "تولیدی {}", "{} تجارت")

Progress = Callable[[float, str], None]


def load_demo(db: Database, size: str = "small", progress: Progress | None = None,
              owners: Iterable | None = None, seed: int | None = None) -> dict:
    """Adds demo leads, customers and contacts; returns how many of each it made.

    owners: user ids (or User objects) to own the records. Without them the active managers
    and reps own them; when there are none, the demo users maria (manager), reza, sam and
    lena (reps) are created with the password from CRM_DEMO_PASSWORD or a random one, which
    the result then holds under 'demo_password'. No admin is created here."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}")
    report = progress or (lambda fraction, text: None)
    started = datetime.now()
    result: dict = {"size": size}

    report(0.0, "Preparing demo users")
    actor = _admin_actor(db)
    owner_ids = _owner_ids(db, owners)
    if not owner_ids:
        result.update(_create_demo_users(db, actor))
        owner_ids = _owner_ids(db, None)
    if not owner_ids:
        raise LookupError("No active user can own the demo records; add a rep or manager first")

    report(0.1, "Making names, companies and addresses")
    rng = np.random.default_rng(seed)
    pools = _Pools(seed if seed is not None else int(rng.integers(2**31)))
    now = datetime.now().replace(microsecond=0)
    counts = SIZES[size]

    report(0.25, f"Generating {counts['leads']:,} leads")
    leads = _leads_frame(rng, pools, counts["leads"], owner_ids, now)
    report(0.5, f"Generating {counts['customers']:,} customers")
    customers = _customers_frame(rng, pools, counts["customers"], owner_ids, now)

    report(0.6, "Saving leads and customers")
    with db.transaction() as cur:
        _bulk_insert(cur, "leads", leads, {"email": LEAD_EMAIL_SQL})
        audit.record(cur, actor, "leads", None, "demo_load",
                     {"rows": (None, len(leads)), "size": (None, size)})
        # fetchall: DuckDB 2.0 results stream and block the cursor until fully read
        before = cur.execute("SELECT coalesce(max(id), 0) FROM customers").fetchall()[0][0]
        _bulk_insert(cur, "customers", customers)
        audit.record(cur, actor, "customers", None, "demo_load",
                     {"rows": (None, len(customers)), "size": (None, size)})
        # Ids come from the sequence; read back the new companies to hang contacts on them.
        companies = cur.execute(
            "SELECT id, name, email, owner_id, created_at FROM customers"
            " WHERE id > $before AND kind = 'company' ORDER BY id", {"before": before},
        ).df()
        report(0.85, "Adding contacts to companies")
        contacts = _contacts_frame(rng, pools, companies, now)
        _bulk_insert(cur, "contacts", contacts)
        audit.record(cur, actor, "contacts", None, "demo_load",
                     {"rows": (None, len(contacts)), "size": (None, size)})

    result.update(leads=len(leads), customers=len(customers), contacts=len(contacts),
                  seconds=round((datetime.now() - started).total_seconds(), 2))
    report(1.0, "Demo data loaded")
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


def _create_demo_users(db: Database, actor: auth.User) -> dict:
    from_env = bool(os.environ.get("CRM_DEMO_PASSWORD"))
    password = demo_password()
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
    """A few thousand Faker values per locale (en_US, fa_IR), made once per load.

    Phone numbers go through the phone spec first: some of Faker's en_US ones carry an
    extension ('x123') that the spec rightly refuses."""

    def __init__(self, seed: int):
        lead_spec = spec_map(LEAD_FIELDS)
        self.en = self._make(Faker("en_US"), seed, "en", lead_spec)
        self.fa = self._make(Faker("fa_IR"), seed + 1, "fa", lead_spec)
        # One category list per key over both locales, so rows are just integer codes.
        self.codes = {}
        for key in self.en:
            cats = pd.Index(_unique(list(self.en[key]) + list(self.fa[key])))
            self.codes[key] = (cats, cats.get_indexer(self.en[key]),
                               cats.get_indexer(self.fa[key]))

    @staticmethod
    def _make(fake: Faker, seed: int, lang: str, spec) -> dict[str, np.ndarray]:
        fake.seed_instance(seed)

        def many(method, n):
            return _unique(getattr(fake, method)() for _ in range(n))

        first, last = many("first_name", 1500), many("last_name", 1500)
        companies = many("company", 1500)
        if lang == "fa":  # Faker's Persian list is short; add "<family name> Trading" kinds
            companies = _unique(list(companies) + [
                fmt.format(name) for name in last for fmt in FA_COMPANY_FORMATS])
        phones = _valid(spec["phone"], (fake.phone_number() for _ in range(1500)))
        if lang == "en":
            domains = np.array([_domain(c, fake) for c in companies], dtype=object)
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
            "company": companies, "domain": domains, "phone": phones,
            "street": many("street_address", 1500), "job": many("job", 600),
            "title": np.array(TITLES[lang], dtype=object),
            "note": np.array(NOTES[lang], dtype=object),
            "preference": np.array(PREFERENCES[lang], dtype=object),
            "purpose": np.array(CONSENT_PURPOSES[lang], dtype=object),
            "free_mail": np.array(FREE_MAIL[lang], dtype=object),
        }

    def pick(self, rng, key: str, persian: np.ndarray, idx: np.ndarray | None = None,
             mask: np.ndarray | None = None) -> pd.Categorical:
        """Per row, a value from the fa pool where persian, else from en; missing where not mask.

        A Categorical is integer codes plus the pool, so a million rows cost almost nothing
        to build and DuckDB reads them as an ENUM that casts to VARCHAR on insert."""
        cats, en, fa = self.codes[key]
        if idx is None:
            idx = rng.integers(0, 1 << 30, len(persian))
        codes = np.where(persian, fa[idx % len(fa)], en[idx % len(en)])
        if mask is not None:
            codes = np.where(mask, codes, -1)
        return pd.Categorical.from_codes(codes, categories=cats)


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


def _domain(company: str, fake: Faker) -> str:
    words = [w for w in re.split(r"[^A-Za-z]+", company)
             if w and w not in ("Inc", "LLC", "Ltd", "PLC", "Group")]
    base = "".join(_slug(w) for w in words[:2])
    return f"{base}.{fake.tld()}" if base else fake.domain_name()


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


def _consent(rng, pools, persian, created, now, share: float) -> dict:
    """Consent for some; most of those with the day they gave it (never before the record)."""
    n = len(persian)
    consent = rng.random(n) < share
    dated = consent & (rng.random(n) < 0.9)
    dates = _dates_between(rng, created, now)
    return {
        "consent": consent,
        "consent_date": _date_column(np.where(dated, dates, np.datetime64("NaT", "D"))),
        "consent_purpose": pools.pick(rng, "purpose", persian, mask=consent),
    }


def _personal_email(rng, pools, persian, first_idx, last_idx) -> np.ndarray:
    """first.last, first_last or firstlast, sometimes with a number, at a free mail domain."""
    n = len(persian)
    sep = np.array([".", "_", ""], dtype=object)[rng.integers(0, 3, n)]
    number = np.where(rng.random(n) < 0.4, rng.integers(1, 999, n).astype(str), "")
    return (_obj(pools.pick(rng, "first_slug", persian, first_idx)) + sep
            + _obj(pools.pick(rng, "last_slug", persian, last_idx)) + number.astype(object)
            + "@" + _obj(pools.pick(rng, "free_mail", persian)))


# The leads' email is put together by DuckDB from the parts (a million Python string joins
# would take seconds): first.last@company-domain for business addresses, else a free mail.
LEAD_EMAIL_SQL = (
    "CAST(_e_first AS VARCHAR) || CASE WHEN _e_business THEN '.' ELSE _e_sep END"
    " || CAST(_e_last AS VARCHAR) || CASE WHEN _e_business THEN '' ELSE _e_number END || '@'"
    " || CAST(CASE WHEN _e_business THEN _e_company_domain ELSE _e_free_domain END AS VARCHAR)"
)


def _leads_frame(rng, pools: _Pools, n: int, owner_ids: list[int], now: datetime):
    persian = rng.random(n) < PERSIAN_SHARE
    first_idx, last_idx, company_idx = (rng.integers(0, 1 << 30, n) for _ in range(3))
    has_company = rng.random(n) < 0.7
    has_email = rng.random(n) < 0.85
    created, updated = _timestamps(rng, n, now)
    owner = np.array(owner_ids, dtype=np.int64)[rng.integers(0, len(owner_ids), n)]
    value = np.round(rng.lognormal(8.6, 1.1, n) / 50) * 50
    numbers = [""] + [str(i) for i in range(1, 1000)]
    return pd.DataFrame({
        "first_name": pools.pick(rng, "first", persian, first_idx),
        "last_name": pools.pick(rng, "last", persian, last_idx),
        "company": pools.pick(rng, "company", persian, company_idx, mask=has_company),
        "title": pools.pick(rng, "title", persian, mask=has_company & (rng.random(n) < 0.8)),
        "phone": pools.pick(rng, "phone", persian, mask=rng.random(n) < 0.75),
        "source": _choice(rng, SOURCE_WEIGHTS, n, mask=rng.random(n) < 0.95),
        "status": _choice(rng, LEAD_STATUS_WEIGHTS, n),
        "owner_id": owner,
        "estimated_value": _money(np.where(rng.random(n) < 0.75, value, np.nan)),
        "notes": pools.pick(rng, "note", persian, mask=rng.random(n) < 0.12),
        **_consent(rng, pools, persian, created, now, 0.45),
        "created_at": created, "updated_at": updated,
        "created_by": owner, "updated_by": owner, "version": 1,
        # parts of the email (see LEAD_EMAIL_SQL); a missing first part makes it NULL
        "_e_first": pools.pick(rng, "first_slug", persian, first_idx, mask=has_email),
        "_e_last": pools.pick(rng, "last_slug", persian, last_idx),
        "_e_sep": pd.Categorical.from_codes(rng.integers(0, 3, n), categories=[".", "_", ""]),
        "_e_number": pd.Categorical.from_codes(
            np.where(rng.random(n) < 0.4, rng.integers(1, 1000, n), 0), categories=numbers),
        "_e_business": has_company & (rng.random(n) < 0.6),
        "_e_company_domain": pools.pick(rng, "domain", persian, company_idx),
        "_e_free_domain": pools.pick(rng, "free_mail", persian),
    })


def _customers_frame(rng, pools: _Pools, n: int, owner_ids: list[int], now: datetime):
    persian = rng.random(n) < PERSIAN_SHARE
    company = rng.random(n) < 0.6
    individual = ~company
    first_idx, last_idx, company_idx = (rng.integers(0, 1 << 30, n) for _ in range(3))
    created, updated = _timestamps(rng, n, now)
    owner = np.array(owner_ids, dtype=np.int64)[rng.integers(0, len(owner_ids), n)]

    person = (_obj(pools.pick(rng, "first", persian, first_idx)) + " "
              + _obj(pools.pick(rng, "last", persian, last_idx)))
    name = np.where(company, _obj(pools.pick(rng, "company", persian, company_idx)), person)

    # en_US rows: mostly at home, some abroad; fa_IR rows: half in Iran, half in the diaspora.
    abroad = np.where(persian, rng.random(n) < 0.5, rng.random(n) < 0.15)
    foreign = list(FOREIGN)
    fc = np.array(foreign, dtype=object)[rng.integers(0, len(foreign), n)]
    foreign_city = np.array([FOREIGN[c][i % len(FOREIGN[c])]
                             for c, i in zip(fc, rng.integers(0, 12, n))], dtype=object)
    country = np.where(abroad, np.where(persian, "Iran", fc), HOME_COUNTRY).astype(object)
    city = np.where(
        abroad,
        np.where(persian, _obj(_choice(rng, IRAN_CITIES, n)), foreign_city),
        np.where(persian, _obj(_choice(rng, DIASPORA_CITIES, n)), _obj(_choice(rng, US_CITIES, n))),
    ).astype(object)
    street = _obj(pools.pick(rng, "street", abroad & persian))  # Persian streets only in Iran

    mailbox = np.array(["info", "sales", "contact", "office"], dtype=object)[
        rng.integers(0, 4, n)]
    email = np.where(company, mailbox + "@" + _obj(pools.pick(rng, "domain", persian, company_idx)),
                     _personal_email(rng, pools, persian, first_idx, last_idx))
    segment = np.where(company, _obj(_choice(rng, COMPANY_SEGMENTS, n)),
                       _obj(_choice(rng, INDIVIDUAL_SEGMENTS, n)))
    limit = np.where(company, rng.choice([5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 5e5], n),
                     rng.choice([500, 1e3, 2e3, 5e3, 1e4, 2e4], n))

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
        "residency": np.where(country == HOME_COUNTRY, "domestic", "foreign").astype(object),
        "industry": _choice(rng, INDUSTRY_WEIGHTS, n, mask=company & (rng.random(n) < 0.95)),
        "email": _null_unless(rng.random(n) < 0.9, email),
        "phone": pools.pick(rng, "phone", persian, mask=rng.random(n) < 0.9),
        "mobile": pools.pick(rng, "phone", persian, mask=individual & (rng.random(n) < 0.8)),
        "address": _null_unless(rng.random(n) < 0.85, street),
        "city": city,
        "country": country,
        "segment": _null_unless(rng.random(n) < 0.95, segment),
        "credit_limit": _money(np.where(rng.random(n) < 0.7, limit, np.nan)),
        "purchasing_power": _choice(rng, POWER_WEIGHTS, n, mask=rng.random(n) < 0.85),
        "birthday": _date_column(np.where(individual & (rng.random(n) < 0.8), now_d - age,
                                          np.datetime64("NaT", "D"))),
        "profession": pools.pick(rng, "job", persian, mask=individual & (rng.random(n) < 0.7)),
        "preferences": pools.pick(rng, "preference", persian, mask=rng.random(n) < 0.3),
        **_consent(rng, pools, persian, created, now, 0.55),
        "owner_id": owner,
        "status": np.where(active, "active", "inactive").astype(object),
        "first_purchase_date": _date_column(np.where(bought, first_purchase,
                                                     np.datetime64("NaT", "D"))),
        "notes": pools.pick(rng, "note", persian, mask=rng.random(n) < 0.15),
        "created_at": created, "updated_at": updated,
        "created_by": owner, "updated_by": owner, "version": 1,
    })


_PERSIAN_RE = re.compile(r"[\u0600-\u06FF]")


def _contacts_frame(rng, pools: _Pools, companies: pd.DataFrame, now: datetime):
    """1-3 people per company customer, the first one primary, mail at the company's domain."""
    per = rng.integers(1, 4, len(companies))
    n = int(per.sum())
    customer_ids = np.repeat(companies["id"].to_numpy(np.int64), per)
    owner = np.repeat(companies["owner_id"].to_numpy(np.int64), per)
    parent_created = np.repeat(companies["created_at"].to_numpy("datetime64[s]"), per)
    persian = np.repeat(np.array([bool(_PERSIAN_RE.search(s)) for s in companies["name"]],
                                 dtype=bool), per)
    domain = np.repeat(np.array([e.split("@", 1)[1] if isinstance(e, str) else ""
                                 for e in companies["email"]], dtype=object), per)
    primary = np.zeros(n, dtype=bool)
    primary[np.r_[0, np.cumsum(per)[:-1]].astype(np.int64)] = True

    first_idx, last_idx = rng.integers(0, 1 << 30, n), rng.integers(0, 1 << 30, n)
    local = (_obj(pools.pick(rng, "first_slug", persian, first_idx)) + "."
             + _obj(pools.pick(rng, "last_slug", persian, last_idx)))
    has_mail = (domain != "") & (rng.random(n) < 0.9)
    # Contacts were added on or soon after their company.
    age = (np.datetime64(now, "s") - parent_created).astype(np.int64)
    created = parent_created + (age * rng.random(n) * 0.2).astype(np.int64).astype(
        "timedelta64[s]")
    return pd.DataFrame({
        "customer_id": customer_ids,
        "first_name": pools.pick(rng, "first", persian, first_idx),
        "last_name": pools.pick(rng, "last", persian, last_idx),
        "title": pools.pick(rng, "title", persian, mask=rng.random(n) < 0.9),
        "email": _null_unless(has_mail, local + "@" + domain),
        "phone": pools.pick(rng, "phone", persian, mask=rng.random(n) < 0.8),
        "is_primary": primary,
        **_consent(rng, pools, persian, created, now, 0.4),
        "owner_id": owner,
        "created_at": created, "updated_at": created,
        "created_by": owner, "updated_by": owner, "version": 1,
    })


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


__all__ = ["load_demo", "demo_password", "random_password", "SIZES", "DEMO_USERS"]
