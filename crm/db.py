"""The data layer: a DuckDB file (one connection per process, a cursor per unit of work) or a
PostgreSQL database (a psycopg pool, one connection per unit of work), behind one API; numbered
SQL migrations. SQL differences live in crm/dialect.py."""
from __future__ import annotations

import functools
import random
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

import duckdb

from crm import config, dialect

MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_lock key: two servers starting together migrate one after the other
MIGRATION_LOCK = 7_413_001


# The Database whose transaction this thread is in: hooks that get only a cursor (automation
# rules) find their per-database cache through it.
CURRENT: ContextVar["Database | None"] = ContextVar("crm_current_database", default=None)


class DatabaseUnavailable(RuntimeError):
    """The data cannot be opened: a bad URL, a server that is down, a wrong password..."""


class DatabaseBusy(DatabaseUnavailable):
    """Another process holds the DuckDB file (DuckDB allows one writer process)."""


class HookAborted(Exception):
    """A hook of a write (an automation rule: crm.rules.RuleAbortedWrite) made the database
    abort the transaction. Database.run runs the unit of work again without that hook
    (SKIPPED_HOOKS), so the user's write stands; the hook logged its failure itself."""

    hook: object = None


# the hooks (automation rule ids) the unit of work being run again leaves out
SKIPPED_HOOKS: ContextVar[frozenset] = ContextVar("crm_skipped_hooks", default=frozenset())
MAX_SKIPPED_HOOKS = 10  # then the refusal goes to the caller


class WriteConflictBase(Exception):
    """What Database.run retries; records.WriteConflict is the one raised (a ConflictError,
    so that the pages' conflict handling shows it)."""


# A unit of work that collides with concurrent writers (a deadlock, a serialization failure,
# DuckDB's "Conflict on update") runs again this many times in all, then is reported.
ATTEMPTS = 5


def retried(command):
    """For command functions whose first argument is the Database: the whole command runs again
    when its transaction collided with another writer (Database.run)."""
    @functools.wraps(command)
    def run(db, *args, **kwargs):
        return db.run(lambda: command(db, *args, **kwargs))

    return run


