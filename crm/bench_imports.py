"""python -m crm bench --import-only, its lines per entity: the set-based import of records that
name other records (crm/importer_refs.py, crm/importer_deals.py) against DuckDB's bare read of
the same file in the same run, and with --row-path the row path on a smaller file (per row,
extrapolated).

A base database holds `customers` customers (named "Customer <n>"), deals, leads, products,
complaints and competitors; each entity's file names them (a few near misses among them, for
the "did you mean" path) and is imported into a copy of it. DuckDB only: the set-based import
reads the file with DuckDB's read_csv; PostgreSQL imports these row by row."""
from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from crm import (activities, auth, customers, deals, importer, leads, market, pipelines,
                 products, records, service, team)
from crm.db import Database

REFS_ROWS = 200_000
REFS_ROW_ROWS = 20_000
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


def refs_import_bench(runs: int, rows: int = REFS_ROWS, n_customers: int = REFS_ROWS,
                      entities: list[str] | None = None, row_rows: int = 0) -> bool:
    """One line per entity: the import of a file of rows rows (medians of runs) against the
    bare read of the same file into a table of its own, alternately in the same run, and their
    ratio; row_rows: the row path on a file of that many rows too. Returns whether every
    import took its path and every row was created or rejected."""
    ok = True
    with tempfile.TemporaryDirectory(prefix="crm-bench-refs-") as name:
        tmp = Path(name)
        base_db = tmp / "base.duckdb"
        start = time.perf_counter()
        stages = _base(base_db, n_customers, tmp)
        print(f"imports naming other records: a base of {n_customers:,} customers"
              f" ({time.perf_counter() - start:.1f} s)", flush=True)
        for table in entities or list(FILES):
            entity = FILES[table][0]
            big, small = tmp / f"{table}.csv", tmp / f"{table}-small.csv"
            write(big, table, rows, n_customers, stages)
            ours, bare = [], []
            for _run in range(runs):
                copy = tmp / "fast.duckdb"
                shutil.copy(base_db, copy)
                seconds, counts, problems = _import(copy, big, entity, True)
                ours.append(seconds)
                copy.unlink()
                target = tmp / "bare.duckdb"
                target.unlink(missing_ok=True)
                begun = time.perf_counter()
                bare_duckdb_load(target, big)
                bare.append(time.perf_counter() - begun)
            f, b = statistics.median(ours), statistics.median(bare)
            done = counts.get("create", 0) + counts.get("reject", 0) == rows
            ok = ok and done and not problems
            each = ", ".join(f"{o / r:.1f}" for o, r in zip(ours, bare))
            line = (f"import {rows:,} {table} ({counts.get('create', 0):,} created,"
                    f" {counts.get('reject', 0):,} rejected): ours {f:.2f} s / bare read_csv"
                    f" {b:.2f} s ({f / b:.1f}x; each run {each})")
            if row_rows > 0:
                write(small, table, row_rows, n_customers, stages)
                copy = tmp / "row.duckdb"
                shutil.copy(base_db, copy)
                row_s, _counts, _notes = _import(copy, small, entity, False)
                copy.unlink()
                per_row = row_s / row_rows
                line += (f"; row by row {row_rows:,} rows {row_s:.1f} s -> {per_row * rows:.0f} s"
                         f" for {rows:,} ({per_row * rows / f:.0f}x)")
            print(f"{line}  [median of {runs}]{'' if done else ' NO: rows left over'}",
                  flush=True)
            for note in problems:
                print(f"  note: {note}")
    return ok
