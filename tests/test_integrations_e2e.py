"""End to end through the demo telephony provider: a simulated answered call from a Google
Ads visitor produces a GA4 request, a Google Ads feed row and a CRM webhook with the right
attribution, all in the delivery log — and the telephony webhook answers normally while the
targets are down."""

import json
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from werkzeug import Response

from tests.factories import make_pool, make_session, make_source
from wagtail_calltracking.models import (
    CallTrackingSiteSettings,
    CRMEndpoint,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    GA4Property,
    GoogleAdsFeed,
    Lease,
    PoolAudience,
)

pytestmark = pytest.mark.django_db

PAID_GCLID = "Cj0KCQ-test-gclid"
CALLER = "+13125550177"


def demo_post(client, endpoint, document):
    return client.post(
        f"/calltracking/webhooks/demo/{endpoint}/", json.dumps(document), content_type="application/json"
    )


@pytest.fixture
def visit(site):
    CallTrackingSiteSettings.objects.update_or_create(
        site=site, defaults={"canonical_number": "+12125550100", "fallback_forward_to": "+12125550199"}
    )
    return build_visit(site)


def build_visit(site, **pool_options):
    """A Google Ads visitor holding a live lease on a pool number (as the tag would give)."""
    pool = make_pool(size=2, site=site, name="Online", audience=PoolAudience.SOURCES, hold_minutes=20, **pool_options)
    source = make_source(name="Google Ads", site=site, channel="paid_search", utm_source="google", pool=pool)
    started = timezone.now() - timedelta(minutes=5)
    session = make_session(
        site=site,
        started_at=started,
        last_activity_at=started + timedelta(minutes=3),
        channel="paid_search",
        source="google",
        medium="cpc",
        campaign="spring",
        keyword="emergency plumber",
        landing_path="/emergency-plumbing/",
        gclid=PAID_GCLID,
        ga_client_id="1197596843.1673515099",
        ga_session_ids={"G-TEST": "1673515099"},
        matched_source=source,
        device_type="mobile",
        city="Chicago",
    )
    number = pool.numbers.order_by("number").first()
    lease = Lease.objects.create(
        number=number, pool=pool, session=session, leased_at=started, last_seen_at=started + timedelta(minutes=3)
    )
    type(number).objects.filter(pk=number.pk).update(current_lease=lease)
    return session, number


@pytest.fixture
def targets(site, integrations_settings):
    return build_targets(site, integrations_settings)


def build_targets(site, server):
    return {
        "ga4": GA4Property.objects.create(site=site, name="Web", measurement_id="G-TEST", api_secret="mp-secret"),
        "ads": GoogleAdsFeed.objects.create(
            site=site, name="Ads", time_zone="America/Chicago", conversion_name="Phone call", min_talk_seconds=30
        ),
        "crm": CRMEndpoint.objects.create(
            site=site,
            name="CRM",
            url=server.url_for("/crm"),
            secret="crm-secret",
            on_call_started=True,
            on_call_completed=True,
        ),
        "server": server,
    }


def simulate_call(client, capture, number, call_id="demo-e2e-1", talk_seconds=184):
    with capture(execute=True):
        voice = demo_post(client, "voice", {"call_id": call_id, "from": CALLER, "to": number.number})
    with capture(execute=True):
        status = demo_post(
            client,
            "status",
            {
                "event": "completed",
                "call_id": call_id,
                "result": "answered",
                "talk_seconds": talk_seconds,
                "ring_seconds": 6,
            },
        )
    return voice, status


