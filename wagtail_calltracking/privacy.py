"""Consent, privacy signals and IP minimisation (applied before anything is stored), and the
erasure of a visitor's or a caller's personal data (the right to be forgotten).

Retention (the periodic purge of old journeys) lives in :mod:`wagtail_calltracking.lifecycle`.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import json
import logging
import uuid
from dataclasses import asdict, dataclass, field

from django.core.checks import Error, Tags, Warning, register
from django.db import transaction
from django.utils.module_loading import import_string

from .conf import ct_settings

logger = logging.getLogger(__name__)


@functools.cache
def _consent_callable(path: str):
    return import_string(path)


def has_consent(request) -> bool:
    """True when the visitor may be tracked (cookie + journey).

    ``CONSENT`` is None (no gate), ``{"cookie": "name", "accepted": [...]}``, or a dotted path
    to a callable ``(request) -> bool``. ``HONOUR_GPC`` / ``HONOUR_DNT`` turn the browser's
    Global Privacy Control / Do-Not-Track signals into a refusal.
    """
    meta = request.META
    if ct_settings.HONOUR_GPC and meta.get("HTTP_SEC_GPC", "").strip() == "1":
        return False
    if ct_settings.HONOUR_DNT and meta.get("HTTP_DNT", "").strip() == "1":
        return False
    gate = ct_settings.CONSENT
    if not gate:
        return True
    if isinstance(gate, str):
        try:
            return bool(_consent_callable(gate)(request))
        except Exception:
            logger.exception("Consent callable %s failed; treating the visitor as not consenting", gate)
            return False
    if isinstance(gate, dict):
        value = request.COOKIES.get(gate.get("cookie") or "")
        if value is None:
            return False
        accepted = gate.get("accepted") or ("1", "true", "yes", "accepted", "granted", "all")
        return value.strip().lower() in {str(v).lower() for v in accepted}
    return False


def minimise_ip(ip: str | None) -> str | None:
    """Apply ``IP_STORAGE``: "full", "anonymised" (IPv4 /24, IPv6 /48) or "none"."""
    if not ip:
        return None
    mode = ct_settings.IP_STORAGE
    if mode == "none":
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if mode == "anonymised":
        prefix = 24 if address.version == 4 else 48
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        return str(network.network_address)
    return str(address)


# --- erasure (right to be forgotten) ------------------------------------------------------------

#: Keys of ``CallEvent.data`` that describe the call's progress, not the caller: kept on erasure.
CALL_EVENT_KEYS_KEPT = ("outcome", "talk_seconds", "total_seconds", "forwarded_leg", "agent")
#: Personal fields of a call and the value they are erased to.
CALL_PERSONAL_FIELDS = {
    "from_number": "",
    "caller_name": "",
    "caller_city": "",
    "caller_region": "",
    "caller_country": "",
    "recording_url": "",
    "gclid": "",
    "gbraid": "",
    "wbraid": "",
    "ga_client_id": "",
    "ga_session_ids": {},
    "note": "",
    "visitor": None,
    "session": None,
}
#: Followed links (calls ↔ caller numbers ↔ visitors) stop after this many rounds.
MAX_LINK_ROUNDS = 5
ERASED_MARK = "Personal data erased."


class ErasureError(ValueError):
    """An identifier that cannot be erased (malformed visitor id, withheld caller id)."""


@dataclass
class ErasureSummary:
    """What an erasure removed (or, for a dry run, would remove). It never lists the
    identifiers it erased, so it can be logged and shown safely."""

    dry_run: bool = False
    visitors: int = 0
    sessions: int = 0
    page_views: int = 0
    #: Live leases of the erased sessions, released at once (reason "erased").
    leases_released: int = 0
    #: Leases kept as (anonymous) history without their session link.
    leases_unlinked: int = 0
    #: Calls whose personal fields were erased (the calls and their attribution summary stay).
    calls: int = 0
    call_events: int = 0
    #: Raw webhook log entries whose body, headers and query string were erased.
    webhook_events: int = 0
    #: Integration deliveries whose payload was erased.
    deliveries: int = 0
    #: Deliveries not sent yet, cancelled (they would send the caller's data).
    deliveries_cancelled: int = 0
    #: Caller numbers and visitor ids erased, including those reached through links.
    caller_numbers: int = 0
    #: Requested identifiers with nothing stored about them.
    not_found: int = 0
    #: Recordings stored at the telephony provider: delete them there (URLs, given once).
    recording_urls: list[str] = field(default_factory=list)
    #: Webhook spool files (``WEBHOOK_SPOOL_DIR``) mentioning an erased number: replay them,
    #: then erase again, or delete them.
    spool_files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["recording_urls"] = len(self.recording_urls)
        data["spool_files"] = len(self.spool_files)
        return data

    def lines(self) -> list[str]:
        verb = "would be" if self.dry_run else "were"
        lines = [
            f"Visitors {verb} deleted: {self.visitors} (sessions: {self.sessions}, page views: {self.page_views})",
            f"Calls whose personal data {verb} erased: {self.calls} "
            f"(caller numbers: {self.caller_numbers}, call events: {self.call_events})",
            f"Raw webhook log entries {verb} redacted: {self.webhook_events}",
            f"Integration deliveries {verb} redacted: {self.deliveries} "
            f"(not yet sent, cancelled: {self.deliveries_cancelled})",
            f"Leases {verb} released: {self.leases_released}; kept without the visitor: {self.leases_unlinked}",
        ]
        if self.not_found:
            lines.append(f"Identifiers with nothing stored: {self.not_found}")
        if self.recording_urls:
            lines.append(
                f"{len(self.recording_urls)} call recording(s) are stored at the telephony provider: "
                "delete them there too."
            )
        if self.spool_files:
            lines.append(
                f"{len(self.spool_files)} webhook spool file(s) in WEBHOOK_SPOOL_DIR mention an erased number: "
                "replay them (calltracking_replay_webhooks --spool) and erase again, or delete them."
            )
        return lines


def parse_visitor_key(value) -> uuid.UUID:
    """A visitor id (``Visitor.key``) from user input; ErasureError when malformed."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value).strip())
    except (ValueError, AttributeError, TypeError):
        raise ErasureError(f"{value!r} is not a visitor id (a UUID such as 0f8fad5b-d9cb-469f-a165-70867728950e).")


