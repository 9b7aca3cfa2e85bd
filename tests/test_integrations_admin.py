"""Admin screens of the integrations: delivery log, re-send, CRM webhooks, GA4 validation,
Google Ads feeds — and who may use them."""

import json

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse
from django.utils import timezone

from tests.integrations_fixtures import make_attributed_call
from wagtail_calltracking.models import (
    CRMEndpoint,
    Delivery,
    DeliveryEvent,
    DeliveryKind,
    DeliveryStatus,
    GA4Property,
    GoogleAdsFeed,
)

pytestmark = pytest.mark.django_db

DELIVERIES = "wagtail_calltracking_deliveries"
CRM = "wagtail_calltracking_crm"
GA4 = "wagtail_calltracking_ga4"
ADS = "wagtail_calltracking_google_ads"


@pytest.fixture
def admin_client(client, site):
    user = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    return client


def user_with(client, *codenames):
    user = User.objects.create_user("editor", "e@example.com", "pw")
    group = Group.objects.create(name="Integrations")
    group.permissions.add(Permission.objects.get(codename="access_admin"))
    for codename in codenames:
        group.permissions.add(Permission.objects.get(codename=codename, content_type__app_label="wagtail_calltracking"))
    user.groups.add(group)
    client.force_login(user)
    return client


def failed_delivery(call, endpoint, **kwargs):
    defaults = {
        "kind": DeliveryKind.CRM,
        "target_id": endpoint.pk,
        "target_name": endpoint.name,
        "call": call,
        "event": DeliveryEvent.CALL_COMPLETED,
        "status": DeliveryStatus.FAILED,
        "attempts": 8,
        "last_error": "HTTP 500 Internal Server Error",
        "last_status_code": 500,
        "payload": {"event": "call.completed", "call": {"id": call.pk}},
    }
    defaults.update(kwargs)
    return Delivery.objects.create(**defaults)


def test_menu_lists_the_integration_screens(admin_client):
    response = admin_client.get(reverse("wagtailadmin_home"))
    assert response.status_code == 200
    html = response.content.decode()
    for name in (DELIVERIES, CRM, GA4, ADS):
        assert reverse(f"{name}:index") in html


def test_delivery_log_lists_filters_and_exports(admin_client, site, crm_endpoint):
    call = make_attributed_call(site)
    failed = failed_delivery(call, crm_endpoint)
    ok = failed_delivery(
        call, crm_endpoint, event=DeliveryEvent.CALL_STARTED, status=DeliveryStatus.DELIVERED, last_error=""
    )
    url = reverse(f"{DELIVERIES}:index")
    response = admin_client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "HTTP 500 Internal Server Error" in html
    assert reverse(f"{DELIVERIES}:inspect", args=[failed.pk]) in html
    assert reverse(f"{DELIVERIES}:resend", args=[failed.pk]) in html
    assert reverse(f"{DELIVERIES}:resend_failed") in html  # "Re-send failed (1)"
    assert reverse("wagtail_calltracking_calls:inspect", args=[call.pk]) in html

    response = admin_client.get(url, {"status": "delivered"})
    assert list(response.context["object_list"]) == [ok]
    response = admin_client.get(url, {"call": call.pk, "kind": "crm", "event": "call_completed"})
    assert list(response.context["object_list"]) == [failed]
    response = admin_client.get(url, {"q": "Internal Server"})
    assert list(response.context["object_list"]) == [failed]
    response = admin_client.get(url, {"status": "nonsense"})
    assert response.status_code == 200

    response = admin_client.get(url, {"export": "csv"})
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()
    assert "HTTP 500 Internal Server Error" in body


