"""Demo survey answers and complaints over the last two years, with believable patterns:

- each customer has a mood; unhappy customers complain more and score lower (satisfaction is
  lower where complaints pile up);
- products differ in quality, and one product had a bad batch 8 to 11 months ago: complaints
  about it pile up then and its scores drop;
- owners serve a little better or worse; satisfaction improves slowly over the two years;
- old complaints are mostly resolved (critical ones fastest), a few drag on for months, recent
  ones are still open.

Called by crm.demo.load_demo after the sales data exists. Rows are made with numpy and written
by one INSERT ... SELECT per table (DuckDB fast path, as in crm.demo)."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from crm import audit, dialect
from crm.db import Database

SIZES = {"small": {"surveys": 1_500, "complaints": 250},
         "large": {"surveys": 500_000, "complaints": 100_000}}
DAYS = 730  # two years
CHANNELS = {"email": 0.45, "web": 0.25, "phone": 0.15, "chat": 0.10, "in_person": 0.05}
CATEGORIES = {"product_failure": 0.30, "delivery": 0.25, "billing": 0.20, "service": 0.15,
              "other": 0.10}
SEVERITY_DAYS = {"low": 9.0, "medium": 6.0, "high": 4.0, "critical": 2.5}  # median to resolve

SUBJECTS = {
    "en": {"product_failure": ("Unit stopped working", "Device fails after update",
                               "Part broke within a week", "Error on start-up"),
           "delivery": ("Delivery arrived late", "Wrong item delivered", "Package damaged"),
           "billing": ("Charged twice", "Invoice amount is wrong", "Refund not received"),
           "service": ("No answer from support", "Technician did not come",
                       "Rude phone support"),
           "other": ("Missing manual", "Website login problem")},
    "fa": {"product_failure": ("دستگاه از کار افتاد", "خرابی پس از به‌روزرسانی",
                               "قطعه در هفته اول شکست", "خطا هنگام روشن شدن"),
           "delivery": ("تحویل با تأخیر", "کالای اشتباه ارسال شد", "بسته آسیب دیده بود"),
           "billing": ("دو بار کسر وجه", "مبلغ فاکتور اشتباه است", "بازپرداخت انجام نشد"),
           "service": ("پشتیبانی پاسخ نمی‌دهد", "تکنسین نیامد", "برخورد نامناسب پشتیبانی"),
           "other": ("دفترچه راهنما نبود", "مشکل ورود به سایت")},
    "lt": {"product_failure": ("Įrenginys nustojo veikti", "Gedimas po atnaujinimo",
                               "Detalė lūžo per savaitę", "Klaida paleidžiant"),
           "delivery": ("Pristatymas vėlavo", "Atsiųsta ne ta prekė", "Pažeista pakuotė"),
           "billing": ("Nuskaičiuota dukart", "Neteisinga sąskaitos suma",
                       "Negrąžinti pinigai"),
           "service": ("Pagalbos linija neatsako", "Technikas neatvyko",
                       "Nemandagus aptarnavimas"),
           "other": ("Trūksta instrukcijos", "Nepavyksta prisijungti svetainėje")},
}
RESOLUTIONS = {"en": ("Replaced the unit", "Refunded the difference", "Sent the right item",
                      "Explained and closed with the customer"),
               "fa": ("دستگاه تعویض شد", "مابه‌التفاوت برگشت داده شد", "کالای درست ارسال شد",
                      "با مشتری توضیح داده و بسته شد"),
               "lt": ("Įrenginys pakeistas", "Grąžintas skirtumas", "Išsiųsta tinkama prekė",
                      "Paaiškinta klientui ir uždaryta")}
COMMENTS = {  # by mood of the answer: low, middle, high
    "en": (("Too many problems lately", "Support was slow", "Not what we were promised"),
           ("Fine overall", "OK, delivery could be faster"),
           ("Great service", "Very happy with the product", "Quick and friendly help")),
    "fa": (("اخیراً مشکلات زیاد بوده", "پشتیبانی کند بود", "آن چیزی نبود که قول داده بودند"),
           ("در کل خوب بود", "خوب است، ارسال می‌توانست سریع‌تر باشد"),
           ("خدمات عالی", "از محصول بسیار راضی هستیم", "کمک سریع و دوستانه")),
    "lt": (("Pastaruoju metu per daug problemų", "Pagalba buvo lėta", "Ne tai, kas žadėta"),
           ("Apskritai gerai", "Gerai, bet pristatymas galėtų būti greitesnis"),
           ("Puikus aptarnavimas", "Labai patenkinti produktu", "Greita ir maloni pagalba")),
}


def load(db: Database, actor, size: str, seed: int | None, language: str,
         now: datetime | None = None) -> dict:
    """Adds the demo survey answers and complaints; returns {surveys, complaints}."""
    from crm.demo import _bulk_insert

    counts = SIZES[size]
    rng = np.random.default_rng(None if seed is None else seed + 10)
    now = (now or datetime.now()).replace(microsecond=0)
    lang = language if language in SUBJECTS else "en"
    people = db.frame("SELECT id, owner_id, created_at FROM customers WHERE deleted_at IS NULL"
                      " ORDER BY id")
    if people.empty:
        return {"surveys": 0, "complaints": 0}
    products = db.frame("SELECT id FROM products WHERE active ORDER BY id")["id"].to_numpy()
    contacts = db.frame("SELECT id, customer_id FROM contacts WHERE deleted_at IS NULL"
                        " ORDER BY customer_id, id")
    won = db.frame("SELECT d.id, d.customer_id, d.closed_on FROM deals d JOIN stages s ON"
                   " s.id = d.stage_id WHERE s.kind = 'won' AND d.deleted_at IS NULL"
                   " AND d.customer_id IS NOT NULL AND d.closed_on IS NOT NULL")
    world = _World(rng, people, products, now)
    complaints = world.complaints(counts["complaints"], lang)
    surveys = world.surveys(counts["surveys"], lang, contacts, won)
    for frame in (complaints, surveys):
        frame["created_by"] = frame["updated_by"] = actor.id or None
        frame["version"] = 1
    with db.transaction() as cur, dialect.bulk_load(cur, ("complaints", "surveys"),
                                                      len(complaints) + len(surveys)):
        _bulk_insert(cur, "complaints", complaints)
        _bulk_insert(cur, "surveys", surveys)
        for table, frame in (("complaints", complaints), ("surveys", surveys)):
            audit.record(cur, actor, table, None, "demo_load",
                         {"rows": (None, len(frame)), "size": (None, size)})
    return {"surveys": len(surveys), "complaints": len(complaints)}


class _World:
    """Customers' moods, products' quality and owners' service, shared by both tables."""

    def __init__(self, rng, people: pd.DataFrame, products: np.ndarray, now: datetime):
        self.rng, self.now = rng, now
        self.customer = people["id"].to_numpy()
        self.owner = people["owner_id"].to_numpy()
        self.mood = rng.normal(0, 1, len(self.customer))
        self.products = products
        self.quality = rng.normal(0, 0.35, len(products))
        self.bad = int(rng.integers(len(products))) if len(products) else -1  # bad batch
        owners = pd.unique(self.owner[~pd.isna(self.owner)])
        effect = dict(zip(owners, rng.normal(0, 0.25, len(owners))))
        self.owner_service = np.array([0.0 if pd.isna(o) else effect[o] for o in self.owner])
        self.today = np.datetime64(now.date())

    def _customers(self, n: int, weight: np.ndarray | None = None) -> np.ndarray:
        p = None if weight is None else weight / weight.sum()
        return self.rng.choice(len(self.customer), n, p=p)

    def _products(self, n: int, share: float, weight: np.ndarray | None = None):
        idx = np.full(n, -1)
        if not len(self.products):
            return idx
        has = self.rng.random(n) < share
        p = None if weight is None else weight / weight.sum()
        idx[has] = self.rng.choice(len(self.products), int(has.sum()), p=p)
        return idx

    def _bad_batch(self, product_idx: np.ndarray, days_ago: np.ndarray) -> np.ndarray:
        return (product_idx == self.bad) & (days_ago >= 240) & (days_ago <= 330)

    def _meta(self, n: int, day: np.ndarray, owner_of: np.ndarray) -> dict:
        seconds = self.rng.integers(8 * 3600, 18 * 3600, n).astype("timedelta64[s]")
        created = pd.Series(day.astype("datetime64[s]") + seconds)
        return {"owner_id": pd.array(self.owner[owner_of], dtype="Int64"),
                "created_at": created, "updated_at": created}

    def complaints(self, n: int, lang: str) -> pd.DataFrame:
        rng = self.rng
        who = self._customers(n, np.exp(-1.1 * self.mood))  # the unhappy complain more
        days_ago = rng.integers(0, DAYS, n)
        product = self._products(n, 0.8, np.exp(-2 * self.quality) if len(self.products)
                                 else None)
        # the bad batch: a share of complaints moves onto that product in its months
        batch = (rng.random(n) < 0.12) & (product >= 0)
        product[batch] = self.bad
        days_ago[batch] = rng.integers(240, 331, int(batch.sum()))
        category = _choice(rng, CATEGORIES, n)
        category[batch] = "product_failure"
        severity_p = np.clip(0.25 - 0.1 * self.mood[who], 0.05, 0.6)  # unhappy: more severe
        roll = rng.random(n)
        severity = np.where(roll < severity_p * 0.35, "critical",
                            np.where(roll < severity_p, "high",
                                     np.where(roll < severity_p + 0.4, "medium", "low")))
        opened = self.today - days_ago.astype("timedelta64[D]")
        median = np.vectorize(SEVERITY_DAYS.get)(severity)
        took = np.maximum(0, np.round(rng.lognormal(np.log(median), 0.8))).astype(int)
        stuck = rng.random(n) < 0.03  # some drag on for months
        closed = (took <= days_ago) & ~stuck
        rejected = closed & (rng.random(n) < 0.08)
        in_progress = ~closed & (rng.random(n) < 0.45)
        status = np.where(rejected, "rejected", np.where(closed, "resolved",
                                                         np.where(in_progress, "in_progress",
                                                                  "open")))
        resolved = opened + took.astype("timedelta64[D]")
        subject = _texts_by(rng, SUBJECTS[lang], category)
        resolution = np.array(RESOLUTIONS[lang], dtype=object)[rng.integers(0, 4, n)]
        return pd.DataFrame({
            "subject": subject, "customer_id": self.customer[who],
            "product_id": _ids(self.products, product), "category": category,
            "severity": severity, "status": status, "opened_on": pd.Series(opened),
            "resolved_on": pd.Series(np.where(closed, resolved, np.datetime64("NaT"))),
            "description": None, "resolution": np.where(closed, resolution, None),
            **self._meta(n, opened, who)})

    def surveys(self, n: int, lang: str, contacts: pd.DataFrame, won: pd.DataFrame
                ) -> pd.DataFrame:
        rng = self.rng
        position = {c: i for i, c in enumerate(self.customer)}
        who = self._customers(n)
        days_ago = rng.integers(0, DAYS, n)
        deal = np.full(n, -1, dtype=np.int64)
        if len(won):  # a third are asked after a won deal, 1-20 days after it closed
            after = np.flatnonzero(rng.random(n) < 0.33)
            pick = won.iloc[rng.integers(0, len(won), len(after))]
            known = pick["customer_id"].map(position).notna().to_numpy()
            after, pick = after[known], pick[known]
            closed = pick["closed_on"].to_numpy().astype("datetime64[D]")
            ago = (self.today - closed).astype(int) - rng.integers(1, 21, len(after))
            ok = (ago >= 0) & (ago < DAYS)
            after, pick = after[ok], pick[ok]
            who[after] = pick["customer_id"].map(position).to_numpy()
            days_ago[after] = ago[ok]
            deal[after] = pick["id"].to_numpy()
        product = self._products(n, 0.7)
        day = self.today - days_ago.astype("timedelta64[D]")
        service = self.owner_service[who]
        z = (0.9 * self.mood[who] + service + 0.35 * (1 - days_ago / DAYS)
             + np.where(product >= 0, self.quality[np.maximum(product, 0)], 0)
             - 1.6 * self._bad_batch(product, days_ago) + rng.normal(0, 0.8, n))
        nps = np.clip(np.round(7.4 + 2.1 * z), 0, 10).astype(int)
        csat = np.clip(np.round(3.7 + 0.95 * z), 1, 5).astype(int)
        kind = rng.random(n)  # 70 % both scores, 15 % NPS only, 15 % CSAT only
        nps_col = pd.array(np.where(kind < 0.85, nps, 0), dtype="Int64")
        nps_col[kind >= 0.85] = pd.NA
        csat_col = pd.array(csat, dtype="Int64")
        csat_col[(kind >= 0.70) & (kind < 0.85)] = pd.NA
        mood = np.where(z < -0.6, 0, np.where(z < 0.6, 1, 2))
        comment = _texts_by(rng, dict(enumerate(COMMENTS[lang])), mood)
        comment[rng.random(n) > 0.25] = None
        return pd.DataFrame({
            "customer_id": self.customer[who],
            "contact_id": pd.array(_contact_of(rng, self.customer[who], contacts), dtype="Int64"),
            "deal_id": _nullable(deal),
            "product_id": _ids(self.products, product), "answered_on": pd.Series(day),
            "channel": _choice(rng, CHANNELS, n), "csat": csat_col, "nps": nps_col,
            "comment": comment, **self._meta(n, day, who)})


