import streamlit as st

from crm import conversion, i18n, leads, pipelines, records
from crm.auth import PermissionDenied
from crm.fields import ValidationError
from crm.i18n import gettext as _
from crm.ui.followup import activity_tab, tasks_tab
from crm.ui.guard import require_user
from crm.ui.record import record_page
from crm.ui.session import get_db
from crm.ui.text import md_escape

user = require_user("rep")
db = get_db()


def related(lead: dict) -> None:
    found = leads.related(db, user, lead)
    if not found["leads"] and not found["customers"]:
        st.caption(_("No other leads from the same company or email domain, and no customer "
                     "of that name."))
    if found["customers"]:
        st.markdown(_("**Customers with this company name**"))
        for c in found["customers"]:
            st.page_link("pages/customer.py", label=md_escape(f"{c['name']} · {c['city'] or ''}"),
                         query_params={"id": c["id"]}, icon=":material/domain:")
    if found["leads"]:
        st.markdown(_("**Other leads from the same company or email domain**"))
        status = leads.LEADS.spec["status"]
        for other in found["leads"]:
            st.page_link("pages/lead.py",
                         label=md_escape(f"{other['name']} · {other['company'] or ''} · "
                                         f"{status.choice_label(other['status'])}"),
                         query_params={"id": other["id"]}, icon=":material/person:")


def converted_links(lead: dict) -> None:
    st.success(_("Converted on {date}.").format(date=i18n.format_date(lead["converted_at"])),
               icon=":material/check_circle:")
    for page, key, label, icon in (("pages/customer.py", "converted_customer_id",
                                    _("Open the customer it became"), ":material/domain:"),
                                   ("pages/deal.py", "converted_deal_id",
                                    _("Open the deal it became"), ":material/handshake:")):
        if lead[key]:
            st.page_link(page, label=label,
                         query_params={"id": lead[key]}, icon=icon)


def convert(lead: dict) -> None:
    """Qualified lead -> customer (or an existing one), contact and optionally a deal."""
    if lead["converted_at"]:
        converted_links(lead)
        return
    if lead["status"] != "qualified":
        st.info(_("Only qualified leads can be converted. Set the status to Qualified in "
                  "Details first."))
        return
    candidates = conversion.duplicate_candidates(db, user, lead)
    new_customer = conversion.customer_values(lead)
    create_new = (_("Create a new company customer: {name}")
                  if new_customer["kind"] == "company"
                  else _("Create a new individual customer: {name}"))
    options = {0: create_new.format(name=md_escape(new_customer["name"]))}
    options.update({c["id"]: _("Link to existing: {customer}").format(customer=md_escape(
        f"{c['name']}{' · ' + c['city'] if c['city'] else ''} — {c['reason']}"))
        for c in candidates})
    if candidates:
        st.warning(_("Existing customers that look like this lead: {count}. Link to one "
                     "instead of creating a duplicate?").format(
                         count=i18n.number(len(candidates))), icon=":material/content_copy:")
    key = lead["id"]
    choice = st.radio(_("Customer"), list(options), format_func=options.get,
                      key=f"convert_customer:{key}")
    contact_label = (_("Add the lead's person as a contact") if choice or
                     new_customer["kind"] == "company" else _("Also add them as a contact"))
    add_contact = st.checkbox(contact_label, value=True, key=f"convert_contact:{key}")
    add_deal = st.checkbox(_("Create a deal"), value=True, key=f"convert_deal:{key}")
    stage_id = title = amount = None
    if add_deal:
        stages = pipelines.stage_choices(db)
        values = conversion.deal_values(lead, next(iter(stages)))
        c1, c2, c3 = st.columns([3, 2, 1.4])
        title = c1.text_input(_("Deal title"), values["title"], key=f"convert_deal_title:{key}")
        stage_id = c2.selectbox(_("Stage"), list(stages), format_func=stages.get,
                                key=f"convert_stage:{key}")
        amount = c3.number_input(_("Amount"), min_value=0.0, key=f"convert_amount:{key}",
                                 value=float(values["amount"] or 0), step=100.0)
    if st.button(_("Convert lead"), type="primary", key=f"convert_button:{key}"):
        deal = None
        if add_deal:
            deal = {**conversion.deal_values(lead, stage_id), "title": title, "amount": amount}
        try:
            made = conversion.convert_lead(
                db, user, lead["id"], lead["version"],
                customer_id=choice or None, customer=None if choice else new_customer,
                contact=conversion.contact_values(lead) if add_contact else None, deal=deal)
        except ValidationError as exc:
            st.error(md_escape(" ".join(exc.errors.values())))
            return
        except (PermissionDenied, records.ConflictError, records.NotFound) as exc:
            st.error(md_escape(exc) or _("The lead changed meanwhile; reload and try again."))
            return
        st.toast(_("Lead converted"))
        st.switch_page("pages/deal.py" if made["deal_id"] else "pages/customer.py",
                       query_params={"id": made["deal_id"] or made["customer_id"]})


record_page(leads.LEADS, user, list_page="pages/leads.py",
            tabs={_("Convert"): convert,
                  _("Activities"): lambda lead: activity_tab(user, "lead_id", lead["id"]),
                  _("Tasks"): lambda lead: tasks_tab(user, "lead_id", lead["id"]),
                  _("Related"): related})
