"""Times set-based deal updates that move stages (and name lost-to competitors) and deal
upserts (half new deals) against DuckDB's bare read_csv of the same file, in the same run,
and the row path on a smaller sample of the same shape, extrapolated per row.

    python scripts/bench_import_deal_moves.py [--rows 200000] [--row-rows 5000] [--runs 3]

A base database holds --rows deals ("Deal <n>", in Proposal, with a customer) made by the
set-based create; each file updates them by title (or, for the upsert, every other row
names a new deal). Fast path: read + plan (the dry run) + execute + undo timed apart."""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crm import auth, customers, deals, importer, importer_updates  # noqa: E402
from crm.db import Database  # noqa: E402

STAGES = ("Won", "Lost", "Negotiation", "Qualification", "Won", "Prospecting")
REASONS = ("", "price", "", "", "", "")
RIVALS = ("", "Rival {k}", "", "", "", "")


def write(path: Path, rows: int, kind: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write("Title,Stage,Lost reason,Lost to competitor,Amount,Next step\n")
        for i in range(rows):
            title = f"New {i}" if kind == "upsert" and i % 2 else f"Deal {i}"
            j = i % 6
            out.write(f"{title},{STAGES[j]},{REASONS[j]},{RIVALS[j].format(k=i % 50)},"
                      f"{i % 9000}.50,Call {i % 7}\n")


def base(path: Path, rows: int, tmp: Path) -> None:
    db = Database(path)
    auth.create_user(db, None, "admin", "Ada Admin", "ada@example.com", "bench-pass-123",
                     "admin")
    admin = auth.get_user(db, "admin")
    for i in range(20):
        customers.create_customer(db, admin, {"name": f"Customer {i}"})
    csv_path = tmp / "deals.csv"
    with open(csv_path, "w") as out:
        out.write("Title,Stage,Customer,Amount\n" + "".join(
            f"Deal {i},Proposal,Customer {i % 20},{i % 1000}\n" for i in range(rows)))
    source = importer.read(csv_path.read_bytes(), csv_path.name, file_path=csv_path,
                           fast=True)
    plan = importer.plan(db, admin, deals.DEALS, source,
                         importer.propose_mapping(deals.DEALS, source.headers))
    assert plan.staged, plan.notes
    importer.execute(db, admin, plan)
    db.close()


def run(db_path: Path, csv_path: Path, fast: bool, mode: str) -> tuple[float, float, dict]:
    db = Database(db_path)
    try:
        admin = auth.get_user(db, "admin")
        start = time.perf_counter()
        source = importer.read(csv_path.read_bytes(), csv_path.name, file_path=csv_path,
                               fast=fast)
        plan = importer.plan(db, admin, deals.DEALS, source,
                             importer.propose_mapping(deals.DEALS, source.headers),
                             mode=mode, key="title")
        assert bool(plan.staged_updates) == fast, plan.notes
        dry = time.perf_counter() - start
        import_id = importer.execute(db, admin, plan)
        seconds = time.perf_counter() - start
        print(f"  {mode} {'fast' if fast else 'row path'}: dry run {dry:.2f} s, import"
              f" {seconds - dry:.2f} s", flush=True)
        start = time.perf_counter()
        if fast:
            importer.undo(db, admin, import_id)
        else:  # the row path's undo (record by record), as it was before it went set-based
            with mock.patch.object(importer_updates, "undo_updates", lambda *a: None):
                importer.undo(db, admin, import_id)
        return seconds, time.perf_counter() - start, plan.counts
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
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--row-rows", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("modes", nargs="*", default=["update", "upsert"])
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crm-bench-moves-") as name:
        tmp = Path(name)
        base_db = tmp / "base.duckdb"
        start = time.perf_counter()
        base(base_db, opts.rows, tmp)
        print(f"base: {opts.rows:,} deals ({time.perf_counter() - start:.1f} s)", flush=True)
        for mode in opts.modes:
            big, small = tmp / f"{mode}.csv", tmp / f"{mode}-small.csv"
            write(big, opts.rows, mode)
            write(small, opts.row_rows, mode)
            fast_s, undo_s, bare_s = [], [], []
            for _run in range(opts.runs):
                copy = tmp / "fast.duckdb"
                shutil.copy(base_db, copy)
                seconds, undo, counts = run(copy, big, True, mode)
                fast_s.append(seconds)
                undo_s.append(undo)
                copy.unlink()
                bare_s.append(bare(big, tmp))
            copy = tmp / "row.duckdb"
            shutil.copy(base_db, copy)
            row_s, row_undo, _counts = run(copy, small, False, mode)
            copy.unlink()
            f, u, b = (statistics.median(x) for x in (fast_s, undo_s, bare_s))
            per_row, per_undo = row_s / opts.row_rows, row_undo / opts.row_rows
            print(f"deals {mode}: fast {opts.rows:,} rows {f:.2f} s (median of {opts.runs};"
                  f" created {counts['create']:,}, updated {counts['update']:,}, rejected"
                  f" {counts['reject']:,}); bare read_csv {b:.2f} s ({f / b:.1f}x); undo"
                  f" {u:.2f} s; row path {opts.row_rows:,} rows {row_s:.1f} s -> "
                  f"{per_row * opts.rows:.0f} s for {opts.rows:,} ({per_row * opts.rows / f:.0f}x"
                  f" the fast path), its undo {row_undo:.1f} s -> {per_undo * opts.rows:.0f} s",
                  flush=True)


if __name__ == "__main__":
    main()
