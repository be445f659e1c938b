"""The set-based write of a big file's updates and upserts, and the set-based undo of updated
records (DuckDB): the same records, versions, audit rows and undo records as the row path,
compared on two databases that start the same."""
import random
from datetime import date, timedelta

import pytest

from crm import importer, importer_updates, leads, records, rules
from tests.test_importer_fast import HEADER, MESSY

STATUSES = ["new", "contacted", "qualified", "unqualified"]


def _base(n: int) -> list[dict]:
    """n leads of every kind of value (owners by username): some with consent, Persian text,
    notes, quotes and line breaks."""
    rnd = random.Random(7)
    out = []
    for i in range(n):
        consent = rnd.random() < 0.5
        out.append({
            "first_name": rnd.choice(["Ada", "علی", "Jonas", None, "Zoë"]),
            "last_name": f"Lead {i}", "email": f"lead{i}@example.com",
            "company": rnd.choice([None, "Acme", "پارس", 'Quote "Co"', "Line\nBreak"]),
            "phone": rnd.choice([None, "+44 20 7946 0000", "555-0100"]),
            "status": rnd.choice(STATUSES), "source": rnd.choice([None, "website", "event"]),
            "owner_id": rnd.choice([None, "reza", "maria"]),
            "estimated_value": rnd.choice([None, "0.5", "1234.56", "999999999999.99", "7"]),
            "consent": consent,
            "consent_date": date(2024, 1, 1) + timedelta(days=i) if consent else None,
            "notes": rnd.choice([None, "", "یادداشت", "tab\there"])})
    return out


def existing(n: int, team) -> list[dict]:
    return [{**v, "owner_id": team[v["owner_id"]].id if v["owner_id"] else None}
            for v in _base(n)]


NAMES = {"reza": "Reza Rahimi", "maria": "maria", None: ""}


def _cell(value) -> str:
    if value is None:
        return ""
    text = str(value)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def update_file(n: int) -> str:
    """A file of updates to leads 0..n-1: most change a field or more, some change nothing
    (the values as they are), a few are wrong; one names a lead that is not there."""
    rnd = random.Random(11)
    lines = ["First Name,Last Name,E-mail Address,Phone,Company,Status,Owner,"
             "Estimated value,Consent given,Notes"]
    for i, old in enumerate(_base(n)):
        if i % 9 == 0:  # nothing differs
            cells = [old["first_name"], old["last_name"], old["email"].upper(), old["phone"],
                     old["company"], old["status"], NAMES[old["owner_id"]],
                     old["estimated_value"], "yes" if old["consent"] else "no", old["notes"]]
            lines.append(",".join(_cell(c) for c in cells))
            continue
        wrong = i % 10 == 3
        company = rnd.choice(["Acme", "", "New Co", "شرکت"])
        value = rnd.choice(["", "1,234.56", "۱٬۲۳۴٫۵", "12 500 €", "7"] + (
            ["(3)", "1.5e3"] if wrong else []))
        owner = rnd.choice(["", "Reza Rahimi", "maria"] + (["Nobody"] if wrong else []))
        status = rnd.choice(STATUSES + (["Qualifed", ""] if wrong else []))
        consent = rnd.choice(["yes", "Yes", "بله"])  # "no" would leave consent dates alone
        lines.append(f"Ada,Lead {i},LEAD{i}@example.com,,{company},{status},{owner},"
                     f"\"{value}\",{consent},note {i % 3}")
    lines.append("New,Person,new.person@example.com,,,new,,,,")
    return "\n".join(lines) + "\n"


def seed(db, team, n: int) -> None:
    admin = team["admin"]
    for values in existing(n, team):
        leads.create_lead(db, admin, values)


def do_import(db, user, text: str, fast: bool, mode: str):
    source = importer.read(text.encode("utf-8"), "updates.csv", fast=fast)
    mapping = importer.propose_mapping(leads.LEADS, source.headers)
    plan = importer.plan(db, user, leads.LEADS, source, mapping, mode=mode, key="email")
    assert bool(plan.staged_updates) == fast
    return plan, importer.execute(db, user, plan)


