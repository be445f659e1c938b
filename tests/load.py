"""A bounded load test on loopback: writers create leads, add 1 to a shared lead's estimated
value (a versioned save; on a conflict they read it again and retry) and move a shared deal,
for a number of seconds. Lost writes are counted from the end state: the leads made must be as
many as the creates reported, the shared value must equal the number of saves reported, and
the deal's stage history must be one unbroken chain.

PostgreSQL: one process per writer (as app servers would be). DuckDB: one process, a thread
per writer (one process per file). Run by tests/test_db_engines.py briefly; by hand at full
size:  python -m tests.load URL_OR_FILE --writers 20 --seconds 60"""
from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import sys
import threading
import time
import types
from decimal import Decimal


def prepare(db) -> dict:
    """The admin, the shared lead and the shared deal; returns their ids."""
    from crm import auth, deals, leads, pipelines

    if auth.get_user(db, "loadadmin") is None:
        auth.create_user(db, None, "loadadmin", "Load Admin", None, "Load-test-12345", "admin")
    admin = auth.get_user(db, "loadadmin")
    stages = [s["id"] for s in pipelines.stages_of(db, pipelines.default_pipeline_id(db))
              if s["kind"] == "open"]
    return {"lead": leads.create_lead(db, admin, {"last_name": "Shared",
                                                  "estimated_value": "0"}),
            "deal": deals.create_deal(db, admin, {"title": "Shared", "stage_id": stages[0]}),
            "stages": stages}


def work(db, ids: dict, seconds: float, seed: int) -> dict:
    """One writer's loop; returns its counts."""
    from crm import auth, deals, leads, records

    admin = auth.get_user(db, "loadadmin")
    # conflicts: stale saves and moves, told to the writer (it reads again); gave_up: a
    # collision the command's own retries could not get past (records.WriteConflict)
    counts = {"creates": 0, "saves": 0, "conflicts": 0, "moves": 0, "move_conflicts": 0,
              "gave_up": 0}
    started = time.time()
    end, n = time.monotonic() + seconds, seed
    while time.monotonic() < end:
        n += 1
        try:
            leads.create_lead(db, admin, {"last_name": f"Load {seed}-{n}"})
            counts["creates"] += 1
        except records.WriteConflict:
            counts["gave_up"] += 1
        while True:  # a versioned save of value + 1, retried on a conflict
            lead = records.get(db, admin, leads.LEADS, ids["lead"])
            try:
                records.update(db, admin, leads.LEADS, ids["lead"],
                               {"estimated_value": str(lead["estimated_value"] + 1)},
                               lead["version"])
                counts["saves"] += 1
                break
            except records.WriteConflict:
                counts["gave_up"] += 1
            except records.ConflictError:
                counts["conflicts"] += 1
        deal = records.get(db, admin, deals.DEALS, ids["deal"])
        target = ids["stages"][n % len(ids["stages"])]
        try:
            if deal["stage_id"] != target:
                deals.move_deal(db, admin, ids["deal"], target, expected_version=deal["version"])
                counts["moves"] += 1
        except records.WriteConflict:
            counts["gave_up"] += 1
        except records.ConflictError:
            counts["move_conflicts"] += 1
    # the writer's own window: starting processes takes a while, and is not writing
    return {**counts, "started": started, "ended": time.time()}


def _process(target: str, ids: dict, seconds: float, seed: int, out) -> None:
    from crm.db import Database

    db = Database(target, pool_size=2)
    try:
        out.put(work(db, ids, seconds, seed))
    finally:
        db.close()


def run(target: str, writers: int, seconds: float) -> dict:
    """Runs the writers against target (a DuckDB file or a PostgreSQL URL); returns the
    totals, writes per second and the lost writes (must be 0)."""
    from crm import dialect
    from crm.db import Database

    db = Database(target)
    try:
        ids = prepare(db)
        if dialect.is_url(target):
            db.close()
            db = None
            queue = multiprocessing.get_context("spawn").Queue()
            # by its module's name, which the children import (run as `python -m tests.load`
            # this file is __main__, which they do not run: see below)
            writer = importlib.import_module("tests.load")._process
            procs = [multiprocessing.get_context("spawn").Process(
                target=writer, args=(target, ids, seconds, i * 1_000_000, queue))
                for i in range(writers)]
            # a spawned child runs the parent's __main__ first: after AppTest ran a page in
            # this process that is app.py, so the children start from a blank __main__
            main = sys.modules["__main__"]
            sys.modules["__main__"] = types.ModuleType("__main__")
            try:
                for p in procs:
                    p.start()
            finally:
                sys.modules["__main__"] = main
            results = [queue.get(timeout=seconds + 120) for _ in procs]
            for p in procs:
                p.join()
            db = Database(target)
        else:
            results = []
            threads = [threading.Thread(target=lambda i=i: results.append(
                work(db, ids, seconds, i * 1_000_000))) for i in range(writers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        window = [(r.pop("started"), r.pop("ended")) for r in results]
        elapsed = max(e for _s, e in window) - min(s for s, _e in window)
        totals = {k: sum(r[k] for r in results) for k in results[0]}
        made = db.scalar("SELECT count(*) FROM leads WHERE last_name LIKE 'Load %'")
        value = db.scalar("SELECT estimated_value FROM leads WHERE id = $i", {"i": ids["lead"]})
        chain = db.query("SELECT from_stage_id, to_stage_id FROM deal_stage_history"
                         " WHERE deal_id = $d ORDER BY id", {"d": ids["deal"]})
        broken = sum(b["from_stage_id"] != a["to_stage_id"] for a, b in zip(chain, chain[1:]))
        return {**totals, "writers": writers, "seconds": round(elapsed, 1),
                "writes_per_second": round((totals["creates"] + totals["saves"]
                                            + totals["moves"]) / elapsed, 1),
                "lost_creates": totals["creates"] - made,
                "lost_saves": totals["saves"] - int(value or Decimal(0)),
                "lost_moves": totals["moves"] - (len(chain) - 1), "broken_history": broken}
    finally:
        if db is not None:
            db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="a DuckDB file or a postgresql:// URL")
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    print(json.dumps(run(args.target, args.writers, args.seconds), indent=2))
