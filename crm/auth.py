"""Users, roles, password hashing, sign-in lockout and permission checks."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import bcrypt

from crm.db import Database
from crm import audit, i18n
from crm.i18n import gettext as _, ngettext

ROLES = ("admin", "manager", "rep", "viewer")
RANK = {"viewer": 0, "rep": 1, "manager": 2, "admin": 3}
MAX_FAILED = 5
LOCK_MINUTES = 15
# Tests lower the cost; production keeps bcrypt's default of 12.
BCRYPT_ROUNDS = int(os.environ.get("CRM_BCRYPT_ROUNDS", "12"))
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,31}$")


class PermissionDenied(PermissionError):
    pass


class AccountLocked(Exception):
    pass


@dataclass(frozen=True)
class User:
    id: int
    username: str
    name: str
    email: str | None
    role: str
    language: str | None = None  # None: the install-wide default

    def at_least(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    @property
    def sees_all(self) -> bool:
        return self.role in ("admin", "manager")


SYSTEM = User(id=0, username="system", name="System", email=None, role="admin")


def password_problem(password: str) -> str | None:
    """The strength rule, in words; None when the password passes."""
    if len(password) < 10:
        return _("Password must be at least 10 characters long")
    if not re.search(r"[A-Za-z]", password) or not re.search(r"[0-9]", password):
        return _("Password must contain both letters and digits")
    if len(password.encode()) > 72:
        return _("Password must be at most 72 bytes long")  # bcrypt ignores the rest
    return None


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()


def count_users(db: Database) -> int:
    return db.scalar("SELECT count(*) FROM users")


def get_user(db: Database, username: str) -> User | None:
    row = db.one(
        "SELECT id, username, name, email, role, language FROM users"
        " WHERE username = $u AND active",
        {"u": (username or "").lower().strip()},
    )
    return User(**row) if row else None


def set_language(db: Database, user: User, language: str | None) -> None:
    """The user's own language (None: the install-wide default)."""
    from crm.fields import ValidationError
    from crm.i18n import LANGUAGES

    if language is not None and language not in LANGUAGES:
        raise ValidationError({"language": _("Choose one of the offered languages")})
    with db.transaction() as cur:
        old = cur.execute("SELECT language FROM users WHERE id = $id",
                          {"id": user.id}).fetchone()
        if old is None or old[0] == language:
            return
        cur.execute("UPDATE users SET language = $l WHERE id = $id",
                    {"l": language, "id": user.id})
        audit.record(cur, user, "users", user.id, "update", {"language": [old[0], language]})


def list_users(db: Database) -> list[dict]:
    return db.query(
        "SELECT id, username, name, email, role, active, locked_until, last_login_at, created_at,"
        " password_hash <> '' AS has_password FROM users WHERE deleted_at IS NULL"
        " ORDER BY username"
    )


def owner_choices(db: Database) -> dict[int, str]:
    rows = db.query(
        "SELECT id, name FROM users WHERE active AND role IN ('admin', 'manager', 'rep')"
        " ORDER BY name"
    )
    return {r["id"]: r["name"] for r in rows}


def create_user(
    db: Database, actor: User | None, username: str, name: str, email: str | None,
    password: str, role: str,
) -> int:
    """Creates a user. actor None is allowed only while no user exists (the first admin)."""
    from crm.fields import EMAIL_RE, ValidationError

    username = (username or "").lower().strip()
    errors = {}
    if not USERNAME_RE.match(username):
        errors["username"] = _(
            "Username: 3-32 lowercase letters, digits, dot, dash or underscore")
    if not (name or "").strip():
        errors["name"] = _("Name is required")
    if email and not EMAIL_RE.match(email.strip().lower()):
        errors["email"] = _("{text} is not a valid email address").format(text=repr(email))
    if role not in ROLES:
        errors["role"] = _("Role must be one of {roles}").format(roles=", ".join(ROLES))
    problem = password_problem(password or "")
    if problem:
        errors["password"] = problem
    if errors:
        raise ValidationError(errors)
    if actor is not None and actor.role != "admin":
        raise PermissionDenied(_("Only an admin can add users"))
    # bcrypt takes a quarter of a second by design: never inside the process-wide write lock
    password_hash = hash_password(password)
    with db.transaction() as cur:
        existing = cur.execute("SELECT count(*) FROM users").fetchone()[0]
        if actor is None and existing:
            raise PermissionDenied(_("Only an admin can add users"))
        if actor is not None and actor.role != "admin":
            raise PermissionDenied(_("Only an admin can add users"))
        if actor is None and role != "admin":
            raise PermissionDenied(_("The first user must be an admin"))
        taken = cur.execute("SELECT 1 FROM users WHERE username = $u", {"u": username}).fetchone()
        if taken:
            raise ValidationError({"username": _("Username {name} is taken").format(
                name=repr(username))})
        new_id = cur.execute(
            "INSERT INTO users (username, name, email, password_hash, role, created_at,"
            " updated_at, created_by) VALUES ($u, $n, $e, $h, $r, $t, $t, $by) RETURNING id",
            {"u": username, "n": name.strip(), "e": (email or "").strip().lower() or None,
             "h": password_hash, "r": role, "t": _now(), "by": actor.id if actor else None},
        ).fetchone()[0]
        audit.record(cur, actor or SYSTEM, "users", new_id, "create",
                     {"username": [None, username], "role": [None, role]})
    return new_id


