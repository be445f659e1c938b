"""Install-wide settings an admin chooses on the Settings page, with defaults and validation
from field specs, stored as text in the settings table."""
from __future__ import annotations

from datetime import datetime

from crm import audit, i18n
from crm.auth import PermissionDenied, User
from crm.db import Database
from crm.fields import Field, convert, validate
from crm.i18n import LANGUAGES, N_, env_default, gettext as _

INSTALLED_BASE_RULES = ("active_status", "recent_purchase", "active_and_recent")

FIELDS = [
    Field("language", "Language for people who have not chosen one", "choice", required=True,
          choices=tuple(LANGUAGES), choice_names=tuple(LANGUAGES.items()), default="en",
          section="Language", help="Each person can choose their own under My account"),
    Field("irr_as_toman", "Show Iranian rial amounts in toman", "bool", default=False,
          section="Language", help="1 toman = 10 rials; amounts are stored in rials"),
    Field("installed_base_rule", "Installed base: who counts", "choice", required=True,
          choices=INSTALLED_BASE_RULES, default="active_status", section="Customers",
          help="Among customers who ever bought: those marked active, those with a won deal "
               "in the last months below, or both"),
    Field("installed_base_months", "Installed base: months since the last won deal",
          "integer", required=True, min_value=1, max_value=120, default=12,
          section="Customers", help="Used by the rules that look at recent purchases"),
]
_SPEC = {f.name: f for f in FIELDS}

RULE_LABELS = {
    "active_status": N_("Customers who ever bought and whose status is active"),
    "recent_purchase": N_("Customers with a won deal in the last {months} months"),
    "active_and_recent": N_("Customers whose status is active and who have a won deal in the "
                            "last {months} months"),
}


# the row of the sign-in cookies' key; not an admin setting (get_all reads FIELDS only)
COOKIE_KEY = "cookie_key"


def shared_cookie_key(db: Database) -> str:
    """The key that signs sign-in cookies, made once and kept in the settings table: every app
    server on the database reads the same one. Servers that start together both try to store
    theirs; the first stored wins and both read it back."""
    key = db.scalar("SELECT value FROM settings WHERE key = $k", {"k": COOKIE_KEY})
    if key:
        return key
    import secrets

    with db.transaction() as cur:
        cur.execute("INSERT INTO settings (key, value, updated_at) VALUES ($k, $v, $t)"
                    " ON CONFLICT (key) DO NOTHING",
                    {"k": COOKIE_KEY, "v": secrets.token_urlsafe(32), "t": datetime.now()})
    return db.scalar("SELECT value FROM settings WHERE key = $k", {"k": COOKIE_KEY})


def get_all(db: Database) -> dict:
    """Every setting, stored value or default, as its typed value."""
    stored = {r["key"]: r["value"] for r in db.query("SELECT key, value FROM settings")}
    out = {}
    for f in FIELDS:
        try:
            out[f.name] = convert(f, stored[f.name]) if f.name in stored else (
                env_default() if f.name == "language" else f.default)
        except ValueError:  # a value edited by hand into something invalid: use the default
            out[f.name] = f.default
    return out


def save(db: Database, user: User, values: dict) -> dict:
    """Validates and stores the given settings (admin only); returns all settings."""
    if user.role != "admin":
        raise PermissionDenied(_("Only an admin can change settings"))
    clean = validate([_SPEC[k] for k in values if k in _SPEC], values)
    unknown = set(values) - set(_SPEC)
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    current = get_all(db)
    with db.transaction() as cur:
        changes = {}
        for key, value in clean.items():
            if value == current[key]:
                continue
            changes[key] = (current[key], value)
            params = {"k": key, "v": None if value is None else str(value),
                      "t": datetime.now(), "by": user.id or None}
            if cur.execute("SELECT 1 FROM settings WHERE key = $k", {"k": key}).fetchone():
                cur.execute("UPDATE settings SET value = $v, updated_at = $t, updated_by = $by"
                            " WHERE key = $k", params)
            else:
                cur.execute("INSERT INTO settings (key, value, updated_at, updated_by)"
                            " VALUES ($k, $v, $t, $by)", params)
        if changes:
            audit.record(cur, user, "settings", None, "update", changes)
    return get_all(db)


def installed_base_rule_text(values: dict) -> str:
    """The installed-base rule in words, in the current language."""
    rule = RULE_LABELS[values["installed_base_rule"]]
    return _(rule).format(
        months=i18n.number(values["installed_base_months"]))
