"""Customer service on record pages: pickers and pre-filled values of survey answers and
complaints, and the satisfaction block and Service tab of a customer's page."""
from __future__ import annotations

import streamlit as st

from crm import customers, i18n, records, service
from crm.analytics import satisfaction
from crm.auth import PermissionDenied, User
from crm.i18n import N_, gettext as _
from crm.ui.session import get_db
from crm.ui.text import md_escape

REASONS = {"detractor": N_("detractor (NPS 0-6)"),
           "severe_complaint": N_("open severe complaint"),
           "dropped": N_("satisfaction dropped")}


def reason_text(codes: list[str]) -> str:
    return ", ".join(_(REASONS[c]) for c in codes)


def _customer_param() -> int | None:
    try:
        return int(st.query_params.get("customer_id", ""))
    except ValueError:
        return None


def new_values(user: User, defaults: dict) -> dict:
    """A new answer or complaint: the customer from the link (?customer_id=) and, for
    managers, that customer's owner as its owner."""
    values = dict(defaults)
    cid = _customer_param()
    if cid is None:
        return values
    try:
        customer = records.get(get_db(), user, customers.CUSTOMERS, cid)
    except (records.NotFound, PermissionDenied):
        return values
    values["customer_id"] = cid
    if user.sees_all and customer["owner_id"]:
        values["owner_id"] = customer["owner_id"]
    return values


def service_choices(user: User, row: dict | None) -> dict[str, dict]:
    """Pickers: customers, products, and the contacts and deals of the record's customer (or
    the linked one), else all the user may see."""
    db = get_db()
    cid = row["customer_id"] if row else _customer_param()
    return {"customer_id": customers.customer_choices(db, user, include=cid),
            "product_id": service.product_choices(db),
            "contact_id": customers.contact_choices(db, user, customer_id=cid),
            "deal_id": service.deal_choices(db, user, customer_id=cid)}


def customer_block(user: User, customer: dict) -> None:
    """Latest scores, complaint count and the at-risk flag, with 'Raise a complaint'."""
    db = get_db()
    summary = satisfaction.customer_summary(db, user, customer["id"])
    nps_col, csat_col, complaints_col, raise_col = st.columns([1, 1, 1, 1.3],
                                                              vertical_alignment="center")
    nps_col.metric(_("Latest NPS"), i18n.number(summary["latest_nps"])
                   if summary["latest_nps"] is not None else "—",
                   help=_("Answered on {date}").format(date=i18n.format_date(summary["nps_on"]))
                   if summary["nps_on"] else None)
    csat_col.metric(_("Latest CSAT"), i18n.number(summary["latest_csat"])
                    if summary["latest_csat"] is not None else "—",
                    help=_("Answered on {date}").format(
                        date=i18n.format_date(summary["csat_on"])) if summary["csat_on"]
                    else None)
    complaints_col.metric(_("Complaints"), i18n.number(summary["complaints"]),
                          help=_("{count} still open").format(
                              count=i18n.number(summary["open_complaints"])))
    if customer["deleted_at"] is None and raise_col.button(
            _("Raise a complaint"), icon=":material/report:", key="raise_complaint",
            width="stretch"):
        st.switch_page("pages/complaint.py", query_params={"id": "new",
                                                           "customer_id": customer["id"]})
    if summary["at_risk"]:
        st.warning(_("At risk: {reasons}").format(reasons=reason_text(summary["reasons"])),
                   icon=":material/warning:")


def service_tab(user: User, customer: dict) -> None:
    """The customer's complaints and survey answers, each linked to its page."""
    db = get_db()
    status = service.COMPLAINTS.spec["status"]
    severity = service.COMPLAINTS.spec["severity"]
    st.markdown("**{}**".format(_("Complaints")))
    found = service.complaints_of(db, user, customer["id"])
    for c in found:
        st.page_link("pages/complaint.py", query_params={"id": c["id"]},
                     icon=":material/report:",
                     label=md_escape(" · ".join((c["subject"], status.choice_label(c["status"]),
                                                 severity.choice_label(c["severity"]),
                                                 i18n.format_date(c["opened_on"])))))
    if not found:
        st.caption(_("No complaints."))
    st.markdown("**{}**".format(_("Survey answers")))
    answers = service.surveys_of(db, user, customer["id"])
    channel = service.SURVEYS.spec["channel"]
    for a in answers:
        bits = [i18n.format_date(a["answered_on"]), channel.choice_label(a["channel"])]
        if a["csat"] is not None:
            bits.append(_("CSAT {score}").format(score=i18n.number(a["csat"])))
        if a["nps"] is not None:
            bits.append(_("NPS {score}").format(score=i18n.number(a["nps"])))
        if a["product"]:
            bits.append(a["product"])
        if a["comment"]:
            bits.append(a["comment"][:80])
        st.page_link("pages/survey.py", query_params={"id": a["id"]},
                     icon=":material/rate_review:", label=md_escape(" · ".join(bits)))
    if not answers:
        st.caption(_("No survey answers yet."))
    if customer["deleted_at"] is None and st.button(_("Record a survey answer"),
                                                    icon=":material/add:", key="new_survey"):
        st.switch_page("pages/survey.py", query_params={"id": "new",
                                                        "customer_id": customer["id"]})
