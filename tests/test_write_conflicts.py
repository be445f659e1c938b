"""Writers that collide: a transaction that loses to a concurrent one (PostgreSQL: a deadlock
or serialization failure; DuckDB: "Conflict on update") runs again from the start a few times,
then ends in one clear WriteConflict with nothing of it written. The collisions here are real:
a second connection holds the rows the unit of work needs."""
import threading

import psycopg
import pytest

from crm import conversion, db as db_module, deals, leads, pipelines, records
from crm.db import Database, retried


@retried
def _add_one_to_both(db, first: int, second: int, between) -> None:
    """A unit of work of two statements: a retry must rerun both, not only the one that failed."""
    with db.transaction() as cur:
        cur.execute("UPDATE leads SET estimated_value = estimated_value + 1 WHERE id = $id",
                    {"id": first})
        between()
        cur.execute("UPDATE leads SET estimated_value = estimated_value + 1 WHERE id = $id",
                    {"id": second})


def _values(db, *ids) -> list[int]:
    return [int(db.scalar("SELECT estimated_value FROM leads WHERE id = $i", {"i": i}))
            for i in ids]


@pytest.fixture
def pair(db, team):
    return [leads.create_lead(db, team["reza"], {"last_name": name, "estimated_value": "0"})
            for name in ("First", "Second")]


class Collider:
    """Makes every attempt of _add_one_to_both collide with another connection on the second
    row, `rounds` times; then lets it through (it commits its own +1 on both rows once, or
    rolls back when `keep` is False).

    DuckDB: the other transaction has updated the second row and not committed yet; the unit
    of work's update of it fails at once. PostgreSQL: a true deadlock; the other session holds
    the second row and waits for the first, with a long deadlock_timeout, so the unit of work
    is the one PostgreSQL aborts."""

    def __init__(self, db, first: int, second: int, rounds: int, keep: bool):
        self.db, self.first, self.second, self.keep = db, first, second, keep
        self.rounds, self.attempts, self.errors = rounds, 0, []
        self.pg = db.engine == "postgresql"
        if self.pg:
            self.con = psycopg.connect(db.path, autocommit=True)
            self.con.execute("SET deadlock_timeout = '60s'")
        else:
            self.con = db._con.cursor()
        self.thread = None

    def between(self) -> None:
        """Called by the unit of work after its first statement."""
        self.attempts += 1
        if self.attempts > self.rounds:
            return
        if not self.pg:
            self.con.execute("BEGIN TRANSACTION")
            self.con.execute("UPDATE leads SET estimated_value = estimated_value + 1"
                             " WHERE id = $id", {"id": self.second})
            return
        holding = threading.Event()
        self.thread = threading.Thread(target=self._deadlock, args=(holding,))
        self.thread.start()
        assert holding.wait(30)

    def _deadlock(self, holding) -> None:
        try:
            self.con.execute("BEGIN")
            self.con.execute("UPDATE leads SET estimated_value = estimated_value + 1"
                             " WHERE id = %(id)s", {"id": self.second})
            holding.set()
            # waits for the unit of work's row; it waits for ours: PostgreSQL aborts it
            self.con.execute("UPDATE leads SET estimated_value = estimated_value + 1"
                             " WHERE id = %(id)s", {"id": self.first})
            self.con.execute("COMMIT" if self.keep and self.attempts == self.rounds
                             else "ROLLBACK")
        except Exception as exc:  # reported by the test
            self.errors.append(exc)
            holding.set()

    def backoff(self, attempt: int) -> None:
        """Replaces Database._backoff: the other transaction ends before the next attempt."""
        if self.pg:
            self.thread.join(30)
        else:
            self.con.execute("COMMIT" if self.keep and self.attempts == self.rounds
                             else "ROLLBACK")

    def close(self) -> None:
        if not self.pg:
            try:
                self.con.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - nothing open
                pass
        self.con.close()


def _fast_deadlocks(db) -> Database:
    """PostgreSQL looks for deadlocks after deadlock_timeout (1 s): 100 ms for this
    database's new connections; a new handle, whose pool opens them."""
    if db.engine != "postgresql":
        return db
    with psycopg.connect(db.path, autocommit=True) as con:
        name = con.execute("SELECT current_database()").fetchone()[0]
        con.execute(f"ALTER DATABASE {name} SET deadlock_timeout = '100ms'")
    return Database(db.path)


