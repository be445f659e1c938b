"""Shared pieces of the browser tests: skip without Chromium (unless CRM_E2E=1, where a missing
browser is a failure), start a Streamlit server on a free port, launch headless Chromium."""
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CRM_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_chromium() -> None:
    """Call at the top of a browser test module."""
    if os.environ.get("CRM_E2E") != "1" and not (shutil.which(CHROMIUM)
                                                  or Path(CHROMIUM).exists()):
        pytest.skip("no Chromium here (CRM_E2E=1 makes this a failure)",
                    allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(script: str, env: dict | None = None):
    """Runs `streamlit run script` from the repository root; yields its URL."""
    port = free_port()
    # a file, not a pipe: nobody reads a pipe while the tests run, and a full one (64 KB of
    # log lines) blocks the server mid-run
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port)],
        cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    try:
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    proc.kill()
                    proc.wait()
                    log.seek(0)
                    raise RuntimeError("streamlit did not start: "
                                       + log.read().decode(errors="replace")) from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


_shared = None  # (playwright, browser): one headless Chromium per test process


def _browser():
    """The process's Chromium, launched at the first browser test (launching it takes seconds,
    a new context a fraction of one)."""
    global _shared
    if _shared is None or not _shared[1].is_connected():
        from playwright.sync_api import sync_playwright

        playwright = sync_playwright().start()
        _shared = (playwright, playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS))
    return _shared[1]


def shutdown() -> None:
    """Closes the process's Chromium (conftest's pytest_sessionfinish)."""
    global _shared
    if _shared is not None:
        playwright, browser = _shared
        _shared = None
        try:
            browser.close()
        finally:
            playwright.stop()


class _Browser:
    """The shared Chromium as one test sees it: every context (and page) it opens is closed when
    the test's `with chromium()` ends, so no cookie, storage or page outlives the test."""

    def __init__(self, browser):
        self._browser = browser
        self._contexts = []

    def new_context(self, **options):
        context = self._browser.new_context(**options)
        self._contexts.append(context)
        return context

    def new_page(self, **options):
        page = self._browser.new_page(**options)  # (a page in a context of its own)
        self._contexts.append(page.context)
        return page

    def __getattr__(self, name):
        return getattr(self._browser, name)

    def close(self) -> None:
        for context in self._contexts:
            context.close()  # (a no-op for one the test closed itself)
        self._contexts.clear()


@contextlib.contextmanager
def chromium():
    """A headless Chromium for one test: fresh contexts in the process's shared browser."""
    browser = _Browser(_browser())
    try:
        yield browser
    finally:
        browser.close()


@contextlib.contextmanager
def crm_server(db_file: Path, deals: list[tuple] = (), leads: list[dict] = (), env=None,
               prepare=None):
    """A server on a new database holding the admin 'admin' (password PASSWORD), the given
    leads and deals [(title, amount, stage name)] in the default pipeline, and whatever
    prepare(db, admin) adds; yields its URL."""
    from crm import auth, pipelines
    from crm import deals as deal_records
    from crm import leads as lead_records
    from crm.db import Database
    from tests.conftest import PASSWORD

    db = Database(db_file)
    auth.create_user(db, None, "admin", "Ada Admin", "ada@example.com", PASSWORD, "admin")
    admin = auth.get_user(db, "admin")
    for values in leads:
        lead_records.create_lead(db, admin, values)
    stages = {s["name"]: s["id"] for s in
              pipelines.stages_of(db, pipelines.default_pipeline_id(db))}
    for title, amount, stage in deals:
        deal_records.create_deal(db, admin, {"title": title, "amount": amount,
                                             "stage_id": stages[stage]})
    if prepare:
        prepare(db, admin)
    db.close()  # the server process needs the file lock
    with streamlit_server("app.py", {"CRM_DB": str(db_file),
                                     "CRM_COOKIE_KEY": "e2e-" + "k" * 40, **(env or {})}) as url:
        yield url


def wait_for_session_cookie(page) -> None:
    """After signing in: the cookie is written by a component once the browser has loaded
    it; a test that opens another address before that would find itself signed out."""
    page.wait_for_function("document.cookie.includes('crm_session=')", timeout=30_000)
