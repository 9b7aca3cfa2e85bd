"""Signal receivers: call events become deliveries once the call's transaction commits.

Nothing here raises into the sender: the telephony webhook (or the admin view that tagged
the call) answers normally whatever happens to GA4, Google Ads or a CRM.
"""

from __future__ import annotations

from functools import partial

from django.core.signals import request_finished, request_started
from django.db import transaction
from django.dispatch import receiver

from ..models import DeliveryEvent
from ..signals import call_completed, call_started, call_tagged
from . import delivery
from .base import logger


def schedule_after_commit(call, event: str) -> None:
    call_id = getattr(call, "pk", None)
    if call_id is None:
        return
    # robust: an error in the callback is logged by Django, never raised into the request.
    transaction.on_commit(partial(schedule_now, call_id, event), robust=True)


def schedule_now(call_id, event: str) -> None:
    try:
        call = delivery.load_call(call_id)  # the committed state, not the sender's instance
        if call is not None:
            delivery.schedule(call, event)
    except Exception:
        logger.exception(
            "Scheduling %s deliveries for call %s failed; `manage.py calltracking_deliveries "
            "--backfill` schedules them again",
            event,
            call_id,
        )


@receiver(call_started, dispatch_uid="calltracking_integrations_call_started")
def on_call_started(sender, call=None, **kwargs):
    schedule_after_commit(call, DeliveryEvent.CALL_STARTED)


@receiver(call_completed, dispatch_uid="calltracking_integrations_call_completed")
def on_call_completed(sender, call=None, **kwargs):
    schedule_after_commit(call, DeliveryEvent.CALL_COMPLETED)


@receiver(call_tagged, dispatch_uid="calltracking_integrations_call_tagged")
def on_call_tagged(sender, call=None, **kwargs):
    schedule_after_commit(call, DeliveryEvent.CALL_TAGGED)


# With the immediate task backend, sends triggered during a request wait for its response.
request_started.connect(delivery.request_started_handler, dispatch_uid="calltracking_deliveries_request_started")
request_finished.connect(delivery.request_finished_handler, dispatch_uid="calltracking_deliveries_request_finished")
