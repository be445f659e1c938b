"""What differs between DuckDB and PostgreSQL, in one place.

The domain modules write one SQL text per query: portable SQL with DuckDB-style `$name`
parameters. On DuckDB it runs as written. On PostgreSQL, PgCursor translates it once (cached)
to psycopg's `%(name)s` style and gives the cursor the surface the domain code uses on
DuckDB: `execute()` returns the cursor, a statement without a result set yields one row with
its row count (as DuckDB does), `df()` / `fetchnumpy()`, and `register(name, frame)` /
`unregister(name)` as a temporary table filled by COPY.

The few constructs that have no portable spelling are the functions at the end
(`collation`, ...), chosen by engine; see the README's table of DuckDB-only constructs."""
from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from contextlib import contextmanager
from functools import lru_cache

DUCKDB = "duckdb"
POSTGRESQL = "postgresql"

_URL = re.compile(r"^postgres(ql)?://", re.IGNORECASE)


def is_url(target) -> bool:
    return isinstance(target, str) and bool(_URL.match(target))


def shown_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


# --- parameter style ---------------------------------------------------------------------

_NAME_START = re.compile(r"[A-Za-z_]")


@lru_cache(maxsize=4096)
def to_psycopg(sql: str) -> tuple[str, bool]:
    """`$name` -> `%(name)s` outside string literals, quoted names and comments; every `%`
    doubled (psycopg reads `%` anywhere in the text once parameters are given). Returns the
    text and whether it has parameters; without any, the original text is used as is."""
    out: list[str] = []
    i, n, named = 0, len(sql), False
    while i < n:
        c = sql[i]
        if c in ("'", '"'):  # a literal or quoted name: '' or "" inside are its own quotes
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            out.append(sql[i:j + 1].replace("%", "%%"))
            i = j + 1
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append(sql[i:j].replace("%", "%%"))
            i = j
        elif c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(sql[i:j].replace("%", "%%"))
            i = j
        elif c == "$" and i + 1 < n and _NAME_START.match(sql[i + 1]):
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            out.append(f"%({sql[i + 1:j]})s")
            named = True
            i = j
        elif c == "%":
            out.append("%%")
            i += 1
        else:
            out.append(c)
            i += 1
    return ("".join(out) if named else sql), named


# --- the PostgreSQL cursor ---------------------------------------------------------------

class PgCursor:
    """A psycopg cursor with the DuckDB cursor surface the domain code uses. It owns one
    connection of the pool until close() (one unit of work; never shared between threads)."""

    dialect = POSTGRESQL

    def __init__(self, conn, release=None):
        self._conn = conn
        self._cur = conn.cursor()
        self._release = release
        self._counted: list[tuple] | None = None

    def execute(self, sql: str, params: dict | None = None):
        text, named = to_psycopg(sql)
        self._cur.execute(text, (params or {}) if named else None)
        # DuckDB answers INSERT/UPDATE/DELETE with one row: the number of rows changed
        self._counted = [(self._cur.rowcount,)] if self._cur.description is None else None
        return self

    @property
    def description(self):
        if self._counted is not None:
            return [("Count", None, None, None, None, None, None)]
        return self._cur.description

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def fetchone(self):
        if self._counted is not None:
            return self._counted.pop(0) if self._counted else None
        return self._cur.fetchone()

    def fetchall(self) -> list[tuple]:
        if self._counted is not None:
            rows, self._counted = self._counted, []
            return rows
        return self._cur.fetchall()

    def fetchmany(self, size: int) -> list[tuple]:
        if self._counted is not None:
            return self.fetchall()[:size]
        return self._cur.fetchmany(size)

    def df(self):
        """The result as DuckDB's df() types it: numbers as float64 or nullable integers,
        dates and timestamps as datetime64, booleans as nullable booleans."""
        import pandas as pd

        names = [d[0] for d in self.description]
        kinds = [_PANDAS_TYPES.get(d[1]) for d in self.description]
        frame = pd.DataFrame(self.fetchall(), columns=names, dtype=object)
        for name, kind in zip(names, kinds):
            if kind == "datetime64[us]":
                frame[name] = pd.to_datetime(frame[name]).astype("datetime64[us]")
            elif kind == "float64":
                frame[name] = pd.to_numeric(frame[name].map(
                    lambda v: None if v is None else float(v)), errors="coerce").astype(kind)
            elif kind:
                frame[name] = frame[name].astype(kind)
            else:
                frame[name] = frame[name].infer_objects()
        return frame

    def fetchnumpy(self) -> dict:
        frame = self.df()
        return {c: frame[c].to_numpy() for c in frame.columns}

    def register(self, name: str, frame) -> None:
        """The frame as a temporary table (DuckDB scans a registered frame in place)."""
        cols = list(frame.columns)
        types = [_pg_type(frame[c]) for c in cols]
        self._cur.execute(f'DROP TABLE IF EXISTS pg_temp."{name}"')
        self._cur.execute(f'CREATE TEMPORARY TABLE "{name}" ('
                          + ", ".join(f'"{c}" {t}' for c, t in zip(cols, types)) + ")")
        if len(frame) >= CSV_COPY_ROWS:
            table = _arrow_table(frame)
            if table is not None:
                _copy_arrow(self._cur, name, table)
                return
            if _csv_safe(frame):
                _copy_csv(self._cur, name, frame)
                return
        columns = [frame[c].tolist() for c in cols]
        with self._cur.copy(f'COPY "{name}" FROM STDIN') as copy:
            for row in zip(*columns):
                copy.write_row([_plain(v) for v in row])

    def unregister(self, name: str) -> None:
        self._cur.execute(f'DROP TABLE IF EXISTS pg_temp."{name}"')

    def close(self) -> None:
        if self._conn is None:
            return
        try:
            self._cur.close()
        finally:
            conn, self._conn = self._conn, None
            if self._release:
                self._release(conn)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# type OIDs -> the pandas dtype DuckDB's df() gives them
