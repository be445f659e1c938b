"""Set-based updates of deals (crm/importer_updates.py, DuckDB): the same deals, versions,
audit rows, import records, rejected rows and undo as the row path (deals.update_deal_in a
row), compared on two databases that start the same."""
from unittest import mock

import pytest

from crm import deals, importer, importer_updates, records, rules
from tests.test_importer_fast import deal_world

HEADER = "Title,Amount,Close Date,Owner,Customer,Contact,Probability,Notes,Competing against"


CUSTOMERS = ["Analytical Engines Ltd", "Bletchley Park Trust", "پارسیان تجارت", None]


def seed(db, team, n: int) -> None:
    """The fast tests' customers and contacts, and n deals: reza's on his customers, the
    others maria's; a few closed, one in the trash."""
    deal_world(db, team)
    ids = {r["name"]: r["id"] for r in db.query("SELECT id, name FROM customers")}
    proposal = db.scalar("SELECT id FROM stages WHERE name = 'Proposal'")
    for i in range(n):
        mine = i % 3 == 0
        customer = CUSTOMERS[1 + i % 3] if mine else CUSTOMERS[i % 4]
        deals.create_deal(db, team["reza" if mine else "maria"], {
            "title": f"Deal {i}" if i % 7 else f"معامله {i}", "stage_id": proposal,
            "customer_id": ids.get(customer), "amount": str(i * 10),
            "owner_id": team["reza"].id if mine else team["maria"].id,
            "notes": "یادداشت" if i % 5 == 0 else None})
    deals.delete_deal(db, team["admin"], db.scalar("SELECT id FROM deals WHERE title ="
                                                   " 'Deal 4'"))


def title(i: int) -> str:
    return f"Deal {i}" if i % 7 else f"معامله {i}"


def update_file(n: int) -> str:
    """Updates to deals 0..n-1: amounts, close dates, owners, customers and contacts, with
    unknown names, near misses, names a rep may not see, a contact of another customer, bad
    numbers, rows that change nothing, duplicates by title and a title that is not there."""
    lines = [HEADER]
    for i in range(n):
        mine = i % 3 == 0
        customer = CUSTOMERS[1 + i % 3] if mine else CUSTOMERS[i % 4]
        owner = "reza" if mine else "Maria Manager"
        contact, amount, close, prob, notes, rival = "", str(i * 10), "", "", "", ""
        if i % 11 == 0:  # nothing changes
            notes = "یادداشت" if i % 5 == 0 else ""
        else:
            amount = ["1,234.56", "۱٬۲۳۴٫۵", "99", "12 500 €", str(i)][i % 5]
            close = ["2025-03-01", "15.04.2025", "", "2025-12-31"][i % 4]
            notes = ["note", "", "یادداشت", 'with "quotes"'][i % 4]
            prob = ["", "40", "75"][i % 3]
            rival = ["", "Rival Co", ""][i % 3]
        if i % 13 == 5:
            customer = "Nobody Inc"  # unknown
        elif i % 13 == 6:
            customer = "Analytical Engine Ltd"  # a near miss
        elif i % 13 == 7:
            customer = "UAB Saulė"  # sam's: a rep does not see it
        elif i % 13 == 8:
            customer, contact = "Analytical Engines Ltd", "Alan Turing"  # Bletchley's contact
        elif i % 13 == 9:
            customer, contact = "Analytical Engines Ltd", "Ada Lovelace"
        elif i % 13 == 10:
            prob = "150"  # over 100
        elif i % 13 == 11:
            amount = "(3)"
        elif i % 13 == 12:
            owner = "Nobody"
        cells = [title(i), amount, close, owner, customer or "", contact, prob, notes, rival]
        lines.append(",".join(f'"{c.replace(chr(34), chr(34) * 2)}"' if ',' in c or '"' in c
                              else c for c in cells))
    lines.append(f"{title(2)},1,,,,,,,")  # the same title as an earlier row
    lines.append("No such deal,1,,,,,,,")
    return "\n".join(lines) + "\n"


def do_import(db, user, text: str, fast: bool, mode="update", key="title"):
    source = importer.read(text.encode("utf-8"), "deals.csv", fast=fast)
    mapping = importer.propose_mapping(deals.DEALS, source.headers)
    plan = importer.plan(db, user, deals.DEALS, source, mapping, mode=mode, key=key)
    assert bool(plan.staged_updates) == fast, plan.notes
    rejected = [(r.line, r.errors) for r in plan.rows if r.action == "reject"]
    return plan, rejected, importer.execute(db, user, plan)


