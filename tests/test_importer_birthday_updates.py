"""Customer updates and upserts bringing a birthday without the kind, written set-based
(crm/importer_kept.py): the row path's dry run keeps the file's birthday and update_many keeps
it at write time only for individuals (by the record's kind), a new record of an upsert by the
kind's default; the same customers, versions, audit rows, import records, rejected rows and
undo either way, compared on two databases that start the same."""
from datetime import date, timedelta

import pytest

from crm import customers, importer
from tests.test_importer_complaint_updates import reports
from tests.test_importer_ref_updates import compare_entity

FUTURE = (date.today() + timedelta(days=40)).isoformat()


def seed_customers(db, team) -> None:
    for i in range(40):
        user = team["reza" if i % 2 else "admin"]
        individual = i % 3 != 0
        customers.create_customer(db, user, {
            "name": f"P{i}" if i % 7 else f"مشتری {i}", "email": f"p{i}@example.com",
            "kind": "individual" if individual else "company", "owner_id": user.id,
            "birthday": "1980-01-01" if individual and i % 4 else None})
    with db.transaction() as cur:  # a company that kept a birthday from before (imported)
        cur.execute("UPDATE customers SET birthday = DATE '1970-01-01' WHERE email ="
                    " 'p3@example.com'")


def birthday_file(future: bool = False) -> str:
    lines = ["Email,Birthday,Phone"]
    birthdays = ["1990-05-01", "", "31.02.1990", "1360/05/12", "12.03.1985", "1980-01-01",
                 "not a date"]
    for i in range(40):
        birthday = birthdays[i % 7]
        if future and i == 5:  # an individual's birthday in the future: refused at the write
            birthday = FUTURE
        if i == 6:  # a company's, in the future: dropped, not refused
            birthday = FUTURE
        phone = ["+1 555 0100", "", "call me"][i % 3 if i % 5 == 1 else 1]
        lines.append(f"p{i}@example.com,{birthday},{phone}")
    lines.append("new@example.com,1990-01-01,")  # an upsert's: no name, rejected
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mode", ["update", "upsert"])
@pytest.mark.parametrize("user", ["admin", "reza"])
def test_a_birthday_without_the_kind_is_written_set_based_as_the_row_path_writes_it(
        two, mode, user, monkeypatch):
    made = reports(monkeypatch)
    final = compare_entity(two, customers.CUSTOMERS, seed_customers, birthday_file(), mode,
                           user, "email", "email", monkeypatch)
    assert len(made) == 2 and made[1] == made[0] and b"not a date" in made[1]
    assert final[3]["undone"] == final[0]["update"] + final[0]["create"]
    stored = {r["key"]: r for r in final[2]["customers"]}
    if user == "admin":
        assert stored["p6@example.com"]["birthday"] is None  # a company's: dropped
        assert stored["p3@example.com"]["birthday"] is None  # the old one with it
        assert stored["p1@example.com"]["birthday"] is None  # an empty cell empties it
        assert stored["p5@example.com"]["birthday"] == date(1980, 1, 1)
        assert stored["p4@example.com"]["birthday"] == date(1985, 3, 12)


def test_an_upsert_creates_new_customers_without_their_birthday_alike(two, monkeypatch):
    rows = birthday_file().splitlines()[:-1]  # the file, a name to each row
    text = "\n".join([rows[0] + ",Name"] + [f"{r},N{i}" for i, r in enumerate(rows[1:])] + [
        f"new{i}@example.com,1990-01-01,,New {i}" for i in range(3)]) + "\n"
    final = compare_entity(two, customers.CUSTOMERS, seed_customers, text, "upsert", "admin",
                           "email", "email", monkeypatch)
    stored = {r["key"]: r for r in final[2]["customers"]}
    assert final[0]["create"] == 3 and stored["new1@example.com"]["birthday"] is None


def test_an_individuals_birthday_in_the_future_refuses_the_import_alike(two, monkeypatch):
    compare_entity(two, customers.CUSTOMERS, seed_customers, birthday_file(True), "update",
                   "admin", "email", "email", monkeypatch, refused="cannot be in the future")


def test_a_birthday_without_the_kind_now_goes_set_based():
    assert importer._fast_refusal(customers.CUSTOMERS, {"B": "birthday", "E": "email"},
                                  "update", "email") is None
