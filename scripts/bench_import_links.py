"""Timings of the set-based imports of links added for issue #8 (new deals and deal updates
with a custom link field, contact updates naming customers, survey answers moved to other
customers, contacts and products) at N rows (200,000 unless given) against DuckDB's bare
read_csv of the same file in the same run, with their undo; counts calls of the row path's
writes (there should be none). Uses the tests' small world (tests/test_importer_fast.py).

    python scripts/bench_import_links.py [N]"""
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from crm import custom_fields, customers, deals, importer, records, rules, service  # noqa: E402
from tests.test_importer_fast import deal_world, make_db  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
d = pathlib.Path(tempfile.mkdtemp())
db, team = make_db(d / "b.duckdb")
admin = team["admin"]
deal_world(db, team)
custom_fields.add_field(db, admin, "deals", {"name": "referrer", "label": "Referred by",
                                             "type": "ref", "ref_table": "customers"})


def bare(path):
    cur = db.cursor()
    t = time.perf_counter()
    cur.execute("CREATE OR REPLACE TEMP TABLE bare AS SELECT * FROM read_csv($p, header = true,"
                " all_varchar = true)", {"p": str(path)})
    dt = time.perf_counter() - t
    cur.execute("DROP TABLE bare")
    cur.close()
    return dt


def run(label, entity, text, mode="create", key=None, check=None):
    path = d / f"{label}.csv"
    path.write_text(text)
    data = path.read_bytes()
    t = time.perf_counter()
    src = importer.read(data, f"{label}.csv", fast=True)
    p = importer.plan(db, admin, entity, src, importer.propose_mapping(entity, src.headers),
                      mode=mode, key=key)
    tp = time.perf_counter() - t
    assert p.staged or p.staged_updates, p.notes
    t = time.perf_counter()
    i = importer.execute(db, admin, p)
    te = time.perf_counter() - t
    undo, wrote = "", len(ROWPATH)
    if mode != "create":
        ROWPATH.clear()
        t = time.perf_counter()
        found = importer.undo(db, admin, i)
        undo = (f" undo {time.perf_counter() - t:.2f} s ({found['undone']} undone, row-path"
                f" calls {len(ROWPATH)})")
    b = statistics.median(bare(path) for _ in range(3))
    print(f"{label}: row-path writes {wrote};", end=" ")
    ROWPATH.clear()
    print(f"{label}: rows {N} counts {p.counts} dry run {tp:.2f} s, import {te:.2f} s,"
          f" bare read_csv {b:.3f} s, ratio (dry run + import) / bare {(tp + te) / b:.0f}{undo}",
          flush=True)
    return i


ROWPATH = []
_wr, _um, _ui = importer.write_row, records.update_many, records.update_in
records.update_in = lambda *a, **k: ROWPATH.append(1) or _ui(*a, **k)
importer.write_row = lambda *a, **k: ROWPATH.append(1) or _wr(*a, **k)
records.update_many = lambda *a, **k: ROWPATH.append(1) or _um(*a, **k)
names = ["Analytical Engines Ltd", "Bletchley Park Trust", "UAB Saulė", "پارسیان تجارت"]
# 1. deals with a custom link
stage = "Proposal"
rows = ["Deal name,Stage,Customer,Referred by,Amount"] + [
    f"D{i},{stage},{names[i % 2]},{names[(i + 1) % 4]},{i % 1000}" for i in range(N)]
run("deals_custom_link", deals.DEALS, "\n".join(rows) + "\n")
rows = ["Title,Referred by,Amount"] + [
    f"D{i},{names[(i + 2) % 4]},{i % 1000 + 1}" for i in range(N)]
run("deals_update_custom_link", deals.DEALS, "\n".join(rows) + "\n", "update", "title")
# 2. contacts: create, then update naming the customer
rows = ["Customer,First Name,Last Name,Email"] + [
    f"{names[i % 4]},F{i},L{i},c{i}@x.com" for i in range(N)]
run("contacts_seed", customers.CONTACTS, "\n".join(rows) + "\n")
rows = ["Email,Customer,Job Title"] + [
    f"c{i}@x.com,{names[(i + 1) % 4]},T{i % 7}" for i in range(N)]
run("contacts_update_customer", customers.CONTACTS, "\n".join(rows) + "\n", "update", "email")
# 3. survey answers: create, then update moving links
rows = ["Customer,Answered on,CSAT (1-5),Comment"] + [
    f"{names[0]},2025-02-01,3,S{i}" for i in range(N)]
run("surveys_seed", service.SURVEYS, "\n".join(rows) + "\n")
rows = ["Comment,Customer,Contact,Product,CSAT (1-5)"] + [
    f"S{i},{names[1] if i % 2 else names[0]},{'Alan Turing' if i % 2 else 'Ada Lovelace'},"
    f"{'GTX Pro' if i % 3 else ''},{1 + i % 5}" for i in range(N)]
run("surveys_update_links", service.SURVEYS, "\n".join(rows) + "\n", "update", "comment")
db.close()
rules.invalidate()
shutil.rmtree(d, ignore_errors=True)