def state(db) -> dict:
    """Every deal, its audit rows and import records (by title), imports, stage history."""
    key = {r["id"]: (r["title"], r["id"]) for r in db.query("SELECT id, title FROM deals")}
    skip = {"id", "created_at", "updated_at", "deleted_at", "stage_entered_at"}
    stored = sorted(({k: v for k, v in r.items() if k not in skip}
                     | {"deleted": r["deleted_at"] is not None}
                     for r in db.query("SELECT * FROM deals")), key=lambda r: r["title"])
    audit = [(key.get(r["record_id"]), r["action"], r["changes"], r["user_id"], r["username"],
              r["import_id"] is not None)
             for r in db.query("SELECT * FROM audit_log WHERE entity = 'deals' ORDER BY id")]
    records_ = [(r["line"], key[r["record_id"]], r["action"], r["before"], r["version_after"])
                for r in db.query("SELECT * FROM import_records ORDER BY id")]
    imports = db.query("SELECT mode, created_count, updated_count, skipped_count,"
                       " rejected_count, rejected, undone_at IS NULL AS live FROM imports"
                       " ORDER BY id")
    history = db.query("SELECT deal_id, from_stage_id, to_stage_id, amount, probability"
                       " FROM deal_stage_history ORDER BY id")
    return {"deals": stored, "audit": audit, "import_records": records_, "imports": imports,
            "history": history}


def compare(two, text: str, user="admin", since=None, between=None):
    """The same import on both paths, then (after `since` changed records on both) its undo:
    everything compared at each step. between(db, team) changes records after the dry run."""
    results = []
    for (db, team), fast in zip(two, (False, True)):
        source = importer.read(text.encode("utf-8"), "deals.csv", fast=fast)
        mapping = importer.propose_mapping(deals.DEALS, source.headers)
        plan = importer.plan(db, team[user], deals.DEALS, source, mapping, mode="update",
                             key="title")
        assert bool(plan.staged_updates) == fast, plan.notes
        rejected = [(r.line, r.errors) for r in plan.rows if r.action == "reject"]
        if between:
            between(db, team)
        import_id = importer.execute(db, team[user], plan)
        after = state(db)
        if since:
            since(db, team)
        with mock.patch.object(importer_updates, "undo_updates",
                               importer_updates.undo_updates if fast else lambda *a: None):
            undone = importer.undo(db, team[user], import_id)  # the row path's undo, or not
        results.append((plan.counts, sorted(rejected), after, undone, state(db)))
    slow, fast = results
    for part, a, b in zip(("counts", "rejected", "import", "undo", "after undo"), slow, fast):
        if isinstance(a, dict):
            for k in a:
                assert b[k] == a[k], (part, k)
        assert b == a, part
    return fast


def test_a_messy_deal_update_is_written_set_based_as_the_row_path_writes_it(two, monkeypatch):
    for db, team in two:
        seed(db, team, 120)
    counts, rejected, after, undone, _final = compare(two, update_file(120))
    assert counts["update"] > 40 and counts["skip"] >= 3 and counts["reject"] > 15
    reasons = " ".join(str(e) for _l, e in rejected)
    for words in ("no 'Nobody Inc' here", "Did you mean analytical engines ltd?",
                  "The contact works for another customer", "cannot be more than 100",
                  "no 'Nobody' here", "the same Title as row 4", "no record with this Title"):
        assert words in reasons, words
    assert undone["undone"] == counts["update"] and not undone["refused"]
    assert any(a[1] == "update" and a[5] for a in after["audit"])


@pytest.mark.parametrize("user", ["reza", "maria"])
def test_a_rep_or_manager_updates_deals_alike(two, user):
    for db, team in two:
        seed(db, team, 80)
    compare(two, update_file(80), user=user)


def test_undo_refuses_deals_changed_or_trashed_since(two):
    for db, team in two:
        seed(db, team, 60)

    def since(db, team):
        admin = team["admin"]
        for name in ("Deal 1", "Deal 2"):
            deal = db.one("SELECT id, version FROM deals WHERE title = $t", {"t": name})
            deals.update_deal(db, admin, deal["id"], {"next_step": "Since"}, deal["version"])
        deals.delete_deal(db, admin, db.scalar("SELECT id FROM deals WHERE title = 'Deal 40'"))

    final = compare(two, update_file(60), since=since)
    assert [r["reason"] for r in final[3]["refused"]] == ["changed since the import"] * 3


