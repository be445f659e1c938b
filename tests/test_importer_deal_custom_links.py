"""Custom link fields on deal files (crm/custom_fields.py, type "ref") go set-based on creates:
resolved by name as the row path resolves them (importer_refs.ref_map: the same words,
near-miss suggestions and visibility), checked live and visible at the write
(importer_recheck.refuse, as records._check_links checks them); compared with the row path."""
import pytest

from crm import deals, importer
from tests.importer_dbs import add_links
from tests.test_importer_refs import compare


LINKED = "deals"  # the table of the linked fixture's custom link fields


DEALS = [
    "Deal name,Stage,Customer,Referred by,Main rival,Owner",
    "One,Proposal,Acme,Acme,Rival Inc,",
    "Two,Proposal,, acme ,rival inc,",
    "Three,Proposal,,Acmee,Rivl Inc,",  # near misses: did you mean?
    "Four,Proposal,,Nobody Inc,,",
    "Five,Proposal,,شرکت پارس,,Reza Rahimi",
    "Six,Proposal,,Sam's Shop,,",  # a rep sees their own customers alone
    "Seven,Proposal,,Twin,,",  # two of that name: the last one
    "Eight,Proposal,,Gone Ltd,,",  # trashed: no customer
    "Nine,Proposal,,1,,",  # an id
    "Ten,Proposal,,1984,,",  # a name of digits
    "Eleven,Proposal,,n/a,-,",
    "Twelve,Proposal,Reza Retail,Reza Retail,,reza",
    "Thirteen,Proposal,Acme,Nobody Inc,Rivl Inc,",  # two errors in one row
]


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_new_deals_with_custom_links_take_the_fast_path_with_the_row_paths_results(
        linked, user):
    found = compare(linked, deals.DEALS, DEALS, user)
    reasons = dict(found["rejected"])
    assert "Did you mean rival inc?" in str(reasons[4])
    assert ("Did you mean acme?" in str(reasons[4])) == (user == "admin")  # a rep's alone
    assert "Nobody Inc" in str(reasons[5]) and "Nobody Inc" in str(reasons[14])
    assert 9 in reasons  # a trashed customer
    if user == "admin":
        assert found["counts"]["create"] >= 7, found
        stored = {r["line"]: r for r in found["stored"]}
        twins = linked[1][0].query("SELECT id FROM customers WHERE name = 'Twin' ORDER BY id")
        assert stored[8]["referrer"] == twins[-1]["id"] and stored[10]["referrer"] == 1
        assert stored[2]["rival"] == stored[3]["rival"] is not None
    else:
        assert 7 in reasons
    assert found["undone"]["undone"] == found["counts"]["create"]
    assert not any(r["live"] for r in found["after"] if r["title"] in ("One", "Two"))


def test_a_custom_link_to_a_trashed_competitor_refuses_the_import_alike(linked):
    """The resolver reads competitors whole (trashed too): the row path's write refuses a
    trashed one (records._check_links), and so does the set-based write."""
    found = compare(linked, deals.DEALS, DEALS[:3] + ["Fourteen,Proposal,,,Closed Rival,"])
    assert found["error"] and "does not exist" in found["error"], found["error"]


def test_a_customer_trashed_since_the_dry_run_refuses_alike(linked):
    from tests.test_importer_recheck import compare as compare_after, trash_customer

    found = compare_after(linked, deals.DEALS, ["Deal name,Stage,Referred by", "One,Proposal,Acme"],
                          trash_customer("Acme"))
    assert found["error"] == "Row 2: Referred by: record #{} does not exist".format(
        linked[0][0].scalar("SELECT id FROM customers WHERE name = 'Acme'"))


def link_file(n: int) -> str:
    """Deal updates naming customers in a custom link: their own, another rep's, a trashed
    one, near misses, other spellings, none, an id."""
    from tests.test_importer_deal_updates import title

    names = ["Analytical Engines Ltd", "Nobody Inc", "Bletchley Park Trst", "UAB Saulė",
             "Gone Ltd", " bletchley PARK trust ", "", "پارسیان تجارت", "n/a"]
    lines = ["Title,Referred by,Amount"] + [
        f"{title(i)},{names[(i + i // 3) % len(names)]},{i * 10 + i % 2}" for i in range(n)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("user", ["admin", "reza"])
def test_deal_updates_with_a_custom_link_are_written_set_based_alike(two, user, monkeypatch):
    from crm import customers
    from tests import test_importer_deal_updates as du

    for db, team in two:
        du.seed(db, team, 40)
        gone = customers.create_customer(db, team["admin"], {"name": "Gone Ltd"})
        customers.delete_customer(db, team["admin"], gone)
    for db, team in two:
        add_links(db, team, "deals")
    real, rows = importer.write_row, []
    monkeypatch.setattr(importer, "write_row",
                        lambda *a, **k: rows.append(a) or real(*a, **k))
    counts, rejected, _after, undone, _final = du.compare(two, link_file(40), user=user)
    assert len(rows) == counts["update"]  # the row path's update_deal_in; set-based none
    reasons = " ".join(str(e) for _l, e in rejected)
    for words in ("no 'Nobody Inc' here", "no 'Gone Ltd' here"):
        assert words in reasons, words
    assert ("no 'UAB Saulė' here" in reasons) == (user == "reza")  # sam's customer
    assert counts["update"] > 3 and undone["undone"] == counts["update"]
