"""The demo's integrations: configured idempotently, answered by the example site's local
receiver over real HTTP (a live server), never by Google or a real CRM."""

import io
import json

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse
from home.demo import integrations as demo_integrations
from home.demo import receiver

from tests.integrations_fixtures import make_attributed_call
from wagtail_calltracking.integrations import ga4
from wagtail_calltracking.models import (
    Call,
    CRMEndpoint,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    GA4Property,
    GoogleAdsFeed,
)
from wagtail_calltracking.signals import call_completed


def test_demo_configuration_is_idempotent_and_local(site):
    out = io.StringIO()
    demo_integrations.load(out)
    demo_integrations.load(out)
    assert GA4Property.objects.count() == 1
    assert GoogleAdsFeed.objects.count() == 1
    endpoint = CRMEndpoint.objects.get()
    assert "/demo-receiver/crm/" in endpoint.url
    assert endpoint.url.startswith(("http://127.0.0.1", "http://localhost", settings.WAGTAILADMIN_BASE_URL))
    assert "/calltracking/integrations/google-ads/" in out.getvalue()


def test_example_site_never_sends_ga4_to_google_by_default():
    from example_site import settings as example_settings

    assert "google-analytics.com" not in example_settings.WAGTAIL_CALLTRACKING["GA4_ENDPOINT"]


@pytest.mark.django_db(transaction=True)
def test_demo_deliveries_are_answered_by_the_local_receiver(live_server):
    """(Transactional: runs on a flushed database, without Wagtail sites; the demo's targets
    then apply to every site.)"""
    receiver.RECEIVED.clear()
    with override_settings(
        WAGTAILADMIN_BASE_URL=live_server.url,
        WAGTAIL_CALLTRACKING={
            **settings.WAGTAIL_CALLTRACKING,
            "GA4_ENDPOINT": f"{live_server.url}/demo-receiver/ga4",
        },
    ):
        demo_integrations.load(io.StringIO())
        call = make_attributed_call(None, ga_session_ids={demo_integrations.DEMO_MEASUREMENT_ID: "1673515099"})
        call_completed.send(sender=Call, call=call)

        rows = {d.kind: d for d in Delivery.objects.filter(call=call)}
        assert rows[DeliveryKind.GA4].status == DeliveryStatus.DELIVERED
        assert rows[DeliveryKind.GA4].last_status_code == 204
        crm_row = rows[DeliveryKind.CRM]
        assert crm_row.status == DeliveryStatus.DELIVERED, crm_row.last_error
        answer = json.loads(crm_row.last_response)
        assert answer["signature"] == "valid"
        assert answer["source"] == "google" and answer["keyword"] == "emergency plumber"
        assert rows[DeliveryKind.GOOGLE_ADS].status == DeliveryStatus.AWAITING_FETCH

        # The "validate" action works against the local validation stand-in.
        result = ga4.validate(GA4Property.objects.get())
        assert result["error"] == "" and result["messages"] == []

    destinations = [entry["to"] for entry in receiver.RECEIVED]
    assert sorted(destinations) == ["CRM", "GA4"]


def test_receiver_refuses_a_forged_crm_request(client, site):
    demo_integrations.load(io.StringIO())
    response = client.post(
        reverse("demo_receiver") + "crm/",
        b'{"event": "call.completed"}',
        content_type="application/json",
        HTTP_X_CALLTRACKING_TIMESTAMP="1",
        HTTP_X_CALLTRACKING_SIGNATURE="v1=00",
    )
    assert response.status_code == 401


def test_receiver_validation_flags_limits(client):
    payload = {"client_id": "1.2", "events": [{"name": "bad name", "params": {"x": "y" * 101}}]}
    response = client.post("/demo-receiver/ga4/debug/mp/collect", json.dumps(payload), content_type="application/json")
    codes = {m["validationCode"] for m in response.json()["validationMessages"]}
    assert codes == {"NAME_INVALID", "VALUE_INVALID"}