def test_a_deal_changed_after_the_dry_run_refuses_the_import_alike(two):
    messages = []
    for (db, team), fast in zip(two, (False, True)):
        seed(db, team, 40)
        source = importer.read(update_file(40).encode(), "d.csv", fast=fast)
        plan = importer.plan(db, team["admin"], deals.DEALS, source,
                             importer.propose_mapping(deals.DEALS, source.headers),
                             mode="update", key="title")
        # a deal to update goes to the trash: the counts are not the dry run's any more
        deals.delete_deal(db, team["admin"], db.scalar("SELECT id FROM deals"
                                                       " WHERE title = 'Deal 1'"))
        with pytest.raises(importer.ImportFileError) as refused:
            importer.execute(db, team["admin"], plan)
        messages.append(str(refused.value))
        assert db.scalar("SELECT count(*) FROM imports") == 0
    # the row path meets the trashed deal at its row; the set-based one matches the rows again
    # first, as it does for leads, and finds the counts changed
    assert messages == ["Row 3: the record changed since the dry run; run it again.",
                        "The records changed since the dry run; run it again."]


def test_a_contact_of_the_deals_own_other_customer_is_refused_at_the_write_alike(two):
    """A file naming only contacts: update_deal_in checks each against the deal's customer
    as stored, at the write; both paths refuse the import with the row's words."""
    messages = []
    for (db, team), fast in zip(two, (False, True)):
        seed(db, team, 30)
        lines = ["Title,Contact"] + [f"{title(i)},{'Ada Lovelace' if i == 13 else ''}"
                                     for i in range(30)]
        source = importer.read(("\n".join(lines) + "\n").encode(), "d.csv", fast=fast)
        plan = importer.plan(db, team["admin"], deals.DEALS, source,
                             importer.propose_mapping(deals.DEALS, source.headers),
                             mode="update", key="title")
        assert bool(plan.staged_updates) == fast
        with pytest.raises(importer.ImportFileError) as refused:
            importer.execute(db, team["admin"], plan)
        messages.append(str(refused.value))
    assert messages[0] == messages[1] and "another customer" in messages[0]


def test_the_fast_deal_update_and_undo_do_not_use_the_row_path(two, monkeypatch):
    db, team = two[1]
    admin = team["admin"]
    seed(db, team, 50)
    lines = ["Title,Amount,Next step"] + [f"{title(i)},{i + 1},Call {i}" for i in range(50)]
    source = importer.read(("\n".join(lines) + "\n").encode(), "d.csv", fast=True)
    plan = importer.plan(db, admin, deals.DEALS, source,
                         importer.propose_mapping(deals.DEALS, source.headers),
                         mode="update", key="title")

    def refuse(*args, **kwargs):
        raise AssertionError("the row path ran")
    monkeypatch.setattr(records, "update_in", refuse)
    monkeypatch.setattr(deals, "update_deal_in", refuse)
    monkeypatch.setattr(deals, "_check_links", refuse)
    import_id = importer.execute(db, admin, plan)
    assert db.scalar("SELECT count(*) FROM deals WHERE next_step LIKE 'Call %'") == 49
    assert importer.undo(db, admin, import_id) == {"undone": 49, "refused": []}
    assert db.scalar("SELECT count(*) FROM deals WHERE next_step LIKE 'Call %'") == 0


def test_a_products_column_without_an_amount_goes_set_based(two):
    """(It went row by row; now the lines price the deal: tests/test_importer_lines.py.)"""
    db, team = two[1]
    seed(db, team, 5)
    text = "Title,Products\nDeal 1,Won\n"
    source = importer.read(text.encode(), "d.csv", fast=True)
    mapping = importer.propose_mapping(deals.DEALS, source.headers)
    plan = importer.plan(db, team["admin"], deals.DEALS, source, mapping, mode="update",
                         key="title")
    assert plan.staged_updates is not None
    assert not any("Read row by row" in n for n in plan.notes), plan.notes
    assert plan.counts["reject"] == 1  # no product "Won"


