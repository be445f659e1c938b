"""Languages: gettext catalogs (crm/locale/<lang>/LC_MESSAGES/messages.po, compiled to .mo with
Babel), the language of the current script run, and formatting of numbers, money and dates
per locale (Jalali calendar and Persian digits for Persian).

Message ids are the English texts. Field specs keep English labels (their msgids) and are
translated where they are shown, so custom labels can plug in later. The command line never
sets a language and stays English."""
from __future__ import annotations

import gettext as _gettext
import os
import re
from contextlib import contextmanager
from contextvars import ContextVar
from copy import copy
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import jdatetime
from babel import Locale, numbers as babel_numbers

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
LANGUAGES = {"en": "English", "fa": "فارسی", "lt": "Lietuvių"}
RTL = {"fa"}
DEFAULT = "en"
BABEL_LOCALE = {"en": "en_US", "fa": "fa_IR", "lt": "lt_LT"}

_current: ContextVar[str] = ContextVar("crm_language", default=DEFAULT)
_toman: ContextVar[bool] = ContextVar("crm_irr_as_toman", default=False)


def env_default() -> str:
    """The install-wide default from CRM_LANGUAGE (the settings page can override it)."""
    lang = (os.environ.get("CRM_LANGUAGE") or DEFAULT).strip().lower()[:2]
    return lang if lang in LANGUAGES else DEFAULT


def set_language(lang: str | None) -> str:
    lang = lang if lang in LANGUAGES else DEFAULT
    _current.set(lang)
    return lang


def language() -> str:
    return _current.get()


@contextmanager
def using(lang: str):
    """Runs a block in another language (e.g. naming data for a whole install)."""
    token = _current.set(lang if lang in LANGUAGES else DEFAULT)
    try:
        yield
    finally:
        _current.reset(token)


def set_toman(on: bool) -> None:
    """Show Iranian rials as toman (1 toman = 10 rials), as people in Iran usually count."""
    _toman.set(bool(on))


def is_rtl(lang: str | None = None) -> bool:
    return (lang or language()) in RTL


@lru_cache(maxsize=None)
def _translations(lang: str) -> _gettext.NullTranslations:
    if lang == DEFAULT:
        return _gettext.NullTranslations()
    return _gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)


