"""Hypothesis-generated payloads at every parser: each endpoint either returns normalised
events (which must then process into the database without error, on SQLite and PostgreSQL)
or refuses with a WebhookError (a 4xx). Signed end-to-end requests never answer 500."""

import json
from urllib.parse import urlencode

import pytest
from django.db import transaction
from django.test import RequestFactory
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wagtail_calltracking.webhooks import registry
from wagtail_calltracking.webhooks.base import CallWebhookEvent, WebhookError
from wagtail_calltracking.webhooks.processing import process_events

from .webhook_fixtures import (
    generic_post,
    twilio_post,
    webhook_path,
)

pytestmark = pytest.mark.usefixtures("forget_destinations")

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

FORM_KEYS = [
    "CallSid", "ParentCallSid", "From", "To", "CallStatus", "CallDuration", "SequenceNumber", "Timestamp",
    "DialCallStatus", "DialCallDuration", "DialCallSid", "RecordingUrl", "RecordingSid", "RecordingStatus",
    "RecordingDuration", "FromCity", "FromState", "FromCountry", "CallerName", "CallUUID", "DialAction",
    "DialALegUUID", "DialBLegUUID", "DialBLegTo", "DialBLegDuration", "DialBLegHangupCause", "DialStatus",
    "Duration", "HangupCause", "RecordUrl", "RecordingID", "AgentId",
]
JSON_KEYS = [
    "event", "call_id", "from", "to", "timestamp", "result", "talk_seconds", "duration", "total_seconds",
    "ring_seconds", "agent", "forwarded_to", "recording_url", "recording_duration", "event_id", "uuid",
    "conversation_uuid", "status", "direction", "start_time", "end_time", "recording_uuid", "data", "payload",
    "event_type", "call_session_id", "call_leg_id", "occurred_at", "hangup_cause", "id",
]

texts = st.text(max_size=40) | st.sampled_from(
    ["completed", "in-progress", "ringing", "busy", "no-answer", "answered", "+12122001000", "12122001000",
     "anonymous", "42", "-1", "1e400", "NaN", "Wed, 01 Jan 2025 00:00:00 +0000", "2025-01-01T00:00:00Z",
     "\x00", "x" * 300, "outbound", "inbound", "call.hangup", "normal_clearing", "ANSWER", "hangup"]
)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | texts
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(JSON_KEYS) | st.text(max_size=8), children, max_size=5),
    max_leaves=12,
)
json_documents = st.dictionaries(st.sampled_from(JSON_KEYS) | st.text(max_size=10), json_values, max_size=12)
form_documents = st.dictionaries(st.sampled_from(FORM_KEYS) | st.text(max_size=10), texts, max_size=12)

ENDPOINTS = [
    (name, endpoint)
    for name in registry.BUILTIN_PROVIDERS
    for endpoint in registry.get_provider(name).endpoints
]


def parse_and_process(view, request):
    try:
        events = view.parse_events(request)
    except WebhookError:
        return
    assert isinstance(events, list)
    assert all(isinstance(event, CallWebhookEvent) for event in events)
    if events:
        with transaction.atomic():
            process_events(view.provider, events)
            transaction.set_rollback(True)


def form_request(document, method="POST"):
    factory = RequestFactory()
    if method == "GET":
        return factory.get("/x/?" + urlencode(document))
    return factory.post("/x/", urlencode(document), content_type="application/x-www-form-urlencoded")


def json_request(payload):
    return RequestFactory().post("/x/", json.dumps(payload, allow_nan=True), content_type="application/json")


@pytest.mark.django_db
@pytest.mark.parametrize("provider,endpoint", ENDPOINTS)
@FUZZ
@given(document=form_documents)
def test_form_payloads(provider, endpoint, document, paid_visit):
    view = registry.get_provider(provider).endpoints[endpoint]()
    parse_and_process(view, form_request(document))
    parse_and_process(view, form_request(document, "GET"))


@pytest.mark.django_db
@pytest.mark.parametrize("provider,endpoint", ENDPOINTS)
@FUZZ
@given(payload=json_documents | json_values)
def test_json_payloads(provider, endpoint, payload, paid_visit):
    view = registry.get_provider(provider).endpoints[endpoint]()
    parse_and_process(view, json_request(payload))


@pytest.mark.django_db
@pytest.mark.parametrize("provider,endpoint", ENDPOINTS)
@FUZZ
@given(body=st.binary(max_size=300), content_type=st.sampled_from(
    ["application/json", "application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=zz", ""]
))
@example(body=b'{"event": "incoming", "call_id": "\\ud800", "to": "\\u0000+12122001000"}', content_type="application/json")
@example(body=b'{"data": {"event_type": "call.hangup", "payload": {"call_session_id": "\\udfff"}}}', content_type="application/json")
@example(body=b"CallSid=%00%FF&To=%ED%A0%80&CallStatus=completed", content_type="application/x-www-form-urlencoded")
def test_raw_bodies(provider, endpoint, body, content_type, paid_visit):
    view = registry.get_provider(provider).endpoints[endpoint]()
    request = RequestFactory().generic("POST", "/x/", data=body, content_type=content_type)
    parse_and_process(view, request)


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=json_documents)
def test_signed_generic_requests_never_fail(client, paid_visit, call_settings, document):
    for endpoint in ("voice", "status"):
        response = generic_post(client, webhook_path("generic", endpoint), document)
        assert response.status_code in (200, 204, 400), response.content


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=form_documents)
def test_signed_twilio_requests_never_fail(client, paid_visit, call_settings, document):
    document = {key: value.replace("\x00", "") for key, value in document.items() if "\x00" not in key}
    for endpoint in ("voice", "status", "dial", "recording", "whisper"):
        response = twilio_post(client, webhook_path("twilio", endpoint), document)
        assert response.status_code in (200, 204, 400), (endpoint, response.content)
