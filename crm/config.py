"""Where the data lives and the secrets the app needs, from the environment or the data folder."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = ROOT / "data" / "crm.duckdb"


def db_target(explicit: str | os.PathLike | None = None) -> str | Path:
    """--db, else CRM_DB, else the default file: a path, or a postgresql:// URL as given."""
    value = explicit or os.environ.get("CRM_DB") or DEFAULT_DB
    if isinstance(value, str) and value.lower().startswith(("postgresql://", "postgres://")):
        return value
    return Path(value)


def db_path(explicit: str | os.PathLike | None = None) -> Path:
    """The DuckDB file, or for a PostgreSQL URL the default file's place (beside which the
    cookie key is kept)."""
    target = db_target(explicit)
    return DEFAULT_DB if isinstance(target, str) else target


def cookie_key(db_file: Path, from_secrets: str | None = None, shared=None) -> str:
    """Secrets file, then CRM_COOKIE_KEY, then shared() (on PostgreSQL the key kept in the
    database, so that every app server on it accepts the others' cookies), else a random key
    made once and kept beside the DuckDB file (one process per file: nobody to share with)."""
    if from_secrets:
        return from_secrets
    if os.environ.get("CRM_COOKIE_KEY"):
        return os.environ["CRM_COOKIE_KEY"]
    if shared is not None:
        return shared()
    key_file = Path(db_file).parent / ".cookie_key"
    if key_file.exists():
        return key_file.read_text().strip()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key
