import pandas as pd
import streamlit as st

from crm import auth
from crm.fields import ValidationError
from crm.ui.guard import ROLE_LABEL, require_user
from crm.ui.session import get_db

user = require_user("admin")
db = get_db()

st.title("Users")
people = auth.list_users(db)
st.dataframe(pd.DataFrame(people), hide_index=True, placeholder="—",
             column_config={"id": None, "username": "Username", "name": "Name",
                            "email": "Email", "role": "Role", "active": "Active",
                            "locked_until": st.column_config.DatetimeColumn(
                                "Locked until", format="YYYY-MM-DD HH:mm"),
                            "last_login_at": st.column_config.DatetimeColumn(
                                "Last sign-in", format="YYYY-MM-DD HH:mm"),
                            "created_at": st.column_config.DatetimeColumn(
                                "Created", format="YYYY-MM-DD")})

add, lock = st.columns(2)
with add:
    st.subheader("Add a user")
    with st.form("add_user"):
        name = st.text_input("Name", key="nu_name")
        username = st.text_input("Username", key="nu_username")
        email = st.text_input("Email", key="nu_email")
        role = st.selectbox("Role", auth.ROLES, index=2, format_func=ROLE_LABEL.get,
                            key="nu_role")
        password = st.text_input("Password", type="password", key="nu_password",
                                 help="At least 10 characters, with letters and digits")
        if st.form_submit_button("Add user", type="primary"):
            try:
                auth.create_user(db, user, username, name, email, password, role)
            except ValidationError as exc:
                for message in exc.errors.values():
                    st.error(message)
            except auth.PermissionDenied as exc:
                st.error(str(exc))
            else:
                st.toast(f"User {username} added")
                for key in ("nu_name", "nu_username", "nu_email", "nu_password"):
                    del st.session_state[key]
                st.rerun()
with lock:
    st.subheader("Lock or unlock")
    others = [p["username"] for p in people if p["username"] != user.username]
    target = st.selectbox("User", others, key="lock_target", index=None,
                          placeholder="Choose a user")
    c1, c2 = st.columns(2)
    for column, label, active in ((c1, "Lock", False), (c2, "Unlock", True)):
        if column.button(label, key=f"user_{label.lower()}", disabled=target is None):
            auth.set_active(db, user, target, active)
            st.toast(f"{target} {'unlocked' if active else 'locked'}")
            st.rerun()
