"""Databases for the importer's tests (their fixtures, two_dbs, two and linked, are in
tests/conftest.py): the same team in each, on the test file's engine, so that one file can go
through the row path (fast=False) on the first and the set-based path (fast=True) on the
second and the results be compared."""
from crm import auth, custom_fields
from crm.db import Database
from tests.conftest import PASSWORD


def make_db(where) -> tuple[Database, dict]:
    """A new database at where (a DuckDB path or a PostgreSQL URL) with an admin, a manager,
    two reps and a viewer, as crm.auth.User objects by username."""
    db = Database(where)
    auth.create_user(db, None, "admin", "Ada Admin", "ada@example.com", PASSWORD, "admin")
    admin = auth.get_user(db, "admin")
    for username, name, role in [("maria", "Maria Manager", "manager"),
                                 ("reza", "Reza Rahimi", "rep"), ("sam", "Sam Seller", "rep"),
                                 ("vic", "Vic Viewer", "viewer")]:
        auth.create_user(db, admin, username, name, None, PASSWORD, role)
    return db, {u: auth.get_user(db, u) for u in ("admin", "maria", "reza", "sam", "vic")}


def add_links(db, team, table: str = "leads") -> None:
    """Two custom link fields on table: "Referred by" (a customer), "Main rival" (a
    competitor)."""
    admin = team["admin"]
    custom_fields.add_field(db, admin, table, {"name": "referrer", "label": "Referred by",
                                               "type": "ref", "ref_table": "customers"})
    custom_fields.add_field(db, admin, table, {"name": "rival", "label": "Main rival",
                                               "type": "ref", "ref_table": "competitors"})