def set_active(db: Database, actor: User, username: str, active: bool) -> None:
    """Locks a user out (active False) or lets them back in, which also lifts a lockout
    after failed sign-ins."""
    if actor.role != "admin":
        raise PermissionDenied(_("Only an admin can lock or unlock users"))
    username = (username or "").lower().strip()
    with db.transaction() as cur:
        row = cur.execute("SELECT id, role, active FROM users WHERE username = $u",
                          {"u": username}).fetchone()
        if not row:
            raise LookupError(_("No user named {name}").format(name=repr(username)))
        if not active:
            _keep_an_admin(cur, actor, row[0], row[1], row[2], "admin", False)
        cur.execute(
            "UPDATE users SET active = $a, failed_attempts = 0, locked_until = NULL,"
            " version = version + 1, updated_at = $t, updated_by = $by WHERE id = $id",
            {"a": active, "id": row[0], "t": datetime.now(), "by": actor.id or None},
        )
        audit.record(cur, actor, "users", row[0], "unlock" if active else "lock",
                     {"active": [row[2], active]})


def update_user(db: Database, actor: User, user_id: int, *, name: str | None = None,
                email: str | None = None, role: str | None = None,
                active: bool | None = None) -> dict:
    """Changes a user's name, email, role or active flag (None leaves a value as it is);
    returns the changes as {field: [old, new]}. Admins only; the last active admin cannot be
    demoted or locked, and an admin cannot demote or lock themselves. A new role or a lock
    signs the user out everywhere."""
    from crm.fields import EMAIL_RE, ValidationError

    if actor is None or actor.role != "admin":
        raise PermissionDenied(_("Only an admin can change users"))
    errors = {}
    if name is not None and not name.strip():
        errors["name"] = _("Name is required")
    email_given = email is not None  # "" clears the email, None leaves it
    if email_given:
        email = email.strip().lower() or None
        if email and not EMAIL_RE.match(email):
            errors["email"] = _("{text} is not a valid email address").format(
                text=repr(email))
    if role is not None and role not in ROLES:
        errors["role"] = _("Role must be one of {roles}").format(roles=", ".join(ROLES))
    if errors:
        raise ValidationError(errors)
    with db.transaction() as cur:
        row = cur.execute("SELECT name, email, role, active FROM users WHERE id = $id",
                          {"id": user_id}).fetchone()
        if not row:
            raise LookupError(_("No user with id {id}").format(id=user_id))
        old = dict(zip(("name", "email", "role", "active"), row))
        new = dict(old)
        for key, value in (("name", name and name.strip()), ("email", email), ("role", role),
                           ("active", active)):
            if value is not None or (key == "email" and email_given):
                new[key] = value
        changes = {k: [old[k], new[k]] for k in old if new[k] != old[k]}
        if not changes:
            return {}
        _keep_an_admin(cur, actor, user_id, old["role"], old["active"], new["role"],
                       new["active"])
        assignments = [f"{k} = ${k}" for k in changes]  # column names from the fixed list
        params = {k: v[1] for k, v in changes.items()}
        if "role" in changes or ("active" in changes and not new["active"]):
            assignments.append("sessions_revoked_at = $revoked")  # signed out everywhere
            params["revoked"] = datetime.now()
        if "active" in changes and new["active"]:
            assignments += ["failed_attempts = 0", "locked_until = NULL"]
        # the version tells an import's undo that the user changed since
        assignments += ["version = version + 1", "updated_at = $now", "updated_by = $by"]
        set_sql = ", ".join(assignments)
        cur.execute(f"UPDATE users SET {set_sql} WHERE id = $id",
                    {**params, "id": user_id, "now": datetime.now(), "by": actor.id or None})
        audit.record(cur, actor, "users", user_id, "update", changes)
    return changes


