"""Backup to Parquet with a manifest; exact restore into an empty database; refusals."""
import json
import zipfile
from decimal import Decimal

import pytest

from crm import auth, backup, demo, leads
from crm.db import Database


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A database with the small demo, plus an extra table holding every awkward type
    (also made in the targets: restore only fills tables that exist)."""
    folder = tmp_path_factory.mktemp("source")
    db = Database(folder / "crm.duckdb")
    demo.load_demo(db, "small", password="Secret12345")
    _typed_table(db)
    with db.transaction() as cur:
        cur.execute("INSERT INTO zz_types VALUES (1, 1.25, 'تهران = ;\n\"x\"', [1, 2],"
                    " ['a', NULL], MAP {'k': 'v'}, TIMESTAMPTZ '2026-03-01 10:00:00+03:30',"
                    " 18446744073709551615, DATE '2026-02-28', NULL, true)")
        cur.execute("INSERT INTO zz_types (id) VALUES (2)")
    yield db
    db.close()


def _typed_table(db):
    with db.transaction() as cur:
        cur.execute("CREATE TABLE zz_types (id BIGINT PRIMARY KEY, money DECIMAL(14,2),"
                    " words VARCHAR, numbers BIGINT[], texts VARCHAR[],"
                    " pairs MAP(VARCHAR, VARCHAR), stamp TIMESTAMPTZ, big UBIGINT, day DATE,"
                    " nothing VARCHAR, flag BOOLEAN)")


@pytest.fixture
def fresh(tmp_path):
    db = Database(tmp_path / "target.duckdb")
    _typed_table(db)
    yield db
    db.close()


@pytest.fixture(scope="module")
def saved(source, tmp_path_factory):
    folder = tmp_path_factory.mktemp("backup") / "bk"
    manifest = backup.backup(source, folder)
    return folder, manifest


def _tables(db) -> list[str]:
    return [r["table_name"] for r in db.query(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
        " ORDER BY table_name")]


def _sequences(db) -> dict:
    return {r["sequence_name"]: r["last_value"] for r in db.query(
        "SELECT sequence_name, last_value FROM duckdb_sequences()")}


def test_manifest_lists_every_table_with_rows_and_checksums(source, saved):
    folder, manifest = saved
    assert json.loads((folder / "manifest.json").read_text()) == manifest
    assert manifest["app"] == "crm"
    assert manifest["schema_version"] == source.scalar("SELECT max(version) FROM schema_migrations")
    assert set(manifest["tables"]) == set(_tables(source)) - set(backup.SKIPPED)
    assert "calendar_days" in manifest["skipped"]
    for table, entry in manifest["tables"].items():
        assert entry["rows"] == source.scalar(f"SELECT count(*) FROM {table}")
        assert entry["sha256"] == backup._sha256(folder / f"{table}.parquet")
        assert len(entry["sha256"]) == 64
    assert manifest["tables"]["leads"]["rows"] > 100
    assert manifest["sequences"]["leads_id_seq"] == source.scalar("SELECT max(id) FROM leads") + 1


def test_round_trip_restores_every_table_and_sequence_exactly(source, saved, fresh):
    folder, manifest = saved
    backup.restore(fresh, folder)
    for table in _tables(source):
        cols = ", ".join(_comparable(source, table))
        query = f"SELECT {cols} FROM {table} ORDER BY ALL"
        assert fresh.query(query) == source.query(query), table
    assert _sequences(fresh) == _sequences(source)
    odd = fresh.one("SELECT * EXCLUDE (stamp), stamp::VARCHAR AS stamp FROM zz_types"
                    " WHERE id = 1")
    assert odd["money"] == Decimal("1.25") and odd["numbers"] == [1, 2]
    assert odd["big"] == 18446744073709551615 and odd["words"].startswith("تهران")
    assert odd["stamp"] == source.scalar("SELECT stamp::VARCHAR FROM zz_types WHERE id = 1")
    # new records continue after the restored ids
    top = fresh.scalar("SELECT max(id) FROM leads")
    new_id = leads.create_lead(fresh, auth.get_user(fresh, "maria"), {"last_name": "After"})
    assert new_id > top
    # the restored team can sign in with their passwords
    assert auth.verify_login(fresh, "maria", "Secret12345")


def _comparable(db, table) -> list[str]:
    """The table's columns; a TIMESTAMPTZ as its exact text (Python needs pytz to fetch it)."""
    return [f'"{r["column_name"]}"::VARCHAR' if r["data_type"].startswith("TIMESTAMP WITH")
            else f'"{r["column_name"]}"' for r in db.query(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = $t"
                " ORDER BY column_index", {"t": table})]


