"""Users, roles, password hashing, sign-in lockout and permission checks."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import bcrypt

from crm.db import Database
from crm import audit

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

    def at_least(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    @property
    def sees_all(self) -> bool:
        return self.role in ("admin", "manager")


SYSTEM = User(id=0, username="system", name="System", email=None, role="admin")


def password_problem(password: str) -> str | None:
    """The strength rule, in words; None when the password passes."""
    if len(password) < 10:
        return "Password must be at least 10 characters long"
    if not re.search(r"[A-Za-z]", password) or not re.search(r"[0-9]", password):
        return "Password must contain both letters and digits"
    if len(password.encode()) > 72:
        return "Password must be at most 72 bytes long"  # bcrypt ignores the rest
    return None


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()


def count_users(db: Database) -> int:
    return db.scalar("SELECT count(*) FROM users")


def get_user(db: Database, username: str) -> User | None:
    row = db.one(
        "SELECT id, username, name, email, role FROM users WHERE username = $u AND active",
        {"u": (username or "").lower().strip()},
    )
    return User(**row) if row else None


def list_users(db: Database) -> list[dict]:
    return db.query(
        "SELECT id, username, name, email, role, active, locked_until, last_login_at, created_at"
        " FROM users ORDER BY username"
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
        errors["username"] = "Username: 3-32 lowercase letters, digits, dot, dash or underscore"
    if not (name or "").strip():
        errors["name"] = "Name is required"
    if email and not EMAIL_RE.match(email.strip().lower()):
        errors["email"] = f"{email!r} is not a valid email address"
    if role not in ROLES:
        errors["role"] = f"Role must be one of {', '.join(ROLES)}"
    problem = password_problem(password or "")
    if problem:
        errors["password"] = problem
    if errors:
        raise ValidationError(errors)
    with db.transaction() as cur:
        existing = cur.execute("SELECT count(*) FROM users").fetchone()[0]
        if actor is None and existing:
            raise PermissionDenied("Only an admin can add users")
        if actor is not None and actor.role != "admin":
            raise PermissionDenied("Only an admin can add users")
        if actor is None and role != "admin":
            raise PermissionDenied("The first user must be an admin")
        taken = cur.execute("SELECT 1 FROM users WHERE username = $u", {"u": username}).fetchone()
        if taken:
            raise ValidationError({"username": f"Username {username!r} is taken"})
        new_id = cur.execute(
            "INSERT INTO users (username, name, email, password_hash, role, created_at)"
            " VALUES ($u, $n, $e, $h, $r, $t) RETURNING id",
            {"u": username, "n": name.strip(), "e": (email or "").strip().lower() or None,
             "h": hash_password(password), "r": role, "t": _now()},
        ).fetchone()[0]
        audit.record(cur, actor or SYSTEM, "users", new_id, "create",
                     {"username": [None, username], "role": [None, role]})
    return new_id


def set_active(db: Database, actor: User, username: str, active: bool) -> None:
    if actor.role != "admin":
        raise PermissionDenied("Only an admin can lock or unlock users")
    username = (username or "").lower().strip()
    with db.transaction() as cur:
        row = cur.execute("SELECT id, active FROM users WHERE username = $u",
                          {"u": username}).fetchone()
        if not row:
            raise LookupError(f"No user named {username!r}")
        cur.execute(
            "UPDATE users SET active = $a, failed_attempts = 0, locked_until = NULL WHERE id = $id",
            {"a": active, "id": row[0]},
        )
        audit.record(cur, actor, "users", row[0], "unlock" if active else "lock",
                     {"active": [row[1], active]})


def verify_login(db: Database, username: str, password: str, now: datetime | None = None) -> bool:
    """Checks a sign-in attempt; five failures lock the account for fifteen minutes."""
    now = now or _now()
    username = (username or "").lower().strip()
    with db.transaction() as cur:
        row = cur.execute(
            "SELECT id, password_hash, active, failed_attempts, locked_until FROM users"
            " WHERE username = $u", {"u": username},
        ).fetchone()
        if not row:
            return False
        user_id, pw_hash, active, failed, locked_until = row
        if not active:
            raise AccountLocked("This account is locked. Ask an admin to unlock it.")
        if locked_until and locked_until > now:
            minutes = max(1, -(-int((locked_until - now).total_seconds()) // 60))
            raise AccountLocked(
                f"Too many failed sign-ins: this account is locked for {minutes} more minute(s)."
            )
        if bcrypt.checkpw((password or "").encode(), pw_hash.encode()):
            cur.execute(
                "UPDATE users SET failed_attempts = 0, locked_until = NULL, last_login_at = $t"
                " WHERE id = $id", {"t": now, "id": user_id},
            )
            return True
        failed = (0 if locked_until else failed) + 1
        lock = now + timedelta(minutes=LOCK_MINUTES) if failed >= MAX_FAILED else None
        cur.execute(
            "UPDATE users SET failed_attempts = $f, locked_until = $l WHERE id = $id",
            {"f": 0 if lock else failed, "l": lock, "id": user_id},
        )
        if lock:
            audit.record(cur, SYSTEM, "users", user_id, "locked",
                         {"failed_attempts": [MAX_FAILED - 1, MAX_FAILED]})
    if lock:
        raise AccountLocked(
            f"Too many failed sign-ins: this account is locked for {LOCK_MINUTES} minutes."
        )
    return False


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
    rows = db.query("SELECT username, name, email, password_hash, role FROM users WHERE active")
    return {"usernames": {
        r["username"]: {"name": r["name"], "email": r["email"], "password": r["password_hash"],
                        "roles": [r["role"]]}
        for r in rows
    }}


# --- permissions -------------------------------------------------------------------------

def require(user: User, action: str, record: dict | None = None) -> None:
    """Raises PermissionDenied unless the user may do action (view/create/edit/delete) on record."""
    if user is None:
        raise PermissionDenied("Sign in first")
    if user.sees_all:
        return
    if user.role == "viewer":
        raise PermissionDenied("Viewers have read-only access to dashboards")
    # reps: their own records only
    if action == "create":
        return
    if record is not None and record.get("owner_id") != user.id:
        raise PermissionDenied("Reps can only see and change their own records")


def _now() -> datetime:
    return datetime.now().replace(microsecond=0)
