"""Call attribution: tracking number → lease → session → visitor, with a confidence level.

Rules (documented in ``docs/providers.md`` › Attribution):

* **Static number** (``Source.static_number``): the call belongs to that source. No session
  can be singled out (everyone who saw the newspaper ad dials the same number), so the
  confidence is ``source_only``; the three touches carry the source's name and its
  ``call_channel``.
* **Pool number**: the lease that was live **at the call's start time** (not when the
  webhook is processed). A lease covers ``[leased_at, end]`` where ``end`` is
  ``released_at`` if set, else ``last_seen_at + pool.hold_minutes`` (half-open:
  ``[leased_at, end)``, see ``numbers.leasing``).

  - exactly one live lease → ``exact``;
  - no live lease, but one ended within ``ATTRIBUTION_GRACE_MINUTES`` before the call →
    ``late`` (the visitor left the site, then called);
  - several candidates — a lease reclaimed from another live session when the pool was
    exhausted (both sessions saw the number), or several leases ending within the grace
    window — → ``ambiguous``: the most recent holder is recorded as the call's session and
    every candidate is kept in ``Call.candidate_sessions``;
  - a candidate lease without a session (number shown without consent to a single page
    view) → ``source_only``;
  - nothing → ``unattributed``; the source is still known when the pool serves one source.
* **Touches** (``CallTouch``) of the attributed visitor, from its sessions started up to
  the call: *first* = its first session, *last* = the attributed session (the one that
  displayed the number), *last non-direct* = the latest non-direct session up to the last
  touch (the last touch itself when every visit was direct). Unattributed calls get three
  blank rows so that reports group every call the same way.
* **Caller history**: a caller is *first-time* unless the same number called within
  ``FIRST_TIME_CALLER_DAYS`` (withheld numbers are never first-time: they cannot be
  recognised). When no session is known, the call is linked to the visitor of the caller's
  latest earlier attributed call.
* ``RELEASE_NUMBER_AFTER_CALL``: after an ``exact`` attribution the live lease is released
  (reason "call"), so the next visitor gets a fresh number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from .conf import ct_settings
from .models import (
    Call,
    CallTouch,
    Channel,
    Confidence,
    Lease,
    LeaseReleaseReason,
    Source,
    TouchModel,
    TrackingNumber,
    VisitorSession,
)
from .numbers.leasing import lease_end, release_lease
from .numbers.phone import ANONYMOUS, to_e164

logger = logging.getLogger("wagtail_calltracking.attribution")

#: How many of a number's latest leases before the call are examined. Leases of one number
#: do not overlap (except a reclaimed one with its predecessor), so only the last few can be
#: live or within the grace window.
RECENT_LEASES = 8

TOUCH_FIELDS = ("channel", "source", "medium", "campaign", "keyword", "landing_path", "referrer_domain")
_TOUCH_LIMITS = {"channel": 20, "landing_path": 2048}


@dataclass
class Attribution:
    confidence: str = Confidence.UNATTRIBUTED
    number: TrackingNumber | None = None
    source: Source | None = None
    lease: Lease | None = None
    session: VisitorSession | None = None
    candidate_session_ids: list[int] = field(default_factory=list)


def find_number(to_number: str) -> TrackingNumber | None:
    e164 = to_e164(to_number) if to_number else None
    if not e164:
        return None
    return (
        TrackingNumber.objects.select_related("pool", "static_source")
        .filter(number=e164)
        .first()
    )


def static_source_of(number: TrackingNumber) -> Source | None:
    try:
        return number.static_source
    except Source.DoesNotExist:
        return None


def pool_source(pool_id: int | None) -> Source | None:
    """The source of a pool when exactly one active source uses it."""
    if not pool_id:
        return None
    sources = list(Source.objects.filter(pool_id=pool_id, active=True).order_by("priority")[:2])
    return sources[0] if len(sources) == 1 else None


def find_attribution(number: TrackingNumber | None, started_at: datetime) -> Attribution:
    """Decide the attribution of a call to ``number`` starting at ``started_at`` (reads only)."""
    if number is None:
        return Attribution()
    static_source = static_source_of(number)
    if static_source is not None:
        return Attribution(
            confidence=Confidence.SOURCE_ONLY, number=number, source=static_source
        )

    grace = timedelta(minutes=ct_settings.ATTRIBUTION_GRACE_MINUTES)
    recent = list(
        Lease.objects.select_related("pool", "session", "session__matched_source")
        .filter(number=number, leased_at__lte=started_at)
        .order_by("-leased_at", "-pk")[:RECENT_LEASES]
    )
    ends = {lease.pk: lease_end(lease) for lease in recent}
    # Half-open intervals [leased_at, end): a lease ending exactly at the call's start is
    # no longer live (the number's next lease may start at that instant).
    live = [lease for lease in recent if ends[lease.pk] > started_at]
    if live:
        candidates, confidence = live, Confidence.EXACT
    else:
        candidates = [
            lease for lease in recent if started_at - grace <= ends[lease.pk] <= started_at
        ]
        confidence = Confidence.LATE

    if candidates:
        chosen = candidates[0]
        if chosen.reclaimed:
            # The number was taken from another live session when the pool ran out: that
            # session saw it too.
            index = recent.index(chosen)
            predecessor = recent[index + 1] if index + 1 < len(recent) else None
            if predecessor is not None and predecessor not in candidates:
                candidates = [*candidates, predecessor]
        if len(candidates) > 1:
            confidence = Confidence.AMBIGUOUS
        session_ids = []
        for lease in candidates:
            if lease.session_id and lease.session_id not in session_ids:
                session_ids.append(lease.session_id)
        session = chosen.session if chosen.session_id else None
        if session is None:
            confidence = Confidence.AMBIGUOUS if len(session_ids) > 1 else Confidence.SOURCE_ONLY
            if session_ids:
                session = next(
                    (lease.session for lease in candidates if lease.session_id), None
                )
        source = None
        if session is not None and session.matched_source_id:
            matched = session.matched_source
            if matched.pool_id and matched.pool_id == number.pool_id:
                source = matched
        if source is None:
            source = pool_source(number.pool_id)
        return Attribution(
            confidence=confidence,
            number=number,
            source=source,
            lease=chosen,
            session=session,
            candidate_session_ids=session_ids if confidence == Confidence.AMBIGUOUS else [],
        )

    return Attribution(
        confidence=Confidence.UNATTRIBUTED, number=number, source=pool_source(number.pool_id)
    )


def _touch_from_session(session: VisitorSession | None, model: str) -> CallTouch:
    touch = CallTouch(model=model, session=session)
    if session is not None:
        for name in TOUCH_FIELDS:
            value = getattr(session, name) or ""
            setattr(touch, name, value[: _TOUCH_LIMITS.get(name, 255)])
    return touch


def build_touches(attribution: Attribution, started_at: datetime) -> list[CallTouch]:
    """The first / last / last non-direct touches of the call (unsaved)."""
    session = attribution.session
    if session is None:
        source = attribution.source
        touches = []
        for model in (TouchModel.FIRST, TouchModel.LAST, TouchModel.LAST_NON_DIRECT):
            touch = CallTouch(model=model)
            if source is not None and attribution.confidence == Confidence.SOURCE_ONLY:
                touch.channel = source.call_channel
                touch.source = source.name[:255]
            touches.append(touch)
        return touches

    journey = VisitorSession.objects.filter(visitor_id=session.visitor_id, started_at__lte=started_at)
    first = journey.order_by("started_at", "pk").first() or session
    if first.started_at > session.started_at:
        first = session
    if session.channel != Channel.DIRECT:
        last_non_direct = session
    else:
        last_non_direct = (
            journey.filter(started_at__lte=session.started_at)
            .exclude(channel=Channel.DIRECT)
            .order_by("-started_at", "-pk")
            .first()
            or session
        )
    return [
        _touch_from_session(first, TouchModel.FIRST),
        _touch_from_session(session, TouchModel.LAST),
        _touch_from_session(last_non_direct, TouchModel.LAST_NON_DIRECT),
    ]


def caller_history(call: Call) -> tuple[bool, int | None]:
    """(is first-time caller, visitor id of the caller's latest earlier attributed call)."""
    caller = call.from_number
    if not caller or caller == ANONYMOUS:
        return False, None
    earlier = Call.objects.filter(from_number=caller, started_at__lt=call.started_at).exclude(
        pk=call.pk
    )
    latest = earlier.order_by("-started_at").values_list("started_at", "visitor_id").first()
    if latest is None:
        return True, None
    window = timedelta(days=ct_settings.FIRST_TIME_CALLER_DAYS)
    is_first_time = latest[0] < call.started_at - window
    visitor_id = latest[1]
    if visitor_id is None:
        visitor_id = (
            earlier.filter(visitor__isnull=False)
            .order_by("-started_at")
            .values_list("visitor_id", flat=True)
            .first()
        )
    return is_first_time, visitor_id


@dataclass
class PreparedAttribution:
    """An attribution decided and copied onto a call's fields, whose rows (touches,
    candidates) are not written yet: the call may not be saved yet."""

    attribution: Attribution
    touches: list[CallTouch]
    reattributing: bool


def copy_onto(call: Call, attribution: Attribution) -> None:
    """Copy ``attribution`` onto ``call``'s fields, with the caller's history (reads only)."""
    session = attribution.session
    call.tracking_number = attribution.number
    call.source = attribution.source
    call.lease = attribution.lease
    call.session = session
    call.visitor_id = session.visitor_id if session is not None else None
    call.confidence = attribution.confidence
    if session is not None:
        call.gclid, call.gbraid, call.wbraid = session.gclid, session.gbraid, session.wbraid
        call.ga_client_id = session.ga_client_id
        call.ga_session_ids = session.ga_session_ids or {}
    number = attribution.number
    site_id = None
    if number is not None:
        site_id = number.site_id or (number.pool.site_id if number.pool_id else None)
    if site_id is None and session is not None:
        site_id = session.site_id
    if site_id is None and attribution.source is not None:
        site_id = attribution.source.site_id
    if site_id is not None or call.site_id is None:
        call.site_id = site_id or call.site_id or _default_site_id()

    is_first_time, earlier_visitor_id = caller_history(call)
    call.is_first_time = is_first_time
    if call.visitor_id is None and earlier_visitor_id is not None:
        call.visitor_id = earlier_visitor_id


def prepare_attribution(call: Call) -> PreparedAttribution:
    """Decide the attribution of ``call`` (saved or not) and copy it onto its fields. Reads
    only; :func:`save_attribution` writes the rest once the call is saved."""
    number = call.tracking_number if call.tracking_number_id else find_number(call.to_number)
    attribution = find_attribution(number, call.started_at)
    reattributing = call.attributed_at is not None
    copy_onto(call, attribution)
    touches = build_touches(attribution, call.started_at)
    call.attributed_at = timezone.now()
    return PreparedAttribution(attribution, touches, reattributing)


def save_attribution(call: Call, prepared: PreparedAttribution) -> None:
    """Write the touches and candidates of a prepared attribution (``call`` is saved) and
    release the number if ``RELEASE_NUMBER_AFTER_CALL``."""
    attribution = prepared.attribution
    if prepared.reattributing:
        CallTouch.objects.filter(call=call).delete()
    for touch in prepared.touches:
        touch.call = call
    CallTouch.objects.bulk_create(prepared.touches)
    if attribution.candidate_session_ids:
        call.candidate_sessions.set(attribution.candidate_session_ids)
    elif prepared.reattributing:
        call.candidate_sessions.clear()
    if (
        attribution.confidence == Confidence.EXACT
        and attribution.lease is not None
        and ct_settings.RELEASE_NUMBER_AFTER_CALL
    ):
        release_after_call(attribution.lease)


def _default_site_id() -> int | None:
    from wagtail.models import Site

    return Site.objects.filter(is_default_site=True).values_list("pk", flat=True).first()


def attribute_call(call: Call) -> Attribution:
    """Attribute a saved ``call`` (with ``to_number`` and ``started_at``): fields in memory,
    touches and candidates written. Runs in the caller's transaction; the caller saves
    ``call``."""
    prepared = prepare_attribution(call)
    save_attribution(call, prepared)
    return prepared.attribution


def reattribute(call: Call) -> Attribution:
    """Recompute the attribution of an existing call (e.g. after a replay or a data fix)."""
    with transaction.atomic():
        call.tracking_number = find_number(call.to_number)
        attribution = attribute_call(call)
        call.save()
    return attribution


def release_after_call(lease: Lease) -> None:
    """Release ``lease`` now if it is still live (reason "call"): the next visitor gets a
    fresh number instead of one a caller may dial again."""
    release_lease(lease, LeaseReleaseReason.CALL)
