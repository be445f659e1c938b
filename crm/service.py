"""Customer service: survey answers (CSAT 1-5, NPS 0-10) and complaints or failure reports.

Both are spec-driven entities (records.Entity) with their own create and update commands:
those check that the customer (and the contact, deal and product) exist and that the user may
see them, then write through records (validation, owner rules, audit, one transaction). The
same commands serve the forms, the importer and the command line."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from crm import activities, records
from crm.auth import User, require
from crm.db import Database, retried
from crm.fields import Field, ValidationError, check_dates_not_future, validate
from crm.i18n import N_, gettext as _

CHANNELS = ("email", "phone", "web", "in_person", "chat")
CATEGORIES = ("product_failure", "delivery", "billing", "service", "other")
SEVERITIES = ("low", "medium", "high", "critical")
SEVERE = ("high", "critical")
STATUSES = ("open", "in_progress", "resolved", "rejected")
OPEN_STATUSES = ("open", "in_progress")
CLOSED_STATUSES = ("resolved", "rejected")

SURVEY_FIELDS = [
    Field("customer_id", "Customer", "ref", ref="customers", required=True, in_list=True,
          section="Answer"),
    Field("answered_on", "Answered on", "date", required=True, in_list=True, filter=True,
          section="Answer"),
    Field("channel", "Channel", "choice", required=True, choices=CHANNELS, default="email",
          in_list=True, filter=True, section="Answer"),
    Field("csat", "CSAT (1-5)", "integer", min_value=1, max_value=5, in_list=True,
          section="Answer", help="How satisfied: 1 very dissatisfied … 5 very satisfied"),
    Field("nps", "NPS (0-10)", "integer", min_value=0, max_value=10, in_list=True,
          section="Answer",
          help="How likely to recommend us: 0 not at all … 10 extremely likely"),
    Field("comment", "Comment", "longtext", searchable=True, section="Answer"),
    Field("contact_id", "Contact", "ref", ref="contacts", section="About"),
    Field("deal_id", "Deal", "ref", ref="deals", section="About"),
    Field("product_id", "Product", "ref", ref="products", in_list=True, filter=True,
          section="About"),
    Field("owner_id", "Owner", "user", filter=True, section="About"),
]

COMPLAINT_FIELDS = [
    Field("subject", "Subject", required=True, searchable=True, in_list=True,
          section="Complaint"),
    Field("customer_id", "Customer", "ref", ref="customers", required=True, in_list=True,
          section="Complaint"),
    Field("product_id", "Product", "ref", ref="products", in_list=True, filter=True,
          section="Complaint"),
    Field("category", "Category", "choice", required=True, choices=CATEGORIES,
          default="product_failure", in_list=True, filter=True, section="Complaint"),
    Field("severity", "Severity", "choice", required=True, choices=SEVERITIES,
          default="medium", in_list=True, filter=True, section="Complaint"),
    Field("description", "Description", "longtext", searchable=True, section="Complaint"),
    Field("status", "Status", "choice", required=True, choices=STATUSES, default="open",
          in_list=True, filter=True, section="Handling"),
    Field("opened_on", "Opened on", "date", required=True, in_list=True, filter=True,
          section="Handling"),
    Field("resolved_on", "Resolved on", "date", in_list=True, section="Handling",
          help="Set to today when the status becomes resolved or rejected and it is empty"),
    Field("owner_id", "Owner", "user", filter=True, section="Handling"),
    Field("resolution", "Resolution", "longtext", section="Handling"),
]


def _survey_check(values: dict) -> dict[str, str]:
    errors = check_dates_not_future(values, ["answered_on"], SURVEY_FIELDS)
    if values.get("csat") is None and values.get("nps") is None:
        errors["csat"] = _("Give a CSAT or an NPS score (or both)")
    return errors


def _complaint_check(values: dict) -> dict[str, str]:
    errors = check_dates_not_future(values, ["opened_on", "resolved_on"], COMPLAINT_FIELDS)
    opened, resolved = values.get("opened_on"), values.get("resolved_on")
    if opened and resolved and resolved < opened:
        errors["resolved_on"] = _("Resolved on cannot be before opened on")
    if resolved and values.get("status") in OPEN_STATUSES:
        errors["resolved_on"] = _("An open complaint has no resolved date; clear it or "
                                  "set the status to resolved or rejected")
    return errors


_MISSING = {"customer_id": N_("That customer does not exist"),
            "contact_id": N_("That contact does not exist"),
            "deal_id": N_("That deal does not exist"),
            "product_id": N_("That product does not exist")}


def _references(cur, user: User, clean: dict) -> dict:
    """Checks the customer, contact, deal and product of a survey or complaint; returns the
    customer's row. The contact and deal must belong to the same customer."""
    from crm.customers import CONTACTS, CUSTOMERS
    from crm.deals import DEALS

    customer = records.fetch(cur, CUSTOMERS, clean["customer_id"])
    if customer is None or customer["deleted_at"] is not None:
        raise _missing("customer_id")
    require(user, "view", customer)
    for name, entity in (("contact_id", CONTACTS), ("deal_id", DEALS)):
        if clean.get(name) is None:
            continue
        row = records.fetch(cur, entity, clean[name])
        if row is None or row["deleted_at"] is not None:
            raise _missing(name)
        if row["customer_id"] != clean["customer_id"]:
            raise ValidationError({name: _("It belongs to another customer")})
    if clean.get("product_id") is not None and cur.execute(
            "SELECT 1 FROM products WHERE id = $id AND deleted_at IS NULL",
            {"id": clean["product_id"]}).fetchone() is None:
        raise _missing("product_id")
    return customer


