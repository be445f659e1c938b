"""Field specs: one per field, driving the form input, validation, list column, filter and export."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from crm.i18n import gettext as _

EMAIL_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]{2,}$")
PHONE_RE = re.compile(r"^\+?[0-9 ()./-]{5,30}$")
URL_RE = re.compile(r"^https?://[^\s<>\"]+\.[^\s<>\"]+$", re.IGNORECASE)
MULTI_SEPARATOR = "; "  # how a multiple choice is stored: "Red; Blue", in the choices' order
# Persian and Arabic-Indic digits are common in phone numbers typed in fa_IR.
_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")

TEXT_TYPES = {"text", "longtext", "email", "phone", "url"}
NUMERIC_TYPES = ("number", "integer", "money")
FIRST_DATE, LAST_DATE = date(1900, 1, 1), date(2100, 12, 31)


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    # text longtext email phone url choice multichoice money number integer date datetime
    # bool user ref
    type: str = "text"
    required: bool = False
    choices: tuple[str, ...] = ()
    max_length: int | None = None
    min_value: float | None = None
    max_value: float | None = None
    default: Any = None
    help: str | None = None
    editable: bool = True
    create_only: bool = False  # given at creation; later changed by a command of its own
    in_list: bool = False
    filter: bool = False
    searchable: bool = False
    export: bool = True
    section: str = "Details"
    # (field, value): shown and kept only when that other field has that value
    only_when: tuple[str, str] | None = None
    ref: str | None = None  # for type "ref": the table whose id this holds
    # names of choices that are not words to translate (e.g. languages in their own script)
    choice_names: tuple[tuple[str, str], ...] = ()
    # colours of choices, (choice, "#rrggbb"), shown as badges (admins choose them)
    choice_colors: tuple[tuple[str, str], ...] = ()
    custom: bool = False  # added by an admin in Settings, not by the code
    quick: bool = True  # on the create form (a layout may keep it for the record page)

    def __post_init__(self):
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.name):
            raise ValueError(f"bad field name {self.name!r}")  # names become SQL identifiers
        if self.max_length is None and self.type in TEXT_TYPES:
            limit = {"longtext": 5000, "email": 254, "phone": 40, "url": 2000}.get(self.type, 200)
            object.__setattr__(self, "max_length", limit)

    def choice_label(self, value, translate: bool = True) -> str:
        """A choice as people read it, in their language; codes (USD) stay as they are."""
        if value is None:
            return ""
        text = str(value)
        named = dict(self.choice_names)
        if text in named:
            return named[text]
        if text.isupper() or self.custom:  # admins type their choices as they want them shown
            return text
        label = text.replace("_", " ").capitalize()
        return _(label) if translate else label

    @property
    def shown_label(self) -> str:
        return self.label if self.custom else _(self.label)

    @property
    def shown_help(self) -> str | None:
        if not self.help:
            return None
        return self.help if self.custom else _(self.help)


class ValidationError(ValueError):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def validate(specs: list[Field], values: dict, partial: bool = False) -> dict:
    """Returns cleaned values for the editable specs, or raises ValidationError(field -> message).

    partial=True checks only the keys present (used by updates of some fields)."""
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    by_name = {f.name: f for f in specs}
    for unknown in set(values) - set(by_name):
        errors[unknown] = _("is not a field of this record")
    for spec in specs:
        if not spec.editable:
            continue
        if partial and spec.name not in values:
            continue
        raw = values.get(spec.name, spec.default)
        try:
            value = convert(spec, raw)
        except ValueError as exc:
            errors[spec.name] = str(exc)
            continue
        if spec.only_when and value is not None:
            other, wanted = spec.only_when
            # partial without the controlling field: the caller checks the stored record's
            if not (partial and other not in values) and \
                    values.get(other, by_name[other].default) != wanted:
                value = None
        if value is None and spec.required:
            errors[spec.name] = _("{label} is required").format(label=spec.shown_label)
            continue
        clean[spec.name] = value
    if errors:
        raise ValidationError(errors)
    return clean


def convert(spec: Field, raw: Any) -> Any:
    """Turns a form, CSV or CLI value into the stored Python value; ValueError says why not."""
    if raw is None or (isinstance(raw, float) and raw != raw):  # None or NaN
        return False if spec.type == "bool" else None
    if isinstance(raw, str):
        raw = raw.strip()
        if raw == "":
            return False if spec.type == "bool" else None
    t = spec.type
    if t in TEXT_TYPES:
        text = str(raw).replace("\x00", "")  # NUL is no text (and PostgreSQL refuses it)
        if spec.max_length and len(text) > spec.max_length:
            raise ValueError(
                _("{label} is too long ({length} characters; at most {limit})").format(
                    label=spec.shown_label, length=len(text), limit=spec.max_length))
        if t == "email":
            text = text.lower()
            if not EMAIL_RE.match(text):
                raise ValueError(_("{text} is not a valid email address").format(text=repr(text)))
        if t == "phone":
            text = text.translate(_DIGITS)
            if not PHONE_RE.match(text):
                raise ValueError(
                    _("{text} is not a valid phone number (digits, spaces, + ( ) - . only)")
                    .format(text=repr(text)))
        if t == "url" and not URL_RE.match(text):
            raise ValueError(_("{text} is not a web address like https://example.com").format(
                text=repr(text)))
        return text
    if t == "multichoice":
        return _multichoice(spec, raw)
    if t == "choice":
        value = str(raw)
        if value not in spec.choices:
            lowered = {c.lower(): c for c in spec.choices}
            if value.lower() in lowered:
                return lowered[value.lower()]
            raise ValueError(_("{label} must be one of: {choices}").format(
                label=spec.shown_label,
                choices=", ".join(spec.choice_label(c) for c in spec.choices)))
        return value
    if t == "integer":
        try:
            exact = Decimal(str(raw).translate(_DIGITS).replace(",", ""))
        except InvalidOperation:
            exact = None
        if exact is None or not exact.is_finite() or exact != exact.to_integral_value():
            raise ValueError(_("{label} must be a whole number").format(label=spec.shown_label))
        number = int(exact)
        _limits(spec, number)
        return number
    if t in ("money", "number"):
        try:
            number = Decimal(str(raw).translate(_DIGITS).replace(",", ""))
        except InvalidOperation:
            raise ValueError(_("{label} must be a number").format(label=spec.shown_label)) \
                from None
        if not number.is_finite():
            raise ValueError(_("{label} must be a number").format(label=spec.shown_label))
        _limits(spec, number)
        return number.quantize(Decimal("0.01")) if t == "money" else number
    if t == "date":
        if isinstance(raw, datetime):
            return _in_range(spec, raw.date())
        if isinstance(raw, date):
            return _in_range(spec, raw)
        try:
            return _in_range(spec, date.fromisoformat(str(raw)[:10]))
        except ValueError as exc:
            if "between" in str(exc):
                raise
            raise ValueError(_("{label} must be a date like {example}").format(
                label=spec.shown_label, example="2026-01-31")) from None
    if t == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).lower()
        if text in ("1", "true", "yes", "y", "t"):
            return True
        if text in ("0", "false", "no", "n", "f"):
            return False
        raise ValueError(_("{label} must be yes or no").format(label=spec.shown_label))
    if t in ("user", "ref"):
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ValueError(_("{label} must be chosen from the list").format(
                label=spec.shown_label)) from None
    if t == "datetime":
        if not isinstance(raw, datetime):
            try:
                raw = datetime.fromisoformat(str(raw))
            except ValueError:
                raise ValueError(_("{label} must be a date and time like {example}").format(
                    label=spec.shown_label, example="2026-01-31 14:30")) from None
        _in_range(spec, raw.date())
        return raw
    raise ValueError(f"unknown field type {t}")


def _multichoice(spec: Field, raw: Any) -> str | None:
    """A list, or text separated by ; , or |, into the stored "A; B" in the choices' order."""
    if isinstance(raw, (list, tuple, set)):
        picked = [str(v).strip() for v in raw]
    else:
        picked = [v.strip() for v in re.split(r"[;,|\n]", str(raw))]
    lowered = {c.lower(): c for c in spec.choices}
    chosen, unknown = set(), []
    for value in filter(None, picked):
        if value.lower() in lowered:
            chosen.add(lowered[value.lower()])
        else:
            unknown.append(value)
    if unknown:
        raise ValueError(_("{label} must be some of: {choices}").format(
            label=spec.shown_label,
            choices=", ".join(spec.choice_label(c) for c in spec.choices)))
    return MULTI_SEPARATOR.join(c for c in spec.choices if c in chosen) or None


