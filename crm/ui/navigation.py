"""Which pages each role sees, in the sections of DESIGN.md."""
from __future__ import annotations

import streamlit as st

from crm.auth import RANK

# (section, file, title, icon, least role, shown in the menu)
PAGES = [
    ("Home", "pages/home.py", "Home", ":material/home:", "viewer", True),
    ("Sales", "pages/leads.py", "Leads", ":material/person_search:", "rep", True),
    ("Sales", "pages/lead.py", "Lead", ":material/person:", "rep", False),
    ("Sales", "pages/customers.py", "Customers", ":material/apartment:", "rep", True),
    ("Sales", "pages/customer.py", "Customer", ":material/domain:", "rep", False),
    ("Settings", "pages/users.py", "Users", ":material/group:", "admin", True),
]


def pages_for(role: str | None):
    """Sections of st.Page for a role; None (signed out) gets every page as one hidden list."""
    if role is None:
        return [_page(p, default=i == 0) for i, p in enumerate(PAGES)]
    sections: dict[str, list] = {}
    for i, p in enumerate(PAGES):
        if RANK[role] >= RANK[p[4]]:
            sections.setdefault(p[0], []).append(_page(p, default=i == 0))
    return sections


def _page(p, default: bool):
    section, path, title, icon, _, visible = p
    return st.Page(path, title=title, icon=icon, default=default,
                   visibility="visible" if visible else "hidden")
