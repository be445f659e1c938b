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
