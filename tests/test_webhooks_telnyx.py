"""Telnyx: ed25519 signatures (PyNaCl signs as Telnyx does), TeXML forwarding, Twilio-style
status callbacks and Call Control JSON events with durations derived from event times."""

import time
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from django.utils import timezone

from wagtail_calltracking.models import Call, CallResult, CallStatus, Confidence

from .webhook_fixtures import (
    CALLER,
    FALLBACK_FORWARD,
    SALES_LINE,
    TelnyxKeys,
    settings_with,
    telnyx_post,
    webhook_path,
)

pytestmark = pytest.mark.usefixtures("forget_destinations")

VOICE = webhook_path("telnyx", "voice")
STATUS = webhook_path("telnyx", "status")
DIAL = webhook_path("telnyx", "dial")
SID = "v3:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
SESSION = "428c31b6-7af4-4bcb-b7f5-5013ef9657c1"


def incoming(to):
    return {"CallSid": SID, "AccountSid": "acc-1", "From": CALLER, "To": to, "CallStatus": "ringing",
            "Direction": "inbound"}


def control_event(event_type, direction, leg, occurred_at, **payload):
    return {
        "data": {
            "record_type": "event",
            "event_type": event_type,
            "id": f"{event_type}-{leg}",
            "occurred_at": occurred_at.isoformat().replace("+00:00", "Z"),
            "payload": {
                "call_control_id": f"v3:{leg}",
                "call_leg_id": leg,
                "call_session_id": SESSION,
                "connection_id": "1234",
                "direction": direction,
                "from": CALLER,
                "to": payload.pop("to", SALES_LINE if direction == "outgoing" else "+12122001000"),
                "state": "hangup" if event_type == "call.hangup" else "active",
                **payload,
            },
        },
        "meta": {"attempt": 1, "delivered_to": "https://example.com"},
    }


