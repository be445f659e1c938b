"""Times the set-based import of records that name other records (crm/importer_refs.py)
against DuckDB's bare read_csv of the same file and the row path on a smaller file.

    python scripts/bench_import_refs.py [--rows 200000] [--row-rows 20000] [ENTITY ...]

A base database holds --customers customers (named "Customer <n>"), deals, leads, products,
complaints and competitors; each entity's file names them (a few unknown names among them,
for the "did you mean" path) and is imported into a copy of it: the fast path (read + plan +
execute) on --rows rows, the row path on --row-rows rows (extrapolated per row)."""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crm import auth, customers, deals, importer, leads, market, products, records  # noqa: E402
from crm import activities, service, team  # noqa: E402
from crm.db import Database  # noqa: E402

OWNERS = ("Ada Admin", "maria", "reza", "")


def _customer(i: int, n: int) -> str:
    return "Custmer 7" if i % 50_000 == 7 else f"Customer {i % n}"  # a few near misses


def _day(i: int) -> str:
    return f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}"


FILES = {
    "contacts": (customers.CONTACTS, "Customer,First Name,Last Name,Email,Phone,Owner,Consent"
                 " given,Consent date", lambda i, n: (
                     f"{_customer(i, n)},Ann{i % 97},Last{i},c{i}@example.com,+1 555"
                     f" {i % 10000:04d},{OWNERS[i % 4]},{'yes' if i % 2 else 'no'},"
                     f"{_day(i) if i % 2 else ''}")),
    "tasks": (activities.TASKS, "Task,Due,Assignee,Priority,Status,Customer,Deal", lambda i, n: (
        f"Task {i},{_day(i)} 09:00,{OWNERS[i % 4]},{('low', 'normal', 'high')[i % 3]},"
        f"open,{_customer(i, n)},{f'Deal {i % 20}' if i % 3 == 0 else ''}")),
    "activities": (activities.ACTIVITIES, "Type,Subject,When,Duration (minutes),By,Customer,"
                   "Deal", lambda i, n: (
                       f"{('call', 'email', 'meeting')[i % 3]},Talk {i},{_day(i)} 10:00,"
                       f"{i % 90},{OWNERS[i % 4]},{_customer(i, n)},"
                       f"{f'Deal {i % 20}' if i % 3 == 0 else ''}")),
    "surveys": (service.SURVEYS, "Customer,Answered on,Channel,CSAT,NPS,Comment,Product",
                lambda i, n: (f"{_customer(i, n)},{_day(i)},email,{1 + i % 6},{i % 11},"
                              f"ok {i % 13},Product {i % 20}")),
    "complaints": (service.COMPLAINTS, "Subject,Customer,Product,Category,Severity,Status,"
                   "Opened on,Resolved on", lambda i, n: (
                       f"Issue {i},{_customer(i, n)},Product {i % 20},billing,low,"
                       f"{('open', 'resolved', 'resolved')[i % 3]},2025-01-{1 + i % 28:02d},"
                       f"{'2025-02-01' if i % 3 == 1 else ''}")),
    "price_records": (market.PRICE_RECORDS, "Our product,Competitor,Competitor's product,"
                      "Price,Currency,Observed on,Source,Region", lambda i, n: (
                          f"Product {i % 20},Rival {i % 10},Model {i % 100},{i % 5000}.50,USD,"
                          f"{_day(i)},price_list,Region {i % 7}")),
    "customer_returns": (market.RETURNS, "Customer,Kind,Date,Amount,Currency,Reason",
                         lambda i, n: (f"{_customer(i, n)},return,{_day(i)},{i % 900}.00,USD,"
                                       "defective")),
    "competitors": (market.COMPETITORS, "Competitor,Country,Threat level,Owner,Strategy",
                    lambda i, n: (f"Rival X{i},DE,{('low', 'medium', 'high')[i % 3]},"
                                  f"{OWNERS[i % 4]},{'price war' if i % 2 else ''}")),
    "users": (team.USERS, "Username,Full name,Email,Role", lambda i, n: (
        f"user{i},User {i},user{i}@example.com,{('rep', 'viewer')[i % 2]}")),
}


