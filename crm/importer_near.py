"""The near-miss suggestion ("Did you mean GTX Pro?") of a name that names no record, without
scoring every record in Python.

importer.closest() answers as difflib.get_close_matches(word, names, n=1, cutoff=0.75), but
over a million customers it still reads every name into Python and scores it (seconds a name).
Here SQL first keeps only the names that *could* reach the cutoff, by bounds that are never
below difflib's ratio:

- real_quick_ratio: 2 * min(la, lb) / (la + lb), lengths alone;
- quick_ratio: 2 * (characters the two share, as multisets) / (la + lb), here counted for a few
  of the word's characters (those the names lack most, from a sample) and bounded for the
  others by the word's own counts: a looser bound, so still never below the ratio.

closest() then scores that shortlist, normalised in Python as the row path's names are
(str.strip().lower()), so the answer is the unfiltered one. Names whose lowering SQL and
Python may disagree on (İ, Σ) are always kept."""
from __future__ import annotations

from collections import Counter

from crm import dialect

SHORTLIST_AT = 20_000  # fewer names than this: closest() over them all is as cheap
_SAMPLE = 1000  # names read to order the tests
_FEW = 16  # texts Names looks up by strpos() (more: by their keys, each name stripped)
_EPS = 1e-9  # float slack, on the keeping side


def _key(engine: str, k: str) -> str:
    """str(k).strip().lower() in SQL (the keys of importer._resolver's map)."""
    if engine == dialect.DUCKDB:
        from crm import importer

        return f"lower({importer._strip_sql(k)})"
    return f"lower(btrim({k}, $c_ws))"


def suggest(db, pieces: list[tuple[str, dict]], word: str, cutoff: float = 0.75) -> list[str]:
    """importer.closest(word, names), where names are the keys of the map pieces make
    (SELECT id, k ...: importer._resolver's queries), read through a SQL shortlist."""
    from crm import importer

    if not pieces:
        return []
    engine = db.dialect
    names, params = _union(pieces)
    la = len(word)
    counts = Counter(word)
    key = _key(engine, "n.k")
    params["c_ws"] = importer._CONSTANTS["c_ws"]
    if engine == dialect.DUCKDB:
        params["c_ws_edge"] = importer._CONSTANTS["c_ws_edge"]
    # the word's characters, those most names lack first (in a sample: any rows, they change
    # the cost, not the answer)
    sql = f"SELECT k FROM {names} s WHERE k IS NOT NULL LIMIT {_SAMPLE}"
    sample = [str(r["k"]).lower() for r in db.query(sql, importer._used(params, sql))]
    chars = sorted(counts, key=lambda c: (-counts[c] * sum(c not in x for x in sample), c))
    for i, c in enumerate(chars):
        params[f"ch{i}"] = c
    # the characters shared at most: first by which of the word's a name has (strpos, cheap;
    # each test in a WHEN of its own, so only the names that pass the ones before take it),
    # then by how many of each (quick_ratio's count exactly)
    lo, hi = _lengths(la, cutoff)
    need = f"({cutoff} - {_EPS}) * ({la} + b.lb)"
    tests = [f"WHEN b.lb NOT BETWEEN {lo} AND {hi} THEN false"]
    for j in sorted({min(j, len(chars)) for j in (3, 6, 10, len(chars))}):
        present = " + ".join(f"CASE WHEN strpos(b.key, $ch{i}) > 0 THEN {counts[c]} ELSE 0"
                             " END" for i, c in enumerate(chars[:j]))
        others = sum(counts[c] for c in chars[j:])
        tests.append(f"WHEN 2.0 * least(b.lb, {present} + {others}) < {need} THEN false")
    shared = " + ".join(f"least({counts[c]}, b.lb - length(replace(b.key, $ch{i}, '')))"
                        for i, c in enumerate(chars))
    odd = "strpos(n.k, 'İ') > 0 OR strpos(n.k, 'Σ') > 0"
    if engine != dialect.DUCKDB and not _lowers_unicode(db):  # a C locale lowers ASCII alone
        odd += " OR octet_length(n.k) <> length(n.k)"
    sql = (f"SELECT DISTINCT b.k FROM (SELECT a.*, length(a.key) AS lb FROM (SELECT n.k,"
           f" {key} AS key, {odd} AS odd FROM {names} n WHERE n.k IS NOT NULL AND n.k <> '')"
           f" a) b WHERE b.odd OR CASE {' '.join(tests)} ELSE 2.0 * ({shared}) >= {need} END")
    found = {str(r["k"]).strip().lower() for r in db.query(sql, importer._used(params, sql))}
    return importer.closest(word, found, cutoff)


