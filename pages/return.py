from datetime import date

import streamlit as st

from crm.customers import customer_choices
from crm.market import RETURNS
from crm.ui.guard import require_user
from crm.ui.record import record_page
from crm.ui.session import get_db

user = require_user("rep")
db = get_db()


def choices(row: dict | None) -> dict:
    return {"customer_id": customer_choices(db, user,
                                            include=row["customer_id"] if row else None)}


start = {"occurred_on": date.today()}
if str(st.query_params.get("customer_id", "")).isdigit():
    start["customer_id"] = int(st.query_params["customer_id"])
record_page(RETURNS, user, list_page="pages/returns.py", choices=choices, new_values=start)