def test_an_emptied_owner_becomes_the_importer_alike(two):
    """update_in gives a deal whose owner the file empties to the one who imports; a deal
    that is theirs already changes nothing, and its import record holds the owner all the
    same, as on the row path."""
    for db, team in two:
        seed(db, team, 20)
        with db.transaction() as cur:
            cur.execute("UPDATE deals SET owner_id = $a WHERE title IN ('Deal 1', 'Deal 2')",
                        {"a": team["admin"].id})
    lines = ["Title,Owner,Next step"] + [f"{title(i)},,{'Call' if i % 2 else ''}"
                                         for i in range(20)]
    counts = compare(two, "\n".join(lines) + "\n")[0]
    assert counts["update"] > 10


def test_with_rules_watching_deals_the_rows_go_through_update_deal_in_and_rules_run(two):
    for db, team in two:
        seed(db, team, 30)
        rules.save_rule(db, team["admin"], {
            "name": "Big", "entity": "deals", "trigger": "changed",
            "trigger_config": {"field": "amount"}, "match": "all", "conditions": [],
            "enabled": True, "actions": [{"kind": "create_task", "title": "Check {title}",
                                          "assignee": "owner", "due_days": 2}]})
    lines = ["Title,Amount"] + [f"{title(i)},{i * 10 + i % 2}" for i in range(30)]
    compare(two, "\n".join(lines) + "\n")
    made = [db.query("SELECT title, owner_id FROM tasks ORDER BY title") for db, _t in two]
    assert made[0] == made[1] and made[0]


# --- stage moves and lost-to competitors, set-based (importer_deals.write_updates) ---------

MOVE_HEADER = "Title,Stage,Lost reason,Lost to competitor,Amount,Probability,Notes"


def seed_closed(db, team, n: int) -> None:
    """seed(), then some deals won or lost (with and without a competitor) before the file."""
    seed(db, team, n)
    admin = team["admin"]
    won, lost = (db.scalar("SELECT id FROM stages WHERE name = $n", {"n": n_})
                 for n_ in ("Won", "Lost"))
    for i in range(1, n, 6):
        deal = db.scalar("SELECT id FROM deals WHERE title = $t AND deleted_at IS NULL",
                         {"t": title(i)})
        if deal is None:
            continue
        if i % 12 == 1:
            deals.move_deal(db, admin, deal, won)
        else:
            deals.move_deal(db, admin, deal, lost, "price", "Rival Co" if i % 4 else None)


def move_file(n: int) -> str:
    """Deals 0..n-1 moved (won, lost with and without a reason or a competitor, back to open
    stages, to the stage they are in), with lost-to names known, new and in other spellings,
    an unknown stage and a near miss, amounts and probabilities beside; a duplicate title and
    one that is not there."""
    stages = ["Won", "Lost", "Negotiation", "proposal", "Qualificaton", "", "Lost",
              "Prospecting", "Stage X", "LOST", "Won"]
    reasons = ["", "price", "competitor", "Price", "timing", ""]
    rivals = ["Rival Co", "rival co ", "New Rival", "", "Another One", "new rival"]
    lines = [MOVE_HEADER]
    for i in range(n):
        stage, reason, rival = stages[i % 11], reasons[i % 6], rivals[i % 5]
        amount = ["", str(i * 10), "77", "1,5"][i % 4]
        prob = ["", "30", "", "120"][i % 4] if i % 9 else "40"
        notes = ["", "moved", "یادداشت"][i % 3]
        if i % 17 == 3:
            stage, reason, rival, amount, prob, notes = "", "", "", str(i * 10), "", ""
        lines.append(",".join([title(i), stage, reason, rival, f'"{amount}"', prob, notes]))
    lines.append(f"{title(2)},Won,,,,,")
    lines.append("No such deal,Won,,,,,")
    return "\n".join(lines) + "\n"


