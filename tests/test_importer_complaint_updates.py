"""Complaint updates and upserts written set-based (crm/importer_complaints.py): the same
complaints (resolved dates the command sets or clears with the status among them), versions,
audit rows, import records, rejected rows and undo as the row path (update_complaint_in a
row), compared on two databases that start the same."""
from datetime import date

import pytest

from crm import importer, service
from tests.test_importer_ref_updates import compare_entity


def reports(monkeypatch) -> list:
    """The rejected-rows CSV of each plan the test imports (importer.execute's first call;
    a replan's own call inside it is not the test's)."""
    made, real, depth = [], importer.execute, []

    def execute(db, user, plan):
        if not depth:
            made.append(importer.rejected_csv(plan))
        depth.append(1)
        try:
            return real(db, user, plan)
        finally:
            depth.pop()

    monkeypatch.setattr(importer, "execute", execute)
    return made


SEEDED = [("open", None), ("in_progress", None), ("resolved", "2025-02-10"),
          ("rejected", "2025-02-11")]


def seed_complaints(db, team) -> None:
    ids = {r["name"]: r["id"] for r in db.query("SELECT id, name FROM customers")}
    for i in range(40):
        user = team["reza" if i % 2 else "admin"]
        customer = "Bletchley Park Trust" if i % 2 else "Analytical Engines Ltd"
        status, resolved = SEEDED[i % 4]
        service.create_complaint(db, user, {
            "subject": f"C{i}" if i % 7 else f"شکایت {i}", "customer_id": ids[customer],
            "opened_on": "2025-02-01", "status": status, "resolved_on": resolved,
            "severity": "low", "owner_id": user.id})


def complaint_file(dates: bool = True) -> str:
    """Closing without a date, reopening, closing with one, a status of another spelling,
    unknown statuses, bad dates, owners: each complaint's row its own mix."""
    lines = ["Subject,Status,Severity,Owner" + (",Resolved on" if dates else "")]
    statuses = ["resolved", "open", "", "rejected", "In progress", "bogus", "resolved"]
    for i in range(40):
        name = f"C{i}" if i % 7 else f"شکایت {i}"
        status = statuses[i % 7]
        severity = ["high", "low", "medium", "huge"][i % 4 if i % 5 == 2 else i % 3]
        owner = ["", "reza", "Nobody", "Ada Admin"][(i // 2) % 4]
        line = f"{name},{status},{severity},{owner}"
        if dates:  # a closed complaint with a date, an emptied date, a bad one
            line += "," + {3: "2025-03-01", 6: "", 5: "31.02.2025"}.get(i % 7, "")
            if status in ("open", "In progress", "resolved") and i % 7 != 6:
                line = line.rsplit(",", 1)[0] + ","  # an open one: no date (else refused)
        lines.append(line)
    more = "," if dates else ""
    lines.append("C1,,,," + more)
    lines.append("A new complaint,open,low," + more)  # an upsert's: it lacks a customer
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("dates", [True, False])
@pytest.mark.parametrize("mode", ["update", "upsert"])
@pytest.mark.parametrize("user", ["admin", "reza"])
def test_a_complaint_update_is_written_set_based_as_the_row_path_writes_it(
        two, mode, user, dates, monkeypatch):
    rows = []
    real = importer.write_row
    monkeypatch.setattr(importer, "write_row", lambda *a, **k: rows.append(a) or real(*a, **k))
    made = reports(monkeypatch)
    final = compare_entity(two, service.COMPLAINTS, seed_complaints, complaint_file(dates),
                           mode, user, "subject", "subject", monkeypatch)
    assert len(made) == 2 and made[1] == made[0] and b"bogus" in made[1]
    assert final[3]["undone"] == final[0]["update"] + final[0]["create"]
    # the set-based import wrote its updates without the row path (the row path: a row each)
    assert len(rows) == final[0]["update"]
    stored = {r["key"]: r for r in final[2]["complaints"]}
    closed_today = [k for k, r in stored.items() if r["resolved_on"] == date.today()]
    reopened = [k for k, r in stored.items() if r["status"] in ("open", "in_progress")
                and r["resolved_on"] is None and r["version"] > 1]
    assert closed_today and reopened, stored


@pytest.mark.parametrize("text, refused", [
    ("Subject,Status,Resolved on\nC1,in_progress,2025-03-01\n" + "".join(
        f"C{i},resolved,\n" for i in range(2, 12)) + "".join(f"C{i},bogus,\n" for i in range(
            12, 16)), "An open complaint has no resolved date"),
    ("Subject,Status,Resolved on\nC2,resolved,2025-01-01\n" + "".join(
        f"C{i},resolved,\n" for i in range(3, 12)) + "".join(f"C{i},bogus,\n" for i in range(
            12, 16)), "Resolved on cannot be before opened on"),
])
def test_a_complaint_the_command_refuses_refuses_the_import_alike(two, text, refused,
                                                                   monkeypatch):
    compare_entity(two, service.COMPLAINTS, seed_complaints, text, "update", "admin",
                   "subject", "subject", monkeypatch, refused=refused)


def test_a_complaint_of_a_trashed_customer_refuses_alike(two, monkeypatch):
    def seed(db, team):
        seed_complaints(db, team)
        with db.transaction() as cur:  # a customer trashed under its complaints
            cur.execute("UPDATE customers SET deleted_at = now() WHERE name ="
                        " 'Bletchley Park Trust'")

    text = "Subject,Severity\n" + "".join(f"C{i},high\n" for i in range(1, 12)) + "".join(
        f"C{i},huge\n" for i in range(12, 17))
    compare_entity(two, service.COMPLAINTS, seed, text, "update", "admin", "subject",
                   "subject", monkeypatch, refused="That customer does not exist")
