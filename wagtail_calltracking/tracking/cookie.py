"""The signed first-party visitor cookie.

It carries everything a repeat page view needs so that the middleware runs no SELECT:
visitor id, session id, when session activity was last written, the campaign key of the
session, the tracking source matched at its start, and whether GA ids were captured.
Signed with the project's SECRET_KEY (``SECRET_KEY_FALLBACKS`` rotation honoured): a
forged or garbled cookie is simply a new visitor.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

from ..conf import ct_settings

SALT = "wagtail_calltracking.visitor"
VERSION = "1"


@dataclass
class VisitorCookie:
    visitor_id: int
    session_id: int
    #: Unix time at which the session's activity was last written to the database.
    written_at: int
    campaign_key: str = ""
    matched_source_id: int | None = None
    ga_captured: bool = False

    def encode(self) -> str:
        return "|".join(
            (
                VERSION,
                str(self.visitor_id),
                str(self.session_id),
                str(self.written_at),
                self.campaign_key,
                str(self.matched_source_id or ""),
                "1" if self.ga_captured else "0",
            )
        )

    @classmethod
    def decode(cls, value: str) -> VisitorCookie | None:
        parts = value.split("|")
        if len(parts) != 7 or parts[0] != VERSION:
            return None
        _, visitor, session, written, campaign, source, ga = parts
        if not (visitor.isdigit() and session.isdigit() and written.isdigit()):
            return None
        if len(campaign) > 32 or (source and not source.isdigit()):
            return None
        return cls(
            visitor_id=int(visitor),
            session_id=int(session),
            written_at=int(written),
            campaign_key=campaign,
            matched_source_id=int(source) if source else None,
            ga_captured=ga == "1",
        )


@functools.lru_cache(maxsize=4)
def _cached_signer(salt, secret_key, fallbacks):
    return signing.get_cookie_signer(salt=salt)


def _signer():
    # Building a signer imports the backend and derives keys: once per configuration, not
    # once per request (the hot path verifies a signature on every page view).
    return _cached_signer(
        ct_settings.VISITOR_COOKIE_NAME + SALT,
        settings.SECRET_KEY,
        tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ()) or ()),
    )


def read_cookie(request) -> VisitorCookie | None:
    raw = request.COOKIES.get(ct_settings.VISITOR_COOKIE_NAME)
    if not raw or len(raw) > 512:
        return None
    try:
        value = _signer().unsign(raw)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    try:
        return VisitorCookie.decode(value)
    except (ValueError, OverflowError):
        return None


def write_cookie(request, response, cookie: VisitorCookie) -> None:
    response.set_cookie(
        ct_settings.VISITOR_COOKIE_NAME,
        _signer().sign(cookie.encode()),
        max_age=int(ct_settings.VISITOR_COOKIE_AGE_DAYS) * 86400,
        domain=ct_settings.VISITOR_COOKIE_DOMAIN,
        secure=request.is_secure(),
        httponly=True,
        samesite="Lax",
    )


def delete_cookie(response) -> None:
    response.delete_cookie(
        ct_settings.VISITOR_COOKIE_NAME, domain=ct_settings.VISITOR_COOKIE_DOMAIN, samesite="Lax"
    )
