import streamlit as st

from crm import leads
from crm.ui.guard import require_user
from crm.ui.record import record_page
from crm.ui.session import get_db
from crm.ui.text import md_escape

user = require_user("rep")


def related(lead: dict) -> None:
    found = leads.related(get_db(), user, lead)
    if not found["leads"] and not found["customers"]:
        st.caption("No other leads from the same company or email domain, and no customer "
                   "of that name.")
    if found["customers"]:
        st.markdown("**Customers with this company name**")
        for c in found["customers"]:
            st.page_link("pages/customer.py", label=md_escape(f"{c['name']} · {c['city'] or ''}"),
                         query_params={"id": c["id"]}, icon=":material/domain:")
    if found["leads"]:
        st.markdown("**Other leads from the same company or email domain**")
        for other in found["leads"]:
            st.page_link("pages/lead.py",
                         label=md_escape(f"{other['name']} · {other['company'] or ''} · "
                                         f"{other['status']}"),
                         query_params={"id": other["id"]}, icon=":material/person:")


record_page(leads.LEADS, user, list_page="pages/leads.py", tabs={"Related": related})
