"""Vonage: signed JWT (PyJWT as the oracle), NCCO connect, legs grouped by
conversation_uuid, numbers without "+"."""

import json
import time
from datetime import timedelta

import jwt
import pytest
from django.utils import timezone

from wagtail_calltracking.models import Call, CallResult, CallStatus, Confidence, WebhookEvent

from .webhook_fixtures import (
    CALLER,
    FALLBACK_FORWARD,
    SALES_LINE,
    VONAGE_SECRET,
    settings_with,
    vonage_get,
    vonage_post,
    vonage_token,
    webhook_path,
)

pytestmark = pytest.mark.usefixtures("forget_destinations")

VOICE = webhook_path("vonage", "voice")
STATUS = webhook_path("vonage", "status")
RECORDING = webhook_path("vonage", "recording")
WHISPER = webhook_path("vonage", "whisper")
CONVERSATION = "CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
A_LEG = "aaaaaaaa-0000-0000-0000-000000000001"
B_LEG = "bbbbbbbb-0000-0000-0000-000000000002"


def answer(to):
    return {"to": to.lstrip("+"), "from": CALLER.lstrip("+"), "uuid": A_LEG, "conversation_uuid": CONVERSATION}


def event(status, leg=B_LEG, direction="outbound", **extra):
    document = {
        "uuid": leg,
        "conversation_uuid": CONVERSATION,
        "status": status,
        "direction": direction,
        "from": CALLER.lstrip("+"),
        "to": SALES_LINE.lstrip("+") if direction == "outbound" else "12122001000",
        "timestamp": timezone.now().isoformat().replace("+00:00", "Z"),
    }
    document.update(extra)
    return document


