from datetime import timedelta

import pytest

from crm import auth
from crm.fields import ValidationError
from tests.conftest import PASSWORD


def test_passwords_are_bcrypt_hashed(db, team):
    stored = db.scalar("SELECT password_hash FROM users WHERE username = 'reza'")
    assert stored.startswith("$2") and PASSWORD not in stored
    assert auth.verify_login(db, "reza", PASSWORD) is True
    assert auth.verify_login(db, "REZA ", PASSWORD) is True  # usernames are case-insensitive
    assert auth.verify_login(db, "nobody", PASSWORD) is False


@pytest.mark.parametrize("weak", ["short1", "onlyletters", "1234567890123"])
def test_weak_passwords_are_refused(db, weak):
    with pytest.raises(ValidationError) as exc:
        auth.create_user(db, None, "admin", "Ada", None, weak, "admin")
    assert "password" in exc.value.errors


def test_first_user_must_be_admin_and_later_users_need_an_admin(db, team):
    with pytest.raises(auth.PermissionDenied):
        auth.create_user(db, None, "sneaky", "S", None, PASSWORD, "admin")
    with pytest.raises(auth.PermissionDenied):
        auth.create_user(db, team["maria"], "newrep", "N", None, PASSWORD, "rep")
    with pytest.raises(ValidationError, match="taken"):
        auth.create_user(db, team["admin"], "reza", "R", None, PASSWORD, "rep")


def test_five_failures_lock_the_account_for_fifteen_minutes(db, team):
    now = auth._now()
    for _ in range(4):
        assert auth.verify_login(db, "sam", "wrong", now=now) is False
    with pytest.raises(auth.AccountLocked, match="locked for 15 minutes"):
        auth.verify_login(db, "sam", "wrong", now=now)
    # even the right password is refused while locked
    with pytest.raises(auth.AccountLocked, match="locked for 10 more minute"):
        auth.verify_login(db, "sam", PASSWORD, now=now + timedelta(minutes=5))
    assert auth.verify_login(db, "sam", PASSWORD, now=now + timedelta(minutes=15, seconds=1))


def test_a_success_resets_the_failure_count(db, team):
    for _ in range(4):
        auth.verify_login(db, "sam", "wrong")
    assert auth.verify_login(db, "sam", PASSWORD)
    for _ in range(4):
        assert auth.verify_login(db, "sam", "wrong") is False


def test_admin_lock_keeps_a_user_out(db, team):
    auth.set_active(db, team["admin"], "sam", False)
    with pytest.raises(auth.AccountLocked):
        auth.verify_login(db, "sam", PASSWORD)
    assert "sam" not in auth.credentials(db)["usernames"]
    assert auth.get_user(db, "sam") is None
    auth.set_active(db, team["admin"], "sam", True)
    assert auth.verify_login(db, "sam", PASSWORD)


def test_permission_matrix(team):
    lead_of_reza = {"owner_id": team["reza"].id}
    auth.require(team["reza"], "edit", lead_of_reza)
    auth.require(team["maria"], "delete", lead_of_reza)
    for who in ("sam", "vic"):
        with pytest.raises(auth.PermissionDenied):
            auth.require(team[who], "edit", lead_of_reza)


def test_cookie_key_is_generated_once_and_kept(tmp_path, monkeypatch):
    from crm import config

    monkeypatch.delenv("CRM_COOKIE_KEY", raising=False)
    first = config.cookie_key(tmp_path / "crm.duckdb")
    assert len(first) >= 32 and first == config.cookie_key(tmp_path / "crm.duckdb")
    monkeypatch.setenv("CRM_COOKIE_KEY", "from-env")
    assert config.cookie_key(tmp_path / "crm.duckdb") == "from-env"
    assert config.cookie_key(tmp_path / "crm.duckdb", "from-secrets") == "from-secrets"


def test_signing_out_revokes_cookies_issued_before(db, team):
    before = auth._now() - timedelta(seconds=5)
    assert auth.cookie_still_valid(db, "reza", before)
    auth.revoke_sessions(db, team["reza"])
    assert not auth.cookie_still_valid(db, "reza", before)
    assert auth.cookie_still_valid(db, "reza", auth._now() + timedelta(seconds=5))
    assert auth.cookie_still_valid(db, "sam", before)  # only that user's cookies
    auth.set_active(db, team["admin"], "sam", False)
    assert not auth.cookie_still_valid(db, "sam", auth._now())


# --- bcrypt runs outside the write lock (issue 6, item 12) ----------------------------------

def _held_bcrypt(monkeypatch, name, parties=1):
    """Replaces bcrypt.<name> with one whose first `parties` calls wait (up to 20 s) for the
    test to release them, once all have entered; `released` says whether the release came
    (False: the test itself was kept waiting, e.g. by a lock the caller held). Later calls
    run straight through."""
    import threading

    real = getattr(auth.bcrypt, name)
    entered = threading.Barrier(parties + 1)
    release = threading.Event()
    released = []
    calls = []
    count = threading.Lock()

    def held(*args):
        with count:
            calls.append(1)
            first = len(calls) <= parties
        if first:
            entered.wait(timeout=20)
            released.append(release.wait(timeout=20))
        return real(*args)

    monkeypatch.setattr(auth.bcrypt, name, held)
    return entered, release, released


