"""The language of each script run: chosen on the sign-in page or under My account, else the
install default; Persian screens run right to left in a font made for Persian."""
from __future__ import annotations

import streamlit as st

from crm import i18n, settings
from crm.auth import User

CHOSEN = "chosen_language"  # session key: picked on the sign-in page or under My account

# Streamlit lays out sidebar and main area in a flex row: rtl mirrors them (sidebar on the
# right) and every block inside. Code, numbers in inputs and emails keep their own direction.
_RTL_CSS = """
<style>
@font-face { font-family: "Vazirmatn"; font-weight: 400; font-display: swap;
  src: url("./app/static/fonts/vazirmatn/Vazirmatn-Regular.woff2") format("woff2"); }
@font-face { font-family: "Vazirmatn"; font-weight: 700; font-display: swap;
  src: url("./app/static/fonts/vazirmatn/Vazirmatn-Bold.woff2") format("woff2"); }
.stApp, .stApp *:not(code):not(pre):not([translate="no"]):not([data-testid*="Icon"]) {
  font-family: "Vazirmatn", "Source Sans Pro", sans-serif; }
.stApp { direction: rtl; }
.stApp [data-testid="stMarkdownContainer"], .stApp label, .stApp h1, .stApp h2, .stApp h3,
.stApp [data-testid="stMetric"], .stApp [data-testid="stCaptionContainer"] {
  text-align: right; unicode-bidi: plaintext; }
.stApp input, .stApp textarea { direction: rtl; text-align: right; unicode-bidi: plaintext; }
.stApp input[type="number"], .stApp input[inputmode="decimal"] { direction: ltr; text-align: right; }
.stApp code, .stApp pre { direction: ltr; unicode-bidi: isolate; }
</style>
"""


def language_of(db, user: User | None) -> str:
    chosen = settings.get_all(db)
    i18n.set_toman(chosen["irr_as_toman"])
    return i18n.set_language(st.session_state.get(CHOSEN) or (user.language if user else None)
                             or chosen["language"])


def apply(db, user: User | None) -> str:
    """Sets the run's language and, for Persian, the right-to-left layout; returns it.

    The style element exists in every language, so the page's elements keep their places
    when someone switches."""
    lang = language_of(db, user)
    st.html(_RTL_CSS if i18n.is_rtl(lang) else "<style>.stApp { direction: ltr; }</style>")
    return lang


def picker(key: str = "language_picker") -> None:
    """A compact language choice (on the sign-in page); applies from the next run."""
    current = i18n.language()

    def chosen() -> None:
        st.session_state[CHOSEN] = st.session_state[key]

    st.selectbox("Language · زبان · Kalba", list(i18n.LANGUAGES),
                 index=list(i18n.LANGUAGES).index(current), format_func=i18n.LANGUAGES.get,
                 key=key, on_change=chosen, label_visibility="collapsed")
