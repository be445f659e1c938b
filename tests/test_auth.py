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
