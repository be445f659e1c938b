"""Demo data of the market audit, loaded by crm.demo.load_demo inside its transaction after the
deals: competitor profiles (from the competitor names the demo deals were lost to) and our own,
market shares over eight quarters, product units, price notes and cost prices per quarter,
observed prices of our products and the competitors' equivalents from several sources and
regions (200,000 at --size large), the feature comparison, deals naming the competition,
returns and contract cancellations, and two pricing scenarios.

Fast path (DuckDB only): rows are made with numpy and written by DataFrame inserts."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from crm import audit, market

PRICE_RECORDS = {"small": 1_500, "large": 200_000}
RETURN_SHARE = {"small": 0.6, "large": 0.08}  # of the won deals: a return or a cancellation
QUARTERS = 8

OURS = {"en": "Our company", "fa": "شرکت ما", "lt": "Mūsų įmonė"}
REGIONS = {"en": ("North America", "Europe", "Middle East", "Online"),
           "fa": ("تهران", "خراسان", "فارس", "آذربایجان", "آنلاین"),
           "lt": ("Vilnius", "Kaunas", "Klaipėda", "Internetu")}
COUNTRIES = {"en": ("United States", "United Kingdom", "Germany", "Canada"),
             "fa": ("ایران", "ترکیه", "امارات متحده عربی"),
             "lt": ("Lietuva", "Latvija", "Lenkija")}
PEOPLE = {"en": ("Laura Chen — CEO\nMark Olsen — Head of sales",
                 "Priya Patel — Managing director\nTom Becker — CTO",
                 "Anna Novak — Founder\nJames Reed — Sales director"),
          "fa": ("سارا احمدی — مدیرعامل\nعلی رضایی — مدیر فروش",
                 "مریم کریمی — مدیر بازاریابی\nحسین موسوی — مدیر فنی"),
          "lt": ("Rasa Petrauskienė — generalinė direktorė\nTomas Jonaitis — pardavimų vadovas",
                 "Lina Kazlauskė — įkūrėja\nMarius Stankus — technikos vadovas")}
STRATEGIES = {"en": ("Low prices and volume through resellers",
                     "Premium brand, large enterprises only",
                     "Bundles hardware with long service contracts",
                     "Fast growth by acquisitions; aggressive discounts at year end"),
              "fa": ("قیمت پایین و فروش انبوه از طریق نمایندگان",
                     "برند گران‌قیمت، فقط سازمان‌های بزرگ",
                     "فروش بسته‌ای سخت‌افزار با قرارداد پشتیبانی بلندمدت"),
              "lt": ("Žemos kainos ir didelės apimtys per platintojus",
                     "Aukščiausios klasės prekės ženklas, tik didelės įmonės",
                     "Įranga kartu su ilgomis priežiūros sutartimis")}
STRENGTHS = {"en": ("Low prices", "Well-known brand", "Large partner network", "Strong support",
                    "Modern cloud product", "Local presence", "Fast delivery"),
             "fa": ("قیمت پایین", "برند شناخته‌شده", "شبکه نمایندگی گسترده", "پشتیبانی قوی",
                    "محصول ابری مدرن", "حضور محلی", "تحویل سریع"),
             "lt": ("Žemos kainos", "Žinomas prekės ženklas", "Didelis partnerių tinklas",
                    "Stipri pagalba", "Modernus debesijos produktas", "Vietinis atstovavimas",
                    "Greitas pristatymas")}
WEAKNESSES = {"en": ("Slow support", "Expensive", "Old user interface", "Few integrations",
                     "No local office", "Long implementation"),
              "fa": ("پشتیبانی کند", "گران", "رابط کاربری قدیمی", "یکپارچه‌سازی محدود",
                     "نبود دفتر محلی", "پیاده‌سازی طولانی"),
              "lt": ("Lėta pagalba", "Brangu", "Pasenusi sąsaja", "Mažai integracijų",
                     "Nėra vietinio biuro", "Ilgas diegimas")}
FEATURES = {"en": ("Cloud hosting", "Mobile app", "Persian calendar", "Open API",
                   "24/7 support", "On-site training"),
            "fa": ("میزبانی ابری", "اپلیکیشن موبایل", "تقویم شمسی", "API باز",
                   "پشتیبانی شبانه‌روزی", "آموزش حضوری"),
            "lt": ("Debesijos talpinimas", "Mobilioji programėlė", "Persiškas kalendorius",
                   "Atvira API", "Pagalba visą parą", "Mokymai vietoje")}
ANSWERS = {"en": ("yes", "no", "partial", "Add-on"), "fa": ("yes", "no", "partial", "افزونه"),
           "lt": ("yes", "no", "partial", "Priedas")}
PRICE_NOTES = {"en": "List price; 10 % off from 10 units, 15 % for annual prepayment.",
               "fa": "قیمت فهرست؛ ۱۰٪ تخفیف از ۱۰ عدد، ۱۵٪ برای پیش‌پرداخت سالانه.",
               "lt": "Kainoraščio kaina; 10 % nuolaida nuo 10 vnt., 15 % už metinį išankstinį "
                     "mokėjimą."}
UNITS = {"ERP-LIC": "licence", "CRM-SUB": "subscription_year", "SVC-DAY": "day",
         "TRN-WS": "project", "SUP-PRM": "subscription_year", "MIG-PKG": "project",
         "INT-CON": "licence", "HW-POS": "piece", "HW-SCN": "piece", "HW-SRV": "piece",
         "SVC-HR": "hour", "HST-MO": "subscription_month"}
SOURCE_WEIGHTS = {"price_list": 0.35, "website": 0.25, "inquiry": 0.2, "customer_report": 0.15,
                  "other": 0.05}
RETURN_REASONS = {"return": {"defective": 0.4, "wrong_item": 0.25, "not_needed": 0.25,
                             "other": 0.1},
                  "cancellation": {"price": 0.3, "service": 0.25, "competitor": 0.2,
                                   "contract_ended": 0.15, "other": 0.1}}


def load(cur, actor, rng: np.random.Generator, now: datetime, size: str, language: str,
         owner_ids: list[int]) -> dict:
    """Adds the market-audit demo records; returns how many of each."""
    before = cur.execute("SELECT count(*) FROM competitors").fetchone()[0]
    market.link_lost_competitors(cur, actor, audit_each=False)
    today = now.date()
    _profiles(cur, rng, now, language)
    made = {"competitors": cur.execute("SELECT count(*) FROM competitors").fetchone()[0]
            - before}
    rivals = [r[0] for r in cur.execute(
        "SELECT id FROM competitors WHERE deleted_at IS NULL AND NOT is_us ORDER BY id"
    ).fetchall()]
    us_row = cur.execute("SELECT id FROM competitors WHERE is_us AND deleted_at IS NULL"
                         " LIMIT 1").fetchone()
    products = cur.execute(
        "SELECT id, code, unit_price, currency FROM products WHERE deleted_at IS NULL AND active"
        " AND unit_price > 0 ORDER BY id").fetchall()
    if not rivals or not products:
        return _audited(cur, actor, made)
    quarters = [_quarter(today, back) for back in range(QUARTERS - 1, -1, -1)]
    made["competitor_shares"] = _shares(cur, rng, now, quarters, rivals,
                                        us_row[0] if us_row else None)
    made["product_costs"] = _costs(cur, rng, now, quarters, products, language)
    made["price_records"] = _prices(cur, rng, now, PRICE_RECORDS[size], language, rivals,
                                    products, owner_ids, quarters[0])
    made["feature_values"] = _features(cur, rng, now, language, products)
    _named_competition(cur, rng, rivals)
    made["customer_returns"] = _returns(cur, rng, now, today, RETURN_SHARE[size])
    made["pricing_scenarios"] = 2
    for name, kind, inputs in (
            ("Launch 2026", "break_even", {"fixed": 60000, "variable": 35, "price": 59}),
            ("New ERP module", "pricing_path", {
                "periods": 8, "reference_price": 1200, "base_units": 40, "elasticity": 1.4,
                "growth": 6, "unit_cost": 500, "skim_start": 1900, "skim_end": 1250,
                "penetration_start": 850, "penetration_end": 1100})):
        cur.execute("INSERT INTO pricing_scenarios (name, kind, inputs, owner_id, created_at,"
                    " updated_at, created_by, updated_by) VALUES ($n, $k, $i, $o, $t, $t, $o, $o)",
                    {"n": name, "k": kind, "i": json.dumps(inputs, sort_keys=True),
                     "o": owner_ids[0], "t": now})
    return _audited(cur, actor, made)


def _audited(cur, actor, made: dict) -> dict:
    """One demo_load audit entry per table that got rows."""
    for table, count in made.items():
        if count:
            audit.record(cur, actor, table, None, "demo_load", {"rows": (None, count)})
    return made


def _quarter(day: date, back: int) -> date:
    month = (day.year * 12 + (day.month - 1) // 3 * 3) - 3 * back
    return date(month // 12, month % 12 + 1, 1)


def _profiles(cur, rng, now: datetime, language: str) -> None:
    """Fills the profiles of competitors the demo made (no strategy yet) and adds ours."""
    pick = lambda texts: texts[int(rng.integers(len(texts)))]  # noqa: E731
    some = lambda texts, k: "\n".join(  # noqa: E731
        rng.choice(texts, size=min(k, len(texts)), replace=False).tolist())
    from crm.demo import COMPETITORS

    have = {r[0].strip().lower() for r in cur.execute(
        "SELECT name FROM competitors WHERE deleted_at IS NULL").fetchall()}
    for name in COMPETITORS[language]:
        if name.lower() not in have:
            cur.execute("INSERT INTO competitors (name, created_at, updated_at) VALUES"
                        " ($n, $t, $t)", {"n": name, "t": now})
    bare = [r[0] for r in cur.execute("SELECT id FROM competitors WHERE strategy IS NULL"
                                      " AND NOT is_us AND deleted_at IS NULL").fetchall()]
    for cid in bare:
        cur.execute(
            "UPDATE competitors SET website = $w, country = $c, key_people = $p, strategy = $s,"
            " strengths = $st, weaknesses = $wk, threat_level = $t WHERE id = $id",
            {"w": f"https://www.competitor{cid}.example", "c": pick(COUNTRIES[language]),
             "p": pick(PEOPLE[language]), "s": pick(STRATEGIES[language]),
             "st": some(STRENGTHS[language], int(rng.integers(2, 5))),
             "wk": some(WEAKNESSES[language], int(rng.integers(1, 4))),
             "t": ("low", "medium", "high")[int(rng.integers(3))], "id": cid})
    if cur.execute("SELECT 1 FROM competitors WHERE is_us AND deleted_at IS NULL").fetchone():
        return
    cur.execute(
        "INSERT INTO competitors (name, is_us, country, strengths, weaknesses, strategy,"
        " created_at, updated_at) VALUES ($n, TRUE, $c, $st, $wk, $s, $t, $t)",
        {"n": OURS[language], "c": COUNTRIES[language][0],
         "st": "\n".join(STRENGTHS[language][3:7]), "wk": "\n".join(WEAKNESSES[language][1:3]),
         "s": STRATEGIES[language][1], "t": now})


def _shares(cur, rng, now, quarters, rivals, us_id) -> int:
    from crm.demo import _bulk_insert

    companies = ([us_id] if us_id else []) + rivals
    weight = rng.dirichlet(np.full(len(companies), 2.0))
    if us_id:
        weight[0] += 0.1  # we grow a little every quarter, the others shrink or grow
    rows = []
    for quarter in quarters:
        weight = weight * rng.lognormal(0, 0.08, len(companies))
        if us_id:
            weight[0] *= 1.04
        rest = rng.uniform(8, 14)  # everyone else
        shares = weight / weight.sum() * (100 - rest)
        for cid, share in zip(companies, shares):
            rows.append({"competitor_id": cid, "period_start": quarter,
                         "share": round(float(share), 1), "source": "Industry report",
                         "created_at": now, "updated_at": now})
    _bulk_insert(cur, "competitor_shares", pd.DataFrame(rows))
    return len(rows)


def _costs(cur, rng, now, quarters, products, language) -> int:
    from crm.demo import _bulk_insert

    rows = []
    for pid, code, price, currency in products:
        cur.execute("UPDATE products SET unit = coalesce(unit, $u), price_notes ="
                    " coalesce(price_notes, $n), category = coalesce(category, $c)"
                    " WHERE id = $id", {"u": UNITS.get(code, "piece"),
                                        "n": PRICE_NOTES[language],
                                        "c": "Hardware" if code.startswith("HW") else
                                        "Services" if code.startswith("SVC") else "Software",
                                        "id": pid})
        share = rng.uniform(0.45, 0.7)
        for quarter in quarters:
            share = float(np.clip(share + rng.normal(0.01, 0.02), 0.3, 0.9))
            rows.append({"product_id": pid, "period_start": quarter,
                         "unit_cost": round(float(price) * share, 2), "currency": currency,
                         "created_at": now, "updated_at": now})
    _bulk_insert(cur, "product_costs", pd.DataFrame(rows))
    return len(rows)


def add_price_records(cur, n: int, seed: int = 7, language: str = "en") -> int:
    """n more demo price records over the last eight quarters, for the products, competitors
    and users there are (the benchmark's 200,000 on a small demo)."""
    rng = np.random.default_rng(seed)
    now = datetime.now().replace(microsecond=0)
    rivals = [r[0] for r in cur.execute("SELECT id FROM competitors WHERE deleted_at IS NULL"
                                        " AND NOT is_us ORDER BY id").fetchall()]
    products = cur.execute("SELECT id, code, unit_price, currency FROM products WHERE"
                           " deleted_at IS NULL AND active AND unit_price > 0 ORDER BY id"
                           ).fetchall()
    owners = [r[0] for r in cur.execute("SELECT id FROM users WHERE active ORDER BY id")
              .fetchall()]
    return _prices(cur, rng, now, n, language, rivals, products, owners,
                   _quarter(now.date(), QUARTERS - 1))


def _prices(cur, rng, now, n, language, rivals, products, owner_ids, first: date) -> int:
    """Observed prices: each competitor sells equivalents of some of our products at its own
    price level; a fifth of the observations are of our own price (at resellers)."""
    from crm.demo import _bulk_insert

    names = dict(cur.execute("SELECT id, name FROM competitors").fetchall())
    pairs = []  # (rival, product index, their product name, price level)
    for rival in rivals:
        level = rng.uniform(0.75, 1.3)
        for k in rng.choice(len(products), size=min(4, len(products)), replace=False):
            short = names[rival].split()[0]
            pairs.append((rival, int(k), f"{short} {products[int(k)][1]}-{'XYZ'[int(k) % 3]}",
                          level * rng.uniform(0.9, 1.1)))
    ours = rng.random(n) < 0.2
    pair = rng.integers(0, len(pairs), n)
    own_product = rng.integers(0, len(products), n)
    product_index = np.where(ours, own_product, np.array([p[1] for p in pairs])[pair])
    list_price = np.array([float(p[2]) for p in products])[product_index]
    level = np.where(ours, rng.uniform(0.92, 1.0, n), np.array([p[3] for p in pairs])[pair])
    days = (now.date() - first).days
    age = rng.integers(0, max(days, 1), n)
    trend = 1 + 0.08 * (1 - age / max(days, 1))  # prices creep up over time
    price = np.round(list_price * level * trend * rng.lognormal(0, 0.07, n), 2)
    keys = list(SOURCE_WEIGHTS)
    weights = np.array(list(SOURCE_WEIGHTS.values()))
    regions = REGIONS[language]
    observed = np.datetime64(now.date(), "D") - age.astype("timedelta64[D]")
    frame = pd.DataFrame({
        "product_id": np.array([p[0] for p in products], dtype=np.int64)[product_index],
        "competitor_id": pd.array(np.where(ours, 0, np.array([p[0] for p in pairs])[pair]),
                                  dtype="Int64"),
        "competitor_product": np.where(ours, None, np.array([p[2] for p in pairs],
                                                            dtype=object)[pair]),
        "price": price,
        "currency": np.array([p[3] for p in products], dtype=object)[product_index],
        "observed_on": observed,
        "source": np.array(keys, dtype=object)[rng.choice(len(keys), n, p=weights / weights.sum())],
        "region": np.array(regions, dtype=object)[rng.integers(0, len(regions), n)],
        "owner_id": np.array(owner_ids, dtype=np.int64)[rng.integers(0, len(owner_ids), n)],
        "created_at": now, "updated_at": now})
    frame.loc[ours, "competitor_id"] = pd.NA
    _bulk_insert(cur, "price_records", frame)
    return n


def _features(cur, rng, now, language, products) -> int:
    from crm.demo import _bulk_insert

    pairs = cur.execute("SELECT DISTINCT competitor_id, competitor_product FROM price_records"
                        " WHERE competitor_id IS NOT NULL ORDER BY 1, 2").fetchall()
    answers = ANSWERS[language]
    rows = []
    for feature in FEATURES[language]:
        for pid, *_rest in products:
            rows.append({"feature": feature, "product_id": pid, "competitor_id": None,
                         "competitor_product": None,
                         "value": answers[int(rng.choice(4, p=[0.7, 0.1, 0.15, 0.05]))]})
        for cid, name in pairs:
            rows.append({"feature": feature, "product_id": None, "competitor_id": cid,
                         "competitor_product": name,
                         "value": answers[int(rng.choice(4, p=[0.45, 0.3, 0.2, 0.05]))]})
    frame = pd.DataFrame(rows)
    frame["product_id"] = frame["product_id"].astype("Int64")
    frame["competitor_id"] = frame["competitor_id"].astype("Int64")
    frame["created_at"], frame["updated_at"] = now, now
    _bulk_insert(cur, "feature_values", frame)
    return len(frame)


def _named_competition(cur, rng, rivals) -> None:
    """Deals name the competition: every deal lost to a competitor, and about a third of the
    others (won, lost or open) a competitor they faced."""
    lost = np.asarray(cur.execute(
        "SELECT d.id FROM deals d JOIN stages s ON s.id = d.stage_id WHERE s.kind = 'lost'"
        " AND d.lost_to_competitor_id IS NULL AND d.lost_reason IN ('competitor', 'price')"
        " ORDER BY d.id").fetchnumpy()["id"], dtype=np.int64)
    lost = lost[rng.random(len(lost)) < 0.7]
    if len(lost):
        names = dict(cur.execute("SELECT id, name FROM competitors").fetchall())
        rival = np.array(rivals, dtype=np.int64)[rng.integers(0, len(rivals), len(lost))]
        frame = pd.DataFrame({"id": lost, "c": rival,
                              "n": np.array([names[int(r)] for r in rival], dtype=object)})
        cur.register("demo_lost_to", frame)
        try:
            cur.execute("UPDATE deals SET lost_to_competitor_id = f.c, lost_to_competitor = f.n"
                        " FROM demo_lost_to f WHERE deals.id = f.id")
        finally:
            cur.unregister("demo_lost_to")
    cur.execute("UPDATE deals SET competitor_id = lost_to_competitor_id"
                " WHERE lost_to_competitor_id IS NOT NULL AND competitor_id IS NULL")
    ids = np.asarray(cur.execute("SELECT id FROM deals WHERE competitor_id IS NULL"
                                 " AND deleted_at IS NULL ORDER BY id").fetchnumpy()["id"],
                     dtype=np.int64)
    chosen = ids[rng.random(len(ids)) < 0.33]
    if not len(chosen):
        return
    frame = pd.DataFrame({"id": chosen, "c": np.array(rivals, dtype=np.int64)[
        rng.integers(0, len(rivals), len(chosen))]})
    cur.register("demo_named_competition", frame)
    try:
        cur.execute("UPDATE deals SET competitor_id = f.c FROM demo_named_competition f"
                    " WHERE deals.id = f.id")
    finally:
        cur.unregister("demo_named_competition")


def _returns(cur, rng, now, today: date, rate: float) -> int:
    from crm.demo import _bulk_insert

    won = cur.execute(
        "SELECT d.customer_id, d.amount, d.currency, d.closed_on, d.owner_id FROM deals d"
        " JOIN stages s ON s.id = d.stage_id WHERE s.kind = 'won' AND d.deleted_at IS NULL"
        " AND d.customer_id IS NOT NULL AND d.closed_on IS NOT NULL ORDER BY d.id").fetchall()
    picked = [w for w in won if rng.random() < rate]
    rows = []
    for customer, amount, currency, closed, owner in picked:
        kind = "cancellation" if rng.random() < 0.35 else "return"
        reasons = RETURN_REASONS[kind]
        reason = list(reasons)[int(rng.choice(len(reasons), p=list(reasons.values())))]
        when = min(today, closed + timedelta(days=int(rng.integers(3, 120))))
        part = rng.uniform(0.05, 0.4) if kind == "return" else rng.uniform(0.3, 1.0)
        rows.append({"kind": kind, "customer_id": customer, "occurred_on": when,
                     "amount": round(float(amount or 0) * part, 2), "currency": currency,
                     "reason": reason, "owner_id": owner, "created_at": now, "updated_at": now})
    if rows:
        _bulk_insert(cur, "customer_returns", pd.DataFrame(rows))
    return len(rows)
