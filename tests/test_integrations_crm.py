"""CRM / automation webhooks: the payload (call + attribution + journey) and its signature."""

import hashlib
import hmac
import json
import time

import pytest
from requests.structures import CaseInsensitiveDict

from tests.integrations_fixtures import GCLID, make_attributed_call
from wagtail_calltracking.integrations import crm
from wagtail_calltracking.integrations.payloads import JOURNEY_MAX_PAGES
from wagtail_calltracking.models import Call, CRMEndpoint, Delivery, DeliveryKind, PageView
from wagtail_calltracking.signals import call_completed

pytestmark = pytest.mark.django_db


def verify_calltracking_webhook(secret: str, body: bytes, headers) -> bool:
    """The verification snippet of docs/integrations.md, verbatim."""
    timestamp = headers.get("X-CallTracking-Timestamp", "")
    signature = headers.get("X-CallTracking-Signature", "")
    try:
        if abs(time.time() - int(timestamp)) > 300:  # reject replays
            return False
    except ValueError:
        return False
    message = timestamp.encode() + b"." + body
    expected = "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def deliver(call, capture, server):
    with capture(execute=True):
        call_completed.send(sender=Call, call=call)
    (request,) = [req for req, _ in server.log if req.path == "/crm"]
    return request


def test_payload_carries_the_call_and_its_attribution(
    site, integrations_settings, crm_endpoint, django_capture_on_commit_callbacks
):
    server = integrations_settings
    server.expect_request("/crm", method="POST").respond_with_json({})
    call = make_attributed_call(site, caller_name="Jane Doe")

    request = deliver(call, django_capture_on_commit_callbacks, server)

    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("wagtail-calltracking/")
    assert request.headers[crm.EVENT_HEADER] == "call.completed"
    body = json.loads(request.get_data())
    row = Delivery.objects.get(call=call, kind=DeliveryKind.CRM)
    assert body["event"] == "call.completed"
    assert body["delivery_id"] == row.pk
    assert request.headers[crm.DELIVERY_HEADER] == str(row.pk)

    c = body["call"]
    assert c["id"] == call.pk
    assert c["result"] == "answered"
    assert c["talk_seconds"] == 184
    assert c["caller"] == {
        "number": "+13125550100",
        "name": "Jane Doe",
        "city": "",
        "region": "",
        "country": "",
        "first_time": True,
    }
    assert c["tracking_number"] == {"number": call.to_number, "label": "Website pool 1"}
    assert c["value"] == "75.00" and c["currency"] == "USD"
    assert c["admin_url"].endswith(f"/admin/calltracking/calls/{call.pk}/")

    a = body["attribution"]
    assert a["tracking_source"] == {"id": call.source_id, "name": "Google Ads"}
    assert a["channel"] == "paid_search"
    assert (a["source"], a["medium"], a["campaign"]) == ("google", "cpc", "spring-drains")
    assert a["keyword"] == "emergency plumber"
    assert a["landing_page"] == "/drain-cleaning/"
    assert a["landing_url"] == "http://testserver/drain-cleaning/"
    assert a["click_ids"]["gclid"] == GCLID
    assert set(a["touches"]) == {"first", "last", "last_non_direct"}

    j = body["journey"]
    assert j["page_count"] == 3
    assert [p["path"] for p in j["pages"]] == ["/drain-cleaning/", "/water-heaters/", "/contact/"]
    assert j["device"] == "mobile" and j["browser"] == "Chrome" and j["city"] == "Springfield"
    assert j["earlier_visits"] == 0


