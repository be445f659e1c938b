"""Users (admin): the team, adding a user, editing one, resetting a password."""
from datetime import datetime

import pandas as pd
import streamlit as st

from crm import auth, i18n
from crm.fields import ValidationError
from crm.i18n import gettext as _
from crm.ui.guard import ROLE_LABEL, require_user
from crm.ui.session import get_db
from crm.ui.tables import grid
from crm.ui.text import md_escape

user = require_user("admin")
db = get_db()

ADD = {"nu_name": "", "nu_username": "", "nu_email": "", "nu_role": "rep", "nu_password": ""}
RESET = {"rp_password": "", "rp_repeat": ""}


def start_over(flag: str, defaults: dict) -> None:
    """Empties a form after a save. Widget values can only be set before the widgets are
    drawn, so the save raises a flag and reruns, and this (called before the form) assigns
    the defaults; assigning, unlike deleting the keys, also empties the boxes in the browser."""
    if st.session_state.pop(flag, False):
        for key, value in defaults.items():
            st.session_state[key] = value


def field_error(errors: dict, field: str) -> None:
    if field in errors:
        st.error(md_escape(errors[field]), icon=":material/error:")


def refused(errors_key: str, errors: dict) -> None:
    """Keeps what was typed and shows the errors next to their fields on the next run."""
    st.session_state[errors_key] = errors
    st.rerun()


def done(notice: str, flag: str | None = None, errors_key: str | None = None) -> None:
    st.session_state["users:notice"] = notice
    if flag:
        st.session_state[flag] = True
    if errors_key:
        st.session_state.pop(errors_key, None)
    st.rerun()


def label(person: dict) -> str:
    return f"{person['name']} ({person['username']})"


def role_label(role: str) -> str:
    return _(ROLE_LABEL[role])


start_over("nu:clear", ADD)
start_over("rp:clear", RESET)
for key, value in {**ADD, **RESET}.items():
    st.session_state.setdefault(key, value)

st.title(_("Users"))
notice_slot = st.empty()  # always there, so the elements below keep their places
notice = st.session_state.pop("users:notice", None)
if notice:
    notice_slot.success(md_escape(notice), icon=":material/check_circle:")

people = auth.list_users(db)
by_id = {p["id"]: p for p in people}
shown = pd.DataFrame(people)
if not shown.empty:
    shown["role"] = [role_label(r) for r in shown["role"]]
    for column, formatter in (("locked_until", i18n.format_datetime),
                              ("last_login_at", i18n.format_datetime),
                              ("created_at", i18n.format_date)):
        shown[column] = [formatter(v) if v is not None and v == v else None
                         for v in shown[column]]
grid(shown, hide_index=True, placeholder="—",
             column_config={"id": None, "username": _("Username"), "name": _("Name"),
                            "email": _("Email"), "role": _("Role"),
                            "active": st.column_config.CheckboxColumn(_("Active")),
                            "has_password": st.column_config.CheckboxColumn(
                                _("Password set"),
                                help=_("Users imported from a file sign in once an admin "
                                       "sets their password under “Reset a password”")),
                            "locked_until": _("Locked until"),
                            "last_login_at": _("Last sign-in"),
                            "created_at": _("Created")})

# keyed and tracked, so the open tab stays open when a form in it reruns the page
add_tab, edit_tab, reset_tab = st.tabs([_("Add a user"), _("Edit a user"), _("Reset a password")],
                                       key="users_tab", on_change="rerun")

with add_tab:
    errors = st.session_state.get("nu:errors", {})
    with st.form("add_user"):
        field_error(errors, "form")
        name = st.text_input(_("Name"), key="nu_name")
        field_error(errors, "name")
        username = st.text_input(_("Username"), key="nu_username",
                                 help=_("3-32 lowercase letters, digits, dot, dash or "
                                        "underscore"))
        field_error(errors, "username")
        email = st.text_input(_("Email"), key="nu_email")
        field_error(errors, "email")
        role = st.selectbox(_("Role"), auth.ROLES, format_func=role_label, key="nu_role")
        field_error(errors, "role")
        password = st.text_input(_("Password"), type="password", key="nu_password",
                                 help=_("At least 10 characters, with letters and digits"))
        field_error(errors, "password")
        if st.form_submit_button(_("Add user"), type="primary"):
            try:
                auth.create_user(db, user, username, name, email, password, role)
            except ValidationError as exc:
                refused("nu:errors", exc.errors)
            except auth.PermissionDenied as exc:
                refused("nu:errors", {"form": str(exc)})
            else:
                done(_("User {username} added").format(username=username.lower().strip()),
                     "nu:clear", "nu:errors")

