"""Every page starts with require_user(): it signs people in and stops the page otherwise.

A fresh server runs pages/<page>.py without app.py, so this check cannot live in app.py alone."""
from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from types import SimpleNamespace

import streamlit as st
import streamlit_authenticator as stauth
from streamlit_authenticator.models import cookie_model as _library_cookie_model
from streamlit_authenticator.utilities import LoginError

from crm import auth, config, custom_fields, dialect, settings
from crm.auth import User
from crm.i18n import N_, gettext as _
from crm.ui import cookie, locale
from crm.ui.navigation import menu
from crm.ui.session import get_db
from crm.ui.text import md_escape

# The library's cookie manager renders a component on every run whose reply reruns the whole
# page; crm.ui.cookie reads and writes the cookie instead, so that component is never made.
_library_cookie_model.stx = SimpleNamespace(CookieManager=lambda: None)

COOKIE_NAME = "crm_session"
COOKIE_DAYS = 7
ROLE_LABEL = {"admin": N_("Admin"), "manager": N_("Manager"), "rep": N_("Sales rep"),
              "viewer": N_("Viewer")}
KEEP_ON_SIGN_OUT = (locale.CHOSEN,)  # the sign-in screen stays in the language in use


def current_user() -> User | None:
    """The signed-in user from this session, re-read from the users table; renders nothing.

    A session ends when its user is locked, or signed out (or had the password changed)
    anywhere after this session signed in."""
    if not st.session_state.get("authentication_status"):
        return None
    db = get_db()
    user = auth.get_user(db, st.session_state.get("username") or "")
    signed_in_at = st.session_state.setdefault("signed_in_at", datetime.now())
    if user is None or not auth.cookie_still_valid(db, user.username, signed_in_at):
        _forget_session()
        return None
    return user


def _forget_session() -> None:
    for key in [k for k in st.session_state if k not in KEEP_ON_SIGN_OUT]:
        del st.session_state[key]  # nothing of the last user's screens survives
    st.session_state["authentication_status"] = None


