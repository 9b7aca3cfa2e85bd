"""The webhook pipeline across providers: fail-open with a really broken database, the raw
log and its replay, size limits, system checks, query budget and signals."""

import copy
import io
import json
import logging
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connections
from django.test import override_settings
from django.utils import timezone

from wagtail_calltracking.models import Call, CallResult, Confidence, WebhookEvent
from wagtail_calltracking.signals import call_completed
from wagtail_calltracking.webhooks import forwarding, processing

from .test_webhooks_twilio import DIAL, SID, STATUS, VOICE, dial_result, incoming
from .webhook_fixtures import (
    CALLER,
    FALLBACK_FORWARD,
    SALES_LINE,
    demo_post,
    settings_with,
    twilio_post,
    webhook_path,
)

pytestmark = pytest.mark.usefixtures("forget_destinations")


@contextmanager
def broken_database():
    """Point the default alias at a database that cannot be reached: every query of the
    code under test fails for real (OperationalError from the driver), while the test's
    own connection is kept aside and restored afterwards."""
    original = connections["default"]
    settings_dict = copy.deepcopy(original.settings_dict)
    if original.vendor == "sqlite":
        settings_dict["NAME"] = "/nonexistent-directory/calltracking/unreachable.sqlite3"
    else:
        settings_dict.update(HOST="127.0.0.1", PORT="1", NAME="unreachable")
        settings_dict.setdefault("OPTIONS", {})["connect_timeout"] = 2
    broken = original.__class__(settings_dict, alias="default")
    connections["default"] = broken
    try:
        yield broken
    finally:
        connections["default"] = original


def twiml(response):
    assert response.status_code == 200, response.content
    return ElementTree.fromstring(response.content)


