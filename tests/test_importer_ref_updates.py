"""Set-based updates and upserts of contacts (crm/importer_updates.py, DuckDB): the same
contacts, versions, audit rows, import records, rejected rows and undo as the row path
(records.update_many), compared on two databases that start the same."""
import pytest

from crm import customers, importer, records
from crm.auth import PermissionDenied
from tests.test_importer_fast import deal_world


def seed(db, team, n: int) -> None:
    """The fast tests' customers, and n contacts: reza's on his customers, the others
    the admin's; one in the trash."""
    deal_world(db, team)
    ids = {r["name"]: r["id"] for r in db.query("SELECT id, name FROM customers")}
    for i in range(n):
        mine = i % 3 == 0
        customer = "Bletchley Park Trust" if mine else "Analytical Engines Ltd"
        user = team["reza" if mine else "admin"]
        customers.add_contact(db, user, ids[customer], {
            "first_name": ["Ada", "علی", None][i % 3], "last_name": f"Person {i}",
            "email": f"c{i}@example.com", "phone": "555-0100" if i % 2 else None,
            "owner_id": user.id, "notes": "یادداشت" if i % 5 == 0 else None})
    records.delete(db, team["admin"], customers.CONTACTS, db.scalar(
        "SELECT id FROM contacts WHERE email = 'c4@example.com'"))


def update_file(n: int) -> str:
    lines = ["E-mail Address,First Name,Last Name,Job title,Phone,Owner,Notes,Consent given"]
    for i in range(n):
        mine = i % 3 == 0
        owner = "reza" if mine else "Ada Admin"
        first, last = ["Ada", "علی", ""][i % 3], f"Person {i}"
        phone, title, notes, consent = "555-0100" if i % 2 else "", "", "", "no"
        if i % 11 == 0:
            notes = "یادداشت" if i % 5 == 0 else ""  # nothing changes
        else:
            title = ["CEO", "مدیر", "", 'The "Boss"'][i % 4]
            notes = ["note", "", "tab\there"][i % 3]
            consent = ["yes", "بله", "no"][i % 3]
        if i % 13 == 5:
            phone = "call me"  # not a phone number
        elif i % 13 == 6:
            last = ""  # required
        elif i % 13 == 7:
            owner = "Nobody"
        elif i % 13 == 8:
            owner = "Rez"  # a near miss
        elif i % 13 == 9:
            owner = "sam"  # a rep may assign only to themselves
        cells = [f"C{i}@Example.com", first, last, title, phone, owner, notes, consent]
        lines.append(",".join(f'"{c.replace(chr(34), chr(34) * 2)}"' if any(
            x in c for x in ',"\t') else c for c in cells))
    lines.append("c2@example.com,Dup,Licate,,,,,")
    lines.append("nobody@example.com,New,Person,,,,,")
    return "\n".join(lines) + "\n"


def state(db) -> dict:
    key = {r["id"]: r["email"] for r in db.query("SELECT id, email FROM contacts")}
    skip = {"id", "created_at", "updated_at", "deleted_at"}
    stored = sorted(({k: v for k, v in r.items() if k not in skip}
                     | {"deleted": r["deleted_at"] is not None}
                     for r in db.query("SELECT * FROM contacts")),
                    key=lambda r: r["email"] or "")
    audit = [(key.get(r["record_id"]), r["action"], r["changes"], r["user_id"], r["username"],
              r["import_id"] is not None)
             for r in db.query("SELECT * FROM audit_log WHERE entity = 'contacts'"
                               " ORDER BY id")]
    records_ = [(r["line"], key[r["record_id"]], r["action"], r["before"], r["version_after"])
                for r in db.query(
                    "SELECT r.line + g.k AS line, r.record_id + g.k AS record_id, r.action,"
                    " r.before, r.version_after FROM import_records r CROSS JOIN LATERAL"
                    " generate_series(0, r.span - 1) AS g(k) ORDER BY r.id, g.k")]
    imports = db.query("SELECT mode, created_count, updated_count, skipped_count,"
                       " rejected_count, rejected, undone_at IS NULL AS live FROM imports"
                       " ORDER BY id")
    return {"contacts": stored, "audit": audit, "import_records": records_,
            "imports": imports}


