"""Hypothesis at the inputs the other fuzz tests do not reach: the template tags' arguments
(editors and template authors pass anything), the cache-safe endpoint's raw bodies, content
types and cookies, and signed end-to-end requests to every endpoint of the Vonage, Plivo,
Telnyx and demo providers (the parsers themselves, and signed Twilio/generic requests, are
fuzzed in test_webhooks_fuzz.py). The answer is never a 5xx and never unescaped markup."""

import json
from urllib.parse import quote

import pytest
from django.template import Context, Template, TemplateSyntaxError
from django.test import Client, RequestFactory
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wagtail_calltracking.tracking.context import TrackingContext
from wagtail_calltracking.webhooks import registry

from .conftest import BROWSER_UA
from .hostile_helpers import ATTRIBUTE, SCRIPT, assert_escaped
from .webhook_fixtures import plivo_post, telnyx_post, vonage_post, webhook_path

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_caches")]

FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

hostile_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from([SCRIPT, ATTRIBUTE, "</script><script>alert(1)</script>", "{{ 7|add:7 }}", "{% now %}",
                     "\x00", "Newspaper", "newspaper", "Website", "national", "international", "e164",
                     "false", "0", "True", " ", "x" * 5000, "javascript:alert(1)", "-1", "99999999999999999999"]),
)
argument_values = st.one_of(hostile_text, st.integers(), st.none(), st.booleans(), st.floats(allow_nan=True),
                            st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.text(max_size=5)))


def tracked_request(path="/", query="", **meta):
    request = RequestFactory(HTTP_USER_AGENT=BROWSER_UA).get(path + ("?" + query if query else ""), **meta)
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    request.calltracking = TrackingContext.for_request(request)
    return request


def render(template: str, request, **variables) -> str:
    return Template("{% load calltracking %}" + template).render(Context({"request": request, **variables}))


def assert_number_markup(html: str) -> None:
    assert_escaped(html)
    assert "<script>alert(1)" not in html
    stripped = html.strip()
    if stripped:
        assert stripped.startswith(("<a ", "<span")), stripped[:80]


@FUZZ
@given(source=argument_values, pool=argument_values, format=argument_values, css=argument_values,
       label=argument_values, link=argument_values, cache_safe=argument_values,
       query=st.sampled_from(["", "ct=newspaper", "utm_source=google&utm_medium=cpc", f"utm_source={quote(SCRIPT)}"]))
@example(source=SCRIPT, pool=None, format=None, css=ATTRIBUTE, label=SCRIPT, link=True, cache_safe=True, query="")
def test_tracking_number_arguments(tracked_site, source, pool, format, css, label, link, cache_safe, query):
    request = tracked_request(query=query)
    html = render(
        "{% tracking_number source=source pool=pool format=format class=css label=label link=link cache_safe=cache_safe %}",
        request, source=source, pool=pool, format=format, css=css, label=label, link=link, cache_safe=cache_safe,
    )
    # The cache-safe variant appends its deferred script tag (our own, never the input).
    assert_number_markup(html.split("<script", 1)[0])
    assert_escaped(html)
    stored = render(
        "{% tracking_number source=source pool=pool format=format as num %}{{ num.e164 }}|{{ num.national }}|"
        "{{ num.tel_href }}|{{ num.is_dynamic }}|{{ num.source }}|{{ num }}",
        request, source=source, pool=pool, format=format,
    )
    assert_escaped(stored)


@FUZZ
@given(format=argument_values, css=argument_values, label=argument_values, link=argument_values)
def test_canonical_number_arguments(tracked_site, format, css, label, link):
    html = render("{% canonical_number format=format class=css label=label link=link %}",
                  tracked_request(), format=format, css=css, label=label, link=link)
    assert_number_markup(html)


@FUZZ
@given(kind=argument_values, name=argument_values, url=argument_values)
def test_schema_org_arguments(tracked_site, kind, name, url):
    html = render("{% tracking_schema_org type=kind name=name url=url %}", tracked_request(),
                  kind=kind, name=name, url=url)
    assert html.startswith('<script type="application/ld+json">') and html.endswith("</script>")
    body = html[len('<script type="application/ld+json">'):-len("</script>")]
    assert "<" not in body and ">" not in body  # nothing can close the script element
    assert json.loads(body)["telephone"]


@pytest.mark.parametrize("template", [
    "{% tracking_number source %}",
    "{% tracking_number nonsense=1 %}",
    "{% tracking_number as %}",
    '{% canonical_number pool="x" %}',
])
def test_malformed_tags_fail_at_template_load_time(template):
    with pytest.raises(TemplateSyntaxError):
        Template("{% load calltracking %}" + template)


# --- the cache-safe endpoint: raw bytes, content types, cookies, headers --------------------------------------

content_types = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "text/plain", "",
    "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "application/json; charset=latin-1",
])
# WSGI headers are latin-1 text (what a server decodes from the bytes on the wire).
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=200)


@FUZZ
@given(body=st.binary(max_size=600) | st.text(max_size=300).map(str.encode), content_type=content_types,
       cookie=header_text, referer=header_text, forwarded=header_text)
@example(body=b'{"search": "?ct=newspaper", "keys": ["", "s:1", "p:99999999999"]}', content_type="application/json",
         cookie="1|1|1|1|||0:forged", referer=SCRIPT, forwarded="1.2.3.4, ::1, garbage")
