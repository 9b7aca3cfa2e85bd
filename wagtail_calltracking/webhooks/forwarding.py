"""Where a call rings, and how: the forwarding plan every provider renders as markup.

Destination precedence: the tracking number's ``forward_to`` → the call's source's →
the pool's → the site setting ``fallback_forward_to`` → the ``FALLBACK_FORWARD_TO`` setting.
Ring timeout, recording (with its announcement), the whisper naming the source to the
manager, and caller-id pass-through come from the site's call tracking settings.

The destination of every number is remembered in process memory (and the site fallbacks in
the cache), so that when the database is unreachable the voice webhook still forwards the
caller to the right line (fail-open).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from django.core.cache import caches
from django.db import DatabaseError

from ..conf import ct_settings
from ..models import Call, CallTrackingSiteSettings
from ..numbers.phone import ANONYMOUS, to_e164

logger = logging.getLogger("wagtail_calltracking.webhooks")

_FALLBACK_CACHE_KEY = "calltracking:fallback-forward-to"
_memory_lock = threading.Lock()
#: tracking number (E.164) → last destination used; bounded.
_last_destination: dict[str, str] = {}
_MEMORY_LIMIT = 10_000


@dataclass
class ForwardingPlan:
    destination: str
    timeout: int = 25
    record: bool = False
    announcement: str = ""
    #: Text spoken to the answering manager before connecting ("" = no whisper).
    whisper: str = ""
    #: Number the manager's phone displays: the caller's, or the tracking number.
    caller_id: str = ""
    #: True when the caller's number is passed through (no explicit caller id needed).
    pass_caller_id: bool = True
    tracking_number: str = ""
    caller: str = ""
    call_id: str = ""
    source_label: str = ""
    confidence: str = ""
    #: True when the plan comes from the fail-open path (processing failed).
    fallback: bool = False


def _settings_for(site_id) -> CallTrackingSiteSettings:
    settings = None
    if site_id:
        settings = CallTrackingSiteSettings.objects.filter(site_id=site_id).first()
    if settings is None:
        settings = CallTrackingSiteSettings.objects.filter(site__is_default_site=True).first()
    return settings or CallTrackingSiteSettings()  # model defaults, unsaved


def remember(tracking_number: str, destination: str) -> None:
    if not tracking_number or not destination:
        return
    with _memory_lock:
        if len(_last_destination) >= _MEMORY_LIMIT and tracking_number not in _last_destination:
            _last_destination.pop(next(iter(_last_destination)))
        _last_destination[tracking_number] = destination


def remember_site_fallback(destination: str) -> None:
    if not destination:
        return
    with _memory_lock:
        if _last_destination.get("") == destination:
            return
        _last_destination[""] = destination
    try:
        caches[ct_settings.CACHE_ALIAS].set(_FALLBACK_CACHE_KEY, destination, None)
    except Exception:  # noqa: BLE001 — a cache outage must not fail a call
        logger.warning("could not cache the fallback destination", exc_info=True)


def last_known_destination(tracking_number: str = "") -> str:
    """Best destination without the database: this number's last destination, the last
    site fallback seen (memory, then cache), then the ``FALLBACK_FORWARD_TO`` setting."""
    e164 = to_e164(tracking_number) if tracking_number else None
    with _memory_lock:
        if e164 and e164 in _last_destination:
            return _last_destination[e164]
        if "" in _last_destination:
            return _last_destination[""]
    try:
        cached = caches[ct_settings.CACHE_ALIAS].get(_FALLBACK_CACHE_KEY)
    except Exception:  # noqa: BLE001
        cached = None
    if cached:
        return cached
    configured = ct_settings.FALLBACK_FORWARD_TO
    return (to_e164(configured) or configured) if configured else ""


def source_label(call: Call) -> str:
    """How the whisper names the source: the configured source, else the visit's channel."""
    if call.source_id:
        return call.source.name
    if call.session_id:
        session = call.session
        label = session.get_channel_display()
        if session.source and session.source not in ("(direct)", "(not set)"):
            label = f"{label} ({session.source})"
        return str(label)
    return ""


def plan_forwarding(call: Call) -> ForwardingPlan | None:
    """The forwarding plan of an attributed call; None when no destination is known."""
    if call.tracking_number_id:
        number = call.tracking_number
    else:  # unattributed so far (attribution failed): the number still knows its line
        from ..attribution import find_number

        number = find_number(call.to_number)
    pool = number.pool if number is not None and number.pool_id else None
    source = call.source if call.source_id else None
    site_id = call.site_id or (number.site_id if number is not None else None)
    settings = _settings_for(site_id)
    remember_site_fallback(settings.fallback_forward_to)

    destination = ""
    for candidate in (
        number.forward_to if number is not None else "",
        source.forward_to if source is not None else "",
        pool.forward_to if pool is not None else "",
        settings.fallback_forward_to,
        ct_settings.FALLBACK_FORWARD_TO or "",
    ):
        if candidate:
            destination = candidate
            break
    if not destination:
        return None
    remember(call.to_number, destination)

    label = source_label(call)
    whisper = ""
    if settings.whisper and label:
        whisper = (settings.whisper_template or "Call from {source}.").replace("{source}", label)
    caller_known = call.from_number.startswith("+") and call.from_number != ANONYMOUS
    pass_through = settings.pass_caller_id and caller_known
    return ForwardingPlan(
        destination=destination,
        timeout=settings.ring_timeout or 25,
        record=settings.record_calls,
        announcement=settings.recording_announcement if settings.record_calls else "",
        whisper=whisper[:255],
        caller_id=call.from_number if pass_through else call.to_number,
        pass_caller_id=pass_through,
        tracking_number=call.to_number,
        caller=call.from_number,
        call_id=call.provider_call_id,
        source_label=label,
        confidence=call.confidence,
    )


def fallback_plan(
    tracking_number: str = "", caller: str = "", call_id: str = "", *, use_database: bool = False
) -> ForwardingPlan | None:
    """The fail-open plan, from memory, the cache and the settings; with ``use_database``
    (processing failed but the database answers) the site setting is read when nothing
    else is known."""
    destination = last_known_destination(tracking_number)
    if not destination and use_database:
        try:
            destination = _settings_for(None).fallback_forward_to
        except DatabaseError:
            destination = ""
        remember_site_fallback(destination)
    if not destination:
        return None
    return ForwardingPlan(
        destination=destination,
        caller_id=caller or tracking_number,
        tracking_number=tracking_number,
        caller=caller,
        call_id=call_id,
        fallback=True,
    )