@pytest.mark.django_db
class TestSignature:
    def test_get_answer_with_valid_token(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        response = vonage_get(client, VOICE, answer(number.number))
        assert response.status_code == 200
        call = Call.objects.get()
        assert call.to_number == number.number  # "1212…" normalised to E.164
        assert call.from_number == CALLER
        assert call.provider_call_id == CONVERSATION

    def test_post_answer_checks_the_payload_hash(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        assert vonage_post(client, VOICE, answer(number.number)).status_code == 200
        body = json.dumps(answer(number.number)).encode()
        token = vonage_token(b"something else")
        response = client.post(VOICE, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 403

    def test_token_without_payload_hash_for_a_body_is_refused(self, client, paid_visit):
        _, number, _ = paid_visit
        token = vonage_token(b"")
        body = json.dumps(answer(number.number)).encode()
        response = client.post(VOICE, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 403

    @pytest.mark.parametrize(
        "token",
        [
            "",
            "Bearer",
            "Bearer not.a.jwt",
            "Basic dXNlcjpwYXNz",
            "Bearer " + jwt.encode({"iat": int(time.time())}, "wrong-secret", algorithm="HS256"),
            "Bearer " + jwt.encode({"iat": int(time.time())}, VONAGE_SECRET, algorithm="HS512"),
            # alg "none" with no signature must never pass.
            "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpYXQiOjE3MDAwMDAwMDB9.",
        ],
    )
    def test_forged_tokens_are_refused(self, client, paid_visit, token):
        _, number, _ = paid_visit
        from urllib.parse import urlencode

        response = client.get(VOICE + "?" + urlencode(answer(number.number)), HTTP_AUTHORIZATION=token)
        assert response.status_code == 403
        assert not Call.objects.exists()
        assert WebhookEvent.objects.get().signature_valid is False

    def test_stale_iat_is_refused(self, client, paid_visit):
        _, number, _ = paid_visit
        response = vonage_get(client, VOICE, answer(number.number), iat=time.time() - 3600)
        assert response.status_code == 403
        response = vonage_get(client, VOICE, answer(number.number), iat=time.time() + 3600)
        assert response.status_code == 403

    def test_rotation(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        with settings_with(VONAGE_SIGNATURE_SECRET=["next-secret-0123456789abcdef", VONAGE_SECRET]):
            assert vonage_get(client, VOICE, answer(number.number), secret="next-secret-0123456789abcdef").status_code == 200


@pytest.mark.django_db
class TestNcco:
    def test_connect(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        ncco = vonage_get(client, VOICE, answer(number.number)).json()
        assert len(ncco) == 1
        connect = ncco[0]
        assert connect["action"] == "connect"
        assert connect["endpoint"] == [{"type": "phone", "number": FALLBACK_FORWARD.lstrip("+")}]
        assert connect["eventUrl"] == ["http://testserver" + STATUS]
        assert connect["timeout"] == 25
        assert connect["from"] == CALLER.lstrip("+")

    def test_recording_and_whisper(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        call_settings.record_calls = True
        call_settings.whisper = True
        call_settings.pass_caller_id = False
        call_settings.save()
        ncco = vonage_get(client, VOICE, answer(number.number)).json()
        assert [step["action"] for step in ncco] == ["talk", "record", "connect"]
        assert ncco[1]["eventUrl"] == ["http://testserver" + RECORDING]
        connect = ncco[2]
        assert connect["from"] == number.number.lstrip("+")
        on_answer = connect["endpoint"][0]["onAnswer"]["url"]
        assert on_answer == "http://testserver" + WHISPER + "?text=Call+from+Google+Ads."
        whisper = vonage_get(client, WHISPER, {"text": "Call from Google Ads."})
        assert whisper.json() == [{"action": "talk", "text": "Call from Google Ads."}]


@pytest.mark.django_db
class TestEvents:
    def test_answered_call_grouped_by_conversation(self, client, paid_visit, call_settings, managers):
        session, number, _ = paid_visit
        vonage_get(client, VOICE, answer(number.number))
        start = timezone.now()
        deliveries = [
            event("started", leg=A_LEG, direction="inbound"),
            event("answered", leg=A_LEG, direction="inbound"),  # Vonage picked up: not an answer
            event("started"),
            event("ringing"),
            event("answered", timestamp=(start + timedelta(seconds=6)).isoformat()),
            event("completed", duration="120", timestamp=(start + timedelta(seconds=126)).isoformat()),
            event("completed", leg=A_LEG, direction="inbound", duration="128",
                  start_time=start.isoformat(), end_time=(start + timedelta(seconds=128)).isoformat()),
        ]
        for document in deliveries:
            assert vonage_post(client, STATUS, document).status_code == 204
        call = Call.objects.get()
        assert call.result == CallResult.ANSWERED and call.status == CallStatus.COMPLETED
        assert call.talk_seconds == 120 and call.total_seconds == 128
        assert call.forwarded_to == SALES_LINE
        assert call.manager == managers[0]
        assert call.session == session and call.confidence == Confidence.EXACT

    def test_inbound_leg_answered_is_not_an_answer(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        vonage_get(client, VOICE, answer(number.number))
        vonage_post(client, STATUS, event("answered", leg=A_LEG, direction="inbound"))
        vonage_post(client, STATUS, event("completed", leg=A_LEG, direction="inbound", duration="40"))
        call = Call.objects.get()
        assert call.answered_at is None and call.result == CallResult.MISSED

    @pytest.mark.parametrize(
        "status,expected",
        [("busy", CallResult.BUSY), ("timeout", CallResult.ABANDONED), ("rejected", CallResult.FAILED),
         ("failed", CallResult.FAILED), ("machine", CallResult.VOICEMAIL), ("cancelled", CallResult.ABANDONED)],
    )
    def test_forwarded_leg_outcomes(self, client, paid_visit, call_settings, status, expected):
        _, number, _ = paid_visit
        vonage_get(client, VOICE, answer(number.number))
        vonage_post(client, STATUS, event(status))
        assert Call.objects.get().result == expected

    def test_out_of_order_completed_before_answered(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        vonage_get(client, VOICE, answer(number.number))
        vonage_post(client, STATUS, event("completed", leg=A_LEG, direction="inbound", duration="70"))
        assert Call.objects.get().result == CallResult.MISSED  # inferred for now
        vonage_post(client, STATUS, event("completed", duration="60"))
        vonage_post(client, STATUS, event("answered"))
        vonage_post(client, STATUS, event("ringing"))
        call = Call.objects.get()
        assert call.result == CallResult.ANSWERED and call.status == CallStatus.COMPLETED
        assert call.talk_seconds == 60

    def test_recording(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        vonage_get(client, VOICE, answer(number.number))
        document = {
            "start_time": "2020-01-01T12:00:00Z",
            "end_time": "2020-01-01T12:01:30Z",
            "recording_url": "https://api.nexmo.com/v1/files/aaaaaaaa-bbbb",
            "recording_uuid": "rec-1",
            "size": 12222,
            "conversation_uuid": CONVERSATION,
        }
        assert vonage_post(client, RECORDING, document).status_code == 204
        call = Call.objects.get()
        assert call.recording_url.endswith("aaaaaaaa-bbbb") and call.recording_duration == 90

    def test_non_json_event_is_a_400(self, client, paid_visit):
        token = vonage_token(b"status=completed")
        response = client.post(
            STATUS, "status=completed", content_type="application/x-www-form-urlencoded",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert response.status_code == 400

    def test_unknown_status_is_ignored(self, client, paid_visit):
        assert vonage_post(client, STATUS, event("transfer")).status_code == 204
        assert not Call.objects.exists()
