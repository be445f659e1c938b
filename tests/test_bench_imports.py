"""python -m crm bench --import-only, its lines of imports naming other records and of the
set-based checks (updates, links, the write-time re-check, the near-miss shortlist): each file
is imported on its set-based path beside the bare read of the same file, and the line says both
and their ratio (the times themselves are the bench's business, not the tests')."""
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


CHECK = re.compile(r"^(?P<title>(update|import) 300 [^:]+): (?P<times>[^/]+) / bare read_csv"
                   r" (?P<bare>\d+\.\d+) s \((?P<ratios>[^)]+)\)(?P<rest>.*)  \[median of 2\]$")


def test_every_check_has_a_line_beside_the_bare_read(capsys):
    assert bench_imports.checks_import_bench(2, rows=300)
    lines = [m for m in map(CHECK.match, capsys.readouterr().out.splitlines()) if m]
    assert [m["title"] for m in lines] == [
        "update 300 complaints", "update 300 customers' birthdays without the kind",
        "update 300 leads' custom link to a customer", "import 300 new leads with a custom link",
        "update 300 deals' product lines",
        "update 300 deals' product lines without an amount, half of them won on a close date",
        "import 300 new contacts, the write-time re-check"]
    for m in lines:  # a ratio for each phase, each its time over the bare read's
        times = [float(t.split()[-2]) for t in m["times"].split(", ")]
        ratios = [float(r.rstrip("x")) for r in m["ratios"].split(", ")]
        assert len(times) == len(ratios) and all(t >= 0 for t in times)
        assert float(m["bare"]) > 0
    rest = {m["title"].split(" ", 2)[2]: m["rest"] for m in lines}
    assert rest["complaints"] == "; 75 resolved today, 300 undone"  # the files close a quarter
    assert rest["customers' birthdays without the kind"] == (
        "; 200 birthdays kept (individuals only), 300 undone")
    assert rest["leads' custom link to a customer"] == "; 300 linked, 300 undone"
    assert rest["new leads with a custom link"] == "; 300 linked"
    assert rest["deals' product lines"] == "; 300 deals with the file's lines, 300 undone"
    assert rest["deals' product lines without an amount, half of them won on a close date"] \
        == "; 300 deals with the file's lines, 300 undone"
    assert "re-check query" in lines[-1]["times"] and "import without it" in lines[-1]["times"]


def test_the_near_miss_line_names_the_suggestion_and_before_on_request(capsys):
    assert bench_imports.near_miss_bench(1, n_customers=2000, before=True)
    out = capsys.readouterr().out
    m = re.search(r"^near miss among 2,000 customers: SQL shortlist \d+\.\d+ s, fast path's"
                  r" resolve \d+\.\d+ s, before: names into Python \d+\.\d+ s, closest\(\) over"
                  r" them \d+\.\d+ s / bare scan lowering every name \d+\.\d+ s \((\d+\.\d+x,"
                  r" ){3}\d+\.\d+x\); '(?P<word>[^']+)' -> '(?P<name>[^']+)'  \[median of 1\]$",
                  out, re.M)
    assert m, out
    # a letter left out of a name it suggests (or of one as near)
    assert len(m["name"]) == len(m["word"]) + 1


def test_a_check_can_be_picked_and_unknown_ones_are_refused(tmp_path):
    env = {**os.environ, "CRM_DB": str(tmp_path / "crm.duckdb")}
    done = subprocess.run([sys.executable, "-m", "crm", "bench", "--import-only", "--checks",
                           "recheck,nope"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert "--checks: unknown nope" in done.stderr and "import" not in done.stdout