def _lowers_unicode(db) -> bool:
    """Whether the database's lower() lowers letters beyond ASCII as Python does (PostgreSQL:
    by its locale)."""
    return db.scalar("SELECT lower('ÄÖΣ')") == "äöσ"


def _union(pieces: list[tuple[str, dict]]) -> tuple[str, dict]:
    """The pieces' names (k) as one subquery, each piece's parameters under its own prefix."""
    params: dict = {}
    union = []
    for n, (sql, p) in enumerate(pieces):
        for name in sorted(p, key=len, reverse=True):
            sql = sql.replace(f"${name}", f"$q{n}_{name}")
        params.update({f"q{n}_{name}": v for name, v in p.items()})
        union.append(f"SELECT CAST(x{n}.k AS VARCHAR) AS k FROM ({sql}) x{n}")
    return f"({' UNION ALL '.join(union)})", params


class Names:
    """importer._resolver's map ({name.strip().lower(): id}) for the few texts of a big file
    that SQL's join did not resolve (importer_refs.ref_map), read for those texts alone:
    reading a million names into Python for them costs seconds. Ids the texts may be are
    looked up too (resolve() takes a visible record's id for a name)."""

    def __init__(self, db, pieces: list[tuple[str, dict]], texts):
        from crm import importer

        self.db, self.pieces = db, pieces
        keys = {str(t).strip().lower() for t in texts} - {""}
        ids = sorted({int(k) for k in keys if k.isdecimal() and len(k) < 19})
        # an id resolves when it is what the map gives one of its record's names (of two
        # records of a name, the map keeps one): those names are looked up too
        for sql, params in pieces if ids else ():
            query = (f"SELECT x.k FROM ({sql}) x WHERE x.id IN (SELECT unnest($ids))"
                     " AND x.k IS NOT NULL AND CAST(x.k AS VARCHAR) <> ''")
            keys |= {str(r["k"]).strip().lower() for r in db.query(query, {**params,
                                                                        "ids": ids})}
        keys = sorted(keys)
        if len(keys) <= _FEW and "" not in keys:  # a name holds its key (stripped,
            # lowered): strpos, cheap
            named = " OR ".join(f"strpos(lower(CAST(x.k AS VARCHAR)), $key{i}) > 0"
                                for i in range(len(keys))) or "false"
        else:
            named = f"{_key(db.dialect, 'CAST(x.k AS VARCHAR)')} IN (SELECT unnest($keys))"
        self.map: dict = {}
        for sql, params in pieces:  # the later query's name wins, as in _resolver
            # names SQL may lower otherwise than Python (İ, Σ): read too, compared in Python;
            # of one name, the last row (the newest record: the order a table is read in)
            query = (f"SELECT x.id, x.k FROM ({sql}) x WHERE x.k IS NOT NULL AND"
                     f" CAST(x.k AS VARCHAR) <> '' AND ({named}"
                     " OR strpos(CAST(x.k AS VARCHAR), 'İ') > 0"
                     " OR strpos(CAST(x.k AS VARCHAR), 'Σ') > 0) ORDER BY x.id")
            every = {**params, **importer._CONSTANTS, "keys": keys or [""],
                     **{f"key{i}": k for i, k in enumerate(keys)}}
            wanted = set(keys)
            for r in db.query(query, importer._used(every, query)):
                k = str(r["k"]).strip().lower()
                if k in wanted:
                    self.map[k] = r["id"]
        self.ids = set(ids) & set(self.map.values())

    def __len__(self) -> int:  # many: importer._suggest shortlists in SQL
        return SHORTLIST_AT

    def __contains__(self, key) -> bool:
        return key in self.map

    def __getitem__(self, key):
        return self.map[key]

    def values(self) -> set:
        return self.ids


def _lengths(la: int, cutoff: float) -> tuple[int, int]:
    """The name lengths lb whose real_quick_ratio 2 * min(la, lb) / (la + lb) can reach the
    cutoff (with one to spare each side)."""
    lo = 0
    while lo < la and 2.0 * lo < (cutoff - _EPS) * (la + lo):
        lo += 1
    hi = la
    while 2.0 * la >= (cutoff - _EPS) * (la + hi + 1):
        hi += 1
    return max(0, lo - 1), hi + 1
