"""The team as importable records: users brought in from a file, without passwords.

An imported user cannot sign in until an admin sets a password on the Users page; the Users
page (crm/auth.py) stays the place for every other change to a user."""
from __future__ import annotations

from crm import records
from crm.auth import ROLES, USERNAME_RE, PermissionDenied, User
from crm.fields import Field, ValidationError
from crm.i18n import gettext as _

FIELDS = [
    Field("username", "Username", required=True, max_length=32, searchable=True, in_list=True,
          help="3-32 lowercase letters, digits, dot, dash or underscore"),
    Field("name", "Name", required=True, searchable=True, in_list=True),
    Field("email", "Email", "email", searchable=True, in_list=True),
    Field("role", "Role", "choice", required=True, choices=ROLES, default="rep", filter=True,
          in_list=True),
    Field("active", "Active", "bool", default=True, in_list=True),
]


def _check(values: dict) -> dict[str, str]:
    if values.get("username") and not USERNAME_RE.match(values["username"]):
        return {"username": _("Username: 3-32 lowercase letters, digits, dot, dash or "
                              "underscore")}
    return {}


def insert_user(cur, actor: User, values: dict) -> int:
    """A user without a password, inside the caller's transaction (an import)."""
    records.require_write(actor, USERS, "create")
    values = dict(values)
    values["username"] = str(values.get("username") or "").strip().lower()
    if values.get("email"):
        values["email"] = str(values["email"]).strip().lower()
    taken = cur.execute("SELECT 1 FROM users WHERE username = $u",
                        {"u": values["username"]}).fetchone()
    if taken:  # usernames stay reserved, also for users whose import was undone
        raise ValidationError({"username": _("Username {name} is taken").format(
            name=repr(values["username"]))})
    return records.insert(cur, actor, USERS, values, derived={"password_hash": ""})


def _create(db, actor: User, values: dict) -> int:
    with db.transaction() as cur:
        return insert_user(cur, actor, values)


def _no_update(*_args, **_kwargs):
    raise PermissionDenied(_("Change users on the Users page"))


USERS = records.Entity(
    table="users", label="User", plural="Users", code_fields=FIELDS, title_sql="t.name",
    default_sort=("username", "asc"), check=_check, shared=True, write_role="admin",
    unique=("username",), creator=_create, updater=_no_update, insert_in=insert_user,
)
