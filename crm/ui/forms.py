"""Forms generated from field specs. Widget values live in session state under stable keys,
so a refused save (invalid input, a conflict) keeps everything the user typed."""
from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Callable, TypeVar

import streamlit as st

from crm.auth import PermissionDenied
from crm.db import WriteConflictBase
from crm import i18n
from crm.fields import TEXT_TYPES, Field, ValidationError, multichoice_values
from crm.i18n import gettext as _
from crm.ui.text import md_escape

T = TypeVar("T")

# Wide on purpose: the browser silently drops a typed date outside the widget's range, so the
# range the CRM accepts (fields.FIRST_DATE..LAST_DATE) is checked on the server, with a message.
MIN_DATE, MAX_DATE = date(1000, 1, 1), date(9999, 12, 31)
PICKED = ("user", "ref")  # fields chosen from an {id: label} dict of choices


def widget_key(form_key: str, name: str) -> str:
    return f"{form_key}:{name}"


def _jalali() -> bool:
    """Persian users type dates in the Jalali calendar, in a text box (the date picker only
    knows the Gregorian one)."""
    return i18n.language() == "fa"


NUMERIC = ("money", "number", "integer")


def _keys(form_key: str, spec: Field, jalali: bool | None = None) -> list[str]:
    """Persian screens use other widgets for dates (Jalali) and numbers (Persian digits),
    so those get other keys: switching language mid-form cannot mix their values."""
    key = widget_key(form_key, spec.name)
    jalali = _jalali() if jalali is None else jalali
    day = key + (":jalali" if jalali else ":date")
    if spec.type == "datetime":
        return [day, key + ":time"]
    if jalali and spec.type in ("date", *NUMERIC):
        return [key + ":jalali"]
    return [key]


def _widget_values(spec: Field, value) -> list:
    if spec.type == "datetime":
        if value is None:
            return ["" if _jalali() else None, time(9, 0)]
        day = i18n.format_date(value) if _jalali() else value.date()
        return [day, value.time().replace(second=0, microsecond=0)]
    if spec.type == "date" and _jalali():
        return [i18n.format_date(value) if value else ""]
    if spec.type in NUMERIC and _jalali():
        if value is None:
            return [""]
        return [i18n.number(value, 2) if spec.type == "money"
                else i18n.persian_digits(str(value))]
    if spec.type == "multichoice":
        return [multichoice_values(value)]
    if value is None:
        if spec.type == "bool":
            return [False]
        return ["" if spec.type in TEXT_TYPES else None]
    if spec.type in ("money", "number"):
        return [float(value)]
    if spec.type == "date" and isinstance(value, datetime):
        return [value.date()]
    return [value]


