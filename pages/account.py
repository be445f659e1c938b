"""My account (every role): who I am, and changing my own password."""
from datetime import datetime

import streamlit as st

from crm import auth
from crm.fields import ValidationError
from crm.ui.guard import ROLE_LABEL, require_user
from crm.ui.session import get_db
from crm.ui.text import md_escape

user = require_user("viewer")
db = get_db()

FIELDS = ("acc_current", "acc_new", "acc_repeat")
# After a change the boxes are emptied: set (not deleted) before they are drawn, which also
# empties them in the browser.
if st.session_state.pop("acc:clear", False):
    for key in FIELDS:
        st.session_state[key] = ""

st.title("My account")
st.markdown(f"**{md_escape(user.name)}** · {md_escape(user.username)} · "
            f"{ROLE_LABEL[user.role]}")
if user.email:
    st.caption(md_escape(user.email))

st.subheader("Change your password")
notice = st.session_state.pop("acc:notice", None)
if notice:
    st.success(notice, icon=":material/check_circle:")
errors = st.session_state.get("acc:errors", {})


def field_error(field: str) -> None:
    if field in errors:
        st.error(md_escape(errors[field]), icon=":material/error:")


with st.form("change_password"):
    current = st.text_input("Current password", type="password", key="acc_current")
    field_error("current_password")
    new = st.text_input("New password", type="password", key="acc_new",
                        help="At least 10 characters, with letters and digits")
    field_error("new_password")
    repeat = st.text_input("Repeat the new password", type="password", key="acc_repeat")
    field_error("repeat")
    submitted = st.form_submit_button("Change password", type="primary")

if submitted:
    problems = {}
    if new != repeat:
        problems["repeat"] = "The two new passwords differ"
        if auth.password_problem(new):
            problems["new_password"] = auth.password_problem(new)
    else:
        try:
            auth.change_own_password(db, user, current, new)
        except ValidationError as exc:
            problems = exc.errors
    if problems:
        st.session_state["acc:errors"] = problems  # what was typed stays
    else:
        st.session_state.pop("acc:errors", None)
        st.session_state["acc:clear"] = True
        # The change signed out every session of this user; this one stays signed in.
        st.session_state["signed_in_at"] = datetime.now()
        st.session_state["acc:notice"] = (
            "Password changed. Your other sessions have ended; when you next open the CRM, "
            "sign in with the new password.")
    st.rerun()
