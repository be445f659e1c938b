import streamlit as st

from crm import customers, records
from crm.i18n import gettext as _
from crm.ui.followup import activity_tab, tasks_tab
from crm.ui.guard import require_user
from crm.ui.record import record_page
from crm.ui.text import md_escape
from crm.ui.session import get_db

user = require_user("rep")


def choices(contact: dict | None) -> dict:
    customer_id = contact["customer_id"] if contact else None
    return {"customer_id": customers.customer_choices(get_db(), user, include=customer_id)}


def back_to_customer(contact: dict) -> None:
    st.page_link("pages/customer.py", query_params={"id": contact["customer_id"]},
                 label=_("Open the customer: {name}").format(name=md_escape(records.ref_label(
                     get_db(), user, "customers", contact["customer_id"]))),
                 icon=":material/domain:")


record_page(customers.CONTACTS, user, list_page="pages/customers.py", choices=choices,
            actions=back_to_customer,
            tabs={_("Activities"): lambda c: activity_tab(user, "contact_id", c["id"]),
                  _("Tasks"): lambda c: tasks_tab(user, "contact_id", c["id"])})
