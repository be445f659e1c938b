"""Complaint updates and upserts written set-based (crm/importer_updates.py), as
service.update_complaint_in writes them a row at a time.

Beside the file's fields the command sets the resolved date (service._with_resolved_date):
closing a complaint (resolved or rejected) without a date resolves it today; reopening a closed
one clears its date, unless the file gives one. Here that date is one more field of the staged
update: the file's value when it brings one, else the record's (so it never differs from "the
file"), and its new value by the command's rule. The import record keeps it beside the file's
fields when the command changed it (the row path's before), so undo restores it exactly.
The command's checks (service._references over the complaint as it would be, and the
complaint's own check) are SQL conditions; a row meeting one goes through the row path, which
refuses it in its words."""
from __future__ import annotations

from crm import importer_refs
from crm.auth import User

DATE = "resolved_on"
_OPEN, _CLOSED = "('open', 'in_progress')", "('resolved', 'rejected')"  # service's statuses


def handles(entity) -> bool:
    from crm import service

    return entity.table == "complaints" and entity.update_in is service.update_complaint_in \
        and "complaints" in importer_refs.UPDATE_TABLES


def derived(entity, fields: list[str]) -> list[str]:
    """The fields the command sets that the file does not bring."""
    return [DATE] if handles(entity) and DATE not in fields else []


def given(fields: list[str], n: str) -> str:
    """The staged value (alias c) of field n, or the record's (alias t) for a derived one."""
    return f"c.f_{n}" if n in fields else f"t.{n}"


def new_date(fields: list[str]) -> str:
    """service._with_resolved_date over the row as update_complaint_in gets it (the fields
    that differ from the record's: the row path's changes), in SQL over c (the staged row)
    and t (the record): the resolved date as it will be stored."""
    from crm import importer, service

    specs = service.COMPLAINTS.spec

    def differs(n: str) -> str:
        return importer._differs_sql(specs[n], f"t.{n}", f"c.f_{n}") if n in fields \
            else "false"

    status = f"CASE WHEN {differs('status')} THEN {given(fields, 'status')} ELSE t.status END"
    date = f"CASE WHEN {differs(DATE)} THEN {given(fields, DATE)} ELSE t.{DATE} END"
    return (f"CASE WHEN ({status}) IN {_CLOSED} AND ({date}) IS NULL THEN CAST($today AS DATE)"
            f" WHEN ({status}) IN {_OPEN} AND {differs('status')} AND t.status IN {_CLOSED}"
            f" AND NOT {differs(DATE)} THEN NULL ELSE {date} END")


def tests(user: User, params: dict, fields: list[str]) -> list[str]:
    """service._references, which update_complaint_in runs over the complaint as it would be
    (its links stay the complaint's: a file mapping one is written by the row path): the
    customer live and visible to the user, the product live; for the rows given to it."""
    mine = "true" if user.sees_all else "c.owner_id = $me"
    params["me"] = user.id
    found = [f"NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = t.customer_id AND"
             f" c.deleted_at IS NULL AND {mine})",
             "(t.product_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM products x WHERE"
             " x.id = t.product_id AND x.deleted_at IS NULL))"]
    some = " OR ".join(f"u.d_{n}" for n in fields) or "false"
    return [f"(({some}) AND {t})" for t in found]