def test_simulated_answered_call_reaches_ga4_google_ads_and_the_crm(
    client, site, visit, targets, django_capture_on_commit_callbacks
):
    session, number = visit
    server = targets["server"]
    server.expect_request("/ga/mp/collect").respond_with_data("", status=204)
    server.expect_request("/crm").respond_with_json({"ok": True})

    voice, status = simulate_call(client, django_capture_on_commit_callbacks, number)

    assert voice.status_code == 200 and voice.json()["action"] == "forward"
    assert status.status_code == 200 and status.json()["result"] == "answered"
    call_id = status.json()["call"]

    # GA4: the visitor's client id and session, the call's attribution, no phone number.
    (ga_request,) = [req for req, _ in server.log if req.path == "/ga/mp/collect"]
    body = json.loads(ga_request.get_data())
    assert body["client_id"] == "1197596843.1673515099"
    params = body["events"][0]["params"]
    assert params["session_id"] == "1673515099"
    assert (params["source"], params["medium"], params["campaign"]) == ("google", "cpc", "spring")
    assert params["keyword"] == "emergency plumber"
    assert params["call_result"] == "answered" and params["call_duration"] == 184
    assert CALLER not in ga_request.get_data(as_text=True)
    assert CALLER.lstrip("+") not in ga_request.get_data(as_text=True)

    # CRM: started, then completed, with the journey.
    crm_bodies = [json.loads(req.get_data()) for req, _ in server.log if req.path == "/crm"]
    assert [b["event"] for b in crm_bodies] == ["call.started", "call.completed"]
    completed = crm_bodies[-1]
    assert completed["call"]["id"] == call_id
    assert completed["call"]["caller"]["number"] == CALLER
    assert completed["attribution"]["tracking_source"]["name"] == "Google Ads"
    assert completed["attribution"]["keyword"] == "emergency plumber"
    assert completed["attribution"]["landing_page"] == "/emergency-plumbing/"
    assert completed["attribution"]["click_ids"]["gclid"] == PAID_GCLID
    assert completed["journey"]["landing_page"] == "/emergency-plumbing/"

    # Google Ads: a row in the feed.
    feed = client.get(reverse("wagtail_calltracking:google_ads_feed", args=[targets["ads"].feed_token]))
    lines = feed.content.decode().splitlines()
    assert lines[0] == "Parameters:TimeZone=America/Chicago"
    assert lines[2].startswith(f"{PAID_GCLID},Phone call,")

    # All of it in the delivery log.
    statuses = {(d.kind, d.event): d.status for d in Delivery.objects.filter(call_id=call_id)}
    assert statuses == {
        (DeliveryKind.GA4, "call_completed"): DeliveryStatus.DELIVERED,
        (DeliveryKind.GOOGLE_ADS, "call_completed"): DeliveryStatus.DELIVERED,  # fetched above
        (DeliveryKind.CRM, "call_started"): DeliveryStatus.DELIVERED,
        (DeliveryKind.CRM, "call_completed"): DeliveryStatus.DELIVERED,
    }

    # A replayed status webhook delivers nothing twice.
    before = len(server.log)
    with django_capture_on_commit_callbacks(execute=True):
        demo_post(
            client, "status", {"event": "completed", "call_id": "demo-e2e-1", "result": "answered", "talk_seconds": 184}
        )
    assert len(server.log) == before
    assert Delivery.objects.filter(call_id=call_id).count() == 4


@pytest.mark.parametrize("failure", ["500", "timeout", "unreachable"])
def test_telephony_webhook_answers_normally_while_targets_are_down(
    client, site, visit, targets, django_capture_on_commit_callbacks, failure
):
    session, number = visit
    server = targets["server"]
    if failure == "500":
        server.expect_request("/crm").respond_with_data("down", status=500)
        server.expect_request("/ga/mp/collect").respond_with_data("down", status=503)
    elif failure == "timeout":

        def slow(request):
            time.sleep(1.3)
            return Response("late")

        server.expect_request("/crm").respond_with_handler(slow)
        server.expect_request("/ga/mp/collect").respond_with_handler(slow)
    else:
        targets["crm"].url = "http://127.0.0.1:9/hook"  # connection refused
        targets["crm"].save()
        # GA4 gets the local server's "no handler" 500.

    voice, status = simulate_call(client, django_capture_on_commit_callbacks, number, call_id=f"down-{failure}")

    assert voice.status_code == 200 and voice.json()["action"] == "forward"
    assert status.status_code == 200 and status.json()["ok"] is True
    call_id = status.json()["call"]
    rows = Delivery.objects.filter(call_id=call_id)
    crm_rows = rows.filter(kind=DeliveryKind.CRM)
    assert set(crm_rows.values_list("status", flat=True)) == {DeliveryStatus.RETRYING}
    assert all(row.last_error for row in crm_rows)
    assert rows.get(kind=DeliveryKind.GA4).status == DeliveryStatus.RETRYING
    assert rows.get(kind=DeliveryKind.GOOGLE_ADS).status == DeliveryStatus.AWAITING_FETCH
    if failure == "timeout":
        time.sleep(1.0)  # let the slow handlers finish before the server is reset


