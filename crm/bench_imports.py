"""python -m crm bench --import-only, its lines per entity: the set-based import of records that
name other records (crm/importer_refs.py, crm/importer_deals.py) against DuckDB's bare read of
the same file in the same run, and with --row-path the row path on a smaller file (per row,
extrapolated).

A base database holds `customers` customers (named "Customer <n>"), deals, leads, products,
complaints and competitors; each entity's file names them (a few near misses among them, for
the "did you mean" path) and is imported into a copy of it. On PostgreSQL (--db
postgresql://...) the entities it plans set-based (importer.PG_TABLES: contacts, tasks,
activities), in throw-away databases made from the base as a template, against a bare COPY.

Then the set-based checks (CHECKS: updates with their undo, new records with a custom link, the
write-time re-check) on databases seeded through the import itself, and a near miss among many
customers through the SQL shortlist (crm/importer_near.py) against a bare scan of their names.
The few SQL statements here count what a line reports (bench-only)."""
from __future__ import annotations

import contextlib
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from crm import (activities, auth, customers, deals, importer, leads, market, pipelines,
                 products, records, service, team)
from crm.db import Database

REFS_ROWS = 200_000
REFS_ROW_ROWS = 20_000
PG_REFS_ROW_ROWS = 5_000  # on PostgreSQL (--row-path)
OWNERS = ("Ada Admin", "maria", "reza", "")


def _customer(i: int, n: int) -> str:
    return "Custmer 7" if i % 50_000 == 7 else f"Customer {i % n}"  # a few near misses


def _day(i: int) -> str:
    return f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}"


# entity -> (its records.Entity, the file's header, line i of a file naming n customers;
# stages: the names of the default pipeline's open stages)
FILES = {
    "contacts": (customers.CONTACTS, "Customer,First Name,Last Name,Email,Phone,Owner,Consent"
                 " given,Consent date", lambda i, n, stages: (
                     f"{_customer(i, n)},Ann{i % 97},Last{i},c{i}@example.com,+1 555"
                     f" {i % 10000:04d},{OWNERS[i % 4]},{'yes' if i % 2 else 'no'},"
                     f"{_day(i) if i % 2 else ''}")),
    "tasks": (activities.TASKS, "Task,Due,Assignee,Priority,Status,Customer,Deal",
              lambda i, n, stages: (
                  f"Task {i},{_day(i)} 09:00,{OWNERS[i % 4]},{('low', 'normal', 'high')[i % 3]},"
                  f"open,{_customer(i, n)},{f'Deal {i % 20}' if i % 3 == 0 else ''}")),
    "activities": (activities.ACTIVITIES, "Type,Subject,When,Duration (minutes),By,Customer,"
                   "Deal", lambda i, n, stages: (
                       f"{('call', 'email', 'meeting')[i % 3]},Talk {i},{_day(i)} 10:00,"
                       f"{i % 90},{OWNERS[i % 4]},{_customer(i, n)},"
                       f"{f'Deal {i % 20}' if i % 3 == 0 else ''}")),
    "surveys": (service.SURVEYS, "Customer,Answered on,Channel,CSAT,NPS,Comment,Product",
                lambda i, n, stages: (f"{_customer(i, n)},{_day(i)},email,{1 + i % 6},{i % 11},"
                                      f"ok {i % 13},Product {i % 20}")),
    "complaints": (service.COMPLAINTS, "Subject,Customer,Product,Category,Severity,Status,"
                   "Opened on,Resolved on", lambda i, n, stages: (
                       f"Issue {i},{_customer(i, n)},Product {i % 20},billing,low,"
                       f"{('open', 'resolved', 'resolved')[i % 3]},2025-01-{1 + i % 28:02d},"
                       f"{'2025-02-01' if i % 3 == 1 else ''}")),
    "price_records": (market.PRICE_RECORDS, "Our product,Competitor,Competitor's product,"
                      "Price,Currency,Observed on,Source,Region", lambda i, n, stages: (
                          f"Product {i % 20},Rival {i % 10},Model {i % 100},{i % 5000}.50,USD,"
                          f"{_day(i)},price_list,Region {i % 7}")),
    "customer_returns": (market.RETURNS, "Customer,Kind,Date,Amount,Currency,Reason",
                         lambda i, n, stages: (f"{_customer(i, n)},return,{_day(i)},"
                                               f"{i % 900}.00,USD,defective")),
    "competitors": (market.COMPETITORS, "Competitor,Country,Threat level,Owner,Strategy",
                    lambda i, n, stages: (f"Rival X{i},DE,{('low', 'medium', 'high')[i % 3]},"
                                          f"{OWNERS[i % 4]},{'price war' if i % 2 else ''}")),
    "users": (team.USERS, "Username,Full name,Email,Role", lambda i, n, stages: (
        f"user{i},User {i},user{i}@example.com,{('rep', 'viewer')[i % 2]}")),
    "deals": (deals.DEALS, "Title,Customer,Stage,Amount,Currency,Expected close,Owner",
              lambda i, n, stages: (f"Big deal {i},{_customer(i, n)},{stages[i % len(stages)]},"
                                    f"{i % 90_000}.00,USD,{_day(i)},{OWNERS[i % 4]}")),
}


