"""Customers (individuals or legal entities) and their contacts."""
from __future__ import annotations

from datetime import date

from crm import records
from crm.auth import User
from crm.db import Database
from crm.fields import Field, check_dates_not_future

KINDS = ("company", "individual")
RESIDENCY = ("domestic", "foreign")
STATUSES = ("active", "inactive")
SEGMENTS = ("enterprise", "mid_market", "small_business", "consumer", "vip", "government")
PURCHASING_POWER = ("low", "medium", "high", "very_high")
INDUSTRIES = ("manufacturing", "retail", "technology", "finance", "healthcare", "education",
              "construction", "agriculture", "transport", "hospitality", "energy",
              "public_sector", "other")

FIELDS = [
    Field("name", "Name", required=True, searchable=True, in_list=True, section="Identity"),
    Field("kind", "Kind", "choice", required=True, choices=KINDS, default="company",
          filter=True, in_list=True, section="Identity",
          help="A company (legal entity) or an individual (natural person)"),
    Field("residency", "Domestic or foreign", "choice", required=True, choices=RESIDENCY,
          default="domestic", filter=True, section="Identity"),
    Field("industry", "Industry", "choice", choices=INDUSTRIES, filter=True, in_list=True,
          section="Identity"),
    Field("segment", "Segment", "choice", choices=SEGMENTS, filter=True, in_list=True,
          section="Identity"),
    Field("status", "Status", "choice", required=True, choices=STATUSES, default="active",
          filter=True, in_list=True, section="Identity"),
    Field("owner_id", "Owner", "user", filter=True, section="Identity"),
    Field("email", "Email", "email", searchable=True, in_list=True, section="Contact data"),
    Field("phone", "Phone", "phone", section="Contact data"),
    Field("mobile", "Mobile", "phone", section="Contact data"),
    Field("address", "Address", section="Contact data"),
    Field("city", "City", searchable=True, filter=False, in_list=True, section="Contact data"),
    Field("country", "Country", searchable=True, in_list=True, section="Contact data"),
    Field("credit_limit", "Credit limit", "money", min_value=0, max_value=1e12,
          section="Commercial"),
    Field("purchasing_power", "Purchasing power", "choice", choices=PURCHASING_POWER,
          filter=True, section="Commercial"),
    Field("first_purchase_date", "First purchase before the CRM", "date", section="Commercial",
          help="Only for purchases made before this CRM was used: winning a deal makes a "
               "customer a buyer by itself"),
    Field("birthday", "Birthday", "date", section="Profile", only_when=("kind", "individual"),
          help="Individuals only"),
    Field("profession", "Profession", section="Profile"),
    Field("preferences", "Preferences", "longtext", section="Profile"),
    Field("notes", "Notes", "longtext", section="Profile"),
    Field("consent", "Consent given", "bool", default=False, filter=True, section="Consent"),
    Field("consent_date", "Consent date", "date", section="Consent"),
    Field("consent_purpose", "Consent purpose", section="Consent"),
]


def _check(values: dict) -> dict[str, str]:
    errors = check_dates_not_future(values, ["birthday", "consent_date", "first_purchase_date"],
                                    FIELDS)
    if values.get("consent_date") and not values.get("consent"):
        errors["consent_date"] = "A consent date needs 'Consent given' ticked"
    return errors


CUSTOMERS = records.Entity(
    table="customers", label="Customer", plural="Customers", code_fields=FIELDS,
    title_sql="t.name", check=_check,
)

CONTACT_FIELDS = [
    Field("customer_id", "Customer", "ref", ref="customers", required=True, create_only=True),
    Field("first_name", "First name", searchable=True, in_list=True),
    Field("last_name", "Last name", required=True, searchable=True, in_list=True),
    Field("title", "Job title", in_list=True),
    Field("email", "Email", "email", searchable=True, in_list=True),
    Field("phone", "Phone", "phone", in_list=True),
    Field("is_primary", "Primary contact", "bool", default=False, in_list=True),
    Field("owner_id", "Owner", "user"),
    Field("notes", "Notes", "longtext"),
    Field("consent", "Consent given", "bool", default=False),
    Field("consent_date", "Consent date", "date"),
    Field("consent_purpose", "Consent purpose"),
]

CONTACTS = records.Entity(
    table="contacts", label="Contact", plural="Contacts", code_fields=CONTACT_FIELDS,
    title_sql="trim(coalesce(t.first_name, '') || ' ' || t.last_name)",
    default_sort=("last_name", "asc"), parent="customer_id",
)


def create_customer(db: Database, user: User, values: dict) -> int:
    return records.create(db, user, CUSTOMERS, values)


def update_customer(db: Database, user: User, customer_id: int, values: dict,
                    expected_version: int, base: dict | None = None) -> dict:
    return records.update(db, user, CUSTOMERS, customer_id, values, expected_version, base)


def delete_customer(db: Database, user: User, customer_id: int) -> None:
    records.delete(db, user, CUSTOMERS, customer_id)