def _missing(name: str) -> ValidationError:
    message = _MISSING[name]
    return ValidationError({name: _(message)})


def _default_owner(user: User, values: dict, customer: dict) -> dict:
    """No owner given: the customer's (for a rep, themselves: reps own what they add)."""
    if values.get("owner_id") in (None, ""):
        owner = customer["owner_id"] if user.sees_all else user.id
        values = {**values, "owner_id": owner}
    return values


def _with_resolved_date(values: dict, current: dict | None = None) -> dict:
    """Closing a complaint (resolved or rejected) without a date resolves it today; reopening
    it clears the date."""
    status = values.get("status", (current or {}).get("status"))
    resolved = values.get("resolved_on", (current or {}).get("resolved_on"))
    if status in CLOSED_STATUSES and resolved in (None, ""):
        return {**values, "resolved_on": date.today()}
    if status in OPEN_STATUSES and current is not None and "status" in values \
            and current.get("status") in CLOSED_STATUSES and "resolved_on" not in values:
        return {**values, "resolved_on": None}
    return values


# --- commands --------------------------------------------------------------------------------

def insert_survey(cur, user: User, values: dict) -> int:
    """create_survey inside a caller's transaction (the importer's)."""
    require(user, "create")
    clean = validate(SURVEYS.fields, values)
    customer = _references(cur, user, clean)
    return records.insert(cur, user, SURVEYS, _default_owner(user, values, customer))


@retried  # run again on a write conflict, or without a rule that aborted it
def create_survey(db: Database, user: User, values: dict) -> int:
    with db.transaction() as cur:
        return insert_survey(cur, user, values)


@retried
def update_survey(db: Database, user: User, survey_id: int, values: dict,
                  expected_version: int | None, base: dict | None = None) -> dict:
    with db.transaction() as cur:
        return update_survey_in(cur, user, survey_id, values, expected_version, base)


def update_survey_in(cur, user: User, survey_id: int, values: dict,
                     expected_version: int | None, base: dict | None = None) -> dict:
    current = records.fetch(cur, SURVEYS, survey_id)
    if current is not None:
        merged = {**{f.name: current[f.name] for f in SURVEYS.editable}, **values}
        _references(cur, user, validate(SURVEYS.fields, merged))
    return records.update_in(cur, user, SURVEYS, survey_id, values, expected_version, base)


def insert_complaint(cur, user: User, values: dict) -> int:
    require(user, "create")
    values = {"opened_on": date.today(), **values}
    values = _with_resolved_date(values)
    clean = validate(COMPLAINTS.fields, values)
    customer = _references(cur, user, clean)
    return records.insert(cur, user, COMPLAINTS, _default_owner(user, values, customer))


@retried
def create_complaint(db: Database, user: User, values: dict) -> int:
    with db.transaction() as cur:
        return insert_complaint(cur, user, values)


@retried
def update_complaint(db: Database, user: User, complaint_id: int, values: dict,
                     expected_version: int | None, base: dict | None = None) -> dict:
    with db.transaction() as cur:
        return update_complaint_in(cur, user, complaint_id, values, expected_version, base)


