"""The process-wide database handle, shared by every session of the server."""
from __future__ import annotations

import streamlit as st

from crm import config
from crm.db import Database, DatabaseUnavailable


@st.cache_resource(show_spinner=False)
def _open(path: str) -> Database:
    return Database(path)


def get_db() -> Database:
    try:
        db = _open(str(config.db_target()))
        db.check()  # a PostgreSQL server that went down since: the reason, not a traceback
        return db
    except DatabaseUnavailable as exc:
        st.error(f"The CRM cannot open its data: {exc}.")
        st.stop()
