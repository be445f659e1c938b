"""Text search that treats the Arabic and Persian forms of the same letters as one.

Persian text typed on an Arabic keyboard (or imported from older systems) holds ي and ك where
a Persian keyboard gives ی and ک; digits come in three scripts; the zero-width non-joiner and
the tatweel change the bytes, not the word. Duplicate checks compare both sides in one normal
form (translate(), standard SQL). List searches instead match a regular expression that
accepts every form of each letter: translate() over four columns of a million rows costs
~20x a plain ILIKE, a regular expression about 1.2x (`~`: DuckDB's regexp_matches,
PostgreSQL's POSIX match)."""
from __future__ import annotations

import re

_PAIRS = {"ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه", "ۀ": "ه", "أ": "ا", "إ": "ا",
          **{a: str(i) for i, a in enumerate("٠١٢٣٤٥٦٧٨٩")},
          **{p: str(i) for i, p in enumerate("۰۱۲۳۴۵۶۷۸۹")}}
_DROPPED = "\u200c\u0640"  # zero-width non-joiner, tatweel
FROM = "".join(_PAIRS) + _DROPPED
TO = "".join(_PAIRS.values())  # shorter than FROM: the dropped characters have no partner
_TABLE = str.maketrans({**_PAIRS, **{c: None for c in _DROPPED}})
# a search needs the columns normalised only if it holds letters or digits of these forms
_TRIGGERS = set(FROM) | set(TO) | set("0123456789")


def normalise(text: str | None) -> str:
    return "" if text is None else str(text).translate(_TABLE)


def needs_normalising(query: str) -> bool:
    return any(c in _TRIGGERS for c in query)


def column(expr: str) -> str:
    """SQL that normalises expr; the statement's parameters need params()."""
    return f"translate({expr}, $norm_from, $norm_to)"


def params() -> dict:
    return {"norm_from": FROM, "norm_to": TO}


_FORMS: dict[str, set[str]] = {}
for _variant, _normal in _PAIRS.items():
    _FORMS.setdefault(_normal, {_normal}).add(_variant)
_GAP = "[\u200c\u0640]*"  # what may sit between two letters without changing the word


def regex(query: str) -> str:
    """A case-insensitive regular expression finding query as a substring, whatever form of
    its letters and digits the text uses, with zero-width non-joiners or tatweels anywhere."""
    text = normalise(query.strip())
    parts = []
    for char in text:
        forms = _FORMS.get(char)
        parts.append("[" + "".join(sorted(forms)) + "]" if forms else re.escape(char))
    return "(?i)" + _GAP.join(parts)


def regex_clause(column: str, param: str = "q_re") -> str:
    """SQL: column matches the parameter made by regex(); `~` is regexp_matches in DuckDB and
    the POSIX match in PostgreSQL (both read the leading (?i))."""
    return f"{column} ~ ${param}"


def like_pattern(query: str) -> str:
    """An ILIKE ... ESCAPE '\\' pattern for 'contains query', in the normal form."""
    text = normalise(query.strip())
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
