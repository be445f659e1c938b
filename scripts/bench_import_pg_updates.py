"""Timings of updates of contacts, tasks and activities from a CSV file on PostgreSQL (issue
#13): N records (100,000 unless given) imported set-based into a throw-away database on the
server of the URL, then a file naming them all (every other one changed), its dry run, import
and undo set-based, against a bare COPY of the same file in the same run; and, with a 20th of
the rows (at most 5,000), the row path's import and undo (the write planned again and written
by records.update_many / update_in a row, the undo a record at a time), extrapolated (the dry
run stays the set-based one there).

    python scripts/bench_import_pg_updates.py postgresql://user:pw@host:port/db [N] [runs]
        [contacts,tasks,activities]"""
import contextlib
import pathlib
import statistics
import sys
import tempfile
import time
from unittest import mock

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from crm import activities, auth, bench, customers, importer, importer_updates  # noqa: E402
from crm.db import Database  # noqa: E402

URL = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
WANTED = sys.argv[4].split(",") if len(sys.argv) > 4 else None  # e.g. contacts,tasks

# entity -> (its records.Entity, key, header, the file's line i (changed: every other one))
FILES = {
    "contacts": (customers.CONTACTS, "email", "Email,Customer,First Name,Last Name,Job title",
                 lambda i, ch: f"c{i}@example.com,Customer {i % 1000},Ann,Last{i},"
                               f"{'Boss' if ch and i % 2 else 'Clerk'}"),
    "tasks": (activities.TASKS, "title", "Task,Customer,Priority,Due",
              lambda i, ch: f"Task {i},Customer {i % 1000},{'high' if ch and i % 2 else 'low'},"
                            f"2025-0{1 + i % 9}-1{i % 10} {'10:00' if ch and i % 2 else '09:00'}"),
    "activities": (activities.ACTIVITIES, "subject", "Subject,Type,Customer,When,Duration"
                   " (minutes)", lambda i, ch: f"Talk {i},call,Customer {i % 1000},"
                                               f"2025-0{1 + i % 9}-1{i % 10} 10:00,"
                                               f"{30 if ch and i % 2 else 15}"),
}


def write(path, table, rows, changed):
    """The file of new records, or of their changes: without the customer of tasks and
    activities (a link in an update goes row by row, on DuckDB too: importer_updates.writable)."""
    _e, _k, header, line = FILES[table]
    names = header.split(",")
    drop = names.index("Customer") if changed and table != "contacts" else None

    def cut(text):
        cells = text.split(",")
        return ",".join(c for j, c in enumerate(cells) if j != drop)

    with open(path, "w", encoding="utf-8") as out:
        out.write(cut(header) + "\n" + "".join(cut(line(i, changed)) + "\n"
                                               for i in range(rows)))


def run_one(table, rows, tmp, row_path):
    entity, key, _h, _l = FILES[table]
    created, changed = tmp / f"{table}.csv", tmp / f"{table}-changed.csv"
    write(created, table, rows, False)
    write(changed, table, rows, True)
    with bench.throwaway_database(URL) as url:
        db = Database(url)
        try:
            auth.create_user(db, None, "admin", "Ada Admin", None, "bench-pass-123", "admin")
            admin = auth.get_user(db, "admin")
            with open(tmp / "c.csv", "w") as out:
                out.write("Name\n" + "".join(f"Customer {i}\n" for i in range(1000)))
            for path, ent in ((tmp / "c.csv", customers.CUSTOMERS), (created, entity)):
                source = importer.read(path.read_bytes(), path.name, file_path=path, fast=True)
                importer.execute(db, admin, importer.plan(
                    db, admin, ent, source, importer.propose_mapping(ent, source.headers)))
            with mock.patch.object(importer_updates, "writable", lambda *a: False) \
                    if row_path else contextlib.nullcontext(), \
                    mock.patch.object(importer_updates, "undo_updates", lambda *a: None) \
                    if row_path else contextlib.nullcontext():
                start = time.perf_counter()
                source = importer.read(changed.read_bytes(), changed.name, file_path=changed,
                                       fast=True)
                plan = importer.plan(db, admin, entity, source,
                                     importer.propose_mapping(entity, source.headers),
                                     mode="update", key=key)
                planned = time.perf_counter()
                staged = bool(plan.staged_updates)
                import_id = importer.execute(db, admin, plan)
                written = time.perf_counter()
                undone = importer.undo(db, admin, import_id)
                done = time.perf_counter()
            assert staged, plan.notes
            assert plan.counts.get("update") == rows // 2, plan.counts
            assert undone["undone"] == rows // 2, undone
        finally:
            db.close()
    with bench.throwaway_database(URL) as url:
        begun = time.perf_counter()
        bench._bare_postgresql_load(url, changed)
        bare = time.perf_counter() - begun
    return planned - start, written - planned, done - written, bare


def main():
    with tempfile.TemporaryDirectory() as name:
        tmp = pathlib.Path(name)
        for table in WANTED or FILES:
            times = [run_one(table, N, tmp, False) for _run in range(RUNS)]
            dry, imp, undo, bare = (statistics.median(t[i] for t in times) for i in range(4))
            few = min(5_000, N // 20)
            r_dry, r_imp, r_undo, _b = run_one(table, few, tmp, True)
            k = N / few
            print(f"update {N:,} {table} ({N // 2:,} changed; set-based): dry run {dry:.2f} s,"
                  f" import {imp:.2f} s, undo {undo:.2f} s / bare COPY {bare:.2f} s"
                  f" ({dry / bare:.1f}x, {imp / bare:.1f}x, {undo / bare:.1f}x)"
                  f"  [median of {RUNS}]; the row path's import / undo of {few:,} rows:"
                  f" {r_imp:.1f} / {r_undo:.1f} s -> {r_imp * k:.0f} / {r_undo * k:.0f} s"
                  f" for {N:,} (its dry run is the set-based one: {r_dry:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
