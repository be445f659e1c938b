import gc
import itertools
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("CRM_BCRYPT_ROUNDS", "4")  # cheap hashes: tests sign in many times

import pytest  # noqa: E402

from crm import auth  # noqa: E402
from crm.db import Database  # noqa: E402

PASSWORD = "correct horse 42"

# Test files whose `db` tests also run on PostgreSQL (a throwaway cluster per test session, a
# fresh database per test). The others run on DuckDB only until they pass there too.
POSTGRES_READY = {
    "test_db_engines.py",
    "test_write_conflicts.py",
    "test_records.py",
    "test_pipeline.py",
    "test_importer.py",
    "test_importer_agreement.py",
    "test_auth.py",
    "test_analytics.py",
    "test_service.py",
    "test_products.py",
    "test_market.py",
    "test_satisfaction.py",
    "test_defects.py",
    "test_demo.py",
    "test_demo_service.py",
    "test_export.py",
    "test_i18n.py",
    "test_perf_queries.py",
    "test_query_rewrites.py",
    "test_dashboard_passes.py",
    "test_stage_spans.py",
    "test_stage_reach.py",
    "test_cli_kpis.py",
    "test_cli.py",
    # page tests (AppTest): the pages open the test's database from CRM_DB
    "test_pages.py",
    "test_sales_pages.py",
    "test_pipeline_pages.py",
    "test_service_pages.py",
    "test_market_pages.py",
    "test_users_page.py",
    "test_import_page.py",
    "test_defect_pages.py",
    "test_i18n_pages.py",
    # the low-code studio (issue 12)
    "test_custom_fields.py",
    "test_settings_file.py",
    "test_rules.py",
    "test_views.py",
    "test_studio_pages.py",
    "test_rules_pages.py",
    # browser tests whose server opens the test's database (the board's demo app has none)
    "test_e2e.py",
    "test_kanban_e2e.py",
    "test_e2e_studio.py",
    "test_e2e_import.py",
    "test_e2e_languages.py",
    "test_e2e_defects.py",
    "test_e2e_sales.py",
    "test_e2e_market.py",
    "test_e2e_satisfaction.py",
    "test_views_e2e.py",
}


def pytest_generate_tests(metafunc):
    if "engine" in metafunc.fixturenames:
        engines = ["duckdb"]
        if metafunc.definition.get_closest_marker("duckdb_only"):  # about the file itself
            metafunc.parametrize("engine", engines, scope="module")
            return
        if metafunc.definition.get_closest_marker("postgresql_only"):  # e.g. two servers
            metafunc.parametrize("engine", ["postgresql"], scope="module")
            return
        # CRM_PG_ALL=1: every file on both engines, to see how far the rest has come
        if Path(str(metafunc.definition.fspath)).name in POSTGRES_READY or \
                os.environ.get("CRM_PG_ALL") == "1":
            engines.append("postgresql")
        # module scope: a module's shared fixtures (new_database) follow the engine too
        metafunc.parametrize("engine", engines, scope="module")


def pytest_collection_modifyitems(config, items):
    """Browser tests (or parameters) marked e2e_duckdb_only are left out on PostgreSQL: a
    browser test takes tens of seconds, and the PostgreSQL half of each browser file runs its
    main scenarios only (CRM_PG_ALL=1 runs them all)."""
    if os.environ.get("CRM_PG_ALL") == "1":
        return
    kept, left = [], []
    for item in items:
        on_pg = getattr(item, "callspec", None) and item.callspec.params.get(
            "engine") == "postgresql"
        (left if on_pg and item.get_closest_marker("e2e_duckdb_only") else kept).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


@pytest.fixture(scope="session")
def pg_cluster():
    """The session's PostgreSQL cluster, with a migrated template database. Skips without
    PostgreSQL installed, unless CRM_PG=1 (CI), where that is a failure."""
    from tests.pg import Cluster, binaries

    bin_dir = binaries()
    if bin_dir is None:
        message = ("PostgreSQL is not installed (no initdb/pg_ctl on PATH or in"
                   " /usr/lib/postgresql/*/bin): apt-get install postgresql")
        if os.environ.get("CRM_PG") == "1":
            pytest.fail(message + " (CRM_PG=1 requires it)")
        pytest.skip(message)
    cluster = Cluster(bin_dir).start()
    try:
        Database(cluster.url("crm_template")
                 if _create_database(cluster, "crm_template") else None).close()
        yield cluster
    finally:
        cluster.stop()


_numbers = itertools.count(1)