def spec_form(form_key: str, specs: list[Field], initial: dict,
              choices: dict[str, dict] | None = None, errors: dict[str, str] | None = None,
              submit_label: str | None = None, columns: int = 2, disabled: bool = False,
              editing: bool = False, hidden: tuple[str, ...] = ()) -> dict | None:
    """Renders the form; returns the entered values when submitted, else None.

    choices: {field: {id: label}} for user and reference fields. hidden: fields not shown,
    whose initial values are returned as they are (e.g. the deal an activity belongs to).
    editing: an existing record, where create-only fields are shown but locked."""
    errors = errors or {}
    choices = choices or {}
    shown = [f for f in specs if f.editable and f.name not in hidden]
    sections: dict[str, list[Field]] = {}
    for spec in shown:
        sections.setdefault(spec.section, []).append(spec)
    with st.form(form_key, border=True):
        if errors:
            st.error(i18n.ngettext(
                "Please correct {count} field marked below. Nothing was saved.",
                "Please correct {count} fields marked below. Nothing was saved.",
                len(errors)).format(count=i18n.number(len(errors))))
        for section, fields in sections.items():
            if len(sections) > 1:
                st.markdown(f"**{md_escape(_(section))}**")
            cols = st.columns(columns)
            for i, spec in enumerate(fields):
                with cols[i % columns] if spec.type != "longtext" else st.container():
                    locked = disabled or (editing and spec.create_only)
                    _input(form_key, spec, choices.get(spec.name, {}), locked,
                           _widget_values(spec, initial.get(spec.name, spec.default)))
                    if spec.name in errors:
                        st.error(md_escape(errors[spec.name]), icon=":material/error:")
        hidden_errors = [m for n, m in errors.items() if n in hidden]
        for message in hidden_errors:
            st.error(md_escape(message), icon=":material/error:")
        submitted = st.form_submit_button(submit_label or _("Save"), type="primary",
                                          disabled=disabled)
    if not submitted:
        return None
    spec_of = {f.name: f for f in specs}
    values = {name: initial.get(name, spec_of[name].default if name in spec_of else None)
              for name in hidden}
    typed_wrong = {}
    for spec in shown:
        if editing and spec.create_only:
            continue
        try:
            values[spec.name] = _value(spec, [st.session_state[k]
                                              for k in _keys(form_key, spec)])
        except ValueError as exc:  # a Jalali date that is no date
            typed_wrong[spec.name] = f"{spec.shown_label}: {exc}"
    if typed_wrong:
        st.session_state[f"{form_key}:errors"] = typed_wrong  # shown next to the fields
        st.rerun()
    return values


def clear_form(form_key: str, specs: list[Field]) -> None:
    for spec in specs:
        for key in {*_keys(form_key, spec, True), *_keys(form_key, spec, False)}:
            st.session_state.pop(key, None)


def _value(spec: Field, parts: list):
    value = parts[0]
    if spec.type in ("date", "datetime") and isinstance(value, str):
        value = i18n.parse_date(value)
    if spec.type in NUMERIC and isinstance(value, str):  # typed with Persian digits
        from crm.importer import number

        value = number(value, spec) if value.strip() else None
    if spec.type == "datetime":
        return None if value is None else datetime.combine(value, parts[1] or time(9, 0))
    if spec.type in ("money", "number") and value is not None:
        return Decimal(str(value))
    if spec.type == "integer" and value is not None:
        return int(value) if float(value).is_integer() else value
    return value


def _label(spec: Field) -> str:
    return f"{spec.shown_label} *" if spec.required else spec.shown_label


