"""AppTest: the Users page (add, edit, reset a password) and My account (own password)."""
from datetime import timedelta

from crm import auth
from crm.ui import navigation
from crm.ui.text import md_escape
from tests.conftest import PASSWORD
from tests.test_pages import errors, page, texts

ADD = "FormSubmitter:add_user-Add user"
EDIT = "FormSubmitter:edit_user-Save changes"
RESET = "FormSubmitter:reset_password-Set password"
CHANGE = "FormSubmitter:change_password-Change password"
HOSTILE = "![t](http://x/y.png)"


def emptied(at, *keys):
    """Empty in the browser too: a box keeps what it shows unless the server sends a value
    (set_value), which only assigning the key before the widget is drawn does."""
    for key in keys:
        box = at.text_input(key=key)
        assert box.value == "" and box.proto.set_value, key
    return True


def test_add_form_empties_after_a_user_is_added(app_env):
    at = page("pages/users.py", user="admin")
    at.text_input(key="nu_name").input("Nora New")
    at.text_input(key="nu_username").input("nora")
    at.text_input(key="nu_email").input("nora@example.com")
    at.selectbox(key="nu_role").set_value("manager")
    at.text_input(key="nu_password").input(PASSWORD)
    at.button(key=ADD).click().run()
    assert not errors(at)
    assert auth.get_user(app_env, "nora").role == "manager"
    assert emptied(at, "nu_name", "nu_username", "nu_email", "nu_password")
    assert at.selectbox(key="nu_role").value == "rep"
    assert any("nora added" in s.value for s in at.success)
    at.run()  # and it stays empty
    assert at.text_input(key="nu_name").value == ""


def test_add_form_keeps_values_and_shows_errors_next_to_their_fields(app_env):
    at = page("pages/users.py", user="admin")
    at.text_input(key="nu_name").input("Nora New")
    at.text_input(key="nu_username").input("reza")  # taken
    at.text_input(key="nu_email").input(HOSTILE)
    at.text_input(key="nu_password").input("short")
    at.button(key=ADD).click().run()
    assert auth.get_user(app_env, "nora") is None
    assert at.text_input(key="nu_name").value == "Nora New"
    assert at.text_input(key="nu_password").value == "short"
    form = [e for e in at.get("form") if e.proto.form.form_id == "add_user"][0]
    order = [(getattr(e, "key", None), getattr(e, "value", None)) for e in form]
    keys = [k for k, _ in order]
    messages = [v for k, v in order if k is None]
    email_error = keys.index("nu_email") + 1
    assert "valid email" in order[email_error][1]
    assert "\\!\\[t\\]" in order[email_error][1]  # the hostile text is escaped, not markup
    assert "10 characters" in order[keys.index("nu_password") + 1][1]
    assert len(messages) == 2  # the taken name is found after the email and password pass


def test_admin_edits_a_user_and_cannot_demote_themselves(app_env, team):
    before = auth._now() - timedelta(seconds=5)
    at = page("pages/users.py", user="admin")
    at.selectbox(key="eu_user").set_value(team["reza"].id).run()
    prefix = f"eu_{{}}_{team['reza'].id}"
    assert at.text_input(key=prefix.format("name")).value == "Reza Rahimi"
    at.text_input(key=prefix.format("name")).input(HOSTILE)
    at.text_input(key=prefix.format("email")).input("Reza@Example.com")
    at.selectbox(key=prefix.format("role")).set_value("manager")
    at.button(key=EDIT).click().run()
    assert not errors(at)
    reza = auth.get_user(app_env, "reza")
    assert (reza.name, reza.email, reza.role) == (HOSTILE, "reza@example.com", "manager")
    assert at.text_input(key=prefix.format("email")).value == "reza@example.com"  # as saved
    assert not auth.cookie_still_valid(app_env, "reza", before)
    assert "![t]" not in texts(at)  # hostile names never reach markdown unescaped

    at.selectbox(key="eu_user").set_value(team["admin"].id).run()
    own = f"eu_{{}}_{team['admin'].id}"
    assert at.selectbox(key=own.format("role")).disabled
    assert at.checkbox(key=own.format("active")).disabled

    at.selectbox(key="eu_user").set_value(team["sam"].id).run()
    sam = f"eu_{{}}_{team['sam'].id}"
    at.text_input(key=sam.format("name")).input("")
    at.text_input(key=sam.format("email")).input("not an email")
    at.button(key=EDIT).click().run()
    assert any("Name is required" in e for e in errors(at))
    assert at.text_input(key=sam.format("email")).value == "not an email"  # kept
    assert auth.get_user(app_env, "sam").name == "Sam Seller"