def _create_database(cluster, name: str, template: str | None = None) -> str:
    import psycopg

    with psycopg.connect(cluster.url(), autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    return name


def _drop_database(cluster, name: str) -> None:
    import psycopg

    with psycopg.connect(cluster.url(), autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db_url(request, engine):
    """Where a test's fresh database lives: a DuckDB file, or a PostgreSQL URL of a new
    database made from the migrated template."""
    if engine == "duckdb":
        yield str(request.getfixturevalue("tmp_path") / "crm.duckdb")
        return
    cluster = request.getfixturevalue("pg_cluster")
    name = _create_database(cluster, f"crm_test_{os.getpid()}_{next(_numbers)}", "crm_template")
    yield cluster.url(name)
    _drop_database(cluster, name)


@pytest.fixture(scope="session")
def duckdb_template(tmp_path_factory):
    """A migrated DuckDB file, made once per test process: a test's fresh DuckDB database is a
    copy of it (a file copy takes ~0.05 s; running the migrations into a new file, ~1 s)."""
    path = tmp_path_factory.mktemp("template") / "crm.duckdb"
    Database(path).close()  # closing checkpoints it: a copy of the file alone is complete
    return path


def fresh_duckdb(request, path) -> str:
    """A new migrated DuckDB database at path: a copy of the session's template."""
    shutil.copyfile(request.getfixturevalue("duckdb_template"), path)
    return str(path)


@pytest.fixture(scope="module")
def new_database(request, engine, tmp_path_factory):
    """For a module's shared databases (e.g. one demo load for many read-only tests): a
    function that gives the location of a new, migrated database on the module's engine."""
    made = []

    def make() -> str:
        if engine == "duckdb":
            return fresh_duckdb(request, tmp_path_factory.mktemp("db") / "crm.duckdb")
        cluster = request.getfixturevalue("pg_cluster")
        name = _create_database(cluster, f"crm_mod_{os.getpid()}_{next(_numbers)}",
                                "crm_template")
        made.append((cluster, name))
        return cluster.url(name)

    yield make
    for cluster, name in made:
        _drop_database(cluster, name)


@pytest.fixture
def db(request, db_url, engine):
    if engine == "duckdb":  # db_url itself stays a new file (e.g. for `crm init`)
        fresh_duckdb(request, db_url)
    database = Database(db_url)
    yield database
    database.close()


@pytest.fixture
def team(db):
    """An admin, a manager, two reps and a viewer, as crm.auth.User objects by username."""
    auth.create_user(db, None, "admin", "Ada Admin", "ada@example.com", PASSWORD, "admin")
    admin = auth.get_user(db, "admin")
    for username, name, role in [("maria", "Maria Manager", "manager"),
                                 ("reza", "Reza Rahimi", "rep"),
                                 ("sam", "Sam Seller", "rep"),
                                 ("vic", "Vic Viewer", "viewer")]:
        auth.create_user(db, admin, username, name, None, PASSWORD, role)
    return {u: auth.get_user(db, u) for u in ("admin", "maria", "reza", "sam", "vic")}


@pytest.fixture
def app_env(db, team, monkeypatch):
    """The team's database for AppTest page runs (which read CRM_DB)."""
    monkeypatch.setenv("CRM_DB", str(db.path))
    monkeypatch.setenv("CRM_COOKIE_KEY", "test-cookie-key-long-enough-for-hs256-signing")
    return db


def element_strings(at, names: tuple[str, ...], skip: tuple[str, ...] = ("Text", "Code"),
                    radio_options: bool = False) -> list[tuple[str, str]]:
    """(text, "Element.field") for every string field called one of names in an AppTest
    element tree; elements of the skip types are left out (shown as typed, or style)."""
    found = []

    def walk(message):
        if message.DESCRIPTOR.name in skip:
            return
        for desc, value in message.ListFields():
            repeated = not isinstance(value, (str, bytes)) and not hasattr(value, "ListFields") \
                and hasattr(value, "__len__")
            for item in value if repeated else [value]:
                if desc.message_type is not None:
                    walk(item)
                elif isinstance(item, str) and (desc.name in names or (
                        radio_options and desc.name == "options"
                        and message.DESCRIPTOR.name == "Radio")):
                    found.append((item, f"{message.DESCRIPTOR.name}.{desc.name}"))

    stack = [at._tree]
    while stack:
        node = stack.pop()
        if getattr(node, "proto", None) is not None:
            walk(node.proto)
        stack.extend(getattr(node, "children", {}).values())
    return found


# --- the importer's tests: two databases that start the same (tests/importer_dbs.py) ------

@pytest.fixture
def two_dbs(new_database):
    """Two new databases on the file's engine, each with the team: the row path's and the
    set-based path's."""
    from tests.importer_dbs import make_db

    made = [make_db(new_database()), make_db(new_database())]
    yield made
    for db, _team in made:
        db.close()


@pytest.fixture
def two(two_dbs):
    """two_dbs, with the automation rules' cache dropped after the test."""
    from crm import rules

    yield two_dbs
    rules.invalidate()


@pytest.fixture
def linked(two, request):
    """two, each seeded with tests/test_importer_refs.py's records and then given two custom
    link fields (importer_dbs.add_links) on the test module's LINKED table (leads unless it
    names another)."""
    from tests.importer_dbs import add_links
    from tests.test_importer_refs import seed

    for db, team in two:
        seed(db, team)
    for db, team in two:  # (a custom field is every database's entity's once added)
        add_links(db, team, getattr(request.module, "LINKED", "leads"))
    return two


@pytest.fixture(autouse=True)
def import_temp_files(request, monkeypatch):
    """The import tests' temporary files (the importer's crm-import-*.csv copies, and those of
    child processes they start) go to a folder of the test's own, not the system's, where a
    test must leave none of ours behind (weakref.finalize removes a copy with its Source)."""
    if not request.module.__name__.rsplit(".", 1)[-1].startswith("test_import"):
        yield
        return
    if getattr(getattr(request.node, "callspec", None), "params", {}).get(
            "engine") == "postgresql":
        request.getfixturevalue("pg_cluster")  # its data folder in the system's, as before
    folder = request.getfixturevalue("tmp_path") / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    yield folder
    gc.collect()
    left = sorted(p.name for p in folder.iterdir() if p.name.startswith("crm-"))
    report = getattr(request.node, "report_call", None)
    if report is not None and report.passed:  # (a failure's traceback keeps its plans)
        assert not left, f"left in the temporary folder: {left}"


def pytest_sessionfinish(session):
    import sys

    browser = sys.modules.get("tests.browser")
    if browser is not None:  # the process's shared Chromium, if a browser test started it
        browser.shutdown()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when == "call":
        item.report_call = outcome.get_result()  # for import_temp_files
