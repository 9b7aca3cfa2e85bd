"""The delivery machinery: signals → outbox rows → sends, retries with backoff, no duplicates,
failures that never reach the caller. A real local HTTP server receives everything."""

import json
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from werkzeug import Response

from tests.integrations_fixtures import make_attributed_call
from wagtail_calltracking.integrations import crm, delivery
from wagtail_calltracking.models import Call, Delivery, DeliveryEvent, DeliveryKind, DeliveryStatus
from wagtail_calltracking.signals import call_completed, call_started, call_tagged

pytestmark = pytest.mark.django_db


def complete(call, capture):
    with capture(execute=True):
        call_completed.send(sender=Call, call=call)


def crm_requests(httpserver):
    return [req for req, _ in httpserver.log if req.path == "/crm"]


def ga_requests(httpserver):
    return [req for req, _ in httpserver.log if req.path.startswith("/ga/")]


def make_due(delivery_obj):
    Delivery.objects.filter(pk=delivery_obj.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_completed_call_reaches_every_target(
    site, integrations_settings, ga4_property, crm_endpoint, ads_feed, django_capture_on_commit_callbacks
):
    server = integrations_settings
    server.expect_request("/ga/mp/collect", method="POST").respond_with_data("", status=204)
    server.expect_request("/crm", method="POST").respond_with_json({"ok": True})
    call = make_attributed_call(site)

    complete(call, django_capture_on_commit_callbacks)

    rows = {d.kind: d for d in Delivery.objects.filter(call=call)}
    assert set(rows) == {DeliveryKind.GA4, DeliveryKind.CRM, DeliveryKind.GOOGLE_ADS}
    assert rows[DeliveryKind.GA4].status == DeliveryStatus.DELIVERED
    assert rows[DeliveryKind.GA4].last_status_code == 204
    assert rows[DeliveryKind.CRM].status == DeliveryStatus.DELIVERED
    assert rows[DeliveryKind.CRM].attempts == 1
    assert rows[DeliveryKind.GOOGLE_ADS].status == DeliveryStatus.AWAITING_FETCH
    assert rows[DeliveryKind.GOOGLE_ADS].payload["click_id"] == call.gclid
    assert len(ga_requests(server)) == 1
    assert len(crm_requests(server)) == 1


def test_signal_twice_delivers_once(
    site, integrations_settings, ga4_property, crm_endpoint, django_capture_on_commit_callbacks
):
    server = integrations_settings
    server.expect_request("/ga/mp/collect").respond_with_data("", status=204)
    server.expect_request("/crm").respond_with_json({})
    call = make_attributed_call(site)

    complete(call, django_capture_on_commit_callbacks)
    complete(call, django_capture_on_commit_callbacks)
    # A late worker and the command find nothing to do either.
    for row in Delivery.objects.filter(call=call):
        assert delivery.attempt(row.pk, force=True) is None
    call_command("calltracking_deliveries", stdout=_Sink())

    assert Delivery.objects.filter(call=call).count() == 2
    assert len(ga_requests(server)) == 1
    assert len(crm_requests(server)) == 1


def test_server_error_is_retried_with_backoff_then_delivered(
    site, integrations_settings, crm_endpoint, django_capture_on_commit_callbacks
):
    server = integrations_settings
    server.expect_oneshot_request("/crm").respond_with_data("overloaded", status=503)
    server.expect_oneshot_request("/crm").respond_with_data("still down", status=500)
    server.expect_request("/crm").respond_with_json({"ok": True})
    call = make_attributed_call(site)

    before = timezone.now()
    complete(call, django_capture_on_commit_callbacks)
    row = Delivery.objects.get(call=call, kind=DeliveryKind.CRM)
    assert row.status == DeliveryStatus.RETRYING
    assert row.attempts == 1
    assert row.last_status_code == 503
    assert row.last_error.startswith("HTTP 503")
    assert row.last_response == "overloaded"
    # First retry after the base backoff (30 s) plus at most 10 % jitter.
    assert before + timedelta(seconds=30) <= row.next_attempt_at <= timezone.now() + timedelta(seconds=33.1)

    # Not due yet: the command leaves it alone.
    call_command("calltracking_deliveries", stdout=_Sink())
    assert len(crm_requests(server)) == 1

    make_due(row)
    call_command("calltracking_deliveries", stdout=_Sink())
    row.refresh_from_db()
    assert row.status == DeliveryStatus.RETRYING
    assert row.attempts == 2
    # The backoff doubles.
    assert row.next_attempt_at - row.last_attempt_at >= timedelta(seconds=60)

    make_due(row)
    call_command("calltracking_deliveries", stdout=_Sink())
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED
    assert row.attempts == 3
    assert row.last_error == ""
    bodies = [req.get_data() for req in crm_requests(server)]
    assert len(bodies) == 3
    # Every retry carries the same delivery id and the same event.
    assert {req.headers[crm.DELIVERY_HEADER] for req in crm_requests(server)} == {str(row.pk)}
    assert len({json.loads(body)["delivery_id"] for body in bodies}) == 1


def test_timeout_is_retried(site, integrations_settings, crm_endpoint, django_capture_on_commit_callbacks):
    server = integrations_settings

    def slow(request):
        time.sleep(1.6)
        return Response("late", status=200)

    server.expect_oneshot_request("/crm").respond_with_handler(slow)
    server.expect_request("/crm").respond_with_json({})
    call = make_attributed_call(site)

    started = time.monotonic()
    complete(call, django_capture_on_commit_callbacks)
    assert time.monotonic() - started < 1.5  # the 1 s timeout, not the receiver's 1.6 s
    row = Delivery.objects.get(call=call, kind=DeliveryKind.CRM)
    assert row.status == DeliveryStatus.RETRYING
    assert "Timed out" in row.last_error
    assert row.last_status_code is None

    time.sleep(0.7)  # let the slow handler finish before the next request
    make_due(row)
    delivery.process_due()
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED


def test_gives_up_after_max_attempts_and_can_be_resent(
    site, integrations_settings, crm_endpoint, django_capture_on_commit_callbacks
):
    server = integrations_settings
    for _ in range(3):
        server.expect_oneshot_request("/crm").respond_with_data("down", status=502)
    call = make_attributed_call(site)
    complete(call, django_capture_on_commit_callbacks)
    row = Delivery.objects.get(call=call, kind=DeliveryKind.CRM)
    for _ in range(2):
        make_due(row)
        delivery.process_due()
    row.refresh_from_db()
    assert row.status == DeliveryStatus.FAILED  # DELIVERY_MAX_ATTEMPTS = 3
    assert row.attempts == 3
    assert row.next_attempt_at is None
    make_due(row)
    assert delivery.process_due() == {}  # failed rows are not picked up again by themselves

    server.expect_request("/crm").respond_with_json({})
    assert delivery.resend([row.pk]) == 1
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED
    assert row.attempts == 1
    assert len(crm_requests(server)) == 4


def test_client_error_fails_without_retrying(
    site, integrations_settings, crm_endpoint, django_capture_on_commit_callbacks
):
    integrations_settings.expect_request("/crm").respond_with_data("bad signature", status=401)
    call = make_attributed_call(site)
    complete(call, django_capture_on_commit_callbacks)
    row = Delivery.objects.get(call=call, kind=DeliveryKind.CRM)
    assert row.status == DeliveryStatus.FAILED
    assert row.attempts == 1
    assert row.last_status_code == 401


def test_rate_limited_is_retried(site, integrations_settings, crm_endpoint, django_capture_on_commit_callbacks):
    integrations_settings.expect_request("/crm").respond_with_data("slow down", status=429)
    call = make_attributed_call(site)
    complete(call, django_capture_on_commit_callbacks)
    assert Delivery.objects.get(call=call, kind=DeliveryKind.CRM).status == DeliveryStatus.RETRYING


def test_redirect_is_not_followed(site, integrations_settings, crm_endpoint, django_capture_on_commit_callbacks):
    integrations_settings.expect_request("/crm").respond_with_data(
        "", status=301, headers={"Location": "https://crm.example.com/new"}
    )
    call = make_attributed_call(site)
    complete(call, django_capture_on_commit_callbacks)
    row = Delivery.objects.get(call=call, kind=DeliveryKind.CRM)
    assert row.status == DeliveryStatus.FAILED
    assert "https://crm.example.com/new" in row.last_error


def test_unreachable_target_never_raises(site, integrations_settings, crm_endpoint, django_capture_on_commit_callbacks):
    crm_endpoint.url = "http://127.0.0.1:9/unreachable"  # discard port: connection refused
    crm_endpoint.save()
    call = make_attributed_call(site)
    complete(call, django_capture_on_commit_callbacks)  # does not raise
    row = Delivery.objects.get(call=call, kind=DeliveryKind.CRM)
    assert row.status == DeliveryStatus.RETRYING
    assert "ConnectionError" in row.last_error


def test_enqueue_failure_leaves_the_row_for_the_command(
    site, integrations_settings, crm_endpoint, django_capture_on_commit_callbacks, settings
):
    server = integrations_settings
    server.expect_request("/crm").respond_with_json({})
    call = make_attributed_call(site)
    with override_settings(WAGTAIL_CALLTRACKING={**settings.WAGTAIL_CALLTRACKING, "TASK_BACKEND": "no-such-backend"}):
        complete(call, django_capture_on_commit_callbacks)
        row = Delivery.objects.get(call=call, kind=DeliveryKind.CRM)
        assert row.status == DeliveryStatus.PENDING
        assert row.payload["event"] == "call.completed"
        assert crm_requests(server) == []
    call_command("calltracking_deliveries", stdout=_Sink())
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED


def test_a_broken_integration_never_reaches_the_sender(
    site, integrations_settings, crm_endpoint, django_capture_on_commit_callbacks, monkeypatch
):
    """Even a bug in payload building is contained: the signal returns, the row waits."""
    from wagtail_calltracking.integrations import payloads

    def boom(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(payloads, "crm_payload", boom)
    call = make_attributed_call(site)
    complete(call, django_capture_on_commit_callbacks)
    row = Delivery.objects.get(call=call, kind=DeliveryKind.CRM)
    assert row.status == DeliveryStatus.RETRYING
    assert "RuntimeError: bug" in row.last_error

    monkeypatch.undo()
    integrations_settings.expect_request("/crm").respond_with_json({})
    make_due(row)
    delivery.process_due()
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED
    assert row.payload["call"]["id"] == call.pk


def test_claim_is_exclusive(site, crm_endpoint):
    call = make_attributed_call(site)
    row = Delivery.objects.create(
        kind=DeliveryKind.CRM,
        target_id=crm_endpoint.pk,
        call=call,
        event=DeliveryEvent.CALL_COMPLETED,
        next_attempt_at=timezone.now(),
    )
    assert delivery.claim(row.pk) is True
    assert delivery.claim(row.pk) is False
    assert delivery.attempt(row.pk) is None


def test_stale_claims_come_back(site, integrations_settings, crm_endpoint):
    integrations_settings.expect_request("/crm").respond_with_json({})
    call = make_attributed_call(site)
    row = Delivery.objects.create(
        kind=DeliveryKind.CRM,
        target_id=crm_endpoint.pk,
        call=call,
        event=DeliveryEvent.CALL_COMPLETED,
        status=DeliveryStatus.SENDING,
        claimed_until=timezone.now() - timedelta(seconds=1),
    )
    counts = delivery.process_due()
    row.refresh_from_db()
    assert counts == {DeliveryStatus.DELIVERED: 1}
    assert row.status == DeliveryStatus.DELIVERED


def test_deleted_and_disabled_targets(site, integrations_settings, crm_endpoint, ga4_property):
    call = make_attributed_call(site)
    gone = Delivery.objects.create(
        kind=DeliveryKind.CRM,
        target_id=999999,
        call=call,
        event=DeliveryEvent.CALL_COMPLETED,
        next_attempt_at=timezone.now(),
    )
    ga4_property.active = False
    ga4_property.save()
    off = Delivery.objects.create(
        kind=DeliveryKind.GA4,
        target_id=ga4_property.pk,
        call=call,
        event=DeliveryEvent.CALL_COMPLETED,
        next_attempt_at=timezone.now(),
    )
    delivery.process_due()
    gone.refresh_from_db()
    off.refresh_from_db()
    assert gone.status == DeliveryStatus.FAILED and "deleted" in gone.last_error
    assert off.status == DeliveryStatus.SKIPPED
    assert integrations_settings.log == []


def test_backoff_doubles_and_is_capped(settings):
    with override_settings(
        WAGTAIL_CALLTRACKING={
            **settings.WAGTAIL_CALLTRACKING,
            "DELIVERY_BACKOFF_SECONDS": 10,
            "DELIVERY_MAX_BACKOFF_SECONDS": 100,
        }
    ):
        for attempts, expected in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (30, 100)]:
            wait = delivery.backoff(attempts).total_seconds()
            assert expected <= wait <= expected * 1.1


def test_started_and_tagged_events(site, integrations_settings, crm_endpoint, django_capture_on_commit_callbacks):
    server = integrations_settings
    server.expect_request("/crm").respond_with_json({})
    call = make_attributed_call(site, status="ringing", result="pending", talk_seconds=None)
    with django_capture_on_commit_callbacks(execute=True):
        call_started.send(sender=Call, call=call)
    call.tag = "lead"
    call.save()
    with django_capture_on_commit_callbacks(execute=True):
        call_tagged.send(sender=Call, call=call, user=None)
    events = [json.loads(req.get_data())["event"] for req in crm_requests(server)]
    assert events == ["call.started", "call.tagged"]
    assert json.loads(crm_requests(server)[0].get_data())["call"]["status"] == "ringing"

    # Re-tagging sends the new state again, on the same row (no duplicate rows).
    call.tag = "existing_customer"
    call.save()
    with django_capture_on_commit_callbacks(execute=True):
        call_tagged.send(sender=Call, call=call, user=None)
    tagged = Delivery.objects.filter(call=call, event=DeliveryEvent.CALL_TAGGED)
    assert tagged.count() == 1
    assert tagged.get().status == DeliveryStatus.DELIVERED
    last = json.loads(crm_requests(server)[-1].get_data())
    assert last["event"] == "call.tagged" and last["call"]["tag"] == "existing_customer"


def test_endpoint_not_subscribed_gets_nothing(
    site, integrations_settings, crm_endpoint, django_capture_on_commit_callbacks
):
    crm_endpoint.on_call_started = False
    crm_endpoint.save()
    call = make_attributed_call(site)
    with django_capture_on_commit_callbacks(execute=True):
        call_started.send(sender=Call, call=call)
    assert not Delivery.objects.filter(call=call).exists()


def test_other_sites_targets_are_ignored(site, integrations_settings, crm_endpoint, django_capture_on_commit_callbacks):
    from wagtail.models import Site

    other = Site.objects.create(hostname="other.example", root_page=site.root_page)
    crm_endpoint.site = other
    crm_endpoint.save()
    call = make_attributed_call(site)
    complete(call, django_capture_on_commit_callbacks)
    assert not Delivery.objects.filter(call=call).exists()


def test_command_backfill_and_stats(site, integrations_settings, crm_endpoint):
    server = integrations_settings
    server.expect_request("/crm").respond_with_json({})
    call = make_attributed_call(site)  # completed, but no signal was ever sent
    out = _Sink()
    call_command(
        "calltracking_deliveries", "--backfill", (timezone.now() - timedelta(days=1)).date().isoformat(), stdout=out
    )
    assert "1 missing delivery(ies) scheduled" in out.text
    assert Delivery.objects.get(call=call).status == DeliveryStatus.DELIVERED
    # Idempotent: nothing new the second time.
    out = _Sink()
    call_command("calltracking_deliveries", "--backfill", "2000-01-01", stdout=out)
    assert "0 missing" in out.text
    out = _Sink()
    call_command("calltracking_deliveries", "--stats", stdout=out)
    assert "crm" in out.text and "delivered" in out.text


def test_command_retry_failed_and_resend(site, integrations_settings, crm_endpoint):
    server = integrations_settings
    server.expect_request("/crm").respond_with_json({})
    call = make_attributed_call(site)
    row = Delivery.objects.create(
        kind=DeliveryKind.CRM,
        target_id=crm_endpoint.pk,
        call=call,
        event=DeliveryEvent.CALL_COMPLETED,
        status=DeliveryStatus.FAILED,
        attempts=8,
        last_error="HTTP 500",
    )
    out = _Sink()
    call_command("calltracking_deliveries", "--retry-failed", stdout=out)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED
    assert "1 failed delivery(ies) queued" in out.text

    # A delivered row is never re-sent, even when asked explicitly.
    out = _Sink()
    call_command("calltracking_deliveries", "--resend", str(row.pk), "424242", stdout=out, stderr=_Sink())
    assert "0 delivery(ies) queued" in out.text
    assert len(crm_requests(server)) == 1


class _Sink:
    def __init__(self):
        self.text = ""

    def write(self, value):
        self.text += value

    def flush(self):
        pass


def test_erased_deliveries_are_never_resent(site, integrations_settings, crm_endpoint):
    from wagtail_calltracking.privacy import erase_personal_data

    call = make_attributed_call(site)
    row = Delivery.objects.create(
        kind=DeliveryKind.CRM,
        target_id=crm_endpoint.pk,
        call=call,
        event=DeliveryEvent.CALL_COMPLETED,
        status=DeliveryStatus.RETRYING,
        payload={"call": {"caller": {"number": call.from_number}}},
        next_attempt_at=timezone.now(),
    )
    erase_personal_data(phone_numbers=[call.from_number])
    row.refresh_from_db()
    assert row.status == DeliveryStatus.SKIPPED and row.payload == {}
    assert not row.is_resendable
    assert delivery.resend([row.pk]) == 0
    assert integrations_settings.log == []


def test_one_broken_integration_does_not_hold_back_the_others(
    site, integrations_settings, crm_endpoint, ga4_property, django_capture_on_commit_callbacks, monkeypatch
):
    from wagtail_calltracking.integrations.ga4 import GA4Integration

    def broken(self, call, event):
        raise RuntimeError("GA4 rules bug")

    monkeypatch.setattr(GA4Integration, "targets", broken)
    integrations_settings.expect_request("/crm").respond_with_json({})
    call = make_attributed_call(site)
    complete(call, django_capture_on_commit_callbacks)
    assert Delivery.objects.get(call=call).kind == DeliveryKind.CRM
    assert Delivery.objects.get(call=call).status == DeliveryStatus.DELIVERED


def test_command_refuses_a_bad_date():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Not a date"):
        call_command("calltracking_deliveries", "--backfill", "last tuesday", stdout=_Sink())