def _log_run() -> None:
    """Tests count script runs per interaction (one is the goal) through CRM_RUN_LOG."""
    path = os.environ.get("CRM_RUN_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("run\n")


def require_user(min_role: str = "viewer") -> User:
    st.set_page_config(layout="wide")  # also when a fresh server runs the page without app.py
    _log_run()
    db = get_db()
    custom_fields.refresh(db)  # an admin may have changed fields in another session
    locale.apply(db, current_user())
    if auth.count_users(db) == 0:
        _first_admin(db)
        st.stop()
    authenticator = _authenticator(db)
    if st.session_state.pop("signing_out", False) and current_user():
        _sign_out(authenticator, current_user())
    # The sign-in form's slot exists on every run, so the page's elements keep their places
    # between the run that signs in and the next one (the browser matches widgets by place).
    slot = st.empty()
    user = current_user() or _login(db, authenticator, slot)
    if user is None:
        st.stop()
    if not user.at_least(min_role):
        st.error(_("Your role ({role}) cannot open this page.").format(
            role=_(ROLE_LABEL[user.role])))
        _sidebar(user, authenticator)
        st.stop()
    _sidebar(user, authenticator)
    _daily_rules(db)
    return user


def _daily_rules(db) -> None:
    """The date automation rules run at the first page load of the day (a dictionary lookup
    on every later load). A failure is logged, never shown to whoever happened to load first."""
    from crm import rules

    try:
        rules.run_daily_if_due(db)
    except Exception:  # noqa: BLE001 - each rule logs its own failures; this is the rest
        logging.getLogger(__name__).exception("the daily automation rules failed")


def _cookie_key(db) -> str:
    try:
        from_secrets = st.secrets.get("cookie_key")
    except FileNotFoundError:
        from_secrets = None
    except Exception:  # a malformed secrets.toml should not lock everyone out
        from_secrets = None
    # read on every run: a restore may have replaced the database's key
    shared = (lambda: settings.shared_cookie_key(db)) if db.dialect == dialect.POSTGRESQL \
        else None
    return config.cookie_key(config.db_path(), from_secrets, shared)


def _authenticator(db) -> stauth.Authenticate:
    key = _cookie_key(db)
    authenticator = stauth.Authenticate(
        auth.credentials(db), COOKIE_NAME, key, cookie_expiry_days=COOKIE_DAYS,
        auto_hash=False, login_sleep_time=0,
    )

    def check_credentials(username: str, password: str) -> bool:
        try:
            ok = auth.verify_login(db, username, password)
        except auth.AccountLocked as exc:
            raise LoginError(str(exc)) from None
        if ok:
            st.session_state["signed_in_at"] = datetime.now()
        return ok

    def get_cookie():
        if st.session_state.get("logout"):
            return None
        token = cookie.decode(cookie.read(COOKIE_NAME), key)
        if token is None:
            return None
        issued = datetime.fromtimestamp(token["exp_date"]) - timedelta(days=COOKIE_DAYS)
        if not auth.cookie_still_valid(db, token["username"], issued):
            return None
        st.session_state["signed_in_at"] = issued
        return token

    def set_cookie():
        value, expires = cookie.encode(st.session_state["username"], key, COOKIE_DAYS)
        cookie.write(COOKIE_NAME, value, expires)

    # our checks count failures, lock accounts and honour sign-outs; the library's form does
    # the rest
    authenticator.authentication_controller.authentication_model.check_credentials = (
        check_credentials
    )
    cookies = authenticator.cookie_controller
    cookies.get_cookie, cookies.set_cookie = get_cookie, set_cookie
    cookies.delete_cookie = lambda: cookie.delete(COOKIE_NAME)
    return authenticator


def _login(db, authenticator: stauth.Authenticate, slot) -> User | None:
    """Shows the sign-in form; returns the user once signed in.

    No st.rerun() after signing in or out: the cookie is written by a component rendered in
    this run, and a rerun would drop it before the browser runs it."""
    controller = authenticator.cookie_controller
    wanted_cookie = []
    set_cookie, controller.set_cookie = controller.set_cookie, lambda: wanted_cookie.append(True)
    with slot.container():
        left, middle, right = st.columns([1, 2, 1])
        with middle:
            title, language = st.columns([3, 2], vertical_alignment="bottom")
            title.title(_("CRM"))
            with language:
                locale.picker()
            st.caption(_("Sign in to continue."))
            try:
                authenticator.login(
                    location="main",
                    fields={"Form name": _("Sign in"), "Username": _("Username"),
                            "Password": _("Password"), "Login": _("Sign in")},
                )
            except LoginError as exc:
                st.error(md_escape(exc))
                return None
            status = st.session_state.get("authentication_status")
            if status is False:
                st.error(_("Username or password is incorrect."))
    controller.set_cookie = set_cookie
    user = current_user()
    if user is not None:
        chosen = st.session_state.get(locale.CHOSEN)
        if chosen and chosen != user.language:  # picked on the sign-in page: theirs now
            auth.set_language(db, user, chosen)
            user = current_user()
        locale.apply(db, user)
        slot.empty()
        if wanted_cookie:
            with st.sidebar:  # outside the emptied slot, and not shifting the main area
                set_cookie()
    return user


def _sidebar(user: User, authenticator: stauth.Authenticate) -> None:
    with st.sidebar:
        menu(user.role)
        st.divider()
        st.markdown(f"**{md_escape(user.name)}**  \n{_(ROLE_LABEL[user.role])} · "
                    f"{md_escape(user.username)}")
        st.button(_("Sign out"), key="sign_out", icon=":material/logout:",
                  on_click=st.session_state.__setitem__, args=("signing_out", True))


def _sign_out(authenticator: stauth.Authenticate, user: User) -> None:
    # The cookie deletion runs in the browser a moment later; revoking makes the old cookie
    # worthless at once, even if the browser never deletes it.
    auth.revoke_sessions(get_db(), user)
    authenticator.logout(location="unrendered")  # renders the cookie deletion; sets 'logout'
    keep = ("logout", "authentication_status", "username", "name", "roles", "email",
            *KEEP_ON_SIGN_OUT)
    for key in [k for k in st.session_state if k not in keep]:
        del st.session_state[key]  # nothing of the last user's screens survives


def _first_admin(db) -> None:
    title, language = st.columns([4, 1.2], vertical_alignment="bottom")
    title.title(_("Welcome to the CRM"))
    with language:
        locale.picker("first_admin_language")
    st.write(_("No one has an account yet. Create the first admin; you can add your team "
               "later."))
    errors = st.session_state.get("fa_errors", {})

    def field(label: str, key: str, problem: str, **kwargs) -> str:
        value = st.text_input(label, key=key, **kwargs)
        if problem in errors:
            st.error(errors[problem], icon=":material/error:")
        return value

    with st.form("first_admin"):
        name = field(_("Your name"), "fa_name", "name")
        username = field(_("Username"), "fa_username", "username",
                         help=_("3-32 lowercase letters, digits, dot, dash or underscore"))
        email = field(_("Email"), "fa_email", "email")
        password = field(_("Password"), "fa_password", "password", type="password",
                         help=_("At least 10 characters, with letters and digits"))
        repeat = field(_("Repeat password"), "fa_repeat", "repeat", type="password")
        for message in (m for k, m in errors.items()
                        if k not in ("name", "username", "email", "password", "repeat")):
            st.error(md_escape(message))
        demo = st.checkbox(_("Fill the CRM with demo data"), key="fa_demo",
                           help=_("Realistic leads, customers and contacts to try things out"))
        submitted = st.form_submit_button(_("Create admin"), type="primary")
    if not submitted:
        return
    from crm.fields import ValidationError

    try:
        if password != repeat:
            raise ValidationError({"repeat": _("The two passwords differ.")})
        auth.create_user(db, None, username, name, email, password, "admin")
        from crm import i18n, pipelines

        pipelines.name_defaults_in(db, i18n.language())  # the first admin's language
    except ValidationError as exc:
        st.session_state["fa_errors"] = exc.errors
        st.rerun()
    except auth.PermissionDenied as exc:
        st.session_state["fa_errors"] = {"form": str(exc)}
        st.rerun()
    st.session_state.pop("fa_errors", None)
    if demo:
        from crm import demo as demo_data, i18n

        bar = st.progress(0.0, text=_("Loading demo data…"))
        result = demo_data.load_demo(db, "small",
                                     progress=lambda f, text: bar.progress(min(f, 1.0), text=text),
                                     language=i18n.language())
        bar.empty()
        if result.get("demo_password"):
            st.session_state["demo_password_notice"] = result["demo_password"]
    st.session_state["authentication_status"] = True
    st.session_state["username"] = username.lower().strip()
    st.session_state["name"] = name
    st.session_state["signed_in_at"] = datetime.now()
    st.rerun()