_PANDAS_TYPES = {16: "boolean", 20: "Int64", 21: "Int16", 23: "Int32", 700: "float64",
                 701: "float64", 1700: "float64", 1082: "datetime64[us]",
                 1114: "datetime64[us]", 1184: "datetime64[us]", 25: "str", 1043: "str"}


def _pg_type(series) -> str:
    import pandas as pd

    api = pd.api.types
    if api.is_bool_dtype(series.dtype):
        return "BOOLEAN"
    if api.is_integer_dtype(series.dtype):
        return "BIGINT"
    if api.is_float_dtype(series.dtype):
        return "DOUBLE PRECISION"
    if api.is_datetime64_any_dtype(series.dtype):
        return "TIMESTAMP"
    for value in series:  # object columns: typed by their first value
        if value is None or (isinstance(value, float) and value != value):
            continue
        for kind, sql in ((bool, "BOOLEAN"), (int, "BIGINT"), (float, "DOUBLE PRECISION"),
                          (Decimal, "NUMERIC"), (datetime, "TIMESTAMP"), (date, "DATE")):
            if isinstance(value, kind):
                return sql
        return "TEXT"
    return _null_type(str(series.name))


# From this many rows register() writes the frame as CSV text (pandas, in C) rather than row by
# row through Python: the large demo's millions of rows load in a fraction of the time.
CSV_COPY_ROWS = 5_000
_CSV_NULL = "\\N"
_CSV_CHUNK = 100_000


def _csv_safe(frame) -> bool:
    """Whether CSV text carries the frame exactly: no text cell equal to the NULL marker, and
    only cells whose str() PostgreSQL parses back (numbers, text, dates, booleans)."""
    import pandas as pd

    for col in frame.columns:
        series = frame[col]
        if series.dtype == object and pd.api.types.infer_dtype(
                series, skipna=True) not in _CSV_KINDS:
            return False
        if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
            if (series.dropna().astype(str) == _CSV_NULL).any():
                return False
    return True


# what pandas.api.types.infer_dtype calls object columns whose str() PostgreSQL parses
_CSV_KINDS = {"string", "integer", "floating", "mixed-integer-float", "decimal", "boolean",
              "date", "datetime", "datetime64", "empty"}


def _copy_csv(cur, name: str, frame) -> None:
    import csv

    # strings quoted (an empty string stays one); the quoted NULL marker still NULL (FORCE_NULL)
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    sql = (f'COPY "{name}" FROM STDIN (FORMAT csv, NULL \'{_CSV_NULL}\', FORCE_NULL ({cols}))')
    with cur.copy(sql) as copy:
        for start in range(0, len(frame), _CSV_CHUNK):
            copy.write(frame.iloc[start:start + _CSV_CHUNK].to_csv(
                index=False, header=False, na_rep=_CSV_NULL, quoting=csv.QUOTE_NONNUMERIC,
                date_format="%Y-%m-%d %H:%M:%S.%f"))


