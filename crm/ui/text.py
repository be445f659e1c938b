"""Putting user text into Streamlit markdown without it being read as markup."""
import re

_MD = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")
# Streamlit's markdown turns bare URLs, www. names and emails into links after escapes are
# resolved, so escaping cannot stop it; an invisible word joiner inside the pattern does.
_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?i)(www)(?=\.)|(:)|(@)")


def md_escape(text) -> str:
    plain = "" if text is None else str(text)
    plain = _AUTOLINK.sub(lambda m: (m.group(1) + _JOINER if m.group(1) else
                                     _JOINER + ":" if m.group(2) else "@" + _JOINER), plain)
    return _MD.sub(r"\\\1", plain)