def test_restore_from_the_zip(source, fresh, tmp_path):
    archive = tmp_path / backup.zip_name()
    archive.write_bytes(backup.backup_zip(source))
    with zipfile.ZipFile(archive) as z:
        assert "manifest.json" in z.namelist() and "leads.parquet" in z.namelist()
    backup.restore(fresh, archive)
    assert fresh.scalar("SELECT count(*) FROM deals") == source.scalar(
        "SELECT count(*) FROM deals")


def test_restore_refuses_a_database_with_data(saved, source):
    folder, _ = saved
    with pytest.raises(backup.BackupError, match="not empty"):
        backup.restore(source, folder)


def _copy(folder, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def _untouched(db) -> bool:
    return db.scalar("SELECT count(*) FROM users") == 0 and db.scalar(
        "SELECT count(*) FROM leads") == 0


def test_restore_refuses_a_damaged_file(saved, fresh, tmp_path):
    copy = _copy(saved[0], tmp_path)
    data = bytearray((copy / "leads.parquet").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "leads.parquet").write_bytes(bytes(data))
    with pytest.raises(backup.BackupError, match="damaged: leads.parquet"):
        backup.restore(fresh, copy)
    assert _untouched(fresh)


def test_restore_refuses_a_missing_file_or_manifest(saved, fresh, tmp_path):
    copy = _copy(saved[0], tmp_path)
    (copy / "deals.parquet").unlink()
    with pytest.raises(backup.BackupError, match="deals.parquet is missing"):
        backup.restore(fresh, copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(backup.BackupError, match="no manifest.json"):
        backup.restore(fresh, copy)
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(backup.BackupError, match="damaged"):
        backup.restore(fresh, copy)
    with pytest.raises(backup.BackupError, match="does not exist"):
        backup.restore(fresh, tmp_path / "nowhere")
    assert _untouched(fresh)


def test_restore_refuses_a_newer_schema(saved, fresh, tmp_path):
    copy = _copy(saved[0], tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["schema_version"] = "999_from_the_future"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(backup.BackupError, match="newer version of the CRM.*upgrade first"):
        backup.restore(fresh, copy)
    assert _untouched(fresh)


def test_restore_rolls_back_when_a_count_disagrees(saved, fresh, tmp_path):
    """A manifest whose row count lies (checksums still fine) fails and writes nothing."""
    copy = _copy(saved[0], tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["tables"]["tasks"]["rows"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(backup.BackupError, match="tasks has"):
        backup.restore(fresh, copy)
    assert _untouched(fresh)
    assert fresh.scalar("SELECT count(*) FROM stages") > 0  # the seeded stages are back


def test_restore_refuses_unknown_tables(saved, fresh, tmp_path):
    copy = _copy(saved[0], tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["tables"]["../etc"] = manifest["tables"]["leads"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(backup.BackupError, match="damaged"):
        backup.restore(fresh, copy)


def test_backup_wants_an_empty_directory(source, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "note.txt").write_text("x")
    with pytest.raises(backup.BackupError, match="not empty"):
        backup.backup(source, tmp_path / "full")
    manifest = backup.backup(source, tmp_path / "new" / "deeper")
    assert (tmp_path / "new" / "deeper" / "manifest.json").exists() and manifest["tables"]


def test_tables_are_ordered_parents_first(fresh):
    order = backup._parents_first(fresh.cursor(), backup._tables(fresh.cursor()))
    for child, parent in [("contacts", "customers"), ("stages", "pipelines"),
                          ("deal_stage_history", "deals"), ("activities", "contacts"),
                          ("tasks", "deals"), ("deal_products", "products")]:
        assert order.index(parent) < order.index(child)