def test_a_colliding_unit_of_work_runs_again_and_saves(db, pair, monkeypatch):
    first, second = pair
    handle = _fast_deadlocks(db)
    collider = Collider(handle, first, second, rounds=1, keep=True)
    backoffs = []
    monkeypatch.setattr(handle, "_backoff", lambda a: (backoffs.append(a),
                                                       collider.backoff(a)))
    try:
        _add_one_to_both(handle, first, second, collider.between)
    finally:
        collider.close()
        if handle is not db:
            handle.close()
    assert collider.errors == [] and backoffs == [1] and collider.attempts == 2
    # the other writer's +1 on the second row (and on the first, on PostgreSQL) and ours on
    # both: the failed attempt left nothing, the retry did both statements once
    other_first = 1 if db.engine == "postgresql" else 0
    assert _values(db, first, second) == [1 + other_first, 2]


def test_a_unit_of_work_that_keeps_colliding_is_one_clear_error_and_writes_nothing(
        db, pair, monkeypatch):
    first, second = pair
    handle = _fast_deadlocks(db)
    collider = Collider(handle, first, second, rounds=db_module.ATTEMPTS, keep=False)
    backoffs = []
    monkeypatch.setattr(handle, "_backoff", lambda a: (backoffs.append(a),
                                                       collider.backoff(a)))
    try:
        with pytest.raises(records.WriteConflict) as caught:
            _add_one_to_both(handle, first, second, collider.between)
        if handle.engine == "postgresql":
            collider.thread.join(30)
    finally:
        collider.close()
        if handle is not db:
            handle.close()
    assert collider.errors == []
    assert collider.attempts == db_module.ATTEMPTS
    assert backoffs == list(range(1, db_module.ATTEMPTS))
    assert str(caught.value) == ("Others were saving the same records at the same moment, so "
                                 "this was not saved; please try again.")
    assert isinstance(caught.value, records.ConflictError)  # the pages' conflict handling
    assert _values(db, first, second) == [0, 0]


@pytest.mark.postgresql_only
def test_a_serialization_failure_reruns_with_what_the_other_saved(db, pair, monkeypatch):
    """A unit of work in REPEATABLE READ reads a value, another session saves it meanwhile,
    and the unit of work's UPDATE of it fails with SQLSTATE 40001: the rerun reads the other's
    value and adds to it (value + 1 from a stale read would lose the other's +10)."""
    first, _second = pair
    seen = []

    @retried
    def add_one(database):
        with database.transaction() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            value = int(cur.execute("SELECT estimated_value FROM leads WHERE id = $id",
                                    {"id": first}).fetchone()[0])
            seen.append(value)
            if len(seen) == 1:
                with psycopg.connect(db.path, autocommit=True) as other:
                    other.execute("UPDATE leads SET estimated_value = estimated_value + 10"
                                  " WHERE id = %(id)s", {"id": first})
            cur.execute("UPDATE leads SET estimated_value = $v WHERE id = $id",
                        {"v": value + 1, "id": first})

    backoffs = []
    monkeypatch.setattr(db, "_backoff", backoffs.append)
    add_one(db)
    assert seen == [0, 10] and backoffs == [1]
    assert _values(db, first) == [11]


def test_a_joined_transaction_is_not_retried_alone(db, pair, monkeypatch):
    """Inside an open transaction the unit of work runs once: only the outermost transaction
    can be rolled back and run again (the collision goes up to it)."""
    first, second = pair
    calls = []

    @retried
    def inner(database):
        calls.append(1)
        raise records.WriteConflict()

    monkeypatch.setattr(db, "_backoff", lambda a: None)
    with pytest.raises(records.WriteConflict):
        with db.transaction():
            inner(db)
    assert calls == [1]
    calls.clear()
    with pytest.raises(records.WriteConflict):
        inner(db)
    assert len(calls) == db_module.ATTEMPTS


def test_the_commands_where_writers_meet_are_retried():
    for command in (records.create, records.update, records._set_deleted, deals.create_deal,
                    deals.update_deal, deals.move_deal, conversion.convert_lead):
        assert getattr(command, "__wrapped__", None) is not None, command.__name__


@pytest.mark.duckdb_only
@pytest.mark.parametrize("command", ["update", "move", "convert"])
def test_a_command_that_collides_on_duckdb_runs_again(db, team, monkeypatch, command):
    """The real commands, against a transaction of the same process that holds their row."""
    admin = team["admin"]
    stages = [s["id"] for s in pipelines.stages_of(db, pipelines.default_pipeline_id(db))
              if s["kind"] == "open"]
    lead_id = leads.create_lead(db, admin, {"last_name": "Held", "company": "Held Ltd",
                                            "status": "qualified"})
    deal_id = deals.create_deal(db, admin, {"title": "Held", "stage_id": stages[0]})
    table, row = ("deals", deal_id) if command == "move" else ("leads", lead_id)
    other = db._con.cursor()
    other.execute("BEGIN TRANSACTION")
    other.execute(f"UPDATE {table} SET version = version + 1 WHERE id = $id", {"id": row})
    backoffs = []

    def release(attempt):
        backoffs.append(attempt)
        other.execute("ROLLBACK")

    monkeypatch.setattr(db, "_backoff", release)
    try:
        if command == "update":
            records.update(db, admin, leads.LEADS, lead_id, {"company": "Vilnius Ltd"}, 1)
            assert records.get(db, admin, leads.LEADS, lead_id)["company"] == "Vilnius Ltd"
        elif command == "move":
            deals.move_deal(db, admin, deal_id, stages[1], expected_version=1)
            assert len(deals.stage_history(db, admin, deal_id)) == 2
        else:
            made = conversion.convert_lead(db, admin, lead_id, 1,
                                           customer={"name": "Held Ltd", "kind": "company"})
            assert db.scalar("SELECT count(*) FROM customers WHERE id = $c",
                             {"c": made["customer_id"]}) == 1
    finally:
        other.close()
    assert backoffs == [1]


