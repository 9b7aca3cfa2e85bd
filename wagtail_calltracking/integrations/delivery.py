"""The delivery machinery: an outbox of ``Delivery`` rows, worked through by django-tasks.

Life of a delivery::

    signal (after commit) ──► schedule(): one row per (target, call, event), payload built
                              │   (or "skipped" with the reason) ──► enqueue the send task
    task / command ─────────► attempt(): claim the row (one conditional UPDATE: no two
                              │   workers send the same row) ──► send ──► record
                              ├─ 2xx ──────────────► delivered  (never sent again)
                              ├─ 5xx / timeout ────► retrying, next attempt after
                              │                       BACKOFF × 2^(attempts-1) (capped)
                              ├─ other 4xx ────────► failed (re-send from the admin)
                              └─ MAX_ATTEMPTS hit ─► failed

The row is the source of truth, the task only a fast path: if enqueueing fails, or the
backend cannot defer a retry (the immediate backend), ``manage.py calltracking_deliveries``
picks due rows up. Nothing here raises into the caller: a delivery problem never breaks the
telephony webhook that triggered it.
"""

from __future__ import annotations

import random
from datetime import timedelta

from asgiref.local import Local
from django.db import connections
from django.utils import timezone

from ..conf import ct_settings
from ..models import Call, CallStatus, Delivery, DeliveryEvent, DeliveryKind, DeliveryStatus
from .base import Outcome, Skip, logger


def registry() -> dict:
    """kind → integration (imported lazily: the modules import models)."""
    from .crm import CRMIntegration
    from .ga4 import GA4Integration
    from .google_ads import GoogleAdsIntegration

    return {
        DeliveryKind.GA4: GA4Integration(),
        DeliveryKind.GOOGLE_ADS: GoogleAdsIntegration(),
        DeliveryKind.CRM: CRMIntegration(),
    }


def get_integration(kind):
    return registry()[kind]


def load_call(call_id) -> Call | None:
    return (
        Call.objects.select_related("site", "source", "session", "tracking_number", "manager")
        .filter(pk=call_id)
        .first()
    )


# --- scheduling ---------------------------------------------------------------------------


def schedule(call, event: str, *, enqueue_sends: bool = True) -> list[Delivery]:
    """Create (or, for a new tag, refresh) the deliveries of ``event`` for ``call``.

    Returns the deliveries that are now waiting to be sent."""
    due = []
    for integration in registry().values():
        try:
            due.extend(_schedule_for(integration, call, event))
        except Exception:
            # One integration's failure (say, a bug in its rules) never holds back the others;
            # `calltracking_deliveries --backfill` schedules what is missing.
            logger.exception("Scheduling %s deliveries of call %s failed", integration.kind, call.pk)
    if enqueue_sends:
        for delivery in due:
            enqueue(delivery.pk, after_response=True)
    return due


def _schedule_for(integration, call, event) -> list[Delivery]:
    due = []
    if event == DeliveryEvent.CALL_TAGGED:
        integration.on_call_tagged(call)
    for target in integration.targets(call, event):
        delivery, created = Delivery.objects.get_or_create(
            kind=integration.kind,
            target_id=target.pk,
            call=call,
            event=event,
            defaults={"target_name": str(target)[:255], "next_attempt_at": timezone.now()},
        )
        # An existing row is never sent twice; only a new tag refreshes it.
        refreshed = not created and event == DeliveryEvent.CALL_TAGGED and _refresh_for_new_tag(delivery)
        if not created and not refreshed:
            continue
        prepare(delivery, integration, target, call)
        if delivery.status == DeliveryStatus.PENDING:
            due.append(delivery)
    return due


def _refresh_for_new_tag(delivery) -> bool:
    """A call re-tagged later sends its new state: the row is reset (not duplicated)."""
    updated = (
        Delivery.objects.filter(pk=delivery.pk)
        .exclude(status=DeliveryStatus.SENDING)
        .update(
            status=DeliveryStatus.PENDING,
            payload={},
            attempts=0,
            next_attempt_at=timezone.now(),
            skip_reason="",
            last_error="",
        )
    )
    if updated:
        delivery.refresh_from_db()
    return bool(updated)


def prepare(delivery, integration, target, call) -> None:
    """Build the payload now (a snapshot of the call at the event), or record the skip."""
    try:
        payload = integration.build_payload(target, call, delivery.event, delivery)
    except Skip as skip:
        _mark_skipped(delivery, skip.reason)
        return
    except Exception:
        # Built again at the first attempt; the row stays pending so nothing is lost.
        logger.exception("Building the %s payload of delivery %s failed", delivery.kind, delivery.pk)
        return
    delivery.payload = payload
    delivery.save(update_fields=["payload", "updated_at"])