def gettext(message: str) -> str:
    """The message in the current language (the English msgid when there is no translation)."""
    if not message:
        return message
    return _translations(language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _translations(language()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a msgid for extraction where it is defined; it is translated where it is shown."""
    return message


_ = gettext


# Sentences about a kind of record ("New lead", "New task") are one msgid per entity, made
# from these templates with the English names, so translators can decline and agree them
# (Lithuanian adjectives follow the noun's gender). crm.i18n_tools extracts every one.
ENTITY_PHRASES = (
    "New {label}", "Create {label}", "{Label} created", "All {plural}",
    "No {plural} yet. Use “New {label}” to add one.",
    "Move this {label} to the trash? You can restore it later.",
    "{Label} moved to the trash", "{Label} restored",
    "This {label} is in the trash since {when}.",
    "Not saved: {name} changed this {label} at {when} after you opened it. Your values are "
    "still in the form below.",
)
ENTITY_PLURALS = (("{count} {label}", "{count} {plural}"),
                  ("{count} {label} in the trash", "{count} {plural} in the trash"))


def _entity_msgid(template: str, entity) -> str:
    for token, value in (("{label}", entity.label.lower()), ("{Label}", entity.label),
                         ("{plural}", entity.plural.lower()), ("{Plural}", entity.plural)):
        template = template.replace(token, value)
    return template


def entity_text(entity, template: str, **values) -> str:
    """A sentence about a kind of record, e.g. entity_text(LEADS, "New {label}")."""
    return gettext(_entity_msgid(template, entity)).format(**values)


def entity_ntext(entity, singular: str, plural: str, count: int, **values) -> str:
    return ngettext(_entity_msgid(singular, entity), _entity_msgid(plural, entity),
                    count).format(count=number(count), **values)


# --- numbers -------------------------------------------------------------------------------

def _locale() -> str:
    return BABEL_LOCALE[language()]


def number(value, digits: int = 0) -> str:
    """1,234 (en) · ۱٬۲۳۴ (fa) · 1 234 (lt)."""
    if value is None:
        return ""
    fmt = "#,##0" + ("." + "0" * digits if digits else "")
    text = babel_numbers.format_decimal(Decimal(str(value)), format=fmt, locale=_locale(),
                                        decimal_quantization=True, numbering_system="default")
    return persian_digits(text) if language() == "fa" else text


def money(value, currency: str | None, digits: int = 2) -> str:
    """An amount with its currency per locale: $1,234.56 · 1 234,56 € · ‎۱٬۲۳۴ ریال."""
    if value is None:
        return ""
    if not currency:
        return number(value, digits)
    if currency == "IRR" and _toman.get():
        return gettext("{amount} toman").format(amount=number(Decimal(str(value)) / 10, digits))
    locale = Locale.parse(_locale())
    pattern = copy(locale.currency_formats["standard"])
    pattern.frac_prec = (digits, digits)  # the locale's pattern, with the decimals asked for
    text = pattern.apply(Decimal(str(value)), locale, currency=currency, currency_digits=False,
                         numbering_system="default")
    return persian_digits(text) if language() == "fa" else text


def compact(value) -> str:
    """Big numbers short, for tiles: 43.1B · ۴۳٫۱ میلیارد · 43,1 mlrd."""
    if value is None:
        return ""
    text = babel_numbers.format_compact_decimal(Decimal(str(value)), format_type="short",
                                                locale=_locale(), fraction_digits=1,
                                                numbering_system="default")
    return persian_digits(text) if language() == "fa" else text


def percent(value, digits: int = 0) -> str:
    """value is a fraction (0.25 -> 25 %)."""
    if value is None:
        return ""
    fmt = "#,##0" + ("." + "0" * digits if digits else "") + "%"
    text = babel_numbers.format_percent(Decimal(str(value)), format=fmt, locale=_locale(),
                                        numbering_system="default")
    return persian_digits(text) if language() == "fa" else text


_TO_PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
_TO_LATIN = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")


def persian_digits(text: str) -> str:
    return text.translate(_TO_PERSIAN)


def latin_digits(text: str) -> str:
    return text.translate(_TO_LATIN)


# --- dates ---------------------------------------------------------------------------------

JALALI_MONTHS = ("فروردین", "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور", "مهر", "آبان",
                 "آذر", "دی", "بهمن", "اسفند")


def to_jalali(day: date) -> tuple[int, int, int]:
    j = jdatetime.date.fromgregorian(date=day)
    return j.year, j.month, j.day


def from_jalali(year: int, month: int, day: int) -> date:
    return jdatetime.date(year, month, day).togregorian()


def format_date(day: date | datetime | None) -> str:
    """2026-11-30 (en, lt) · ۱۴۰۵/۰۹/۰۹ (fa)."""
    if day is None:
        return ""
    if isinstance(day, datetime):
        day = day.date()
    if language() == "fa":
        y, m, d = to_jalali(day)
        return persian_digits(f"{y:04d}/{m:02d}/{d:02d}")
    return day.isoformat()


def format_datetime(moment: datetime | None) -> str:
    if moment is None:
        return ""
    time_part = f"{moment:%H:%M}"
    if language() == "fa":
        time_part = persian_digits(time_part)
    return f"{format_date(moment)} {time_part}"


def month_name(year: int, month: int) -> str:
    """A month of the user's calendar: 'آذر ۱۴۰۵' (fa) or 2026-11."""
    if language() == "fa":
        return f"{JALALI_MONTHS[month - 1]} {persian_digits(str(year))}"
    return f"{year:04d}-{month:02d}"


_DATE_PARTS = re.compile(r"^\s*(\d{1,4})\s*[/\-.]\s*(\d{1,2})\s*[/\-.]\s*(\d{1,4})\s*$")


def parse_date(text: str, lang: str | None = None) -> date | None:
    """A typed date in the user's calendar (Jalali yyyy/mm/dd for Persian, ISO otherwise),
    Persian or Arabic-Indic digits allowed; None when empty. ValueError says why not."""
    if text is None or not str(text).strip():
        return None
    found = _DATE_PARTS.match(latin_digits(str(text)))
    if not found:
        raise ValueError(gettext("Type a date like {example}").format(
            example=format_date(date(2026, 1, 31)) if (lang or language()) == "fa"
            else "2026-01-31"))
    year, month, day = (int(p) for p in found.groups())
    try:
        if (lang or language()) == "fa":
            return from_jalali(year, month, day)
        return date(year, month, day)
    except ValueError:
        raise ValueError(gettext("{text} is not a date in the calendar").format(
            text=text)) from None
