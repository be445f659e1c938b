import streamlit as st

from crm import auth, customers, records
from crm.deals import DEALS
from crm.ui.followup import activity_tab, tasks_tab
from crm.ui.text import md_escape
from crm.ui.forms import submit_form
from crm.ui.guard import require_user
from crm.ui.record import record_page
from crm.ui.session import get_db

user = require_user("rep")


def contacts(customer: dict) -> None:
    db = get_db()
    people = customers.contacts_of(db, user, customer["id"])
    if people:
        for person in people:
            name = " ".join(p for p in (person["first_name"], person["last_name"]) if p)
            details = " · ".join(d for d in (person["title"], person["email"], person["phone"],
                                              "primary" if person["is_primary"] else None) if d)
            st.page_link("pages/contact.py", query_params={"id": person["id"]},
                         icon=":material/person:", label=md_escape(f"{name} — {details}"))
    else:
        st.caption("No contacts yet.")
    if customer["deleted_at"] is not None:
        return
    st.markdown("**Add a contact**")
    specs = [f for f in customers.CONTACT_FIELDS if f.name != "customer_id"]
    added = submit_form(f"contact:new:{customer['id']}", specs, {"owner_id": user.id},
                        {"owner_id": auth.owner_choices(db)},
                        lambda values: customers.add_contact(db, user, customer["id"], values),
                        submit_label="Add contact")
    if added is None:
        return
    st.toast("Contact added")
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
                                         f"{float(deal['amount'] or 0):,.0f} {deal['currency']}"))
    else:
        st.caption("No deals yet.")
    if customer["deleted_at"] is None and st.button("New deal for this customer",
                                                    icon=":material/add:"):
        st.switch_page("pages/deal.py", query_params={"id": "new",
                                                      "customer_id": customer["id"]})


def purchases(customer: dict) -> None:
    bought = customers.purchases(get_db(), user, customer["id"])
    if bought["first_purchase"] is None:
        st.caption("Has not bought yet: no won deal.")
        return
    st.caption(f"Customer since {bought['first_purchase']:%Y-%m-%d} · last purchase "
               f"{bought['last_purchase']:%Y-%m-%d} · {bought['won_deals']:,} won deal(s)")


record_page(customers.CUSTOMERS, user, list_page="pages/customers.py", actions=purchases,
            tabs={"Contacts": contacts, "Deals": customer_deals,
                  "Activities": lambda c: activity_tab(user, "customer_id", c["id"]),
                  "Tasks": lambda c: tasks_tab(user, "customer_id", c["id"])})
