"""Which pages each role sees, in the sections of DESIGN.md, and the sidebar menu."""
from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from crm.auth import RANK
from crm.i18n import N_, gettext as _

# (section, file, title, icon, least role, shown in the menu)
PAGES = [
    (N_("Home"), "pages/home.py", N_("Home"), ":material/home:", "viewer", True),
    (N_("Sales"), "pages/leads.py", N_("Leads"), ":material/person_search:", "rep", True),
    (N_("Sales"), "pages/lead.py", N_("Lead"), ":material/person:", "rep", False),
    (N_("Sales"), "pages/customers.py", N_("Customers"), ":material/apartment:", "rep", True),
    (N_("Sales"), "pages/customer.py", N_("Customer"), ":material/domain:", "rep", False),
    (N_("Sales"), "pages/contact.py", N_("Contact"), ":material/person:", "rep", False),
    (N_("Sales"), "pages/pipeline.py", N_("Pipeline"), ":material/view_kanban:", "rep", True),
    (N_("Sales"), "pages/deals.py", N_("Deals"), ":material/handshake:", "rep", True),
    (N_("Sales"), "pages/deal.py", N_("Deal"), ":material/handshake:", "rep", False),
    (N_("Sales"), "pages/products.py", N_("Products"), ":material/inventory_2:", "rep", True),
    (N_("Sales"), "pages/product.py", N_("Product"), ":material/inventory_2:", "rep", False),
    (N_("Sales"), "pages/competitors.py", N_("Competitors"), ":material/swords:", "rep", True),
    (N_("Sales"), "pages/competitor.py", N_("Competitor"), ":material/swords:", "rep", False),
    (N_("Sales"), "pages/price_records.py", N_("Price records"), ":material/sell:", "rep", True),
    (N_("Sales"), "pages/price_record.py", N_("Price record"), ":material/sell:", "rep", False),
    (N_("Sales"), "pages/returns.py", N_("Returns and cancellations"),
     ":material/assignment_return:", "rep", True),
    (N_("Sales"), "pages/return.py", N_("Return or cancellation"), ":material/assignment_return:",
     "rep", False),
    (N_("Sales"), "pages/activities.py", N_("Activities & tasks"), ":material/task_alt:", "rep", True),
    (N_("Sales"), "pages/activity.py", N_("Activity"), ":material/event_note:", "rep", False),
    (N_("Sales"), "pages/task.py", N_("Task"), ":material/task:", "rep", False),
    # issue 10: customer service and satisfaction
    (N_("Service"), "pages/complaints.py", N_("Complaints"), ":material/report_problem:", "rep",
     True),
    (N_("Service"), "pages/complaint.py", N_("Complaint"), ":material/report:", "rep", False),
    (N_("Service"), "pages/surveys.py", N_("Surveys"), ":material/reviews:", "rep", True),
    (N_("Service"), "pages/survey.py", N_("Survey answer"), ":material/rate_review:", "rep",
     False),
    (N_("Insights"), "pages/forecast.py", N_("Forecast"), ":material/trending_up:", "viewer", True),
    (N_("Insights"), "pages/satisfaction.py", N_("Satisfaction"),
     ":material/sentiment_satisfied:", "viewer", True),
    (N_("Insights"), "pages/market.py", N_("Market audit"), ":material/monitoring:", "viewer",
     True),
    (N_("Data"), "pages/import.py", N_("Import"), ":material/upload_file:", "rep", True),
    (N_("Settings"), "pages/users.py", N_("Users"), ":material/group:", "admin", True),
    (N_("Settings"), "pages/pipelines_admin.py", N_("Pipelines & stages"), ":material/tune:", "admin",
     True),
    (N_("Settings"), "pages/fields_admin.py", N_("Custom fields & layouts"),
     ":material/dashboard_customize:", "admin", True),
    (N_("Settings"), "pages/rules.py", N_("Automation rules"), ":material/bolt:", "admin", True),
    (N_("Settings"), "pages/rule.py", N_("Automation rule"), ":material/bolt:", "admin", False),
    (N_("Settings"), "pages/settings.py", N_("General"), ":material/settings:", "admin", True),
    (N_("Account"), "pages/account.py", N_("My account"), ":material/account_circle:", "viewer", True),
]


def allowed(role: str | None) -> list[tuple]:
    """Pages a role may open; signed out, every page stays routable so its guard shows the
    login and a shared link survives sign-in."""
    return [p for p in PAGES if role is None or RANK[role] >= RANK[p[4]]]


def pages_for(role: str | None) -> list:
    return [st.Page(p[1], title=_(p[2]), icon=p[3], default=i == 0)
            for i, p in enumerate(allowed(role))]


def menu(role: str) -> None:
    """The sidebar menu, drawn by the guard so it is right even when a page runs without
    app.py (a fresh server serves /<page> directly)."""
    section = None
    for p in allowed(role):
        if not p[5]:
            continue
        if p[0] != section:
            section = p[0]
            st.caption(_(section))
        try:
            st.page_link(p[1], label=_(p[2]), icon=p[3])
        except StreamlitPageNotFoundError:
            return  # a page run as its own entrypoint (AppTest) has no pages to link to
