"""Lead conversion: a qualified lead becomes a customer, a contact and optionally a deal, in
one transaction, after likely duplicates have been offered to link to instead."""
from __future__ import annotations

from datetime import datetime

from crm import audit, deals, dialect, records, search
from crm.auth import User, require
from crm.customers import CONTACTS, CUSTOMERS
from crm.db import Database, retried
from crm.fields import ValidationError
from crm.i18n import N_, gettext as _
from crm.leads import FREE_MAIL, LEADS


def _domain(email: str | None) -> str:
    return email.split("@")[-1].lower() if email and "@" in email else ""


def duplicate_candidates(db: Database, user: User, lead: dict, limit: int = 10) -> list[dict]:
    """Customers that may already be this lead: same email, same company email domain, or a
    similar name (company or person). Best matches first, each with the reason."""
    email = (lead.get("email") or "").lower()
    domain = _domain(email)
    # names compared in search's normal form: علي and علی are one name
    person = search.normalise(" ".join(p for p in (lead.get("first_name"),
                                                   lead.get("last_name")) if p)).lower()
    company = search.normalise((lead.get("company") or "").strip()).lower()
    where, params = records.visible(CUSTOMERS, user)
    params.update(email=email or None, person=person or None, company=company or None,
                  domain=("%@" + domain) if domain and domain not in FREE_MAIL else None,
                  n=limit, **search.params())
    name = f"lower({search.column('t.name')})"
    # jaro_winkler_similarity is DuckDB's; migrations/000_functions.postgresql.sql gives PostgreSQL
    # the same function
    found = db.query(
        "SELECT id, name, kind, email, city, score, reason FROM ("
        " SELECT t.id, t.name, t.kind, t.email, t.city,"
        "  CASE WHEN lower(t.email) = $email THEN 1.0"
        "   WHEN t.kind = 'company' AND lower(t.email) LIKE $domain THEN 0.9"
        f"   ELSE greatest(coalesce(jaro_winkler_similarity({name}, $company), 0),"
        f"                 coalesce(jaro_winkler_similarity({name}, $person), 0)) END"
        "   AS score,"
        "  CASE WHEN lower(t.email) = $email THEN 'same email'"
        "   WHEN t.kind = 'company' AND lower(t.email) LIKE $domain THEN 'same email domain'"
        "   ELSE 'similar name' END AS reason"
        f" FROM customers t WHERE {where}) scored"
        " WHERE score >= 0.88 ORDER BY score DESC, name LIMIT $n", params)
    for row in found:
        row["score"] = round(float(row["score"]), 2)
        row["reason"] = _(REASONS[row["reason"]])
    return found


REASONS = {"same email": N_("same email"), "same email domain": N_("same email domain"),
           "similar name": N_("similar name")}


def contact_candidates(db: Database, user: User, customer_id: int, lead: dict) -> list[dict]:
    """Contacts of a customer that may be the lead's person (same email or similar name)."""
    records.get(db, user, CUSTOMERS, customer_id)
    person = search.normalise(" ".join(p for p in (lead.get("first_name"),
                                                   lead.get("last_name")) if p)).lower()
    full_name = "trim(coalesce(first_name, '') || ' ' || last_name)"
    return db.query(
        f"SELECT id, {full_name} AS name, email"
        " FROM contacts WHERE customer_id = $c AND deleted_at IS NULL AND"
        " (lower(email) = $email OR jaro_winkler_similarity("
        f"   lower({search.column(full_name)}), $person) >= 0.9)",
        {"c": customer_id, "email": (lead.get("email") or "").lower() or None,
         "person": person, **search.params()})


def customer_values(lead: dict) -> dict:
    """A new customer from the lead: the company if there is one, else the person."""
    company = (lead.get("company") or "").strip()
    person = " ".join(p for p in (lead.get("first_name"), lead.get("last_name")) if p)
    return {
        "name": company or person, "kind": "company" if company else "individual",
        "email": None if company and _domain(lead.get("email")) in FREE_MAIL else
        lead.get("email"),
        "phone": lead.get("phone"), "owner_id": lead.get("owner_id"),
        "consent": lead.get("consent") or False, "consent_date": lead.get("consent_date"),
        "consent_purpose": lead.get("consent_purpose"), "notes": lead.get("notes"),
    }


