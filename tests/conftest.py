import os

os.environ.setdefault("CRM_BCRYPT_ROUNDS", "4")  # cheap hashes: tests sign in many times

import pytest  # noqa: E402

from crm import auth  # noqa: E402
from crm.db import Database  # noqa: E402

PASSWORD = "correct horse 42"


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / "crm.duckdb")
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