def multichoice_values(stored: str | None) -> list[str]:
    return [v for v in (stored or "").split(MULTI_SEPARATOR) if v]


def _in_range(spec: Field, day: date) -> date:
    if not FIRST_DATE <= day <= LAST_DATE:
        raise ValueError(_("{label} must be between {first} and {last} ({day} is not)").format(
            label=spec.shown_label, first=FIRST_DATE, last=LAST_DATE, day=day))
    return day


def _limits(spec: Field, number) -> None:
    low = None if spec.min_value is None else Decimal(str(spec.min_value))
    high = None if spec.max_value is None else Decimal(str(spec.max_value))
    if low is not None and number < low:
        raise ValueError(_("{label} cannot be less than {limit}").format(
            label=spec.shown_label, limit=f"{spec.min_value:g}"))
    if high is not None and number > high:
        raise ValueError(_("{label} cannot be more than {limit}").format(
            label=spec.shown_label, limit=f"{spec.max_value:g}"))


def check_dates_not_future(values: dict, names: list[str], specs: list[Field]) -> dict[str, str]:
    labels = {f.name: f.label for f in specs}
    today = date.today()
    return {
        n: _("{label} cannot be in the future").format(label=_(labels[n]))
        for n in names
        if isinstance(values.get(n), date) and values[n] > today
    }


META_FIELDS = [
    Field("id", "ID", "number", editable=False, in_list=True, export=True),
    Field("created_at", "Created", "datetime", editable=False, in_list=True, filter=True),
    Field("updated_at", "Updated", "datetime", editable=False),
]


def spec_map(specs: list[Field]) -> dict[str, Field]:
    return {f.name: f for f in specs}