@pytest.mark.django_db
class TestFailOpen:
    def test_database_down_forwards_to_the_last_known_destination(self, client, paid_visit, call_settings, tmp_path, caplog):
        session, number, _ = paid_visit
        number.forward_to = SALES_LINE
        number.save()
        # A first call teaches the process where this number rings.
        assert twiml(twilio_post(client, VOICE, incoming(number.number))).find("Dial/Number").text == SALES_LINE
        with settings_with(WEBHOOK_SPOOL_DIR=str(tmp_path)), caplog.at_level(logging.ERROR), broken_database():
            response = twilio_post(client, VOICE, incoming(number.number, sid="CA" + "d" * 32))
            assert twiml(response).find("Dial/Number").text == SALES_LINE
            # The forward's outcome arrives while the database is still down: TwiML anyway.
            assert twiml(twilio_post(client, DIAL, dict(dial_result("completed", 30), CallSid="CA" + "d" * 32))).find("Hangup") is not None
            # A pure notification asks the provider to retry.
            assert twilio_post(client, STATUS, {"CallSid": "CA" + "d" * 32, "CallStatus": "completed"}).status_code == 503
        spooled = sorted(tmp_path.glob("*.json"))
        assert len(spooled) == 3
        assert any("CALLTRACKING_SPOOL" in record.getMessage() for record in caplog.records)
        assert Call.objects.count() == 1  # nothing could be written meanwhile

        # The database is back: the replay stores and processes the spooled events.
        with settings_with(WEBHOOK_SPOOL_DIR=str(tmp_path)):
            call_command("calltracking_replay_webhooks", "--spool", stdout=io.StringIO())
        assert not list(tmp_path.glob("*.json"))
        call = Call.objects.get(provider_call_id="CA" + "d" * 32)
        assert call.session == session and call.confidence == Confidence.EXACT
        assert call.result == CallResult.ANSWERED and call.talk_seconds == 30
        # Replaying again changes nothing.
        call_command("calltracking_replay_webhooks", stdout=io.StringIO())
        assert Call.objects.count() == 2

    def test_database_down_on_the_first_call_uses_the_configured_fallback(self, client, paid_visit):
        _, number, _ = paid_visit
        with settings_with(FALLBACK_FORWARD_TO="+12125550188"), broken_database():
            response = twilio_post(client, VOICE, incoming(number.number))
        assert twiml(response).find("Dial/Number").text == "+12125550188"

    def test_database_down_and_nothing_known_answers_503(self, client, paid_visit):
        _, number, _ = paid_visit
        with broken_database():
            response = twilio_post(client, VOICE, incoming(number.number))
        # The provider's own fallback URL takes over (Twilio: Voice Fallback URL).
        assert response.status_code == 503

    def test_forged_request_while_database_down_is_still_refused(self, client, paid_visit):
        _, number, _ = paid_visit
        with broken_database():
            response = twilio_post(client, VOICE, incoming(number.number), token="forged")
        assert response.status_code == 403

    def test_site_fallback_remembered_in_the_cache_survives_a_restart(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        twilio_post(client, VOICE, incoming(number.number))
        forwarding._last_destination.clear()  # a new process: memory is empty, the cache is not
        with broken_database():
            response = twilio_post(client, VOICE, incoming("+19175550123", sid="CA" + "e" * 32))
        assert twiml(response).find("Dial/Number").text == FALLBACK_FORWARD

    def test_attribution_raising_still_stores_and_forwards(self, client, paid_visit, call_settings, monkeypatch):
        session, number, _ = paid_visit
        number.forward_to = SALES_LINE
        number.save()

        def explode(*args, **kwargs):
            raise RuntimeError("attribution bug")

        monkeypatch.setattr("wagtail_calltracking.attribution.find_attribution", explode)
        response = twilio_post(client, VOICE, incoming(number.number))
        assert twiml(response).find("Dial/Number").text == SALES_LINE
        call = Call.objects.get()
        assert call.attributed_at is None and call.session is None
        event = WebhookEvent.objects.get()
        assert event.status == "failed" and "attribution bug" in event.error

        monkeypatch.undo()
        call_command("calltracking_replay_webhooks", stdout=io.StringIO())
        call.refresh_from_db()
        assert call.session == session and call.confidence == Confidence.EXACT and call.attributed_at
        assert call.touches.count() == 3
        event.refresh_from_db()
        assert event.status == "processed" and event.attempts == 2

    def test_processing_failure_answers_with_the_fallback(self, client, paid_visit, call_settings, monkeypatch):
        from django.db import OperationalError

        _, number, _ = paid_visit
        twilio_post(client, VOICE, incoming(number.number))  # learns the destination

        def lost_connection(*args, **kwargs):
            raise OperationalError("server closed the connection unexpectedly")

        monkeypatch.setattr(processing, "insert_incoming_call", lost_connection)
        response = twilio_post(client, VOICE, incoming(number.number, sid="CA" + "f" * 32))
        assert twiml(response).find("Dial/Number").text == FALLBACK_FORWARD
        failed = WebhookEvent.objects.get(status="failed")
        monkeypatch.undo()
        call_command("calltracking_replay_webhooks", "--id", str(failed.pk), stdout=io.StringIO())
        assert Call.objects.filter(provider_call_id="CA" + "f" * 32, confidence=Confidence.EXACT).exists()


@pytest.mark.django_db
class TestInput:
    def test_huge_body_is_refused_unread(self, client, paid_visit):
        with settings_with(WEBHOOK_MAX_BODY_BYTES=1024):
            response = client.post(
                VOICE, "CallSid=" + "x" * 5000, content_type="application/x-www-form-urlencoded"
            )
        assert response.status_code == 413
        assert not WebhookEvent.objects.exists()

    def test_get_is_not_allowed_where_providers_post(self, client, paid_visit):
        generic_voice = webhook_path("generic", "voice")
        assert client.get(generic_voice).status_code == 405
        assert client.put(generic_voice).status_code == 405
        assert client.head(generic_voice).status_code == 200

    def test_twilio_get_webhook_signs_the_url_only(self, client, paid_visit, call_settings):
        from twilio.request_validator import RequestValidator

        _, number, _ = paid_visit
        query = urlencode(incoming(number.number))
        url = f"http://testserver{VOICE}?{query}"
        signature = RequestValidator("twilio-test-token").compute_signature(url, {})
        assert twiml(client.get(f"{VOICE}?{query}", HTTP_X_TWILIO_SIGNATURE=signature)).find("Dial") is not None
        tampered = query.replace("ringing", "completed")
        assert client.get(f"{VOICE}?{tampered}", HTTP_X_TWILIO_SIGNATURE=signature).status_code == 403

    def test_garbage_multipart_body(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        body = b"--xx\r\nContent-Disposition: form-data; name=\r\n\r\n\xff\xfe\r\n"
        response = client.post(VOICE, body, content_type="multipart/form-data; boundary=xx", HTTP_X_TWILIO_SIGNATURE="x")
        assert response.status_code in (400, 403)

    def test_replay_dry_run_lists_without_changing(self, client, paid_visit, call_settings, monkeypatch):
        _, number, _ = paid_visit
        monkeypatch.setattr("wagtail_calltracking.attribution.find_attribution", lambda *a: 1 / 0)
        twilio_post(client, VOICE, incoming(number.number))
        monkeypatch.undo()


        out = io.StringIO()
        call_command("calltracking_replay_webhooks", "--dry-run", stdout=out)
        assert "would replay" in out.getvalue()
        assert Call.objects.get().attributed_at is None


@pytest.mark.django_db
class TestBudgetAndSignals:
    def test_incoming_call_query_budget(self, client, paid_visit, call_settings, django_assert_max_num_queries):
        _, number, _ = paid_visit
        twilio_post(client, VOICE, incoming(number.number, sid="CA" + "0" * 32))  # warm caches
        # raw log | number, leases, caller history, journey (reads) | savepoint, insert call,
        # release | touches | event | outcome | site settings (forwarding); the test's own
        # transaction adds a savepoint pair (BEGIN/COMMIT in production): 14 statements.
        with django_assert_max_num_queries(14):
            twilio_post(client, VOICE, incoming(number.number))

    def test_status_update_query_budget(self, client, paid_visit, call_settings, django_assert_max_num_queries):
        _, number, _ = paid_visit
        twilio_post(client, VOICE, incoming(number.number))
        with django_assert_max_num_queries(8):
            twilio_post(client, STATUS, {"CallSid": "CB1", "ParentCallSid": SID, "CallStatus": "ringing",
                                         "SequenceNumber": "1", "To": SALES_LINE})

    def test_call_completed_is_sent_once_after_commit(self, client, paid_visit, call_settings, django_capture_on_commit_callbacks):
        _, number, _ = paid_visit
        received = []

        def receiver(sender, call, **kwargs):
            received.append((sender, call.pk, call.result))

        call_completed.connect(receiver, weak=False, dispatch_uid="base-once")
        try:
            with django_capture_on_commit_callbacks(execute=False) as callbacks:
                twilio_post(client, VOICE, incoming(number.number))
                twilio_post(client, DIAL, dial_result("completed", 20))
                twilio_post(client, DIAL, dial_result("completed", 20))
                twilio_post(client, STATUS, {"CallSid": SID, "CallStatus": "completed", "CallDuration": "25"})
            assert received == []  # nothing before commit
            for callback in callbacks:
                callback()
        finally:
            call_completed.disconnect(dispatch_uid="base-once")
        assert received == [(Call, Call.objects.get().pk, CallResult.ANSWERED)]

    def test_a_failing_receiver_does_not_break_the_webhook(self, client, paid_visit, call_settings, django_capture_on_commit_callbacks):
        _, number, _ = paid_visit

        def broken_receiver(sender, call, **kwargs):
            raise ValueError("integration down")

        call_completed.connect(broken_receiver, weak=False, dispatch_uid="base-broken")
        try:
            with django_capture_on_commit_callbacks(execute=True):
                twilio_post(client, VOICE, incoming(number.number))
                response = twilio_post(client, DIAL, dial_result("busy"))
        finally:
            call_completed.disconnect(dispatch_uid="base-broken")
        assert response.status_code == 200
        assert Call.objects.get().result == CallResult.BUSY


def check_ids(**values):
    with settings_with(**values):
        return {message.id for message in run_checks() if message.id.startswith("wagtail_calltracking.")}


@pytest.mark.django_db
class TestChecks:
    def test_listed_provider_without_secret_is_an_error(self):
        assert "wagtail_calltracking.E041" in check_ids(PROVIDERS=["twilio", "telnyx"])
        assert "wagtail_calltracking.E041" not in check_ids(PROVIDERS=["twilio", "demo"])
        assert "wagtail_calltracking.E040" in check_ids(PROVIDERS=["skype"])

    def test_automatic_mode_has_no_error(self):
        assert not {"wagtail_calltracking.E040", "wagtail_calltracking.E041"} & check_ids()

    def test_invalid_values(self, tmp_path):
        assert "wagtail_calltracking.E042" in check_ids(TELNYX_PUBLIC_KEY="not-a-key")
        assert "wagtail_calltracking.E045" in check_ids(PUBLIC_BASE_URL="calls.example.com/webhooks")
        assert "wagtail_calltracking.E045" not in check_ids(PUBLIC_BASE_URL="https://calls.example.com")
        assert "wagtail_calltracking.E046" in check_ids(FALLBACK_FORWARD_TO="reception")
        assert "wagtail_calltracking.E048" in check_ids(TWILIO_AUTH_TOKEN=42)
        a_file = tmp_path / "file"
        a_file.write_text("")
        assert "wagtail_calltracking.W047" in check_ids(WEBHOOK_SPOOL_DIR=str(a_file / "spool"))
        assert "wagtail_calltracking.W047" not in check_ids(WEBHOOK_SPOOL_DIR=str(tmp_path / "new" / "spool"))

    def test_demo_provider_in_production_warns(self):
        with override_settings(DEBUG=False):
            assert "wagtail_calltracking.W044" in check_ids(DEMO_PROVIDER_ENABLED=True)
            assert "wagtail_calltracking.W044" not in check_ids(DEMO_PROVIDER_ENABLED=False)
        with override_settings(DEBUG=True):
            assert "wagtail_calltracking.W044" not in check_ids(DEMO_PROVIDER_ENABLED=True)


@pytest.mark.django_db
def test_webhook_log_keeps_headers_but_not_credentials(client, paid_visit, call_settings):
    from .webhook_fixtures import vonage_get

    _, number, _ = paid_visit
    vonage_get(client, webhook_path("vonage", "voice"), {"to": number.number, "uuid": "u", "conversation_uuid": "c"})
    event = WebhookEvent.objects.get()
    assert event.headers["Authorization"] == "Bearer …"
    twilio_post(client, VOICE, incoming(number.number))
    logged = WebhookEvent.objects.get(provider="twilio")
    assert logged.headers["X-Twilio-Signature"]
    assert logged.url == "http://testserver" + VOICE


@pytest.mark.django_db
def test_demo_status_for_an_unknown_call_creates_it(client, site):
    response = demo_post(client, "status", {"event": "completed", "call_id": "ghost", "result": "busy"})
    assert response.status_code == 200
    call = Call.objects.get()
    assert call.result == CallResult.BUSY and call.confidence == Confidence.UNATTRIBUTED and call.attributed_at is None


@pytest.mark.django_db
def test_timestamps_from_the_provider_set_the_start(client, paid_visit, call_settings):
    session, number, lease = paid_visit
    earlier = timezone.now() - timedelta(days=3)
    demo_post(client, "voice", {"call_id": "old", "from": CALLER, "to": number.number, "timestamp": earlier.isoformat()})
    call = Call.objects.get()
    assert abs((call.started_at - earlier).total_seconds()) < 1
    # Three days ago the lease did not exist yet: attributed at the call's start, not now.
    assert call.confidence == Confidence.UNATTRIBUTED and call.session is None


def test_urls_follow_the_contract():
    from django.urls import reverse

    for provider in ("twilio", "vonage", "plivo", "telnyx", "generic", "demo"):
        assert reverse(f"wagtail_calltracking:webhook-{provider}-voice") == f"/calltracking/webhooks/{provider}/voice/"
        assert reverse(f"wagtail_calltracking:webhook-{provider}-status") == f"/calltracking/webhooks/{provider}/status/"


def test_json_dumps_of_spool_records_roundtrip(tmp_path):
    from wagtail_calltracking.webhooks import spool

    log = tmp_path / "app.log"
    record = {"provider": "demo", "endpoint": "voice", "received_at": timezone.now().isoformat(), "body_b64": ""}
    log.write_text("noise\n2025-01-01 ERROR " + spool.MARKER + json.dumps(record) + "\nmore noise\n")
    assert [r for _, r in spool.read_records([log])] == [record]
    assert urlencode({"a": "b c"}) == "a=b+c"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_call_create_one_call(site, ads_source, call_settings):
    """Real concurrency (threads, each with its own PostgreSQL connection): the voice webhook
    retried while the first attempt is still running, plus the status callbacks, all at once."""
    import threading

    from django.db import connection
    from django.test import Client

    from .factories import make_session
    from .webhook_fixtures import lease_number

    number = ads_source.pool.numbers.first()
    session = make_session(site=site, channel="paid_search", matched_source=ads_source)
    lease_number(number, session, timezone.now() - timedelta(minutes=2))
    deliveries = [(VOICE, incoming(number.number))] * 4 + [
        (DIAL, dial_result("completed", 42)),
        (STATUS, {"CallSid": SID, "CallStatus": "completed", "CallDuration": "50", "From": CALLER, "To": number.number}),
    ] * 2
    barrier = threading.Barrier(len(deliveries))
    statuses = []

    def deliver(path, params):
        try:
            barrier.wait()
            statuses.append(twilio_post(Client(), path, params).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=delivery) for delivery in deliveries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == sorted([200] * 4 + [200, 204] * 2)
    call = Call.objects.get()
    assert call.result == CallResult.ANSWERED and call.talk_seconds == 42 and call.total_seconds == 50
    assert call.session == session and call.touches.count() == 3
    assert call.events.filter(dedupe_key=f"voice:{SID}").count() == 1
    assert call.events.count() == 3


@pytest.mark.django_db
def test_late_answer_corrects_an_inferred_miss_and_its_durations(client, paid_visit, call_settings):
    _, number, _ = paid_visit
    start = timezone.now() - timedelta(minutes=5)
    demo_post(client, "voice", {"call_id": "late-answer", "from": CALLER, "to": number.number,
                                "timestamp": start.isoformat()})
    demo_post(client, "status", {"event": "completed", "call_id": "late-answer",
                                 "timestamp": (start + timedelta(seconds=60)).isoformat()})
    call = Call.objects.get()
    assert (call.result, call.ring_seconds, call.talk_seconds) == (CallResult.MISSED, 60, 0)
    demo_post(client, "status", {"event": "answered", "call_id": "late-answer",
                                 "timestamp": (start + timedelta(seconds=10)).isoformat()})
    call.refresh_from_db()
    assert (call.result, call.ring_seconds, call.talk_seconds) == (CallResult.ANSWERED, 10, 50)


@pytest.mark.django_db(transaction=True)
def test_signals_wait_until_the_response_is_handed_over(site, ads_source, call_settings, rf):
    """The provider's answer does not wait for integration receivers: signals committed
    during the request go out when the server closes the response."""
    from wagtail_calltracking.signals import call_started
    from wagtail_calltracking.webhooks.demo import DemoVoiceView

    number = ads_source.pool.numbers.first()
    received = []
    call_started.connect(lambda sender, call, **kw: received.append(call.pk), weak=False, dispatch_uid="deferred")
    try:
        request = rf.post(webhook_path("demo", "voice"), json.dumps({"call_id": "d1", "to": number.number}),
                          content_type="application/json")
        response = DemoVoiceView.as_view()(request)
        assert response.status_code == 200 and Call.objects.filter(provider_call_id="d1").exists()
        assert received == []  # committed, answered, not yet signalled
        response.close()
        assert received == [Call.objects.get(provider_call_id="d1").pk]
        # Outside a webhook request (replay, scripts), signals go out at commit.
        from wagtail_calltracking.webhooks.base import CallEventType, CallWebhookEvent
        from wagtail_calltracking.webhooks.processing import process_events

        process_events("demo", [CallWebhookEvent(event_type=CallEventType.INCOMING, call_id="d2", to_number=number.number)])
        assert len(received) == 2
    finally:
        call_started.disconnect(dispatch_uid="deferred")
