"""Full backup and exact restore: every table as a Parquet file plus manifest.json.

A fast path in DuckDB's own dialect (COPY ... TO ... (FORMAT parquet), read_parquet, setval),
as DESIGN.md allows for bulk work. The manifest holds the schema version (the latest applied
migration), the app's name, when the backup was made, each table's row count and the SHA-256
of its file, and each sequence's next value.

- calendar_days is left out: migration 005_calendar rebuilds the same rows in every database.
- restore() goes into a database without data: a new file with only its migrations applied
  (their seed rows: the default pipeline and its stages, settings, are replaced by the backup's).
  It checks every file before writing, inserts parents before children (foreign keys), sets
  the sequences so new ids continue after the restored ones, all in one transaction.
- A backup from a newer schema than this code knows, a missing or damaged file or manifest is
  refused with a clear message; a backup from an older schema is restored by column name.
"""
from __future__ import annotations

import hashlib
import json
import re
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path

from crm import custom_fields, dialect, stage_reach, stage_spans
from crm.db import MIGRATIONS, Database

APP = "crm"
FORMAT = 1  # of the backup folder itself
MANIFEST = "manifest.json"
SKIPPED = {"calendar_days": "rebuilt by migration 005_calendar",
           "deal_stage_spans": "rebuilt from deal_stage_history",
           "deal_stages_reached": "rebuilt from deal_stage_history and deals",
           "stage_reach_counts": "rebuilt from deal_stage_history and deals"}
# tables that migrations fill; a database to restore into may hold their rows (replaced)
SEEDED = {"schema_migrations", "pipelines", "stages", "settings"}
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class BackupError(Exception):
    """A backup that cannot be made or restored; the message says why, in one line."""


# --- backup --------------------------------------------------------------------------------