def _arrow_table(frame):
    """The frame as an Arrow table whose CSV PostgreSQL reads back exactly (numbers, text,
    booleans, dates, timestamps, decimals), or None: then pandas writes the CSV. Arrow writes
    CSV in C++ some 15 times faster than pandas (the large demo's 5,000,000 activities: seconds
    instead of over a minute). pyarrow comes with streamlit."""
    try:
        import pyarrow as pa

        table = pa.Table.from_pandas(frame, preserve_index=False)
        for i, field in enumerate(table.schema):
            if pa.types.is_dictionary(field.type):  # categoricals: their values
                table = table.set_column(i, field.name, table.column(i).cast(
                    field.type.value_type))
    except Exception:  # noqa: BLE001  mixed objects and the like: pandas' CSV
        return None
    for field in table.schema:
        kind = field.type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)
                or pa.types.is_boolean(kind) or pa.types.is_string(kind)
                or pa.types.is_large_string(kind) or pa.types.is_date32(kind)
                or pa.types.is_decimal(kind) or pa.types.is_null(kind)
                or (pa.types.is_timestamp(kind) and kind.tz is None)):
            return None
    return table


def _copy_arrow(cur, name: str, table) -> None:
    import io

    import pyarrow.csv as pcsv

    # every value quoted, NULL unquoted and empty: PostgreSQL's CSV reads an empty unquoted
    # field as NULL and "" as an empty string
    options = pcsv.WriteOptions(include_header=False, quoting_style="all_valid")
    cols = ", ".join(f'"{c}"' for c in table.column_names)
    with cur.copy(f'COPY "{name}" ({cols}) FROM STDIN (FORMAT csv)') as copy:
        for start in range(0, table.num_rows, _CSV_CHUNK):
            buffer = io.BytesIO()
            pcsv.write_csv(table.slice(start, _CSV_CHUNK), buffer, options)
            copy.write(buffer.getvalue())


def _null_type(name: str) -> str:
    """The type of an all-NULL column, which has none of its own: PostgreSQL converts text to
    no other type in an INSERT, so the CRM's column names decide (ids and *_by are BIGINT,
    *_at TIMESTAMP, *_on and *_date DATE)."""
    if name == "id" or name.endswith(("_id", "_by")):
        return "BIGINT"
    if name.endswith("_at"):
        return "TIMESTAMP"
    if name.endswith(("_on", "_date")):
        return "DATE"
    return "TEXT"


def _plain(value):
    """A frame cell (from Series.tolist()) as a value psycopg writes; NaN, NaT and NA as NULL."""
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


# --- constructs without a portable spelling ----------------------------------------------

def of(cur) -> str:
    """The engine a cursor belongs to."""
    return getattr(cur, "dialect", DUCKDB)


# --- Parquet from PostgreSQL -------------------------------------------------------------

# type OIDs -> DuckDB types, for the in-memory table a Parquet file is written from
_DUCK_TYPES = {16: "BOOLEAN", 20: "BIGINT", 21: "SMALLINT", 23: "INTEGER", 700: "FLOAT",
               701: "DOUBLE", 1082: "DATE", 1114: "TIMESTAMP", 1184: "TIMESTAMPTZ"}


def parquet_from_postgresql(cur, sql: str, params: dict, names: list[str], path,
                            batch: int = 10_000) -> int:
    """DuckDB's COPY ... TO parquet for a PostgreSQL query: the rows pass in batches through an
    in-memory DuckDB table typed like the result (each batch staged as text and cast), so the
    file is the one the DuckDB fast path writes. Returns the number of rows."""
    import duckdb
    import pandas as pd

    cur.execute(sql, params)
    types = []
    for d in cur.description:
        if d.type_code == 1700:
            types.append(f"DECIMAL({d.precision or 18}, {d.scale or 2})"
                         if d.precision else "DOUBLE")
        else:
            types.append(_DUCK_TYPES.get(d.type_code, "VARCHAR"))
    mem = duckdb.connect()
    try:
        mem.execute("CREATE TABLE e (" + ", ".join(f"{n} {t}" for n, t in zip(names, types))
                    + ")")
        casts = ", ".join(f"CAST(c{i} AS {t})" for i, t in enumerate(types))
        count = 0
        while chunk := cur.fetchmany(batch):
            frame = pd.DataFrame({f"c{i}": [None if r[i] is None else _text(r[i]) for r in chunk]
                                  for i in range(len(types))}, dtype=object)
            mem.register("chunk", frame)
            mem.execute(f"INSERT INTO e SELECT {casts} FROM chunk")
            mem.unregister("chunk")
            count += len(chunk)
        mem.execute("COPY e TO $path (FORMAT parquet)", {"path": str(path)})
        return count
    finally:
        mem.close()


