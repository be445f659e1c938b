"""The near-miss suggestion read through a SQL shortlist (crm/importer_near.py) is difflib's
own answer over every name, and the names map read a text at a time is importer._resolver's
(the row path's)."""
import difflib
import random

import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from crm import customers, importer, importer_near
from crm.db import Database
from tests.importer_dbs import make_db

# letters that make near misses likely, and the awkward ones: cases SQL and Python lower
# alike or not (İ, Σ), white space str.strip() removes, Persian letters and digits
ALPHABET = "aabcdeeio AB- 1۱2İΣσςشرک\t\u00a0\u3000"


@pytest.fixture(scope="module")
def names_db(tmp_path_factory):
    db = Database(tmp_path_factory.mktemp("near") / "near.duckdb")
    _run(db, "CREATE TABLE near_names (id BIGINT, k VARCHAR)")
    yield db
    db.close()


def _run(db, sql, params=None):
    with db.transaction() as cur:
        cur.execute(sql, params or {})


def _fill(db, names):
    _run(db, "DELETE FROM near_names")
    if names:
        _run(db, "INSERT INTO near_names SELECT unnest($i), unnest($k)",
                   {"i": list(range(1, len(names) + 1)), "k": list(names)})


PIECES = [("SELECT id, k FROM near_names", {})]


def _known(db):
    return importer._lookup(db, *PIECES[0])


@hyp_settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.text(ALPHABET, min_size=0, max_size=12), max_size=40),
       word=st.text(ALPHABET, min_size=1, max_size=12), pick=st.integers(0, 10 ** 6),
       cut=st.integers(0, 11))
def test_the_shortlist_answers_as_difflib_over_every_name(names_db, names, word, pick, cut):
    """Random names, a word near one of them (or not): the same suggestion as
    difflib.get_close_matches(n=1, cutoff=0.75) over the whole map."""
    if names and pick % 3:  # a near miss of a name: a character cut out
        base = names[pick % len(names)].strip().lower()
        word = (base[:cut] + base[cut + 1:]) or word
    word = word.strip().lower() or "a"
    _fill(names_db, names)
    known = _known(names_db)
    assert importer_near.suggest(names_db, PIECES, word) == difflib.get_close_matches(
        word, list(known), n=1, cutoff=0.75)


def test_the_shortlist_answers_as_difflib_among_many_alike_names(names_db):
    """Thousands of names of the same letters and digits (the case that lets the fewest
    go): still difflib's answer, ties included."""
    rng = random.Random(8)
    names = [f"Customer {rng.randint(1, 99999)}" for _i in range(5000)] + [
        "Cüstomer 7", " customer 77 ", "CUSTOMER 7", "ΣΑΣ 7", "İstanbul 7"]
    _fill(names_db, names)
    known = _known(names_db)
    for word in ("custmer 7", "customer 7", "custome 123", "σας 7", "i̇stanbul 7", "x",
                 "customer 99999 and more"):
        assert importer_near.suggest(names_db, PIECES, word) == difflib.get_close_matches(
            word, list(known), n=1, cutoff=0.75), word


@hyp_settings(max_examples=80, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.text(ALPHABET, min_size=0, max_size=6), max_size=25),
       texts=st.lists(st.one_of(st.text(ALPHABET, max_size=6), st.integers(0, 30).map(str),
                                st.sampled_from(["9" * 25, "۱۲", " 3 "])), max_size=24))
def test_the_names_read_for_a_few_texts_are_the_resolvers(names_db, names, texts):
    """importer_near.Names (a text's name and id looked up in SQL) resolves texts as the
    whole map does: the same ids, the same errors and suggestions."""
    _fill(names_db, names)
    spec = customers.CONTACTS.spec["customer_id"]
    texts = [t for t in texts if not importer._missing(t)]
    pieces = importer._resolver_sql
    importer._resolver_sql = lambda *a: PIECES  # suggestions: over the same names
    try:
        whole = importer.resolve(names_db, None, spec, texts, known=_known(names_db))
        few = importer.resolve(names_db, None, spec, texts,
                               known=importer_near.Names(names_db, PIECES, texts))
    finally:
        importer._resolver_sql = pieces
    assert (few.values, few.errors) == (whole.values, whole.errors)


def test_a_near_miss_among_many_customers_suggests_as_the_row_path(tmp_path, monkeypatch):
    """resolve() over more names than SHORTLIST_AT asks SQL for the shortlist: the message
    is the one difflib over every name words, a rep's customers alone among them."""
    db, team = make_db(tmp_path / "crm.duckdb")
    for name, who in [("Acme Trading", "admin"), ("Acme Tradeing", "reza"),
                      ("شرکت پارس", "admin"), ("Zeta", "reza")]:
        customers.create_customer(db, team[who], {"name": name, "owner_id": team[who].id})
    spec = customers.CONTACTS.spec["customer_id"]
    texts = ["acme tradin", "شرکت پاس", "zeta"]
    expected = {u: importer.resolve(db, team[u], spec, texts) for u in ("admin", "reza")}
    monkeypatch.setattr(importer_near, "SHORTLIST_AT", 1)
    for user in ("admin", "reza"):
        found = importer.resolve(db, team[user], spec, texts)
        assert (found.values, found.errors) == (expected[user].values,
                                                expected[user].errors)
    assert "Acme Tradeing" not in str(expected["admin"].errors)
