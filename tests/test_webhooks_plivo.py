"""Plivo: signature V3 (plivo.utils.signature_v3 as the oracle), Plivo XML <Dial>, the dial
action, the <Dial callbackUrl> events and the hangup URL."""

import uuid
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest

from wagtail_calltracking.models import Call, CallResult, CallStatus, Confidence, WebhookEvent
from wagtail_calltracking.webhooks.plivo import signature_v3

from .webhook_fixtures import (
    CALLER,
    FALLBACK_FORWARD,
    PLIVO_TOKEN,
    SALES_LINE,
    plivo_post,
    settings_with,
    webhook_path,
)

pytestmark = pytest.mark.usefixtures("forget_destinations")

VOICE = webhook_path("plivo", "voice")
STATUS = webhook_path("plivo", "status")
DIAL = webhook_path("plivo", "dial")
RECORDING = webhook_path("plivo", "recording")
WHISPER = webhook_path("plivo", "whisper")
CALL_UUID = "d0e7d6b8-1111-4a2a-8f47-000000000001"
B_LEG = "d0e7d6b8-2222-4a2a-8f47-000000000002"


def answer(to):
    return {
        "CallUUID": CALL_UUID,
        "From": CALLER.lstrip("+"),
        "To": to.lstrip("+"),
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ALegUUID": CALL_UUID,
        "ALegRequestUUID": str(uuid.uuid4()),
    }


def parse_xml(response):
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/xml")
    return ElementTree.fromstring(response.content)


