"""Sanitising untrusted strings before they reach the database."""

import re

# NUL is rejected by PostgreSQL; other C0 controls (CR/LF included) have no place in a
# stored URL, user agent or campaign name and would corrupt CSV exports.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_text(value, max_length: int) -> str:
    """``value`` as a printable str of at most ``max_length`` characters (never raises)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    elif not isinstance(value, str):
        value = str(value)
    # Lone surrogates (from surrogateescape decoding) cannot be encoded for the database.
    value = value.encode("utf-8", "replace").decode("utf-8", "replace")
    value = _CONTROL.sub("", value.replace("\t", " ")).strip()
    return value[:max_length]