def test_delivery_inspect_shows_payload_and_response(admin_client, site, crm_endpoint):
    row = failed_delivery(make_attributed_call(site), crm_endpoint, last_response='{"error": "boom"}')
    response = admin_client.get(reverse(f"{DELIVERIES}:inspect", args=[row.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "call.completed" in html
    assert "boom" in html
    assert reverse(f"{DELIVERIES}:resend", args=[row.pk]) in html
    assert reverse(f"{CRM}:edit", args=[crm_endpoint.pk]) in html


def test_resend_one_from_the_admin(admin_client, site, crm_endpoint, integrations_settings):
    integrations_settings.expect_request("/crm").respond_with_json({})
    row = failed_delivery(make_attributed_call(site), crm_endpoint)
    url = reverse(f"{DELIVERIES}:resend", args=[row.pk])
    assert admin_client.get(url).status_code == 200  # confirmation page
    response = admin_client.post(url)
    assert response.status_code == 302
    assert response["Location"] == reverse(f"{DELIVERIES}:inspect", args=[row.pk])
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED
    assert len(integrations_settings.log) == 1

    # Delivered: no second send, even by POSTing again.
    admin_client.post(url)
    assert len(integrations_settings.log) == 1
    assert "Nothing to re-send" in admin_client.get(url).content.decode()


def test_resend_all_failed(admin_client, site, crm_endpoint, integrations_settings):
    integrations_settings.expect_request("/crm").respond_with_json({})
    rows = [failed_delivery(make_attributed_call(site), crm_endpoint) for _ in range(3)]
    url = reverse(f"{DELIVERIES}:resend_failed")
    assert "3 failed deliveries" in admin_client.get(url).content.decode()
    assert admin_client.post(url).status_code == 302
    assert {Delivery.objects.get(pk=r.pk).status for r in rows} == {DeliveryStatus.DELIVERED}


def test_resend_of_unknown_delivery_is_404(admin_client):
    assert admin_client.get(reverse(f"{DELIVERIES}:resend", args=[987654])).status_code == 404


def test_viewer_without_resend_permission(client, site, crm_endpoint, integrations_settings):
    row = failed_delivery(make_attributed_call(site), crm_endpoint)
    user_with(client, "view_delivery")
    response = client.get(reverse(f"{DELIVERIES}:index"))
    assert response.status_code == 200
    assert reverse(f"{DELIVERIES}:resend", args=[row.pk]) not in response.content.decode()
    response = client.post(reverse(f"{DELIVERIES}:resend", args=[row.pk]))
    assert response.status_code in (302, 403)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.FAILED
    assert integrations_settings.log == []
    # Nor the configuration screens.
    assert client.get(reverse(f"{CRM}:index")).status_code in (302, 403)


def test_no_permission_no_log(client, site, crm_endpoint):
    user_with(client)
    response = client.get(reverse(f"{DELIVERIES}:index"))
    assert response.status_code in (302, 403)
    html = client.get(reverse("wagtailadmin_home")).content.decode()
    assert reverse(f"{DELIVERIES}:index") not in html


def test_create_crm_endpoint_and_ping(admin_client, site, integrations_settings):
    server = integrations_settings
    server.expect_request("/crm").respond_with_json({"pong": True})
    response = admin_client.post(
        reverse(f"{CRM}:add"),
        {
            "name": "HubSpot via Zapier",
            "active": "on",
            "url": server.url_for("/crm"),
            "on_call_completed": "on",
            "secret": "a-long-signing-secret",
        },
    )
    assert response.status_code == 302, response.context["form"].errors if response.context else ""
    endpoint = CRMEndpoint.objects.get(name="HubSpot via Zapier")
    assert endpoint.events == [DeliveryEvent.CALL_COMPLETED]

    listing = admin_client.get(reverse(f"{CRM}:index")).content.decode()
    assert "HubSpot via Zapier" in listing
    assert reverse(f"{CRM}:ping", args=[endpoint.pk]) in listing

    ping_url = reverse(f"{CRM}:ping", args=[endpoint.pk])
    assert admin_client.get(ping_url).status_code == 200
    assert server.log == []
    response = admin_client.post(ping_url)
    assert response.status_code == 200
    assert "HTTP 200" in response.content.decode()
    ((request, _),) = server.log
    assert json.loads(request.get_data())["event"] == "ping"


def test_crm_endpoint_without_events_is_refused(admin_client, site):
    response = admin_client.post(
        reverse(f"{CRM}:add"),
        {"name": "x", "active": "on", "url": "https://crm.example.com/hook", "secret": "s"},
    )
    assert response.status_code == 200
    assert not CRMEndpoint.objects.exists()


def test_ga4_property_form_and_validate(admin_client, site, integrations_settings):
    server = integrations_settings
    response = admin_client.post(
        reverse(f"{GA4}:add"),
        {
            "name": "Main",
            "active": "on",
            "measurement_id": "g-abc123",
            "api_secret": "secret",
            "event_name": "phone_call",
            "answered_only": "on",
            "min_talk_seconds": "0",
        },
    )
    assert response.status_code == 302
    prop = GA4Property.objects.get()
    assert prop.measurement_id == "G-ABC123"

    server.expect_request("/ga/debug/mp/collect").respond_with_json(
        {
            "validationMessages": [
                {"fieldPath": "events", "description": "Event name is reserved.", "validationCode": "NAME_RESERVED"}
            ]
        }
    )
    listing = admin_client.get(reverse(f"{GA4}:index")).content.decode()
    assert reverse(f"{GA4}:validate", args=[prop.pk]) in listing and "target_id" in listing
    response = admin_client.get(reverse(f"{GA4}:validate", args=[prop.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "NAME_RESERVED" in html and "Event name is reserved." in html


def test_ga4_validate_when_unreachable(admin_client, site, settings):
    from django.test import override_settings

    prop = GA4Property.objects.create(measurement_id="G-ABC123", api_secret="hidden-secret")
    with override_settings(
        WAGTAIL_CALLTRACKING={
            **settings.WAGTAIL_CALLTRACKING,
            "GA4_ENDPOINT": "http://127.0.0.1:9",
            "HTTP_TIMEOUT_SECONDS": 1,
        }
    ):
        response = admin_client.get(reverse(f"{GA4}:validate", args=[prop.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "could not be reached" in html
    assert "hidden-secret" not in html


def test_google_ads_feed_screens(admin_client, site, ads_feed, django_capture_on_commit_callbacks):
    from wagtail_calltracking.models import Call
    from wagtail_calltracking.signals import call_completed

    call = make_attributed_call(site)
    with django_capture_on_commit_callbacks(execute=True):
        call_completed.send(sender=Call, call=call)

    edit = admin_client.get(reverse(f"{ADS}:edit", args=[ads_feed.pk]))
    assert edit.status_code == 200
    html = edit.content.decode()
    assert reverse("wagtail_calltracking:google_ads_feed", args=[ads_feed.feed_token]) in html
    assert f"feed{ads_feed.pk}" in html
    assert "is not HTTPS" in html  # the test server is plain HTTP

    listing = admin_client.get(reverse(f"{ADS}:index")).content.decode()
    assert reverse(f"{ADS}:download", args=[ads_feed.pk]) in listing and "target_id" in listing
    download = admin_client.get(reverse(f"{ADS}:download", args=[ads_feed.pk]))
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment")
    assert call.gclid in download.content.decode()
    # The admin download does not count as Google fetching the rows.
    assert Delivery.objects.get(call=call, kind=DeliveryKind.GOOGLE_ADS).status == DeliveryStatus.AWAITING_FETCH

    listing = admin_client.get(reverse(f"{ADS}:index")).content.decode()
    assert "Phone call lead" in listing

    old = ads_feed.feed_token
    assert admin_client.get(reverse(f"{ADS}:regenerate", args=[ads_feed.pk])).status_code == 200
    assert admin_client.post(reverse(f"{ADS}:regenerate", args=[ads_feed.pk])).status_code == 302
    ads_feed.refresh_from_db()
    assert ads_feed.feed_token != old


def test_google_ads_feed_with_source_rules_through_the_form(admin_client, site):
    from tests.factories import make_source

    source = make_source(name="Newspaper")
    data = {
        "name": "Ads account",
        "active": "on",
        "conversion_name": "Phone call",
        "time_zone": "Europe/Paris",
        "default_currency": "eur",
        "window_days": "60",
        "answered_only": "on",
        "min_talk_seconds": "60",
        "source_rules-TOTAL_FORMS": "1",
        "source_rules-INITIAL_FORMS": "0",
        "source_rules-MIN_NUM_FORMS": "0",
        "source_rules-MAX_NUM_FORMS": "1000",
        "source_rules-0-source": str(source.pk),
        "source_rules-0-include": "on",
        "source_rules-0-conversion_name": "Newspaper call",
        "source_rules-0-min_talk_seconds": "30",
        "source_rules-0-value": "40.00",
        "source_rules-0-ORDER": "1",
        "source_rules-0-DELETE": "",
        "source_rules-0-id": "",
    }
    response = admin_client.post(reverse(f"{ADS}:add"), data)
    assert response.status_code == 302, response.context["form"].errors
    feed = GoogleAdsFeed.objects.get(name="Ads account")
    assert feed.default_currency == "EUR"
    rule = feed.source_rules.get()
    assert (rule.source, rule.conversion_name, rule.min_talk_seconds) == (source, "Newspaper call", 30)

    data["time_zone"] = "Not/AZone"
    data["name"] = "Broken"
    response = admin_client.post(reverse(f"{ADS}:add"), data)
    assert response.status_code == 200
    assert not GoogleAdsFeed.objects.filter(name="Broken").exists()


def test_download_needs_permission(client, site, ads_feed):
    user_with(client, "view_delivery")
    response = client.get(reverse(f"{ADS}:download", args=[ads_feed.pk]))
    assert response.status_code in (302, 403)


def test_delivery_log_query_count(admin_client, site, crm_endpoint, django_assert_max_num_queries):
    call = make_attributed_call(site)
    for i in range(30):
        failed_delivery(call, crm_endpoint, target_id=crm_endpoint.pk + i + 1, created_at=timezone.now())
    url = reverse(f"{DELIVERIES}:index")
    admin_client.get(url)  # warm caches (content types, site)
    with django_assert_max_num_queries(25):
        assert admin_client.get(url).status_code == 200


def test_call_page_lists_where_the_call_was_reported(admin_client, client, site, crm_endpoint):
    call = make_attributed_call(site)
    row = failed_delivery(call, crm_endpoint)
    url = reverse("wagtail_calltracking_calls:inspect", args=[call.pk])
    html = admin_client.get(url).content.decode()
    assert "Reported to" in html
    assert reverse(f"{DELIVERIES}:inspect", args=[row.pk]) in html
    assert "HTTP 500 Internal Server Error" in html

    # Someone who may see calls but not the delivery log does not see the section.
    admin_client.logout()
    user_with(client, "view_call")
    response = client.get(url)
    assert response.status_code == 200
    assert "Reported to" not in response.content.decode()