def test_cache_safe_endpoint_raw_requests(tracked_site, body, content_type, cookie, referer, forwarded):
    client = Client(HTTP_USER_AGENT=BROWSER_UA)
    client.cookies["ct_visitor"] = cookie
    response = client.generic("POST", "/calltracking/number/", body, content_type=content_type,
                              HTTP_REFERER=referer, HTTP_X_FORWARDED_FOR=forwarded)
    assert response.status_code in (200, 400, 413, 415, 429), response.content
    assert "no-store" in response["Cache-Control"]
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "OPTIONS"])
def test_cache_safe_endpoint_other_methods(tracked_site, method):
    response = Client(HTTP_USER_AGENT=BROWSER_UA).generic(method, "/calltracking/number/")
    assert response.status_code == 405


# --- signed end-to-end requests to the remaining providers -------------------------------------------------

VONAGE_KEYS = ["uuid", "conversation_uuid", "from", "to", "status", "direction", "timestamp", "duration",
               "start_time", "end_time", "rate", "price", "network", "recording_url", "recording_uuid",
               "dtmf", "speech", "detail", "reason", "size"]
PLIVO_KEYS = ["CallUUID", "From", "To", "CallStatus", "Direction", "Duration", "BillDuration", "HangupCause",
              "DialAction", "DialALegUUID", "DialBLegUUID", "DialBLegTo", "DialBLegStatus", "DialBLegDuration",
              "DialBLegHangupCause", "RecordUrl", "RecordingID", "RecordingDuration", "Event", "ParentUUID",
              "StartTime", "AnswerTime", "EndTime", "CallerName"]
TELNYX_EVENTS = ["call.initiated", "call.answered", "call.hangup", "call.bridged", "call.recording.saved",
                 "call.machine.detection.ended", "call.dtmf.received", "nonsense"]
TELNYX_KEYS = ["call_control_id", "call_leg_id", "call_session_id", "from", "to", "direction", "state",
               "hangup_cause", "start_time", "end_time", "recording_urls", "public_recording_urls",
               "client_state", "connection_id", "caller_id_name"]
words = st.one_of(st.text(max_size=30), st.sampled_from(
    ["+12122001000", "12122001000", "+13125550177", "anonymous", "completed", "answered", "busy", "ringing",
     "in-progress", "no-answer", "started", "inbound", "outbound", "NORMAL_CLEARING", "ANSWER", "2025-01-01T00:00:00Z",
     "1735689600", "-5", "1e400", "NaN", SCRIPT, "https://example.com/rec.mp3"]))
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | words
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(words, inner, max_size=3),
                      max_leaves=8)


def endpoints(provider):
    return list(registry.get_provider(provider).endpoints)


def assert_answered(response, where):
    assert response.status_code < 500, (where, response.status_code, response.content[:300])


@FUZZ
@given(document=st.dictionaries(st.sampled_from(VONAGE_KEYS) | st.text(max_size=8), values, max_size=10))
@example(document={"uuid": "u1", "conversation_uuid": "c1", "from": "13125550177", "to": "12122001000",
                   "status": "started"})
def test_signed_vonage_requests_never_fail(client, paid_visit, call_settings, document):
    for endpoint in endpoints("vonage"):
        assert_answered(vonage_post(client, webhook_path("vonage", endpoint), document), endpoint)


@FUZZ
@given(params=st.dictionaries(st.sampled_from(PLIVO_KEYS) | st.text(min_size=1, max_size=8), words, max_size=10))
@example(params={"CallUUID": "p1", "From": "13125550177", "To": "12122001000", "CallStatus": "ringing"})
def test_signed_plivo_requests_never_fail(client, paid_visit, call_settings, params):
    params = {key: value.replace("\x00", "") for key, value in params.items() if "\x00" not in key}
    for endpoint in endpoints("plivo"):
        assert_answered(plivo_post(client, webhook_path("plivo", endpoint), params), endpoint)


@FUZZ
@given(event=st.sampled_from(TELNYX_EVENTS) | st.text(max_size=20),
       payload=st.dictionaries(st.sampled_from(TELNYX_KEYS) | st.text(max_size=8), values, max_size=10),
       envelope=st.dictionaries(st.sampled_from(["id", "occurred_at", "record_type", "meta"]), values, max_size=3))
@example(event="call.initiated", envelope={"id": "e1"},
         payload={"call_control_id": "t1", "from": "+13125550177", "to": "+12122001000", "direction": "incoming"})
def test_signed_telnyx_requests_never_fail(client, paid_visit, call_settings, telnyx_keys, event, payload, envelope):
    document = {"data": {**envelope, "event_type": event, "payload": payload}}
    for endpoint in endpoints("telnyx"):
        assert_answered(telnyx_post(client, telnyx_keys, webhook_path("telnyx", endpoint), document=document), endpoint)


@FUZZ
@given(document=st.dictionaries(
    st.sampled_from(["event", "call_id", "from", "to", "result", "talk_seconds", "timestamp", "caller_name",
                     "recording_url", "agent", "event_id", "events"]) | st.text(max_size=8), values, max_size=10)
    | st.lists(values, max_size=3) | values)
def test_demo_provider_requests_never_fail(client, paid_visit, call_settings, document):
    for endpoint in endpoints("demo"):
        response = client.post(webhook_path("demo", endpoint), json.dumps(document), content_type="application/json")
        assert_answered(response, endpoint)