def state(db) -> dict:
    """What the imports and undos leave, without ids or times: every lead, every audit row
    and import record (by the lead's key, in their order)."""
    key = {r["id"]: r["email"] for r in db.query("SELECT id, email FROM leads")}
    skip = {"id", "created_at", "updated_at", "deleted_at"}
    stored = sorted(({k: v for k, v in r.items() if k not in skip}
                     | {"deleted": r["deleted_at"] is not None}
                     for r in db.query("SELECT * FROM leads")), key=lambda r: r["email"])
    audit = [(key.get(r["record_id"]), r["action"], r["changes"], r["user_id"], r["username"],
              r["import_id"] is not None)
             for r in db.query("SELECT * FROM audit_log WHERE entity = 'leads' ORDER BY id")]
    records_ = [(r["line"], key[r["record_id"]], r["action"], r["before"], r["version_after"])
                for r in db.query(  # a row of created records stands for a run of lines
                    "SELECT r.line + g.k AS line, r.record_id + g.k AS record_id, r.action,"
                    " r.before, r.version_after FROM import_records r CROSS JOIN LATERAL"
                    " generate_series(0, r.span - 1) AS g(k) ORDER BY r.id, g.k")]
    imports = db.query("SELECT mode, created_count, updated_count, skipped_count,"
                       " rejected_count, rejected, undone_at IS NULL AS live FROM imports"
                       " ORDER BY id")
    return {"leads": stored, "audit": audit, "import_records": records_, "imports": imports}


def compare(two, text: str, mode: str, user="admin", since=None):
    """The same import on the row path and set-based, then (after `since` changed some
    records on both) its undo: everything compared at each step."""
    results = []
    for (db, team), fast in zip(two, (False, True)):
        plan, import_id = do_import(db, team[user], text, fast, mode)
        after = state(db)
        if since:
            since(db, team)
        undone = importer.undo(db, team[user], import_id)
        results.append((plan.counts, after, undone, state(db)))
    slow, fast = results
    for part, a, b in zip(("counts", "import", "undo", "after undo"), slow, fast):
        if isinstance(a, dict):
            for k in a:
                assert b[k] == a[k], (part, k)
        assert b == a, part
    return fast