def as_text(value):
    """A value as text that the database casts back to the column's type (None stays None):
    frames of mixed Python objects would otherwise be typed from a sample of their rows."""
    if value is None or isinstance(value, str):
        return value
    return _text(value)


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# --- bulk paths of backup and restore ----------------------------------------------------

def copy_to_parquet(cur, table: str, path) -> int:
    """Every row of a table into a Parquet file (DuckDB: COPY ... TO); returns the count."""
    if of(cur) == DUCKDB:
        return int(cur.execute(f"COPY (SELECT * FROM {table}) TO $file (FORMAT parquet)",
                               {"file": str(path)}).fetchone()[0])
    cur.execute(f"SELECT * FROM {table} LIMIT 0")
    names = ['"' + d[0].replace('"', '""') + '"' for d in cur.description]
    return parquet_from_postgresql(cur, f"SELECT * FROM {table}", {}, names, path)


def parquet_columns(cur, path) -> list[str]:
    if of(cur) == DUCKDB:
        return [d[0] for d in cur.execute("SELECT * FROM read_parquet($file) LIMIT 0",
                                          {"file": str(path)}).description]
    import duckdb

    with duckdb.connect() as mem:
        return [d[0] for d in mem.execute("SELECT * FROM read_parquet($file) LIMIT 0",
                                          {"file": str(path)}).description]


def insert_parquet(cur, table: str, columns: list[str], path, batch: int = 10_000) -> None:
    """The rows of a Parquet file into a table, by column name (DuckDB: INSERT ... SELECT
    FROM read_parquet; PostgreSQL: read by an in-memory DuckDB, written by COPY, which parses
    each value into the column's type)."""
    cols = ", ".join(f'"{c}"' for c in columns)
    if of(cur) == DUCKDB:
        cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM read_parquet($file)",
                    {"file": str(path)})
        return
    import duckdb

    with duckdb.connect() as mem:
        mem.execute(f"SELECT {cols} FROM read_parquet($file)", {"file": str(path)})
        with cur._cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            while chunk := mem.fetchmany(batch):
                for row in chunk:
                    copy.write_row(row)


def sequences(cur) -> dict[str, int | None]:
    """Each sequence's next value (None: never used yet)."""
    sql = ("SELECT sequence_name, last_value, increment_by FROM duckdb_sequences()"
           " WHERE schema_name = 'main' AND database_name = current_database()"
           " ORDER BY sequence_name") if of(cur) == DUCKDB else (
        "SELECT sequencename, last_value, increment_by FROM pg_sequences"
        " WHERE schemaname = current_schema() ORDER BY sequencename")
    return {name: None if last is None else int(last) + int(step)
            for name, last, step in cur.execute(sql).fetchall()}


def replace_from_parquet(cur, table: str, columns: list[str], key: list[str], path) -> int:
    """PostgreSQL's INSERT OR REPLACE of a backup's rows over a seeded table, then the rows the
    backup lacks deleted (schema_migrations keeps them: PostgreSQL's own migrations). Returns
    how many of the backup's rows the table holds."""
    cols = ", ".join(f'"{c}"' for c in columns)
    cur.execute('DROP TABLE IF EXISTS pg_temp."crm_restore"')
    cur.execute(f'CREATE TEMPORARY TABLE "crm_restore" AS SELECT {cols} FROM {table} LIMIT 0')
    try:
        insert_parquet(cur, '"crm_restore"', columns, path)
        keys = ", ".join(f'"{k}"' for k in key)
        updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns if c not in key)
        cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM crm_restore"
                    f" ON CONFLICT ({keys}) DO " + (f"UPDATE SET {updates}" if updates
                                                    else "NOTHING"))
        if table != "schema_migrations":
            cur.execute(f"DELETE FROM {table} WHERE ({keys}) NOT IN"
                        f" (SELECT {keys} FROM crm_restore)")
        return cur.execute(f"SELECT count(*) FROM {table} WHERE ({keys}) IN"
                           f" (SELECT {keys} FROM crm_restore)").fetchone()[0]
    finally:
        cur.execute('DROP TABLE IF EXISTS pg_temp."crm_restore"')


def begin_snapshot(cur) -> None:
    """A transaction whose reads all see one moment (DuckDB's always do)."""
    cur.execute("BEGIN TRANSACTION" if of(cur) == DUCKDB
                else "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ")


# --- writers in several processes ----------------------------------------------------------