def test_admin_locks_a_user_from_the_edit_form(app_env, team):
    at = page("pages/users.py", user="admin")
    at.selectbox(key="eu_user").set_value(team["sam"].id).run()
    at.checkbox(key=f"eu_active_{team['sam'].id}").uncheck()
    at.button(key=EDIT).click().run()
    assert not errors(at)
    assert auth.get_user(app_env, "sam") is None  # get_user returns active users only


def test_admin_resets_a_password(app_env, team):
    at = page("pages/users.py", user="admin")
    assert "Ada Admin (admin)" not in at.selectbox(key="rp_user").options  # own: My account
    at.selectbox(key="rp_user").set_value(team["sam"].id)
    at.text_input(key="rp_password").input("brand new 2024")
    at.text_input(key="rp_repeat").input("brand new 2025")
    at.button(key=RESET).click().run()
    assert any("differ" in e for e in errors(at))
    assert at.text_input(key="rp_password").value == "brand new 2024"
    at.text_input(key="rp_repeat").input("brand new 2024")
    at.button(key=RESET).click().run()
    assert not errors(at)
    assert auth.verify_login(app_env, "sam", "brand new 2024")
    assert emptied(at, "rp_password", "rp_repeat")


def test_everyone_has_my_account_in_the_menu():
    for role in auth.ROLES:
        assert "My account" in [p[2] for p in navigation.allowed(role) if p[5]]


def test_a_viewer_changes_their_own_password(app_env, team):
    at = page("pages/account.py", user="vic")
    assert "Vic Viewer" in texts(at)
    at.text_input(key="acc_current").input("wrong password 1")
    at.text_input(key="acc_new").input("brand new 2024")
    at.text_input(key="acc_repeat").input("brand new 2024")
    at.button(key=CHANGE).click().run()
    assert any("current password" in e for e in errors(at))
    assert at.text_input(key="acc_new").value == "brand new 2024"  # kept after a refusal
    at.text_input(key="acc_current").input(PASSWORD)
    at.text_input(key="acc_repeat").input("brand new 2025")
    at.button(key=CHANGE).click().run()
    assert any("differ" in e for e in errors(at))
    at.text_input(key="acc_repeat").input("brand new 2024")
    at.button(key=CHANGE).click().run()
    assert not errors(at)
    assert any("Password changed" in s.value for s in at.success)
    assert auth.verify_login(app_env, "vic", "brand new 2024")
    assert emptied(at, "acc_current", "acc_new", "acc_repeat")
    assert at.session_state["authentication_status"]  # still signed in here


def test_my_account_escapes_a_hostile_name(app_env, team):
    auth.update_user(app_env, team["admin"], team["vic"].id, name=HOSTILE)
    at = page("pages/account.py", user="vic")
    assert md_escape(HOSTILE) in texts(at) and HOSTILE not in texts(at)


def test_admin_lifts_a_lockout_after_failed_sign_ins(app_env, team):
    for _ in range(4):
        auth.verify_login(app_env, "sam", "wrong")
    try:
        auth.verify_login(app_env, "sam", "wrong")
    except auth.AccountLocked:
        pass
    at = page("pages/users.py", user="admin")
    at.selectbox(key="eu_user").set_value(team["sam"].id).run()
    assert any("Locked out after failed sign-ins" in w.value for w in at.warning)
    at.button(key="eu_lift").click().run()
    assert auth.verify_login(app_env, "sam", PASSWORD)
