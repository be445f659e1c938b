"""The command line: python -m crm init|users|bench, exit codes and one-line failures."""
import os

os.environ.setdefault("CRM_BCRYPT_ROUNDS", "4")  # crm.auth reads it at import

import io
import subprocess
import sys
import types
from pathlib import Path

import pytest

from crm import auth
from crm.__main__ import main
from crm.db import Database

ROOT = Path(__file__).resolve().parent.parent
GOOD = "Secret12345"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.setattr(auth, "BCRYPT_ROUNDS", 4)
    for name in ("CRM_PASSWORD", "CRM_DEMO_PASSWORD", "CRM_DB", "CRM_LANGUAGE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def db_file(db_url):
    """The test's database: a DuckDB file, or a PostgreSQL URL (see conftest.POSTGRES_READY)."""
    return db_url if db_url.startswith("postgresql://") else Path(db_url)


@pytest.fixture
def cli(capsys, monkeypatch):
    """Runs main(argv) in this process; returns (exit code, stdout, stderr)."""

    def run(*argv, password=None):
        if password is None:
            monkeypatch.delenv("CRM_PASSWORD", raising=False)
        else:
            monkeypatch.setenv("CRM_PASSWORD", password)
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _users(db_file) -> dict:
    db = Database(db_file)
    try:
        return {u["username"]: u for u in auth.list_users(db)}
    finally:
        db.close()


def _one_line_failure(code, err, *words):
    assert code != 0
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.strip().count("\n") == 0, err
    for word in words:
        assert word in err


@pytest.mark.duckdb_only  # the file itself
def test_init_creates_the_database_and_hints_at_the_first_admin(cli, db_file):
    code, out, err = cli("--db", db_file, "init")
    assert code == 0 and err == ""
    assert db_file.exists() and "Created" in out and "users add" in out
    code, out, _ = cli("init", "--db", db_file)  # --db after the command works too
    assert code == 0 and "Opened" in out
    db = Database(db_file)
    try:
        assert db.scalar("SELECT count(*) FROM schema_migrations") >= 1
    finally:
        db.close()


@pytest.mark.duckdb_only  # the file itself
def test_init_uses_crm_db_from_the_environment(cli, db_file, monkeypatch):
    monkeypatch.setenv("CRM_DB", str(db_file))
    code, _, _ = cli("init")
    assert code == 0 and db_file.exists()


def test_init_demo_makes_an_admin_with_a_printed_password(cli, db_file):
    code, out, err = cli("--db", db_file, "init", "--demo")
    assert code == 0, err
    assert "300 leads" in out and "120 customers" in out
    admin_line = next(line for line in out.splitlines() if "admin user 'admin'" in line)
    admin_password = admin_line.rsplit(": ", 1)[1]
    demo_line = next(line for line in out.splitlines() if line.startswith("Demo users"))
    demo_password = demo_line.rsplit(": ", 1)[1]
    assert admin_password != demo_password
    db = Database(db_file)
    try:
        assert auth.verify_login(db, "admin", admin_password)
        assert auth.verify_login(db, "maria", demo_password)
        assert auth.get_user(db, "admin").role == "admin"
    finally:
        db.close()
    # again: the data is there already, so nothing is added and nothing fails
    code, out, _ = cli("--db", db_file, "init", "--demo")
    assert code == 0 and "not loaded" in out
    assert len(_users(db_file)) == 5


def test_init_demo_takes_the_admin_password_from_crm_password(cli, db_file):
    code, out, _ = cli("--db", db_file, "init", "--demo", password=GOOD)
    assert code == 0 and GOOD not in out and "CRM_PASSWORD" in out
    db = Database(db_file)
    try:
        assert auth.verify_login(db, "admin", GOOD)
    finally:
        db.close()


def _cities(db_file) -> set:
    db = Database(db_file)
    try:
        return {r["city"] for r in db.query("SELECT DISTINCT city FROM customers")}
    finally:
        db.close()


def test_init_demo_speaks_the_chosen_language(cli, tmp_path, monkeypatch):
    """--language, else CRM_LANGUAGE, else English (with its Persian share)."""
    code, out, err = cli("--db", tmp_path / "lt.duckdb", "init", "--demo", "--language", "lt")
    assert code == 0, err
    assert "in language lt" in out and "Vilnius" in _cities(tmp_path / "lt.duckdb")
    db = Database(tmp_path / "lt.duckdb")
    try:  # a new install's default pipeline is named in its language too
        assert "Laimėta" in {r["name"] for r in db.query("SELECT name FROM stages")}
    finally:
        db.close()
    monkeypatch.setenv("CRM_LANGUAGE", "fa")
    code, out, err = cli("--db", tmp_path / "fa.duckdb", "init", "--demo")
    assert code == 0, err
    assert "in language fa" in out and "تهران" in _cities(tmp_path / "fa.duckdb")
    with pytest.raises(SystemExit) as exc:
        cli("--db", tmp_path / "de.duckdb", "init", "--demo", "--language", "de")
    assert exc.value.code == 2


def test_users_add_reads_crm_password(cli, db_file):
    code, out, _ = cli("--db", db_file, "users", "add", "Root", "--role", "admin",
                       "--name", "Root User", "--email", "root@example.com", password=GOOD)
    assert code == 0 and "root" in out
    code, out, _ = cli("--db", db_file, "users", "add", "ann", "--role", "rep",
                       password="Another12345")
    assert code == 0 and "ann" in out
    users = _users(db_file)
    assert users["root"]["role"] == "admin" and users["root"]["name"] == "Root User"
    assert users["ann"]["role"] == "rep"
    db = Database(db_file)
    try:
        assert auth.verify_login(db, "ann", "Another12345")
    finally:
        db.close()


def test_the_first_user_must_be_an_admin(cli, db_file):
    code, _, err = cli("--db", db_file, "users", "add", "ann", "--role", "rep", password=GOOD)
    _one_line_failure(code, err, "admin")
    assert _users(db_file) == {}


def test_duplicate_username_fails_with_one_line(cli, db_file):
    assert cli("--db", db_file, "users", "add", "root", "--role", "admin", password=GOOD)[0] == 0
    code, _, err = cli("--db", db_file, "users", "add", "ROOT", "--role", "rep", password=GOOD)
    _one_line_failure(code, err, "taken")
    assert _users(db_file)["root"]["role"] == "admin"


@pytest.mark.parametrize("weak", ["short1", "onlyletterslong", "1234567890123"])
def test_weak_password_is_rejected(cli, db_file, weak):
    code, _, err = cli("--db", db_file, "users", "add", "root", "--role", "admin", password=weak)
    _one_line_failure(code, err, "Password")
    assert _users(db_file) == {}


def test_password_is_never_a_flag(cli, db_file):
    with pytest.raises(SystemExit) as exc:
        cli("--db", db_file, "users", "add", "root", "--role", "admin", "--password", GOOD)
    assert exc.value.code == 2


def test_without_crm_password_and_no_terminal_it_says_so(cli, db_file, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(GOOD + "\n"))
    code, _, err = cli("--db", db_file, "users", "add", "root", "--role", "admin")
    _one_line_failure(code, err, "CRM_PASSWORD")


def test_prompt_asks_twice(cli, db_file, monkeypatch):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter([GOOD, GOOD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    code, _, err = cli("--db", db_file, "users", "add", "root", "--role", "admin")
    assert code == 0, err
    answers = iter(["Mismatch12345", "Mismatch54321"])
    code, _, err = cli("--db", db_file, "users", "add", "ann", "--role", "rep")
    _one_line_failure(code, err, "do not match")
    assert set(_users(db_file)) == {"root"}


def test_lock_unlock_and_list(cli, db_file):
    cli("--db", db_file, "users", "add", "root", "--role", "admin", password=GOOD)
    cli("--db", db_file, "users", "add", "ann", "--role", "rep", "--email", "ann@example.com",
        password=GOOD)
    code, out, _ = cli("--db", db_file, "users", "lock", "Ann")
    assert code == 0 and "Locked 'ann'" in out
    assert _users(db_file)["ann"]["active"] is False
    db = Database(db_file)
    try:
        with pytest.raises(auth.AccountLocked):
            auth.verify_login(db, "ann", GOOD)
    finally:
        db.close()
    code, out, _ = cli("--db", db_file, "users", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["USERNAME", "NAME", "ROLE"]
    ann = next(line for line in lines if line.startswith("ann "))
    assert "rep" in ann and "locked" in ann and "ann@example.com" in ann
    assert "2 user(s)" in out
    code, out, _ = cli("--db", db_file, "users", "unlock", "ann")
    assert code == 0 and "Unlocked" in out
    assert _users(db_file)["ann"]["active"] is True
    db = Database(db_file)
    try:
        assert auth.verify_login(db, "ann", GOOD)
    finally:
        db.close()


def test_init_demo_shows_the_demo_password_before_loading(cli, db_file, monkeypatch):
    """An interrupted load must not leave demo users whose password was never shown."""
    from crm import demo

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # killed after the demo users exist, before the data

    monkeypatch.setattr(demo, "_demo_pipelines", interrupted)
    code, out, err = cli("--db", db_file, "init", "--demo")
    assert code == 130 and "interrupted" in err
    demo_line = next(line for line in out.splitlines() if line.startswith("Demo users"))
    assert "maria" in demo_line
    password = demo_line.rsplit(": ", 1)[1]
    db = Database(db_file)
    try:
        assert auth.verify_login(db, "maria", password)
        assert auth.verify_login(db, "reza", password)
    finally:
        db.close()


def test_init_demo_says_when_the_demo_password_comes_from_the_environment(cli, db_file,
                                                                         monkeypatch):
    monkeypatch.setenv("CRM_DEMO_PASSWORD", "Demo12345678")
    code, out, _ = cli("--db", db_file, "init", "--demo")
    assert code == 0 and "Demo12345678" not in out and "CRM_DEMO_PASSWORD" in out
    db = Database(db_file)
    try:
        assert auth.verify_login(db, "sam", "Demo12345678")
    finally:
        db.close()


def test_users_passwd_sets_a_new_password(cli, db_file, monkeypatch):
    cli("--db", db_file, "users", "add", "root", "--role", "admin", password=GOOD)
    cli("--db", db_file, "users", "add", "ann", "--role", "rep", password=GOOD)
    code, out, err = cli("--db", db_file, "users", "passwd", "Ann", password="Another12345")
    assert code == 0, err
    assert "ann" in out and "Another12345" not in out
    db = Database(db_file)
    try:
        assert auth.verify_login(db, "ann", "Another12345")
        assert not auth.verify_login(db, "ann", GOOD)
        assert db.scalar("SELECT count(*) FROM audit_log WHERE action = 'password_reset'") == 1
    finally:
        db.close()
    # from a prompt, asked twice, like `users add`
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter(["Prompted12345", "Prompted12345"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    code, _, err = cli("--db", db_file, "users", "passwd", "ann")
    assert code == 0, err
    db = Database(db_file)
    try:
        assert auth.verify_login(db, "ann", "Prompted12345")
    finally:
        db.close()


def test_users_passwd_failures_are_one_line(cli, db_file, monkeypatch):
    cli("--db", db_file, "users", "add", "root", "--role", "admin", password=GOOD)
    code, _, err = cli("--db", db_file, "users", "passwd", "nobody", password=GOOD)
    _one_line_failure(code, err, "nobody")
    code, _, err = cli("--db", db_file, "users", "passwd", "root", password="short")
    _one_line_failure(code, err, "10 characters")
    monkeypatch.setattr(sys, "stdin", io.StringIO(GOOD + "\n"))
    code, _, err = cli("--db", db_file, "users", "passwd", "root")
    _one_line_failure(code, err, "CRM_PASSWORD")
    with pytest.raises(SystemExit) as exc:
        cli("--db", db_file, "users", "passwd", "root", "--password", GOOD)
    assert exc.value.code == 2  # never a flag


def test_lock_of_unknown_user_fails(cli, db_file):
    code, _, err = cli("--db", db_file, "users", "lock", "nobody")
    _one_line_failure(code, err, "nobody")


def test_list_with_no_users(cli, db_file):
    code, out, _ = cli("--db", db_file, "users", "list")
    assert code == 0 and "No users" in out


def test_bench_not_available_yet(cli, db_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "crm.bench", None)  # as if crm/bench.py did not exist
    code, _, err = cli("--db", db_file, "bench")
    assert code == 2
    _one_line_failure(code, err, "bench is not available yet")


def test_bench_is_handed_its_arguments(cli, db_file, monkeypatch):
    seen = {}
    fake = types.ModuleType("crm.bench")
    fake.main = lambda args: seen.update(db=args.db, extra=args.bench_args) or 0
    monkeypatch.setitem(sys.modules, "crm.bench", fake)
    code, _, _ = cli("bench", "--db", db_file, "--rows", "1000")
    assert code == 0 and seen == {"db": str(db_file), "extra": ["--rows", "1000"]}


def test_unknown_arguments_are_refused_outside_bench(cli, db_file):
    with pytest.raises(SystemExit) as exc:
        cli("--db", db_file, "init", "--rows", "5")
    assert exc.value.code == 2


@pytest.mark.duckdb_only  # the file itself
def test_a_busy_database_fails_with_one_line(cli, db_file):
    Database(db_file).close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from crm.db import Database; db = Database(sys.argv[1]);"
         " print('ready', flush=True); time.sleep(30)", str(db_file)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        code, _, err = cli("--db", db_file, "users", "list")
        _one_line_failure(code, err, "another process")
    finally:
        holder.kill()
        holder.wait()


def test_python_dash_m_crm_end_to_end(tmp_path):
    db_file = tmp_path / "cli.duckdb"
    env = {**os.environ, "CRM_BCRYPT_ROUNDS": "4", "PYTHONPATH": str(ROOT),
           "CRM_PASSWORD": GOOD}
    env.pop("CRM_DB", None)

    def run(*argv):
        return subprocess.run([sys.executable, "-m", "crm", "--db", str(db_file), *argv],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    assert run("init").returncode == 0
    done = run("users", "add", "root", "--role", "admin")
    assert done.returncode == 0, done.stderr
    dup = run("users", "add", "root", "--role", "admin")
    assert dup.returncode == 1 and "Traceback" not in dup.stderr
    assert dup.stderr.strip() == "error: Username 'root' is taken"
    listed = run("users", "list")
    assert listed.returncode == 0 and "root" in listed.stdout


def test_import_dry_run_then_import_then_nothing_new(cli, tmp_path):
    db_file = tmp_path / "crm.duckdb"
    data = tmp_path / "leads.csv"
    data.write_text("First Name,Surname,E-mail Address,Junk\n"
                    "Ada,Lovelace,ada@example.com,x\n"
                    "Shirin,تهرانی,shirin@example.ir,y\n"
                    ",NoMail,not-an-email,z\n", encoding="utf-8")
    code, out, err = cli("--db", db_file, "import", "leads", data, "--key", "email", "--dry-run")
    assert code == 0, err
    assert "Would: create 2, update 0, skip 0, reject 1" in out and "row 4" in out
    code, out, err = cli("--db", db_file, "import", "leads", data, "--key", "email",
                         "--map", "Surname=last_name")
    assert code == 0, err and "import #1" in out
    db = Database(db_file)
    try:
        assert [r["last_name"] for r in db.query("SELECT last_name FROM leads ORDER BY id")] == [
            "Lovelace", "تهرانی"]
    finally:
        db.close()
    code, out, err = cli("--db", db_file, "import", "leads", data, "--key", "email",
                         "--map", "E-mail Address=", "--dry-run")
    _one_line_failure(code, err, "key")  # the key's column was unmapped


def test_import_failures_are_one_line(cli, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    code, out, err = cli("--db", tmp_path / "crm.duckdb", "import", "leads", empty)
    _one_line_failure(code, err, "empty")
    code, out, err = cli("--db", tmp_path / "crm.duckdb", "import", "leads", tmp_path / "no.csv")
    _one_line_failure(code, err, "does not exist")


# --- export, backup, restore ---------------------------------------------------------------

@pytest.fixture
def demo_file(tmp_path_factory):
    """A database with the small demo (made once per test that asks)."""
    from crm import demo

    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    db = Database(path)
    try:
        demo.load_demo(db, "small", password=GOOD)
    finally:
        db.close()
    return path


def _count(db_file, sql) -> int:
    db = Database(db_file)
    try:
        return db.scalar(sql)
    finally:
        db.close()


@pytest.mark.parametrize("name,fmt", [("leads.csv", "csv"), ("leads.xlsx", "xlsx"),
                                      ("leads.parquet", "parquet"), ("leads.dat", "parquet")])
def test_export_writes_every_live_record(cli, demo_file, tmp_path, name, fmt):
    target = tmp_path / name
    extra = ["--format", fmt] if name.endswith(".dat") else []
    code, out, err = cli("--db", demo_file, "export", "leads", target, *extra)
    assert code == 0 and err == "", err
    live = _count(demo_file, "SELECT count(*) FROM leads WHERE deleted_at IS NULL")
    assert out.strip() == f"Exported {live:,} leads to {target} ({fmt})"
    import duckdb
    con = duckdb.connect()
    try:
        if fmt == "parquet":
            got = con.execute("SELECT count(*) FROM read_parquet($p)", {"p": str(target)})
            assert got.fetchone()[0] == live
        elif fmt == "csv":
            assert target.read_bytes().startswith(b"\xef\xbb\xbfid,")
    finally:
        con.close()
    if fmt == "xlsx":
        import openpyxl
        sheet = openpyxl.load_workbook(target, read_only=True).active
        assert sum(1 for _ in sheet.iter_rows()) == live + 1


@pytest.mark.parametrize("entity", ["customers", "contacts", "deals", "activities", "tasks"])
def test_export_knows_every_entity(cli, demo_file, tmp_path, entity):
    code, out, err = cli("--db", demo_file, "export", entity, tmp_path / f"{entity}.parquet")
    assert code == 0, err
    live = _count(demo_file, f"SELECT count(*) FROM {entity} WHERE deleted_at IS NULL")
    assert f"Exported {live:,} {entity}" in out


def test_export_failures_are_one_line(cli, db_file, tmp_path):
    code, _, err = cli("--db", db_file, "export", "leads", tmp_path / "leads.txt")
    _one_line_failure(code, err, "--format")
    code, _, err = cli("--db", db_file, "export", "leads", tmp_path / "no" / "leads.csv")
    _one_line_failure(code, err, "does not exist")
    assert not (tmp_path / "no").exists()


def test_backup_and_restore_round_trip(cli, demo_file, tmp_path):
    folder = tmp_path / "backups" / "monday"
    code, out, err = cli("--db", demo_file, "backup", folder)
    assert code == 0 and err == "", err
    assert out.startswith("Backed up ") and str(folder) in out
    assert (folder / "manifest.json").exists() and (folder / "leads.parquet").exists()
    target = tmp_path / "restored.duckdb"
    code, out, err = cli("--db", target, "restore", folder)
    assert code == 0 and err == "", err
    assert out.startswith("Restored ") and str(target) in out
    for table in ("leads", "deals", "users", "audit_log"):
        sql = f"SELECT count(*), max(id) FROM {table}"
        db = Database(target)
        try:
            restored = db.query(sql)
        finally:
            db.close()
        db = Database(demo_file)
        try:
            assert db.query(sql) == restored
        finally:
            db.close()
    # a second restore into the same (now full) database is refused
    code, _, err = cli("--db", target, "restore", folder)
    _one_line_failure(code, err, "not empty")
    # and a backup into a folder that holds one already
    code, _, err = cli("--db", demo_file, "backup", folder)
    _one_line_failure(code, err, "not empty")


def test_restore_refusals_are_one_line(cli, demo_file, tmp_path):
    import json

    folder = tmp_path / "bk"
    assert cli("--db", demo_file, "backup", folder)[0] == 0
    code, _, err = cli("--db", tmp_path / "a.duckdb", "restore", tmp_path / "missing")
    _one_line_failure(code, err, "does not exist")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["schema_version"] = "999_later"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = cli("--db", tmp_path / "b.duckdb", "restore", folder)
    _one_line_failure(code, err, "newer version of the CRM", "upgrade first")
    (folder / "leads.parquet").write_bytes(b"broken")
    manifest["schema_version"] = _count(demo_file, "SELECT max(version) FROM schema_migrations")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = cli("--db", tmp_path / "c.duckdb", "restore", folder)
    _one_line_failure(code, err, "damaged", "leads.parquet")


def test_import_mapping_by_file_or_by_saved_name(cli, tmp_path):
    import json

    from crm import importer

    db_file = tmp_path / "crm.duckdb"
    data = tmp_path / "leads.csv"
    data.write_text("Pavardė,Įmonė\nJonaitis,UAB Rytas\n", encoding="utf-8")
    db = Database(db_file)
    try:
        importer.save_mapping(db, auth.SYSTEM, "leads", "Lithuanian export",
                              {"Pavardė": "last_name", "Įmonė": "company"})
    finally:
        db.close()
    code, out, err = cli("--db", db_file, "import", "leads", data, "--mapping",
                         "lithuanian EXPORT", "--dry-run")
    assert code == 0, err
    assert "Pavardė -> last_name, Įmonė -> company" in out and "Would: create 1" in out
    saved = tmp_path / "map.json"
    saved.write_text(json.dumps({"Pavardė": "last_name"}), encoding="utf-8")
    code, out, err = cli("--db", db_file, "import", "leads", data, "--mapping", saved)
    assert code == 0, err and "import #1" in out
    code, out, err = cli("--db", db_file, "import", "leads", data, "--mapping", "Nope",
                         "--dry-run")
    _one_line_failure(code, err, "no saved mapping", "Lithuanian export")


def test_import_tasks_and_activities_linked_by_name(cli, tmp_path):
    from crm import customers

    db_file = tmp_path / "crm.duckdb"
    db = Database(db_file)
    try:
        customers.create_customer(db, auth.SYSTEM, {"name": "Acme"})
    finally:
        db.close()
    tasks = tmp_path / "tasks.csv"
    tasks.write_text("Task,Due date,Customer\nSend the offer,2026-06-01,acme\n", encoding="utf-8")
    code, out, err = cli("--db", db_file, "import", "tasks", tasks)
    assert code == 0, err
    assert "create 1" in out and "import #1" in out
    calls = tmp_path / "calls.csv"
    calls.write_text("Type,Subject,Date,Customer\ncall,Hello,2025-01-02,Nobody\n",
                     encoding="utf-8")
    code, out, err = cli("--db", db_file, "import", "activities", calls)
    _one_line_failure(code, err, "Nothing to import")
    assert "Nobody" in out
    assert _count(db_file, "SELECT count(*) FROM tasks WHERE customer_id IS NOT NULL") == 1
