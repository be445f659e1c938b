"""My account (every role): who I am, my language, and changing my own password."""
from datetime import datetime

import streamlit as st

from crm import auth, i18n, settings
from crm.fields import ValidationError
from crm.i18n import gettext as _
from crm.ui import locale
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

st.title(_("My account"))
st.markdown(f"**{md_escape(user.name)}** · {md_escape(user.username)} · "
            f"{_(ROLE_LABEL[user.role])}")
if user.email:
    st.caption(md_escape(user.email))

LANGUAGE_CHOICES = [None, *i18n.LANGUAGES]


def language_name(code: str | None) -> str:
    if code is None:
        return _("Install default ({name})").format(
            name=i18n.LANGUAGES[settings.get_all(db)["language"]])
    return i18n.LANGUAGES[code]


def language_chosen() -> None:
    """Saved at once; the run this change starts is already in the new language, and the
    boxes below keep what was typed (their keys, not their labels, identify them)."""
    value = st.session_state["acc_language"]
    auth.set_language(db, user, value)
    if value is None:
        st.session_state.pop(locale.CHOSEN, None)
    else:
        st.session_state[locale.CHOSEN] = value


st.selectbox(_("Language"), LANGUAGE_CHOICES, format_func=language_name, key="acc_language",
             index=LANGUAGE_CHOICES.index(user.language if user.language in i18n.LANGUAGES
                                          else None),
             on_change=language_chosen)

st.subheader(_("Change your password"))
notice = st.session_state.pop("acc:notice", None)
if notice:
    st.success(notice, icon=":material/check_circle:")
errors = st.session_state.get("acc:errors", {})


def field_error(field: str) -> None:
    if field in errors:
        st.error(md_escape(errors[field]), icon=":material/error:")


with st.form("change_password"):
    current = st.text_input(_("Current password"), type="password", key="acc_current")
    field_error("current_password")
    new = st.text_input(_("New password"), type="password", key="acc_new",
                        help=_("At least 10 characters, with letters and digits"))
    field_error("new_password")
    repeat = st.text_input(_("Repeat the new password"), type="password", key="acc_repeat")
    field_error("repeat")
    submitted = st.form_submit_button(_("Change password"), type="primary")

if submitted:
    problems = {}
    if new != repeat:
        problems["repeat"] = _("The two new passwords differ")
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
        st.session_state["acc:notice"] = _(
            "Password changed. Your other sessions have ended; when you next open the CRM, "
            "sign in with the new password.")
    st.rerun()
