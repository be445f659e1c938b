"""Times set-based deal updates and upserts that bring the stage history's dates (engaged on,
closed on) and that add stages (--create-missing) against DuckDB's bare read_csv of the same
file, in the same run, and the row path on a smaller sample of the same shape, extrapolated
per row.

    python scripts/bench_import_deal_dates.py [--rows 200000] [--row-rows 5000] [--runs 3]
        [dates-update dates-upsert stages-update stages-upsert]

A base database holds --rows deals ("Deal <n>", in Proposal, with a customer) made by the
set-based create; each file updates them by title (an upsert: every other row names a new
deal). Fast path: read + plan (the dry run), execute and undo timed apart."""
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

from crm import deals, importer, importer_updates  # noqa: E402
from crm.db import Database  # noqa: E402
from crm import auth  # noqa: E402
from scripts.bench_import_deal_moves import bare, base  # noqa: E402

STAGES = ("Won", "Lost", "Negotiation", "Qualification", "Won", "Prospecting")
NEW_STAGES = ("Won", "Pilot", "Negotiation", "Review {k}", "Lost", "Onboarding")
REASONS = ("", "price", "", "", "", "price")


def write(path: Path, rows: int, kind: str) -> None:
    stages = NEW_STAGES if kind.startswith("stages") else STAGES
    with open(path, "w", encoding="utf-8") as out:
        out.write("Title,Stage,Lost reason,Engaged on,Closed on,Amount,Next step\n")
        for i in range(rows):
            title = f"New {i}" if kind.endswith("upsert") and i % 2 else f"Deal {i}"
            j = i % 6
            engaged = f"{1 + i % 28:02d}.{1 + i % 12:02d}.2024"
            closed = "" if i % 3 else f"2025-{1 + i % 12:02d}-15"
            out.write(f"{title},{stages[j].format(k=i % 5)},{REASONS[j]},{engaged},{closed},"
                      f"{i % 9000}.50,Call {i % 7}\n")


def run(db_path: Path, csv_path: Path, fast: bool, kind: str):
    mode = kind.split("-")[1]
    db = Database(db_path)
    try:
        admin = auth.get_user(db, "admin")
        start = time.perf_counter()
        source = importer.read(csv_path.read_bytes(), csv_path.name, file_path=csv_path,
                               fast=fast)
        plan = importer.plan(db, admin, deals.DEALS, source,
                             importer.propose_mapping(deals.DEALS, source.headers),
                             mode=mode, key="title",
                             create_missing=kind.startswith("stages"))
        assert bool(plan.staged_updates) == fast, plan.notes
        dry = time.perf_counter() - start
        import_id = importer.execute(db, admin, plan)
        written = time.perf_counter() - start - dry
        start = time.perf_counter()
        if fast:
            importer.undo(db, admin, import_id)
        else:  # the row path's undo (record by record)
            with mock.patch.object(importer_updates, "undo_updates", lambda *a: None):
                importer.undo(db, admin, import_id)
        undone = time.perf_counter() - start
        print(f"  {kind} {'fast' if fast else 'row path'}: dry run {dry:.2f} s, import"
              f" {written:.2f} s, undo {undone:.2f} s", flush=True)
        return (dry, written, undone), plan.counts
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--row-rows", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("kinds", nargs="*", default=["dates-update", "dates-upsert",
                                                     "stages-update", "stages-upsert"])
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crm-bench-dates-") as name:
        tmp = Path(name)
        base_db = tmp / "base.duckdb"
        start = time.perf_counter()
        base(base_db, opts.rows, tmp)
        print(f"base: {opts.rows:,} deals ({time.perf_counter() - start:.1f} s)", flush=True)
        for kind in opts.kinds:
            big, small = tmp / f"{kind}.csv", tmp / f"{kind}-small.csv"
            write(big, opts.rows, kind)
            write(small, opts.row_rows, kind)
            phases, bares = [], []
            for _run in range(opts.runs):
                copy = tmp / "fast.duckdb"
                shutil.copy(base_db, copy)
                times, counts = run(copy, big, True, kind)
                phases.append(times)
                copy.unlink()
                bares.append(bare(big, tmp))
            copy = tmp / "row.duckdb"
            shutil.copy(base_db, copy)
            row_times, _counts = run(copy, small, False, kind)
            copy.unlink()
            b = statistics.median(bares)
            d, w, u = (statistics.median(t[k] for t in phases) for k in range(3))
            scale = opts.rows / opts.row_rows
            row_all = sum(row_times) * scale
            print(f"deals {kind}: {opts.rows:,} rows (created {counts.get('create', 0):,},"
                  f" updated {counts.get('update', 0):,}, rejected {counts.get('reject', 0):,})"
                  f" set-based: dry run {d:.2f} s ({d / b:.1f}x), import {w:.2f} s"
                  f" ({w / b:.1f}x), undo {u:.2f} s ({u / b:.1f}x) / bare read_csv {b:.2f} s"
                  f" [median of {opts.runs}]; row path {opts.row_rows:,} rows: dry run"
                  f" {row_times[0]:.1f} s, import {row_times[1]:.1f} s, undo {row_times[2]:.1f} s"
                  f" -> {row_all:.0f} s for {opts.rows:,} ({row_all / (d + w + u):.0f}x the"
                  " set-based path)", flush=True)


if __name__ == "__main__":
    main()
