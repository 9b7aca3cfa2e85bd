"""What every integration (GA4, Google Ads, CRM) provides to the delivery machinery."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import requests
from django.utils.translation import gettext as _

from .. import __version__
from ..conf import ct_settings
from ..models import CallResult, CallTag

logger = logging.getLogger("wagtail_calltracking.integrations")

USER_AGENT = f"wagtail-calltracking/{__version__} (+https://github.com/wagtail-calltracking/wagtail-calltracking)"

#: Status codes worth retrying: the receiver is overloaded or asks us to come back later.
RETRYABLE_STATUS = frozenset({408, 425, 429})

#: How much of a receiver's answer is kept in the delivery log.
RESPONSE_SNIPPET_CHARS = 2000


class Skip(Exception):  # noqa: N818  (a decision, not an error)
    """The call is not sent to this target (the reason is shown in the delivery log)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = str(reason)


@dataclass
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str = ""
    response: str = ""
    #: Retrying cannot help (rejected payload, redirect): fail now.
    permanent: bool = False
    #: Nothing to push: the row waits in a feed that the target fetches (Google Ads).
    awaiting_fetch: bool = False


class Integration:
    """One kind of target. Subclasses define ``kind``, ``model`` and the three hooks."""

    kind: str = ""
    model = None

    def targets(self, call, event: str) -> list:
        """Active targets that want ``event`` of ``call``."""
        raise NotImplementedError

    def build_payload(self, target, call, event: str, delivery) -> dict:
        """The data to deliver; raise :class:`Skip` when the call does not qualify."""
        raise NotImplementedError

    def send(self, target, delivery) -> Outcome:
        raise NotImplementedError

    def on_call_tagged(self, call) -> None:
        """Re-evaluate what was prepared for the call when an editor re-classifies it."""

    def get_target(self, target_id):
        return self.model.objects.filter(pk=target_id).first()


def check_rules(rules, call, *, min_talk_seconds=None) -> None:
    """Raise :class:`Skip` when ``call`` does not count under ``rules`` (a GA4 property or
    a Google Ads feed: both have answered_only / min_talk_seconds / first_time_only).
    ``min_talk_seconds`` overrides the rules' threshold (Google Ads per-source rules)."""
    if call.tag == CallTag.SPAM:
        raise Skip(_("Tagged as spam."))
    if rules.answered_only and call.result != CallResult.ANSWERED:
        raise Skip(_("Not answered (%(result)s).") % {"result": call.get_result_display()})
    min_talk = rules.min_talk_seconds if min_talk_seconds is None else min_talk_seconds
    if min_talk and (call.talk_seconds or 0) < min_talk:
        raise Skip(
            _("Talk time %(talk)ss is under the minimum of %(min)ss.")
            % {"talk": call.talk_seconds or 0, "min": min_talk}
        )
    if rules.first_time_only and not call.is_first_time:
        raise Skip(_("Repeat caller (first-time callers only)."))


def timeout():
    seconds = float(ct_settings.HTTP_TIMEOUT_SECONDS)
    return (seconds, seconds)


def post(url, *, body: bytes, headers: dict | None = None, params=None, redact=()) -> Outcome:
    """POST with timeouts; never raises. ``redact`` strings are masked in error texts (the
    GA4 API secret travels in the query string and shows up in exception messages)."""
    all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    all_headers.update(headers or {})
    try:
        response = requests.post(
            url,
            data=body,
            headers=all_headers,
            params=params,
            timeout=timeout(),
            allow_redirects=False,
        )
    except requests.Timeout as exc:
        return Outcome(ok=False, error=_redact(f"Timed out: {exc}", redact))
    except requests.RequestException as exc:
        return Outcome(ok=False, error=_redact(f"{type(exc).__name__}: {exc}", redact))
    snippet = _redact(response.text[:RESPONSE_SNIPPET_CHARS], redact)
    code = response.status_code
    if 200 <= code < 300:
        return Outcome(ok=True, status_code=code, response=snippet)
    if 300 <= code < 400:
        location = _redact(response.headers.get("Location", ""), redact)
        return Outcome(
            ok=False,
            status_code=code,
            response=snippet,
            permanent=True,
            error=f"HTTP {code}: redirects are not followed; update the URL to {location or 'the final address'}.",
        )
    permanent = 400 <= code < 500 and code not in RETRYABLE_STATUS
    return Outcome(
        ok=False,
        status_code=code,
        response=snippet,
        permanent=permanent,
        error=f"HTTP {code} {response.reason or ''}".strip(),
    )


def _redact(text: str, secrets) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return text


def dumps(payload) -> bytes:
    """Compact UTF-8 JSON: the exact bytes that are signed are the bytes that are sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode()
