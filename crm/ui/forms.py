"""Forms generated from field specs. Widget values live in session state under stable keys,
so a refused save (invalid input, a conflict) keeps everything the user typed."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Callable, TypeVar

import streamlit as st

from crm.auth import PermissionDenied
from crm.fields import TEXT_TYPES, Field, ValidationError

T = TypeVar("T")

MIN_DATE, MAX_DATE = date(1900, 1, 1), date(2100, 12, 31)


def widget_key(form_key: str, name: str) -> str:
    return f"{form_key}:{name}"


def _widget_value(spec: Field, value):
    if value is None:
        if spec.type == "bool":
            return False
        return "" if spec.type in TEXT_TYPES else None
    if spec.type in ("money", "number"):
        return float(value)
    if spec.type == "date" and isinstance(value, datetime):
        return value.date()
    return value


def spec_form(form_key: str, specs: list[Field], initial: dict, owners: dict[int, str],
              errors: dict[str, str] | None = None, submit_label: str = "Save",
              columns: int = 2, disabled: bool = False) -> dict | None:
    """Renders the form; returns the entered values when submitted, else None."""
    errors = errors or {}
    editable = [f for f in specs if f.editable]
    for spec in editable:
        key = widget_key(form_key, spec.name)
        if key not in st.session_state:
            st.session_state[key] = _widget_value(
                spec, initial.get(spec.name, spec.default))
    sections: dict[str, list[Field]] = {}
    for spec in editable:
        sections.setdefault(spec.section, []).append(spec)
    with st.form(form_key, border=True):
        if errors:
            st.error(f"Please correct {len(errors)} field(s) marked below. Nothing was saved.")
        for section, fields in sections.items():
            if len(sections) > 1:
                st.markdown(f"**{section}**")
            cols = st.columns(columns)
            for i, spec in enumerate(fields):
                with cols[i % columns] if spec.type != "longtext" else st.container():
                    _input(form_key, spec, owners, disabled)
                    if spec.name in errors:
                        st.error(errors[spec.name], icon=":material/error:")
        submitted = st.form_submit_button(submit_label, type="primary", disabled=disabled)
    if not submitted:
        return None
    return {spec.name: _value(spec, st.session_state[widget_key(form_key, spec.name)])
            for spec in editable}


def clear_form(form_key: str, specs: list[Field]) -> None:
    for spec in specs:
        st.session_state.pop(widget_key(form_key, spec.name), None)


def _value(spec: Field, value):
    if spec.type in ("money", "number") and value is not None:
        return Decimal(str(value))
    return value


def _label(spec: Field) -> str:
    return f"{spec.label} *" if spec.required else spec.label


def _input(form_key: str, spec: Field, owners: dict[int, str], disabled: bool):
    key = widget_key(form_key, spec.name)
    label, help_text = _label(spec), spec.help
    t = spec.type
    if t in ("text", "email", "phone"):
        st.text_input(label, key=key, help=help_text, disabled=disabled,
                      placeholder={"email": "name@example.com", "phone": "+1 555 0100"}.get(t))
    elif t == "longtext":
        st.text_area(label, key=key, help=help_text, disabled=disabled, height=100)
    elif t == "choice":
        st.selectbox(label, options=list(spec.choices), format_func=spec.choice_label,
                     index=None, key=key, help=help_text, disabled=disabled,
                     placeholder="Choose…")
    elif t == "user":
        options = list(owners)
        current = st.session_state.get(key)
        if current is not None and current not in owners:
            options.append(current)
        st.selectbox(label, options=options, format_func=lambda i: owners.get(i, f"User #{i}"),
                     index=None, key=key, help=help_text or "Empty means you",
                     disabled=disabled, placeholder="Me")
    elif t in ("money", "number"):
        st.number_input(label, key=key, help=help_text, disabled=disabled,
                        step=100.0 if t == "money" else 1.0,
                        format="%.2f" if t == "money" else None)
    elif t == "date":
        st.date_input(label, key=key, help=help_text, disabled=disabled,
                      min_value=MIN_DATE, max_value=MAX_DATE, format="YYYY-MM-DD")
    elif t == "bool":
        st.checkbox(label, key=key, help=help_text, disabled=disabled)
    else:
        raise ValueError(f"no widget for field type {t}")


def submit_form(form_key: str, specs: list[Field], initial: dict, owners: dict[int, str],
                save: Callable[[dict], T], submit_label: str) -> T | None:
    """A spec form whose submission calls save(values): invalid values come back as messages
    next to their fields (after a rerun, with everything typed kept); a refused permission is
    shown as an error. Returns save's result once it succeeded, and clears the form."""
    errors_key = f"{form_key}:errors"
    values = spec_form(form_key, specs, initial, owners, st.session_state.get(errors_key),
                       submit_label=submit_label)
    if values is None:
        return None
    try:
        result = save(values)
    except ValidationError as exc:
        st.session_state[errors_key] = exc.errors
        st.rerun()
    except PermissionDenied as exc:
        st.error(str(exc))
        return None
    st.session_state.pop(errors_key, None)
    clear_form(form_key, specs)
    return result
