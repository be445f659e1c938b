"""The sign-in cookie: read from the request, written by a tiny component that sends nothing back.

streamlit-authenticator's own cookie manager renders a component on every run that reports the
browser's cookies back to the server, which runs every page twice. Reading needs no component
(st.context.cookies), and writing is rare (sign-in, sign-out), so a silent writer suffices."""
from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import formatdate

import jwt
import streamlit as st

_JS = """
export default function (component) {
  const { data } = component;
  if (!data || !data.name) return;
  const parts = [data.name + "=" + encodeURIComponent(data.value || ""), "path=/",
                 "SameSite=Strict", "expires=" + data.expires];
  if (window.location.protocol === "https:") parts.push("Secure");
  document.cookie = parts.join("; ");
}
"""
_writer = st.components.v2.component("crm_cookie_writer", js=_JS)


def decode(token: str | None, key: str, now: datetime | None = None) -> dict | None:
    """The cookie's {username, exp_date} when it is ours, signed with key and unexpired; None for
    anything else (forged, other algorithms, missing or odd fields), never an exception."""
    if not token or not isinstance(token, str):
        return None
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"])
    except Exception:  # any undecodable cookie means: not signed in
        return None
    username, expires = claims.get("username"), claims.get("exp_date")
    if not isinstance(username, str) or isinstance(expires, bool) \
            or not isinstance(expires, (int, float)):
        return None
    if expires <= (now or datetime.now()).timestamp():
        return None
    return {"username": username, "exp_date": float(expires)}


def encode(username: str, key: str, days: float) -> tuple[str, datetime]:
    expires = datetime.now() + timedelta(days=days)
    token = jwt.encode({"username": username, "exp_date": expires.timestamp()}, key,
                       algorithm="HS256")
    return token, expires


def read(name: str) -> str | None:
    try:
        return st.context.cookies.get(name)
    except Exception:  # no request context (bare mode)
        return None


def write(name: str, value: str, expires: datetime) -> None:
    _writer(key=f"cookie:{name}", data={"name": name, "value": value,
                                        "expires": formatdate(expires.timestamp(), usegmt=True)})


def delete(name: str) -> None:
    _writer(key=f"cookie:{name}",
            data={"name": name, "value": "", "expires": "Thu, 01 Jan 1970 00:00:00 GMT"})
