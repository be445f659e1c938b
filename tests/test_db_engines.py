"""The data layer on both engines: parameter translation, the cursor surface the domain code
uses, migrations (once, in order, per-engine variants, under a lock), and one-line failures
for a database that cannot be opened."""
import threading
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from crm import dialect
from crm.db import Database, DatabaseUnavailable, migration_files

ROOT = Path(__file__).resolve().parent.parent


# --- parameter style -------------------------------------------------------------------

@pytest.mark.parametrize("sql, expected", [
    ("SELECT * FROM t WHERE a = $a AND b_2 = $b_2",
     "SELECT * FROM t WHERE a = %(a)s AND b_2 = %(b_2)s"),
    # $ and % inside literals are text; every % doubled once parameters are given
    ("SELECT '$a costs 5%', $a", "SELECT '$a costs 5%%', %(a)s"),
    ("SELECT x FROM t WHERE n LIKE 'a%' AND m ILIKE $q ESCAPE '\\'",
     "SELECT x FROM t WHERE n LIKE 'a%%' AND m ILIKE %(q)s ESCAPE '\\'"),
    ("SELECT 'it''s $x' || $y", "SELECT 'it''s $x' || %(y)s"),
    ('SELECT "$odd col" FROM t WHERE id = $id', 'SELECT "$odd col" FROM t WHERE id = %(id)s'),
    ("SELECT $v::INTEGER, 7 % 3", "SELECT %(v)s::INTEGER, 7 %% 3"),
    ("SELECT 1 -- $not a parameter 5%\n, $p", "SELECT 1 -- $not a parameter 5%%\n, %(p)s"),
    ("SELECT /* $c */ $d", "SELECT /* $c */ %(d)s"),
])
def test_dollar_names_become_psycopg_parameters(sql, expected):
    assert dialect.to_psycopg(sql) == (expected, True)


def test_sql_without_parameters_is_sent_as_written():
    sql = "SELECT 'a%' LIKE 'a%%', 1::BIGINT, '$x'"
    assert dialect.to_psycopg(sql) == (sql, False)


def test_a_password_never_shows_in_messages():
    assert dialect.shown_url("postgresql://crm:s3cret@db:5432/crm") == \
        "postgresql://crm:***@db:5432/crm"
    assert dialect.shown_url("postgresql://crm@db/crm") == "postgresql://crm@db/crm"


def test_each_engine_takes_its_own_variant_of_a_migration():
    duck = dict(migration_files(dialect.DUCKDB))
    pg = dict(migration_files(dialect.POSTGRESQL))
    assert "000_functions" in pg and "000_functions" not in duck
    assert pg["000_functions"].name == "000_functions.postgresql.sql"
    assert set(duck) <= set(pg) and duck["001_foundation"] == pg["001_foundation"]
    assert list(duck) == sorted(duck)


# --- both engines ----------------------------------------------------------------------

def test_migrations_are_applied_once(db):
    versions = [r["version"] for r in db.query("SELECT version FROM schema_migrations")]
    assert len(versions) == len(set(versions))
    assert set(versions) == {v for v, _f in migration_files(db.engine)}
    again = Database(db.path)
    try:
        assert again.migrated == []
    finally:
        again.close()


def test_the_cursor_behaves_the_same_on_both_engines(db):
    with db.transaction() as cur:
        cur.execute("CREATE TABLE t (id BIGINT, name VARCHAR, price DECIMAL(14, 2), day DATE)")
        # a write answers with its row count, as DuckDB does
        assert cur.execute("INSERT INTO t VALUES (1, 'a%', 2.50, DATE '2024-01-02'),"
                           " (2, '$x', NULL, NULL)").fetchall() == [(2,)]
        assert cur.execute("UPDATE t SET name = name || '!' WHERE id = $id",
                           {"id": 1}).fetchone() == (1,)
        assert [d[0] for d in cur.execute("SELECT id, name FROM t").description] == \
            ["id", "name"]
    assert db.query("SELECT * FROM t WHERE name LIKE 'a%' ORDER BY id") == [
        {"id": 1, "name": "a%!", "price": Decimal("2.50"), "day": date(2024, 1, 2)}]
    assert db.scalar("SELECT name FROM t WHERE id = ANY($ids) AND name <> '%'",
                     {"ids": [2, 3]}) == "$x"
    assert db.scalar("SELECT sum(id) FROM t") == 3  # an int on both engines
    frame = db.frame("SELECT id, name, price, day FROM t ORDER BY id")
    assert str(frame["price"].dtype) == "float64"
    assert str(frame["day"].dtype).startswith("datetime64")
    assert frame["price"].isna().tolist() == [False, True]