@pytest.mark.django_db
class TestSignature:
    def test_valid(self, client, telnyx_keys, paid_visit, call_settings):
        _, number, _ = paid_visit
        response = telnyx_post(client, telnyx_keys, VOICE, incoming(number.number))
        assert response.status_code == 200
        assert Call.objects.get().provider == "telnyx"

    def test_other_key_stale_and_future_timestamps(self, client, telnyx_keys, paid_visit):
        _, number, _ = paid_visit
        assert telnyx_post(client, TelnyxKeys(), VOICE, incoming(number.number)).status_code == 403
        assert telnyx_post(client, telnyx_keys, VOICE, incoming(number.number), timestamp=int(time.time()) - 600).status_code == 403
        assert telnyx_post(client, telnyx_keys, VOICE, incoming(number.number), timestamp=int(time.time()) + 600).status_code == 403
        assert not Call.objects.exists()

    def test_signature_over_another_timestamp_is_refused(self, client, telnyx_keys, paid_visit):
        from urllib.parse import urlencode

        _, number, _ = paid_visit
        body = urlencode(incoming(number.number)).encode()
        headers = telnyx_keys.headers(body)
        headers["HTTP_TELNYX_TIMESTAMP"] = str(int(headers["HTTP_TELNYX_TIMESTAMP"]) - 1)
        response = client.post(VOICE, body, content_type="application/x-www-form-urlencoded", **headers)
        assert response.status_code == 403

    def test_rotation_with_two_keys(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        old, new = TelnyxKeys(), TelnyxKeys()
        with settings_with(TELNYX_PUBLIC_KEY=[old.public_key, new.public_key]):
            assert telnyx_post(client, new, VOICE, incoming(number.number)).status_code == 200

    def test_without_key_the_provider_is_not_mounted(self, client, paid_visit):
        _, number, _ = paid_visit
        assert telnyx_post(client, TelnyxKeys(), VOICE, incoming(number.number)).status_code == 404


@pytest.mark.django_db
class TestTexml:
    def test_dial(self, client, telnyx_keys, paid_visit, call_settings):
        _, number, _ = paid_visit
        call_settings.whisper = True
        call_settings.save()
        response = telnyx_post(client, telnyx_keys, VOICE, incoming(number.number))
        root = ElementTree.fromstring(response.content)
        dial = root.find("Dial")
        assert dial.get("action") == "http://testserver" + DIAL
        target = dial.find("Number")
        assert target.text == FALLBACK_FORWARD
        assert target.get("statusCallback") == "http://testserver" + STATUS
        assert target.get("url").startswith("http://testserver" + webhook_path("telnyx", "whisper"))

    def test_status_callbacks_and_dial_action(self, client, telnyx_keys, paid_visit, call_settings):
        session, number, _ = paid_visit
        telnyx_post(client, telnyx_keys, VOICE, incoming(number.number))
        child = {"CallSid": "v3:child", "ParentCallSid": SID, "From": CALLER, "To": SALES_LINE}
        telnyx_post(client, telnyx_keys, STATUS, {**child, "CallStatus": "ringing", "SequenceNumber": "1"})
        telnyx_post(client, telnyx_keys, STATUS, {**child, "CallStatus": "in-progress", "SequenceNumber": "2"})
        telnyx_post(client, telnyx_keys, STATUS, {**child, "CallStatus": "completed", "SequenceNumber": "3",
                                                  "CallDuration": "33"})
        response = telnyx_post(client, telnyx_keys, DIAL, {"CallSid": SID, "DialCallStatus": "completed",
                                                            "DialCallDuration": "33"})
        assert ElementTree.fromstring(response.content).find("Hangup") is not None
        call = Call.objects.get()
        assert call.result == CallResult.ANSWERED and call.talk_seconds == 33
        assert call.session == session and call.confidence == Confidence.EXACT


@pytest.mark.django_db
class TestCallControl:
    def test_durations_derived_from_event_times(self, client, telnyx_keys, paid_visit, call_settings):
        session, number, _ = paid_visit
        start = timezone.now() - timedelta(minutes=1)
        a, b = "leg-a", "leg-b"
        events = [
            control_event("call.initiated", "incoming", a, start, to=number.number),
            control_event("call.answered", "incoming", a, start + timedelta(seconds=1), to=number.number),
            control_event("call.initiated", "outgoing", b, start + timedelta(seconds=1)),
            control_event("call.answered", "outgoing", b, start + timedelta(seconds=9)),
            control_event("call.hangup", "outgoing", b, start + timedelta(seconds=49), hangup_cause="normal_clearing"),
            control_event("call.hangup", "incoming", a, start + timedelta(seconds=50), to=number.number,
                          hangup_cause="normal_clearing", start_time=start.isoformat()),
        ]
        for document in events:
            assert telnyx_post(client, telnyx_keys, STATUS, document=document).status_code == 204
        # Telnyx may deliver a webhook twice: de-duplicated on data.id.
        telnyx_post(client, telnyx_keys, STATUS, document=events[3])
        call = Call.objects.get()
        assert call.provider_call_id == SESSION
        assert call.result == CallResult.ANSWERED and call.status == CallStatus.COMPLETED
        assert call.ring_seconds == 9 and call.talk_seconds == 40
        assert call.forwarded_to == SALES_LINE
        assert call.session == session
        assert call.events.count() == 6

    @pytest.mark.parametrize(
        "cause,expected",
        [("user_busy", CallResult.BUSY), ("call_rejected", CallResult.FAILED), ("no_answer", CallResult.MISSED),
         ("timeout", CallResult.MISSED)],
    )
    def test_hangup_causes(self, client, telnyx_keys, paid_visit, call_settings, cause, expected):
        _, number, _ = paid_visit
        start = timezone.now() - timedelta(minutes=1)
        telnyx_post(client, telnyx_keys, STATUS, document=control_event("call.initiated", "incoming", "a", start, to=number.number))
        telnyx_post(client, telnyx_keys, STATUS,
                    document=control_event("call.hangup", "outgoing", "b", start + timedelta(seconds=20), hangup_cause=cause))
        assert Call.objects.get().result == expected

    def test_bad_documents(self, client, telnyx_keys, paid_visit):
        for document in ({}, {"data": []}, {"data": {"payload": {}}}, {"data": {"event_type": "call.hangup", "payload": {"x": 1}}}):
            response = telnyx_post(client, telnyx_keys, STATUS, document=document)
            assert response.status_code == 400, document
        assert telnyx_post(client, telnyx_keys, STATUS,
                           document=control_event("call.speak.ended", "incoming", "a", timezone.now())).status_code == 204