def compare(two, text: str, mode: str, user="admin", since=None, staged=True):
    results = []
    for (db, team), fast in zip(two, (False, True)):
        source = importer.read(text.encode("utf-8"), "contacts.csv", fast=fast)
        mapping = importer.propose_mapping(customers.CONTACTS, source.headers)
        plan = importer.plan(db, team[user], customers.CONTACTS, source, mapping, mode=mode,
                             key="email")
        assert bool(plan.staged_updates) == (fast and staged), plan.notes
        rejected = [(r.line, r.errors) for r in plan.rows if r.action == "reject"]
        import_id = importer.execute(db, team[user], plan)
        after = state(db)
        if since:
            since(db, team)
        undone = importer.undo(db, team[user], import_id)
        results.append((plan.counts, sorted(rejected, key=str), after, undone, state(db),
                        importer.rejected_csv(plan)))
    slow, fast = results
    for part, a, b in zip(("counts", "rejected", "import", "undo", "after undo", "report"),
                          slow, fast):
        if isinstance(a, dict):
            for k in a:
                assert b[k] == a[k], (part, k)
        assert b == a, part
    return fast


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_a_messy_contact_update_is_written_set_based_as_the_row_path_writes_it(two, user,
                                                                              monkeypatch):
    for db, team in two:
        seed(db, team, 100)
    real, calls = records.update_many, []
    monkeypatch.setattr(records, "update_many",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    counts, rejected, _after, undone, _final, _report = compare(two, update_file(100), "update",
                                                       user=user)
    assert counts["update"] > 10 and counts["skip"] >= 1 and counts["reject"] > 5
    assert len(calls) <= 1  # the row path's; the set-based import wrote without it
    reasons = " ".join(str(e) for _l, e in rejected)
    for words in ("no 'Nobody' here", "no record with this Email", "the same Email as row 4"):
        assert words in reasons, words
    assert undone["undone"] == counts["update"] and not undone["refused"]


def test_an_upsert_of_contacts_without_a_customer_column_alike(two):
    """An upsert's new contacts need a customer: without the column they are rejected, on
    both paths alike."""
    for db, team in two:
        seed(db, team, 40)
    compare(two, update_file(40), "upsert")


def customer_file(n: int) -> str:
    """Contacts naming customers: their own, another rep's, a trashed one, near misses, other
    spellings, none; and new contacts (an upsert's)."""
    names = ["Analytical Engines Ltd", "Nobody Inc", "Bletchley Park Trst", "UAB Saulė",
             "Gone Ltd", " bletchley PARK trust ", "", "پارسیان تجارت", "n/a"]
    lines = ["Email,Customer,Job title"] + [
        f"c{i}@example.com,{names[(i + i // 3) % len(names)]},T{i % 4}" for i in range(n)]
    lines += ["new1@example.com,Bletchley Park Trust,New", "new2@example.com,Gone Ltd,New",
              "new3@example.com,UAB Saulė,New", "new4@example.com,,New"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mode", ["update", "upsert"])
@pytest.mark.parametrize("user", ["admin", "reza"])
def test_a_customer_column_is_checked_and_written_set_based_as_the_row_path_does(
        two, mode, user, monkeypatch):
    """The customer is changed only by its own command: records.update_many drops it from an
    update, so a row naming another customer is refused in the dry run (its text matched and
    refused alike); an upsert's new contacts take it, checked live at the write. The set-based
    import writes without update_many, with the same results."""
    for db, team in two:
        seed(db, team, 45)
        gone = customers.create_customer(db, team["admin"], {"name": "Gone Ltd"})
        customers.delete_customer(db, team["admin"], gone)
    real, calls = records.update_many, []
    monkeypatch.setattr(records, "update_many",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    counts, rejected, _after, undone, _final, _report = compare(two, customer_file(45), mode,
                                                                user=user)
    assert len(calls) <= 1  # the row path's; the set-based import wrote without it
    reasons = " ".join(str(e) for _l, e in rejected)
    for words in ("no 'Nobody Inc' here", "no 'Gone Ltd' here", "Did you mean"):
        assert words in reasons, words
    assert ("no 'UAB Saulė' here" in reasons) == (user == "reza")  # sam's customer
    assert "Customer': 'cannot be changed by an update" in reasons  # another customer
    assert counts["update"] >= 1 and undone["undone"] == counts["update"] + counts["create"]


def test_undo_refuses_contacts_changed_since(two):
    for db, team in two:
        seed(db, team, 40)

    def since(db, team):
        c = db.one("SELECT id, version FROM contacts WHERE email = 'c1@example.com'")
        customers.CONTACTS.update(db, team["admin"], c["id"], {"title": "Since"},
                                  c["version"])

    final = compare(two, update_file(40), "update", since=since)
    assert [r["reason"] for r in final[3]["refused"]] == ["changed since the import"]


# --- products: their code is unique among live products --------------------------------

def product_state(db) -> dict:
    key = {r["id"]: r["name"] for r in db.query("SELECT id, name FROM products")}
    skip = {"id", "created_at", "updated_at", "deleted_at"}
    stored = sorted(({k: v for k, v in r.items() if k not in skip}
                     | {"deleted": r["deleted_at"] is not None}
                     for r in db.query("SELECT * FROM products")), key=lambda r: r["name"])
    audit = [(key.get(r["record_id"]), r["action"], r["changes"], r["user_id"],
              r["import_id"] is not None)
             for r in db.query("SELECT * FROM audit_log WHERE entity = 'products'"
                               " ORDER BY id")]
    records_ = [(r["line"], key[r["record_id"]], r["action"], r["before"], r["version_after"])
                for r in db.query(
                    "SELECT r.line + g.k AS line, r.record_id + g.k AS record_id, r.action,"
                    " r.before, r.version_after FROM import_records r CROSS JOIN LATERAL"
                    " generate_series(0, r.span - 1) AS g(k) ORDER BY r.id, g.k")]
    imports = db.query("SELECT mode, created_count, updated_count, skipped_count,"
                       " rejected_count, rejected, undone_at IS NULL AS live FROM imports"
                       " ORDER BY id")
    return {"products": stored, "audit": audit, "import_records": records_,
            "imports": imports}


def seed_products(db, team, n: int) -> None:
    from crm import products

    deal_world(db, team)
    for i in range(n):
        records.create(db, team["admin"], products.PRODUCTS, {
            "name": f"Product {i}" if i % 6 else f"کالا {i}", "code": f"P-{i}",
            "unit_price": str(i * 5), "category": "Tools" if i % 2 else None})
    records.delete(db, team["admin"], products.PRODUCTS, db.scalar(
        "SELECT id FROM products WHERE code = 'P-3'"))


def product_file(n: int) -> str:
    lines = ["Name,Code,Category,Unit price,Active"]
    for i in range(n):
        name = f"Product {i}" if i % 6 else f"کالا {i}"
        code, category, price, active = f"P-{i}", "Tools" if i % 2 else "", str(i * 5), "yes"
        if i % 9 != 0:
            category = ["Tools", "ابزار", "", "Parts"][i % 4]
            price = ["1,234.50", "۱۲", "", "99"][i % 4]
            active = ["yes", "no", "بله"][i % 3]
        if i % 11 == 4:
            code = "gtx-1"  # another product's code, any case
        elif i % 11 == 5:
            code = "NEW-CODE"  # the same new code as another row
        elif i % 11 == 6:
            code = f"p-{i + 1}"  # the next product's code
        elif i % 11 == 7:
            price = "-5"
        elif i % 11 == 8:
            code = "P-3"  # a trashed product's: free
        elif i % 11 == 9:
            code = f"X-{i}"
        lines.append(f"{name},{code},{category},\"{price}\",{active}")
    lines.append("Product 1,Z-1,,,")  # the same name as row 3
    lines.append("Brand new,NEW-CODE,,10,yes")
    lines.append("Another new,P-7,,10,yes")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mode", ["update", "upsert"])
def test_a_product_update_checks_codes_alike(two, mode, monkeypatch):
    from crm import products

    real, calls = records.update_many, []
    monkeypatch.setattr(records, "update_many",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    results = []
    for (db, team), fast in zip(two, (False, True)):
        seed_products(db, team, 60)
        user = team["maria"]
        source = importer.read(product_file(60).encode(), "p.csv", fast=fast)
        plan = importer.plan(db, user, products.PRODUCTS, source,
                             importer.propose_mapping(products.PRODUCTS, source.headers),
                             mode=mode, key="name")
        assert bool(plan.staged_updates) == fast, plan.notes
        rejected = sorted(((r.line, r.errors) for r in plan.rows if r.action == "reject"),
                          key=str)
        import_id = importer.execute(db, user, plan)
        after = product_state(db)
        undone = importer.undo(db, user, import_id)
        results.append((plan.counts, rejected, after, undone, product_state(db)))
    for part, a, b in zip(("counts", "rejected", "import", "undo", "after undo"), *results):
        assert b == a, part
    counts, rejected = results[1][:2]
    reasons = " ".join(str(e) for _l, e in rejected)
    assert "already has this Code" in reasons and "the same Code as row" in reasons
    assert counts["update"] > 20
    assert len(calls) == 1  # the row path's; the set-based import wrote without it


# --- tasks: their own create, records.update_in a row ------------------------------------

def task_state(db) -> dict:
    key = {r["id"]: r["title"] for r in db.query("SELECT id, title FROM tasks")}
    skip = {"id", "created_at", "updated_at", "deleted_at", "completed_at"}
    stored = sorted(({k: v for k, v in r.items() if k not in skip}
                     | {"deleted": r["deleted_at"] is not None}
                     for r in db.query("SELECT * FROM tasks")), key=lambda r: r["title"])
    audit = [(key.get(r["record_id"]), r["action"], r["changes"], r["user_id"],
              r["import_id"] is not None)
             for r in db.query("SELECT * FROM audit_log WHERE entity = 'tasks' ORDER BY id")]
    records_ = [(r["line"], key[r["record_id"]], r["action"], r["before"], r["version_after"])
                for r in db.query(
                    "SELECT r.line + g.k AS line, r.record_id + g.k AS record_id, r.action,"
                    " r.before, r.version_after FROM import_records r CROSS JOIN LATERAL"
                    " generate_series(0, r.span - 1) AS g(k) ORDER BY r.id, g.k")]
    imports = db.query("SELECT mode, created_count, updated_count, skipped_count,"
                       " rejected_count, rejected, undone_at IS NULL AS live FROM imports"
                       " ORDER BY id")
    return {"tasks": stored, "audit": audit, "import_records": records_, "imports": imports}


@pytest.mark.parametrize("mode", ["update", "upsert"])
@pytest.mark.parametrize("user", ["admin", "reza"])
def test_a_task_update_is_written_set_based_as_the_row_path_writes_it(two, mode, user):
    from crm import activities

    results = []
    for (db, team), fast in zip(two, (False, True)):
        deal_world(db, team)
        ada = db.scalar("SELECT id FROM customers WHERE name = 'Bletchley Park Trust'")
        for i in range(40):
            activities.create_task(db, team["reza" if i % 2 else "admin"], {
                "title": f"Task {i}" if i % 5 else f"کار {i}", "customer_id": ada,
                "owner_id": team["reza" if i % 2 else "admin"].id})
        lines = ["Task,Due,Priority,Status,Assignee,Notes"]
        for i in range(40):
            name = f"Task {i}" if i % 5 else f"کار {i}"
            due = ["2025-05-01 10:00", "", "31.12.2025", "tomorrow"][i % 4]
            priority = ["high", "low", "", "Urgentt"][i % 4 if i % 7 == 0 else i % 3]
            status = ["open", "done", "Open"][i % 3]
            owner = ["", "reza", "Nobody", "Ada Admin"][i % 4]
            lines.append(f"{name},{due},{priority},{status},{owner},یادداشت {i % 3}")
        lines.append("Task 1,,,,,dup")
        lines.append("A new task,,,,,")
        source = importer.read(("\n".join(lines) + "\n").encode(), "t.csv", fast=fast)
        plan = importer.plan(db, team[user], activities.TASKS, source,
                             importer.propose_mapping(activities.TASKS, source.headers),
                             mode=mode, key="title")
        assert bool(plan.staged_updates) == fast, plan.notes
        rejected = sorted(((r.line, r.errors) for r in plan.rows if r.action == "reject"),
                          key=str)
        import_id = importer.execute(db, team[user], plan)
        after = task_state(db)
        undone = importer.undo(db, team[user], import_id)
        results.append((plan.counts, rejected, after, undone, task_state(db)))
    for part, a, b in zip(("counts", "rejected", "import", "undo", "after undo"), *results):
        assert b == a, part
    assert results[1][0]["update"] > 5 and results[1][0]["reject"] > 3


# --- activities: their own create, records.update_in a row --------------------------------

def activity_state(db) -> dict:
    key = {r["id"]: r["subject"] for r in db.query("SELECT id, subject FROM activities")}
    skip = {"id", "created_at", "updated_at", "deleted_at"}
    stored = sorted(({k: v for k, v in r.items() if k not in skip}
                     | {"deleted": r["deleted_at"] is not None}
                     for r in db.query("SELECT * FROM activities")),
                    key=lambda r: r["subject"])
    audit = [(key.get(r["record_id"]), r["action"], r["changes"], r["user_id"],
              r["import_id"] is not None)
             for r in db.query("SELECT * FROM audit_log WHERE entity = 'activities'"
                               " ORDER BY id")]
    records_ = [(r["line"], key[r["record_id"]], r["action"], r["before"], r["version_after"])
                for r in db.query(
                    "SELECT r.line + g.k AS line, r.record_id + g.k AS record_id, r.action,"
                    " r.before, r.version_after FROM import_records r CROSS JOIN LATERAL"
                    " generate_series(0, r.span - 1) AS g(k) ORDER BY r.id, g.k")]
    imports = db.query("SELECT mode, created_count, updated_count, skipped_count,"
                       " rejected_count, rejected, undone_at IS NULL AS live FROM imports"
                       " ORDER BY id")
    deals_ = db.query("SELECT id, last_activity_at FROM deals ORDER BY id")
    return {"activities": stored, "audit": audit, "import_records": records_,
            "imports": imports, "deals": deals_}


@pytest.mark.parametrize("mode", ["update", "upsert"])
@pytest.mark.parametrize("user", ["admin", "reza"])
def test_an_activity_update_is_written_set_based_as_the_row_path_writes_it(two, mode, user,
                                                                           monkeypatch):
    from crm import activities

    real, calls = records.update_in, []
    monkeypatch.setattr(records, "update_in",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    results = []
    for (db, team), fast in zip(two, (False, True)):
        deal_world(db, team)
        ada = db.scalar("SELECT id FROM customers WHERE name = 'Bletchley Park Trust'")
        for i in range(40):
            activities.log_activity(db, team["reza" if i % 2 else "admin"], {
                "subject": f"Call {i}" if i % 5 else f"تماس {i}", "customer_id": ada,
                "kind": "call", "occurred_at": "2025-03-01 09:00",
                "owner_id": team["reza" if i % 2 else "admin"].id})
        lines = ["Subject,Type,When,Duration (minutes),Outcome,By,Notes"]
        for i in range(40):
            name = f"Call {i}" if i % 5 else f"تماس {i}"
            kind = ["call", "Meeting", "email", "Cal"][i % 4 if i % 7 == 0 else i % 3]
            when = "yesterday" if i % 7 == 3 else "" if i % 9 == 2 else [
                "2025-05-01 10:00", "31.12.2025 08:30", "2025-03-01 09:00"][i % 3]
            minutes = ["15", "", "-3", "\"1,5\""][i % 4 if i % 3 == 0 else 1]
            owner = ["", "reza", "Nobody", "Ada Admin"][(i // 2) % 4]
            lines.append(f"{name},{kind},{when},{minutes},,{owner},یادداشت {i % 3}")
        lines.append("Call 1,,,,,,dup")
        lines.append("A new call,call,2025-01-02 10:00,,,,")
        source = importer.read(("\n".join(lines) + "\n").encode(), "a.csv", fast=fast)
        plan = importer.plan(db, team[user], activities.ACTIVITIES, source,
                             importer.propose_mapping(activities.ACTIVITIES, source.headers),
                             mode=mode, key="subject")
        assert bool(plan.staged_updates) == fast, plan.notes
        rejected = sorted(((r.line, r.errors) for r in plan.rows if r.action == "reject"),
                          key=str)
        calls.clear()
        import_id = importer.execute(db, team[user], plan)
        written = len(calls)
        after = activity_state(db)
        undone = importer.undo(db, team[user], import_id)
        results.append((plan.counts, rejected, after, undone, activity_state(db)))
    for part, a, b in zip(("counts", "rejected", "import", "undo", "after undo"), *results):
        assert b == a, part
    assert results[1][0]["update"] > 3 and results[1][0]["reject"] > 3
    assert written == 0  # the set-based import wrote without the row path's update_in


# --- price records and returns: records.update_many, their checks in SQL -------------------

def table_state(db, table: str, key_sql: str) -> dict:
    key = {r["id"]: r["k"] for r in db.query(f"SELECT id, {key_sql} AS k FROM {table}")}
    skip = {"id", "created_at", "updated_at", "deleted_at"}
    stored = sorted(({k: v for k, v in r.items() if k not in skip}
                     | {"deleted": r["deleted_at"] is not None, "key": key[r["id"]]}
                     for r in db.query(f"SELECT * FROM {table}")), key=lambda r: str(r["key"]))
    audit = [(key.get(r["record_id"]), r["action"], r["changes"], r["user_id"],
              r["import_id"] is not None)
             for r in db.query("SELECT * FROM audit_log WHERE entity = $t ORDER BY id",
                               {"t": table})]
    records_ = [(r["line"], key[r["record_id"]], r["action"], r["before"], r["version_after"])
                for r in db.query(
                    "SELECT r.line + g.k AS line, r.record_id + g.k AS record_id, r.action,"
                    " r.before, r.version_after FROM import_records r CROSS JOIN LATERAL"
                    " generate_series(0, r.span - 1) AS g(k) ORDER BY r.id, g.k")]
    imports = db.query("SELECT mode, created_count, updated_count, skipped_count,"
                       " rejected_count, rejected, undone_at IS NULL AS live FROM imports"
                       " ORDER BY id")
    return {table: stored, "audit": audit, "import_records": records_, "imports": imports}


def compare_entity(two, entity, seed_records, text: str, mode: str, user: str, key: str,
                   key_sql: str, monkeypatch, since=None, refused=None) -> list:
    real, calls = records.update_many, []
    monkeypatch.setattr(records, "update_many",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    results, written = [], []
    for (db, team), fast in zip(two, (False, True)):
        deal_world(db, team)
        seed_records(db, team)
        source = importer.read(text.encode(), "f.csv", fast=fast)
        plan = importer.plan(db, team[user], entity, source,
                             importer.propose_mapping(entity, source.headers),
                             mode=mode, key=key)
        assert bool(plan.staged_updates) == fast, plan.notes
        rejected = sorted(((r.line, r.errors) for r in plan.rows if r.action == "reject"),
                          key=str)
        calls.clear()
        report = importer.rejected_csv(plan)
        try:
            import_id = importer.execute(db, team[user], plan)
        except importer.ImportFileError as exc:  # refused as a whole: alike, nothing written
            results.append((plan.counts, rejected, str(exc), None,
                            table_state(db, entity.table, key_sql), report))
            continue
        written.append(len(calls))
        after = table_state(db, entity.table, key_sql)
        if since:
            since(db, team)
        try:
            undone = importer.undo(db, team[user], import_id)
        except PermissionDenied as exc:  # the row path's undo refuses so: alike
            undone = repr(exc)
        results.append((plan.counts, rejected, after, undone,
                        table_state(db, entity.table, key_sql), report))
    for part, a, b in zip(("counts", "rejected", "import", "undo", "after undo", "report"),
                          *results):
        assert b == a, part
    assert results[1][0]["update"] > 3 and results[1][0]["reject"] > 3, results[1][0]
    if refused:
        assert isinstance(results[1][2], str) and refused in results[1][2], results[1][2]
    else:
        assert len(written) == 2 and written[1] == 0, results[1][2]  # the set-based import wrote without update_many
    return results[1]


def seed_prices(db, team) -> None:
    from crm import market

    rival = db.scalar("SELECT id FROM competitors WHERE name = 'Rival Co'")
    for i in range(40):
        user = team["reza" if i % 2 else "admin"]
        market.PRICE_RECORDS.create(db, user, {
            "competitor_id": rival, "competitor_product": f"Rival {i}" if i % 5 else f"رقیب {i}",
            "price": str(100 + i), "observed_on": "2025-02-01", "region": "North",
            "owner_id": user.id})


def price_file() -> str:
    lines = ["Competitor's product,Price,Currency,Observed on,Source,Region,Recorded by,Notes"]
    for i in range(40):
        name = f"Rival {i}" if i % 5 else f"رقیب {i}"
        price = ["120", "\"1.234,50\"", "-5", "$99.90", "", "abc"][i % 6 if i % 4 == 0 else i % 2]
        currency = ["USD", "eur", "XYZ"][i % 3 if i % 7 == 0 else i % 2]
        observed = ["2025-03-01", "01.04.2025", "", "bad"][i % 4 if i % 5 == 2 else i % 2]
        source = ["website", "Inquiry", "price_list"][i % 3]
        region = ["North", "", "جنوب"][i % 3]
        owner = ["", "reza", "Nobody", "Ada Admin"][(i // 2) % 4]
        lines.append(f"{name},{price},{currency},{observed},{source},{region},{owner},n{i % 3}")
    lines.append("Rival 1,10,,,,,,dup")
    lines.append("A new rival,10,USD,2025-01-02,,,,")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mode", ["update", "upsert"])
@pytest.mark.parametrize("user", ["admin", "reza"])
def test_a_price_record_update_is_written_set_based_as_the_row_path_writes_it(
        two, mode, user, monkeypatch):
    from crm import market

    # price records are shared: a rep matches the admin's too, and the row path refuses the
    # import at the first (auth.require), which the set-based write leaves to it
    refused = "Reps can only see and change their own records" if user == "reza" else None
    final = compare_entity(two, market.PRICE_RECORDS, seed_prices, price_file(), mode, user,
                           "competitor_product", "competitor_product", monkeypatch,
                           refused=refused)
    if not refused:
        assert final[3]["undone"] == final[0]["update"]


def seed_returns(db, team) -> None:
    from crm import market

    ids = {r["name"]: r["id"] for r in db.query("SELECT id, name FROM customers")}
    for i in range(40):
        user = team["reza" if i % 2 else "admin"]
        customer = "Bletchley Park Trust" if i % 2 else "Analytical Engines Ltd"
        market.RETURNS.create(db, user, {
            "customer_id": ids[customer], "kind": "return", "occurred_on": "2025-02-01",
            "amount": str(10 * i), "reason": "price", "owner_id": user.id,
            "notes": f"R{i}" if i % 5 else f"بازگشت {i}"})


def return_file() -> str:
    lines = ["Notes,Kind,Date,Amount,Currency,Reason,Owner"]
    for i in range(40):
        name = f"R{i}" if i % 5 else f"بازگشت {i}"
        kind = ["cancellation", "Return", "refund"][i % 3 if i % 7 == 0 else i % 2]
        occurred = ["2025-03-01", "01.04.2025", "", "bad"][i % 4 if i % 5 == 2 else i % 2]
        amount = ["120", "\"1.234,50\"", "-5", "", "abc"][i % 5 if i % 4 == 0 else i % 2]
        reason = ["defective", "", "Price", "whatever"][i % 4 if i % 9 == 0 else i % 3]
        owner = ["", "reza", "Nobody", "Ada Admin"][(i // 2) % 4]
        lines.append(f"{name},{kind},{occurred},{amount},EUR,{reason},{owner}")
    lines.append("R1,,,,,,")
    lines.append("A new return,return,2025-01-02,5,USD,,")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mode", ["update", "upsert"])
@pytest.mark.parametrize("user", ["admin", "reza"])
def test_a_return_update_is_written_set_based_as_the_row_path_writes_it(two, mode, user,
                                                                        monkeypatch):
    from crm import market

    final = compare_entity(two, market.RETURNS, seed_returns, return_file(), mode, user,
                           "notes", "notes", monkeypatch)
    assert final[3]["undone"] == final[0]["update"]


def test_undo_refuses_price_records_changed_since(two, monkeypatch):
    from crm import market

    def since(db, team):
        c = db.one("SELECT id, version FROM price_records WHERE competitor_product = 'Rival 1'")
        market.PRICE_RECORDS.update(db, team["admin"], c["id"], {"region": "Since"},
                                    c["version"])

    final = compare_entity(two, market.PRICE_RECORDS, seed_prices, price_file(), "update",
                           "admin", "competitor_product", "competitor_product", monkeypatch,
                           since=since)
    assert [r["reason"] for r in final[3]["refused"]] == ["changed since the import"]


@pytest.mark.parametrize("mode", ["update", "upsert"])
def test_a_price_in_the_future_refuses_the_import_alike(two, mode, monkeypatch):
    """The row path's update_many refuses the record as it would be (a date in the future):
    the whole import, with the row's line, on both paths."""
    from crm import market

    text = price_file().replace(
        "Rival 3,", "Rival 3,1,USD,2099-01-01,website,North,,n0\nRival 33,", 1)
    compare_entity(two, market.PRICE_RECORDS, seed_prices, text, mode, "admin",
                   "competitor_product", "competitor_product", monkeypatch,
                   refused="Observed on cannot be in the future")


# --- competitors: market.update_competitor_in (one record describes our company) ----------

def seed_competitors(db, team) -> None:
    from crm import market

    for i in range(40):
        user = team["reza" if i % 2 else "admin"]
        market.COMPETITORS.create(db, user, {
            "name": f"Comp {i}" if i % 5 else f"رقیب {i}", "country": "Iran",
            "threat_level": "medium", "owner_id": user.id, "website": "example.com"})


def competitor_file(us: str = "") -> str:
    lines = ["Name,Website,Country,Threat level,Owner,Notes" + (",This is our company" if us
                                                                 else "")]
    for i in range(40):
        name = f"Comp {i}" if i % 5 else f"رقیب {i}"
        site = ["example.org", "", "x" * 400][i % 3 if i % 7 == 0 else i % 2]
        country = ["Lithuania", "", "ایران"][i % 3]
        threat = ["high", "Low", "", "huge"][i % 4 if i % 6 == 0 else i % 3]
        owner = ["", "reza", "Nobody", "Ada Admin"][(i // 2) % 4]
        ours = ("," + ("yes" if str(i) in us.split() else "no")) if us else ""
        lines.append(f"{name},{site},{country},{threat},{owner},n{i % 3}{ours}")
    lines.append("Comp 1,,,,,dup" + (",no" if us else ""))
    lines.append("A new rival,,,,," + (",no" if us else ""))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mode", ["update", "upsert"])
@pytest.mark.parametrize("user", ["admin", "reza"])
def test_a_competitor_update_is_written_set_based_as_the_row_path_writes_it(
        two, mode, user, monkeypatch):
    from crm import market

    refused = "Reps can only see and change their own records" if user == "reza" else None
    final = compare_entity(two, market.COMPETITORS, seed_competitors, competitor_file(), mode,
                           user, "name", "name", monkeypatch, refused=refused)
    if not refused:
        assert final[3]["undone"] == final[0]["update"] + final[0]["create"]


@pytest.mark.parametrize("us, refused", [("3", None), ("3 6", "already describes our company")])
def test_our_company_once_alike(two, us, refused, monkeypatch):
    from crm import market

    final = compare_entity(two, market.COMPETITORS, seed_competitors, competitor_file(us),
                           "update", "admin", "name", "name", monkeypatch, refused=refused)
    if not refused:
        assert final[3]["undone"] == final[0]["update"]


# --- survey answers: service.update_survey_in checks the answer's links -------------------

def seed_surveys(db, team, broken: bool = False) -> None:
    from crm import service

    ids = {r["name"]: r["id"] for r in db.query("SELECT id, name FROM customers")}
    for i in range(40):
        user = team["reza" if i % 2 else "admin"]
        customer = "Bletchley Park Trust" if i % 2 else "Analytical Engines Ltd"
        service.create_survey(db, user, {
            "customer_id": ids[customer], "answered_on": "2025-02-01", "channel": "email",
            "csat": 3, "owner_id": user.id, "comment": f"S{i}" if i % 5 else f"نظر {i}"})
    if broken:  # an answer whose contact works elsewhere now: update_survey_in refuses it
        with db.transaction() as cur:
            cur.execute("UPDATE surveys SET contact_id = (SELECT id FROM contacts WHERE"
                        " last_name = 'Stranger') WHERE comment = 'S9'")


def survey_file() -> str:
    lines = ["Comment,Answered on,CSAT (1-5),NPS (0-10),Owner"]
    for i in range(40):
        name = f"S{i}" if i % 5 else f"نظر {i}"
        answered = ["2025-03-01", "01.04.2025", "", "bad"][i % 4 if i % 5 == 2 else i % 2]
        csat = ["4", "", "9", "x"][i % 4 if i % 3 == 0 else i % 2]
        nps = ["10", "0", "7"][i % 3]
        owner = ["", "reza", "Nobody", "Ada Admin"][(i // 2) % 4]
        lines.append(f"{name},{answered},{csat},{nps},{owner}")
    lines.append("S1,,,,")
    lines.append("A new answer,2025-01-02,3,,")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mode", ["update", "upsert"])
@pytest.mark.parametrize("user", ["admin", "reza"])
def test_a_survey_answer_update_is_written_set_based_as_the_row_path_writes_it(
        two, mode, user, monkeypatch):
    from crm import service

    final = compare_entity(two, service.SURVEYS, seed_surveys, survey_file(), mode, user,
                           "comment", "comment", monkeypatch)
    assert final[3]["undone"] == final[0]["update"] + final[0]["create"]


def test_a_survey_answer_whose_links_broke_refuses_alike(two, monkeypatch):
    from crm import service

    compare_entity(two, service.SURVEYS, lambda db, team: seed_surveys(db, team, True),
                   survey_file(), "update", "admin", "comment", "comment", monkeypatch,
                   refused="It belongs to another customer")


def seed_survey_links(db, team) -> None:
    """seed_surveys' answers, and deals of two customers, a trashed product and customer."""
    from crm import customers, deals, products

    seed_surveys(db, team)
    ids = {r["name"]: r["id"] for r in db.query("SELECT id, name FROM customers")}
    stage = db.scalar("SELECT min(id) FROM stages")
    deals.create_deal(db, team["admin"], {"title": "Ada deal", "stage_id": stage,
                                          "customer_id": ids["Analytical Engines Ltd"]})
    deals.create_deal(db, team["reza"], {"title": "Alan deal", "stage_id": stage,
                                         "customer_id": ids["Bletchley Park Trust"],
                                         "owner_id": team["reza"].id})
    old = records.create(db, team["admin"], products.PRODUCTS, {"name": "Old Thing",
                                                                "code": "OLD-1"})
    records.delete(db, team["admin"], products.PRODUCTS, old)
    gone = customers.create_customer(db, team["admin"], {"name": "Gone Ltd"})
    customers.delete_customer(db, team["admin"], gone)


def survey_link_file(mismatch: bool = False) -> str:
    """Answers moved to other customers, contacts, deals and products: each row's links
    agree (a mismatch: one row's contact works for another customer); near misses, trashed
    records and other reps' records among them."""
    a = ("Analytical Engines Ltd", "Ada Lovelace", "Ada deal")
    b = ("Bletchley Park Trust", "Alan Turing", "Alan deal")
    worlds = [a, b, (a[0], "", ""), (b[0], b[1], ""), (b[0], "", b[2]), ("Gone Ltd", "", ""),
              ("Analytical Engins", "", ""), ("UAB Saulė", "Stranger", ""), ("", "", "")]
    products = ["", "GTX Pro", "Old Thing", "GTX Pr", "mg special"]
    lines = ["Comment,Customer,Contact,Deal,Product,CSAT (1-5)"]
    for i in range(40):
        name = f"S{i}" if i % 5 else f"نظر {i}"
        customer, contact, deal = worlds[(i + i // 9) % len(worlds)]
        if mismatch and i == 11:
            contact = "Alan Turing" if customer != b[0] else "Ada Lovelace"
        lines.append(f"{name},{customer},{contact},{deal},{products[i % 5]},{1 + i % 5}")
    lines.append("A new answer,Bletchley Park Trust,Alan Turing,,GTX Pro,4")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mode", ["update", "upsert"])
@pytest.mark.parametrize("user", ["admin", "reza"])
def test_a_survey_answers_links_are_written_set_based_as_the_row_path_writes_them(
        two, mode, user, monkeypatch):
    from crm import service

    real, rows = importer.write_row, []
    monkeypatch.setattr(importer, "write_row", lambda *a, **k: rows.append(a) or real(*a, **k))
    final = compare_entity(two, service.SURVEYS, seed_survey_links, survey_link_file(), mode,
                           user, "comment", "comment", monkeypatch)
    # the row path wrote each row by update_survey_in; the set-based import none
    assert len(rows) == final[0]["update"] + final[0]["create"] > 3, len(rows)
    assert final[3]["undone"] == final[0]["update"] + final[0]["create"]
    reasons = " ".join(str(e) for _l, e in final[1])
    for words in ("no 'Gone Ltd' here", "no 'Old Thing' here", "Did you mean"):
        assert words in reasons, words


def test_a_survey_answers_contact_of_another_customer_refuses_alike(two, monkeypatch):
    from crm import service

    compare_entity(two, service.SURVEYS, seed_survey_links, survey_link_file(True), "update",
                   "admin", "comment", "comment", monkeypatch,
                   refused="It belongs to another customer")
