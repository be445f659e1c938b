"""Headline numbers for the home page, aggregated in SQL and scoped to what the user may see."""
from __future__ import annotations

from datetime import date

from crm import customers, leads, settings
from crm.auth import User
from crm.db import Database


def home_numbers(db: Database, user: User, today: date | None = None,
                 bases: bool = True) -> dict:
    """bases False leaves out today's customer and installed base (and the customer count):
    the home page shows those of its period (kpis.tiles), and counting them over every won
    deal took 0.2-0.5 s on PostgreSQL at the large demo."""
    today = today or date.today()
    by_status = {r["status"]: r["n"] for r in leads.status_counts(db, user)}
    numbers = {
        "leads_by_status": [(s, by_status.get(s, 0)) for s in leads.STATUSES],
        "open_leads": sum(by_status.get(s, 0) for s in ("new", "contacted", "qualified")),
        "new_leads_this_month": leads.new_this_month(db, user, today),
    }
    if not bases:
        numbers["installed_base_rule"] = settings.installed_base_rule_text(settings.get_all(db))
        return numbers
    counted = customers.base_counts(db, user, today)
    return {**numbers, "customer_base": counted["customer_base"],
            "installed_base": counted["installed_base"],
            "installed_base_rule": counted["installed_base_rule"],
            "customers": counted["total"]}
