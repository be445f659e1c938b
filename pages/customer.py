import streamlit as st

from crm import customers, i18n, records
from crm.deals import DEALS
from crm.i18n import gettext as _, ngettext
from crm.ui.followup import activity_tab, tasks_tab
from crm.ui.text import md_escape
from crm.ui.guard import require_user
from crm.ui.record import inline_create_form, record_page
from crm.ui.service import customer_block, service_tab
from crm.ui.session import get_db

user = require_user("rep")


def contacts(customer: dict) -> None:
    db = get_db()
    people = customers.contacts_of(db, user, customer["id"])
    if people:
        for person in people:
            name = " ".join(p for p in (person["first_name"], person["last_name"]) if p)
            details = " · ".join(d for d in (person["title"], person["email"], person["phone"],
                                              _("primary") if person["is_primary"] else None) if d)
            st.page_link("pages/contact.py", query_params={"id": person["id"]},
                         icon=":material/person:", label=md_escape(f"{name} — {details}"))
    else:
        st.caption(_("No contacts yet."))
    if customer["deleted_at"] is not None:
        return
    st.markdown(_("**Add a contact**"))
    # the contact's fields as they are now: an admin's custom fields too
    specs = [f for f in customers.CONTACTS.fields if f.name != "customer_id"]
    added = inline_create_form(customers.CONTACTS, f"contact:new:{customer['id']}",
                               {"owner_id": user.id},
                               lambda values: customers.add_contact(db, user, customer["id"],
                                                                    values),
                               submit_label=_("Add contact"), specs=specs)
    if added is None:
        return
    st.toast(_("Contact added"))
    st.rerun()


def customer_deals(customer: dict) -> None:
    page = records.list_records(get_db(), user, DEALS,
                                records.Query(fixed={"customer_id": customer["id"]},
                                              page_size=100))
    if page.rows:
        for deal in page.rows:
            st.page_link("pages/deal.py", query_params={"id": deal["id"]},
                         icon=":material/handshake:",
                         label=md_escape(f"{deal['title']} · {deal['stage_id__label']} · "
                                         + i18n.money(deal["amount"] or 0, deal["currency"])))
    else:
        st.caption(_("No deals yet."))
    if customer["deleted_at"] is None and st.button(_("New deal for this customer"),
                                                    icon=":material/add:"):
        st.switch_page("pages/deal.py", query_params={"id": "new",
                                                      "customer_id": customer["id"]})


def purchases(customer: dict) -> None:
    bought = customers.purchases(get_db(), user, customer["id"])
    if bought["first_purchase"] is None:
        st.caption(_("Has not bought yet: no won deal."))
        return
    st.caption(ngettext("Customer since {first} · last purchase {last} · {count} won deal",
                        "Customer since {first} · last purchase {last} · {count} won deals",
                        bought["won_deals"]).format(
        first=i18n.format_date(bought["first_purchase"]),
        last=i18n.format_date(bought["last_purchase"]), count=i18n.number(bought["won_deals"])))


def overview(customer: dict) -> None:
    purchases(customer)
    customer_block(user, customer)


record_page(customers.CUSTOMERS, user, list_page="pages/customers.py", actions=overview,
            tabs={_("Contacts"): contacts, _("Deals"): customer_deals,
                  _("Service"): lambda c: service_tab(user, c),
                  _("Activities"): lambda c: activity_tab(user, "customer_id", c["id"]),
                  _("Tasks"): lambda c: tasks_tab(user, "customer_id", c["id"])})
