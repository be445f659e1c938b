"""Timings of the set-based import paths added for issue #8 (complaint updates, the
write-time re-check of new records) at 200,000 rows against DuckDB's bare read_csv of the same
file in the same run, and of a near-miss suggestion among 1,000,000 customers before/after the
SQL shortlist. Medians of runs; ratios against the bare baseline (the machine is shared).

    python scripts/bench_import_checks.py [complaints|recheck|near] [--rows N] [--runs N]"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402

from crm import auth, customers, importer, importer_near, importer_recheck, service  # noqa: E402
from crm.db import Database  # noqa: E402


def _db(path: Path):
    db = Database(path)
    auth.create_user(db, None, "bench", "Bench Admin", None, "bench-pass-123", "admin")
    return db, auth.get_user(db, "bench")


def _bare(tmp: Path, csv: Path) -> float:
    start = time.perf_counter()
    con = duckdb.connect(str(tmp / f"bare{time.time_ns()}.duckdb"))
    con.execute("CREATE TABLE t AS SELECT * FROM read_csv($p)", {"p": str(csv)})
    con.close()
    return time.perf_counter() - start


def _sql(db, sql, params=None):
    with db.transaction() as cur:
        cur.execute(sql, params or {})


def _customers(db, admin, n):
    _sql(db, "INSERT INTO customers (id, name, kind, owner_id, created_at, updated_at,"
             " created_by, version) SELECT i, 'Cust ' || i, 'company', $o, now(), now(), $o, 1"
             " FROM range(1, $n + 1) r(i)", {"o": admin.id, "n": n})
    _sql(db, f"SELECT setval('customers_id_seq', {n + 1})")


def complaints(rows: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-complaints-") as tmp:
        tmp = Path(tmp)
        csv = tmp / "complaints.csv"
        statuses = ["resolved", "open", "in_progress", "rejected"]
        with csv.open("w") as f:
            f.write("Subject,Status,Severity,Description\n")
            for i in range(rows):
                f.write(f"C{i},{statuses[i % 4]},high,changed {i % 3}\n")
        times = []
        for run in range(runs):
            db, admin = _db(tmp / f"c{run}.duckdb")
            _customers(db, admin, 1000)
            _sql(db, "INSERT INTO complaints (id, subject, customer_id, category, severity,"
                     " status, opened_on, resolved_on, owner_id, created_at, updated_at,"
                     " created_by, version) SELECT i + 1, 'C' || i, 1 + i % 1000, 'service',"
                     " 'low', ['open', 'in_progress', 'resolved', 'rejected'][1 + (i + 1) % 4],"
                     " DATE '2025-02-01', CASE WHEN (i + 1) % 4 >= 2 THEN DATE '2025-02-10' END,"
                     " $o, now(), now(), $o, 1 FROM range(0, $n) r(i)", {"o": admin.id, "n": rows})
            _sql(db, f"SELECT setval('complaints_id_seq', {rows + 1})")
            bare = _bare(tmp, csv)
            start = time.perf_counter()
            source = importer.read(csv.read_bytes(), csv.name, file_path=csv, fast=True)
            plan = importer.plan(db, admin, service.COMPLAINTS, source,
                                 importer.propose_mapping(service.COMPLAINTS, source.headers),
                                 mode="update", key="subject")
            planned = time.perf_counter()
            assert plan.staged_updates, plan.notes
            import_id = importer.execute(db, admin, plan)
            imported = time.perf_counter() - planned
            today = db.scalar("SELECT count(*) FROM complaints WHERE resolved_on = current_date")
            written = time.perf_counter()
            undone = importer.undo(db, admin, import_id)
            undo = time.perf_counter() - written
            times.append((bare, planned - start, imported, undo))
            print(f"  run {run}: bare {bare:.2f} s, dry run {planned - start:.2f} s, import"
                  f" {imported:.2f} s, undo {undo:.2f} s; {plan.counts}, resolved"
                  f" today {today:,} before undo, {undone['undone']:,} undone", flush=True)
            db.close()
        _report(f"complaint update, {rows:,} rows", times, ("bare read_csv", "dry run", "import",
                                                            "undo"))


def recheck(rows: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-recheck-") as tmp:
        tmp = Path(tmp)
        csv = tmp / "contacts.csv"
        with csv.open("w") as f:
            f.write("First Name,Last Name,E-mail Address,Customer\n")
            for i in range(rows):
                f.write(f"F{i},L{i},c{i}@x.com,Cust {1 + i % 1000}\n")
        times = []
        real = importer_recheck.refuse
        for run in range(runs):
            for on in (True, False):
                db, admin = _db(tmp / f"r{run}{on}.duckdb")
                _customers(db, admin, 1000)
                bare = _bare(tmp, csv)
                spent = []

                def timed(*a, **k):
                    t = time.perf_counter()
                    real(*a, **k)
                    spent.append(time.perf_counter() - t)

                with mock.patch.object(importer_recheck, "refuse",
                                       timed if on else lambda *a, **k: None):
                    start = time.perf_counter()
                    source = importer.read(csv.read_bytes(), csv.name, file_path=csv, fast=True)
                    plan = importer.plan(db, admin, customers.CONTACTS, source,
                                         importer.propose_mapping(customers.CONTACTS,
                                                                  source.headers))
                    assert plan.staged, plan.notes
                    planned = time.perf_counter()
                    importer.execute(db, admin, plan)
                    written = time.perf_counter()
                if on:
                    times.append([bare, planned - start, written - planned, sum(spent)])
                else:
                    times[-1].append(written - planned)
                print(f"  run {run} re-check {'on' if on else 'off'}: bare {bare:.2f} s,"
                      f" dry run {planned - start:.2f} s, import {written - planned:.2f} s"
                      + (f", re-check {sum(spent):.3f} s" if on else ""), flush=True)
                db.close()
        _report(f"new contacts, {rows:,} rows", times, ("bare read_csv", "dry run", "import",
                                                        "re-check query", "import without it"))


def _updates(title: str, rows: int, runs: int, csv_rows, header: str, seed, entity, key: str,
             check=None) -> None:
    """An update file of rows records into a database seeded with them: dry run, import,
    undo against the bare read_csv of the file, medians of runs."""
    with tempfile.TemporaryDirectory(prefix="bench-updates-") as tmp:
        tmp = Path(tmp)
        csv = tmp / "updates.csv"
        with csv.open("w") as f:
            f.write(header + "\n")
            for i in range(rows):
                f.write(csv_rows(i) + "\n")
        times = []
        for run in range(runs):
            db, admin = _db(tmp / f"u{run}.duckdb")
            seed(db, admin, rows)
            bare = _bare(tmp, csv)
            start = time.perf_counter()
            source = importer.read(csv.read_bytes(), csv.name, file_path=csv, fast=True)
            plan = importer.plan(db, admin, entity, source,
                                 importer.propose_mapping(entity, source.headers),
                                 mode="update", key=key)
            planned = time.perf_counter()
            assert plan.staged_updates, plan.notes
            import_id = importer.execute(db, admin, plan)
            imported = time.perf_counter() - planned
            note = check(db) if check else ""
            written = time.perf_counter()
            undone = importer.undo(db, admin, import_id)
            undo = time.perf_counter() - written
            times.append((bare, planned - start, imported, undo))
            print(f"  run {run}: bare {bare:.2f} s, dry run {planned - start:.2f} s, import"
                  f" {imported:.2f} s, undo {undo:.2f} s; {plan.counts} {note},"
                  f" {undone['undone']:,} undone", flush=True)
            db.close()
        _report(f"{title}, {rows:,} rows", times, ("bare read_csv", "dry run", "import", "undo"))


def birthdays(rows: int, runs: int) -> None:
    def seed(db, admin, n):
        _sql(db, "INSERT INTO customers (id, name, kind, email, birthday, owner_id, created_at,"
                 " updated_at, created_by, version) SELECT i, 'Cust ' || i, CASE WHEN i % 3 = 0"
                 " THEN 'company' ELSE 'individual' END, 'c' || i || '@x.com', NULL, $o, now(),"
                 " now(), $o, 1 FROM range(1, $n + 1) r(i)", {"o": admin.id, "n": n})
        _sql(db, f"SELECT setval('customers_id_seq', {n + 1})")

    _updates("customer birthdays without the kind", rows, runs,
             lambda i: f"c{i + 1}@x.com,19{50 + i % 50}-0{1 + i % 9}-1{i % 10},+1 555 {i % 9999}",
             "Email,Birthday,Phone", seed, customers.CUSTOMERS, "email",
             lambda db: "birthdays kept {:,}".format(db.scalar(
                 "SELECT count(*) FROM customers WHERE birthday IS NOT NULL")))


def links(rows: int, runs: int) -> None:
    from crm import custom_fields, leads

    def seed(db, admin, n):
        _customers(db, admin, 1000)
        custom_fields.add_field(db, admin, "leads", {"name": "referrer", "label": "Referred by",
                                                     "type": "ref", "ref_table": "customers"})
        _sql(db, "INSERT INTO leads (id, first_name, last_name, email, status, owner_id,"
                 " created_at, updated_at, created_by, version) SELECT i, 'F', 'L' || i,"
                 " 'l' || i || '@x.com', 'new', $o, now(), now(), $o, 1"
                 " FROM range(1, $n + 1) r(i)", {"o": admin.id, "n": n})
        _sql(db, f"SELECT setval('leads_id_seq', {n + 1})")

    _updates("leads' custom link to a customer", rows, runs,
             lambda i: f"l{i + 1}@x.com,Cust {1 + i % 1000}", "Email,Referred by", seed,
             leads.LEADS, "email")


def new_links(rows: int, runs: int) -> None:
    """New leads naming a customer in a custom link field: the set-based create."""
    from crm import custom_fields, leads

    with tempfile.TemporaryDirectory(prefix="bench-links-") as tmp:
        tmp = Path(tmp)
        csv = tmp / "leads.csv"
        with csv.open("w") as f:
            f.write("First Name,Last Name,Email,Referred by\n")
            for i in range(rows):
                f.write(f"F{i},L{i},n{i}@x.com,Cust {1 + i % 1000}\n")
        times = []
        for run in range(runs):
            db, admin = _db(tmp / f"n{run}.duckdb")
            _customers(db, admin, 1000)
            custom_fields.add_field(db, admin, "leads", {
                "name": "referrer", "label": "Referred by", "type": "ref",
                "ref_table": "customers"})
            bare = _bare(tmp, csv)
            start = time.perf_counter()
            source = importer.read(csv.read_bytes(), csv.name, file_path=csv, fast=True)
            plan = importer.plan(db, admin, leads.LEADS, source,
                                 importer.propose_mapping(leads.LEADS, source.headers))
            assert plan.staged, plan.notes
            planned = time.perf_counter()
            importer.execute(db, admin, plan)
            imported = time.perf_counter() - planned
            linked = db.scalar("SELECT count(referrer) FROM leads")
            times.append((bare, planned - start, imported))
            print(f"  run {run}: bare {bare:.2f} s, dry run {planned - start:.2f} s, import"
                  f" {imported:.2f} s; {plan.counts}, {linked:,} linked", flush=True)
            db.close()
        _report(f"new leads with a custom link, {rows:,} rows", times,
                ("bare read_csv", "dry run", "import"))


def near(path: str, runs: int) -> None:
    import random

    db = Database(Path(path))
    admin = auth.get_user(db, "admin")
    spec = customers.CONTACTS.spec["customer_id"]
    rng = random.Random(3)
    n = db.scalar("SELECT count(*) FROM customers WHERE deleted_at IS NULL")
    times = []
    for _run in range(runs):
        name = db.scalar("SELECT name FROM customers WHERE id = $i",
                         {"i": rng.randint(1, n)}).lower()
        j = rng.randrange(len(name))
        word = name[:j] + name[j + 1:]
        t = time.perf_counter()
        db.scalar("SELECT count(*) FROM (SELECT lower(name) AS k FROM customers WHERE"
                  " deleted_at IS NULL) WHERE length(k) > 0")
        bare = time.perf_counter() - t
        t = time.perf_counter()
        known = importer._resolver(db, admin, spec, None)
        loaded = time.perf_counter() - t
        t = time.perf_counter()
        before = importer.closest(word, known)
        old = time.perf_counter() - t
        pieces = importer._resolver_sql(db, admin, spec, None)
        t = time.perf_counter()
        after = importer_near.suggest(db, pieces, word)
        new = time.perf_counter() - t
        t = time.perf_counter()
        few = importer.resolve(db, admin, spec, [word],
                               known=importer_near.Names(db, pieces, [word]))
        fast = time.perf_counter() - t
        assert before == after, (word, before, after)
        assert not before or 0 not in few.errors or str(before[0]) in few.errors[0]
        times.append((bare, loaded, old, new, fast))
        print(f"  {word!r} -> {after}: bare scan {bare:.2f} s, names into Python {loaded:.2f} s,"
              f" closest {old:.2f} s, SQL shortlist {new:.2f} s, fast path's resolve"
              f" {fast:.2f} s", flush=True)
    _report(f"near miss among {n:,} customers", times,
            ("bare scan (lower of every name)", "names into Python (_resolver)",
             "closest() over them (before)", "SQL shortlist + closest (after)",
             "fast path's resolve() of the text, all in (after)"))


def _report(title: str, times: list, names: tuple) -> None:
    medians = [statistics.median(t[i] for t in times) for i in range(len(names))]
    print(f"{title} [median of {len(times)}]:")
    for name, m in zip(names, medians):
        print(f"  {name}: {m:.3f} s ({m / medians[0]:.1f}x {names[0]})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["complaints", "recheck", "near", "birthdays", "links",
                                        "new-links"])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--db", default="/tmp/hN/big.duckdb")
    args = ap.parse_args()
    if args.what == "complaints":
        complaints(args.rows, args.runs)
    elif args.what == "recheck":
        recheck(args.rows, args.runs)
    elif args.what == "birthdays":
        birthdays(args.rows, args.runs)
    elif args.what == "links":
        links(args.rows, args.runs)
    elif args.what == "new-links":
        new_links(args.rows, args.runs)
    else:
        near(args.db, args.runs)