def caller_number(value) -> str:
    """A caller number from user input, as calls store it (E.164 when valid, else the raw
    value: SIP URIs and short codes are kept as received). Withheld ids cannot be erased by
    number: they are shared by every caller who hides their number."""
    from .numbers.phone import ANONYMOUS, normalize_caller

    normalised = normalize_caller(str(value or ""))
    if normalised == ANONYMOUS:
        raise ErasureError("A withheld caller id (anonymous, private…) identifies nobody: erase by visitor id.")
    return normalised


def _number_needles(number: str) -> set[bytes]:
    """What marks ``number`` in raw webhook bodies, URLs and headers: its national significant
    number covers every provider's spelling (+15551234567, 15551234567, %2B15551234567,
    sip:+15551234567@…)."""
    from .numbers.phone import parse

    needles = {number.encode()}
    parsed = parse(number) if number.startswith("+") else None
    if parsed is not None:
        national = str(parsed.national_number)
        if len(national) >= 6:
            needles.add(national.encode())
    return needles


def _mentions(needles: set[bytes], *values) -> bool:
    for value in values:
        if not value:
            continue
        if isinstance(value, memoryview):
            value = value.tobytes()
        elif isinstance(value, str):
            value = value.encode("utf-8", "replace")
        elif not isinstance(value, bytes):
            value = json.dumps(value, default=str).encode("utf-8", "replace")
        if any(needle in value for needle in needles):
            return True
    return False


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]


@dataclass
class _Subjects:
    visitor_ids: set[int] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    call_ids: set[int] = field(default_factory=set)
    not_found: int = 0


def _find_subjects(visitor_keys, numbers, follow_links: bool) -> _Subjects:
    """The visitors, caller numbers and calls to erase. With ``follow_links`` the calls of an
    erased visitor bring their caller numbers, and a caller's calls bring the visitors they
    were attributed to (the same person), until nothing new turns up."""
    from django.db.models import Q

    from .models import Call, Visitor
    from .numbers.phone import ANONYMOUS

    subjects = _Subjects()
    keys = {parse_visitor_key(key) for key in visitor_keys}
    found = dict(Visitor.objects.filter(key__in=keys).values_list("key", "pk"))
    subjects.not_found += len(keys) - len(found)
    subjects.visitor_ids.update(found.values())
    requested_numbers = {caller_number(number) for number in numbers}
    known_numbers = set(Call.objects.filter(from_number__in=requested_numbers).values_list("from_number", flat=True))
    subjects.not_found += len(requested_numbers - known_numbers)
    subjects.numbers.update(requested_numbers)

    for _round in range(MAX_LINK_ROUNDS):
        rows = Call.objects.filter(
            Q(visitor_id__in=subjects.visitor_ids)
            | Q(session__visitor_id__in=subjects.visitor_ids)
            | Q(from_number__in=subjects.numbers)
        ).values_list("pk", "from_number", "visitor_id", "session__visitor_id")
        before = (len(subjects.visitor_ids), len(subjects.numbers), len(subjects.call_ids))
        for pk, from_number, visitor_id, session_visitor_id in rows:
            subjects.call_ids.add(pk)
            if not follow_links:
                continue
            if from_number and from_number != ANONYMOUS:
                subjects.numbers.add(from_number)
            subjects.visitor_ids.update(v for v in (visitor_id, session_visitor_id) if v)
        if (len(subjects.visitor_ids), len(subjects.numbers), len(subjects.call_ids)) == before:
            break
    return subjects


