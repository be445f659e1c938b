"""The fast list, board and update queries return exactly what the plain queries return.

Each fast path (page chosen on ids then joined, first page and count in one scan, deep pages read
from the other end, top-N cards per stage, one row read per update) is compared with a
straightforward reference query over data full of ties and NULLs. No timings here: those are in
python -m crm bench."""
import itertools
import random
from datetime import date, datetime, timedelta

import pytest

from crm import customers, deals, leads, pipelines, records
from crm.records import ConflictError, Query

NOW = datetime(2026, 11, 20, 12, 0)


def reference_page(db, user, entity, q: Query) -> records.Page:
    """The list query as first written: count, then every row joined, sorted, offset."""
    where, params = records._where(entity, user, q)
    sort = q.sort if q.sort in entity.spec else entity.default_sort[0]
    direction = "DESC" if q.descending else "ASC"
    page_size = max(1, min(int(q.page_size), 500))
    total = db.scalar(f"SELECT count(*) FROM {entity.table} t WHERE {where}", params)
    page = max(1, min(int(q.page), max(1, -(-total // page_size))))
    cols = [f"t.{f.name}" for f in entity.all_fields if f.in_list or f.name == "owner_id"]
    joins = ""
    for f in entity.all_fields:
        if f.in_list and f.type == "ref":
            alias = f"r_{f.name}"
            cols.append(f"{records.REF_LABELS[f.ref].format(a=alias)} AS {f.name}__label")
            joins += f" LEFT JOIN {f.ref} {alias} ON {alias}.id = t.{f.name}"
    rows = db.query(
        f"SELECT {', '.join(cols)}, u.name AS owner_name FROM {entity.table} t"
        f" LEFT JOIN users u ON u.id = t.owner_id{joins}"
        f" WHERE {where} ORDER BY t.{sort} {direction} NULLS LAST, t.id {direction}"
        f" LIMIT $limit OFFSET $offset",
        {**params, "limit": page_size, "offset": (page - 1) * page_size})
    return records.Page(rows, total, page, page_size)


def same_page(got: records.Page, want: records.Page) -> None:
    assert (got.total, got.page, got.page_size) == (want.total, want.page, want.page_size)
    assert [list(r.items()) for r in got.rows] == [list(r.items()) for r in want.rows]


@pytest.fixture
def many_leads(db, team):
    """137 leads with few distinct values: ties, NULL sort values, some in the trash, owned by
    the two reps and nobody."""
    rng = random.Random(14)
    owners = [team["reza"].id, team["sam"].id, None]
    base = datetime(2026, 1, 1)
    for i in range(137):
        created = base + timedelta(days=rng.randrange(6))  # many equal timestamps
        db.query(
            "INSERT INTO leads (first_name, last_name, company, email, source, status, owner_id,"
            " estimated_value, consent, created_at, updated_at, deleted_at) VALUES ($f, $l, $c,"
            " $e, $s, $st, $o, $v, $consent, $t, $t, $d)",
            {"f": rng.choice([None, "Ali", "Bea", "Smith"]),
             "l": rng.choice(["Smith", "Khan", "Lee"]),
             "c": rng.choice([None, "Acme", "Smithson"]), "e": rng.choice([None, f"p{i}@x.org"]),
             "s": rng.choice([None, "website", "event"]),
             "st": rng.choice(["new", "contacted", "qualified"]), "o": rng.choice(owners),
             "v": rng.choice([None, None, 10, 20, 35.5]), "consent": rng.random() < 0.5,
             "t": created, "d": created if rng.random() < 0.1 else None})
    return 137


QUERIES = [
    {}, {"descending": False}, {"sort": "estimated_value"},
    {"sort": "estimated_value", "descending": False}, {"sort": "first_name"},
    {"sort": "company", "descending": False}, {"sort": "id"}, {"sort": "id", "descending": False},
    {"sort": "not_a_field"}, {"search": "smith"}, {"search": "smith", "sort": "estimated_value"},
    {"filters": {"status": ["new", "contacted"]}, "sort": "source", "descending": False},
    {"filters": {"consent": True}}, {"search": "nobody at all"}, {"trash": True},
    {"trash": True, "sort": "estimated_value", "descending": False},
]


@pytest.mark.parametrize("who", ["admin", "reza"])
@pytest.mark.parametrize("spec", QUERIES)
def test_every_page_of_leads_matches_the_plain_query(db, team, many_leads, who, spec):
    user = team[who]
    for page_size in (7, 10, 50):
        total = reference_page(db, user, leads.LEADS, Query(**spec, page_size=page_size)).total
        last = max(1, -(-total // page_size))
        for page in sorted({1, 2, 3, last // 2, last // 2 + 1, last - 1, last, last + 1, 10**9,
                            0, -3}):
            q = Query(**spec, page=page, page_size=page_size)
            same_page(records.list_records(db, user, leads.LEADS, q),
                      reference_page(db, user, leads.LEADS, q))


def test_pages_together_hold_every_row_once_in_order(db, team, many_leads):
    q = dict(sort="estimated_value", descending=False, page_size=9)
    first = records.list_records(db, team["admin"], leads.LEADS, Query(**q))
    ids = []
    for page in range(1, first.pages + 1):
        ids += [r["id"] for r in records.list_records(db, team["admin"], leads.LEADS,
                                                      Query(**q, page=page)).rows]
    assert len(ids) == len(set(ids)) == first.total
    everything = reference_page(db, team["admin"], leads.LEADS, Query(**{**q, "page_size": 500}))
    assert ids == [r["id"] for r in everything.rows]


def test_empty_lists_and_ref_labels(db, team, stage_ids):
    assert records.list_records(db, team["admin"], leads.LEADS, Query(page=5)).rows == []
    acme = customers.create_customer(db, team["reza"], {"name": "Acme", "kind": "company"})
    for i in range(23):
        deals.create_deal(db, team["reza"], {
            "title": f"D{i % 4}", "amount": str(i % 3 * 100) if i % 5 else None,
            "customer_id": acme if i % 2 else None, "stage_id": stage_ids[i % 3]})
    for spec in ({}, {"sort": "amount"}, {"sort": "customer_id", "descending": False},
                 {"sort": "stage_id"}):
        for page in (1, 2, 3, 4, 9):
            q = Query(**spec, page=page, page_size=4)
            same_page(records.list_records(db, team["maria"], deals.DEALS, q),
                      reference_page(db, team["maria"], deals.DEALS, q))


@pytest.fixture
def stage_ids(db):
    return [s["id"] for s in pipelines.stages_of(db, pipelines.default_pipeline_id(db))]


# --- the board ---------------------------------------------------------------------------------

def reference_cards(db, user, pipeline_id, per_stage, order, **filters):
    """Card ids per stage as the board first chose them: all matching deals ranked."""
    since = NOW.date() - timedelta(days=deals.CLOSED_DAYS)
    where, params = deals._board_where(user, pipeline_id, filters.get("owners"),
                                       filters.get("search", ""), filters.get("close_from"),
                                       filters.get("close_to"), filters.get("currency"), since)
    sort = ("d.amount DESC NULLS LAST" if order == "amount"
            else "d.expected_close_date ASC NULLS LAST")
    found = db.query(
        "SELECT id, stage_id FROM (SELECT d.id, d.stage_id, row_number() OVER"
        f" (PARTITION BY d.stage_id ORDER BY {sort}, d.id) AS rank FROM deals d"
        " JOIN stages s ON s.id = d.stage_id LEFT JOIN customers c ON c.id = d.customer_id"
        f" WHERE {where}) ranked WHERE rank <= $n ORDER BY stage_id, rank",
        {**params, "n": per_stage})
    out: dict[int, list[int]] = {}
    for r in found:
        out.setdefault(r["stage_id"], []).append(r["id"])
    return out


@pytest.fixture
def many_deals(db, team, stage_ids):
    rng = random.Random(6)
    cust = [customers.create_customer(db, team["admin"], {"name": n, "kind": "company"})
            for n in ("Acme", "Globex", "Initech")]
    pid = pipelines.default_pipeline_id(db)
    stages = pipelines.stages_of(db, pid)
    for i in range(160):
        st = rng.choice(stages)
        closed = None if st["kind"] == "open" else NOW.date() - timedelta(days=rng.choice([3, 200]))
        db.query(
            "INSERT INTO deals (title, customer_id, owner_id, amount, currency, pipeline_id,"
            " stage_id, expected_close_date, closed_on, stage_entered_at, created_at, updated_at,"
            " deleted_at) VALUES ($t, $c, $o, $a, $cur, $p, $s, $close, $closed, $at, $at, $at,"
            " $del)",
            {"t": rng.choice(["Big one", "Renewal", "Pilot"]), "c": rng.choice(cust + [None]),
             "o": rng.choice([team["reza"].id, team["sam"].id, None]),
             "a": rng.choice([None, 100, 100, 250, 900]), "cur": rng.choice(["USD", "USD", "EUR"]),
             "p": pid, "s": st["id"],
             "close": rng.choice([None, date(2026, 12, 1), date(2027, 1, 15)]),
             "closed": closed, "at": NOW - timedelta(days=rng.randrange(40)),
             "del": NOW if rng.random() < 0.05 else None})
    for deal_id in rng.sample([r["id"] for r in db.query("SELECT id FROM deals")], 60):
        db.query("INSERT INTO tasks (title, due_at, status, deal_id, created_at, updated_at,"
                 " deleted_at) VALUES ('Call', $due, $status, $d, $at, $at, $del)",
                 {"due": NOW + timedelta(hours=rng.choice([-30, -1, 2])),
                  "status": rng.choice(["open", "open", "done"]), "d": deal_id, "at": NOW,
                  "del": NOW if rng.random() < 0.2 else None})
    return pid


BOARDS = [
    {}, {"order": "close"}, {"per_stage": 3}, {"per_stage": 3, "order": "close"},
    {"search": "acme"}, {"search": "pilot", "order": "close"}, {"currency": "EUR"},
    {"close_from": date(2026, 12, 1), "close_to": date(2026, 12, 31)},
]


@pytest.mark.parametrize("who", ["maria", "reza"])
@pytest.mark.parametrize("spec", BOARDS)
def test_board_cards_are_the_top_n_of_each_stage(db, team, many_deals, who, spec):
    spec = dict(spec)
    per_stage, order = spec.pop("per_stage", 20), spec.pop("order", "amount")
    columns = deals.board(db, team[who], many_deals, per_stage=per_stage, order=order, now=NOW,
                          **spec)
    want = reference_cards(db, team[who], many_deals, per_stage, order, **spec)
    for col in columns:
        assert [c["id"] for c in col["cards"]] == want.get(col["id"], [])
        assert col["more"] == col["count"] - len(col["cards"])
    for owners in ([team["sam"].id], [team["reza"].id, team["sam"].id]):
        columns = deals.board(db, team["maria"], many_deals, owners=owners, per_stage=per_stage,
                              order=order, now=NOW, **spec)
        want = reference_cards(db, team["maria"], many_deals, per_stage, order, owners=owners,
                               **spec)
        for col in columns:
            assert [c["id"] for c in col["cards"]] == want.get(col["id"], [])


def test_board_cards_carry_names_and_overdue_tasks(db, team, many_deals):
    columns = deals.board(db, team["maria"], many_deals, now=NOW)
    overdue = {r["deal_id"] for r in db.query(
        "SELECT deal_id FROM tasks WHERE status = 'open' AND deleted_at IS NULL"
        " AND due_at < $now", {"now": NOW})}
    want = {r["id"]: (r["customer"], r["owner"], r["id"] in overdue) for r in db.query(
        "SELECT d.id, coalesce(c.name, '') AS customer, coalesce(u.name, '') AS owner"
        " FROM deals d LEFT JOIN customers c ON c.id = d.customer_id"
        " LEFT JOIN users u ON u.id = d.owner_id")}
    cards = list(itertools.chain.from_iterable(c["cards"] for c in columns))
    assert any(c["overdue"] for c in cards) and not all(c["overdue"] for c in cards)
    for card in cards:
        assert (card["customer"], card["owner"], card["overdue"]) == want[card["id"]]


# --- updates ---------------------------------------------------------------------------------

def test_update_returns_what_a_fresh_read_returns(db, team):
    lead_id = leads.create_lead(db, team["reza"], {"last_name": "Khan", "estimated_value": "10"})
    row = leads.update_lead(db, team["maria"], lead_id, {"estimated_value": "12.5",
                                                         "owner_id": team["sam"].id}, 1)
    assert row == records.fetch(db, leads.LEADS, lead_id)
    assert (row["owner_name"], row["updated_by_name"]) == ("Sam Seller", "Maria Manager")
    assert row["record_title"] == "Khan"
    same = leads.update_lead(db, team["maria"], lead_id, {"estimated_value": "12.50"}, 2)
    assert same == row  # nothing changed: the row as it is, names included


def test_conflict_carries_the_full_current_row(db, team):
    lead_id = leads.create_lead(db, team["reza"], {"last_name": "Khan"})
    leads.update_lead(db, team["maria"], lead_id, {"status": "contacted"}, 1)
    with pytest.raises(ConflictError) as exc:
        leads.update_lead(db, team["reza"], lead_id, {"status": "qualified"}, 1)
    assert exc.value.current == records.fetch(db, leads.LEADS, lead_id)
    assert exc.value.current["updated_by_name"] == "Maria Manager"
    assert exc.value.current["owner_name"] == "Reza Rahimi"


def test_fetch_without_owner_or_editor(db, team):
    lead_id = leads.create_lead(db, team["admin"], {"last_name": "Nobody"})
    db.query("UPDATE leads SET owner_id = NULL, updated_by = NULL WHERE id = $id",
             {"id": lead_id})
    row = records.fetch(db, leads.LEADS, lead_id)
    assert (row["owner_name"], row["updated_by_name"]) == (None, None)
    assert records.fetch(db, leads.LEADS, 10**6) is None
