"""Phone number parsing, validation and formatting, all through ``phonenumbers``."""

from __future__ import annotations

import phonenumbers
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from ..conf import ct_settings

#: How withheld caller ids are stored (providers send "anonymous", "restricted", "" …).
ANONYMOUS = "anonymous"
_WITHHELD = {"", "anonymous", "restricted", "private", "unknown", "unavailable", "withheld"}


def parse(value: str, region: str | None = None) -> phonenumbers.PhoneNumber | None:
    """Parse ``value``; None when it is not a possible, valid number."""
    if not value or not isinstance(value, str) or len(value) > 64:
        return None
    value = value.strip()
    try:
        number = phonenumbers.parse(value, region or ct_settings.DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        # Providers such as Vonage send E.164 digits without the "+".
        if value.isdigit():
            try:
                number = phonenumbers.parse("+" + value, None)
            except phonenumbers.NumberParseException:
                return None
        else:
            return None
    if not phonenumbers.is_valid_number(number):
        if value.isdigit() and not value.startswith("+"):
            try:
                plus = phonenumbers.parse("+" + value, None)
            except phonenumbers.NumberParseException:
                return None
            if phonenumbers.is_valid_number(plus):
                return plus
        return None
    return number


def to_e164(value: str, region: str | None = None) -> str | None:
    """``value`` as E.164 ("+15551234567"), or None when invalid."""
    number = parse(value, region)
    if number is None:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_caller(value: str | None, region: str | None = None) -> str:
    """A caller id as stored on a call: E.164 when valid, ``"anonymous"`` when withheld,
    otherwise the raw value trimmed (SIP URIs, short codes) so nothing is lost."""
    raw = (value or "").strip()
    if raw.lower().lstrip("+") in _WITHHELD:
        return ANONYMOUS
    e164 = to_e164(raw, region)
    if e164:
        return e164
    return raw[:32]


def format_number(e164: str, style: str = "national") -> str:
    """Display form: ``national`` ("(555) 123-4567") or ``international`` ("+1 555-123-4567")."""
    number = parse(e164)
    if number is None:
        return e164 or ""
    fmt = (
        phonenumbers.PhoneNumberFormat.INTERNATIONAL
        if style == "international"
        else phonenumbers.PhoneNumberFormat.NATIONAL
    )
    return phonenumbers.format_number(number, fmt)


def validate_phone_number(value: str) -> None:
    """Model/form validator: the value must be a valid phone number."""
    if value and to_e164(value) is None:
        raise ValidationError(
            _("“%(value)s” is not a valid phone number. Use the international form, e.g. +15551234567."),
            code="invalid_phone_number",
            params={"value": value},
        )


def clean_phone_field(instance, field_name: str) -> None:
    """Normalise ``instance.<field_name>`` to E.164 in ``Model.clean``; raises a field error."""
    value = getattr(instance, field_name)
    if not value:
        return
    e164 = to_e164(value)
    if e164 is None:
        try:
            validate_phone_number(value)
        except ValidationError as error:
            raise ValidationError({field_name: error.messages}) from None
    setattr(instance, field_name, e164)