def erase_personal_data(
    visitor_keys=(), phone_numbers=(), *, follow_links: bool = True, dry_run: bool = False
) -> ErasureSummary:
    """Erase everything stored about the given visitors (``Visitor.key``) and callers (phone
    numbers), across every table (see ``docs/privacy.md``):

    * visitors, their sessions and page views are deleted; their live leases are released
      (reason "erased") and every lease, call touch and call loses its link to them;
    * their calls stay (counts and attribution summaries keep reports right) but lose the
      caller's number, name and location, the recording link, click and GA ids, the note and
      the visitor link; the raw event data of those calls is reduced to the call's progress;
    * the raw webhook log entries of those calls — and any other entry mentioning an erased
      number — lose their body, headers and query string;
    * integration deliveries of those calls lose their payload; unsent ones are cancelled.

    ``follow_links`` (default): a visitor's calls bring their caller numbers, and a caller's
    calls bring the visitors they were attributed to. Raises :class:`ErasureError` for a
    malformed visitor id or a withheld caller id. Idempotent."""
    subjects = _find_subjects(visitor_keys, phone_numbers, follow_links)
    summary = ErasureSummary(dry_run=dry_run, not_found=subjects.not_found)
    with transaction.atomic():
        _erase(subjects, summary, dry_run)
        if dry_run:
            transaction.set_rollback(True)
    summary.spool_files = _spool_files_mentioning(subjects.numbers)
    if not dry_run:
        logger.info("Personal data erased: %s", summary.as_dict())
    return summary