def full_state(db) -> dict:
    found = state(db)
    key = {r["id"]: (r["title"], r["id"]) for r in db.query("SELECT id, title FROM deals")}
    # a run of new deals (the set-based path's one import record) as a record each
    found["import_records"] = [
        (r["line"], key[r["record_id"]], r["action"], r["before"], r["version_after"])
        for r in db.query("SELECT r.line + g.k AS line, r.record_id + g.k AS record_id,"
                          " r.action, r.before, r.version_after FROM import_records r CROSS"
                          " JOIN LATERAL generate_series(0, r.span - 1) AS g(k)"
                          " ORDER BY r.id, g.k")]
    found["competitors"] = db.query("SELECT id, name, deleted_at IS NULL AS live FROM"
                                    " competitors ORDER BY id")
    found["history"] = db.query("SELECT deal_id, from_stage_id, to_stage_id, amount,"
                                " probability, changed_by FROM deal_stage_history ORDER BY id")
    found["competitor_audit"] = db.query("SELECT record_id, action, changes, import_id IS NOT"
                                         " NULL AS imported FROM audit_log WHERE entity ="
                                         " 'competitors' ORDER BY id")
    return found


def compare_moves(two, text: str, user="admin", since=None, fast_expected=True,
                  mode="update", pipeline=None):
    results = []
    for (db, team), fast in zip(two, (False, True)):
        source = importer.read(text.encode("utf-8"), "deals.csv", fast=fast)
        mapping = importer.propose_mapping(deals.DEALS, source.headers)
        pid = pipeline and db.scalar("SELECT id FROM pipelines WHERE name = $n",
                                     {"n": pipeline})
        plan = importer.plan(db, team[user], deals.DEALS, source, mapping, mode=mode,
                             key="title", pipeline_id=pid)
        assert bool(plan.staged_updates) == (fast and fast_expected), plan.notes
        rejected = [(r.line, r.errors) for r in plan.rows if r.action == "reject"]
        report = importer.rejected_csv(plan)
        import_id = importer.execute(db, team[user], plan)
        after = full_state(db)
        if since:
            since(db, team)
        with mock.patch.object(importer_updates, "undo_updates",
                               importer_updates.undo_updates if fast else lambda *a: None):
            undone = importer.undo(db, team[user], import_id)  # the row path's undo, or not
        results.append((plan.counts, sorted(rejected), report, after, undone, full_state(db)))
    slow, fast = results
    for part, a, b in zip(("counts", "rejected", "report", "import", "undo", "after undo"),
                          slow, fast):
        if isinstance(a, dict):
            for k in a:
                assert b[k] == a[k], (part, k)
        assert b == a, part
    return fast


def test_a_messy_file_of_stage_moves_is_written_set_based_as_the_row_path_writes_it(two):
    for db, team in two:
        seed_closed(db, team, 130)
    counts, rejected, _report, after, undone, final = compare_moves(two, move_file(130))
    assert counts["update"] > 50 and counts["reject"] > 15
    reasons = " ".join(str(e) for _l, e in rejected)
    for words in ("no 'Qualificaton' here", "Did you mean qualification?",
                  "no 'Stage X' here", "A lost deal needs a lost reason",
                  "cannot be more than 100", "the same Title as row 4",
                  "no record with this Title"):
        assert words in reasons, words
    assert undone["undone"] == counts["update"] and not undone["refused"]
    assert any(a[1] == "move" and a[5] for a in after["audit"])
    assert any(c["name"] == "New Rival" for c in after["competitors"])
    # undo moved them back: stage history grew on the way back too
    assert len(final["history"]) > len(after["history"])


@pytest.mark.parametrize("user", ["reza", "maria"])
def test_a_rep_or_manager_moves_deals_alike(two, user):
    for db, team in two:
        seed_closed(db, team, 70)
    compare_moves(two, move_file(70), user=user)


def test_lost_to_names_without_a_stage_relink_alike(two):
    for db, team in two:
        seed_closed(db, team, 40)
    lines = ["Title,Lost to competitor,Next step"] + [
        f"{title(i)},{['Rival Co', 'RIVAL CO', 'Fresh One', '', 'fresh one'][i % 5]},"
        f"{'Call' if i % 2 else ''}" for i in range(40)]
    counts = compare_moves(two, "\n".join(lines) + "\n")[0]
    assert counts["update"] > 10


def test_undo_of_moves_refuses_deals_changed_since_alike(two):
    for db, team in two:
        seed_closed(db, team, 50)

    def since(db, team):
        admin = team["admin"]
        deal = db.one("SELECT id, version FROM deals WHERE title = 'Deal 1'")
        deals.update_deal(db, admin, deal["id"], {"next_step": "Since"}, deal["version"])
        deals.move_deal(db, admin, db.scalar("SELECT id FROM deals WHERE title = 'Deal 2'"),
                        db.scalar("SELECT id FROM stages WHERE name = 'Prospecting'"))

    final = compare_moves(two, move_file(50), since=since)
    assert [r["reason"] for r in final[4]["refused"]] == ["changed since the import"] * 2


