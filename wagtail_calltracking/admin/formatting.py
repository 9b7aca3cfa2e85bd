"""Small display helpers (plain strings: templates escape them)."""

from __future__ import annotations

import re

from django.utils.translation import gettext as _
from wagtail.coreutils import multigetattr

from ..models import Channel


def format_seconds(seconds) -> str:
    """``75`` → ``"1:15"``, ``3725`` → ``"1:02:05"``, ``None`` → ``""``."""
    if seconds is None or seconds == "":
        return ""
    try:
        seconds = int(round(float(seconds)))
    except (TypeError, ValueError):
        return ""
    hours, remainder = divmod(max(seconds, 0), 3600)
    minutes, secs = divmod(remainder, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def channel_label(value) -> str:
    """The label of a channel value; unknown values (older data) are shown as stored."""
    if not value:
        return _("Unattributed")
    try:
        return str(Channel(value).label)
    except ValueError:
        return str(value)


def percent(part, whole) -> float | None:
    if not whole:
        return None
    return round(100.0 * (part or 0) / whole, 1)


def format_percent(value) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} %" if value % 1 else f"{int(value)} %"


def export_value(item, accessor):
    """``multigetattr`` for exports, with a blank cell where a relation is empty."""
    try:
        value = multigetattr(item, accessor)
    except AttributeError:
        return ""
    return "" if value is None else value


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_E164 = re.compile(r"\+\d{6,15}")


def spreadsheet_safe(value):
    """Neutralise CSV formula injection: visitor-controlled text starting like a formula
    ("=HYPERLINK(…)", "@SUM(…)") gets a leading apostrophe, as OWASP advises. Phone numbers
    in E.164 ("+15551234567") and numbers are left alone."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _E164.fullmatch(value):
        return "'" + value
    return value


class SafeCsvExportMixin:
    """For views with ``SpreadsheetExportMixin``: CSV cells are formula-safe (XLSX cells are
    already written as text by Wagtail)."""

    def preprocess_field_value(self, field, value, export_format):
        value = super().preprocess_field_value(field, value, export_format)
        if export_format == self.FORMAT_CSV:
            return spreadsheet_safe(value)
        return value
