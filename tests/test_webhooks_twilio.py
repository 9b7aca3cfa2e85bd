"""Twilio: signature (twilio's RequestValidator as the oracle), TwiML forwarding, status
callbacks of both legs, the <Dial action> outcome, recordings, whisper, ordering."""

import itertools
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest
from django.utils import timezone
from twilio.request_validator import RequestValidator

from wagtail_calltracking.models import Call, CallEvent, CallResult, CallStatus, Confidence, WebhookEvent
from wagtail_calltracking.signals import call_completed, call_started

from .webhook_fixtures import (
    CALLER,
    FALLBACK_FORWARD,
    SALES_LINE,
    TWILIO_TOKEN,
    settings_with,
    twilio_post,
    webhook_path,
)

pytestmark = pytest.mark.usefixtures("forget_destinations")

VOICE = webhook_path("twilio", "voice")
STATUS = webhook_path("twilio", "status")
DIAL = webhook_path("twilio", "dial")
RECORDING = webhook_path("twilio", "recording")
WHISPER = webhook_path("twilio", "whisper")
SID = "CA" + "1" * 32
CHILD = "CA" + "2" * 32


def incoming(to, sid=SID, **extra):
    return {
        "CallSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": CALLER,
        "To": to,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
        "FromCity": "CHICAGO",
        "FromState": "IL",
        "FromCountry": "US",
        **extra,
    }


def child_status(status, sequence, duration=None, timestamp=None, to=SALES_LINE):
    params = {
        "CallSid": CHILD,
        "ParentCallSid": SID,
        "CallStatus": status,
        "From": CALLER,
        "To": to,
        "Direction": "outbound-dial",
        "SequenceNumber": str(sequence),
        "CallbackSource": "call-progress-events",
    }
    if duration is not None:
        params["CallDuration"] = str(duration)
    if timestamp is not None:
        params["Timestamp"] = timestamp.strftime("%a, %d %b %Y %H:%M:%S +0000")
    return params


def dial_result(status, duration=None):
    params = {"CallSid": SID, "From": CALLER, "To": "+1", "DialCallStatus": status, "DialCallSid": CHILD}
    if duration is not None:
        params["DialCallDuration"] = str(duration)
        params["DialBridged"] = "true"
    return params


def parse_twiml(response):
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/xml")
    return ElementTree.fromstring(response.content)


# --- signature -------------------------------------------------------------------------------


