"""python -m crm kpis and snapshot: the same figures as the pages, from the command line."""
import json

from crm.__main__ import main
from tests.test_analytics import sales  # noqa: F401  (the fixture)


def test_kpis_as_json_match_the_hand_computed_figures(db, team, sales, capsys):  # noqa: F811
    db.close()
    code = main(["kpis", "--db", str(db.path), "--from", "2026-11-01", "--to", "2026-11-30",
                 "--format", "json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["period"] == {"from": "2026-11-01", "to": "2026-11-30",
                                "previous_from": "2026-10-02", "previous_to": "2026-10-31"}
    tiles = report["tiles"]
    assert tiles["open_pipeline"]["now"]["USD"] == {"deals": 3, "amount": 12999.0,
                                                    "weighted": 4199.75}
    assert tiles["closed"]["now"]["won"]["USD"]["amount"] == 4000.0
    assert tiles["closed"]["now"]["win_rate"] == 2 / 3
    assert set(report["forecast"]) == {"USD", "EUR"}
    assert len(report["forecast"]["USD"]["periods"]) == 12


def test_kpis_for_a_rep_and_as_a_table(db, team, sales, capsys):  # noqa: F811
    db.close()
    assert main(["kpis", "--db", str(db.path), "--from", "2026-11-01", "--to", "2026-11-30",
                 "--user", "reza"]) == 0
    out = capsys.readouterr().out
    assert "KPIs for reza" in out and "win rate" in out and "50.0%" in out
    assert "forecast USD by month" in out
    assert main(["kpis", "--db", str(db.path), "--user", "nobody"]) == 1
    assert main(["kpis", "--db", str(db.path), "--from", "2026-13-01"]) == 1


def test_snapshot_once_a_day(db, team, sales, capsys):  # noqa: F811
    db.close()
    assert main(["snapshot", "--db", str(db.path)]) == 0
    assert "Stored today's forecast snapshot" in capsys.readouterr().out
    assert main(["snapshot", "--db", str(db.path)]) == 0
    assert "exists already" in capsys.readouterr().out