def write(path: Path, entity: str, rows: int, n_customers: int) -> None:
    _entity, header, line = FILES[entity]
    with open(path, "w", encoding="utf-8") as out:
        out.write(header + "\n")
        for i in range(rows):
            out.write(line(i, n_customers) + "\n")


def base(path: Path, n_customers: int, tmp: Path) -> None:
    db = Database(path)
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
    importer.execute(db, admin, importer.plan(db, admin, customers.CUSTOMERS, source,
                                              importer.propose_mapping(customers.CUSTOMERS,
                                                                       source.headers)))
    stage = db.scalar("SELECT min(id) FROM stages")
    for i in range(20):
        deals.create_deal(db, admin, {"title": f"Deal {i}", "customer_id": i + 1,
                                      "stage_id": stage})
        records.create(db, admin, products.PRODUCTS, {"name": f"Product {i}",
                                                      "code": f"P-{i}", "unit_price": "10"})
        leads.create_lead(db, admin, {"last_name": f"Lead {i}"})
        service.create_complaint(db, admin, {"subject": f"Complaint {i}",
                                             "customer_id": i + 1})
    for i in range(10):
        market.create_competitor(db, admin, {"name": f"Rival {i}"})
    db.close()


def run(db_path: Path, csv_path: Path, entity, fast: bool) -> tuple[float, dict]:
    db = Database(db_path)
    try:
        admin = auth.get_user(db, "admin")
        start = time.perf_counter()
        source = importer.read(csv_path.read_bytes(), csv_path.name, file_path=csv_path,
                               fast=fast)
        plan = importer.plan(db, admin, entity, source,
                             importer.propose_mapping(entity, source.headers))
        assert (plan.staged is not None) == fast, plan.notes
        importer.execute(db, admin, plan)
        return time.perf_counter() - start, plan.counts
    finally:
        db.close()


def bare(csv_path: Path, tmp: Path) -> float:
    import duckdb

    target = tmp / "bare.duckdb"
    target.unlink(missing_ok=True)
    start = time.perf_counter()
    con = duckdb.connect(str(target))
    try:
        con.execute("CREATE TABLE t AS SELECT * FROM read_csv($p)", {"p": str(csv_path)})
    finally:
        con.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("entities", nargs="*", default=list(FILES))
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--row-rows", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=1)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crm-bench-refs-") as name:
        tmp = Path(name)
        base_db = tmp / "base.duckdb"
        start = time.perf_counter()
        base(base_db, opts.customers, tmp)
        print(f"base: {opts.customers:,} customers ({time.perf_counter() - start:.1f} s)",
              flush=True)
        for table in opts.entities:
            entity = FILES[table][0]
            big, small = tmp / f"{table}.csv", tmp / f"{table}-small.csv"
            write(big, table, opts.rows, opts.customers)
            write(small, table, opts.row_rows, opts.customers)
            fast_s, bare_s = [], []
            for _run in range(opts.runs):
                copy = tmp / "fast.duckdb"
                shutil.copy(base_db, copy)
                seconds, counts = run(copy, big, entity, True)
                fast_s.append(seconds)
                copy.unlink()
                bare_s.append(bare(big, tmp))
            copy = tmp / "row.duckdb"
            shutil.copy(base_db, copy)
            row_s, row_counts = run(copy, small, entity, False)
            copy.unlink()
            f, b = statistics.median(fast_s), statistics.median(bare_s)
            per_row = row_s / opts.row_rows
            print(f"{table}: fast {opts.rows:,} rows {f:.2f} s (created {counts['create']:,},"
                  f" rejected {counts['reject']:,}); bare read_csv {b:.2f} s ({f / b:.1f}x);"
                  f" row path {opts.row_rows:,} rows {row_s:.1f} s -> {per_row * opts.rows:.0f} s"
                  f" for {opts.rows:,} ({per_row * opts.rows / f:.0f}x the fast path)",
                  flush=True)


if __name__ == "__main__":
    main()