def test_a_registered_frame_reads_like_a_table(db):
    frame = pd.DataFrame({"id": [1, 2], "name": ["x", None], "ok": [True, False],
                          "seen_at": [datetime(2024, 5, 1, 9), datetime(2024, 5, 2, 10)],
                          "amount": [Decimal("1.25"), None]})
    with db.transaction() as cur:
        cur.register("crm_test_frame", frame)
        try:
            got = cur.execute("SELECT id, name, ok, seen_at, CAST(amount AS DECIMAL(14, 2))"
                              " FROM crm_test_frame ORDER BY id").fetchall()
        finally:
            cur.unregister("crm_test_frame")
    assert got == [(1, "x", True, datetime(2024, 5, 1, 9), Decimal("1.25")),
                   (2, None, False, datetime(2024, 5, 2, 10), None)]


def test_a_large_frame_registers_as_exactly_as_a_small_one(db, monkeypatch):
    """PostgreSQL writes frames of CSV_COPY_ROWS rows and more as CSV text: empty strings stay
    empty, NULLs of every dtype stay NULL, quotes, commas, newlines and the NULL marker's
    look-alikes survive; a frame that CSV cannot carry (bytes) takes the row path."""
    frame = pd.DataFrame({
        "id": [1, 2, 3, 4],
        "name": ["", None, 'a "quoted", comma\nline', "\\N x"],
        "ok": [True, False, True, False],
        "maybe": pd.array([True, None, False, None], dtype="boolean"),
        "n": pd.array([1, None, -3, 2**40], dtype="Int64"),
        "x": [0.1, float("nan"), 1e-300, 2.0000000001],
        "seen_at": pd.to_datetime(["2024-05-01 09:00:00.123456", None, "2024-01-01", None],
                             format="ISO8601"),
        "born_on": [date(2024, 2, 29), None, date(1999, 12, 31), None],
        "amount": [Decimal("1.25"), None, Decimal("-0.01"), Decimal("12345678.90")],
        "kind": pd.Categorical(["a", None, "b", "a"])})
    sql = ("SELECT id, name, ok, maybe, n, x, seen_at, born_on, CAST(amount AS DECIMAL(14, 2)), kind"
           " FROM crm_test_frame ORDER BY id")

    def read(rows_from: int, data=frame):
        monkeypatch.setattr(dialect, "CSV_COPY_ROWS", rows_from)
        with db.transaction() as cur:
            cur.register("crm_test_frame", data)
            try:
                return cur.execute(sql).fetchall()
            finally:
                cur.unregister("crm_test_frame")

    by_rows = read(10**9)
    assert by_rows[0][1] == "" and by_rows[1][1:6] == (None, False, None, None, None)
    assert dialect._arrow_table(frame) is not None  # Arrow writes this one's CSV
    assert read(1) == by_rows
    # mixed objects Arrow refuses: pandas writes the CSV
    mixed = frame.assign(name=["", None, 7, "\\N x"])
    assert dialect._arrow_table(mixed) is None
    assert [r[1] for r in read(1, mixed)] == ["", None, "7", "\\N x"]
    # a text cell equal to the NULL marker: CSV would read it as NULL, so rows carry it
    marked = frame.assign(name=["\\N", None, "", "x"])
    assert read(1, marked)[0][1] == "\\N"

def test_a_failed_transaction_leaves_nothing(db):
    with pytest.raises(RuntimeError):
        with db.transaction() as cur:
            cur.execute("INSERT INTO settings (key, value) VALUES ('k', 'v')")
            raise RuntimeError("stop")
    assert db.scalar("SELECT count(*) FROM settings WHERE key = 'k'") == 0


# --- PostgreSQL only -------------------------------------------------------------------