def backup(db: Database, directory, progress=None) -> dict:
    """Writes every table to <directory>/<table>.parquet and then manifest.json (a folder
    without a manifest is an unfinished backup). Returns the manifest. The directory is
    created if missing and must be empty. All tables are read in one transaction, so they are
    consistent with each other while the app keeps working. progress(done, total, table) is
    called after each table."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise BackupError(f"{directory} is a file, not a directory")
    if directory.exists() and any(directory.iterdir()):
        raise BackupError(f"{directory} is not empty; back up into a new or empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    cur = db.cursor()
    try:
        dialect.begin_snapshot(cur)
        try:
            tables = {}
            wanted = [t for t in _tables(cur) if t not in SKIPPED]
            for done, table in enumerate(wanted, 1):
                file = directory / f"{table}.parquet"
                count = dialect.copy_to_parquet(cur, table, file)
                tables[table] = {"file": file.name, "rows": int(count), "sha256": _sha256(file)}
                if progress:
                    progress(done, len(wanted), table)
            sequences = {name: nxt for name, nxt in _sequences(cur).items()}
            version = cur.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
        finally:
            cur.execute("COMMIT")
    finally:
        cur.close()
    manifest = {
        "app": APP, "format": FORMAT, "schema_version": version,
        "created_at": datetime.now().isoformat(timespec="seconds"),
        "tables": tables, "sequences": sequences, "skipped": SKIPPED,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    return manifest


def backup_zip(db: Database) -> bytes:
    """The backup as one zip file (manifest.json and the Parquet files at its top level), for
    a download button; built in a temporary directory."""
    import io

    with tempfile.TemporaryDirectory(prefix="crm-backup-") as tmp:
        folder = Path(tmp) / "backup"
        backup(db, folder)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(folder.iterdir()):
                archive.write(file, file.name)
        return out.getvalue()


def zip_name(when: datetime | None = None) -> str:
    return f"crm-backup-{(when or datetime.now()):%Y%m%d-%H%M%S}.zip"


# --- restore -------------------------------------------------------------------------------

def restore(db: Database, source, progress=None) -> dict:
    """Restores a backup folder (or a zip made by backup_zip) into a database without data.
    Returns the manifest. Nothing is written unless every check passes; the writes are one
    transaction."""
    source = Path(source)
    if source.is_file() and zipfile.is_zipfile(source):
        with tempfile.TemporaryDirectory(prefix="crm-restore-") as tmp:
            _unzip(source, Path(tmp))
            return restore(db, Path(tmp), progress)
    if not source.is_dir():
        raise BackupError(f"{source} does not exist or is not a backup directory")
    manifest = read_manifest(source)
    cur = db.cursor()
    try:
        target_tables = _tables(cur)
        order = _parents_first(cur, target_tables)
        _check_target(cur, target_tables)
        custom = _custom_columns(cur, source, manifest)
        _check_tables(cur, source, manifest, target_tables, custom)
        cur.execute("BEGIN TRANSACTION")
        try:
            for table, added in custom.items():  # an admin's fields: columns of their own
                present = _columns(cur, table)
                for name, sql_type in added:
                    if name not in present:
                        cur.execute(f'ALTER TABLE {table} ADD COLUMN "{name}" {sql_type}')
            wanted = [t for t in order if t in manifest["tables"]]
            for done, table in enumerate(wanted, 1):
                _restore_table(cur, table, source / f"{table}.parquet",
                               manifest["tables"][table]["rows"])
                if progress:
                    progress(done, len(wanted), table)
            _set_sequences(cur, manifest.get("sequences") or {})
            stage_spans.rebuild(cur)  # skipped by the backup (and older ones lack it)
            stage_reach.rebuild(cur)  # the same
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
    finally:
        cur.close()
    custom_fields.load(db)
    return manifest


def _custom_columns(cur, source: Path, manifest: dict) -> dict[str, list[tuple[str, str]]]:
    """{table: [(column, SQL type)]} of the custom fields in the backup, checked like the
    command that added them checks them."""
    if "custom_fields" not in manifest["tables"]:
        return {}
    found: dict[str, list[tuple[str, str]]] = {}
    import duckdb

    with duckdb.connect() as reader:  # the backup's own file, on either engine
        stored = reader.execute("SELECT entity, name, type FROM read_parquet($file)",
                                {"file": str(source / "custom_fields.parquet")}).fetchall()
    for table, name, kind in stored:
        if table not in custom_fields.ENTITIES or kind not in custom_fields.TYPES \
                or not custom_fields.NAME_RE.fullmatch(str(name)) \
                or name in custom_fields.RESERVED:
            raise BackupError(f"The backup has a custom field {table}.{name} ({kind}) that"
                              f" this version cannot add")
        found.setdefault(table, []).append((name, custom_fields.TYPES[kind]))
    return found


def read_manifest(directory: Path) -> dict:
    """The manifest, checked: ours, not newer than this code, every file present and intact."""
    path = directory / MANIFEST
    if not path.is_file():
        raise BackupError(f"{directory} has no {MANIFEST}: not a backup, or an unfinished one")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupError(f"{MANIFEST} is damaged ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("app") != APP \
            or not isinstance(manifest.get("tables"), dict):
        raise BackupError(f"{MANIFEST} is not a CRM backup manifest")
    if int(manifest.get("format", 0)) > FORMAT:
        raise BackupError("This backup was made by a newer version of the CRM (backup format"
                          f" {manifest.get('format')}); upgrade first")
    version, known = str(manifest.get("schema_version") or ""), known_versions()
    if version not in known:
        if known and version > known[-1]:
            raise BackupError(f"This backup was made by a newer version of the CRM (schema"
                              f" {version}, this one knows up to {known[-1]}); upgrade first")
        raise BackupError(f"This backup has an unknown schema version {version!r}")
    for table, entry in manifest["tables"].items():
        if not _NAME.match(str(table)) or not isinstance(entry, dict):
            raise BackupError(f"{MANIFEST} is damaged (table entry {table!r})")
        file = directory / f"{table}.parquet"
        if not file.is_file():
            raise BackupError(f"The backup is incomplete: {file.name} is missing")
        if _sha256(file) != entry.get("sha256"):
            raise BackupError(f"The backup is damaged: {file.name} does not match its checksum")
    return manifest


def known_versions() -> list[str]:
    """The schema versions (migration names) this code knows, in order."""
    return sorted({f.name.split(".")[0]  # NNN_name.postgresql.sql is a variant of NNN_name
                   for f in [*MIGRATIONS.glob("*.sql"), *MIGRATIONS.glob("[0-9]*.py")]})


def copy(source: Database, target: Database, progress=None) -> list[tuple[str, int, int]]:
    """The whole CRM of source into target, a database without data (DuckDB file or
    PostgreSQL, either way): a backup into a temporary folder restored into target, so ids,
    sequences, the audit log and history come along. Returns (table, rows in source, rows in
    target) per table; a count that differs is an error. progress(step, done, total, table)."""
    cur = target.cursor()
    try:  # refused before anything is read
        _check_target(cur, _tables(cur))
    finally:
        cur.close()
    with tempfile.TemporaryDirectory(prefix="crm-copy-") as tmp:
        manifest = backup(source, Path(tmp) / "copy", progress and (
            lambda done, total, table: progress("read", done, total, table)))
        restore(target, Path(tmp) / "copy", progress and (
            lambda done, total, table: progress("write", done, total, table)))
    counts = []
    cur = target.cursor()
    try:
        for table, entry in sorted(manifest["tables"].items()):
            if table == "schema_migrations":  # an engine may have migrations of its own
                continue
            counts.append((table, entry["rows"],
                           cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0]))
    finally:
        cur.close()
    wrong = [f"{t} ({a:,} -> {b:,})" for t, a, b in counts if a != b]
    if wrong:
        raise BackupError(f"The copy's row counts differ: {', '.join(wrong)}")
    return counts


def _check_target(cur, target_tables: list[str]) -> None:
    """A database to restore into has no users and no rows beyond what migrations seed."""
    full = [(t, n) for t in target_tables if t not in SEEDED and t not in SKIPPED
            and (n := cur.execute(f"SELECT count(*) FROM {t}").fetchone()[0])]
    if full:
        shown = ", ".join(f"{n:,} {t}" for t, n in full[:4])
        raise BackupError(f"The database is not empty ({shown}); restore into a new database"
                          f" file (--db PATH of a file that does not exist yet)")


def _check_tables(cur, source: Path, manifest: dict, target_tables: list[str],
                  custom: dict) -> None:
    for table in manifest["tables"]:
        if table not in target_tables:
            raise BackupError(f"The backup has a table {table!r} that this database lacks;"
                              f" it was made by another version of the CRM")
        columns = _columns(cur, table) + [name for name, _t in custom.get(table, [])]
        missing = [c for c in _top_columns(cur, source / f"{table}.parquet") if c not in columns]
        if missing:
            raise BackupError(f"The backup's {table} has columns this database lacks"
                              f" ({', '.join(missing)}); it was made by another version")


def _top_columns(cur, file: Path) -> list[str]:
    return dialect.parquet_columns(cur, file)


def _restore_table(cur, table: str, file: Path, rows: int) -> None:
    cols = ", ".join(f'"{c}"' for c in _top_columns(cur, file))
    existing = cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    count = None
    if existing and dialect.of(cur) != dialect.DUCKDB:
        count = dialect.replace_from_parquet(cur, table, _top_columns(cur, file),
                                             _primary_key(cur, table), file)
    elif existing:  # seeded by migrations: the backup's rows replace them (same keys)
        key = _primary_key(cur, table)
        cur.execute(f"INSERT OR REPLACE INTO {table} ({cols}) SELECT {cols}"
                    f" FROM read_parquet($file)", {"file": str(file)})
        if key:
            keys = ", ".join(key)
            cur.execute(f"DELETE FROM {table} WHERE ({keys}) NOT IN"
                        f" (SELECT ({keys}) FROM read_parquet($file))", {"file": str(file)})
    else:
        dialect.insert_parquet(cur, table, _top_columns(cur, file), file)
    if count is None:
        count = cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    if count != rows:
        raise BackupError(f"The backup is damaged: {table} has {count:,} rows, the manifest"
                          f" says {rows:,}")


def _set_sequences(cur, sequences: dict) -> None:
    current = _sequences(cur)
    for name, nxt in sequences.items():
        if not _NAME.match(str(name)) or name not in current:
            raise BackupError(f"The backup has a sequence {name!r} that this database lacks")
        if nxt is None:  # never used in the backed-up database
            continue
        if current[name] is None or current[name] != int(nxt):
            cur.execute("SELECT setval($name, $value)", {"name": name, "value": int(nxt) - 1})


# --- catalog helpers -----------------------------------------------------------------------

def _tables(cur) -> list[str]:
    found = [r[0] for r in cur.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        " AND table_catalog = current_database() AND table_type = 'BASE TABLE'"
        " ORDER BY table_name").fetchall()]
    for table in found:
        if not _NAME.match(table):
            raise BackupError(f"Unexpected table name {table!r}")
    return found


def _columns(cur, table: str) -> list[str]:
    return [r[0] for r in cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema ="
        " current_schema() AND table_catalog = current_database() AND table_name = $t"
        " ORDER BY ordinal_position", {"t": table}).fetchall()]


def _primary_key(cur, table: str) -> list[str]:
    return [r[0] for r in cur.execute(
        "SELECT k.column_name FROM information_schema.table_constraints c"
        " JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name"
        " AND k.table_schema = c.table_schema AND k.table_name = c.table_name"
        " WHERE c.table_schema = current_schema() AND c.table_catalog = current_database()"
        " AND c.table_name = $t AND c.constraint_type = 'PRIMARY KEY'"
        " ORDER BY k.ordinal_position", {"t": table}).fetchall()]


def _parents_first(cur, tables: list[str]) -> list[str]:
    """The tables ordered so each comes after every table its foreign keys reference."""
    refs: dict[str, set[str]] = {t: set() for t in tables}
    for table, parent in cur.execute(
            "SELECT c.table_name, p.table_name FROM information_schema.referential_constraints r"
            " JOIN information_schema.table_constraints c ON c.constraint_name = r.constraint_name"
            " AND c.constraint_schema = r.constraint_schema"
            " JOIN information_schema.table_constraints p"
            " ON p.constraint_name = r.unique_constraint_name"
            " AND p.constraint_schema = r.unique_constraint_schema"
            " WHERE r.constraint_schema = current_schema()"
            " AND r.constraint_catalog = current_database()").fetchall():
        if table in refs and parent != table:
            refs[table].add(parent)
    ordered: list[str] = []
    while refs:
        ready = sorted(t for t, parents in refs.items() if not parents - set(ordered))
        if not ready:
            raise BackupError(f"Foreign keys form a cycle among {', '.join(sorted(refs))}")
        ordered += ready
        for t in ready:
            del refs[t]
    return ordered


def _sequences(cur) -> dict[str, int | None]:
    """Each sequence's next value (None: never used yet)."""
    return dialect.sequences(cur)


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unzip(archive: Path, into: Path) -> None:
    """Extracts only plain file names (no folders, no ../ tricks)."""
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            name = Path(info.filename).name
            if info.is_dir() or name != info.filename or not name:
                continue
            with z.open(info) as src, open(into / name, "wb") as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    dst.write(block)