def reset_password(db: Database, actor: User, username: str, new_password: str) -> None:
    """An admin sets someone's password: it signs them out everywhere and lifts a lockout
    after failed sign-ins (not an admin's lock)."""
    from crm.fields import ValidationError

    if actor is None or actor.role != "admin":
        raise PermissionDenied(_("Only an admin can reset passwords"))
    problem = password_problem(new_password or "")
    if problem:
        raise ValidationError({"password": problem})
    username = (username or "").lower().strip()
    if not db.scalar("SELECT count(*) FROM users WHERE username = $u", {"u": username}):
        raise LookupError(_("No user named {name}").format(name=repr(username)))
    password_hash = hash_password(new_password)  # outside the write lock
    with db.transaction() as cur:
        row = cur.execute("SELECT id FROM users WHERE username = $u",
                          {"u": username}).fetchone()
        if not row:
            raise LookupError(_("No user named {name}").format(name=repr(username)))
        _set_password(cur, row[0], password_hash)
        audit.record(cur, actor, "users", row[0], "password_reset")


def change_own_password(db: Database, user: User, current_password: str,
                        new_password: str) -> None:
    """Any signed-in user changes their own password; the current one must be right (a wrong
    one counts as a failed sign-in). Signs the user out everywhere else."""
    from crm.fields import ValidationError

    if user is None or not user.id:
        raise PermissionDenied(_("Sign in first"))
    errors = {}
    if not current_password:
        errors["current_password"] = _("Enter your current password")
    problem = password_problem(new_password or "")
    if problem:
        errors["new_password"] = problem
    elif current_password and new_password == current_password:
        errors["new_password"] = _(
            "The new password must differ from the current one")
    if errors:
        raise ValidationError(errors)
    try:
        ok = _check_password(db, user.username, current_password, _now(), signing_in=False)
    except AccountLocked as exc:
        raise ValidationError({"current_password": str(exc)}) from None
    if not ok:
        raise ValidationError({"current_password": _("The current password is not right")})
    password_hash = hash_password(new_password)  # outside the write lock
    with db.transaction() as cur:
        _set_password(cur, user.id, password_hash)
        audit.record(cur, user, "users", user.id, "password_change")


def _set_password(cur, user_id: int, password_hash: str) -> None:
    cur.execute(
        "UPDATE users SET password_hash = $h, failed_attempts = 0, locked_until = NULL,"
        " sessions_revoked_at = $t, version = version + 1, updated_at = $t WHERE id = $id",
        {"h": password_hash, "t": datetime.now(), "id": user_id},
    )


def _keep_an_admin(cur, actor: User, user_id: int, old_role: str, old_active: bool,
                   new_role: str, new_active: bool) -> None:
    """Refuses a change that takes away the admin role or the sign-in of the acting admin or
    of the last active admin."""
    if not (old_role == "admin" and old_active) or (new_role == "admin" and new_active):
        return
    if user_id == actor.id:
        raise PermissionDenied(
            _("You cannot remove your own admin role or lock yourself out"))
    others = cur.execute(
        "SELECT count(*) FROM users WHERE role = 'admin' AND active AND id <> $id",
        {"id": user_id},
    ).fetchone()[0]
    if not others:
        raise PermissionDenied(
            _("This is the last active admin: make someone else an admin first"))


def verify_login(db: Database, username: str, password: str, now: datetime | None = None) -> bool:
    """Checks a sign-in attempt; five failures lock the account for fifteen minutes."""
    return _check_password(db, username, password, now or _now(), signing_in=True)