def no_row_path(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the row path ran")
    monkeypatch.setattr(records, "update_many", refuse)
    monkeypatch.setattr(records, "update_in", refuse)


@pytest.mark.parametrize("mode", ["update", "upsert"])
def test_a_big_update_is_written_set_based_as_the_row_path_writes_it(two, mode, monkeypatch):
    for db, team in two:
        seed(db, team, 300)
    text = update_file(300)
    real = records.update_many
    calls = []
    monkeypatch.setattr(records, "update_many", lambda *a, **k: calls.append(a) or real(*a, **k))
    counts, after, undone, _final = compare(two, text, mode)
    assert counts["update"] > 200 and counts["skip"] > 5 and counts["reject"] > 5
    assert counts["create"] == (1 if mode == "upsert" else 0)
    assert len(calls) <= 1  # the row path's own import; the fast one wrote without it
    assert undone["undone"] == counts["update"] + counts["create"] and not undone["refused"]
    assert any(a[1] == "update" and a[5] for a in after["audit"])


def test_undo_refuses_records_changed_or_trashed_since_with_the_reason(two):
    for db, team in two:
        seed(db, team, 200)

    def since(db, team):
        admin = team["admin"]
        for email in ("lead5@example.com", "lead17@example.com"):
            lead = db.one("SELECT id, version FROM leads WHERE email = $e", {"e": email})
            leads.update_lead(db, admin, lead["id"], {"title": "Since"}, lead["version"])
        leads.delete_lead(db, admin, db.scalar("SELECT id FROM leads WHERE email ="
                                               " 'lead40@example.com'"))

    _c, _a, undone, final = compare(two, update_file(200), "update", since=since)
    assert [r["reason"] for r in undone["refused"]] == ["changed since the import"] * 3
    assert [r["line"] for r in undone["refused"]] == [42, 19, 7]  # newest first
    titles = {r["email"]: r["title"] for r in final["leads"]}
    assert titles["lead5@example.com"] == "Since"


def test_the_fast_write_and_undo_do_not_use_the_row_path(two, monkeypatch):
    db, team = two[1]
    admin = team["admin"]
    seed(db, team, 150)
    lines = ["Email,Company,Estimated value"] + [
        f"lead{i}@example.com,Company {i},{i}" for i in range(150)]
    source = importer.read(("\n".join(lines) + "\n").encode(), "u.csv", fast=True)
    plan = importer.plan(db, admin, leads.LEADS, source,
                         importer.propose_mapping(leads.LEADS, source.headers),
                         mode="update", key="email")
    no_row_path(monkeypatch)
    import_id = importer.execute(db, admin, plan)
    assert db.scalar("SELECT count(*) FROM leads WHERE company LIKE 'Company %'") == 150
    assert importer.undo(db, admin, import_id) == {"undone": 150, "refused": []}
    assert db.scalar("SELECT count(*) FROM leads WHERE company LIKE 'Company %'") == 0
    assert db.scalar("SELECT count(*) FROM leads WHERE version = 3") == 150


def test_a_rep_updates_their_own_records_alike(two):
    for db, team in two:
        seed(db, team, 120)
    compare(two, update_file(120), "upsert", user="reza")


def test_what_update_many_refuses_at_the_write_is_refused_alike(two):
    """A consent date for a record without consent passes the dry run (it checks the fields
    the file brings) and is refused by the write, with the row, on both paths."""
    messages = []
    for (db, team), fast in zip(two, (False, True)):
        seed(db, team, 100)
        lead = db.one("SELECT id, version FROM leads WHERE NOT consent ORDER BY id LIMIT 1")
        line = int(db.scalar("SELECT email FROM leads WHERE id = $i", {"i": lead["id"]})
                   [4:-12]) + 2
        lines = ["Email,Consent date"] + [
            f"lead{i}@example.com,{'01.02.2025' if i + 2 == line else ''}" for i in range(100)]
        source = importer.read(("\n".join(lines) + "\n").encode(), "u.csv", fast=fast)
        plan = importer.plan(db, team["admin"], leads.LEADS, source,
                             importer.propose_mapping(leads.LEADS, source.headers),
                             mode="update", key="email")
        with pytest.raises(importer.ImportFileError) as refused:
            importer.execute(db, team["admin"], plan)
        messages.append(str(refused.value))
        assert db.scalar("SELECT count(*) FROM imports") == 0
    assert messages[0] == messages[1] and "Consent" in messages[0]


def test_with_rules_watching_the_rows_go_through_the_row_path_and_rules_run(two):
    for db, team in two:
        seed(db, team, 60)
        rules.save_rule(db, team["admin"], {
            "name": "Qualified", "entity": "leads", "trigger": "changed",
            "trigger_config": {"field": "status", "to": "qualified"}, "match": "all",
            "conditions": [], "enabled": True,
            "actions": [{"kind": "create_task", "title": "Call {last_name}",
                         "assignee": "owner", "due_days": 2}]})
    lines = ["Email,Status"] + [f"lead{i}@example.com,{STATUSES[i % 4]}" for i in range(60)]
    compare(two, "\n".join(lines) + "\n", "update")
    made = [db.query("SELECT title, owner_id FROM tasks ORDER BY title") for db, _t in two]
    assert made[0] == made[1] and made[0]


def test_a_record_changed_since_the_dry_run_in_another_field_refuses_the_import_alike(two):
    """The row path writes with the versions its dry run saw: a record saved since, in a
    field the file does not touch, refuses the import with the row's line; the set-based
    write refuses it alike (it took the records as they were at the write before)."""
    results = []
    for (db, team), fast in zip(two, (False, True)):
        admin = team["admin"]
        seed(db, team, 50)
        lines = ["Email,Company"] + [f"lead{i}@example.com,Co {i}" for i in range(50)]
        source = importer.read(("\n".join(lines) + "\n").encode(), "u.csv", fast=fast)
        plan = importer.plan(db, admin, leads.LEADS, source,
                             importer.propose_mapping(leads.LEADS, source.headers),
                             mode="update", key="email")
        lead = db.one("SELECT id, version FROM leads WHERE email = 'lead3@example.com'")
        leads.update_lead(db, admin, lead["id"], {"title": "Since"}, lead["version"])
        with pytest.raises(importer.ImportFileError) as refused:
            importer.execute(db, admin, plan)
        results.append((str(refused.value), state(db)))
    assert results[0] == results[1]
    assert results[0][0] == "Row 5: the record changed since the dry run; run it again."


def test_the_set_based_undo_of_a_small_row_path_import(two, monkeypatch):
    """Undo is set-based whatever wrote the import (here the row path, a small file)."""
    db, team = two[0]
    admin = team["admin"]
    seed(db, team, 30)
    before = state(db)["leads"]
    _plan, import_id = do_import(db, admin, update_file(30), False, "update")
    no_row_path(monkeypatch)
    importer.undo(db, admin, import_id)
    restored = {r["email"]: r for r in state(db)["leads"]}
    for old in before:
        now = restored[old["email"]]
        assert {k: v for k, v in now.items() if k not in ("version", "updated_by")} == \
            {k: v for k, v in old.items() if k not in ("version", "updated_by")}


def test_writable_on_postgresql_only_for_the_entities_planned_set_based_there():
    from crm import service

    class Db:
        dialect = "postgresql"

    class Plan:
        staged_updates = "x"
        entity = service.COMPLAINTS
    assert not importer_updates.writable(Db(), Plan())


@pytest.mark.parametrize("mode", ["update", "upsert"])
@pytest.mark.parametrize("user", ["admin", "reza"])
def test_the_messy_file_updates_alike(two, mode, user):
    """The fast path's messy file (bad numbers, Persian digits, duplicates, owners by name,
    white space) over records it updates: the same import and undo, or the same refusal."""
    from tests.test_importer_fast import EXISTING

    for db, team in two:
        for values in EXISTING:
            leads.create_lead(db, team[user], values)
    text = HEADER + "\n" + "\n".join(MESSY) + "\n"
    try:
        compare(two, text, mode, user=user)
    except importer.ImportFileError:  # then both refuse it, in the same words
        found = []
        for (db, team), fast in zip(two, (False, True)):
            with pytest.raises(importer.ImportFileError) as refused:
                do_import(db, team[user], text, fast, mode)
            found.append(str(refused.value))
        assert found[0] == found[1]


def test_a_record_saved_between_the_match_and_the_write_refuses_the_import(two, monkeypatch):
    db, team = two[1]
    admin = team["admin"]
    seed(db, team, 40)
    lines = ["Email,Company"] + [f"lead{i}@example.com,Co {i}" for i in range(40)]
    source = importer.read(("\n".join(lines) + "\n").encode(), "u.csv", fast=True)
    plan = importer.plan(db, admin, leads.LEADS, source,
                         importer.propose_mapping(leads.LEADS, source.headers),
                         mode="update", key="email")
    real = importer_updates.prepare

    def then_someone_saves(*args):
        real(*args)
        lead = db.one("SELECT id, version FROM leads WHERE email = 'lead9@example.com'")
        leads.update_lead(db, admin, lead["id"], {"title": "Meanwhile"}, lead["version"])
    monkeypatch.setattr(importer_updates, "prepare", then_someone_saves)
    before = state(db)
    with pytest.raises(importer.ImportFileError, match="changed since the dry run"):
        importer.execute(db, admin, plan)
    after = state(db)
    assert after["imports"] == before["imports"] == []
    assert db.scalar("SELECT count(*) FROM leads WHERE company LIKE 'Co %'") == 0