def _erase(subjects: _Subjects, summary: ErasureSummary, dry_run: bool) -> None:
    from .models import (
        Call,
        CallEvent,
        CallTouch,
        Delivery,
        DeliveryStatus,
        Lease,
        LeaseReleaseReason,
        PageView,
        Visitor,
        VisitorSession,
        WebhookEvent,
        WebhookEventStatus,
    )
    from .numbers.leasing import release_lease

    session_ids = list(VisitorSession.objects.filter(visitor_id__in=subjects.visitor_ids).values_list("pk", flat=True))
    calls = Call.objects.filter(pk__in=subjects.call_ids)
    summary.caller_numbers = len(subjects.numbers)
    summary.recording_urls = sorted(set(calls.exclude(recording_url="").values_list("recording_url", flat=True)))

    # Journeys.
    live_leases = list(
        Lease.objects.filter(session_id__in=session_ids, released_at__isnull=True).values_list("pk", flat=True)
    )
    if not dry_run:
        for lease_id in live_leases:
            summary.leases_released += bool(release_lease(lease_id, LeaseReleaseReason.ERASED))
    else:
        summary.leases_released = len(live_leases)
    summary.leases_unlinked = Lease.objects.filter(session_id__in=session_ids).update(session=None)
    CallTouch.objects.filter(session_id__in=session_ids).update(session=None)
    Call.candidate_sessions.through.objects.filter(visitorsession_id__in=session_ids).delete()
    Call.objects.filter(session_id__in=session_ids).update(session=None)
    Call.objects.filter(visitor_id__in=subjects.visitor_ids).update(visitor=None)
    summary.page_views = PageView.objects.filter(session_id__in=session_ids).delete()[0]
    summary.sessions = VisitorSession.objects.filter(pk__in=session_ids).delete()[1].get(
        VisitorSession._meta.label, 0
    )
    summary.visitors = Visitor.objects.filter(pk__in=subjects.visitor_ids).delete()[1].get(Visitor._meta.label, 0)

    # Calls: personal fields, their links to any visit, their timeline's raw data.
    summary.calls = calls.update(**CALL_PERSONAL_FIELDS)
    CallTouch.objects.filter(call_id__in=subjects.call_ids).update(session=None)
    Call.candidate_sessions.through.objects.filter(call_id__in=subjects.call_ids).delete()
    events = CallEvent.objects.filter(call_id__in=subjects.call_ids)
    for event in events.only("pk", "data").iterator(chunk_size=500):
        data = event.data if isinstance(event.data, dict) else {}
        kept = {key: data[key] for key in CALL_EVENT_KEYS_KEPT if key in data}
        if kept != data:
            CallEvent.objects.filter(pk=event.pk).update(data={**kept, "erased": True})
            summary.call_events += 1

    # The raw webhook log: entries of these calls, plus any other entry naming an erased number
    # (a webhook rejected before its call was stored still carries the caller's number).
    linked = set(
        WebhookEvent.objects.filter(call_id__in=subjects.call_ids).values_list("pk", flat=True)
    ) | set(events.exclude(webhook_event=None).values_list("webhook_event_id", flat=True))
    needles = set()
    for number in subjects.numbers:
        needles |= _number_needles(number)
    if needles:
        unlinked = WebhookEvent.objects.filter(call__isnull=True).exclude(pk__in=linked).exclude(error=ERASED_MARK)
        for entry in unlinked.only("pk", "url", "headers", "body", "error").iterator(chunk_size=500):
            if _mentions(needles, entry.body, entry.url, entry.headers, entry.error):
                linked.add(entry.pk)
    redacted = WebhookEvent.objects.filter(pk__in=linked)
    for entry in redacted.only("pk", "url", "status").iterator(chunk_size=500):
        status = entry.status
        if status in (WebhookEventStatus.RECEIVED, WebhookEventStatus.FAILED):
            status = WebhookEventStatus.IGNORED  # nothing left to replay
        WebhookEvent.objects.filter(pk=entry.pk).update(
            body=b"", headers={}, url=_strip_query(entry.url), error=ERASED_MARK, status=status
        )
        summary.webhook_events += 1

    # Integration deliveries (GA4, Google Ads, CRM): what was already sent cannot be recalled
    # from the receiver (docs/privacy.md); nothing more is sent.
    deliveries = Delivery.objects.filter(call_id__in=subjects.call_ids)
    unsent = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.SENDING, DeliveryStatus.AWAITING_FETCH)
    summary.deliveries_cancelled = deliveries.filter(status__in=unsent).update(
        status=DeliveryStatus.SKIPPED, skip_reason=ERASED_MARK, next_attempt_at=None, claimed_until=None
    )
    summary.deliveries = deliveries.update(payload={}, last_response="", last_error="")


def _spool_files_mentioning(numbers: set[str]) -> list[str]:
    from pathlib import Path

    directory = ct_settings.WEBHOOK_SPOOL_DIR
    if not directory or not numbers:
        return []
    needles = set()
    for number in numbers:
        needles |= _number_needles(number)
    found = []
    for file in sorted(Path(directory).glob("*.json")):
        try:
            text = file.read_bytes()
        except OSError:
            continue
        try:
            record = json.loads(text)
            body = base64.b64decode(record.get("body_b64", "")) if isinstance(record, dict) else b""
        except (ValueError, TypeError):
            body = b""
        if _mentions(needles, text, body):
            found.append(str(file))
    return found


# --- system checks (ids 080–099) -------------------------------------------------------------------


@register(Tags.compatibility)
def check_privacy_settings(app_configs=None, **kwargs):
    from django.conf import settings

    from .conf import SETTINGS_NAME

    user = getattr(settings, SETTINGS_NAME, None)
    if not isinstance(user, dict):
        return []
    messages = []
    for key in ("RETENTION_DAYS", "WEBHOOK_LOG_RETENTION_DAYS"):
        value = user.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            messages.append(
                Error(
                    f"{SETTINGS_NAME}[{key!r}] is {value!r}.",
                    hint="Expected None (keep forever) or a positive number of days, e.g. 90.",
                    id="wagtail_calltracking.E080",
                )
            )
    if (
        user.get("DYNAMIC_NUMBERS_WITHOUT_CONSENT")
        and not user.get("CONSENT")
        and not user.get("HONOUR_GPC")
        and not user.get("HONOUR_DNT")
    ):
        messages.append(
            Warning(
                f"{SETTINGS_NAME}['DYNAMIC_NUMBERS_WITHOUT_CONSENT'] has no effect: no consent gate "
                "(CONSENT) and no privacy signal (HONOUR_GPC, HONOUR_DNT) is configured, so every "
                "visitor is tracked.",
                hint="Set CONSENT to your consent cookie or callable, or remove the setting.",
                id="wagtail_calltracking.W081",
            )
        )
    return messages