def _check_password(db: Database, username: str, password: str, now: datetime,
                    signing_in: bool) -> bool:
    """bcrypt runs outside the write lock (it takes ~0.25 s on purpose); the short write
    after it re-checks the row, so a lock or a new password set meanwhile is honoured and
    concurrent failures each count."""
    username = (username or "").lower().strip()
    sql = ("SELECT id, password_hash, active, locked_until FROM users WHERE username = $u")
    for _attempt in range(3):  # a password changed while we hashed: check against the new one
        row = db.one(sql, {"u": username})
        if not row:
            return False
        _refuse_if_locked(row, now)
        if not row["password_hash"]:  # imported without a password: an admin sets one
            return False
        ok = bcrypt.checkpw((password or "").encode(), row["password_hash"].encode())
        with db.transaction() as cur:
            res = cur.execute(sql, {"u": username})
            current = dict(zip([d[0] for d in res.description], res.fetchone()))
            if current["password_hash"] != row["password_hash"]:
                continue
            _refuse_if_locked(current, now)
            if ok:
                cur.execute(
                    "UPDATE users SET failed_attempts = 0, locked_until = NULL"
                    + (", last_login_at = $t" if signing_in else "") + " WHERE id = $id",
                    {"id": current["id"], **({"t": now} if signing_in else {})},
                )
                return True
            # an expired lock starts the count afresh; the increment is done by the database
            failed = cur.execute(
                "UPDATE users SET failed_attempts = CASE WHEN locked_until IS NULL"
                " THEN failed_attempts + 1 ELSE 1 END, locked_until = NULL"
                " WHERE id = $id RETURNING failed_attempts", {"id": current["id"]},
            ).fetchone()[0]
            if failed < MAX_FAILED:
                return False
            cur.execute(
                "UPDATE users SET failed_attempts = 0, locked_until = $l WHERE id = $id",
                {"l": now + timedelta(minutes=LOCK_MINUTES), "id": current["id"]},
            )
            audit.record(cur, SYSTEM, "users", current["id"], "locked",
                         {"failed_attempts": [MAX_FAILED - 1, MAX_FAILED]})
        raise AccountLocked(ngettext(
            "Too many failed sign-ins: this account is locked for {n} minute.",
            "Too many failed sign-ins: this account is locked for {n} minutes.",
            LOCK_MINUTES).format(n=i18n.number(LOCK_MINUTES)))
    return False


def _refuse_if_locked(row: dict, now: datetime) -> None:
    if not row["active"]:
        raise AccountLocked(_("This account is locked. Ask an admin to unlock it."))
    locked_until = row["locked_until"]
    if locked_until and locked_until > now:
        minutes = max(1, -(-int((locked_until - now).total_seconds()) // 60))
        raise AccountLocked(ngettext(
            "Too many failed sign-ins: this account is locked for {n} more minute.",
            "Too many failed sign-ins: this account is locked for {n} more minutes.",
            minutes).format(n=i18n.number(minutes)))


def revoke_sessions(db: Database, user: User) -> None:
    """Signing out: every sign-in cookie issued to the user until now stops working."""
    with db.transaction() as cur:
        cur.execute("UPDATE users SET sessions_revoked_at = $t WHERE id = $id",
                    {"t": datetime.now(), "id": user.id})


def cookie_still_valid(db: Database, username: str, issued_at: datetime) -> bool:
    row = db.one("SELECT sessions_revoked_at FROM users WHERE username = $u AND active",
                 {"u": (username or "").lower()})
    return row is not None and (row["sessions_revoked_at"] is None
                                or issued_at > row["sessions_revoked_at"])


def credentials(db: Database) -> dict:
    """The dict streamlit-authenticator expects, built from the users table (never a YAML file)."""
    rows = db.query("SELECT username, name, email, password_hash, role FROM users"
                    " WHERE active AND password_hash <> ''")
    return {"usernames": {
        r["username"]: {"name": r["name"], "email": r["email"], "password": r["password_hash"],
                        "roles": [r["role"]]}
        for r in rows
    }}


# --- permissions -------------------------------------------------------------------------

def require(user: User, action: str, record: dict | None = None) -> None:
    """Raises PermissionDenied unless the user may do action (view/create/edit/delete) on record."""
    if user is None:
        raise PermissionDenied(_("Sign in first"))
    if user.sees_all:
        return
    if user.role == "viewer":
        raise PermissionDenied(_("Viewers have read-only access to dashboards"))
    # reps: their own records only
    if action == "create":
        return
    if record is not None and record.get("owner_id") != user.id:
        raise PermissionDenied(_("Reps can only see and change their own records"))


def _now() -> datetime:
    return datetime.now().replace(microsecond=0)