class Database:
    def __init__(self, path: str | Path | None = None, pool_size: int = 10):
        target = config.db_target(path)
        self.engine = dialect.POSTGRESQL if dialect.is_url(target) else dialect.DUCKDB
        # DuckDB raises on concurrent updates of the same rows; one writer at a time avoids it.
        self._write_lock = threading.RLock()
        self._open_tx = threading.local()  # the thread's transaction cursor, while one is open
        self._pool = self._con = None
        if self.engine == dialect.POSTGRESQL:
            self.path = target
            self._pool = _open_pool(target, pool_size)
            self.migrated = migrate(self)
            self._load_fields()
            return
        self.path = Path(target)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise DatabaseBusy(
                    f"{self.path} is open in another process (is the app running?)"
                ) from exc
            raise
        self.migrated = migrate(self)  # the versions this opening applied
        self._load_fields()

    def _load_fields(self) -> None:
        from crm import custom_fields  # the entities' field lists include this database's own

        custom_fields.load(self)

    @property
    def dialect(self) -> str:
        return self.engine

    def cursor(self):
        """A cursor for one unit of work; close it when done (on PostgreSQL it holds a pooled
        connection until then)."""
        if self._pool is None:
            return self._con.cursor()
        conn = self._pool.getconn()
        return dialect.PgCursor(conn, release=self._pool.putconn)

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

    def in_transaction(self) -> bool:
        return getattr(self._open_tx, "cursor", None) is not None

    def run(self, work, attempts: int | None = None):
        """work() (a unit of work that opens its own transaction), run again from the start
        when its transaction collided with a concurrent writer (after the last attempt the
        WriteConflict goes to the caller), or when a hook aborted it (HookAborted: again
        without that hook). Inside an open transaction it runs once: only the
        outermost transaction can be rolled back and run again."""
        if self.in_transaction():
            return work()
        attempts = attempts or ATTEMPTS
        attempt, token = 1, None
        try:
            while True:
                try:
                    return work()
                except WriteConflictBase:
                    if attempt >= attempts:
                        raise
                    self._backoff(attempt)
                    attempt += 1
                except HookAborted as exc:  # again, without the hook that broke it
                    skipped = SKIPPED_HOOKS.get()
                    if exc.hook is None or exc.hook in skipped \
                            or len(skipped) >= MAX_SKIPPED_HOOKS:
                        raise
                    if token is None:
                        token = SKIPPED_HOOKS.set(skipped | {exc.hook})
                    else:
                        SKIPPED_HOOKS.set(skipped | {exc.hook})
        finally:
            if token is not None:
                SKIPPED_HOOKS.reset(token)

    def _backoff(self, attempt: int) -> None:
        # jittered, so that the writers who collided do not collide again in step
        time.sleep(random.uniform(0.005, 0.02) * 2 ** attempt)

    @contextmanager
    def transaction(self):
        """Yields a cursor inside BEGIN/COMMIT; rolls back on any error. Inside another
        transaction of the same thread it joins that one (several commands, all or none).
        A collision with a concurrent writer rolls back and raises records.WriteConflict
        (Database.run runs the unit of work again)."""
        outer = getattr(self._open_tx, "cursor", None)
        if outer is not None:
            yield outer
            return
        try:
            with self._outermost() as cur:
                yield cur
        except WriteConflictBase:
            raise
        except Exception as exc:
            if dialect.is_write_conflict(exc):
                from crm.records import WriteConflict

                raise WriteConflict() from exc
            raise

    @contextmanager
    def _outermost(self):
        if self._pool is not None:
            with self._write_lock, self._pool.connection() as conn, conn.transaction():
                cur = dialect.PgCursor(conn)
                with self._opened(cur):
                    try:
                        yield cur
                    finally:
                        cur.close()
            return
        with self._write_lock:
            cur = self.cursor()
            try:
                cur.execute("BEGIN TRANSACTION")
                with self._opened(cur):
                    try:
                        yield cur
                    except BaseException:
                        cur.execute("ROLLBACK")
                        raise
                try:
                    cur.execute("COMMIT")
                except Exception:  # a commit that conflicted leaves nothing of the transaction
                    try:
                        cur.execute("ROLLBACK")
                    except Exception:  # noqa: BLE001 - DuckDB may have rolled back already
                        pass
                    raise
            finally:
                cur.close()

    @contextmanager
    def _opened(self, cur):
        """While a transaction is open: reads of this thread go through it, and hooks that get
        only a cursor find this Database (CURRENT)."""
        self._open_tx.cursor = cur
        token = CURRENT.set(self)
        try:
            yield
        finally:
            self._open_tx.cursor = None
            CURRENT.reset(token)

    def check(self, timeout: float = 5) -> None:
        """Raises DatabaseUnavailable, with the reason in one line, when the PostgreSQL server
        cannot be reached now (pages call it once per run; a DuckDB file is always there)."""
        if self._pool is None:
            return
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self._pool.connection(timeout=timeout) as conn:
                conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout) as exc:
            try:  # the pool only says it timed out: ask the server for the reason
                psycopg.connect(self.path, connect_timeout=int(timeout)).close()
                reason = _reason(exc)
            except psycopg.Error as direct:
                reason = _reason(direct)
            raise DatabaseUnavailable(
                f"cannot reach {dialect.shown_url(self.path)}: {reason}") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        else:
            self._con.close()


def _open_pool(url: str, size: int):
    """A pool of autocommit connections; one test connection first, so that a bad URL, a
    server that is down or a wrong password fail here with the server's one-line reason."""
    import psycopg
    from psycopg_pool import ConnectionPool

    try:
        psycopg.connect(url, connect_timeout=10).close()
    except (psycopg.Error, ValueError) as exc:
        raise DatabaseUnavailable(
            f"cannot open {dialect.shown_url(url)}: {_reason(exc)}") from None
    # client-side binding: parameters arrive as typed literals, so `$c IS NULL OR x = $c`
    # with c None works as on DuckDB (server-side, PostgreSQL cannot type a lone NULL)
    pool = ConnectionPool(url, min_size=1, max_size=size, open=False,
                          kwargs={"autocommit": True, "cursor_factory": psycopg.ClientCursor},
                          configure=_configure,
                          check=ConnectionPool.check_connection)
    pool.open(wait=True, timeout=30)
    return pool


def _configure(conn) -> None:
    conn.adapters.register_loader("numeric", _numeric_loader())
    # JIT compiles the pages' big aggregates on each run (50-310 ms each at the large demo)
    # and won back less than that: every query it touched ran faster without it
    conn.execute("SET jit = off")