def _mark_skipped(delivery, reason):
    delivery.status = DeliveryStatus.SKIPPED
    delivery.skip_reason = reason[:255]
    delivery.next_attempt_at = None
    delivery.claimed_until = None
    delivery.save(update_fields=["status", "skip_reason", "next_attempt_at", "claimed_until", "updated_at"])


# --- enqueueing ---------------------------------------------------------------------------


#: Sends held back until the current request's response is out (immediate backend only).
_request_state = Local()


def request_started_handler(**kwargs):
    # Runs on every request: one attribute write (a list means "inside a request").
    _request_state.held = []


def request_finished_handler(**kwargs):
    """The response is on its way to the telephony provider: now send what was held."""
    held = getattr(_request_state, "held", None)
    if held is None:
        return
    _request_state.held = None
    for delivery_id in held:
        enqueue(delivery_id)
    if held:
        # Django closed obsolete connections before this ran; the sends opened one again.
        for connection in connections.all(initialized_only=True):
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()


def _is_immediate(backend) -> bool:
    from django_tasks.backends.immediate import ImmediateBackend

    return isinstance(backend, ImmediateBackend)


def enqueue(delivery_id, run_after=None, *, after_response=False) -> bool:
    """Hand the send to the task backend. False when it could not (the row stays due and the
    management command sends it).

    ``after_response``: on the immediate backend (which runs the send right here), inside a
    request, the send waits until the response has been sent — a CRM that takes seconds to
    answer never delays the forwarding instructions a ringing call is waiting for."""
    try:
        from ..compat import task_backends
        from .tasks import deliver

        backend = task_backends[ct_settings.TASK_BACKEND]
        if run_after is not None and not backend.supports_defer:
            return False  # no deferred tasks (immediate backend): the command retries
        held = getattr(_request_state, "held", None)
        if after_response and held is not None and _is_immediate(backend):
            held.append(delivery_id)
            return True
        task = deliver.using(backend=ct_settings.TASK_BACKEND, queue_name=ct_settings.TASK_QUEUE_NAME)
        if run_after is not None:
            task = task.using(run_after=run_after)
        task.enqueue(delivery_id)
        return True
    except Exception:
        logger.exception(
            "Could not enqueue delivery %s; `manage.py calltracking_deliveries` will send it",
            delivery_id,
        )
        return False


# --- attempts -----------------------------------------------------------------------------


def claim_seconds() -> int:
    """How long a worker holds a row: longer than any send can take."""
    return int(float(ct_settings.HTTP_TIMEOUT_SECONDS) * 4) + 60


def backoff(attempts: int) -> timedelta:
    """Delay before the next attempt after ``attempts`` failed ones (with up to 10 % jitter,
    so deliveries that failed together do not all come back at once)."""
    base = float(ct_settings.DELIVERY_BACKOFF_SECONDS) * (2 ** max(attempts - 1, 0))
    base = min(base, float(ct_settings.DELIVERY_MAX_BACKOFF_SECONDS))
    return timedelta(seconds=base * (1 + random.random() * 0.1))


def claim(delivery_id, *, force=False) -> bool:
    now = timezone.now()
    rows = Delivery.objects.filter(pk=delivery_id, status__in=Delivery.SENDABLE)
    if not force:
        rows = rows.filter(next_attempt_at__lte=now)
    return bool(
        rows.update(
            status=DeliveryStatus.SENDING,
            claimed_until=now + timedelta(seconds=claim_seconds()),
            updated_at=now,
        )
    )


def attempt(delivery_id, *, force=False) -> Delivery | None:
    """Send one delivery if it is due (or ``force``) and nobody else is sending it.

    Returns the updated delivery, or None when there was nothing to do. Never raises."""
    try:
        if not claim(delivery_id, force=force):
            return None
        return _send_claimed(Delivery.objects.get(pk=delivery_id))
    except Exception:
        logger.exception("Delivery %s: unexpected error", delivery_id)
        # The claim expires and the command retries: the row is never lost.
        return None


def _send_claimed(delivery) -> Delivery:
    integration = get_integration(delivery.kind)
    target = integration.get_target(delivery.target_id)
    if target is None:
        _record(delivery, Outcome(ok=False, permanent=True, error="The target was deleted."))
        return delivery
    if not target.active:
        _mark_skipped(delivery, "The integration is switched off.")
        return delivery
    call = load_call(delivery.call_id)
    try:
        if not delivery.payload:
            delivery.payload = integration.build_payload(target, call, delivery.event, delivery)
            delivery.save(update_fields=["payload", "updated_at"])
        outcome = integration.send(target, delivery)
    except Skip as skip:
        _mark_skipped(delivery, skip.reason)
        return delivery
    except Exception as exc:
        logger.exception("Delivery %s failed unexpectedly", delivery.pk)
        outcome = Outcome(ok=False, error=f"{type(exc).__name__}: {exc}")
    _record(delivery, outcome)
    return delivery