def _in_thread(fn, *args):
    import threading

    outcome = {}

    def run():
        try:
            outcome["value"] = fn(*args)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_sign_in_check_does_not_hold_the_write_lock_while_hashing(db, team, monkeypatch):
    entered, release, released = _held_bcrypt(monkeypatch, "checkpw")
    thread, outcome = _in_thread(auth.verify_login, db, "reza", PASSWORD)
    entered.wait(timeout=20)  # the other thread is inside bcrypt now
    with db.transaction() as cur:  # would wait for the sign-in check if it held the lock
        cur.execute("UPDATE users SET name = 'Reza R.' WHERE username = 'reza'")
    release.set()
    thread.join()
    assert released == [True]  # the write did not wait for bcrypt to finish
    assert outcome == {"value": True}


def test_creating_a_user_does_not_hold_the_write_lock_while_hashing(db, team, monkeypatch):
    entered, release, released = _held_bcrypt(monkeypatch, "hashpw")
    thread, outcome = _in_thread(auth.create_user, db, team["admin"], "nora", "Nora", None,
                                 PASSWORD, "rep")
    entered.wait(timeout=20)
    with db.transaction() as cur:
        cur.execute("UPDATE users SET name = 'Reza R.' WHERE username = 'reza'")
    release.set()
    thread.join()
    assert released == [True] and "error" not in outcome
    assert auth.verify_login(db, "nora", PASSWORD)


def test_concurrent_failed_sign_ins_each_count(db, team, monkeypatch):
    # both attempts read the row and run bcrypt before either writes
    entered, release, released = _held_bcrypt(monkeypatch, "checkpw", parties=2)
    threads = [_in_thread(auth.verify_login, db, "sam", "wrong") for _ in range(2)]
    entered.wait(timeout=20)
    release.set()
    for thread, outcome in threads:
        thread.join()
        assert outcome == {"value": False}
    assert db.scalar("SELECT failed_attempts FROM users WHERE username = 'sam'") == 2


def test_a_lock_set_while_hashing_refuses_the_right_password(db, team, monkeypatch):
    entered, release, released = _held_bcrypt(monkeypatch, "checkpw")
    thread, outcome = _in_thread(auth.verify_login, db, "sam", PASSWORD)
    entered.wait(timeout=20)
    auth.set_active(db, team["admin"], "sam", False)
    release.set()
    thread.join()
    assert isinstance(outcome.get("error"), auth.AccountLocked)


def test_a_password_reset_while_hashing_is_honoured(db, team, monkeypatch):
    entered, release, released = _held_bcrypt(monkeypatch, "checkpw")
    thread, outcome = _in_thread(auth.verify_login, db, "sam", PASSWORD)
    entered.wait(timeout=20)
    auth.reset_password(db, team["admin"], "sam", "brand new 2024")
    release.set()
    thread.join()
    assert released == [True]
    assert outcome == {"value": False}  # checked again, against the new password
    assert db.scalar("SELECT failed_attempts FROM users WHERE username = 'sam'") == 1


# --- editing users and passwords (issue 6, item 15) ------------------------------------------

def _audit(db, action):
    return db.query("SELECT username, record_id, changes FROM audit_log WHERE entity = 'users'"
                    " AND action = $a ORDER BY id", {"a": action})


def test_admin_edits_name_email_role_and_the_change_is_audited(db, team):
    from crm import leads

    leads.create_lead(db, team["reza"], {"last_name": "Owned"})  # reza's row is referenced
    before = auth._now() - timedelta(seconds=5)
    changes = auth.update_user(db, team["admin"], team["reza"].id, name=" Reza R. ",
                               email="REZA@example.com", role="manager")
    assert changes == {"name": ["Reza Rahimi", "Reza R."], "email": [None, "reza@example.com"],
                       "role": ["rep", "manager"]}
    reza = auth.get_user(db, "reza")
    assert (reza.name, reza.email, reza.role) == ("Reza R.", "reza@example.com", "manager")
    [entry] = _audit(db, "update")
    assert entry["username"] == "admin" and entry["record_id"] == reza.id
    assert '"role": ["rep", "manager"]' in entry["changes"]
    assert not auth.cookie_still_valid(db, "reza", before)  # a new role: signed out
    assert auth.update_user(db, team["admin"], reza.id, name="Reza R.") == {}  # no change
    auth.update_user(db, team["admin"], reza.id, email="")
    assert auth.get_user(db, "reza").email is None


def test_renaming_does_not_sign_anyone_out(db, team):
    before = auth._now() - timedelta(seconds=5)
    auth.update_user(db, team["admin"], team["sam"].id, name="Samuel Seller")
    assert auth.cookie_still_valid(db, "sam", before)


