"""Deliveries on the production task backend (django-tasks-db): sends run in the worker, not
in the webhook, and a failed attempt is re-queued as a deferred task at its backoff time.

Transactional tests run on a flushed database (no Wagtail pages or sites): nothing here
depends on them."""

import io
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from tests.integrations_fixtures import make_attributed_call
from wagtail_calltracking.integrations import delivery
from wagtail_calltracking.models import Call, Delivery, DeliveryKind, DeliveryStatus
from wagtail_calltracking.signals import call_completed

# The production backend; not installable beside Wagtail 7.0 (django-tasks 0.7).
DBTaskResult = pytest.importorskip("django_tasks_db.models").DBTaskResult

TASKS = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    "deliveries": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["calltracking"]},
}


@pytest.fixture
def db_backend(integrations_settings):
    with override_settings(
        TASKS=TASKS,
        WAGTAIL_CALLTRACKING={
            **settings.WAGTAIL_CALLTRACKING,
            "GA4_ENDPOINT": integrations_settings.url_for("/ga").rstrip("/"),
            "HTTP_TIMEOUT_SECONDS": 1,
            "DELIVERY_MAX_ATTEMPTS": 3,
            "TASK_BACKEND": "deliveries",
            "TASK_QUEUE_NAME": "calltracking",
        },
    ):
        yield integrations_settings


def run_worker():
    call_command(
        "db_worker",
        "--batch",
        "--backend=deliveries",
        "--queue-name=calltracking",
        "--no-startup-delay",
        "--no-reload",
        verbosity=0,
    )


@pytest.mark.django_db(transaction=True)
def test_worker_sends_and_retries_deferred(db_backend, crm_endpoint):
    server = db_backend
    server.expect_oneshot_request("/crm").respond_with_data("down", status=503)
    server.expect_request("/crm").respond_with_json({})
    call = make_attributed_call(None)

    call_completed.send(sender=Call, call=call)  # autocommit: on_commit runs at once

    # Nothing was sent in the sender's thread: the send is a queued task.
    row = Delivery.objects.get(call=call, kind=DeliveryKind.CRM)
    assert row.status == DeliveryStatus.PENDING
    assert server.log == []
    task = DBTaskResult.objects.get()
    assert task.task_path == "wagtail_calltracking.integrations.tasks.deliver"
    assert task.queue_name == "calltracking"

    run_worker()
    row.refresh_from_db()
    assert row.status == DeliveryStatus.RETRYING
    assert len(server.log) == 1

    # The retry is a deferred task at the backoff time: the worker leaves it for now.
    retry = DBTaskResult.objects.exclude(pk=task.pk).get()
    assert retry.run_after is not None
    assert abs((retry.run_after - row.next_attempt_at).total_seconds()) < 1
    run_worker()
    assert len(server.log) == 1

    # Time passes.
    past = timezone.now() - timedelta(seconds=1)
    DBTaskResult.objects.filter(pk=retry.pk).update(run_after=past)
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=past)
    run_worker()
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED
    assert row.attempts == 2
    assert len(server.log) == 2


@pytest.mark.django_db(transaction=True)
def test_a_task_for_a_row_already_sent_does_nothing(db_backend, crm_endpoint):
    server = db_backend
    server.expect_request("/crm").respond_with_json({})
    call = make_attributed_call(None)
    call_completed.send(sender=Call, call=call)
    row = Delivery.objects.get(call=call, kind=DeliveryKind.CRM)
    # The command got there first; the queued task then finds nothing due.
    delivery.process_due()
    run_worker()
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED
    assert len(server.log) == 1


@pytest.mark.django_db(transaction=True)
def test_unknown_queue_leaves_the_row_for_the_command(db_backend, crm_endpoint, settings):
    server = db_backend
    server.expect_request("/crm").respond_with_json({})
    call = make_attributed_call(None)
    with override_settings(WAGTAIL_CALLTRACKING={**settings.WAGTAIL_CALLTRACKING, "TASK_QUEUE_NAME": "not-a-queue"}):
        call_completed.send(sender=Call, call=call)
    assert not DBTaskResult.objects.exists()
    call_command("calltracking_deliveries", stdout=io.StringIO())
    assert Delivery.objects.get(call=call, kind=DeliveryKind.CRM).status == DeliveryStatus.DELIVERED