def write(path: Path, entity: str, rows: int, n_customers: int, stages: list[str]) -> None:
    _entity, header, line = FILES[entity]
    with open(path, "w", encoding="utf-8") as out:
        out.write(header + "\n")
        for i in range(rows):
            out.write(line(i, n_customers, stages) + "\n")


def _base(path: Path, n_customers: int, tmp: Path) -> list[str]:
    """The base database; returns the names of the default pipeline's open stages."""
    db = Database(path)
    try:
        auth.create_user(db, None, "admin", "Ada Admin", "ada@example.com", "bench-pass-123",
                         "admin")
        admin = auth.get_user(db, "admin")
        for username, name, role in [("maria", "Maria Manager", "manager"),
                                     ("reza", "Reza Rahimi", "rep")]:
            auth.create_user(db, admin, username, name, None, "bench-pass-123", role)
        csv_path = tmp / "customers.csv"
        with open(csv_path, "w") as out:
            out.write("Name,Owner\n" + "".join(f"Customer {i},{OWNERS[i % 3]}\n"
                                               for i in range(n_customers)))
        source = importer.read(csv_path.read_bytes(), csv_path.name, file_path=csv_path,
                               fast=True)
        importer.execute(db, admin, importer.plan(
            db, admin, customers.CUSTOMERS, source,
            importer.propose_mapping(customers.CUSTOMERS, source.headers)))
        stages = [s for s in pipelines.stages_of(db, pipelines.default_pipeline_id(db))
                  if s["kind"] == "open"]
        for i in range(20):
            deals.create_deal(db, admin, {"title": f"Deal {i}", "customer_id": i + 1,
                                          "stage_id": stages[0]["id"]})
            records.create(db, admin, products.PRODUCTS, {"name": f"Product {i}",
                                                          "code": f"P-{i}", "unit_price": "10"})
            leads.create_lead(db, admin, {"last_name": f"Lead {i}"})
            service.create_complaint(db, admin, {"subject": f"Complaint {i}",
                                                 "customer_id": i + 1})
        for i in range(10):
            market.create_competitor(db, admin, {"name": f"Rival {i}"})
        return [s["name"] for s in stages]
    finally:
        db.close()


def bare_duckdb_load(path: Path, csv_path: Path) -> None:
    """The bare read a file's import is held against: DuckDB's read_csv of it into a table."""
    import duckdb

    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE TABLE t AS SELECT * FROM read_csv($path)", {"path": str(csv_path)})
    finally:
        con.close()


def _import(db_path: Path, csv_path: Path, entity, fast: bool) -> tuple[float, dict, list]:
    """read + plan + execute of the file, as the command line does it: (seconds, counts,
    notes)."""
    db = Database(db_path)
    try:
        admin = auth.get_user(db, "admin")
        start = time.perf_counter()
        source = importer.read(csv_path.read_bytes(), csv_path.name, file_path=csv_path,
                               fast=fast)
        plan = importer.plan(db, admin, entity, source,
                             importer.propose_mapping(entity, source.headers))
        problems = [] if (plan.staged is not None) == fast else (
            plan.notes or [f"fast path: {'no' if fast else 'yes'}"])
        importer.execute(db, admin, plan)
        return time.perf_counter() - start, plan.counts, problems
    finally:
        db.close()