with edit_tab:
    chosen = st.selectbox(_("User"), list(by_id), format_func=lambda i: label(by_id[i]),
                          index=None, key="eu_user", placeholder=_("Choose a user"))
    if chosen is not None:
        person = by_id[chosen]
        keys = {f: f"eu_{f}_{chosen}" for f in ("name", "email", "role", "active")}
        stored = {"name": person["name"], "email": person["email"] or "",
                  "role": person["role"], "active": person["active"]}
        # Filled from the table, and again whenever the row changed (saved here or elsewhere)
        if st.session_state.get(f"eu_stored_{chosen}") != stored:
            st.session_state[f"eu_stored_{chosen}"] = stored
            for field, key in keys.items():
                st.session_state[key] = stored[field]
        errors = st.session_state.get(f"eu:errors:{chosen}", {})
        yourself = chosen == user.id
        with st.form("edit_user"):
            field_error(errors, "form")
            st.text_input(_("Name"), key=keys["name"])
            field_error(errors, "name")
            st.text_input(_("Email"), key=keys["email"])
            field_error(errors, "email")
            st.selectbox(_("Role"), auth.ROLES, format_func=role_label, key=keys["role"],
                         disabled=yourself,
                         help=_("You cannot change your own role") if yourself else
                         _("A new role signs the user out everywhere"))
            field_error(errors, "role")
            st.checkbox(_("Active (can sign in)"), key=keys["active"], disabled=yourself,
                        help=_("You cannot lock yourself out") if yourself else
                        _("Unticked: the user is locked out and signed out everywhere"))
            field_error(errors, "active")
            if st.form_submit_button(_("Save changes"), type="primary"):
                values = {f: st.session_state[k] for f, k in keys.items()}
                try:
                    changes = auth.update_user(db, user, chosen, **values)
                except ValidationError as exc:
                    refused(f"eu:errors:{chosen}", exc.errors)
                except auth.PermissionDenied as exc:
                    refused(f"eu:errors:{chosen}", {"form": str(exc)})
                else:
                    done(_("Saved {username}").format(username=person["username"]) if changes
                         else _("Nothing changed"),
                         errors_key=f"eu:errors:{chosen}")
        locked_until = person["locked_until"]
        if person["active"] and locked_until and locked_until > datetime.now():
            st.warning(_("Locked out after failed sign-ins until {when}.").format(
                when=i18n.format_datetime(locked_until)),
                       icon=":material/lock_clock:")
            if st.button(_("Lift the lock"), key="eu_lift"):
                auth.set_active(db, user, person["username"], True)
                done(_("{username} can sign in again").format(username=person["username"]))

with reset_tab:
    others = [i for i in by_id if i != user.id]
    target = st.selectbox(_("User"), others, format_func=lambda i: label(by_id[i]),
                          index=None, key="rp_user", placeholder=_("Choose a user"))
    st.caption(_("Your own password: **{page}**. A reset signs the user out everywhere and "
                 "lifts a lockout after failed sign-ins.").format(page=_("My account")))
    errors = st.session_state.get("rp:errors", {})
    with st.form("reset_password"):
        field_error(errors, "user")
        field_error(errors, "form")
        new = st.text_input(_("New password"), type="password", key="rp_password",
                            help=_("At least 10 characters, with letters and digits"))
        field_error(errors, "password")
        repeat = st.text_input(_("Repeat the new password"), type="password",
                               key="rp_repeat")
        field_error(errors, "repeat")
        if st.form_submit_button(_("Set password"), type="primary"):
            problems = {}
            if target is None:
                problems["user"] = _("Choose a user first")
            if new != repeat:
                problems["repeat"] = _("The two passwords differ")
            if not problems:
                try:
                    auth.reset_password(db, user, by_id[target]["username"], new)
                except ValidationError as exc:
                    problems = exc.errors
                except (auth.PermissionDenied, LookupError) as exc:
                    problems = {"form": str(exc)}
            if problems:
                refused("rp:errors", problems)
            else:
                done(_("New password set for {username}").format(
                    username=by_id[target]["username"]), "rp:clear", "rp:errors")
