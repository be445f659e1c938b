"""The command line: python -m crm init|users|export|backup|restore|copy|bench ... (DESIGN.md).

Every command takes --db PATH (default: CRM_DB or data/crm.duckdb), prints a short summary
and, on an expected failure, exits non-zero with a one-line reason instead of a traceback.
Passwords come from the CRM_PASSWORD environment variable or a prompt, never from a flag:
process lists show flags to every user of the machine.
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import datetime

from crm import auth, config, dialect, i18n, pipelines
from crm.fields import ValidationError

EXIT_FAILURE = 1
EXIT_UNAVAILABLE = 2


class CommandError(Exception):
    """An expected failure; main() prints its message on one line and exits non-zero."""

    def __init__(self, message: str, code: int = EXIT_FAILURE):
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m crm", description="CRM command line")
    parser.add_argument("--db", metavar="PATH", default=None,
                        help="database file (default: $CRM_DB or data/crm.duckdb)")
    # --db after the command works too; SUPPRESS keeps a sub-command from erasing the top one.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS,
                        help="database file (default: $CRM_DB or data/crm.duckdb)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    init = commands.add_parser("init", parents=[common],
                               help="create or migrate the database; --demo loads demo data")
    init.add_argument("--demo", action="store_true", help="load demo data (and demo users)")
    init.add_argument("--size", choices=("small", "large"), default="small",
                      help="demo size: small (~300 leads) or large (1,000,000 leads)")
    init.add_argument("--language", choices=tuple(i18n.LANGUAGES), default=None,
                      help="language of a new install's default pipeline and of the demo"
                           " records: en (with a Persian share), fa or lt"
                           " (default: $CRM_LANGUAGE or en)")
    init.set_defaults(run=cmd_init)

    users = commands.add_parser("users", help="add, list, lock or unlock users, set a password")
    user_commands = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = user_commands.add_parser(
        "add", parents=[common],
        help="add a user; the password comes from CRM_PASSWORD or a prompt")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=auth.ROLES)
    add.add_argument("--name", help="full name (default: the username)")
    add.add_argument("--email")
    add.set_defaults(run=cmd_users_add)
    lst = user_commands.add_parser("list", parents=[common], help="list users")
    lst.set_defaults(run=cmd_users_list)
    for action, text in (("lock", "lock a user out"), ("unlock", "let a locked user back in")):
        p = user_commands.add_parser(action, parents=[common], help=text)
        p.add_argument("username")
        p.set_defaults(run=cmd_users_lock, active=(action == "unlock"))
    passwd = user_commands.add_parser(
        "passwd", parents=[common],
        help="set a user's password (from CRM_PASSWORD or a prompt); signs them out")
    passwd.add_argument("username")
    passwd.set_defaults(run=cmd_users_passwd)

    bench = commands.add_parser(
        "bench", parents=[common],
        help="measure page and query timings (options after 'bench' go to crm.bench)")
    bench.set_defaults(run=cmd_bench)

    export = commands.add_parser(
        "export", parents=[common],
        help="write every live record of an entity to a CSV, Excel or Parquet file")
    export.add_argument("entity", choices=EXPORT_ENTITIES)
    export.add_argument("file")
    export.add_argument("--format", choices=("csv", "xlsx", "parquet"), default=None,
                        help="file format (default: from the file's extension)")
    export.set_defaults(run=cmd_export)

    backup = commands.add_parser(
        "backup", parents=[common],
        help="write every table to Parquet files with a manifest in DIR (created if missing)")
    backup.add_argument("dir")
    backup.set_defaults(run=cmd_backup)
    restore = commands.add_parser(
        "restore", parents=[common],
        help="restore a backup (DIR, or its zip) into a new, empty database")
    restore.add_argument("dir")
    restore.set_defaults(run=cmd_restore)
    copy = commands.add_parser(
        "copy", parents=[common],
        help="copy the whole CRM at --db into another, empty database (--to), or from"
             " another into an empty --db (--from); a DuckDB file or a postgresql:// URL")
    way = copy.add_mutually_exclusive_group(required=True)
    way.add_argument("--to", metavar="PATH_OR_URL")
    way.add_argument("--from", dest="source", metavar="PATH_OR_URL")
    copy.set_defaults(run=cmd_copy)

    imp = commands.add_parser(
        "import", parents=[common],
        help="bring rows of a CSV, TSV or Excel file into an entity (dry run with --dry-run)")
    imp.add_argument("entity", choices=IMPORT_ENTITIES)
    imp.add_argument("file")
    imp.add_argument("--mode", choices=("create", "upsert", "update"), default="create",
                     help="create new records (default), or also update / only update those"
                          " matching --key")
    imp.add_argument("--key", help="the field that identifies a record (e.g. email)")
    imp.add_argument("--map", action="append", default=[], metavar="'Column=field'",
                     help="map a file column to a field (repeatable; 'Column=' ignores it)")
    imp.add_argument("--mapping", metavar="FILE|NAME",
                     help="a JSON file {column: field}, or the name of a mapping saved on"
                          " the Import page")
    imp.add_argument("--create-missing", action="store_true",
                     help="add stages the file names that the pipeline lacks")
    imp.add_argument("--dry-run", action="store_true", help="say what would happen; write nothing")
    imp.add_argument("--user", help="import as this user (owner of new records, audit);"
                                    " default: the system")
    imp.add_argument("--encoding", help="the file's encoding (default: detected)")
    imp.add_argument("--delimiter", help="the CSV delimiter (default: detected)")
    imp.add_argument("--sheet", help="the Excel sheet (default: the first)")
    imp.set_defaults(run=cmd_import)

    add_sales_commands(commands, common)
    run_rules = commands.add_parser(
        "run-rules", parents=[common],
        help="run the date automation rules due today (each fires once per record and date)")
    run_rules.add_argument("--date", metavar="YYYY-MM-DD",
                           help="run as if today were this day (default: today)")
    run_rules.set_defaults(run=cmd_run_rules)
    return parser


# --- commands ------------------------------------------------------------------------------

def cmd_init(args) -> int:
    path = config.db_target(args.db)
    existed = None if isinstance(path, str) else path.exists()
    db = _open(args)
    try:
        if existed is None:  # a PostgreSQL URL: new when the first migration just ran
            existed, path = "001_foundation" not in db.migrated, dialect.shown_url(path)
        versions = [r["version"] for r in
                    db.query("SELECT version FROM schema_migrations ORDER BY version")]
        print(f"{'Opened' if existed else 'Created'} {path} (schema {versions[-1]})")
        if not existed or auth.count_users(db) == 0:  # a new install: its default pipeline
            pipelines.name_defaults_in(db, args.language or i18n.env_default())
        if args.demo:
            _init_demo(db, args.size, args.language or i18n.env_default())
        elif auth.count_users(db) == 0:
            print("No users yet: add the first admin with"
                  " `python -m crm users add NAME --role admin`")
    finally:
        db.close()
    return 0


def _init_demo(db, size: str, language: str) -> None:
    from crm import demo

    if not db.scalar("SELECT count(*) FROM users WHERE role = 'admin'"):
        password = os.environ.get("CRM_PASSWORD") or demo.random_password()
        # shown before the user exists, so an interruption cannot hide it
        if os.environ.get("CRM_PASSWORD"):
            print("Creating admin user 'admin' with the password from CRM_PASSWORD")
        else:
            print(f"Creating admin user 'admin' with password: {password}")
            print("  (shown once; change it or keep it safe)")
        sys.stdout.flush()
        auth.create_user(db, None if auth.count_users(db) == 0 else auth.SYSTEM,
                         "admin", "Administrator", None, password, "admin")
    existing = db.one("SELECT (SELECT count(*) FROM leads) AS leads,"
                      " (SELECT count(*) FROM customers) AS customers")
    if existing["leads"] or existing["customers"]:
        print(f"Demo data not loaded: the database already holds {existing['leads']:,} leads"
              f" and {existing['customers']:,} customers")
        return
    # The demo users' password is shown before loading starts: a load interrupted after the
    # users exist must not leave accounts whose password nobody ever saw.
    password = None
    coming = demo.demo_users_to_create(db)
    if coming and os.environ.get("CRM_DEMO_PASSWORD"):
        print(f"Demo users {', '.join(coming)} use the password from CRM_DEMO_PASSWORD")
    elif coming:
        password = demo.random_password()
        print(f"Demo users {', '.join(coming)} share the password: {password}")
        print("  (shown once; `python -m crm users passwd NAME` sets a new one)")
    sys.stdout.flush()
    result = demo.load_demo(db, size, progress=_progress if sys.stderr.isatty() else None,
                            password=password, language=language)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"Loaded {size} demo data in language {language}: {result['leads']:,} leads,"
          f" {result['customers']:,} customers, {result['contacts']:,} contacts"
          f" in {result['seconds']:.1f} s")


def _progress(fraction: float, text: str) -> None:
    sys.stderr.write(f"\r{fraction:4.0%} {text:<50}")
    sys.stderr.flush()


def cmd_users_add(args) -> int:
    password = _read_password()
    db = _open(args)
    try:
        first = auth.count_users(db) == 0
        # The first user needs no actor (create_user insists it is an admin). After that the
        # command line acts as the system admin: whoever can run it can open the file anyway.
        actor = None if first else auth.SYSTEM
        username = args.username.lower().strip()
        auth.create_user(db, actor, username, args.name or username, args.email, password,
                         args.role)
    finally:
        db.close()
    print(f"Added {args.role} {username!r}" + (" (the first user)" if first else ""))
    return 0


def _read_password() -> str:
    password = os.environ.get("CRM_PASSWORD")
    if password:
        return password
    if not sys.stdin.isatty():
        raise CommandError("Set CRM_PASSWORD or run in a terminal to be asked for the password")
    password = getpass.getpass("Password: ")
    problem = auth.password_problem(password)
    if problem:
        raise CommandError(problem)
    if getpass.getpass("Password again: ") != password:
        raise CommandError("The passwords do not match")
    return password


def cmd_users_list(args) -> int:
    db = _open(args)
    try:
        users = auth.list_users(db)
    finally:
        db.close()
    if not users:
        print("No users")
        return 0
    rows = [(u["username"], u["name"], u["role"], _state(u), u["email"] or "",
             f"{u['last_login_at']:%Y-%m-%d %H:%M}" if u["last_login_at"] else "never")
            for u in users]
    header = ("USERNAME", "NAME", "ROLE", "STATE", "EMAIL", "LAST SIGN-IN")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
    print(f"{len(users)} user(s)")
    return 0


def _state(user: dict) -> str:
    if not user["active"]:
        return "locked"
    if user["locked_until"] and user["locked_until"] > datetime.now():
        return f"locked until {user['locked_until']:%H:%M}"
    return "active"


def cmd_users_lock(args) -> int:
    username = args.username.lower().strip()
    db = _open(args)
    try:
        auth.set_active(db, auth.SYSTEM, username, args.active)
    finally:
        db.close()
    print(f"{'Unlocked' if args.active else 'Locked'} {username!r}")
    return 0


def cmd_users_passwd(args) -> int:
    username = args.username.lower().strip()
    password = _read_password()
    db = _open(args)
    try:
        auth.reset_password(db, auth.SYSTEM, username, password)
    finally:
        db.close()
    print(f"Set a new password for {username!r}; their open sessions are signed out")
    return 0


def cmd_bench(args) -> int:
    try:
        import crm.bench as bench
    except ModuleNotFoundError as exc:
        if exc.name != "crm.bench":
            raise
        raise CommandError("bench is not available yet", EXIT_UNAVAILABLE) from None
    return bench.main(args) or 0


EXPORT_ENTITIES = ("leads", "customers", "contacts", "deals", "activities", "tasks", "products",
                   "surveys", "complaints", "competitors", "price_records", "customer_returns")


def _export_entity(name: str):
    """The entity of a table name: every importable one exports too."""
    from crm import importer

    return {e.table: e for e in importer.entities()}[name]


def _acting_user(db, username: str | None):
    """--user: whose permissions a command runs with (default: the system, which sees all)."""
    if not username:
        return auth.SYSTEM
    user = auth.get_user(db, username)
    if user is None:
        raise CommandError(f"No active user named {username!r}")
    return user


def cmd_export(args) -> int:
    from pathlib import Path

    from crm import records

    path = Path(args.file)
    fmt = args.format or {".csv": "csv", ".xlsx": "xlsx", ".parquet": "parquet"}.get(
        path.suffix.lower())
    if fmt is None:
        raise CommandError(f"Cannot tell the format from {path.name!r}: name the file .csv,"
                           f" .xlsx or .parquet, or pass --format")
    if not path.parent.is_dir():
        raise CommandError(f"{path.parent} does not exist")
    db = _open(args)
    try:  # everything: the system user sees every live record
        count = records.export_to(db, auth.SYSTEM, _export_entity(args.entity),
                                  records.Query(), path, fmt)
    except ValueError as exc:
        raise CommandError(_one_line(exc)) from None
    finally:
        db.close()
    print(f"Exported {count:,} {args.entity} to {path} ({fmt})")
    return 0


IMPORT_ENTITIES = EXPORT_ENTITIES + ("users",)  # users without passwords: admins only


def _import_mapping(db, user, entity, given: str) -> dict:
    """--mapping: a JSON file {column: field}, or the name of a mapping saved on the Import
    page (or with importer.save_mapping)."""
    import json
    from pathlib import Path

    from crm import importer

    path = Path(given)
    if path.is_file():
        found = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(found, dict):
            raise CommandError(f"--mapping {given}: the file must hold a JSON object"
                               " {column: field}")
        return found
    saved = importer.find_mapping(db, user, entity, given)
    if saved is None:
        names = ", ".join(m["name"] for m in importer.mappings(db, user, entity)) or "none"
        raise CommandError(f"--mapping {given!r}: no such file, and no saved mapping of"
                           f" {entity.table} by that name (saved: {names})")
    return saved["mapping"]


def cmd_import(args) -> int:
    from pathlib import Path

    from crm import importer

    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"{path} does not exist")
    entity = _export_entity(args.entity)
    db = _open(args)
    try:
        user = _acting_user(db, args.user)
        source = importer.read(path.read_bytes(), path.name, encoding=args.encoding,
                               delimiter={"tab": "\t"}.get(args.delimiter, args.delimiter),
                               sheet=args.sheet, file_path=str(path))
        mapping = importer.propose_mapping(entity, source.headers)
        if args.mapping:
            mapping.update(_import_mapping(db, user, entity, args.mapping))
        for pair in args.map:
            column, _sep, name = pair.partition("=")
            if column not in source.headers:
                raise CommandError(f"--map {pair!r}: the file has no column {column!r}")
            mapping[column] = name.strip() or None
        plan = importer.plan(db, user, entity, source, mapping, args.mode, args.key,
                             create_missing=args.create_missing)
        mapped = ", ".join(f"{c} -> {f}" for c, f in mapping.items() if f) or "nothing"
        print(f"Read {len(source.rows):,} rows from {path.name}"
              + (f" ({source.encoding}, delimiter {source.delimiter!r})" if source.encoding
                 else "") + f"; columns: {mapped}")
        for note in plan.notes:
            print(f"Note: {note}")
        counts = plan.counts
        print(f"{'Would' if args.dry_run else 'Will'}: create {counts['create']:,}, update"
              f" {counts['update']:,}, skip {counts['skip']:,}, reject {counts['reject']:,}")
        for row in [r for r in plan.rows if r.action == "reject"][:20]:
            print(f"  row {row.line}: " + "; ".join(f"{k}: {v}" for k, v in row.errors.items()))
        if counts["reject"] > 20:
            print(f"  … and {counts['reject'] - 20:,} more rejected rows")
        if args.dry_run:
            return 0
        if counts["create"] + counts["update"] == 0:
            if counts["reject"]:
                raise CommandError("Nothing to import: every row was skipped or rejected")
            print("Nothing new to import: every row is there already")
            return 0
        import_id = importer.execute(db, user, plan)
        print(f"Imported as import #{import_id}: {counts['create']:,} created,"
              f" {counts['update']:,} updated (undo it on the Import page)")
    except ValueError as exc:  # ImportFileError, a bad --mapping file (JSONDecodeError)
        raise CommandError(_one_line(exc)) from None
    finally:
        db.close()
    return 0


def cmd_backup(args) -> int:
    from crm import backup

    db = _open(args)
    try:
        manifest = backup.backup(db, args.dir)
    except backup.BackupError as exc:
        raise CommandError(str(exc)) from None
    finally:
        db.close()
    rows = sum(t["rows"] for t in manifest["tables"].values())
    print(f"Backed up {len(manifest['tables'])} tables ({rows:,} rows, schema"
          f" {manifest['schema_version']}) to {args.dir}")
    return 0


def cmd_restore(args) -> int:
    from crm import backup

    db = _open(args)
    try:
        manifest = backup.restore(db, args.dir)
    except backup.BackupError as exc:
        raise CommandError(str(exc)) from None
    finally:
        db.close()
    rows = sum(t["rows"] for t in manifest["tables"].values())
    print(f"Restored {len(manifest['tables'])} tables ({rows:,} rows) from {args.dir}"
          f" (made {manifest.get('created_at')}, schema {manifest['schema_version']})"
          f" into {db.path}")
    return 0


# --- sales dashboards and forecast: kpis, snapshot ----------------------------------------

def cmd_copy(args) -> int:
    from crm import backup
    from crm.db import Database

    here = config.db_target(getattr(args, "db", None))
    source, target = (here, args.to) if args.to else (args.source, here)
    if str(source) == str(target):
        raise CommandError("copy needs two different databases")
    src = Database(source)
    try:
        dst = Database(target)
        try:
            counts = backup.copy(src, dst, _progress_bar)
        except backup.BackupError as exc:
            raise CommandError(str(exc)) from None
        finally:
            dst.close()
    finally:
        src.close()
    width = max(len(t) for t, _a, _b in counts)
    for table, rows, _same in counts:
        print(f"  {table:<{width}}  {rows:>12,}  ok")
    print(f"Copied {len(counts)} tables ({sum(a for _t, a, _b in counts):,} rows) from"
          f" {_shown(source)} to {_shown(target)}; every table's row count matches")
    return 0


def _shown(target) -> str:
    return dialect.shown_url(target) if isinstance(target, str) else str(target)


def _progress_bar(step: str, done: int, total: int, table: str) -> None:
    filled = 30 * done // max(total, 1)
    sys.stderr.write(f"\r{'reading' if step == 'read' else 'writing'} [{'#' * filled:<30}]"
                     f" {done}/{total} {table:<28.28}" + ("\n" if done == total else ""))
    sys.stderr.flush()


def add_sales_commands(commands, common) -> None:
    kpis = commands.add_parser(
        "kpis", parents=[common],
        help="print the home dashboard's tiles and the forecast by period (as the pages do)")
    kpis.add_argument("--from", dest="date_from", metavar="DATE",
                      help="first day of the period, YYYY-MM-DD (default: this month's first)")
    kpis.add_argument("--to", dest="date_to", metavar="DATE",
                      help="last day of the period, YYYY-MM-DD (default: this month's last)")
    kpis.add_argument("--user", metavar="USERNAME",
                      help="what this user sees (a rep: their own deals; default: everything)")
    kpis.add_argument("--grain", choices=("month", "quarter"), default="month",
                      help="forecast periods (default: month)")
    kpis.add_argument("--format", choices=("json", "table"), default="table")
    kpis.set_defaults(run=cmd_kpis)
    snapshot = commands.add_parser(
        "snapshot", parents=[common],
        help="store today's forecast snapshot (open pipeline by close month and category)")
    snapshot.set_defaults(run=cmd_snapshot)


def kpi_report(db, user, start, end, grain: str = "month", today=None) -> dict:
    """The figures `kpis` prints: the home tiles over [start, end] (against the same number
    of days before) and, per currency, the forecast by period."""
    from datetime import date

    from crm.analytics import forecast, kpis, periods

    today = today or date.today()
    scope = periods.scope("custom", today, "en", (start, end))
    report = {"user": user.username, "period": {
        "from": scope.start, "to": scope.end, "previous_from": scope.prev_start,
        "previous_to": scope.prev_end}, "tiles": kpis.tiles(db, user, scope, today)}
    report["forecast"] = {code: forecast.summary(db, user, scope, grain, code, today, "en")
                          for code in kpis.currencies(db, user, scope)}
    return report


def cmd_kpis(args) -> int:
    import json
    from datetime import date

    from crm.analytics import periods

    def day(text, name):
        try:
            return date.fromisoformat(text) if text else None
        except ValueError:
            raise CommandError(f"{name} must be a date like 2026-01-31, not {text!r}") from None

    today = date.today()
    first, last, *_ = periods.span("this_month", today, "en")
    start, end = day(args.date_from, "--from") or first, day(args.date_to, "--to") or last
    if end < start:
        raise CommandError("--to is before --from")
    db = _open(args)
    try:
        user = _acting_user(db, args.user)
        report = kpi_report(db, user, start, end, args.grain, today)
    finally:
        db.close()
    if args.format == "json":
        print(json.dumps(report, default=_json_value, indent=2, ensure_ascii=False))
    else:
        _print_kpis(report)
    return 0


def _json_value(value):
    from datetime import date
    from decimal import Decimal

    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def _print_kpis(report: dict) -> None:
    def pct(x):
        return "-" if x is None else f"{x:.1%}"

    t, p = report["tiles"], report["period"]
    print(f"KPIs for {report['user']}: {p['from']} .. {p['to']}"
          f" (previous {p['previous_from']} .. {p['previous_to']})")
    rows = []
    for code, now in sorted(t["open_pipeline"]["now"].items()):
        before = t["open_pipeline"]["before"].get(code, {})
        rows.append((f"open pipeline {code}", f"{now['deals']:,} deals, {now['amount']:,.2f},"
                     f" weighted {now['weighted']:,.2f}",
                     f"{before.get('amount', 0):,.2f}, weighted {before.get('weighted', 0):,.2f}"))
    closed, was = t["closed"]["now"], t["closed"]["before"]
    for code, won in sorted(closed["won"].items()):
        old = was["won"].get(code, {})
        rows.append((f"won {code}", f"{won['deals']:,} deals, {won['amount']:,.2f},"
                     f" average {won['average']:,.2f}",
                     f"{old.get('deals', 0):,} deals, {old.get('amount', 0):,.2f}"))
    rows.append(("win rate", pct(closed["win_rate"]), pct(was["win_rate"])))
    cycle = closed["cycle_days"]
    rows.append(("average sales cycle (days)", "-" if cycle is None else f"{cycle:.1f}",
                 "-" if was["cycle_days"] is None else f"{was['cycle_days']:.1f}"))
    conv = t["conversion"]
    rows.append(("lead -> customer", f"{pct(conv['now']['rate'])} ({conv['now']['converted']:,}"
                 f" of {conv['now']['leads']:,})", pct(conv["before"]["rate"])))
    for name in ("customer_base", "installed_base"):
        rows.append((name.replace("_", " "), f"{t['bases']['now'][name]:,}",
                     f"{t['bases']['before'][name]:,}"))
    keep = t["retention"]
    rows.append(("retention", f"{pct(keep['now']['rate'])} ({keep['now']['retained']:,} of"
                 f" {keep['now']['active_before']:,})", pct(keep["before"]["rate"])))
    width = max(len(r[0]) for r in rows)
    print(f"{'tile'.ljust(width)}  {'this period':<48}  previous period")
    for name, now, before in rows:
        print(f"{name.ljust(width)}  {now:<48}  {before}")
    for code, f in report["forecast"].items():
        print(f"\nforecast {code} by {f['grain']}: overdue weighted {f['overdue_weighted']:,.2f},"
              f" without a date {f['no_date_weighted']:,.2f}")
        print(f"{'period':>7}  {'weighted':>14}  {'closed':>14}  {'commit':>14}"
              f"  {'best case':>14}  {'pipeline':>14}  {'quota':>14}")
        for r in f["periods"]:
            quota = "-" if r["quota"] is None else f"{r['quota']:,.2f}"
            print(f"{r['period']:>7}  {r['weighted']:>14,.2f}  {r['closed']:>14,.2f}"
                  f"  {r['commit']:>14,.2f}  {r['best_case']:>14,.2f}  {r['pipeline']:>14,.2f}"
                  f"  {quota:>14}")


def cmd_snapshot(args) -> int:
    from crm.analytics import forecast

    db = _open(args)
    try:
        written = forecast.take_snapshot(db, auth.SYSTEM)
    finally:
        db.close()
    if written:
        print(f"Stored today's forecast snapshot: {written:,} rows")
    else:
        print("Today's forecast snapshot exists already; nothing stored")
    return 0


# --- automation rules ------------------------------------------------------------------------

def cmd_run_rules(args) -> int:
    from datetime import date

    from crm import rules

    try:
        today = date.fromisoformat(args.date) if args.date else None
    except ValueError:
        raise CommandError(f"--date must be a date like 2026-01-31, not {args.date!r}") from None
    db = _open(args)
    try:
        summary = rules.run_date_rules(db, today)
    finally:
        db.close()
    print(f"Date rules: {summary['rules']:,} enabled, {summary['checked']:,} records due;"
          f" {summary['ok']:,} runs done, {summary['failed']:,} failed,"
          f" {summary['loop_limit']:,} stopped by the loop limit")
    if summary["failed"]:
        raise CommandError(f"{summary['failed']:,} rule runs failed; see the rules' run logs"
                           " under Settings > Automation rules")
    return 0


# --- plumbing ------------------------------------------------------------------------------

def _open(args):
    from crm.db import Database

    return Database(args.db)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.errors.values())
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    import duckdb

    from crm.db import DatabaseUnavailable, WriteConflictBase

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.bench_args = extra  # crm.bench parses its own options
    try:
        return args.run(args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except (ValidationError, auth.PermissionDenied, auth.AccountLocked, DatabaseUnavailable,
            WriteConflictBase, LookupError, OSError, duckdb.IOException) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