@contextlib.contextmanager
def _copy_of(base, tmp: Path, server: str | None, name: str):
    """A fresh copy of the base database: a copied DuckDB file, or on PostgreSQL (server) a
    throw-away database made from the base as its template."""
    if server is None:
        copy = tmp / f"{name}.duckdb"
        shutil.copy(base, copy)
        try:
            yield copy
        finally:
            copy.unlink(missing_ok=True)
        return
    from crm import bench

    made = f"{base.rsplit('/', 1)[1].split('?')[0]}_{name}"
    bench._server_command(server, f"CREATE DATABASE {made} TEMPLATE"
                                  f" {base.rsplit('/', 1)[1].split('?')[0]}")
    try:
        yield bench.database_url(server, made)
    finally:
        bench._server_command(server, f"DROP DATABASE IF EXISTS {made} WITH (FORCE)")


def _bare(tmp: Path, csv_path: Path, server: str | None) -> float:
    """Seconds of the engine's bare load of the file: DuckDB's read_csv into a table, or on
    PostgreSQL a COPY into a table of text columns in a throw-away database."""
    if server is None:
        target = tmp / "bare.duckdb"
        target.unlink(missing_ok=True)
        begun = time.perf_counter()
        bare_duckdb_load(target, csv_path)
        return time.perf_counter() - begun
    from crm import bench

    with bench.throwaway_database(server) as url:
        begun = time.perf_counter()
        bench._bare_postgresql_load(url, csv_path)
        return time.perf_counter() - begun


def refs_import_bench(runs: int, rows: int = REFS_ROWS, n_customers: int = REFS_ROWS,
                      entities: list[str] | None = None, row_rows: int = 0,
                      server: str | None = None) -> bool:
    """One line per entity: the import of a file of rows rows (medians of runs) against the
    bare read of the same file into a table of its own, alternately in the same run, and their
    ratio; row_rows: the row path on a file of that many rows too. Returns whether every
    import took its path and every row was created or rejected. server: on PostgreSQL (a
    postgresql:// URL; throw-away databases there, the bare read a COPY), the entities it
    plans set-based (importer.PG_TABLES)."""
    ok = True
    with tempfile.TemporaryDirectory(prefix="crm-bench-refs-") as name, \
            contextlib.ExitStack() as places:
        tmp = Path(name)
        if server is None:
            base_db = tmp / "base.duckdb"
        else:
            from crm import bench

            base_db = places.enter_context(bench.throwaway_database(server))
        start = time.perf_counter()
        stages = _base(base_db, n_customers, tmp)
        print(f"imports naming other records: a base of {n_customers:,} customers"
              f" ({time.perf_counter() - start:.1f} s)", flush=True)
        for table in [t for t in entities or FILES  # PostgreSQL: the others go row by row
                      if server is None or t in importer.PG_TABLES]:
            entity = FILES[table][0]
            big, small = tmp / f"{table}.csv", tmp / f"{table}-small.csv"
            write(big, table, rows, n_customers, stages)
            ours, bare = [], []
            for _run in range(runs):
                with _copy_of(base_db, tmp, server, "fast") as copy:
                    seconds, counts, problems = _import(copy, big, entity, True)
                ours.append(seconds)
                bare.append(_bare(tmp, big, server))
            f, b = statistics.median(ours), statistics.median(bare)
            done = counts.get("create", 0) + counts.get("reject", 0) == rows
            ok = ok and done and not problems
            each = ", ".join(f"{o / r:.1f}" for o, r in zip(ours, bare))
            line = (f"import {rows:,} {table} ({counts.get('create', 0):,} created,"
                    f" {counts.get('reject', 0):,} rejected): ours {f:.2f} s / bare"
                    f" {'read_csv' if server is None else 'COPY'}"
                    f" {b:.2f} s ({f / b:.1f}x; each run {each})")
            if row_rows > 0:
                write(small, table, row_rows, n_customers, stages)
                with _copy_of(base_db, tmp, server, "row") as copy:
                    row_s, _counts, _notes = _import(copy, small, entity, False)
                per_row = row_s / row_rows
                line += (f"; row by row {row_rows:,} rows {row_s:.1f} s -> {per_row * rows:.0f} s"
                         f" for {rows:,} ({per_row * rows / f:.0f}x)")
            print(f"{line}  [median of {runs}]{'' if done else ' NO: rows left over'}",
                  flush=True)
            for note in problems:
                print(f"  note: {note}")
    return ok