def lock_row(cur, table: str, record_id: int) -> None:
    """Holds a record until the transaction ends, so that the same command in another process
    waits and then reads what this one wrote (PostgreSQL: FOR UPDATE). On DuckDB one process
    writes and Database serialises its writers already: nothing to do."""
    if of(cur) != DUCKDB:
        cur.execute(f"SELECT id FROM {table} WHERE id = $id FOR UPDATE",
                    {"id": record_id}).fetchall()


# SQLSTATEs of a transaction that lost to a concurrent one and may simply run again
_RETRYABLE = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def is_write_conflict(exc: BaseException | None) -> bool:
    """Whether exc is a collision with a concurrent writer (PostgreSQL: a serialization failure
    or a deadlock; DuckDB: "Conflict on update"), after which the transaction is rolled back
    and may run again unchanged. Also when exc came while handling one (cleanup code that
    runs in the aborted transaction fails with "transaction is aborted")."""
    import duckdb

    for _depth in range(10):
        if exc is None:
            return False
        if getattr(exc, "sqlstate", None) in _RETRYABLE or (
                isinstance(exc, duckdb.TransactionException) and "Conflict on" in str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def refresh_statistics(cur, tables: tuple[str, ...] = ()) -> None:
    """After a bulk load (of the tables; none named: all): PostgreSQL plans from table
    statistics, which stay those of the empty tables until autovacuum comes round, and
    autovacuum never sees a transaction's own rows (DuckDB keeps its own as it writes)."""
    if of(cur) != DUCKDB:
        cur.execute("ANALYZE" + (f" {', '.join(tables)}" if tables else ""))


def vacuum_after_load(db) -> None:
    """After a whole demo load: PostgreSQL's statistics, and the visibility map without which
    its index-only scans (the dashboards' covering indexes) still read the tables until
    autovacuum comes round, minutes later. VACUUM runs outside a transaction: the pool's
    connections are autocommit. (DuckDB keeps its own statistics as it writes.)"""
    if db.dialect == DUCKDB:
        return
    cur = db.cursor()
    try:
        cur.execute("VACUUM (ANALYZE)")
    finally:
        cur.close()


# --- bulk loads into empty tables ------------------------------------------------------------

# From about this many rows a load into empty tables drops their keys and indexes: dropping
# and making them again costs some 0.15 s, checking a row's keys some 15 microseconds
BULK_LOAD_ROWS = 50_000


@contextmanager
def bulk_load(cur, tables: tuple[str, ...], rows: int):
    """Around a bulk load of about `rows` rows inside the caller's transaction. On PostgreSQL,
    the foreign keys and secondary indexes of those of the tables that are empty at the start
    are dropped, and made again from their catalog definitions at the end: one set-based check
    per key and one index build instead of a lookup and an index insert per row (the large
    demo's 4,800,000 activities and 3,600,000 history rows: minutes). All in the one
    transaction, so a load that fails leaves them as they were; meanwhile the tables and those
    their keys reference are locked. DuckDB checks its keys in bulk already (and cannot drop
    them): nothing to do."""
    if of(cur) == DUCKDB or rows < BULK_LOAD_ROWS:
        yield
        return
    # one big transaction: its commit need not wait for the disk; indexes built in memory
    cur.execute("SET LOCAL synchronous_commit = off")
    cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
    empty = [t for t in tables
             if cur.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {t})").fetchone()[0]]
    keys, indexes = _checks_of(cur, empty)
    for table, name, _definition in keys:
        cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _definition in indexes:
        cur.execute(f'DROP INDEX "{name}"')
    yield
    for _name, definition in indexes:
        cur.execute(definition)
    for table, name, definition in keys:
        cur.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


def _checks_of(cur, tables: list[str]) -> tuple[list, list]:
    """The tables' foreign keys (table, name, definition) and their indexes that back no
    constraint (name, CREATE INDEX statement), as the catalog defines them."""
    if not tables:
        return [], []
    names = {"tables": list(tables)}
    keys = cur.execute(
        "SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k"
        " JOIN pg_class c ON c.oid = k.conrelid"
        " WHERE k.contype = 'f' AND c.relnamespace = current_schema()::regnamespace"
        " AND c.relname = ANY($tables) ORDER BY c.relname, k.conname", names).fetchall()
    indexes = cur.execute(
        "SELECT x.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class x ON x.oid = i.indexrelid"
        " WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($tables)"
        " AND NOT i.indisprimary"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
        " ORDER BY c.relname, x.relname", names).fetchall()
    return keys, indexes
