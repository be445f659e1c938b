"""Text search that treats the Arabic and Persian forms of the same letters as one.

Persian text typed on an Arabic keyboard (or imported from older systems) holds ي and ك where
a Persian keyboard gives ی and ک; digits come in three scripts; the zero-width non-joiner and
the tatweel change the bytes, not the word. Search and duplicate checks compare both sides in
one normal form. translate() is standard SQL in PostgreSQL and DuckDB alike."""
from __future__ import annotations

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


def like_pattern(query: str) -> str:
    """An ILIKE ... ESCAPE '\\' pattern for 'contains query', in the normal form."""
    text = normalise(query.strip())
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