@pytest.mark.postgresql_only
def test_every_connection_runs_without_jit(db):
    """JIT compile time outweighed what it won on the pages' big queries (crm/db.py)."""
    cursors = [db.cursor() for _ in range(2)]  # two connections of the pool
    try:
        assert [c.execute("SHOW jit").fetchone()[0] for c in cursors] == ["off", "off"]
    finally:
        for cur in cursors:
            cur.close()
    with db.transaction() as cur:
        assert cur.execute("SHOW jit").fetchone()[0] == "off"


def _empty_database(pg_cluster, name: str) -> str:
    import psycopg

    with psycopg.connect(pg_cluster.url(), autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        con.execute(f"CREATE DATABASE {name}")
    return pg_cluster.url(name)


def test_servers_starting_together_migrate_once(pg_cluster):
    url = _empty_database(pg_cluster, "crm_race")
    opened, errors = [], []

    def start():
        try:
            opened.append(Database(url, pool_size=3))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        applied = sorted(v for d in opened for v in d.migrated)
        assert applied == [v for v, _f in migration_files(dialect.POSTGRESQL)]
        assert opened[0].scalar("SELECT count(*) FROM pipelines") == 1  # seeded once
    finally:
        for d in opened:
            d.close()


def _unreachable(pg_cluster):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/crm"


def _wrong_password(pg_cluster):
    import psycopg

    with psycopg.connect(pg_cluster.url(), autocommit=True) as con:
        con.execute("DROP ROLE IF EXISTS crm_pw")
        con.execute("CREATE ROLE crm_pw LOGIN PASSWORD 'right-one'")
    pg_cluster.allow_password_login("crm_pw")
    return pg_cluster.url("postgres", "crm_pw", "wrong-one")


CASES = {
    "down": (_unreachable, "Connection refused"),
    "password": (_wrong_password, "password authentication failed"),
    "bad url": (lambda c: "postgresql://postgres@127.0.0.1:notaport/crm", "notaport"),
    "no database": (lambda c: c.url("no_such_db"), 'database "no_such_db" does not exist'),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_unopenable_database_is_one_line(pg_cluster, case):
    make, reason = CASES[case]
    url = make(pg_cluster)
    with pytest.raises(DatabaseUnavailable) as exc:
        Database(url)
    message = str(exc.value)
    assert "\n" not in message and reason in message
    assert message.startswith(f"cannot open {dialect.shown_url(url)}")
    assert "wrong-one" not in message


@pytest.mark.parametrize("case", list(CASES))
def test_the_cli_says_why_in_one_line(pg_cluster, case, capsys):
    from crm.__main__ import main

    make, reason = CASES[case]
    code = main(["--db", make(pg_cluster), "users", "list"])
    out, err = capsys.readouterr()
    assert code != 0 and out == ""
    assert err.startswith("error: cannot open ") and err.strip().count("\n") == 0, err
    assert reason in err and "Traceback" not in err and "wrong-one" not in err


@pytest.mark.parametrize("case", ["down", "password"])
def test_the_page_says_why_instead_of_a_traceback(pg_cluster, case, monkeypatch):
    from streamlit.testing.v1 import AppTest

    make, reason = CASES[case]
    monkeypatch.setenv("CRM_DB", make(pg_cluster))
    monkeypatch.setenv("CRM_COOKIE_KEY", "test-cookie-key-long-enough-for-hs256-signing")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "The CRM cannot open its data" in errors[0]
    assert reason in errors[0] and "wrong-one" not in errors[0]


def test_init_on_an_empty_postgresql_database_creates_it(pg_cluster, capsys, monkeypatch):
    from crm.__main__ import main

    monkeypatch.delenv("CRM_DB", raising=False)
    url = _empty_database(pg_cluster, "crm_init")
    assert main(["--db", url, "init"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.startswith(f"Created {url} (schema ") and "users add" in out
    assert main(["init", "--db", url]) == 0
    assert capsys.readouterr().out.startswith(f"Opened {url}")


def _contents(db, tables) -> dict:
    return {t: db.query(f"SELECT * FROM {t} ORDER BY 1") for t in tables}


def test_a_backup_moves_a_crm_between_engines_and_back(pg_cluster, tmp_path):
    """DuckDB -> backup -> PostgreSQL -> backup -> DuckDB: every table, row and sequence the
    same at each step (the foundation of `crm copy`)."""
    from crm import backup, demo

    source = Database(tmp_path / "source.duckdb")
    middle = back = None
    try:
        demo.load_demo(source, "small", password="Secret12345")
        first = backup.backup(source, tmp_path / "from-duckdb")
        middle = Database(_empty_database(pg_cluster, "crm_moved"))
        backup.restore(middle, tmp_path / "from-duckdb")
        second = backup.backup(middle, tmp_path / "from-postgresql")
        back = Database(tmp_path / "back.duckdb")
        backup.restore(back, tmp_path / "from-postgresql")
        tables = sorted(set(first["tables"]) - {"schema_migrations"})
        assert {t: first["tables"][t]["rows"] for t in tables} == \
            {t: second["tables"][t]["rows"] for t in tables}
        assert first["sequences"] == second["sequences"]
        expected = _contents(source, tables)
        assert sum(len(rows) for rows in expected.values()) > 1000
        assert _contents(middle, tables) == expected
        assert _contents(back, tables) == expected
        # PostgreSQL keeps its own migration; new ids continue after the restored ones
        assert middle.scalar("SELECT count(*) FROM schema_migrations"
                             " WHERE version = '000_functions'") == 1
        assert middle.scalar("SELECT nextval('leads_id_seq')") == first["sequences"]["leads_id_seq"]
    finally:
        for d in (source, middle, back):
            if d is not None:
                d.close()


def test_crm_copy_moves_a_crm_to_postgresql_and_back(pg_cluster, tmp_path, capsys,
                                                      monkeypatch):
    from crm import demo
    from crm.__main__ import main

    monkeypatch.delenv("CRM_DB", raising=False)
    local = tmp_path / "local.duckdb"
    db = Database(local)
    try:
        demo.load_demo(db, "small", password="Secret12345")
        leads = db.scalar("SELECT count(*) FROM leads")
    finally:
        db.close()
    url = _empty_database(pg_cluster, "crm_copy")
    assert main(["--db", str(local), "copy", "--to", url]) == 0
    out, err = capsys.readouterr()
    assert "writing [" in err and "Traceback" not in err
    assert "  leads" in out and f"{leads:,}  ok" in out
    assert out.strip().splitlines()[-1].startswith("Copied ") and url in out
    # into a database that holds data: refused in one line, nothing written
    code = main(["--db", str(local), "copy", "--to", url])
    out, err = capsys.readouterr()
    assert code != 0 and err.strip().splitlines()[-1].startswith("error: ")
    assert "not empty" in err
    back = tmp_path / "back.duckdb"
    assert main(["copy", "--from", url, "--db", str(back)]) == 0
    capsys.readouterr()
    copied = Database(back)
    try:
        assert copied.scalar("SELECT count(*) FROM leads") == leads
    finally:
        copied.close()


# --- two servers on one PostgreSQL database --------------------------------------------

@pytest.fixture
def two_servers(db, team):
    """A second Database on the test's PostgreSQL database: its own pool and write lock, as a
    second app server has (DuckDB allows one process per file: PostgreSQL only)."""
    other = Database(db.path)
    yield db, other
    other.close()


def _race(work, times: int) -> list[Exception]:
    errors: list[Exception] = []

    def run(*args):
        try:
            work(*args)
        except Exception as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(times)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.postgresql_only
def test_moves_from_two_servers_keep_a_true_stage_history(two_servers, team):
    from crm import deals, pipelines

    first, second = two_servers
    stages = [s["id"] for s in pipelines.stages_of(first, pipelines.default_pipeline_id(first))
              if s["kind"] == "open"]
    deal_id = deals.create_deal(first, team["reza"], {"title": "Contested",
                                                      "stage_id": stages[0]})

    def mover(i):
        server = (first, second)[i % 2]
        for n in range(12):
            deals.move_deal(server, team["reza"], deal_id, stages[(i + n) % len(stages)])

    assert _race(mover, 4) == []
    chain = first.query("SELECT from_stage_id, to_stage_id FROM deal_stage_history"
                        " WHERE deal_id = $d ORDER BY id", {"d": deal_id})
    # each move starts where the one before it ended: no move read a stale stage
    assert all(b["from_stage_id"] == a["to_stage_id"] for a, b in zip(chain, chain[1:]))
    deal = first.one("SELECT stage_id, version FROM deals WHERE id = $d", {"d": deal_id})
    assert deal["stage_id"] == chain[-1]["to_stage_id"]
    assert deal["version"] == len(chain)  # one version per move, none lost


@pytest.mark.postgresql_only
def test_edits_from_two_servers_of_one_version_one_wins(two_servers, team):
    from crm import leads, records

    first, second = two_servers
    lead_id = leads.create_lead(first, team["reza"], {"last_name": "Shared"})
    version = records.get(first, team["reza"], leads.LEADS, lead_id)["version"]
    outcomes = []

    def editor(i):
        try:
            records.update(((first, second)[i % 2]), team["reza"], leads.LEADS, lead_id,
                           {"company": f"Company {i}"}, version)
            outcomes.append(("saved", i))
        except records.ConflictError:
            outcomes.append(("conflict", i))

    assert _race(editor, 6) == []
    saved = [i for kind, i in outcomes if kind == "saved"]
    assert len(saved) == 1 and len(outcomes) == 6
    lead = records.get(first, team["reza"], leads.LEADS, lead_id)
    assert lead["version"] == version + 1 and lead["company"] == f"Company {saved[0]}"


@pytest.mark.postgresql_only
def test_servers_on_one_database_share_the_cookie_key(two_servers, monkeypatch):
    """Without CRM_COOKIE_KEY, the key that signs sign-in cookies is made once and kept in the
    database: servers that start together and ask at once get the same one."""
    from crm import config, settings

    monkeypatch.delenv("CRM_COOKIE_KEY", raising=False)
    first, second = two_servers
    keys = []
    assert _race(lambda i: keys.append(config.cookie_key(
        ROOT / "no-such-folder" / "crm.duckdb", None,
        lambda: settings.shared_cookie_key((first, second)[i % 2]))), 6) == []
    assert len(set(keys)) == 1 and len(keys[0]) >= 32
    assert first.scalar("SELECT count(*) FROM settings WHERE key = 'cookie_key'") == 1
    assert not (ROOT / "no-such-folder").exists()  # no key file beside a PostgreSQL database
    later = Database(first.path)  # a server that starts later
    try:
        assert settings.shared_cookie_key(later) == keys[0]
    finally:
        later.close()
    monkeypatch.setenv("CRM_COOKIE_KEY", "from-env")  # still the override
    assert config.cookie_key(ROOT / "crm.duckdb", None,
                             lambda: settings.shared_cookie_key(first)) == "from-env"


def test_a_server_that_goes_down_is_one_line_on_the_page(monkeypatch):
    """Its own cluster, stopped halfway: the open app then says why on the next run."""
    from streamlit.testing.v1 import AppTest

    from tests.pg import Cluster, binaries

    if binaries() is None:
        pytest.skip("PostgreSQL is not installed")  # pg_cluster says so, or fails under CRM_PG=1
    cluster = Cluster(binaries()).start()
    try:
        url = _empty_database(cluster, "crm_down")
        monkeypatch.setenv("CRM_DB", url)
        monkeypatch.setenv("CRM_COOKIE_KEY", "test-cookie-key-long-enough-for-hs256-signing")
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        assert not at.exception and not at.error  # the first-admin screen
        db = Database(url)
        db.check()
        cluster._run(cluster.bin / "pg_ctl", "-D", cluster.data, "-m", "immediate", "-w",
                     "stop")
        with pytest.raises(DatabaseUnavailable, match="Connection refused"):
            db.check(timeout=1)
        db.close()
        at.run()
        assert not at.exception
        assert [e.value for e in at.error] == [
            f"The CRM cannot open its data: cannot reach {url}: Connection refused (is the"
            " server running on that host and accepting TCP/IP connections?)."]
    finally:
        cluster.stop()


def test_a_short_load_loses_no_write(db_url):
    """tests/load.py briefly: 4 writers (processes on PostgreSQL, threads on DuckDB) for 3 s
    each create, save a shared lead and move a shared deal: no save or move is lost."""
    from tests import load

    report = load.run(db_url, writers=4, seconds=3)
    assert report["creates"] > 0 and report["saves"] > 0 and report["moves"] > 0
    assert (report["lost_creates"], report["lost_saves"], report["lost_moves"],
            report["broken_history"]) == (0, 0, 0, 0)
    assert report["seconds"] >= 3  # the writers' own window, not their start-up
