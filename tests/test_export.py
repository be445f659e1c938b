"""Exports of a list: CSV, Excel (xlsx) and Parquet with the list's filter, neutralised formulas."""
import csv
import io

import duckdb
import openpyxl
import pytest

from crm import auth, i18n, leads, records
from crm.records import Query

HOSTILE = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+2", "-3+4", "@SUM(A1)", "\tcmd", "\rcmd"]


@pytest.fixture
def people(db, team):
    reza, sam = team["reza"], team["sam"]
    ids = []
    for i, name in enumerate(HOSTILE):
        ids.append(leads.create_lead(db, reza, {"last_name": f"Hostile {i}",
                                                "company": f"Acme {i}",
                                                "estimated_value": "1200.50"}))
        with db.transaction() as cur:  # as stored by any path (forms trim a leading tab)
            cur.execute("UPDATE leads SET last_name = $v WHERE id = $id",
                        {"v": name, "id": ids[-1]})
    ids.append(leads.create_lead(db, reza, {"last_name": "Plain", "first_name": "Ada",
                                            "company": "Persian پارسی"}))
    ids.append(leads.create_lead(db, sam, {"last_name": "Other", "company": "Sam's"}))
    return ids


def _csv(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def _xlsx(data: bytes) -> list[dict]:
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    rows = list(sheet.iter_rows())
    header = [c.value for c in rows[0]]
    return [dict(zip(header, row)) for row in rows[1:]]


def _parquet(data: bytes, tmp_path) -> list[dict]:
    path = tmp_path / "out.parquet"
    path.write_bytes(data)
    con = duckdb.connect()
    try:
        res = con.execute("SELECT * FROM read_parquet($p)", {"p": str(path)})
        cols = [d[0] for d in res.description]
        return [dict(zip(cols, r)) for r in res.fetchall()]
    finally:
        con.close()


def test_all_formats_have_the_same_columns_and_rows(db, team, people, tmp_path):
    q = Query(sort="last_name", descending=False)
    admin = team["admin"]
    expected = [f.name for f in records.export_columns(leads.LEADS)] + ["owner_username"]
    as_csv = _csv(records.export(db, admin, leads.LEADS, q, "csv"))
    as_xlsx = _xlsx(records.export(db, admin, leads.LEADS, q, "xlsx"))
    as_parquet = _parquet(records.export(db, admin, leads.LEADS, q, "parquet"), tmp_path)
    assert list(as_csv[0]) == list(as_xlsx[0]) == list(as_parquet[0]) == expected
    ids = [int(r["id"]) for r in as_csv]
    assert ids == [r["id"].value for r in as_xlsx] == [r["id"] for r in as_parquet]
    assert sorted(ids) == sorted(people)
    assert {r["owner_username"] for r in as_parquet} == {"reza", "sam"}
    # export_csv keeps working, byte for byte the same as export(..., "csv")
    assert records.export_csv(db, admin, leads.LEADS, q) == records.export(
        db, admin, leads.LEADS, q, "csv")


def test_exports_follow_the_filter_and_the_users_rights(db, team, people, tmp_path):
    only_plain = Query(search="Plain")
    for fmt in ("csv", "xlsx", "parquet"):
        data = records.export(db, team["admin"], leads.LEADS, only_plain, fmt)
        rows = {"csv": _csv, "xlsx": _xlsx}.get(fmt, lambda d: _parquet(d, tmp_path))(data)
        assert len(rows) == 1, fmt
    # a rep exports only their own records
    rows = _parquet(records.export(db, team["sam"], leads.LEADS, Query(), "parquet"), tmp_path)
    assert [r["last_name"] for r in rows] == ["Other"]
    with pytest.raises(ValueError):
        records.export(db, team["admin"], leads.LEADS, Query(), "pdf")


def test_formulas_are_neutralised_in_csv(db, team, people):
    rows = _csv(records.export(db, team["admin"], leads.LEADS, Query()))
    names = {r["last_name"] for r in rows}
    for text in HOSTILE:
        assert "'" + text in names and text not in names


def test_formulas_are_text_cells_in_xlsx_read_back(db, team, people):
    data = records.export(db, team["admin"], leads.LEADS, Query(), "xlsx")
    rows = _xlsx(data)
    cells = {r["last_name"].value: r["last_name"] for r in rows}
    for text in HOSTILE:
        # the exact text, kept as text: never a formula (a CR is stored the OOXML way,
        # _x000D_, which Excel reads back as a CR and openpyxl leaves as it is)
        cell = cells[text.replace("\r", "_x000D_")]
        assert cell.data_type == "s", text
        assert cell.quotePrefix, text
    assert cells["Plain"].data_type == "s" and not cells["Plain"].quotePrefix
    # no cell in the workbook is a formula, also when the raw XML is read
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert not [c for row in sheet.iter_rows() for c in row if c.data_type == "f"]
    import zipfile
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        xml = b"".join(z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/"))
    assert b"<f>" not in xml and b"<f " not in xml
    # numbers stay numbers, Persian text stays as it was
    plain = next(r for r in rows if r["last_name"].value == "+1+2")
    assert float(plain["estimated_value"].value) == 1200.5
    assert any(r["company"].value == "Persian پارسی" for r in rows)


def test_xlsx_drops_characters_xml_cannot_hold(db, team):
    leads.create_lead(db, team["admin"], {"last_name": "Bell\x07 and\x00 null"})
    rows = _xlsx(records.export(db, team["admin"], leads.LEADS, Query(), "xlsx"))
    assert rows[0]["last_name"].value == "Bell and null"


def test_parquet_keeps_types_and_translated_headers(db, team, people, tmp_path):
    rows = _parquet(records.export(db, team["admin"], leads.LEADS, Query(), "parquet"),
                    tmp_path)
    hostile = next(r for r in rows if r["last_name"] == HOSTILE[0])
    assert float(hostile["estimated_value"]) == 1200.5  # typed, and text exactly as stored
    i18n.set_language("lt")
    try:
        data = records.export(db, team["admin"], leads.LEADS, Query(), "parquet",
                              translated_headers=True)
        header = list(_parquet(data, tmp_path)[0])
        assert header[-1] == i18n.gettext("Owner (username)") != "Owner (username)"
        assert leads.LEADS.spec["last_name"].shown_label in header
    finally:
        i18n.set_language("en")


def test_export_to_writes_the_file_only_when_complete(db, team, people, tmp_path):
    target = tmp_path / "leads.xlsx"
    count = records.export_to(db, auth.SYSTEM, leads.LEADS, Query(), target, "xlsx")
    assert count == len(people) and target.exists()
    assert not list(tmp_path.glob("*.part"))
    assert len(_xlsx(target.read_bytes())) == len(people)


def test_large_exports_stream_in_batches(db, team, monkeypatch):
    """Rows come from the cursor in batches, never all at once."""
    with db.transaction() as cur:
        cur.execute("INSERT INTO leads (id, last_name, status, source, created_at, updated_at,"
                    " version, consent) SELECT nextval('leads_id_seq'), 'L' || i, 'new',"
                    " 'website', now(), now(), 1, false FROM generate_series(1, 2500) r(i)")
    sizes = []
    real = records._write_csv

    def spy(out, headers, chunks):
        def counted():
            for chunk in chunks:
                sizes.append(len(chunk))
                yield chunk
        return real(out, headers, counted())

    monkeypatch.setattr(records, "_write_csv", spy)
    data = records.export(db, team["admin"], leads.LEADS, Query(), "csv", batch=1000)
    assert sizes == [1000, 1000, 500]
    assert len(_csv(data)) == 2500


def test_xlsx_refuses_more_rows_than_excel_holds(db, team, people, monkeypatch):
    monkeypatch.setattr(records, "XLSX_MAX_ROWS", 3)
    with pytest.raises(ValueError, match="CSV or Parquet"):
        records.export(db, team["admin"], leads.LEADS, Query(), "xlsx")


def test_the_list_page_offers_three_formats(app_env, team):
    from tests.test_pages import page

    at = page("pages/leads.py", user="admin")
    choice = at.radio(key="leads:export_format")
    assert choice.options == ["CSV", "Excel (xlsx)", "Parquet"] and choice.value == "csv"
    assert [b.proto.label for b in at.get("download_button")] == ["Download CSV"]
    choice.set_value("xlsx").run()
    assert [b.proto.label for b in at.get("download_button")] == ["Download Excel"]
    at.radio(key="leads:export_format").set_value("parquet").run()
    button = at.get("download_button")[0].proto
    assert button.label == "Download Parquet" and button.ignore_rerun  # built on click
    assert not at.exception


def test_settings_offer_an_admin_a_backup_zip(app_env, team):
    from tests.test_pages import page

    at = page("pages/settings.py", user="admin")
    assert not at.exception
    button = at.get("download_button")[0].proto
    assert button.label == "Download a backup (zip)" and button.ignore_rerun
