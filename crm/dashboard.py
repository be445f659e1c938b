"""Headline numbers for the home page, aggregated in SQL and scoped to what the user may see."""
from __future__ import annotations

from datetime import date

from crm import customers, leads
from crm.auth import User
from crm.db import Database


def home_numbers(db: Database, user: User, today: date | None = None) -> dict:
    today = today or date.today()
    by_status = {r["status"]: r["n"] for r in leads.status_counts(db, user)}
    bases = customers.base_counts(db, user, today)
    return {
        "leads_by_status": [(s, by_status.get(s, 0)) for s in leads.STATUSES],
        "open_leads": sum(by_status.get(s, 0) for s in ("new", "contacted", "qualified")),
        "new_leads_this_month": leads.new_this_month(db, user, today),
        "customer_base": bases["customer_base"],
        "installed_base": bases["installed_base"],
        "installed_base_rule": bases["installed_base_rule"],
        "customers": bases["total"],
    }
