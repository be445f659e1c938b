"""One DuckDB connection per process, a cursor per unit of work, numbered SQL migrations."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import duckdb

from crm import config

MIGRATIONS = Path(__file__).parent / "migrations"


# The Database whose transaction this thread is in: hooks that get only a cursor (automation
# rules) find their per-database cache through it.
CURRENT: ContextVar["Database | None"] = ContextVar("crm_current_database", default=None)


class DatabaseBusy(RuntimeError):
    """Another process holds the DuckDB file (DuckDB allows one writer process)."""


class Database:
    def __init__(self, path: str | Path | None = None):
        self.path = config.db_path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise DatabaseBusy(
                    f"{self.path} is open in another process (is the app running?)"
                ) from exc
            raise
        # DuckDB raises on concurrent updates of the same rows; one writer at a time avoids it.
        self._write_lock = threading.RLock()
        self._open_tx = threading.local()  # the thread's transaction cursor, while one is open
        migrate(self)
        from crm import custom_fields  # the entities' field lists include this file's own

        custom_fields.load(self)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self._con.cursor()

    @contextmanager
    def _reader(self):
        """The thread's open transaction, so a command reads what it wrote so far; otherwise a
        cursor of its own."""
        cur = getattr(self._open_tx, "cursor", None)
        if cur is not None:
            yield cur
            return
        cur = self.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def query(self, sql: str, params: dict | None = None) -> list[dict]:
        with self._reader() as cur:
            res = cur.execute(sql, params or {})
            cols = [d[0] for d in res.description]
            return [dict(zip(cols, row)) for row in res.fetchall()]

    def one(self, sql: str, params: dict | None = None) -> dict | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: dict | None = None):
        with self._reader() as cur:
            row = cur.execute(sql, params or {}).fetchone()
            return row[0] if row else None

    def frame(self, sql: str, params: dict | None = None):
        with self._reader() as cur:
            return cur.execute(sql, params or {}).df()

    @contextmanager
    def transaction(self):
        """Yields a cursor inside BEGIN/COMMIT; rolls back on any error. Inside another
        transaction of the same thread it joins that one (several commands, all or none)."""
        outer = getattr(self._open_tx, "cursor", None)
        if outer is not None:
            yield outer
            return
        with self._write_lock:
            cur = self.cursor()
            cur.execute("BEGIN TRANSACTION")
            self._open_tx.cursor = cur
            token = CURRENT.set(self)
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                cur.close()
                raise
            finally:
                self._open_tx.cursor = None
                CURRENT.reset(token)
            cur.execute("COMMIT")
            cur.close()

    def close(self) -> None:
        self._con.close()


def rows(cur, sql: str, params: dict | None = None) -> list[dict]:
    res = cur.execute(sql, params or {})
    cols = [d[0] for d in res.description]
    return [dict(zip(cols, r)) for r in res.fetchall()]


def migrate(db: Database) -> list[str]:
    """Applies every migrations/NNN_*.sql (or NNN_*.py with apply(cursor)) not yet recorded, in
    order, each in a transaction."""
    cur = db.cursor()
    cur.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version VARCHAR PRIMARY KEY, applied_at TIMESTAMP NOT NULL)"
    )
    done = {r[0] for r in cur.execute("SELECT version FROM schema_migrations").fetchall()}
    cur.close()
    applied = []
    for file in sorted([*MIGRATIONS.glob("*.sql"), *MIGRATIONS.glob("[0-9]*.py")]):
        if file.stem in done:
            continue
        with db.transaction() as tx:
            if file.suffix == ".py":  # data a SQL file cannot compute, e.g. the Jalali calendar
                _run_python_migration(file, tx)
            for statement in _statements(file.read_text()) if file.suffix == ".sql" else []:
                tx.execute(statement)
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($v, $t)",
                {"v": file.stem, "t": _now()},
            )
        applied.append(file.stem)
    return applied


def _run_python_migration(file: Path, cur) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"crm_migration_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.apply(cur)


def _statements(script: str) -> list[str]:
    lines = [ln for ln in script.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _now():
    from datetime import datetime

    return datetime.now().replace(microsecond=0)