def test_signature_verifies_with_the_documented_snippet(
    site, integrations_settings, crm_endpoint, django_capture_on_commit_callbacks
):
    server = integrations_settings
    server.expect_request("/crm").respond_with_json({})
    request = deliver(make_attributed_call(site), django_capture_on_commit_callbacks, server)
    body = request.get_data()
    headers = CaseInsensitiveDict(request.headers)  # as Django's / Flask's request.headers

    assert headers[crm.SIGNATURE_HEADER].startswith("v1=")
    assert abs(int(headers[crm.TIMESTAMP_HEADER]) - time.time()) < 30
    assert verify_calltracking_webhook("crm-signing-secret", body, headers)
    assert crm.verify("crm-signing-secret", headers[crm.TIMESTAMP_HEADER], body, headers[crm.SIGNATURE_HEADER])
    # Any change breaks it: the secret, the body, the timestamp.
    assert not verify_calltracking_webhook("other-secret", body, headers)
    assert not verify_calltracking_webhook("crm-signing-secret", body + b" ", headers)
    forged = CaseInsensitiveDict(headers)
    forged[crm.TIMESTAMP_HEADER] = str(int(headers[crm.TIMESTAMP_HEADER]) + 1)
    assert not verify_calltracking_webhook("crm-signing-secret", body, forged)
    stale = str(int(time.time()) - 3600)
    replay = CaseInsensitiveDict(headers)
    replay[crm.TIMESTAMP_HEADER] = stale
    replay[crm.SIGNATURE_HEADER] = crm.sign("crm-signing-secret", stale, body)
    assert not verify_calltracking_webhook("crm-signing-secret", body, replay)
    assert not crm.verify("crm-signing-secret", "not-a-number", body, headers[crm.SIGNATURE_HEADER])


def test_signature_known_vector():
    assert crm.sign("secret", 1700000000, b'{"a":1}') == (
        "v1=" + hmac.new(b"secret", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    )


def test_call_without_a_session(site, integrations_settings, crm_endpoint, django_capture_on_commit_callbacks):
    """A call to a static number: attribution from the source, no journey."""
    server = integrations_settings
    server.expect_request("/crm").respond_with_json({})
    call = make_attributed_call(site, session=None, visitor=None, gclid="")
    call.touches.all().delete()
    body = json.loads(deliver(call, django_capture_on_commit_callbacks, server).get_data())
    assert body["journey"] is None
    assert body["attribution"]["source"] == "Google Ads"
    assert body["attribution"]["click_ids"] == {}


def test_long_journeys_are_summarised(site, integrations_settings, crm_endpoint, django_capture_on_commit_callbacks):
    server = integrations_settings
    server.expect_request("/crm").respond_with_json({})
    call = make_attributed_call(site)
    PageView.objects.bulk_create(
        PageView(session=call.session, path=f"/p{i}/", viewed_at=call.session.started_at) for i in range(70)
    )
    body = json.loads(deliver(call, django_capture_on_commit_callbacks, server).get_data())
    assert body["journey"]["page_count"] == 73
    assert len(body["journey"]["pages"]) == JOURNEY_MAX_PAGES


def test_payload_query_count(site, crm_endpoint, django_assert_max_num_queries):
    from wagtail_calltracking.integrations import delivery, payloads

    call = delivery.load_call(make_attributed_call(site).pk)
    with django_assert_max_num_queries(4):
        payloads.crm_payload(call, "call_completed", delivery_id=1)


def test_ping(site, integrations_settings, crm_endpoint):
    server = integrations_settings
    server.expect_request("/crm").respond_with_json({})
    outcome = crm.send_ping(crm_endpoint)
    assert outcome.ok
    ((request, _),) = server.log
    assert json.loads(request.get_data())["event"] == "ping"
    assert verify_calltracking_webhook("crm-signing-secret", request.get_data(), request.headers)


def test_endpoint_needs_an_event_and_an_http_url(site):
    from django.core.exceptions import ValidationError

    endpoint = CRMEndpoint(name="x", url="https://crm.example.com/hook", on_call_completed=False)
    with pytest.raises(ValidationError, match="at least one event"):
        endpoint.full_clean()
    endpoint = CRMEndpoint(name="x", url="ftp://crm.example.com/hook")
    with pytest.raises(ValidationError):
        endpoint.full_clean()
    assert len(CRMEndpoint(name="x", url="https://a.example").secret) >= 40  # generated