def contact_values(lead: dict) -> dict:
    return {
        "first_name": lead.get("first_name"), "last_name": lead["last_name"],
        "title": lead.get("title"), "email": lead.get("email"), "phone": lead.get("phone"),
        "is_primary": True, "owner_id": lead.get("owner_id"),
        "consent": lead.get("consent") or False, "consent_date": lead.get("consent_date"),
        "consent_purpose": lead.get("consent_purpose"),
    }


def deal_values(lead: dict, stage_id: int) -> dict:
    title = lead.get("company") or " ".join(
        p for p in (lead.get("first_name"), lead.get("last_name")) if p)
    return {"title": _("{title} — new deal").format(title=title),
            "amount": lead.get("estimated_value"), "stage_id": stage_id,
            "owner_id": lead.get("owner_id"), "source": lead.get("source")}


@retried
def convert_lead(db: Database, user: User, lead_id: int, expected_version: int,
                 customer_id: int | None = None, customer: dict | None = None,
                 contact_id: int | None = None, contact: dict | None = None,
                 deal: dict | None = None) -> dict:
    """Links the lead to an existing customer (customer_id) or creates one (customer values),
    likewise the contact (a company customer gets one; an individual may), and optionally
    creates a deal. Marks the lead converted with links to all of it. Returns the ids."""
    if (customer_id is None) == (customer is None):
        raise ValidationError({"customer_id": _("Choose an existing customer or create one")})
    with db.transaction() as cur:
        dialect.lock_row(cur, "leads", lead_id)  # a second server converts it after, or not
        lead = records.fetch(cur, LEADS, lead_id)
        if lead is None or lead["deleted_at"] is not None:
            raise records.NotFound(_("Lead #{id} does not exist").format(id=lead_id))
        require(user, "edit", lead)
        if lead["version"] != expected_version:
            raise records.ConflictError(lead, [])
        if lead["status"] != "qualified":
            raise ValidationError({"status": _(
                "Only qualified leads can be converted: set the status to Qualified first")})
        if customer_id is None:
            customer_id = records.insert(cur, user, CUSTOMERS, customer)
        else:
            existing = records.fetch(cur, CUSTOMERS, customer_id)
            if existing is None or existing["deleted_at"] is not None:
                raise ValidationError({"customer_id": _("That customer does not exist")})
            require(user, "view", existing)
        if contact is not None and contact_id is None:
            contact_id = records.insert(cur, user, CONTACTS, {**contact,
                                                              "customer_id": customer_id})
        elif contact_id is not None:
            found = records.fetch(cur, CONTACTS, contact_id)
            if found is None or found["customer_id"] != customer_id:
                raise ValidationError(
                    {"contact_id": _("That contact works for another customer")})
        deal_id = None
        if deal is not None:
            deal_id = deals.insert_deal(cur, user, {**deal, "customer_id": customer_id,
                                                    "contact_id": contact_id})
            cur.execute("UPDATE deals SET lead_id = $l WHERE id = $d",
                        {"l": lead_id, "d": deal_id})
        records.update_in(cur, user, LEADS, lead_id, {"status": "converted"}, expected_version)
        cur.execute(
            "UPDATE leads SET converted_at = $t, converted_customer_id = $c,"
            " converted_contact_id = $p, converted_deal_id = $d WHERE id = $id",
            {"t": datetime.now(), "c": customer_id, "p": contact_id, "d": deal_id,
             "id": lead_id})
        audit.record(cur, user, "leads", lead_id, "convert",
                     {"converted_customer_id": [None, customer_id],
                      "converted_contact_id": [None, contact_id],
                      "converted_deal_id": [None, deal_id]})
    return {"customer_id": customer_id, "contact_id": contact_id, "deal_id": deal_id}