def test_a_moved_deal_changed_after_the_dry_run_refuses_the_import(two):
    messages = []
    for (db, team), fast in zip(two, (False, True)):
        seed_closed(db, team, 30)
        source = importer.read(move_file(30).encode(), "d.csv", fast=fast)
        plan = importer.plan(db, team["admin"], deals.DEALS, source,
                             importer.propose_mapping(deals.DEALS, source.headers),
                             mode="update", key="title")
        # a deal to move goes to the trash: the counts are not the dry run's any more
        deals.delete_deal(db, team["admin"], db.scalar("SELECT id FROM deals"
                                                       " WHERE title = 'Deal 1'"))
        with pytest.raises(importer.ImportFileError) as refused:
            importer.execute(db, team["admin"], plan)
        messages.append(str(refused.value))
        assert db.scalar("SELECT count(*) FROM imports") == 0
    assert messages == ["Row 3: the record changed since the dry run; run it again.",
                        "The records changed since the dry run; run it again."]


def test_with_rules_watching_deals_moves_go_row_by_row_and_rules_run(two):
    for db, team in two:
        seed_closed(db, team, 30)
        rules.save_rule(db, team["admin"], {
            "name": "Moved", "entity": "deals", "trigger": "changed",
            "trigger_config": {"field": "stage_id"}, "match": "all", "conditions": [],
            "enabled": True, "actions": [{"kind": "create_task", "title": "Check {title}",
                                          "assignee": "owner", "due_days": 2}]})
    compare_moves(two, move_file(30))
    made = [db.query("SELECT title, owner_id FROM tasks ORDER BY title") for db, _t in two]
    assert made[0] == made[1] and made[0]


def test_the_fast_move_and_its_undo_do_not_use_the_row_path(two, monkeypatch):
    db, team = two[1]
    admin = team["admin"]
    seed_closed(db, team, 40)
    lines = ["Title,Stage,Lost reason,Lost to competitor"] + [
        f"{title(i)},{'Lost' if i % 2 else 'Negotiation'},{'price' if i % 2 else ''},"
        f"{'Newcomer' if i % 4 == 1 else ''}" for i in range(40)]
    source = importer.read(("\n".join(lines) + "\n").encode(), "d.csv", fast=True)
    plan = importer.plan(db, admin, deals.DEALS, source,
                         importer.propose_mapping(deals.DEALS, source.headers),
                         mode="update", key="title")
    assert plan.staged_updates

    def refuse(*args, **kwargs):
        raise AssertionError("the row path ran")
    for name in ("move_deal_in", "update_deal_in", "relink_competitor", "replace_lines"):
        monkeypatch.setattr(deals, name, refuse)
    monkeypatch.setattr(records, "update_in", refuse)
    import_id = importer.execute(db, admin, plan)
    assert db.scalar("SELECT count(*) FROM deals d JOIN competitors c ON"
                     " c.id = d.lost_to_competitor_id WHERE c.name = 'Newcomer'") == 10
    assert importer.undo(db, admin, import_id)["refused"] == []
    assert db.scalar("SELECT count(*) FROM deals d JOIN stages s ON s.id = d.stage_id"
                     " WHERE s.name = 'Negotiation'") == 0


