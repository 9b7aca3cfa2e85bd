"""Generic JSON provider (HMAC-SHA256 of timestamp + body), its copy-paste Asterisk AGI
script run against a live server, and the demo provider."""

import hashlib
import hmac
import importlib.util
import io
import json
import time
from pathlib import Path

import pytest

from wagtail_calltracking.models import Call, CallResult, CallStatus, Confidence, WebhookEvent

from .webhook_fixtures import (
    CALLER,
    FALLBACK_FORWARD,
    GENERIC_SECRET,
    SALES_LINE,
    demo_post,
    generic_post,
    settings_with,
    webhook_path,
)

pytestmark = pytest.mark.usefixtures("forget_destinations")

VOICE = webhook_path("generic", "voice")
STATUS = webhook_path("generic", "status")
AGI_SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "asterisk" / "calltracking_agi.py"


@pytest.mark.django_db
class TestSignature:
    def test_valid(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        response = generic_post(client, VOICE, {"call_id": "1714567890.42", "from": CALLER, "to": number.number})
        assert response.status_code == 200
        assert response.json()["forward_to"] == FALLBACK_FORWARD

    @pytest.mark.parametrize("secret,offset", [("wrong", 0), (GENERIC_SECRET, -310), (GENERIC_SECRET, 310)])
    def test_wrong_secret_and_stale_timestamps(self, client, paid_visit, secret, offset):
        _, number, _ = paid_visit
        response = generic_post(
            client, VOICE, {"call_id": "1", "to": number.number}, secret=secret, timestamp=int(time.time()) + offset
        )
        assert response.status_code == 403
        assert not Call.objects.exists()

    def test_missing_and_malformed_headers(self, client, paid_visit):
        body = json.dumps({"call_id": "1", "to": "+12122001000"})
        for headers in (
            {},
            {"HTTP_X_CALLTRACKING_TIMESTAMP": str(int(time.time()))},
            {"HTTP_X_CALLTRACKING_TIMESTAMP": "yesterday", "HTTP_X_CALLTRACKING_SIGNATURE": "v1=00"},
            {"HTTP_X_CALLTRACKING_TIMESTAMP": str(int(time.time())), "HTTP_X_CALLTRACKING_SIGNATURE": "sha256=00"},
        ):
            assert client.post(VOICE, body, content_type="application/json", **headers).status_code == 403
        assert WebhookEvent.objects.filter(signature_valid=False).count() == 4

    def test_several_signatures_for_rotation_on_the_sender_side(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        body = json.dumps({"call_id": "9", "to": number.number}).encode()
        timestamp = str(int(time.time()))
        good = hmac.new(GENERIC_SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        response = client.post(
            VOICE, body, content_type="application/json", HTTP_X_CALLTRACKING_TIMESTAMP=timestamp,
            HTTP_X_CALLTRACKING_SIGNATURE=f"v1={'0' * 64}, v1={good}",
        )
        assert response.status_code == 200


@pytest.mark.django_db
class TestEvents:
    def test_full_call(self, client, paid_visit, call_settings, managers):
        session, number, _ = paid_visit
        call_settings.whisper = True
        call_settings.save()
        plan = generic_post(client, VOICE, {"call_id": "c1", "from": CALLER, "to": number.number}).json()
        assert plan["whisper"] == "Call from Google Ads."
        assert plan["source"] == "Google Ads" and plan["confidence"] == "exact"
        assert plan["caller_id"] == CALLER and plan["fallback"] is False
        generic_post(client, STATUS, {"event": "answered", "call_id": "c1", "agent": "201", "forwarded_to": SALES_LINE})
        generic_post(client, STATUS, {"event": "completed", "call_id": "c1", "result": "ANSWER", "talk_seconds": 61,
                                      "ring_seconds": 5})
        call = Call.objects.get()
        assert call.result == CallResult.ANSWERED and call.status == CallStatus.COMPLETED
        assert call.talk_seconds == 61 and call.manager == managers[0]
        assert call.session == session

    def test_batch_and_results(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        events = []
        for index, result in enumerate(["BUSY", "NOANSWER", "CONGESTION", "voicemail", "missed"]):
            events.append({"event": "incoming", "call_id": f"b{index}", "from": CALLER, "to": number.number})
            events.append({"event": "completed", "call_id": f"b{index}", "result": result, "ring_seconds": 20})
        assert generic_post(client, STATUS, {"events": events}).status_code == 200
        results = dict(Call.objects.values_list("provider_call_id", "result"))
        assert results == {"b0": "busy", "b1": "missed", "b2": "failed", "b3": "voicemail", "b4": "missed"}

    def test_short_unanswered_call_is_abandoned(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        generic_post(client, VOICE, {"call_id": "s1", "from": CALLER, "to": number.number})
        generic_post(client, STATUS, {"event": "completed", "call_id": "s1", "result": "CANCEL", "ring_seconds": 4})
        assert Call.objects.get().result == CallResult.ABANDONED

    def test_text_format(self, client, paid_visit, call_settings):
        _, number, _ = paid_visit
        response = generic_post(client, VOICE, {"call_id": "t1", "to": number.number}, query="format=text")
        assert response["Content-Type"].startswith("text/plain")
        assert response.content.decode() == FALLBACK_FORWARD

    @pytest.mark.parametrize(
        "document,message",
        [
            ({"call_id": "x"}, "event"),
            ({"event": "incoming", "call_id": "x"}, "(to)"),
            ({"event": "ringing", "to": "+12122001000"}, "call_id"),
            ({"event": "ringing", "call_id": "x" * 200}, "call_id"),
            ({"event": "exploded", "call_id": "x"}, "event"),
            ({"event": "completed", "call_id": "x", "result": "maybe"}, "result"),
            ([], "between"),
            ([1, 2], "object"),
        ],
    )
    def test_bad_status_input_is_a_clear_400(self, client, paid_visit, document, message):
        response = generic_post(client, STATUS, document)
        assert response.status_code == 400
        assert message in response.json()["error"]

    def test_wrong_content_type(self, client, paid_visit):
        body = b"call_id=1&to=%2B12122001000"
        timestamp = str(int(time.time()))
        signature = hmac.new(GENERIC_SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        response = client.post(
            STATUS, body, content_type="application/x-www-form-urlencoded",
            HTTP_X_CALLTRACKING_TIMESTAMP=timestamp, HTTP_X_CALLTRACKING_SIGNATURE=f"v1={signature}",
        )
        assert response.status_code == 400


def load_agi_module():
    spec = importlib.util.spec_from_file_location("calltracking_agi", AGI_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_agi(module, action, environment, responses):
    stdin = io.StringIO("".join(f"{k}: {v}\n" for k, v in environment.items()) + "\n" + "".join(r + "\n" for r in responses))
    stdout = io.StringIO()
    assert module.main(["calltracking_agi.py", action], stdin, stdout) == 0
    return stdout.getvalue().splitlines()


@pytest.mark.django_db(transaction=True)
class TestAsteriskAgiScript:
    """The copy-paste AGI script from docs/providers.md, speaking AGI on stdin/stdout and
    HTTP to a live server."""

    def test_incoming_then_completed(self, live_server, site, ads_source, call_settings, managers):
        from datetime import timedelta

        from django.utils import timezone

        from .factories import make_session
        from .webhook_fixtures import lease_number

        number = ads_source.pool.numbers.first()
        session = make_session(site=site, channel="paid_search", source="google", medium="cpc", matched_source=ads_source)
        lease_number(number, session, timezone.now() - timedelta(minutes=2))
        module = load_agi_module()
        module.CALLTRACKING_URL = live_server.url + "/calltracking/webhooks/generic/"
        module.CALLTRACKING_SECRET = GENERIC_SECRET
        environment = {"agi_uniqueid": "1714567890.42", "agi_callerid": CALLER, "agi_dnid": number.number.lstrip("+1"),
                       "agi_extension": number.number, "agi_calleridname": "JOHN DOE"}
        commands = run_agi(module, "incoming", environment, ["200 result=1"] * 5)
        assert commands[0] == f'SET VARIABLE CT_FORWARD_TO "{FALLBACK_FORWARD}"'
        assert commands[1] == 'SET VARIABLE CT_TIMEOUT "25"'
        commands = run_agi(module, "completed", environment, [
            "200 result=1 (ANSWER)", "200 result=1 (42)", "200 result=1 (49)", "200 result=1 (201)",
        ])
        assert commands == ["GET VARIABLE DIALSTATUS", "GET VARIABLE ANSWEREDTIME", "GET VARIABLE DIALEDTIME",
                            "GET VARIABLE DIALEDPEERNUMBER"]
        call = Call.objects.get()
        assert call.provider == "generic" and call.provider_call_id == "1714567890.42"
        assert call.to_number == number.number and call.caller_name == "JOHN DOE"
        assert call.session == session and call.confidence == Confidence.EXACT
        assert call.result == CallResult.ANSWERED and call.talk_seconds == 42 and call.ring_seconds == 7
        assert call.manager == managers[0]

    def test_site_unreachable_falls_back_to_the_default_destination(self):
        module = load_agi_module()
        module.CALLTRACKING_URL = "http://127.0.0.1:9/calltracking/webhooks/generic/"
        module.TIMEOUT_SECONDS = 0.5
        commands = run_agi(module, "incoming", {"agi_uniqueid": "1", "agi_callerid": CALLER}, ["200 result=1"] * 5)
        assert commands[0] == f'SET VARIABLE CT_FORWARD_TO "{module.DEFAULT_DESTINATION}"'


@pytest.mark.django_db
class TestDemoProvider:
    def test_simulated_call_shows_its_attribution(self, client, paid_visit, call_settings):
        session, number, _ = paid_visit
        response = demo_post(client, "voice", {"call_id": "demo-1", "from": CALLER, "to": number.number})
        document = response.json()
        assert document["forward_to"] == FALLBACK_FORWARD
        attribution = document["attribution"]
        assert attribution["confidence"] == "exact" and attribution["session"] == session.pk
        assert attribution["keyword"] == "emergency plumber" and attribution["gclid"] == "Cj0KCQ-test-gclid"
        status = demo_post(client, "status", {"event": "completed", "call_id": "demo-1", "result": "answered",
                                               "talk_seconds": 30}).json()
        assert status == {"ok": True, "call": Call.objects.get().pk, "status": "completed", "result": "answered"}

    def test_disabled_demo_provider_is_not_mounted(self, client, paid_visit):
        with settings_with(DEMO_PROVIDER_ENABLED=False):
            assert demo_post(client, "voice", {"call_id": "d", "to": "+12122001000"}).status_code == 404
        with settings_with(DEMO_PROVIDER_ENABLED=False, PROVIDERS=["demo"]):
            assert demo_post(client, "voice", {"call_id": "d", "to": "+12122001000"}).status_code == 404

    def test_without_any_destination(self, client, paid_visit):
        _, number, _ = paid_visit
        document = demo_post(client, "voice", {"call_id": "d2", "to": number.number}).json()
        assert document["action"] == "reject" and "fallback" in document["reason"]
        assert Call.objects.get().confidence == Confidence.EXACT
