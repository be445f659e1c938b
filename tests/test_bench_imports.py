"""python -m crm bench --import-only, its lines of imports naming other records: each entity's
file is imported on its set-based path beside the bare read of the same file, and the line says
both and their ratio (the times themselves are the bench's business, not the tests')."""
import os
import re
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("CRM_BCRYPT_ROUNDS", "4")

from crm import bench_imports  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

LINE = re.compile(r"^import 400 (?P<entity>\w+) \((?P<created>[\d,]+) created, (?P<rejected>\d+)"
                  r" rejected\): ours \d+\.\d\d s / bare read_csv \d+\.\d\d s \(\d+\.\dx; each run"
                  r" \d+\.\d, \d+\.\d\)  \[median of 2\]$")


def test_every_entity_has_a_line_with_its_bare_read_and_ratio(capsys):
    assert bench_imports.refs_import_bench(2, rows=400, n_customers=300)
    lines = [m for m in map(LINE.match, capsys.readouterr().out.splitlines()) if m]
    assert [m["entity"] for m in lines] == list(bench_imports.FILES)
    assert {"contacts", "tasks", "activities", "surveys", "complaints", "price_records",
            "customer_returns", "competitors", "users", "deals"} == set(bench_imports.FILES)
    for m in lines:  # every row made or refused with its reason; none left over
        assert int(m["created"].replace(",", "")) + int(m["rejected"]) == 400


def test_the_row_path_is_timed_on_request(capsys):
    assert bench_imports.refs_import_bench(1, rows=60, n_customers=50, entities=["contacts"],
                                           row_rows=20)
    out = capsys.readouterr().out
    assert re.search(r"import 60 contacts .*; row by row 20 rows \d+\.\d s -> \d+ s for 60", out)


def test_an_unknown_entity_is_refused_before_anything_runs(tmp_path):
    # in a child process: importing crm.bench here would shadow test_cli's stand-in for it
    env = {**os.environ, "CRM_DB": str(tmp_path / "crm.duckdb")}
    done = subprocess.run([sys.executable, "-m", "crm", "bench", "--import-only", "--refs",
                           "contacts,nope"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert "--refs: unknown nope" in done.stderr and "import" not in done.stdout