def _input(form_key: str, spec: Field, options: dict, disabled: bool, initial: list):
    """initial: the widget values to start from. They go in the widget's own default, not in
    session state, so the browser never shows a blank required field while the first values
    travel (it used to, now and then, on a new record's form)."""
    key = widget_key(form_key, spec.name)
    # labels come from the specs (code and admins), not from records; escaping them would put
    # backslashes into what screen readers say
    label, help_text = _label(spec), spec.shown_help
    t = spec.type
    start = initial[0]
    if t in ("date", "datetime") and _jalali():
        _jalali_input(form_key, spec, label, help_text, disabled, initial)
        return
    if t in NUMERIC and _jalali():  # the browser's number box takes Latin digits only
        st.text_input(label, value=start, key=key + ":jalali", help=help_text,
                      disabled=disabled, placeholder=i18n.number(1234.5 if t == "money" else 12,
                                                                 2 if t == "money" else 0))
        return
    if t in ("text", "email", "phone", "url"):
        st.text_input(label, value=start, key=key, help=help_text, disabled=disabled,
                      placeholder={"email": "name@example.com", "phone": "+1 555 0100",
                                   "url": "https://example.com"}.get(t))
    elif t == "multichoice":
        st.multiselect(label, options=list(spec.choices), default=start,
                       format_func=spec.choice_label, key=key, help=help_text,
                       disabled=disabled, placeholder=_("Choose…"))
    elif t == "longtext":
        st.text_area(label, value=start, key=key, help=help_text, disabled=disabled, height=100)
    elif t == "choice":
        choices = list(spec.choices)
        st.selectbox(label, options=choices, format_func=spec.choice_label,
                     index=choices.index(start) if start in choices else None, key=key,
                     help=help_text, disabled=disabled, placeholder=_("Choose…"))
    elif t in PICKED:
        ids = list(options)
        for extra in (start, st.session_state.get(key)):
            if extra is not None and extra not in ids:
                ids.append(extra)
        st.selectbox(label, options=ids, format_func=lambda i: options.get(i, f"#{i}"),
                     index=ids.index(start) if start is not None else None, key=key,
                     disabled=disabled,
                     help=help_text or (_("Empty means you") if t == "user" else None),
                     placeholder=_("Me") if t == "user" else _("Choose…"))
    elif t in ("money", "number"):
        st.number_input(label, value=start, key=key, help=help_text, disabled=disabled,
                        step=100.0 if t == "money" else 1.0,
                        format="%.2f" if t == "money" else None)
    elif t == "integer":
        st.number_input(label, value=start, key=key, help=help_text, disabled=disabled,
                        step=1, format="%d")
    elif t == "date":
        st.date_input(label, value=start, key=key, help=help_text, disabled=disabled,
                      min_value=MIN_DATE, max_value=MAX_DATE, format="YYYY-MM-DD")
    elif t == "datetime":
        day, hour = st.columns([3, 2])
        day.date_input(label, value=start, key=key + ":date", help=help_text,
                       disabled=disabled, min_value=MIN_DATE, max_value=MAX_DATE,
                       format="YYYY-MM-DD")
        hour.time_input(_("Time"), value=initial[1], key=key + ":time", disabled=disabled,
                        step=900)
    elif t == "bool":
        st.checkbox(label, value=bool(start), key=key, help=help_text, disabled=disabled)
    else:
        raise ValueError(f"no widget for field type {t}")


def _jalali_input(form_key: str, spec: Field, label: str, help_text: str | None,
                  disabled: bool, initial: list) -> None:
    day_key, *time_key = _keys(form_key, spec)
    example = i18n.format_date(date(2026, 1, 31))
    hint = _("Year/month/day in the Persian calendar, e.g. {example}").format(example=example)
    help_text = f"{help_text}  \n{hint}" if help_text else hint
    if spec.type == "datetime":
        day, hour = st.columns([3, 2])
        day.text_input(label, value=initial[0], key=day_key, help=help_text, disabled=disabled,
                       placeholder=example)
        hour.time_input(_("Time"), value=initial[1], key=time_key[0], disabled=disabled,
                        step=900)
    else:
        st.text_input(label, value=initial[0], key=day_key, help=help_text, disabled=disabled,
                      placeholder=example)


def submit_form(form_key: str, specs: list[Field], initial: dict, choices: dict[str, dict],
                save: Callable[[dict], T], submit_label: str,
                hidden: tuple[str, ...] = ()) -> T | None:
    """A spec form whose submission calls save(values): invalid values come back as messages
    next to their fields (after a rerun, with everything typed kept); a refused permission is
    shown as an error. Returns save's result once it succeeded, and clears the form."""
    errors_key = f"{form_key}:errors"
    values = spec_form(form_key, specs, initial, choices, st.session_state.get(errors_key),
                       submit_label=submit_label, hidden=hidden)
    if values is None:
        return None
    try:
        result = save(values)
    except ValidationError as exc:
        st.session_state[errors_key] = exc.errors
        st.rerun()
    except (PermissionDenied, WriteConflictBase) as exc:
        st.error(md_escape(exc))
        return None
    st.session_state.pop(errors_key, None)
    clear_form(form_key, specs)
    return result


def edited(form_key: str, specs: list[Field], base: dict) -> bool:
    """Whether the user changed any widget of the form away from base."""
    for spec in specs:
        if not spec.editable:
            continue
        for key, value in zip(_keys(form_key, spec), _widget_values(spec, base.get(spec.name))):
            if key in st.session_state and st.session_state[key] != value:
                return True
    return False