@pytest.mark.duckdb_only
def test_the_cli_reports_a_collision_in_one_line(db, team, tmp_path, capsys):
    """An import that collides with a writer of the same process is refused with one line
    and a failure code, not a traceback."""
    from crm.__main__ import main

    lead_id = leads.create_lead(db, team["admin"], {"last_name": "Held",
                                                    "email": "held@example.com"})
    data = tmp_path / "leads.csv"
    data.write_text("email,company\nheld@example.com,New Co\n", encoding="utf-8")
    other = db._con.cursor()
    other.execute("BEGIN TRANSACTION")
    other.execute("UPDATE leads SET version = version + 1 WHERE id = $id", {"id": lead_id})
    try:
        code = main(["--db", str(db.path), "import", "leads", str(data), "--mode", "update",
                     "--key", "email"])
    finally:
        other.execute("ROLLBACK")
        other.close()
    err = capsys.readouterr().err
    assert code == 1
    assert err == ("error: Others were saving the same records at the same moment, so this was"
                   " not saved; please try again.\n")


@pytest.mark.duckdb_only
def test_the_page_says_so_in_one_line_and_keeps_the_typing(app_env, team):
    """The lead page's save collides on every attempt with another transaction of the same
    process (the page's own Database handle, the test's holds the row): a message, not a
    traceback, and the form keeps what was typed."""
    from tests.test_pages import page

    lead_id = leads.create_lead(app_env, team["admin"], {"last_name": "Held"})
    at = page("pages/lead.py", user="admin", id=str(lead_id))
    form = f"leads:{lead_id}:v1"
    at.text_input(key=f"{form}:title").input("CFO")
    other = app_env._con.cursor()
    other.execute("BEGIN TRANSACTION")
    other.execute("UPDATE leads SET version = version + 1 WHERE id = $id", {"id": lead_id})
    try:
        at.button(key=f"FormSubmitter:{form}-Save changes").click().run()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert not at.exception
    assert [e.value.replace("\\", "") for e in at.error] == [  # unescaped markdown
        "Others were saving the same records at the same moment, so this was not saved; "
        "please try again."]
    assert at.text_input(key=f"{form}:title").value == "CFO"
    assert records.get(app_env, team["admin"], leads.LEADS, lead_id)["title"] is None


@pytest.mark.duckdb_only
def test_a_collision_inside_an_automation_rule_reruns_the_whole_save(db, team, monkeypatch):
    """A rule's action that collides is not the rule's failure (which would refuse the save):
    the save that triggered it runs again, rule and all, once."""
    from crm import activities
    from tests.test_rules import rule, runs_of

    held = leads.create_lead(db, team["admin"], {"last_name": "Held"})
    r = rule(db, team["admin"])
    insert_task = activities.insert_task

    def touching_the_held_lead(cur, user, values):
        cur.execute("UPDATE leads SET version = version + 1 WHERE id = $id", {"id": held})
        return insert_task(cur, user, values)

    monkeypatch.setattr(activities, "insert_task", touching_the_held_lead)
    other = db._con.cursor()
    other.execute("BEGIN TRANSACTION")
    other.execute("UPDATE leads SET version = version + 1 WHERE id = $id", {"id": held})
    backoffs = []

    def release(attempt):
        backoffs.append(attempt)
        other.execute("ROLLBACK")

    monkeypatch.setattr(db, "_backoff", release)
    try:
        leads.create_lead(db, team["reza"], {"last_name": "Triggers", "first_name": "Tia"})
    finally:
        other.close()
    assert backoffs == [1]
    assert db.scalar("SELECT count(*) FROM leads WHERE last_name = 'Triggers'") == 1
    assert [x["status"] for x in runs_of(db, r)] == ["ok"]
    assert db.scalar("SELECT count(*) FROM tasks WHERE title = 'Call Tia'") == 1
