"""Putting user text into Streamlit markdown without it being read as markup."""
import re

_MD = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md_escape(text) -> str:
    return _MD.sub(r"\\\1", "" if text is None else str(text))