# --- the set-based checks of issue #8: updates, links, the write-time re-check, near misses --

CHECKS_ROWS = 200_000
NEAR_CUSTOMERS = 1_000_000
_STATUSES = ("open", "in_progress", "resolved", "rejected")


def _admin_db(path: Path):
    db = Database(path)
    auth.create_user(db, None, "admin", "Ada Admin", None, "bench-pass-123", "admin")
    return db, auth.get_user(db, "admin")


def _load(db, admin, entity, csv_path: Path, header: str, lines) -> dict:
    """Seeds records through the import itself (its set-based create): the plan's counts."""
    with open(csv_path, "w", encoding="utf-8") as out:
        out.write(header + "\n" + "".join(line + "\n" for line in lines))
    source = importer.read(csv_path.read_bytes(), csv_path.name, file_path=csv_path, fast=True)
    plan = importer.plan(db, admin, entity, source,
                         importer.propose_mapping(entity, source.headers))
    importer.execute(db, admin, plan)
    return plan.counts


def _some_customers(db, admin, tmp: Path, kinds: bool = False, n: int = 1000) -> None:
    _load(db, admin, customers.CUSTOMERS, tmp / "seed-customers.csv", "Name,Kind,Email",
          (f"Cust {i},{('company' if i % 3 == 0 else 'individual') if kinds else 'company'},"
           f"c{i}@x.com" for i in range(1, n + 1)))


def _referrer(db, admin) -> None:
    from crm import custom_fields

    custom_fields.add_field(db, admin, "leads", {"name": "referrer", "label": "Referred by",
                                                 "type": "ref", "ref_table": "customers"})


def _seed_complaints(db, admin, tmp: Path, rows: int) -> None:
    _some_customers(db, admin, tmp)
    _load(db, admin, service.COMPLAINTS, tmp / "seed.csv",
          "Subject,Customer,Category,Severity,Status,Opened on,Resolved on",
          (f"C{i},Cust {1 + i % 1000},service,low,{_STATUSES[(i + 1) % 4]},2025-02-01,"
           f"{'2025-02-10' if (i + 1) % 4 >= 2 else ''}" for i in range(rows)))


def _seed_birthdays(db, admin, tmp: Path, rows: int) -> None:
    _some_customers(db, admin, tmp, kinds=True, n=rows)


def _seed_links(db, admin, tmp: Path, rows: int) -> None:
    _some_customers(db, admin, tmp)
    _referrer(db, admin)
    _load(db, admin, leads.LEADS, tmp / "seed.csv", "First Name,Last Name,Email",
          (f"F,L{i},l{i}@x.com" for i in range(1, rows + 1)))


def _seed_new_links(db, admin, tmp: Path, rows: int) -> None:
    _some_customers(db, admin, tmp)
    _referrer(db, admin)


def _seed_lines(db, admin, tmp: Path, rows: int) -> None:
    """20 products, and rows deals with one product line each (the file replaces them)."""
    _load(db, admin, products.PRODUCTS, tmp / "seed-products.csv", "Name,Code,Unit price",
          (f"Product {i},P{i},{100 + i}.50" for i in range(20)))
    _load(db, admin, deals.DEALS, tmp / "seed.csv", "Title,Stage,Product lines",
          (f"Deal {i},Proposal,P{i % 20}" for i in range(rows)))