def _record(delivery, outcome: Outcome) -> None:
    now = timezone.now()
    delivery.claimed_until = None
    delivery.last_status_code = outcome.status_code
    delivery.last_response = outcome.response
    if outcome.awaiting_fetch:
        delivery.status = DeliveryStatus.AWAITING_FETCH
        delivery.next_attempt_at = None
        delivery.last_error = ""
    else:
        delivery.attempts += 1
        delivery.last_attempt_at = now
        if outcome.ok:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            delivery.last_error = ""
        elif outcome.permanent or delivery.attempts >= int(ct_settings.DELIVERY_MAX_ATTEMPTS):
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            delivery.last_error = outcome.error
        else:
            delivery.status = DeliveryStatus.RETRYING
            delivery.next_attempt_at = now + backoff(delivery.attempts)
            delivery.last_error = outcome.error
    delivery.save(
        update_fields=[
            "status",
            "attempts",
            "last_attempt_at",
            "last_status_code",
            "last_response",
            "last_error",
            "next_attempt_at",
            "claimed_until",
            "delivered_at",
            "updated_at",
        ]
    )
    if delivery.status == DeliveryStatus.RETRYING:
        enqueue(delivery.pk, run_after=delivery.next_attempt_at)
    elif delivery.status == DeliveryStatus.FAILED:
        logger.warning(
            "Delivery %s (%s → %s) failed: %s",
            delivery.pk,
            delivery.get_event_display(),
            delivery.target_name,
            delivery.last_error,
        )


# --- due work, re-sends, backfill ----------------------------------------------------------


def release_stale_claims(now=None) -> int:
    """Rows a crashed worker was sending come back (the receiver may see them twice:
    deliveries are at-least-once, identified by the X-CallTracking-Delivery header)."""
    now = now or timezone.now()
    return Delivery.objects.filter(status=DeliveryStatus.SENDING, claimed_until__lt=now).update(
        status=DeliveryStatus.RETRYING, next_attempt_at=now, claimed_until=None
    )


def due_ids(limit=None, now=None) -> list[int]:
    now = now or timezone.now()
    rows = (
        Delivery.objects.filter(status__in=Delivery.SENDABLE, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)
    )
    return list(rows[:limit] if limit else rows)


def process_due(limit=None) -> dict:
    """Send every due delivery in this process. Returns counts by resulting status."""
    release_stale_claims()
    counts: dict[str, int] = {}
    for delivery_id in due_ids(limit):
        delivery = attempt(delivery_id)
        if delivery is not None:
            counts[delivery.status] = counts.get(delivery.status, 0) + 1
    return counts


def reset_for_resend(delivery_ids) -> int:
    """Make deliveries due again: failed, retrying, skipped or pending ones, never delivered
    ones (a delivered event is not sent twice). Skipped rows are re-evaluated from scratch
    (the configuration may have changed); failed ones keep their payload, so the receiver
    gets the same body and delivery id again."""
    now = timezone.now()
    rows = Delivery.resendable(Delivery.objects.filter(pk__in=delivery_ids))
    count = rows.exclude(status=DeliveryStatus.SKIPPED).update(
        status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now
    )
    count += rows.filter(status=DeliveryStatus.SKIPPED).update(
        status=DeliveryStatus.PENDING, payload={}, skip_reason="", attempts=0, next_attempt_at=now
    )
    return count


def resend(delivery_ids) -> int:
    """Re-send from the admin or the command: reset, then hand to the task backend."""
    delivery_ids = list(delivery_ids)
    reset_for_resend(delivery_ids)
    ready = list(
        Delivery.objects.filter(pk__in=delivery_ids, status=DeliveryStatus.PENDING).values_list("pk", flat=True)
    )
    for delivery_id in ready:
        enqueue(delivery_id)
    return len(ready)


def backfill(since, *, event=DeliveryEvent.CALL_COMPLETED, enqueue_sends=False) -> int:
    """Schedule ``event`` for completed calls since ``since`` that have no delivery yet for
    a target (after adding a target, or if a signal was lost). Idempotent."""
    count = 0
    calls = Call.objects.filter(started_at__gte=since, status=CallStatus.COMPLETED).order_by("started_at")
    for call_id in calls.values_list("pk", flat=True).iterator():
        call = load_call(call_id)
        count += len(schedule(call, event, enqueue_sends=enqueue_sends))
    return count


def counts_by_status() -> dict:
    from django.db.models import Count

    return {
        (row["kind"], row["status"]): row["n"]
        for row in Delivery.objects.values("kind", "status").annotate(n=Count("pk"))
    }
