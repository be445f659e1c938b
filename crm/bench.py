"""python -m crm bench: timings of the leads page and the lead commands on a large database.

Builds its own throw-away database (never the user's), loads the large demo (1,000,000 leads)
and reports medians, next to the goals of the issues."""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from crm import auth, leads, records
from crm.db import Database
from crm.ui.page_timing import median_ms, page_run_ms


def main(args) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm bench")
    parser.add_argument("--size", choices=("small", "large"), default="large")
    parser.add_argument("--repeat", type=int, default=30, help="runs per command timing")
    parser.add_argument("--page-runs", type=int, default=7, help="runs of the leads page")
    opts = parser.parse_args(getattr(args, "bench_args", []) or [])

    os.environ.setdefault("CRM_BCRYPT_ROUNDS", "4")
    from crm import demo

    with tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp:
        path = Path(tmp) / "bench.duckdb"
        db = Database(path)
        auth.create_user(db, None, "bench", "Bench Admin", None, "bench-pass-123", "admin")
        admin = auth.get_user(db, "bench")
        start = time.perf_counter()
        made = demo.load_demo(db, opts.size, seed=7)
        load_s = time.perf_counter() - start
        total = db.scalar("SELECT count(*) FROM leads")
        print(f"demo {opts.size}: {total:,} leads, {made.get('customers', 0):,} customers"
              f" loaded in {load_s:.1f} s")

        results = []
        first_page = lambda: records.list_records(db, admin, leads.LEADS, records.Query())  # noqa
        results.append(("leads: first page + count", median_ms(first_page, opts.repeat), 100))
        searched = records.Query(search="smith", filters={"status": ["new", "contacted"]},
                                 sort="estimated_value")
        results.append(("leads: search + filter + sort",
                        median_ms(lambda: records.list_records(db, admin, leads.LEADS, searched),
                                   opts.repeat), 200))
        last = records.Query(page=10**9)
        results.append(("leads: last page (deep OFFSET)",
                        median_ms(lambda: records.list_records(db, admin, leads.LEADS, last),
                                   opts.repeat), 1000))
        counter = iter(range(10**9))
        create = lambda: leads.create_lead(db, admin, {  # noqa: E731
            "last_name": f"Bench{next(counter)}", "email": "bench@example.com",
            "estimated_value": "1200", "status": "new"})
        results.append(("create_lead", median_ms(create, opts.repeat), 20))
        lead_id = leads.create_lead(db, admin, {"last_name": "Updated"})
        version = [1]

        def update():
            row = leads.update_lead(db, admin, lead_id,
                                    {"estimated_value": str(version[0] * 10)}, version[0])
            version[0] = row["version"]

        results.append(("update_lead", median_ms(update, opts.repeat), 20))
        results.append(("leads page script (AppTest run)",
                        page_run_ms(path, "pages/leads.py", "bench", opts.page_runs), 1000))
        results.append(("home page script (AppTest run)",
                        page_run_ms(path, "pages/home.py", "bench", opts.page_runs), 1000))
        db.close()

    width = max(len(r[0]) for r in results)
    print(f"{'measure'.ljust(width)}  median ms   goal ms  ok")
    failed = 0
    for name, ms, goal in results:
        ok = ms < goal
        failed += not ok
        print(f"{name.ljust(width)}  {ms:9.1f}  {goal:8.0f}  {'yes' if ok else 'NO'}")
    return 1 if failed else 0