# name -> (title, entity, header, line i, seed(db, admin, tmp, rows), update key or None,
# (what the line counts after the import, its bench-only SQL) or None)
CHECKS = {
    "complaints": (
        "update {rows} complaints", service.COMPLAINTS, "Subject,Status,Severity,Description",
        lambda i: f"C{i},{_STATUSES[i % 4]},high,changed {i % 3}", _seed_complaints, "subject",
        ("resolved today", "SELECT count(*) FROM complaints WHERE resolved_on = current_date")),
    "birthdays": (
        "update {rows} customers' birthdays without the kind", customers.CUSTOMERS,
        "Email,Birthday,Phone",
        lambda i: f"c{i + 1}@x.com,19{50 + i % 50}-0{1 + i % 9}-1{i % 10},+1 555 {i % 9999}",
        _seed_birthdays, "email",
        ("birthdays kept (individuals only)",
         "SELECT count(*) FROM customers WHERE birthday IS NOT NULL")),
    "links": (
        "update {rows} leads' custom link to a customer", leads.LEADS, "Email,Referred by",
        lambda i: f"l{i + 1}@x.com,Cust {1 + i % 1000}", _seed_links, "email",
        ("linked", "SELECT count(referrer) FROM leads")),
    "new-links": (
        "import {rows} new leads with a custom link", leads.LEADS,
        "First Name,Last Name,Email,Referred by",
        lambda i: f"F{i},L{i},n{i}@x.com,Cust {1 + i % 1000}", _seed_new_links, None,
        ("linked", "SELECT count(referrer) FROM leads")),
    "lines": (
        "update {rows} deals' product lines", deals.DEALS, "Title,Amount,Product lines",
        lambda i: (f"Deal {i},{'' if i % 2 else f'{i % 900}.00'},"
                   f"P{i % 20} x 2; Product {(i + 3) % 20}"),
        _seed_lines, "title",
        ("deals with the file's lines",
         "SELECT count(DISTINCT deal_id) FROM deal_products WHERE quantity = 2")),
    "lines-dated": (
        "update {rows} deals' product lines without an amount, half of them won on a close"
        " date", deals.DEALS, "Title,Stage,Product lines,Closed on",
        lambda i: (f"Deal {i},{'Proposal' if i % 2 else 'Won'},P{i % 20} x 2; Product"
                   f" {(i + 3) % 20},{'' if i % 2 else date.today().isoformat()}"),
        _seed_lines, "title",
        ("deals with the file's lines",
         "SELECT count(DISTINCT deal_id) FROM deal_products WHERE quantity = 2")),
    "recheck": (
        "import {rows} new contacts, the write-time re-check", customers.CONTACTS,
        "First Name,Last Name,E-mail Address,Customer",
        lambda i: f"F{i},L{i},c{i}@x.com,Cust {1 + i % 1000}",
        lambda db, admin, tmp, rows: _some_customers(db, admin, tmp), None, None),
}


def _expected(name: str, rows: int) -> int:
    """Rows the line's note counts when every row went in as it should."""
    if name == "complaints":  # the file closes rows whose seeded status was open/in progress
        return sum(1 for i in range(rows) if i % 4 >= 2 and (i + 1) % 4 < 2)
    if name == "birthdays":
        return sum(1 for i in range(1, rows + 1) if i % 3)
    return rows


def _check_run(db_path: Path, csv_path: Path, entity, key, note, refuse=None):
    """read + plan (dry run), execute, then undo of an update: (seconds each, counts, note,
    undone). refuse: the write-time re-check's stand-in (importer_recheck.refuse)."""
    from unittest import mock

    from crm import importer_recheck

    db = Database(db_path)
    try:
        admin = auth.get_user(db, "admin")
        with mock.patch.object(importer_recheck, "refuse", refuse) if refuse \
                else contextlib.nullcontext():
            start = time.perf_counter()
            source = importer.read(csv_path.read_bytes(), csv_path.name, file_path=csv_path,
                                   fast=True)
            plan = importer.plan(db, admin, entity, source,
                                 importer.propose_mapping(entity, source.headers),
                                 **({"mode": "update", "key": key} if key else {}))
            planned = time.perf_counter()
            staged = plan.staged_updates if key else plan.staged
            import_id = importer.execute(db, admin, plan)
            written = time.perf_counter()
        times = [planned - start, written - planned]
        said = db.scalar(note[1]) if note else None
        undone = None
        if key:
            undone = importer.undo(db, admin, import_id)["undone"]
            times.append(time.perf_counter() - written)
        return times, plan.counts, said, undone, bool(staged) or plan.notes
    finally:
        db.close()