def _reason(exc: BaseException) -> str:
    """The line of a libpq error that says what went wrong (it prefixes host and port)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for line in lines:
        if "FATAL:" in line:
            return line.split("FATAL:", 1)[1].strip()
    text = lines[0] if lines else type(exc).__name__
    text = text.removeprefix("connection failed: ").removeprefix("connection is bad: ")
    text = text.split(" failed: ", 1)[-1] if " failed: " in text else text
    hint = next((ln for ln in lines[1:] if ln.startswith("Is the server running")), None)
    return f"{text} ({hint[0].lower()}{hint[1:]})" if hint else text


@lru_cache(maxsize=1)
def _numeric_loader():
    from decimal import Decimal

    from psycopg.adapt import Loader

    class NumericLoader(Loader):
        """NUMERIC without a fraction (sums of integers) as int, as DuckDB gives HUGEINT; with
        one (DECIMAL columns) as Decimal."""

        def load(self, data):
            text = bytes(data).decode()
            return int(text) if text.lstrip("-").isdigit() else Decimal(text)

    return NumericLoader
def rows(cur, sql: str, params: dict | None = None) -> list[dict]:
    res = cur.execute(sql, params or {})
    cols = [d[0] for d in res.description]
    return [dict(zip(cols, r)) for r in res.fetchall()]


def migrate(db: Database) -> list[str]:
    """Applies every migrations/NNN_*.sql (or NNN_*.py with apply(cursor)) not yet recorded, in
    order, each in a transaction. Where the engine's syntax truly differs, a file named
    NNN_name.<engine>.sql (or .py) beside the portable one replaces it on that engine. On
    PostgreSQL an advisory lock makes servers that start together migrate one at a time."""
    if db.engine == dialect.POSTGRESQL:
        lock = db.cursor()  # holds the session-level lock while other connections migrate
        try:
            lock.execute("SELECT pg_advisory_lock($k)", {"k": MIGRATION_LOCK}).fetchall()
            try:
                return _migrate(db)
            finally:
                lock.execute("SELECT pg_advisory_unlock($k)", {"k": MIGRATION_LOCK}).fetchall()
        finally:
            lock.close()
    return _migrate(db)


def migration_files(engine: str) -> list[tuple[str, Path]]:
    """(version, file) in order: the engine's own variant where there is one."""
    chosen: dict[str, Path] = {}
    for file in [*MIGRATIONS.glob("[0-9]*.sql"), *MIGRATIONS.glob("[0-9]*.py")]:
        version, _, variant = file.name.rsplit(".", 1)[0].partition(".")
        if variant and variant != engine:
            continue
        if variant or version not in chosen:
            chosen[version] = file
    return sorted(chosen.items())


def _migrate(db: Database) -> list[str]:
    cur = db.cursor()
    try:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version VARCHAR PRIMARY KEY, applied_at TIMESTAMP NOT NULL)"
        )
        done = {r[0] for r in cur.execute("SELECT version FROM schema_migrations").fetchall()}
    finally:
        cur.close()
    applied = []
    for version, file in migration_files(db.engine):
        if version in done:
            continue
        with db.transaction() as tx:
            if file.suffix == ".py":  # data a SQL file cannot compute, e.g. the Jalali calendar
                _run_python_migration(file, tx)
            for statement in _statements(file.read_text()) if file.suffix == ".sql" else []:
                tx.execute(statement)
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($v, $t)",
                {"v": version, "t": _now()},
            )
        applied.append(version)
    return applied


def _run_python_migration(file: Path, cur) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f"crm_migration_{file.stem.replace('.', '_')}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.apply(cur)


def _statements(script: str) -> list[str]:
    lines = [ln for ln in script.splitlines() if not ln.strip().startswith("--")]
    # a ; inside a $$-quoted function body does not end the statement
    parts = "\n".join(lines).split("$$")
    statements, current = [], ""
    for i, part in enumerate(parts):
        if i % 2:
            current += "$$" + part + "$$"
            continue
        first, *rest = part.split(";")
        if rest:
            statements.append(current + first)
            *done, current = rest
            statements.extend(done)
        else:
            current += first
    statements.append(current)
    return [s.strip() for s in statements if s.strip()]


def _now():
    from datetime import datetime

    return datetime.now().replace(microsecond=0)

