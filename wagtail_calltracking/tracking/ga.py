"""Google Analytics ids from the ``_ga`` and ``_ga_<container>`` cookies (for GA4 conversions).

``_ga``            GA1.1.1197596843.1673515099          → client id "1197596843.1673515099"
``_ga_ABC123``     GS1.1.1673515099.4.1.1673515200.0... → session id "1673515099"
                   GS2.1.s1673515099$o4$g1$t1673515200… → session id "1673515099"
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"^\d{1,20}$")
_SUFFIX = re.compile(r"^[A-Z0-9]{4,20}$")


def client_id_from_cookie(value: str | None) -> str:
    if not value or len(value) > 100:
        return ""
    parts = value.split(".")
    if len(parts) < 4:
        return ""
    client_id = parts[-2:]
    if all(_DIGITS.match(p) for p in client_id):
        return ".".join(client_id)
    return ""


def session_id_from_cookie(value: str | None) -> str:
    if not value or len(value) > 300:
        return ""
    if value.startswith("GS1."):
        parts = value.split(".")
        candidate = parts[2] if len(parts) > 2 else ""
    elif value.startswith("GS2."):
        parts = value.split(".", 2)
        candidate = ""
        if len(parts) == 3:
            for token in parts[2].split("$"):
                if token.startswith("s"):
                    candidate = token[1:]
                    break
    else:
        return ""
    return candidate if _DIGITS.match(candidate or "") else ""


def ga_ids_from_cookies(cookies) -> tuple[str, dict[str, str]]:
    """(client id, {"G-<container>": session id}) from a request's cookies."""
    client_id = client_id_from_cookie(cookies.get("_ga"))
    sessions: dict[str, str] = {}
    for name, value in cookies.items():
        if name.startswith("_ga_") and len(sessions) < 10:
            suffix = name[4:]
            session_id = session_id_from_cookie(value)
            if session_id and _SUFFIX.match(suffix):
                sessions[f"G-{suffix}"] = session_id
    return client_id, sessions
