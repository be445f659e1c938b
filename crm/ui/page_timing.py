"""Timing of whole page script runs (AppTest), for python -m crm bench."""
from __future__ import annotations

import contextlib
import io
import os
import statistics
import time
from pathlib import Path

from streamlit import logger as st_logger
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent.parent


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def paired_median_ms(fn, bare, repeat: int) -> tuple[float, float]:
    """Medians of fn and of bare, run alternately after one warm-up each, so that load from
    other processes on a shared machine falls on both alike."""
    fn()
    bare()
    times: tuple[list, list] = ([], [])
    for _ in range(repeat):
        for out, call in zip(times, (fn, bare)):
            start = time.perf_counter()
            call()
            out.append((time.perf_counter() - start) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def page_run_ms(path: Path, page: str, username: str, runs: int,
                state: dict | None = None) -> float:
    """Median wall time of one script run of a page, signed in as username, after a warm-up.
    state: widget values to start from (e.g. a list's filter and sort)."""
    # quiet: streamlit warns about bare mode and the authenticator prints cookie noise
    st_logger.set_log_level("error")
    with contextlib.redirect_stdout(io.StringIO()):
        return _page_run_ms(path, page, username, runs, state or {})


def _page_run_ms(path: Path, page: str, username: str, runs: int, state: dict) -> float:
    os.environ["CRM_DB"] = str(path)
    os.environ.setdefault("CRM_COOKIE_KEY", "bench-" + "k" * 40)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = username
    at.run()
    at.switch_page(page)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()  # warm-up: opens the connection, imports plotly and the pages
    if at.exception:
        raise RuntimeError(f"{page} failed: {at.exception[0].message}")
    return median_ms(at.run, runs)


def page_and_its_sql(path: Path, page: str, username: str, runs: int
                     ) -> tuple[float, list[tuple[str, dict]]]:
    """The median time of a whole script run of the page, and the SQL statements (with their
    parameters) one run issued through the Database API, to replay bare."""
    from crm.db import Database

    st_logger.set_log_level("error")
    os.environ["CRM_DB"] = str(path)
    os.environ.setdefault("CRM_COOKIE_KEY", "bench-" + "k" * 40)
    with contextlib.redirect_stdout(io.StringIO()):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.session_state["authentication_status"] = True
        at.session_state["username"] = username
        at.run()
        at.switch_page(page)
        at.run()  # warm-up: the day's snapshot, the projection's cache, imports
        if at.exception:
            raise RuntimeError(f"{page} failed: {at.exception[0].message}")
        ms = median_ms(at.run, runs)
        statements: list[tuple[str, dict]] = []
        originals = {name: getattr(Database, name) for name in ("query", "scalar", "frame")}

        def recorder(name):
            def record(self, sql, params=None):
                statements.append((sql, dict(params or {})))
                return originals[name](self, sql, params)
            return record

        for name in originals:
            setattr(Database, name, recorder(name))
        try:
            at.run()
        finally:
            for name, fn in originals.items():
                setattr(Database, name, fn)
    return ms, statements