def test_update_user_validates_and_needs_an_admin(db, team):
    with pytest.raises(auth.PermissionDenied):
        auth.update_user(db, team["maria"], team["reza"].id, role="manager")
    with pytest.raises(ValidationError) as exc:
        auth.update_user(db, team["admin"], team["reza"].id, name=" ", email="nope",
                         role="boss")
    assert set(exc.value.errors) == {"name", "email", "role"}
    with pytest.raises(LookupError):
        auth.update_user(db, team["admin"], 9999, name="Ghost")


def test_the_last_admin_and_the_acting_admin_stay_admins(db, team):
    admin = team["admin"]
    for change in ({"role": "manager"}, {"active": False}):
        with pytest.raises(auth.PermissionDenied, match="own admin role|yourself"):
            auth.update_user(db, admin, admin.id, **change)
    with pytest.raises(auth.PermissionDenied):
        auth.set_active(db, admin, "admin", False)
    auth.update_user(db, admin, team["maria"].id, role="admin")
    maria = auth.get_user(db, "maria")
    auth.update_user(db, maria, admin.id, role="manager")  # another admin is left: fine
    with pytest.raises(auth.PermissionDenied, match="yourself|own admin role"):
        auth.update_user(db, maria, maria.id, role="rep")
    # the last active admin cannot be locked or demoted by anyone (here: the command line)
    with pytest.raises(auth.PermissionDenied, match="last active admin"):
        auth.set_active(db, auth.SYSTEM, "maria", False)
    with pytest.raises(auth.PermissionDenied, match="last active admin"):
        auth.update_user(db, auth.SYSTEM, maria.id, role="rep")
    assert auth.get_user(db, "maria").role == "admin"


def test_locking_and_unlocking_through_update_user(db, team):
    for _ in range(4):
        auth.verify_login(db, "sam", "wrong")
    with pytest.raises(auth.AccountLocked):
        auth.verify_login(db, "sam", "wrong")
    auth.update_user(db, team["admin"], team["sam"].id, active=False)
    with pytest.raises(auth.AccountLocked, match="Ask an admin"):
        auth.verify_login(db, "sam", PASSWORD)
    auth.update_user(db, team["admin"], team["sam"].id, active=True)  # lifts the lockout too
    assert auth.verify_login(db, "sam", PASSWORD)


def test_admin_resets_a_password(db, team):
    before = auth._now() - timedelta(seconds=5)
    for _ in range(4):
        auth.verify_login(db, "sam", "wrong")
    with pytest.raises(auth.PermissionDenied):
        auth.reset_password(db, team["maria"], "sam", "brand new 2024")
    with pytest.raises(ValidationError) as exc:
        auth.reset_password(db, team["admin"], "sam", "short")
    assert "password" in exc.value.errors
    with pytest.raises(LookupError):
        auth.reset_password(db, team["admin"], "nobody", "brand new 2024")
    auth.reset_password(db, team["admin"], "SAM", "brand new 2024")
    assert not auth.verify_login(db, "sam", PASSWORD)
    assert db.scalar("SELECT failed_attempts FROM users WHERE username = 'sam'") == 1
    assert auth.verify_login(db, "sam", "brand new 2024")
    assert not auth.cookie_still_valid(db, "sam", before)
    [entry] = _audit(db, "password_reset")
    assert entry["username"] == "admin" and entry["changes"] is None  # no hash in the log


def test_everyone_changes_their_own_password(db, team):
    vic = team["vic"]
    before = auth._now() - timedelta(seconds=5)
    with pytest.raises(ValidationError) as exc:
        auth.change_own_password(db, vic, "wrong one", "brand new 2024")
    assert set(exc.value.errors) == {"current_password"}
    with pytest.raises(ValidationError) as exc:
        auth.change_own_password(db, vic, "", "weak")
    assert set(exc.value.errors) == {"current_password", "new_password"}
    with pytest.raises(ValidationError, match="differ"):
        auth.change_own_password(db, vic, PASSWORD, PASSWORD)
    assert auth.cookie_still_valid(db, "vic", before)
    auth.change_own_password(db, vic, PASSWORD, "brand new 2024")
    assert auth.verify_login(db, "vic", "brand new 2024")
    assert not auth.verify_login(db, "vic", PASSWORD)
    assert not auth.cookie_still_valid(db, "vic", before)
    [entry] = _audit(db, "password_change")
    assert entry["username"] == "vic" and entry["record_id"] == vic.id


def test_guessing_the_current_password_counts_as_failed_sign_ins(db, team):
    for _ in range(4):
        with pytest.raises(ValidationError):
            auth.change_own_password(db, team["vic"], "wrong guess", "brand new 2024")
    with pytest.raises(ValidationError, match="locked for 15 minutes"):
        auth.change_own_password(db, team["vic"], "wrong guess", "brand new 2024")
    with pytest.raises(auth.AccountLocked):
        auth.verify_login(db, "vic", PASSWORD)