def upsert_file(n: int) -> str:
    """move_file's updates of deals 0..n-1, and as many new deals: won, lost with and without
    a reason, with new and known competitors, customers and contacts right and wrong, owners
    a rep may and may not give, unknown stages, no stage."""
    lines = move_file(n).splitlines()
    head, rows = lines[0] + ",Customer,Contact,Owner", lines[1:]
    rows = [r + ",,," for r in rows]
    stages = ["Won", "Lost", "Negotiation", "", "Prospectin", "Lost", "Proposal"]
    for i in range(n):
        stage, reason = stages[i % 7], ["price", "", "timing"][i % 3]
        rival = ["Rival Co", "Brand New", "", "brand new"][i % 4]
        customer, contact = [("Analytical Engines Ltd", "Ada Lovelace"),
                             ("Bletchley Park Trust", "Alan Turing"),
                             ("Analytical Engines Ltd", "Alan Turing"),
                             ("UAB Saulė", ""), ("", "")][i % 5]
        owner = ["", "reza", "Maria Manager", "Nobody"][i % 4]
        close = ["", "2025-02-03"][i % 2]
        rows.append(",".join([f"New {i}", stage, reason, rival, str(i * 3), "", close and "",
                              customer, contact, owner]))
    rows.append("New 3,Won,,,,,,,,")  # the same new title twice
    return "\n".join([head] + rows) + "\n"


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_a_deal_upsert_is_written_set_based_as_the_row_path_writes_it(two, user):
    for db, team in two:
        seed_closed(db, team, 60)
    counts, rejected, _report, after, undone, final = compare_moves(
        two, upsert_file(60), user=user, mode="upsert")
    assert counts["create"] > 10 and counts["update"] > 5 and counts["reject"] > 10
    reasons = " ".join(str(e) for _l, e in rejected)
    for words in ("A lost deal needs a lost reason", "no 'Prospectin' here",
                  "the same Title as row"):
        assert words in reasons, words
    if user == "admin":
        assert "The contact works for another customer" in reasons
    assert undone["undone"] == counts["create"] + counts["update"]


def test_the_fast_upsert_does_not_use_the_row_path(two, monkeypatch):
    db, team = two[1]
    admin = team["admin"]
    seed_closed(db, team, 20)
    lines = ["Title,Stage,Lost reason,Lost to competitor"] + [
        f"{title(i) if i < 20 else f'New {i}'},{'Lost' if i % 2 else 'Won'},"
        f"{'price' if i % 2 else ''},{'Newcomer' if i % 4 == 1 else ''}" for i in range(40)]
    source = importer.read(("\n".join(lines) + "\n").encode(), "d.csv", fast=True)
    plan = importer.plan(db, admin, deals.DEALS, source,
                         importer.propose_mapping(deals.DEALS, source.headers),
                         mode="upsert", key="title")
    assert plan.staged_updates and plan.counts["create"] == 21  # (Deal 4 is in the trash)

    def refuse(*args, **kwargs):
        raise AssertionError("the row path ran")
    for name in ("insert_deal", "move_deal_in", "update_deal_in", "relink_competitor"):
        monkeypatch.setattr(deals, name, refuse)
    monkeypatch.setattr(records, "update_in", refuse)  # (records.insert makes a competitor)
    import_id = importer.execute(db, admin, plan)
    assert db.scalar("SELECT count(*) FROM deals d JOIN stages s ON s.id = d.stage_id"
                     " WHERE d.title LIKE 'New %' AND s.name = 'Won'") == 10
    assert db.scalar("SELECT count(*) FROM deal_stage_history h JOIN deals d"
                     " ON d.id = h.deal_id WHERE d.title LIKE 'New %'") == 20
    monkeypatch.undo()
    assert importer.undo(db, admin, import_id)["refused"] == []


def test_stages_are_named_in_the_chosen_pipeline_alike(two):
    """A file's stages are looked up in the pipeline the import names: deals move into it."""
    from crm import pipelines

    for db, team in two:
        seed_closed(db, team, 40)
        pid = pipelines.create_pipeline(db, team["admin"], "Partners")
        pipelines.add_stage(db, team["admin"], pid, {"name": "Pilot", "probability": 60})
    lines = ["Title,Stage,Lost reason"] + [
        f"{title(i)},{['Pilot', 'Won', 'Lost', 'Proposal'][i % 4]},{'price' if i % 4 == 2 else ''}"
        for i in range(40)]
    after = compare_moves(two, "\n".join(lines) + "\n", pipeline="Partners")[3]
    partners = two[1][0].scalar("SELECT id FROM pipelines WHERE name = 'Partners'")
    assert sum(1 for d in after["deals"] if d["pipeline_id"] == partners) >= 20


def test_a_file_that_would_add_stages_is_planned_set_based(two):
    """(its comparison with the row path: tests/test_importer_deal_dates.py)"""
    db, team = two[1]
    seed(db, team, 5)
    source = importer.read(b"Title,Stage\nDeal 1,Brand new stage\n", "d.csv", fast=True)
    plan = importer.plan(db, team["admin"], deals.DEALS, source,
                         importer.propose_mapping(deals.DEALS, source.headers),
                         mode="update", key="title", create_missing=True)
    assert plan.staged_updates and plan.new_stages == {"Brand new stage"}
    assert not any("Read row by row" in n for n in plan.notes)


