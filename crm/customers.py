"""Customers (individuals or legal entities) and their contacts."""
from __future__ import annotations

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
    Field("first_purchase_date", "First purchase", "date", section="Commercial",
          help="Empty until the customer buys for the first time"),
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
    table="customers", label="Customer", plural="Customers", fields=FIELDS,
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
    table="contacts", label="Contact", plural="Contacts", fields=CONTACT_FIELDS,
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


def base_counts(db: Database, user: User) -> dict:
    """Customer base = everyone who ever bought; installed base = those active now."""
    where, params = records.visible(CUSTOMERS, user)
    row = db.one(
        f"SELECT count(*) FILTER (WHERE t.first_purchase_date IS NOT NULL) AS customer_base,"
        f" count(*) FILTER (WHERE t.first_purchase_date IS NOT NULL AND t.status = 'active')"
        f" AS installed_base, count(*) AS total FROM customers t WHERE {where}",
        params,
    )
    return row


def customer_choices(db: Database, user: User, limit: int = 2000,
                     include: int | None = None) -> dict[int, str]:
    """{id: name} of customers the user may see, for pickers; include keeps a given one."""
    where, params = records.visible(CUSTOMERS, user)
    params.update(n=limit, include=include)
    found = db.query(
        f"SELECT t.id, t.name, t.city FROM customers t WHERE ({where}) OR t.id = $include"
        " ORDER BY t.name LIMIT $n", params)
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