def restore_customer(db: Database, user: User, customer_id: int) -> None:
    records.restore(db, user, CUSTOMERS, customer_id)


def add_contact(db: Database, user: User, customer_id: int, values: dict) -> int:
    return records.create(db, user, CONTACTS, {**values, "customer_id": customer_id})


def contacts_of(db: Database, user: User, customer_id: int) -> list[dict]:
    records.get(db, user, CUSTOMERS, customer_id)  # may the user see the customer?
    return db.query(
        "SELECT id, first_name, last_name, title, email, phone, is_primary, version FROM contacts"
        " WHERE customer_id = $c AND deleted_at IS NULL ORDER BY is_primary DESC, last_name",
        {"c": customer_id},
    )


# First and last won deal per customer: buying is winning a deal (or, before the CRM, the
# typed first purchase date).
_WON = ("SELECT d.customer_id, min(d.closed_on) AS first_won, max(d.closed_on) AS last_won"
        " FROM deals d JOIN stages s ON s.id = d.stage_id"
        " WHERE s.kind = 'won' AND d.deleted_at IS NULL AND d.customer_id IS NOT NULL"
        " GROUP BY d.customer_id")


def base_counts(db: Database, user: User, today: date | None = None) -> dict:
    """Customer base = everyone who ever bought (a won deal, or a first purchase typed in for
    the time before the CRM); installed base = those of them in use now, by the rule chosen
    in the settings (crm.settings.installed_base_rule_text says it in words)."""
    from crm import settings

    chosen = settings.get_all(db)
    where, params = records.visible(CUSTOMERS, user)
    since = _months_before(today or date.today(), chosen["installed_base_months"])
    bought = "(t.first_purchase_date IS NOT NULL OR w.customer_id IS NOT NULL)"
    rule = {"active_status": "t.status = 'active'",
            "recent_purchase": "w.last_won >= $since",
            "active_and_recent": "t.status = 'active' AND w.last_won >= $since",
            }[chosen["installed_base_rule"]]
    row = db.one(
        f"SELECT count(*) FILTER (WHERE {bought}) AS customer_base,"
        f" count(*) FILTER (WHERE {bought} AND {rule}) AS installed_base,"
        f" count(*) AS total FROM customers t LEFT JOIN ({_WON}) w ON w.customer_id = t.id"
        f" WHERE {where}", {**params, **({"since": since} if "$since" in rule else {})})
    return {**row, "installed_base_rule": settings.installed_base_rule_text(chosen)}


def purchases(db: Database, user: User, customer_id: int) -> dict:
    """{first_purchase, last_purchase, won_deals} of one customer: the first purchase is the
    earlier of the typed date and the first won deal."""
    customer = records.get(db, user, CUSTOMERS, customer_id)
    row = db.one(f"SELECT w.first_won, w.last_won, (SELECT count(*) FROM deals d JOIN stages s"
                 f" ON s.id = d.stage_id WHERE s.kind = 'won' AND d.deleted_at IS NULL"
                 f" AND d.customer_id = $c) AS won_deals FROM ({_WON}) w"
                 f" WHERE w.customer_id = $c", {"c": customer_id}) or {}
    typed = customer["first_purchase_date"]
    firsts = [d for d in (typed, row.get("first_won")) if d is not None]
    return {"first_purchase": min(firsts) if firsts else None,
            "last_purchase": row.get("last_won") or typed,
            "won_deals": row.get("won_deals") or 0}


def _months_before(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    last_day = [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30,
                31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    return date(year, month, min(day.day, last_day))


def customer_choices(db: Database, user: User, limit: int = 2000,
                     include: int | None = None) -> dict[int, str]:
    """{id: name} of customers the user may see, for pickers; include keeps a given one (the
    current value of a form) among them, when the user may see it too."""
    where, params = records.visible(CUSTOMERS, user)
    params.update(n=limit, include=include)
    found = db.query(
        f"SELECT t.id, t.name, t.city FROM customers t WHERE {where}"
        " ORDER BY t.id = $include DESC, t.name LIMIT $n", params)
    return {r["id"]: r["name"] + (f" · {r['city']}" if r["city"] else "") for r in found}


def contact_choices(db: Database, user: User, customer_id: int | None = None,
                    limit: int = 2000) -> dict[int, str]:
    """{id: "person · company"} for pickers, only of customers the user may see."""
    where, params = records.visible(CUSTOMERS, user)
    params.update(n=limit, c=customer_id)
    found = db.query(
        "SELECT p.id, trim(coalesce(p.first_name, '') || ' ' || p.last_name) AS person,"
        f" t.name AS company FROM contacts p JOIN customers t ON t.id = p.customer_id"
        f" WHERE {where} AND p.deleted_at IS NULL AND ($c IS NULL OR p.customer_id = $c)"
        " ORDER BY t.name, person LIMIT $n", params)
    return {r["id"]: f"{r['person']} · {r['company']}" for r in found}