def _texts_by(rng, texts: dict, keys: np.ndarray) -> np.ndarray:
    """A random text of texts[key] for each key."""
    out = np.empty(len(keys), dtype=object)
    for key, options in texts.items():
        rows = np.flatnonzero(keys == key)
        out[rows] = np.array(options, dtype=object)[rng.integers(0, len(options), len(rows))]
    return out


def _choice(rng, weights: dict, n: int) -> np.ndarray:
    names = list(weights)
    p = np.array([weights[k] for k in names])
    return np.array(names, dtype=object)[rng.choice(len(names), n, p=p / p.sum())]


def _ids(ids: np.ndarray, idx: np.ndarray) -> pd.array:
    out = pd.array(np.where(idx >= 0, ids[np.maximum(idx, 0)] if len(ids) else 0, 0),
                   dtype="Int64")
    out[idx < 0] = pd.NA
    return out


def _nullable(values: np.ndarray) -> pd.array:
    out = pd.array(np.maximum(values, 0), dtype="Int64")
    out[values < 0] = pd.NA
    return out


def _contact_of(rng, customer_ids: np.ndarray, contacts: pd.DataFrame) -> np.ndarray:
    """A random contact of each answer's customer for 40 % of the answers (None otherwise or
    when the customer has none)."""
    out = np.full(len(customer_ids), np.nan)
    if contacts.empty:
        return out
    cust = contacts["customer_id"].to_numpy()
    ids = contacts["id"].to_numpy()
    first = np.searchsorted(cust, customer_ids, side="left")
    last = np.searchsorted(cust, customer_ids, side="right")
    has = (last > first) & (rng.random(len(customer_ids)) < 0.4)
    pick = first[has] + (rng.random(int(has.sum())) * (last[has] - first[has])).astype(int)
    out[has] = ids[pick]
    return out