# --- custom fields of plain types on deal updates (they went row by row) -----------------

def add_plain_fields(db, team) -> None:
    from crm import custom_fields

    admin = team["admin"]
    for values in ({"name": "region", "label": "Region", "type": "choice",
                    "choices": ["North", "South", "Østfold"]},
                   {"name": "score", "label": "Score", "type": "integer", "min_value": 0,
                    "max_value": 10},
                   {"name": "renewal", "label": "Renewal", "type": "date"},
                   {"name": "vip", "label": "VIP", "type": "bool"},
                   {"name": "memo", "label": "Memo", "type": "text"},
                   {"name": "budget", "label": "Budget", "type": "money"}):
        custom_fields.add_field(db, admin, "deals", values)


def custom_file(n: int, stages: bool, new: int = 0) -> str:
    """Custom fields in odd spellings (a choice in other case, a choice not there, numbers
    out of range or not numbers, dates in several formats, yes/no words, emptied cells),
    with moves (a lost one without a reason) or not."""
    regions = ["north", "South", "", "West", "ØSTFOLD", "N/A"]
    scores = ["3", "11", "", "x", "7.0", "0"]
    renewals = ["2025-03-01", "15.04.2025", "", "soon", "04/30/2025"]
    vips = ["yes", "no", "", "maybe", "TRUE", "0"]
    budgets = ["1,234.50", "", "12 500 €", "-5", "abc"]
    stage_names = ["", "Negotiation", "Won", "Lost", "Proposal"]
    lines = ["Title,Region,Score,Renewal,VIP,Memo,Budget" + (",Stage" if stages else "")]
    for i in range(n):
        memo = ["note", "", "یادداشت", '"with ""quotes"""'][i % 4]
        row = [title(i), regions[i % 6], scores[i % 6], renewals[i % 5], vips[i % 6], memo,
               f'"{budgets[i % 5]}"']
        if stages:
            row.append(stage_names[i % 5])
        lines.append(",".join(row))
    lines.append(f"{title(2)},North,1,,,," + ("," if stages else ""))
    lines.append("No such deal,North,1,,,," + ("," if stages else ""))
    for i in range(new):  # an upsert's new deals
        lines.append(f"New {i},{regions[i % 6]},{scores[i % 6]},{renewals[i % 5]},"
                     f"{vips[i % 6]},,{'' if i % 2 else '5'}" + (",Proposal" if stages else ""))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("user", ["admin", "reza"])
@pytest.mark.parametrize("stages", [False, True])
def test_custom_fields_of_plain_types_on_deal_updates_go_set_based_alike(two, user, stages):
    for db, team in two:
        seed(db, team, 60)
    for db, team in two:  # (a custom field is every database's entity's once added)
        add_plain_fields(db, team)

    def since(db, team):  # a deal the import changed, changed since: the undo refuses it
        deal = db.one("SELECT d.id, d.version FROM deals d JOIN import_records r ON"
                      " r.record_id = d.id WHERE r.action = 'update' AND r.before IS NOT NULL"
                      " ORDER BY r.line LIMIT 1")
        deals.update_deal(db, team["admin"], deal["id"], {"next_step": "Since"},
                          deal["version"])

    counts, rejected, after, undone, _final = compare(two, custom_file(60, stages), user,
                                                      since=since)
    assert counts["update"] > (10 if user == "admin" else 3) and counts["reject"] > 5
    reasons = " ".join(str(e) for _l, e in rejected)
    assert "the same Title as row" in reasons and "no record with this Title" in reasons
    if user == "admin":
        assert "cannot be more than 10" in reasons
    assert any('"region"' in (a[2] or "") for a in after["audit"])
    assert len(undone["refused"]) == 1


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_custom_fields_of_plain_types_on_a_deal_upsert_go_set_based_alike(two, user):
    for db, team in two:
        seed(db, team, 30)
    for db, team in two:
        add_plain_fields(db, team)
    counts, rejected, _report, after, undone, _final = compare_moves(
        two, custom_file(30, True, new=12), user, mode="upsert")
    assert counts["create"] > 3 and counts["update"] > (2 if user == "admin" else 0)
    assert counts["reject"] > 5
    assert undone["undone"] == counts["create"] + counts["update"]
