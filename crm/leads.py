"""Leads: people or companies that may become customers."""
from __future__ import annotations

from crm import records
from crm.auth import User
from crm.db import Database
from crm.fields import Field, check_dates_not_future

STATUSES = ("new", "contacted", "qualified", "unqualified", "converted")
SOURCES = ("website", "referral", "cold_call", "email_campaign", "social_media", "event",
           "partner", "advertisement", "other")

FIELDS = [
    Field("first_name", "First name", searchable=True, in_list=True, section="Person"),
    Field("last_name", "Last name", required=True, searchable=True, in_list=True,
          section="Person"),
    Field("company", "Company", searchable=True, in_list=True, section="Person"),
    Field("title", "Job title", section="Person"),
    Field("email", "Email", "email", searchable=True, in_list=True, section="Person"),
    Field("phone", "Phone", "phone", section="Person"),
    Field("source", "Source", "choice", choices=SOURCES, filter=True, in_list=True,
          section="Qualification"),
    Field("status", "Status", "choice", required=True, choices=STATUSES, default="new",
          filter=True, in_list=True, section="Qualification"),
    Field("owner_id", "Owner", "user", filter=True, section="Qualification"),
    Field("estimated_value", "Estimated value", "money", min_value=0, max_value=1e12,
          in_list=True, section="Qualification"),
    Field("notes", "Notes", "longtext", section="Qualification"),
    Field("consent", "Consent given", "bool", default=False, filter=True, section="Consent",
          help="Did the person agree that we keep and use their data?"),
    Field("consent_date", "Consent date", "date", section="Consent"),
    Field("consent_purpose", "Consent purpose", section="Consent",
          help="What they agreed to, e.g. 'newsletter and sales calls'"),
]


def _check(values: dict) -> dict[str, str]:
    errors = check_dates_not_future(values, ["consent_date"], FIELDS)
    if values.get("consent_date") and not values.get("consent"):
        errors["consent_date"] = "A consent date needs 'Consent given' ticked"
    return errors


LEADS = records.Entity(
    table="leads", label="Lead", plural="Leads", code_fields=FIELDS,
    title_sql="trim(coalesce(t.first_name, '') || ' ' || t.last_name)", check=_check,
)


def create_lead(db: Database, user: User, values: dict) -> int:
    return records.create(db, user, LEADS, values)


def update_lead(db: Database, user: User, lead_id: int, values: dict, expected_version: int,
                base: dict | None = None) -> dict:
    return records.update(db, user, LEADS, lead_id, values, expected_version, base)


def delete_lead(db: Database, user: User, lead_id: int) -> None:
    records.delete(db, user, LEADS, lead_id)


def restore_lead(db: Database, user: User, lead_id: int) -> None:
    records.restore(db, user, LEADS, lead_id)


def status_counts(db: Database, user: User) -> list[dict]:
    where, params = records.visible(LEADS, user)
    return db.query(
        f"SELECT t.status, count(*) AS n FROM leads t WHERE {where} GROUP BY t.status", params
    )


def new_this_month(db: Database, user: User, today) -> int:
    return records.count(db, user, LEADS, "t.created_at >= $month_start",
                         {"month_start": today.replace(day=1)})


FREE_MAIL = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "aol.com",
             "proton.me", "protonmail.com", "mail.com", "gmx.com", "yandex.com", "live.com")


def related(db: Database, user: User, lead: dict, limit: int = 10) -> dict[str, list[dict]]:
    """Other leads from the same company or email domain, and customers of the same name."""
    company = (lead.get("company") or "").strip().lower()
    email = lead.get("email") or ""
    domain = email.split("@")[-1] if "@" in email else ""
    if domain in FREE_MAIL:
        domain = ""
    out: dict[str, list[dict]] = {"leads": [], "customers": []}
    if not company and not domain:
        return out
    where, params = records.visible(LEADS, user)
    params.update(id=lead["id"], company=company or None,
                  domain=("%@" + domain) if domain else None, n=limit)
    out["leads"] = db.query(
        f"SELECT t.id, trim(coalesce(t.first_name, '') || ' ' || t.last_name) AS name,"
        f" t.company, t.status FROM leads t WHERE {where} AND t.id <> $id"
        f" AND (lower(t.company) = $company OR t.email LIKE $domain)"
        f" ORDER BY t.created_at DESC LIMIT $n", params,
    )
    if company:
        from crm.customers import CUSTOMERS

        where, params = records.visible(CUSTOMERS, user)
        params.update(company=company, n=limit)
        out["customers"] = db.query(
            f"SELECT t.id, t.name, t.city, t.status FROM customers t"
            f" WHERE {where} AND lower(t.name) = $company ORDER BY t.name LIMIT $n", params,
        )
    return out
