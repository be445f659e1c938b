"""Months and quarters of the user's calendar, computed in SQL: Gregorian, or Jalali (Persian)
through the calendar_days table (migration 005), so charts group without loading rows."""
from __future__ import annotations

from crm import i18n
from crm.i18n import gettext as _

GRAINS = ("month", "quarter")


def uses_jalali(lang: str | None = None) -> bool:
    return (lang or i18n.language()) == "fa"


def period(expr: str, grain: str = "month", lang: str | None = None,
           alias: str = "cal") -> tuple[str, str]:
    """(key, join): an integer key per period (year*100+month or year*10+quarter) of the date
    expression expr, and the join clause it needs (empty for the Gregorian calendar). expr is
    SQL over the caller's tables, built from identifiers only."""
    if grain not in GRAINS:
        raise ValueError(grain)
    if uses_jalali(lang):
        join = f" LEFT JOIN calendar_days {alias} ON {alias}.day = CAST({expr} AS DATE)"
        part = f"{alias}.jalali_month" if grain == "month" else f"{alias}.jalali_quarter"
        return f"{alias}.jalali_year * {100 if grain == 'month' else 10} + {part}", join
    unit = "MONTH" if grain == "month" else "QUARTER"
    factor = 100 if grain == "month" else 10
    return (f"CAST(EXTRACT(YEAR FROM {expr}) AS INTEGER) * {factor}"
            f" + CAST(EXTRACT({unit} FROM {expr}) AS INTEGER)"), ""


def label(key: int, grain: str = "month", lang: str | None = None) -> str:
    """'آذر ۱۴۰۵', '2026-11', 'Q3 2026' for a key made by period()."""
    if key is None:
        return ""
    if grain == "month":
        year, month = divmod(int(key), 100)
        if uses_jalali(lang):
            return i18n.month_name(year, month)
        return f"{year:04d}-{month:02d}"
    year, quarter = divmod(int(key), 10)
    text = _("Q{quarter} {year}").format(quarter=quarter, year=year)
    return i18n.persian_digits(text) if uses_jalali(lang) else text