def _s(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds >= 0.1 else f"{seconds:.3f}"


def _x(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio >= 0.1 else f"{ratio:.2f}x"


def checks_import_bench(runs: int, rows: int = CHECKS_ROWS,
                        which: list[str] | None = None) -> bool:
    """One line per check (CHECKS): an update file's dry run, import and undo, or a new-records
    file's dry run and import, on the set-based path against DuckDB's bare read_csv of the same
    file timed in the same run, and the ratios; medians of runs. Returns whether every import
    took the set-based path and every row did what it should."""
    from crm import importer_recheck

    ok = True
    with tempfile.TemporaryDirectory(prefix="crm-bench-checks-") as name:
        tmp = Path(name)
        for check in which or list(CHECKS):
            title, entity, header, line, seed, key, note = CHECKS[check]
            base = tmp / f"{check}.duckdb"
            db, admin = _admin_db(base)
            try:
                seed(db, admin, tmp, rows)
            finally:
                db.close()
            csv_path = tmp / f"{check}.csv"
            with open(csv_path, "w", encoding="utf-8") as out:
                out.write(header + "\n" + "".join(line(i) + "\n" for i in range(rows)))
            names = ["dry run", "import"] + (["undo"] if key else [])
            if check == "recheck":
                names += ["re-check query", "import without it"]
            times, problems = [], []
            for _run in range(runs):
                target = tmp / "bare.duckdb"
                target.unlink(missing_ok=True)
                begun = time.perf_counter()
                bare_duckdb_load(target, csv_path)
                bare = time.perf_counter() - begun
                copy = tmp / "run.duckdb"
                shutil.copy(base, copy)
                spent: list[float] = []
                real = importer_recheck.refuse

                def timed(*a, _real=real, **k):
                    begun = time.perf_counter()
                    _real(*a, **k)
                    spent.append(time.perf_counter() - begun)

                run, counts, said, undone, staged = _check_run(
                    copy, csv_path, entity, key, note, timed if check == "recheck" else None)
                copy.unlink()
                if staged is not True:
                    problems = list(staged or ["not set-based"])
                if check == "recheck":
                    shutil.copy(base, copy)
                    without, *_rest = _check_run(copy, csv_path, entity, key, note,
                                                 lambda *a, **k: None)
                    copy.unlink()
                    run += [sum(spent), without[1]]
                times.append((bare, run))
            b = statistics.median(t[0] for t in times)
            medians = [statistics.median(t[1][j] for t in times) for j in range(len(names))]
            done = counts.get("update" if key else "create", 0) == rows and (
                undone is None or undone == rows)
            if check == "recheck":
                done = done and spent != []
            else:
                done = done and said == _expected(check, rows)
            ok = ok and done and not problems
            print(f"{title.format(rows=f'{rows:,}')}: "
                  + ", ".join(f"{n} {_s(m)} s" for n, m in zip(names, medians))
                  + f" / bare read_csv {_s(b)} s ("
                  + ", ".join(_x(m / b) for m in medians) + ")"
                  + (f"; {said:,} {note[0]}" if note else "")
                  + (f", {undone:,} undone" if undone is not None else "")
                  + f"  [median of {runs}]{'' if done else ' NO: rows not as expected'}",
                  flush=True)
            for problem in problems:
                print(f"  note: {problem}")
    return ok


_SYLLABLES = ("al", "ber", "cor", "dan", "el", "fi", "gor", "han", "is", "jo", "ka", "lin",
              "mar", "nor", "os", "pe", "qui", "ros", "sen", "tor", "ul", "ver", "wes", "xan",
              "yor", "zen")
_TRADES = ("Trading", "Logistics", "Foods", "Systems", "Textiles", "Motors", "Media", "Partners",
           "Labs", "Holdings", "Bakery", "Consulting")
_FORMS = ("Ltd", "GmbH", "UAB", "Inc", "AB", "SA", "Oy")


def company_names(n: int, seed: int = 3) -> list[str]:
    """n made-up company names of varied length and letters (a shortlist by length and shared
    characters cuts "Customer <n>" names poorly: they all look alike)."""
    import random

    rng = random.Random(seed)
    syl, trades, forms = _SYLLABLES, _TRADES, _FORMS
    return [("".join(rng.choice(syl) for _ in range(rng.randint(2, 4))).capitalize() + " "
             + rng.choice(trades) + " " + rng.choice(forms)) for _ in range(n)]


def near_miss_bench(runs: int, n_customers: int = NEAR_CUSTOMERS, before: bool = False) -> bool:
    """One line: a near miss (a customer's name with a letter left out) among n_customers
    customers, suggested through the SQL shortlist (crm/importer_near.py) and the fast path's
    resolve() of it, against a bare scan lowering every name in the same run; medians of runs.
    before: also as before the shortlist (every name read into Python, closest() over them),
    and the answers compared. Returns whether every run suggested a name (and the same one)."""
    import random

    from crm import importer_near

    ok = True
    with tempfile.TemporaryDirectory(prefix="crm-bench-near-") as name:
        tmp = Path(name)
        start = time.perf_counter()
        db, admin = _admin_db(tmp / "near.duckdb")
        try:
            names = company_names(n_customers)
            _load(db, admin, customers.CUSTOMERS, tmp / "customers.csv", "Name",
                  (f'"{n}"' for n in names))
            print(f"near misses: a base of {n_customers:,} customers"
                  f" ({time.perf_counter() - start:.1f} s)", flush=True)
            spec = customers.CONTACTS.spec["customer_id"]
            rng = random.Random(3)
            times, answers = [], []
            for _run in range(runs):
                word = rng.choice(names).lower()
                j = rng.randrange(len(word))
                word = word[:j] + word[j + 1:]
                run = []
                begun = time.perf_counter()
                db.scalar("SELECT count(*) FROM (SELECT lower(name) AS k FROM customers"
                          " WHERE deleted_at IS NULL) WHERE length(k) > 0")
                run.append(time.perf_counter() - begun)
                pieces = importer._resolver_sql(db, admin, spec, None)
                begun = time.perf_counter()
                after = importer_near.suggest(db, pieces, word)
                run.append(time.perf_counter() - begun)
                begun = time.perf_counter()
                few = importer.resolve(db, admin, spec, [word],
                                       known=importer_near.Names(db, pieces, [word]))
                run.append(time.perf_counter() - begun)
                ok = ok and bool(after) and str(after[0]) in few.errors.get(0, "")
                if before:
                    begun = time.perf_counter()
                    known = importer._resolver(db, admin, spec, None)
                    run.append(time.perf_counter() - begun)
                    begun = time.perf_counter()
                    old = importer.closest(word, known)
                    run.append(time.perf_counter() - begun)
                    ok = ok and old == after
                times.append(run)
                answers.append(f"{word!r} -> {after[0] if after else None!r}")
        finally:
            db.close()
    medians = [statistics.median(t[j] for t in times) for j in range(len(times[0]))]
    bare, *ours = medians
    said = ["SQL shortlist", "fast path's resolve"] + (
        ["before: names into Python", "closest() over them"] if before else [])
    print(f"near miss among {n_customers:,} customers: "
          + ", ".join(f"{n} {_s(m)} s" for n, m in zip(said, ours))
          + f" / bare scan lowering every name {_s(bare)} s ("
          + ", ".join(_x(m / bare) for m in ours) + f"); {', '.join(answers)}"
          + f"  [median of {runs}]{'' if ok else ' NO: no suggestion, or not the same'}",
          flush=True)
    return ok


# --- new deals on PostgreSQL (crm/importer_pg_deals.py) -------------------------------------

PG_DEALS_ROWS = 100_000
PG_DEALS_ROW_ROWS = 2_000  # the row path (--row-path): ~35 ms a deal there
DEALS_HEADER = ("Title,Customer,Stage,Amount,Currency,Expected close,Owner,Product lines,"
                "Engaged on,Closed on")


def _deal_line(i: int, n: int, stages: list[str]) -> str:
    """Another CRM's deal: priced from its product lines every other row, with an engage
    date; a few name a customer that is a near miss (rejected, with a suggestion)."""
    lines = f"Product {i % 20} x {1 + i % 3}; P-{(i + 5) % 20}" if i % 2 else ""
    amount = "" if i % 2 else f"{i % 90_000}.00"
    return (f"Big deal {i},{_customer(i, n)},{stages[i % len(stages)]},{amount},USD,"
            f"{_day(i)},{OWNERS[i % 4]},{lines},2024-{1 + i % 12:02d}-{1 + i % 28:02d},")


def pg_deals_bench(runs: int, server: str, rows: int = PG_DEALS_ROWS,
                   row_rows: int = 0) -> bool:
    """One line: a file of rows new deals (stage, customer, owner, product lines, engage date)
    on PostgreSQL, set-based: its dry run (read and plan), import and undo, each against a bare
    COPY of the same file into a table of text columns in the same run, and their ratios
    (medians of runs); row_rows: the row path on a file of that many rows, extrapolated.
    Returns whether every run took the set-based path, created or rejected every row and
    undid what it created."""
    ok = True
    with tempfile.TemporaryDirectory(prefix="crm-bench-deals-") as name, \
            contextlib.ExitStack() as places:
        tmp = Path(name)
        from crm import bench

        base_db = places.enter_context(bench.throwaway_database(server))
        start = time.perf_counter()
        stages = _base(base_db, rows, tmp)
        print(f"new deals on PostgreSQL: a base of {rows:,} customers"
              f" ({time.perf_counter() - start:.1f} s)", flush=True)
        big, small = tmp / "deals.csv", tmp / "deals-small.csv"
        for path, n in ((big, rows), (small, row_rows)):
            with open(path, "w", encoding="utf-8") as out:
                out.write(DEALS_HEADER + "\n" + "".join(_deal_line(i, rows, stages) + "\n"
                                                        for i in range(n)))
        times, problems, counts, undone = [], [], {}, 0
        for _run in range(runs):
            bare = _bare(tmp, big, server)
            with _copy_of(base_db, tmp, server, "deals") as url:
                db = Database(url)
                try:
                    admin = auth.get_user(db, "admin")
                    begun = time.perf_counter()
                    source = importer.read(big.read_bytes(), big.name, file_path=big,
                                           fast=True)
                    plan = importer.plan(db, admin, deals.DEALS, source,
                                         importer.propose_mapping(deals.DEALS, source.headers))
                    planned = time.perf_counter()
                    if plan.staged is None:
                        problems = plan.notes or ["not set-based"]
                    counts = plan.counts
                    import_id = importer.execute(db, admin, plan)
                    written = time.perf_counter()
                    undone = importer.undo(db, admin, import_id)["undone"]
                    times.append((bare, planned - begun, written - planned,
                                  time.perf_counter() - written))
                finally:
                    db.close()
        b, *ours = (statistics.median(t[j] for t in times) for j in range(4))
        done = counts.get("create", 0) + counts.get("reject", 0) == rows \
            and undone == counts.get("create", 0)
        ok = done and not problems
        line = (f"import {rows:,} new deals ({counts.get('create', 0):,} created,"
                f" {counts.get('reject', 0):,} rejected) on PostgreSQL: "
                + ", ".join(f"{n} {_s(m)} s" for n, m in zip(("dry run", "import", "undo"), ours))
                + f" / bare COPY {_s(b)} s (" + ", ".join(_x(m / b) for m in ours) + ")")
        if row_rows > 0:
            with _copy_of(base_db, tmp, server, "deals_row") as url:
                row_s, _counts, _notes = _import(url, small, deals.DEALS, False)
            per_row = row_s / row_rows
            line += (f"; row by row {row_rows:,} rows {row_s:.1f} s -> {per_row * rows:.0f} s"
                     f" for {rows:,} ({per_row * rows / (ours[0] + ours[1]):.0f}x the"
                     " dry run and import)")
        print(f"{line}  [median of {runs}]{'' if done else ' NO: rows left over'}", flush=True)
        for note in problems:
            print(f"  note: {note}")
    return ok
