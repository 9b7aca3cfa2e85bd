"""Turning normalised events into calls: idempotent, monotonic, attributed, signalled.

* One :class:`~wagtail_calltracking.models.Call` per (provider, call id): the row is created
  with ``INSERT … ON CONFLICT DO NOTHING`` and then locked (``SELECT … FOR UPDATE``), so two
  simultaneous deliveries never create two calls and are applied one after the other.
* An event already recorded for the call (same ``dedupe_key``) is not applied again.
* State only moves forward: status ranks ringing < in progress < completed; a final result is
  only replaced by a result with stronger evidence (answered > voicemail > busy > failed
  > missed/abandoned), so any delivery order ends in the same final state.
* Attribution runs once, when the tracking number is first known, inside a savepoint: if it
  raises, the call is still stored and forwarded, and the webhook event is marked *failed*
  for ``calltracking_replay_webhooks``.
* Signals are sent after commit: ``call_started`` when a call is created, ``call_completed``
  once, when it first reaches a final result. In a webhook request they wait until the
  response has been handed to the server (``response.close()``), so the provider never waits
  for the integrations' receivers.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ..conf import ct_settings
from ..models import (
    Call,
    CallEvent,
    CallResult,
    CallStatus,
    Manager,
    WebhookEvent,
    WebhookEventStatus,
)
from ..numbers.phone import normalize_caller, to_e164
from ..signals import call_completed, call_started
from .base import CallEventType, CallWebhookEvent, clean, loggable_headers, sanitize_json

logger = logging.getLogger("wagtail_calltracking.webhooks")

#: How strongly a result is established: a final result is only ever replaced by a stronger
#: one (a late "answered" corrects an inferred "missed"; a late "no-answer" never undoes an
#: answer; "busy" is more specific than "failed").
RESULT_EVIDENCE = {
    CallResult.PENDING: 0,
    CallResult.MISSED: 1,
    CallResult.ABANDONED: 1,  # missed vs abandoned is decided by the ring time (_derive)
    CallResult.FAILED: 2,
    CallResult.BUSY: 3,
    CallResult.VOICEMAIL: 4,
    CallResult.ANSWERED: 5,
}


@dataclass
class ProcessingResult:
    #: The call of the first event (the one the voice endpoint answers for).
    call: Call | None = None
    calls: list[Call] = field(default_factory=list)
    created: bool = False
    duplicate: bool = False
    #: Non-fatal failures (attribution raised): the webhook event is kept for replay.
    errors: list[str] = field(default_factory=list)


# --- the raw log ----------------------------------------------------------------------------


def _safe_url(request) -> str:
    from .base import public_url

    try:
        return clean(public_url(request), 4096)
    except Exception:  # noqa: BLE001 — DisallowedHost etc.: keep what we have
        return clean(request.get_full_path(), 4096)


def store_webhook_event(
    view,
    request,
    body: bytes,
    received_at,
    *,
    signature_valid: bool = True,
    status: str = WebhookEventStatus.RECEIVED,
    error: str = "",
) -> WebhookEvent:
    return WebhookEvent.objects.create(
        provider=view.provider,
        endpoint=view.endpoint,
        received_at=received_at,
        method=clean(request.method, 8),
        url=_safe_url(request),
        headers=loggable_headers(request),
        content_type=clean(request.META.get("CONTENT_TYPE", ""), 255),
        body=body,
        signature_valid=signature_valid,
        status=status,
        error=clean(error, 2000),
        attempts=0 if status == WebhookEventStatus.REJECTED else 1,
    )


def mark_webhook_event(webhook_event, status: str, *, error: str = "", call=None) -> bool:
    """Record the outcome of processing; False when it could not be written."""
    if webhook_event is None or webhook_event.pk is None:
        return False
    values = {"status": status, "error": clean(error, 2000), "processed_at": timezone.now()}
    if call is not None and call.pk:
        values["call_id"] = call.pk
    try:
        WebhookEvent.objects.filter(pk=webhook_event.pk).update(**values)
    except DatabaseError:
        logger.exception("could not record the outcome of webhook event %s", webhook_event.pk)
        return False
    for name, value in values.items():
        setattr(webhook_event, name, value)
    return True


# --- calls ----------------------------------------------------------------------------------


def _initial_fields(provider: str, event: CallWebhookEvent, received_at) -> dict:
    moment = event.timestamp or received_at
    started_at = event.started_at
    if started_at is None:
        started_at = moment
        if event.event_type == CallEventType.COMPLETED and event.total_seconds and not event.is_forwarded_leg:
            started_at = moment - timedelta(seconds=event.total_seconds)
    return {
        "provider": provider,
        "provider_call_id": event.call_id,
        "started_at": started_at,
        "created_at": received_at,
    }


def lock_or_create_call(provider: str, event: CallWebhookEvent, received_at) -> tuple[Call, bool]:
    """The call of ``event``, locked for this transaction, created if new. A concurrent
    delivery that creates it first wins; this one then locks and updates that row."""
    locked = Call.objects.select_for_update()
    call = locked.filter(provider=provider, provider_call_id=event.call_id).first()
    if call is not None:
        return call, False
    try:
        with transaction.atomic():
            return Call.objects.create(**_initial_fields(provider, event, received_at)), True
    except IntegrityError:
        return locked.get(provider=provider, provider_call_id=event.call_id), False


def insert_incoming_call(provider: str, event: CallWebhookEvent, received_at, result) -> Call | None:
    """The fast path of the voice webhook: a new call is decided in memory (identity,
    attribution — reads only) and written with one INSERT. None when the call exists already
    (a retry, or a status event that came first): the caller takes the regular path."""
    call = Call(**_initial_fields(provider, event, received_at))
    apply_event(call, event, received_at)
    prepared = None
    if call.to_number:
        snapshot = {name: getattr(call, name) for name in _ATTRIBUTION_FIELDS}
        try:
            from ..attribution import prepare_attribution

            prepared = prepare_attribution(call)
        except Exception as error:  # noqa: BLE001 — never lose the call over attribution
            logger.exception("attribution of the call to %s failed", call.to_number)
            for name, value in snapshot.items():
                setattr(call, name, value)
            result.errors.append(f"attribution failed: {error!r}")
    try:
        with transaction.atomic():
            call.save(force_insert=True)
    except IntegrityError:
        return None
    if prepared is not None:
        from ..attribution import save_attribution

        save_attribution(call, prepared)
    return call


def _advance_status(call: Call, status: str) -> None:
    if Call.STATUS_RANK[status] > Call.STATUS_RANK[CallStatus(call.status)]:
        call.status = status


def _set_result(call: Call, result: str) -> None:
    """Only a result with stronger evidence replaces the current one: the final state does
    not depend on the order events arrive in."""
    if RESULT_EVIDENCE[result] > RESULT_EVIDENCE[CallResult(call.result)]:
        if result == CallResult.ANSWERED and call.result != CallResult.PENDING and call.talk_seconds == 0:
            call.talk_seconds = None  # the zero of the unanswered guess; derived again below
        call.result = result


def _fill(call: Call, name: str, value: str, max_length: int) -> None:
    if value and not getattr(call, name):
        setattr(call, name, clean(value, max_length))


def _normalise_destination(value: str) -> str:
    return to_e164(value) or clean(value, 32) if value else ""


def _apply_identity(call: Call, event: CallWebhookEvent) -> None:
    if event.is_forwarded_leg:
        destination = event.forwarded_to or event.to_number
        if destination and not call.forwarded_to:
            call.forwarded_to = _normalise_destination(destination)[:32]
        return
    if event.from_number and not call.from_number:
        call.from_number = normalize_caller(event.from_number)[:32]
    if event.to_number and not call.to_number:
        call.to_number = (to_e164(event.to_number) or clean(event.to_number, 32))[:32]
    elif event.to_number and not to_e164(call.to_number) and to_e164(event.to_number):
        # An earlier event carried no usable number called (a dial-result leg, a SIP URI):
        # the first real one replaces it (and process_event attributes the call again).
        call.to_number = to_e164(event.to_number)
    if event.forwarded_to and not call.forwarded_to:
        call.forwarded_to = _normalise_destination(event.forwarded_to)[:32]
    _fill(call, "caller_name", event.caller_name, 255)
    _fill(call, "caller_city", event.caller_city, 128)
    _fill(call, "caller_region", event.caller_region, 128)
    _fill(call, "caller_country", event.caller_country, 8)
    _fill(call, "conversation_id", event.conversation_id, 128)


def apply_event(call: Call, event: CallWebhookEvent, received_at) -> None:
    """Apply one event to ``call`` in memory, monotonically."""
    moment = event.timestamp or received_at
    _apply_identity(call, event)
    if event.started_at and event.started_at < call.started_at:
        call.started_at = event.started_at
    if event.answered_at and (call.answered_at is None or event.answered_at < call.answered_at):
        call.answered_at = event.answered_at

    kind = event.event_type
    if kind == CallEventType.INCOMING:
        if moment < call.started_at:
            call.started_at = moment
    elif kind == CallEventType.ANSWERED:
        if call.answered_at is None or moment < call.answered_at:
            call.answered_at = event.answered_at or moment
        _advance_status(call, CallStatus.IN_PROGRESS)
        if call.result != CallResult.PENDING:
            _set_result(call, CallResult.ANSWERED)
    elif kind == CallEventType.COMPLETED:
        if event.total_seconds is not None and not event.is_forwarded_leg:
            call.total_seconds = event.total_seconds
        outcome = event.outcome
        if outcome is None and event.is_forwarded_leg and (event.talk_seconds or call.answered_at):
            outcome = CallResult.ANSWERED
        if outcome is not None or not event.is_forwarded_leg:
            if call.ended_at is None or moment > call.ended_at:
                call.ended_at = moment
            _advance_status(call, CallStatus.COMPLETED)
            if outcome is not None:
                _set_result(call, outcome)
            elif call.result == CallResult.PENDING:
                answered = call.answered_at is not None or bool(event.talk_seconds or call.talk_seconds)
                call.result = CallResult.ANSWERED if answered else CallResult.MISSED
        # A talk time only counts for an answered call, and a zero never erases a real one.
        if event.talk_seconds and call.result in (CallResult.ANSWERED, CallResult.PENDING):
            call.talk_seconds = event.talk_seconds
        if event.ring_seconds is not None:
            # A reported ring time pins the answer instant (answered) or the ringing span.
            if call.result == CallResult.ANSWERED and call.answered_at is None:
                call.answered_at = call.started_at + timedelta(seconds=event.ring_seconds)
            elif call.result in (CallResult.MISSED, CallResult.ABANDONED) and call.total_seconds is None:
                call.total_seconds = event.ring_seconds
    elif kind == CallEventType.RECORDING:
        if event.recording_url:
            call.recording_url = clean(event.recording_url, 1024)
        if event.recording_duration is not None:
            call.recording_duration = event.recording_duration
    _derive(call)


def _derive(call: Call) -> None:
    """Ring and talk times from whatever the provider sent, and missed vs abandoned."""
    answered = call.result == CallResult.ANSWERED or (
        call.result == CallResult.PENDING and call.answered_at is not None
    )
    if (
        call.result == CallResult.ANSWERED
        and call.answered_at is None
        and call.ended_at
        and call.talk_seconds is not None
    ):
        call.answered_at = call.ended_at - timedelta(seconds=call.talk_seconds)
    if answered and call.answered_at and call.ended_at and call.talk_seconds is None:
        call.talk_seconds = max(0, int((call.ended_at - call.answered_at).total_seconds()))
    if answered and call.answered_at:
        call.ring_seconds = max(0, int((call.answered_at - call.started_at).total_seconds()))
    elif call.result != CallResult.PENDING and not answered:
        # Unanswered: the caller rang for the whole call (the provider's figure is exact).
        if call.total_seconds is not None:
            call.ring_seconds = call.total_seconds
        elif call.ended_at:
            call.ring_seconds = max(0, int((call.ended_at - call.started_at).total_seconds()))
        call.talk_seconds = 0
    if call.ring_seconds is None and call.total_seconds is not None and call.talk_seconds is not None:
        call.ring_seconds = max(0, call.total_seconds - call.talk_seconds)
    if call.result in (CallResult.MISSED, CallResult.ABANDONED):
        short = call.ring_seconds is not None and call.ring_seconds < ct_settings.ABANDONED_CALL_SECONDS
        call.result = CallResult.ABANDONED if short else CallResult.MISSED


def identify_manager(call: Call, event: CallWebhookEvent) -> None:
    """The manager who answered: by the provider's agent identity, else by the number or
    extension the call was forwarded to."""
    if call.manager_id or not (call.answered_at or call.result == CallResult.ANSWERED):
        return
    agent = clean(event.agent, 64)
    destination = call.forwarded_to
    if not agent and not destination:
        return
    condition = Q()
    if agent:
        condition |= Q(extension=agent)
    if destination:
        condition |= Q(phone=destination) | Q(extension=destination)
    managers = Manager.objects.filter(condition, active=True)
    if call.site_id:
        managers = managers.filter(Q(site__isnull=True) | Q(site_id=call.site_id))
    candidates = list(managers[:5])
    if agent:
        by_agent = [m for m in candidates if m.extension == agent]
        if by_agent:
            call.manager = by_agent[0]
            return
    if len(candidates) == 1:
        call.manager = candidates[0]


def _event_data(event: CallWebhookEvent) -> dict:
    data = {
        "outcome": event.outcome,
        "talk_seconds": event.talk_seconds,
        "total_seconds": event.total_seconds,
        "forwarded_leg": event.is_forwarded_leg or None,
        "agent": event.agent or None,
        "recording_url": event.recording_url or None,
        "raw": event.raw,
    }
    return sanitize_json({key: value for key, value in data.items() if value not in (None, "", {})})


#: Inside a webhook request: signals committed during the request, sent once the response
#: has been handed to the server (the provider gets its answer without waiting for the
#: integrations' receivers). None outside a webhook request: signals go out at commit.
_deferred_signals: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "calltracking_deferred_signals", default=None
)


@contextlib.contextmanager
def deferring_signals():
    """Collect the signals committed inside the block; yields the list of pending sends."""
    pending: list = []
    token = _deferred_signals.set(pending)
    try:
        yield pending
    finally:
        _deferred_signals.reset(token)


def send_pending(pending: list) -> None:
    while pending:
        signal, call = pending.pop(0)
        _send(signal, call)


def _send_after_commit(signal, call: Call) -> None:
    pending = _deferred_signals.get()
    if pending is not None:
        pending.append((signal, call))
    else:
        _send(signal, call)


def _send(signal, call: Call) -> None:
    for receiver, response in signal.send_robust(sender=Call, call=call):
        if isinstance(response, Exception):
            logger.error(
                "receiver %r of %s failed for call %s: %r",
                receiver,
                "call_completed" if signal is call_completed else "call_started",
                call.pk,
                response,
                exc_info=response,
            )


_ATTRIBUTION_FIELDS = (
    "tracking_number_id", "source_id", "session_id", "visitor_id", "lease_id", "confidence",
    "site_id", "is_first_time", "gclid", "gbraid", "wbraid", "ga_client_id", "ga_session_ids",
    "attributed_at",
)


def attribute_if_needed(call: Call, result: ProcessingResult, *, again: bool = False) -> bool:
    """Attribute ``call`` once its tracking number is known (``again``: once more, its
    number called having changed), in a savepoint: a failure leaves the call unattributed
    (and the webhook event failed, for the replay)."""
    if (call.attributed_at is not None and not again) or not call.to_number:
        return False
    snapshot = {name: getattr(call, name) for name in _ATTRIBUTION_FIELDS}
    try:
        from ..attribution import attribute_call

        with transaction.atomic():
            attribute_call(call)
    except Exception as error:  # noqa: BLE001 — never lose the call over attribution
        logger.exception("attribution of call %s failed", call.pk)
        for name, value in snapshot.items():
            setattr(call, name, value)
        result.errors.append(f"attribution failed: {error!r}")
        return False
    return True


def record_event(call: Call, event: CallWebhookEvent, webhook_event, received_at) -> None:
    CallEvent.objects.create(
        call=call,
        webhook_event=webhook_event if webhook_event is not None and webhook_event.pk else None,
        event_type=event.event_type,
        occurred_at=event.timestamp or received_at,
        sequence=event.sequence if event.sequence is not None and abs(event.sequence) < 2**31 else None,
        leg_id=clean(event.leg_id, 128),
        dedupe_key=clean(event.dedupe_key, 255),
        data=_event_data(event),
    )


def process_event(
    provider: str, event: CallWebhookEvent, *, webhook_event=None, received_at=None, result=None
) -> Call:
    received_at = received_at or timezone.now()
    result = result if result is not None else ProcessingResult()
    # No savepoint: within process_events an error fails the request's whole transaction.
    with transaction.atomic(savepoint=False):
        if event.event_type == CallEventType.INCOMING:
            call = insert_incoming_call(provider, event, received_at, result)
            if call is not None:
                record_event(call, event, webhook_event, received_at)
                transaction.on_commit(lambda: _send_after_commit(call_started, call), robust=True)
                result.created = True
                return call
        call, created = lock_or_create_call(provider, event, received_at)
        if (
            not created
            and event.dedupe_key
            and CallEvent.objects.filter(call=call, dedupe_key=event.dedupe_key[:255]).exists()
        ):
            # Already applied (a retry, a duplicate, a replay): only finish what failed.
            result.duplicate = True
            if attribute_if_needed(call, result):
                call.save()
            return call
        was_final = call.result != CallResult.PENDING
        number_called = call.to_number
        apply_event(call, event, received_at)
        retargeted = call.to_number != number_called and call.tracking_number_id is None
        attribute_if_needed(call, result, again=retargeted and call.attributed_at is not None)
        identify_manager(call, event)
        call.save()
        record_event(call, event, webhook_event, received_at)
        if created:
            transaction.on_commit(lambda: _send_after_commit(call_started, call), robust=True)
        if not was_final and call.result != CallResult.PENDING:
            transaction.on_commit(lambda: _send_after_commit(call_completed, call), robust=True)
    result.created = result.created or created
    return call


def process_events(
    provider: str, events: list[CallWebhookEvent], *, webhook_event=None, received_at=None
) -> ProcessingResult:
    """Apply ``events`` in one transaction, which also records the outcome on
    ``webhook_event`` (one commit for the whole request, after the raw log's own)."""
    result = ProcessingResult()
    with transaction.atomic():
        for event in events:
            call = process_event(
                provider, event, webhook_event=webhook_event, received_at=received_at, result=result
            )
            if result.call is None:
                result.call = call
            if call not in result.calls:
                result.calls.append(call)
        if webhook_event is not None and webhook_event.pk is not None:
            # Inside the transaction: a failure here fails the whole request (fail-open).
            values = {
                "status": WebhookEventStatus.FAILED if result.errors else WebhookEventStatus.PROCESSED,
                "error": clean("; ".join(result.errors), 2000),
                "processed_at": timezone.now(),
                "call_id": result.call.pk if result.call is not None else None,
            }
            WebhookEvent.objects.filter(pk=webhook_event.pk).update(**values)
            for name, value in values.items():
                setattr(webhook_event, name, value)
    return result