def test_short_call_counts_for_ga4_but_not_for_google_ads(
    client, site, visit, targets, django_capture_on_commit_callbacks
):
    session, number = visit
    server = targets["server"]
    server.expect_request("/ga/mp/collect").respond_with_data("", status=204)
    server.expect_request("/crm").respond_with_json({})
    _, status = simulate_call(client, django_capture_on_commit_callbacks, number, call_id="short", talk_seconds=12)
    ads = Delivery.objects.get(call_id=status.json()["call"], kind=DeliveryKind.GOOGLE_ADS)
    assert ads.status == DeliveryStatus.SKIPPED
    assert "under the minimum of 30s" in ads.skip_reason
    assert Delivery.objects.get(call_id=status.json()["call"], kind=DeliveryKind.GA4).status == "delivered"


def test_immediate_backend_sends_after_the_response(site, integrations_settings, crm_endpoint):
    """Inside a request, the immediate backend holds sends until the response is out.
    (The handlers are called directly: sending request_started would let Django close the
    test's connection.)"""
    from tests.integrations_fixtures import make_attributed_call
    from wagtail_calltracking.integrations import delivery
    from wagtail_calltracking.models import Call
    from wagtail_calltracking.signals import call_started

    integrations_settings.expect_request("/crm").respond_with_json({})
    call = make_attributed_call(site)
    delivery.request_started_handler()
    try:
        call_started.send(sender=Call, call=call)  # the test's transaction: run on_commit now
        from django.db import connection

        for _, callback, _ in list(connection.run_on_commit):
            callback()
        connection.run_on_commit.clear()
        row = Delivery.objects.get(call=call)
        assert row.status == DeliveryStatus.PENDING  # built, held
        assert row.payload["event"] == "call.started"
        assert integrations_settings.log == []
    finally:
        delivery.request_finished_handler()
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED
    assert len(integrations_settings.log) == 1


@pytest.mark.django_db(transaction=True)
def test_slow_crm_never_delays_the_forwarding_answer(live_server, integrations_settings, settings):
    """A real server: the voice answer goes out while the CRM is still thinking.
    (Transactional: runs on a flushed database, without Wagtail sites.)"""
    import requests

    server = integrations_settings
    visit = build_visit(None, forward_to="+12125550199")
    build_targets(None, server)
    settings.WAGTAIL_CALLTRACKING = {**settings.WAGTAIL_CALLTRACKING, "HTTP_TIMEOUT_SECONDS": 5}

    def slow(request):
        time.sleep(2.5)
        return Response('{"ok": true}', content_type="application/json")

    server.expect_request("/crm").respond_with_handler(slow)
    session, number = visit
    started = time.monotonic()
    response = requests.post(
        f"{live_server.url}/calltracking/webhooks/demo/voice/",
        json={"call_id": "live-1", "from": CALLER, "to": number.number},
        timeout=10,
    )
    answered_in = time.monotonic() - started
    assert response.status_code == 200 and response.json()["action"] == "forward"
    assert answered_in < 1.5  # not the CRM's 2.5 s
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = Delivery.objects.filter(kind=DeliveryKind.CRM, event="call_started").first()
        if row and row.status == DeliveryStatus.DELIVERED:
            break
        time.sleep(0.1)
    assert row is not None and row.status == DeliveryStatus.DELIVERED