def update_complaint_in(cur, user: User, complaint_id: int, values: dict,
                        expected_version: int | None, base: dict | None = None) -> dict:
    current = records.fetch(cur, COMPLAINTS, complaint_id)
    if current is not None:
        values = _with_resolved_date(values, current)
        merged = {**{f.name: current[f.name] for f in COMPLAINTS.editable}, **values}
        _references(cur, user, validate(COMPLAINTS.fields, merged))
    return records.update_in(cur, user, COMPLAINTS, complaint_id, values, expected_version,
                             base)


SURVEYS = records.Entity(
    table="surveys", label="Survey answer", plural="Survey answers", code_fields=SURVEY_FIELDS,
    title_sql="(SELECT c.name FROM customers c WHERE c.id = t.customer_id)"
              " || ' · ' || CAST(t.answered_on AS VARCHAR)",
    default_sort=("answered_on", "desc"), check=_survey_check,
    creator=create_survey, updater=update_survey, insert_in=insert_survey,
    update_in=update_survey_in)

COMPLAINTS = records.Entity(
    table="complaints", label="Complaint", plural="Complaints", code_fields=COMPLAINT_FIELDS,
    title_sql="t.subject", default_sort=("opened_on", "desc"), check=_complaint_check,
    creator=create_complaint, updater=update_complaint, insert_in=insert_complaint,
    update_in=update_complaint_in)


# --- on a customer's page --------------------------------------------------------------------

def surveys_of(db: Database, user: User, customer_id: int, limit: int = 50) -> list[dict]:
    """The customer's latest survey answers (that the user may see), newest first."""
    from crm.customers import CUSTOMERS

    records.get(db, user, CUSTOMERS, customer_id)
    where, params = records.visible(SURVEYS, user)
    return db.query(
        f"SELECT t.id, t.answered_on, t.channel, t.csat, t.nps, t.comment, p.name AS product"
        f" FROM surveys t LEFT JOIN products p ON p.id = t.product_id"
        f" WHERE {where} AND t.customer_id = $c ORDER BY t.answered_on DESC, t.id DESC LIMIT $n",
        {**params, "c": customer_id, "n": limit})


def complaints_of(db: Database, user: User, customer_id: int, limit: int = 50) -> list[dict]:
    """The customer's complaints (that the user may see): open ones first, newest first."""
    from crm.customers import CUSTOMERS

    records.get(db, user, CUSTOMERS, customer_id)
    where, params = records.visible(COMPLAINTS, user)
    return db.query(
        f"SELECT t.id, t.subject, t.category, t.severity, t.status, t.opened_on, t.resolved_on"
        f" FROM complaints t WHERE {where} AND t.customer_id = $c"
        f" ORDER BY t.status IN ('open', 'in_progress') DESC, t.opened_on DESC, t.id DESC"
        f" LIMIT $n", {**params, "c": customer_id, "n": limit})


def product_choices(db: Database) -> dict[int, str]:
    """{id: name} of the active products, for pickers."""
    return {r["id"]: r["name"] for r in db.query(
        "SELECT id, name FROM products WHERE active AND deleted_at IS NULL ORDER BY name")}


# --- follow-up of a customer at risk ---------------------------------------------------------

def create_follow_up(db: Database, user: User, customer_id: int, reasons: list[str] = (),
                     due: datetime | None = None) -> int:
    """A high-priority task, due tomorrow at 9, for the customer's owner (a rep: themselves),
    linked to the customer, saying why they are at risk. Permission, audit and validation
    come from activities.create_task."""
    from crm.customers import CUSTOMERS

    customer = records.get(db, user, CUSTOMERS, customer_id)
    owner = customer["owner_id"] if user.sees_all and customer["owner_id"] else user.id
    title = _("Follow up: {customer} is at risk").format(customer=customer["name"])
    return activities.create_task(db, user, {
        "title": title[:200], "customer_id": customer_id, "owner_id": owner,
        "priority": "high",
        "due_at": due or datetime.combine(date.today() + timedelta(days=1), time(9, 0)),
        "notes": "; ".join(reasons) or None})


def deal_choices(db: Database, user: User, customer_id: int | None = None,
                 limit: int = 2000) -> dict[int, str]:
    """{id: title} of the live deals the user may see (of one customer when given)."""
    from crm.deals import DEALS

    where, params = records.visible(DEALS, user)
    params.update(c=customer_id, n=limit)
    return {r["id"]: r["title"] for r in db.query(
        f"SELECT t.id, t.title FROM deals t WHERE {where}"
        f" AND ($c IS NULL OR t.customer_id = $c) ORDER BY t.updated_at DESC, t.id DESC"
        f" LIMIT $n", params)}