@pytest.mark.django_db
class TestSignature:
    def test_valid_signature_is_accepted(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        response = twilio_post(client, VOICE, incoming(number.number))
        assert response.status_code == 200
        assert Call.objects.count() == 1

    @pytest.mark.parametrize(
        "headers",
        [
            {},  # missing
            {"HTTP_X_TWILIO_SIGNATURE": "bm90IGEgc2lnbmF0dXJl"},  # forged
            {"HTTP_X_TWILIO_SIGNATURE": ""},
        ],
    )
    def test_missing_or_forged_signature_is_refused_and_logged(self, client, paid_visit, headers):
        _, number, _ = paid_visit
        response = client.post(
            VOICE, urlencode(incoming(number.number)), content_type="application/x-www-form-urlencoded", **headers
        )
        assert response.status_code == 403
        assert not Call.objects.exists()
        logged = WebhookEvent.objects.get()
        assert logged.signature_valid is False and logged.status == "rejected"
        assert logged.provider == "twilio" and logged.endpoint == "voice"

    def test_wrong_token_is_refused(self, client, paid_visit):
        _, number, _ = paid_visit
        response = twilio_post(client, VOICE, incoming(number.number), token="another-account")
        assert response.status_code == 403
        assert not Call.objects.exists()

    def test_tampered_parameter_is_refused(self, client, paid_visit):
        _, number, _ = paid_visit
        params = incoming(number.number)
        signature = RequestValidator(TWILIO_TOKEN).compute_signature("http://testserver" + VOICE, params)
        params["From"] = "+19995550000"
        response = client.post(
            VOICE, urlencode(params), content_type="application/x-www-form-urlencoded", HTTP_X_TWILIO_SIGNATURE=signature
        )
        assert response.status_code == 403

    def test_rotation_accepts_every_listed_token(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        with settings_with(TWILIO_AUTH_TOKEN=["new-token", TWILIO_TOKEN]):
            assert twilio_post(client, VOICE, incoming(number.number, sid="CA" + "3" * 32)).status_code == 200
            assert twilio_post(client, VOICE, incoming(number.number, sid="CA" + "4" * 32), token="new-token").status_code == 200
            assert twilio_post(client, VOICE, incoming(number.number, sid="CA" + "5" * 32), token="old").status_code == 403

    def test_public_base_url_behind_a_tls_proxy(self, client, paid_visit, call_settings):
        """Django sees http://testserver; Twilio signed https://calls.example.com/…"""
        _, number, _ = paid_visit
        with settings_with(PUBLIC_BASE_URL="https://calls.example.com"):
            ok = twilio_post(client, VOICE, incoming(number.number), url="https://calls.example.com" + VOICE)
            assert ok.status_code == 200
            # Signed for the internal URL: refused, since the provider never sees that one.
            refused = twilio_post(client, VOICE, incoming(number.number, sid="CA" + "6" * 32))
            assert refused.status_code == 403

    @pytest.mark.parametrize("signed", ["https://calls.example.com:443", "https://calls.example.com"])
    def test_port_variants(self, client, paid_visit, call_settings, signed):
        _, number, _ = paid_visit
        with settings_with(PUBLIC_BASE_URL="https://calls.example.com"):
            assert twilio_post(client, VOICE, incoming(number.number), url=signed + VOICE).status_code == 200
        with settings_with(PUBLIC_BASE_URL="https://calls.example.com:443"):
            assert twilio_post(client, VOICE, incoming(number.number, sid="CA" + "7" * 32), url=signed + VOICE).status_code == 200

    def test_query_string_with_plus_encoded_spaces_is_signed_raw(self, client, paid_visit, call_settings):
        """Twilio signs the URL exactly as requested: ``+`` stays ``+``, order is kept."""
        _, number, _ = paid_visit
        query = "text=Call+from+Google+Ads&z=1&a=%C3%A9"
        response = twilio_post(client, WHISPER, {"CallSid": CHILD, "CallStatus": "in-progress"}, query=query)
        assert response.status_code == 200
        say = parse_twiml(response).find("Say")
        assert say.text == "Call from Google Ads"

    def test_json_body_signed_with_body_sha256(self, client, paid_visit):
        import hashlib

        body = b'{"CallSid": "CA1", "RecordingStatus": "completed"}'
        digest = hashlib.sha256(body).hexdigest()
        url = f"http://testserver{RECORDING}?bodySHA256={digest}"
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, {})
        assert RequestValidator(TWILIO_TOKEN).validate(url, body.decode(), signature)
        response = client.post(
            f"{RECORDING}?bodySHA256={digest}", body, content_type="application/json", HTTP_X_TWILIO_SIGNATURE=signature
        )
        # Authentic, but JSON is not what this endpoint reads: a clear 400, not a 403 or 500.
        assert response.status_code == 400
        tampered = client.post(
            f"{RECORDING}?bodySHA256={digest}", body + b" ", content_type="application/json", HTTP_X_TWILIO_SIGNATURE=signature
        )
        assert tampered.status_code == 403

    def test_hmac_sha256_signature_settings(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        params = incoming(number.number)
        validator = RequestValidator(TWILIO_TOKEN)
        signature = validator.compute_signature("http://testserver" + VOICE, params, algorithm="HMAC_SHA256")
        response = client.post(
            VOICE,
            urlencode(params),
            content_type="application/x-www-form-urlencoded",
            HTTP_X_TWILIO_SIGNATURE=signature,
            HTTP_X_TWILIO_WEBHOOKS_SIGNATURE_SETTINGS="key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
        )
        assert response.status_code == 200

    def test_verification_is_not_switched_off_by_debug(self, client, paid_visit, settings):
        settings.DEBUG = True
        _, number, _ = paid_visit
        response = client.post(VOICE, urlencode(incoming(number.number)), content_type="application/x-www-form-urlencoded")
        assert response.status_code == 403

    def test_not_configured_provider_is_not_mounted(self, client, paid_visit):
        _, number, _ = paid_visit
        with settings_with(TWILIO_AUTH_TOKEN=None):
            assert twilio_post(client, VOICE, incoming(number.number)).status_code == 404

    def test_listed_provider_without_token_refuses(self, client, paid_visit):
        _, number, _ = paid_visit
        with settings_with(TWILIO_AUTH_TOKEN=None, PROVIDERS=["twilio"]):
            assert twilio_post(client, VOICE, incoming(number.number)).status_code == 403
        assert not Call.objects.exists()


# --- forwarding ------------------------------------------------------------------------------


@pytest.mark.django_db
class TestVoice:
    def test_dial_markup(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        root = parse_twiml(twilio_post(client, VOICE, incoming(number.number)))
        dial = root.find("Dial")
        assert dial.get("action") == "http://testserver" + DIAL
        assert dial.get("timeout") == "25"
        assert dial.get("answerOnBridge") == "true"
        assert dial.get("callerId") is None  # the caller's number passes through
        assert dial.get("record") is None
        target = dial.find("Number")
        assert target.text == FALLBACK_FORWARD
        assert target.get("statusCallback") == "http://testserver" + STATUS
        assert "answered" in target.get("statusCallbackEvent")
        assert target.get("url") is None  # no whisper
        assert root.find("Say") is None

    def test_recording_whisper_and_caller_id_options(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        call_settings.record_calls = True
        call_settings.whisper = True
        call_settings.pass_caller_id = False
        call_settings.ring_timeout = 40
        call_settings.save()
        root = parse_twiml(twilio_post(client, VOICE, incoming(number.number)))
        assert root.find("Say").text == "This call may be recorded for quality purposes."
        dial = root.find("Dial")
        assert dial.get("timeout") == "40"
        assert dial.get("callerId") == number.number
        assert dial.get("record") == "record-from-answer-dual"
        assert dial.get("recordingStatusCallback") == "http://testserver" + RECORDING
        whisper_url = dial.find("Number").get("url")
        assert whisper_url == "http://testserver" + WHISPER + "?text=Call+from+Google+Ads."
        # Twilio then fetches the whisper URL (signed, with the + encoded spaces).
        response = twilio_post(client, WHISPER, {"CallSid": CHILD}, query="text=Call+from+Google+Ads.")
        assert parse_twiml(response).find("Say").text == "Call from Google Ads."

    @pytest.mark.parametrize("level", ["number", "source", "pool", "site"])
    def test_destination_precedence(self, client, paid_visit, call_settings, level):
        session, number, _ = paid_visit
        destinations = {
            "number": "+12125550161",
            "source": "+12125550162",
            "pool": "+12125550163",
            "site": FALLBACK_FORWARD,
        }
        order = ["number", "source", "pool", "site"]
        for name in order[: order.index(level)]:
            destinations[name] = ""
        number.forward_to = destinations["number"]
        number.save()
        source = session.matched_source
        source.forward_to = destinations["source"]
        source.save()
        number.pool.forward_to = destinations["pool"]
        number.pool.save()
        root = parse_twiml(twilio_post(client, VOICE, incoming(number.number)))
        assert root.find("Dial/Number").text == destinations[level]

    def test_static_number_forwards_to_its_source_line(self, client, newspaper_source, call_settings):
        root = parse_twiml(twilio_post(client, VOICE, incoming(newspaper_source.static_number.number)))
        assert root.find("Dial/Number").text == SALES_LINE
        call = Call.objects.get()
        assert call.source == newspaper_source and call.confidence == Confidence.SOURCE_ONLY

    def test_sip_destination(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        number.forward_to = ""
        number.save()
        with settings_with(FALLBACK_FORWARD_TO="sip:frontdesk@pbx.example.com"):
            call_settings.fallback_forward_to = ""
            call_settings.save()
            root = parse_twiml(twilio_post(client, VOICE, incoming(number.number)))
        assert root.find("Dial/Sip").text == "sip:frontdesk@pbx.example.com"

    def test_call_record_and_attribution(self, client, paid_visit, call_settings, django_capture_on_commit_callbacks):
        session, number, lease = paid_visit
        started = []
        call_started.connect(lambda sender, call, **kw: started.append(call.pk), weak=False, dispatch_uid="t1")
        try:
            with django_capture_on_commit_callbacks(execute=True):
                twilio_post(client, VOICE, incoming(number.number, CallerName="JOHN DOE"))
        finally:
            call_started.disconnect(dispatch_uid="t1")
        call = Call.objects.get()
        assert started == [call.pk]
        assert (call.provider, call.provider_call_id) == ("twilio", SID)
        assert call.from_number == CALLER and call.to_number == number.number
        assert call.tracking_number == number
        assert (call.caller_city, call.caller_region, call.caller_country) == ("CHICAGO", "IL", "US")
        assert call.caller_name == "JOHN DOE"
        assert call.status == CallStatus.RINGING and call.result == CallResult.PENDING
        assert call.confidence == Confidence.EXACT
        assert call.session == session and call.lease == lease and call.visitor_id == session.visitor_id
        assert call.gclid == "Cj0KCQ-test-gclid"
        assert call.touches.count() == 3
        event = WebhookEvent.objects.get()
        assert event.status == "processed" and event.signature_valid and event.call == call
        assert bytes(event.body).startswith(b"CallSid=")

    def test_duplicate_voice_webhook_answers_again_without_a_second_call(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        first = twilio_post(client, VOICE, incoming(number.number))
        second = twilio_post(client, VOICE, incoming(number.number))
        assert first.content == second.content
        assert Call.objects.count() == 1
        assert CallEvent.objects.count() == 1
        assert WebhookEvent.objects.count() == 2

    def test_withheld_caller_is_kept_as_anonymous(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        root = parse_twiml(twilio_post(client, VOICE, incoming(number.number, From="anonymous")))
        assert root.find("Dial/Number").text == FALLBACK_FORWARD
        call = Call.objects.get()
        assert call.from_number == "anonymous" and call.is_first_time is False

    def test_unknown_number_is_still_forwarded(self, client, paid_visit, call_settings):
        root = parse_twiml(twilio_post(client, VOICE, incoming("+19175550100")))
        assert root.find("Dial/Number").text == FALLBACK_FORWARD
        call = Call.objects.get()
        assert call.tracking_number is None and call.confidence == Confidence.UNATTRIBUTED
        assert call.touches.count() == 3

    def test_missing_to_still_forwards_the_caller(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        # Learn the fallback first (as the site does on its first call).
        twilio_post(client, VOICE, incoming(number.number))
        params = incoming(number.number, sid="CA" + "8" * 32)
        del params["To"]
        root = parse_twiml(twilio_post(client, VOICE, params))
        assert root.find("Dial/Number").text == FALLBACK_FORWARD
        assert WebhookEvent.objects.filter(status="rejected").count() == 1
        assert Call.objects.count() == 1


# --- status, dial results, recordings ---------------------------------------------------------


def answered_call_events(number, started):
    """Twilio's deliveries for an answered call, in the order Twilio sends them."""
    from datetime import timedelta

    return [
        ("voice", incoming(number)),
        ("status", child_status("initiated", 0)),
        ("status", child_status("ringing", 1)),
        ("status", child_status("in-progress", 2, timestamp=started + timedelta(seconds=8))),
        ("status", child_status("completed", 3, duration=95, timestamp=started + timedelta(seconds=103))),
        ("dial", dial_result("completed", duration=95)),
        ("status", {"CallSid": SID, "CallStatus": "completed", "CallDuration": "104", "From": CALLER, "To": number,
                    "SequenceNumber": "0"}),
    ]


@pytest.mark.django_db
class TestStatus:
    def send(self, client, deliveries):
        paths = {"voice": VOICE, "status": STATUS, "dial": DIAL, "recording": RECORDING}
        for endpoint, params in deliveries:
            response = twilio_post(client, paths[endpoint], params)
            assert response.status_code in (200, 204), (endpoint, response.content)

    def test_answered_call(self, client, paid_visit, call_settings, managers, django_capture_on_commit_callbacks):
        _, number, _ = paid_visit
        completed = []
        call_completed.connect(lambda sender, call, **kw: completed.append(call.result), weak=False, dispatch_uid="t2")
        try:
            with django_capture_on_commit_callbacks(execute=True):
                self.send(client, answered_call_events(number.number, timezone.now()))
        finally:
            call_completed.disconnect(dispatch_uid="t2")
        call = Call.objects.get()
        assert completed == [CallResult.ANSWERED]
        assert call.status == CallStatus.COMPLETED and call.result == CallResult.ANSWERED
        assert call.talk_seconds == 95 and call.total_seconds == 104
        assert call.forwarded_to == SALES_LINE
        assert call.manager == managers[0]
        assert call.answered_at is not None and call.ended_at is not None
        assert call.ring_seconds is not None and call.ring_seconds <= 10

    def test_dial_action_answers_twiml(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        twilio_post(client, VOICE, incoming(number.number))
        root = parse_twiml(twilio_post(client, DIAL, dial_result("no-answer")))
        assert root.find("Hangup") is not None

    @pytest.mark.parametrize(
        "dial_status,expected",
        [("busy", CallResult.BUSY), ("failed", CallResult.FAILED), ("no-answer", CallResult.ABANDONED),
         ("canceled", CallResult.ABANDONED), ("completed", CallResult.ANSWERED)],
    )
    def test_dial_outcomes(self, client, paid_visit, call_settings, dial_status, expected):
        _, number, _ = paid_visit
        twilio_post(client, VOICE, incoming(number.number))
        twilio_post(client, DIAL, dial_result(dial_status, duration=30 if dial_status == "completed" else None))
        assert Call.objects.get().result == expected

    def test_missed_after_a_long_ring_is_missed_not_abandoned(self, client, paid_visit, call_settings):
        from datetime import timedelta

        _, number, _ = paid_visit
        twilio_post(client, VOICE, incoming(number.number))
        Call.objects.update(started_at=timezone.now() - timedelta(seconds=30))
        twilio_post(client, DIAL, dial_result("no-answer"))
        call = Call.objects.get()
        assert call.result == CallResult.MISSED and call.ring_seconds >= 29 and call.talk_seconds == 0

    def test_late_ringing_never_overwrites_completed(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        events = answered_call_events(number.number, timezone.now())
        self.send(client, events)
        self.send(client, [("status", child_status("ringing", 9))])
        call = Call.objects.get()
        assert call.status == CallStatus.COMPLETED and call.result == CallResult.ANSWERED

    def test_every_delivery_order_ends_in_the_same_state(
        self, client, paid_visit, call_settings, django_capture_on_commit_callbacks
    ):
        """All 120 orders of the five post-voice deliveries of an answered call."""
        _, number, _ = paid_visit
        base = timezone.now()
        events = answered_call_events(number.number, base)
        voice, rest = events[0], events[2:]
        outcomes = set()
        signalled = []
        call_completed.connect(lambda sender, call, **kw: signalled.append(call.pk), weak=False, dispatch_uid="t3")
        try:
            for index, order in enumerate(itertools.permutations(rest)):
                sid = f"CA{index:032d}"
                deliveries = [voice, *order]
                renamed = []
                for endpoint, params in deliveries:
                    params = dict(params)
                    if params.get("ParentCallSid"):
                        params["ParentCallSid"] = sid
                        params["CallSid"] = "CB" + sid[2:]
                    else:
                        params["CallSid"] = sid
                    renamed.append((endpoint, params))
                with django_capture_on_commit_callbacks(execute=True):
                    self.send(client, renamed)
                call = Call.objects.get(provider_call_id=sid)
                outcomes.add((call.status, call.result, call.talk_seconds, call.total_seconds, call.forwarded_to))
        finally:
            call_completed.disconnect(dispatch_uid="t3")
        assert outcomes == {(CallStatus.COMPLETED, CallResult.ANSWERED, 95, 104, SALES_LINE)}
        # call_completed exactly once per call, whatever the order.
        assert len(signalled) == len(set(signalled)) == 120

    def test_duplicate_status_callbacks_are_applied_once(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        twilio_post(client, VOICE, incoming(number.number))
        for _ in range(3):
            twilio_post(client, STATUS, child_status("ringing", 1))
        assert CallEvent.objects.filter(dedupe_key__startswith="status:").count() == 1

    def test_status_before_voice_creates_and_attributes_the_call(self, client, paid_visit, call_settings):
        """The voice webhook failed (or arrives late): the parent's status callback alone
        creates the call, attributed at its start time."""
        session, number, _ = paid_visit
        response = twilio_post(
            client, STATUS, {"CallSid": SID, "CallStatus": "completed", "CallDuration": "40", "From": CALLER, "To": number.number}
        )
        assert response.status_code == 204
        call = Call.objects.get()
        assert call.session == session and call.confidence == Confidence.EXACT
        assert call.result == CallResult.MISSED and call.status == CallStatus.COMPLETED
        assert call.total_seconds == 40

    def test_event_without_a_usable_number_called_does_not_block_attribution(
        self, client, paid_visit, call_settings
    ):
        """A dial result whose To is not a phone number arrives first and creates the call
        unattributed; the voice webhook's real number then attributes it (touches replaced)."""
        session, number, _ = paid_visit
        assert twilio_post(client, DIAL, dial_result("completed", 42)).status_code == 200
        call = Call.objects.get()
        assert call.session is None and call.touches.count() == 3
        assert twilio_post(client, VOICE, incoming(number.number)).status_code == 200
        call = Call.objects.get()
        assert call.to_number == number.number and call.tracking_number == number
        assert call.session == session and call.confidence == Confidence.EXACT
        assert call.touches.count() == 3 and call.touches.get(model="last").session == session
        assert call.result == CallResult.ANSWERED and call.talk_seconds == 42

    def test_unknown_status_is_ignored(self, client, paid_visit):
        response = twilio_post(client, STATUS, {"CallSid": SID, "CallStatus": "teleported"})
        assert response.status_code == 204
        assert not Call.objects.exists()
        assert WebhookEvent.objects.get().status == "ignored"

    def test_missing_call_sid_is_a_400(self, client, paid_visit):
        response = twilio_post(client, STATUS, {"CallStatus": "completed"})
        assert response.status_code == 400
        assert "CallSid" in response.json()["error"]

    def test_recording(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        twilio_post(client, VOICE, incoming(number.number))
        params = {
            "CallSid": SID,
            "RecordingSid": "RE" + "9" * 32,
            "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE9",
            "RecordingStatus": "completed",
            "RecordingDuration": "93",
        }
        assert twilio_post(client, RECORDING, params).status_code == 204
        assert twilio_post(client, RECORDING, params).status_code == 204
        call = Call.objects.get()
        assert call.recording_url.endswith("/RE9") and call.recording_duration == 93
        in_progress = dict(params, RecordingStatus="in-progress", RecordingSid="RE" + "8" * 32)
        assert twilio_post(client, RECORDING, in_progress).status_code == 204
