"""Reporting periods in the user's calendar (Gregorian, or Jalali for Persian users): the period
picker's presets, the previous period to compare with, and month/quarter stepping."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from crm import i18n
from crm.calendar import uses_jalali
from crm.i18n import N_

PRESETS = {
    "this_month": N_("This month"),
    "this_quarter": N_("This quarter"),
    "this_year": N_("This year"),
    "last_12_months": N_("Last 12 months"),
    "custom": N_("Custom"),
}


@dataclass(frozen=True)
class Scope:
    """What a dashboard shows: the days [start, end] (both included), the previous period of
    the same kind to compare with, and the deal filters."""
    start: date
    end: date
    prev_start: date
    prev_end: date
    pipeline_id: int | None = None
    owner_ids: tuple[int, ...] = field(default_factory=tuple)


def _ym(day: date, lang: str | None) -> tuple[int, int]:
    if uses_jalali(lang):
        y, m, _d = i18n.to_jalali(day)
        return y, m
    return day.year, day.month


def month_start(year: int, month: int, lang: str | None = None) -> date:
    """The first day of a month of the user's calendar (months may overflow: 13 = next Jan)."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    if uses_jalali(lang):
        return i18n.from_jalali(year, month, 1)
    return date(year, month, 1)


def add_months(start: date, months: int, lang: str | None = None) -> date:
    """The first day of the month `months` after the month holding start."""
    y, m = _ym(start, lang)
    return month_start(y, m + months, lang)


def span(preset: str, today: date, lang: str | None = None,
         custom: tuple[date, date] | None = None) -> tuple[date, date, date, date]:
    """(start, end, prev_start, prev_end) of a preset: the whole current month, quarter or
    year, or the last 12 months up to the end of this month, each against the same span just
    before it; a custom range against the same number of days just before it."""
    y, m = _ym(today, lang)
    if preset == "custom":
        if not custom or custom[0] is None or custom[1] is None:
            raise ValueError("a custom period needs its first and last day")
        start, end = sorted(custom)
        days = (end - start).days + 1
        return start, end, start - timedelta(days=days), start - timedelta(days=1)
    if preset == "this_month":
        first, months = (y, m), 1
    elif preset == "this_quarter":
        first, months = (y, (m - 1) // 3 * 3 + 1), 3
    elif preset == "this_year":
        first, months = (y, 1), 12
    elif preset == "last_12_months":
        first, months = (y, m - 11), 12
    else:
        raise ValueError(f"unknown period {preset!r}")
    start = month_start(*first, lang)
    end = add_months(start, months, lang) - timedelta(days=1)
    prev_start = add_months(start, -months, lang)
    return start, end, prev_start, start - timedelta(days=1)


def scope(preset: str, today: date, lang: str | None = None,
          custom: tuple[date, date] | None = None, pipeline_id: int | None = None,
          owner_ids=()) -> Scope:
    return Scope(*span(preset, today, lang, custom), pipeline_id=pipeline_id,
                 owner_ids=tuple(int(o) for o in owner_ids or ()))


def months_before(day: date, months: int) -> date:
    """The same day `months` Gregorian months earlier (clipped to the month's last day)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return date(year, month, min(day.day, (nxt - timedelta(days=1)).day))


def period_key(day: date, grain: str, lang: str | None = None) -> int:
    """The key calendar.period() gives the day: year*100+month or year*10+quarter."""
    y, m = _ym(day, lang)
    return y * 100 + m if grain == "month" else y * 10 + (m - 1) // 3 + 1


def bounds(key: int, grain: str, lang: str | None = None) -> tuple[date, date]:
    """The first and last day of a period key of the user's calendar."""
    if grain == "month":
        y, m = divmod(int(key), 100)
        months = 1
    else:
        y, q = divmod(int(key), 10)
        m, months = 3 * q - 2, 3
    start = month_start(y, m, lang)
    return start, add_months(start, months, lang) - timedelta(days=1)


def next_keys(today: date, grain: str, count: int, lang: str | None = None,
              back: int = 0) -> list[int]:
    """count period keys from the one holding today (or `back` periods before it)."""
    y, m = _ym(today, lang)
    step = 1 if grain == "month" else 3
    first = month_start(y, (m - 1) // step * step + 1 - back * step, lang)
    return [period_key(add_months(first, i * step, lang), grain, lang) for i in range(count)]