@pytest.mark.django_db
class TestSignature:
    def test_post(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        assert plivo_post(client, VOICE, answer(number.number)).status_code == 200
        call = Call.objects.get()
        assert call.to_number == number.number and call.from_number == CALLER

    def test_post_with_query_string(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        response = plivo_post(client, VOICE, answer(number.number), query="site=main&b=2+3")
        assert response.status_code == 200

    def test_get(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        assert plivo_post(client, VOICE, answer(number.number), method="GET").status_code == 200

    def test_several_signatures_in_the_header(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        params = answer(number.number)
        nonce = "12345678901234567890"
        good = signature_v3(PLIVO_TOKEN, "POST", "http://testserver" + VOICE, {k: [v] for k, v in params.items()}, nonce)
        response = client.post(
            VOICE, urlencode(params), content_type="application/x-www-form-urlencoded",
            HTTP_X_PLIVO_SIGNATURE_V3=f"c29tZXRoaW5nIGVsc2U=,{good}", HTTP_X_PLIVO_SIGNATURE_V3_NONCE=nonce,
        )
        assert response.status_code == 200

    def test_wrong_token_missing_nonce_and_tampering(self, client, paid_visit):
        _, number, _ = paid_visit
        assert plivo_post(client, VOICE, answer(number.number), token="other").status_code == 403
        params = answer(number.number)
        response = client.post(
            VOICE, urlencode(params), content_type="application/x-www-form-urlencoded",
            HTTP_X_PLIVO_SIGNATURE_V3="abc",
        )
        assert response.status_code == 403
        nonce = "n1"
        good = signature_v3(PLIVO_TOKEN, "POST", "http://testserver" + VOICE, {k: [v] for k, v in params.items()}, nonce)
        params["From"] = "19995550000"
        response = client.post(
            VOICE, urlencode(params), content_type="application/x-www-form-urlencoded",
            HTTP_X_PLIVO_SIGNATURE_V3=good, HTTP_X_PLIVO_SIGNATURE_V3_NONCE=nonce,
        )
        assert response.status_code == 403
        assert not Call.objects.exists()
        assert WebhookEvent.objects.filter(signature_valid=False).count() == 3

    def test_public_base_url(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        with settings_with(PUBLIC_BASE_URL="https://calls.example.com"):
            ok = plivo_post(client, VOICE, answer(number.number), url="https://calls.example.com" + VOICE)
            assert ok.status_code == 200


@pytest.mark.django_db
class TestXml:
    def test_dial(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        root = parse_xml(plivo_post(client, VOICE, answer(number.number)))
        dial = root.find("Dial")
        assert dial.get("action") == "http://testserver" + DIAL
        assert dial.get("callbackUrl") == "http://testserver" + STATUS
        assert dial.get("timeout") == "25"
        assert dial.get("callerId") is None
        assert dial.find("Number").text == FALLBACK_FORWARD.lstrip("+")
        assert root.find("Record") is None

    def test_recording_whisper_caller_id(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        call_settings.record_calls = True
        call_settings.whisper = True
        call_settings.pass_caller_id = False
        call_settings.save()
        root = parse_xml(plivo_post(client, VOICE, answer(number.number)))
        assert [child.tag for child in root] == ["Speak", "Record", "Dial"]
        assert root.find("Record").get("action") == "http://testserver" + RECORDING
        assert root.find("Record").get("startOnDialAnswer") == "true"
        dial = root.find("Dial")
        assert dial.get("callerId") == number.number.lstrip("+")
        assert dial.get("confirmSound") == "http://testserver" + WHISPER + "?text=Call+from+Google+Ads."
        whisper = parse_xml(plivo_post(client, WHISPER, {"CallUUID": B_LEG}, query="text=Call+from+Google+Ads."))
        assert whisper.find("Speak").text == "Call from Google Ads."


@pytest.mark.django_db
class TestEvents:
    def test_answered_call(self, client, paid_visit, call_settings, managers):
        session, number, _ = paid_visit
        plivo_post(client, VOICE, answer(number.number))
        dial_events = [
            {"DialAction": "answer", "DialALegUUID": CALL_UUID, "DialBLegUUID": B_LEG, "DialBLegTo": SALES_LINE.lstrip("+")},
            {"DialAction": "hangup", "DialALegUUID": CALL_UUID, "DialBLegUUID": B_LEG, "DialBLegTo": SALES_LINE.lstrip("+"),
             "DialBLegHangupCause": "NORMAL_CLEARING", "DialBLegDuration": "75"},
        ]
        for params in dial_events:
            assert plivo_post(client, STATUS, params).status_code == 204
        root = parse_xml(plivo_post(client, DIAL, {"CallUUID": CALL_UUID, "DialStatus": "completed",
                                                    "DialALegUUID": CALL_UUID, "DialBLegUUID": B_LEG,
                                                    "DialRingStatus": "true", "DialHangupCause": "NORMAL_CLEARING"}))
        assert root.find("Hangup") is not None
        hangup = {"CallUUID": CALL_UUID, "From": CALLER.lstrip("+"), "To": number.number.lstrip("+"),
                  "CallStatus": "completed", "Duration": "84", "BillDuration": "120", "HangupCause": "NORMAL_CLEARING",
                  "Direction": "inbound"}
        assert plivo_post(client, STATUS, hangup).status_code == 204
        call = Call.objects.get()
        assert call.result == CallResult.ANSWERED and call.status == CallStatus.COMPLETED
        assert call.talk_seconds == 75 and call.total_seconds == 84
        assert call.forwarded_to == SALES_LINE and call.manager == managers[0]
        assert call.session == session and call.confidence == Confidence.EXACT

    @pytest.mark.parametrize(
        "status,expected",
        [("busy", CallResult.BUSY), ("failed", CallResult.FAILED), ("timeout", CallResult.ABANDONED),
         ("no-answer", CallResult.ABANDONED)],
    )
    def test_dial_outcomes(self, client, paid_visit, call_settings, status, expected):
        _, number, _ = paid_visit
        plivo_post(client, VOICE, answer(number.number))
        plivo_post(client, DIAL, {"CallUUID": CALL_UUID, "DialStatus": status})
        assert Call.objects.get().result == expected

    def test_caller_hung_up_before_the_forward(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        plivo_post(client, VOICE, answer(number.number))
        plivo_post(client, STATUS, {"CallUUID": CALL_UUID, "CallStatus": "completed", "Duration": "4",
                                    "HangupCause": "ORIGINATOR_CANCEL"})
        call = Call.objects.get()
        assert call.result == CallResult.ABANDONED and call.ring_seconds == 4

    def test_bad_dial_status_still_answers_xml(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        plivo_post(client, VOICE, answer(number.number))
        root = parse_xml(plivo_post(client, DIAL, {"CallUUID": CALL_UUID, "DialStatus": "exploded"}))
        assert root.find("Hangup") is not None

    def test_recording(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        plivo_post(client, VOICE, answer(number.number))
        params = {"CallUUID": CALL_UUID, "RecordUrl": "https://media.plivo.com/v1/Account/MA/Recording/r1.mp3",
                  "RecordingDuration": "70", "RecordingID": "r1"}
        assert plivo_post(client, RECORDING, params).status_code == 200
        call = Call.objects.get()
        assert call.recording_url.endswith("r1.mp3") and call.recording_duration == 70
