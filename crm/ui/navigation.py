"""Which pages each role sees, in the sections of DESIGN.md, and the sidebar menu."""
from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from crm.auth import RANK

# (section, file, title, icon, least role, shown in the menu)
PAGES = [
    ("Home", "pages/home.py", "Home", ":material/home:", "viewer", True),
    ("Sales", "pages/leads.py", "Leads", ":material/person_search:", "rep", True),
    ("Sales", "pages/lead.py", "Lead", ":material/person:", "rep", False),
    ("Sales", "pages/customers.py", "Customers", ":material/apartment:", "rep", True),
    ("Sales", "pages/customer.py", "Customer", ":material/domain:", "rep", False),
    ("Sales", "pages/contact.py", "Contact", ":material/person:", "rep", False),
    ("Sales", "pages/pipeline.py", "Pipeline", ":material/view_kanban:", "rep", True),
    ("Sales", "pages/deals.py", "Deals", ":material/handshake:", "rep", True),
    ("Sales", "pages/deal.py", "Deal", ":material/handshake:", "rep", False),
    ("Sales", "pages/activities.py", "Activities & tasks", ":material/task_alt:", "rep", True),
    ("Sales", "pages/activity.py", "Activity", ":material/event_note:", "rep", False),
    ("Sales", "pages/task.py", "Task", ":material/task:", "rep", False),
    ("Settings", "pages/users.py", "Users", ":material/group:", "admin", True),
    ("Settings", "pages/pipelines_admin.py", "Pipelines & stages", ":material/tune:", "admin",
     True),
    ("Settings", "pages/settings.py", "General", ":material/settings:", "admin", True),
    ("Account", "pages/account.py", "My account", ":material/account_circle:", "viewer", True),
]


def allowed(role: str | None) -> list[tuple]:
    """Pages a role may open; signed out, every page stays routable so its guard shows the
    login and a shared link survives sign-in."""
    return [p for p in PAGES if role is None or RANK[role] >= RANK[p[4]]]


def pages_for(role: str | None) -> list:
    return [st.Page(p[1], title=p[2], icon=p[3], default=i == 0)
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
            st.caption(section)
        try:
            st.page_link(p[1], label=p[2], icon=p[3])
        except StreamlitPageNotFoundError:
            return  # a page run as its own entrypoint (AppTest) has no pages to link to
