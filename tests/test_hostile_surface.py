"""The attack surface: which URLs skip CSRF protection, which admin URLs a user without
permissions can reach, and the rate limit of the cache-safe endpoint against forged cookies."""

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from wagtail_calltracking.models import (
    Call,
    CRMEndpoint,
    Delivery,
    DeliveryEvent,
    DeliveryKind,
    DeliveryStatus,
    GA4Property,
    GoogleAdsFeed,
    Manager,
    NumberPool,
    Source,
    TrackingNumber,
    VisitorSession,
)
from wagtail_calltracking.webhooks import registry

from .admin_fixtures import CONFIGURE, VIEW_CALLS, journey_call, make_admin_user, make_manager
from .conftest import BROWSER_UA
from .factories import make_number, make_source
from .hostile_helpers import admin_screens, url_patterns
from .privacy_fixtures import CALLER

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_caches")]

WEBHOOK_ROUTE = re.compile(r"^calltracking/webhooks/(?P<provider>[a-z]+)/(?P<endpoint>[a-z]+)/$")


# --- CSRF --------------------------------------------------------------------------------------------


def exempt_routes():
    return {
        route: getattr(pattern.callback, "__module__", "")
        for route, pattern in url_patterns()
        if getattr(pattern.callback, "csrf_exempt", False)
    }


def test_only_webhooks_and_the_number_endpoint_are_csrf_exempt():
    exempt = exempt_routes()
    ours = {route for route, module in exempt.items() if module.startswith("wagtail_calltracking")}
    expected = {
        f"calltracking/webhooks/{name}/{endpoint}/"
        for name in registry.BUILTIN_PROVIDERS
        for endpoint in registry.get_provider(name).endpoints
    } | {"calltracking/number/"}
    assert ours == expected
    # Everything else that is exempt belongs to Wagtail's admin API (Django REST framework
    # checks CSRF itself for session-authenticated requests) or to the example site's demo
    # receivers (stand-ins for GA4 and a CRM, not part of the package).
    others = {route: module for route, module in exempt.items() if route not in ours}
    for route, module in others.items():
        assert module.startswith(("wagtail.", "home.demo")), (route, module)
    # No admin screen of the app is exempt, and neither are the feeds (GET only).
    assert not any(route.startswith("admin/calltracking/") for route in exempt)
    assert not any("google-ads" in route for route in exempt)


@pytest.fixture
def config_objects(site):
    call = journey_call(caller=CALLER)
    crm = CRMEndpoint.objects.create(site=site, name="CRM", url="https://crm.example.com/hook")
    objects = {
        Call: call,
        Source: make_source(name="Newspaper", static_number=make_number(label="Paper")),
        TrackingNumber: call.tracking_number,
        NumberPool: call.tracking_number.pool,
        Manager: make_manager("Alice"),
        CRMEndpoint: crm,
        GA4Property: GA4Property.objects.create(site=site, measurement_id="G-ABC123", api_secret="x"),
        GoogleAdsFeed: GoogleAdsFeed.objects.create(site=site, name="Ads"),
        Delivery: Delivery.objects.create(
            kind=DeliveryKind.CRM, target_id=crm.pk, target_name="CRM", call=call,
            event=DeliveryEvent.CALL_COMPLETED, status=DeliveryStatus.FAILED, payload={"caller": CALLER},
        ),
        None: None,
    }
    return objects


def test_admin_posts_need_a_csrf_token(config_objects):
    user = make_admin_user(superuser=True)
    client = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=BROWSER_UA)
    client.force_login(user)
    for name, url in admin_screens(config_objects):
        response = client.post(url, {"phone_numbers": CALLER, "confirm": "1", "name": "x"})
        assert response.status_code in (403, 405), (name, response.status_code)
    # Nothing changed.
    assert Call.objects.filter(from_number=CALLER).exists()
    assert Delivery.objects.get().status == DeliveryStatus.FAILED


def test_webhooks_and_the_number_endpoint_work_without_a_token(site):
    client = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=BROWSER_UA)
    voice = client.post(
        "/calltracking/webhooks/demo/voice/",
        json.dumps({"call_id": "csrf-1", "from": CALLER, "to": "+12125550123"}),
        content_type="application/json",
    )
    assert voice.status_code == 200
    number = client.post("/calltracking/number/", "{}", content_type="application/json")
    assert number.status_code == 200


# --- admin permissions ---------------------------------------------------------------------------------


def assert_refused(response, name):
    """Wagtail's permission denied (redirect to the dashboard, 403 for XHR) or a 404."""
    assert response.status_code in (302, 403, 404), (name, response.status_code)
    if response.status_code == 302:
        assert response["Location"].startswith((reverse("wagtailadmin_home"), "/admin/login")), name


def test_every_admin_screen_refuses_a_user_without_permissions(client, config_objects):
    client.force_login(make_admin_user([]))
    screens = admin_screens(config_objects)
    assert len(screens) >= 60  # calls, reports, configuration, integrations, erasure
    for name, url in screens:
        assert_refused(client.get(url), name)
        assert_refused(client.post(url, {"phone_numbers": CALLER, "confirm": "1"}), name)
        assert_refused(client.get(url, headers={"x-requested-with": "XMLHttpRequest"}), name)
    assert Call.objects.filter(from_number=CALLER).exists()
    assert Source.objects.filter(name="Newspaper").exists()


def test_call_viewers_cannot_configure_erase_or_resend(client, config_objects):
    client.force_login(make_admin_user(VIEW_CALLS))
    for name, url in admin_screens(config_objects):
        namespace = name.split(":")[0]
        if namespace in ("wagtail_calltracking_calls",) or namespace.startswith("wagtail_calltracking_report"):
            assert client.get(url).status_code == 200, name
            continue
        assert_refused(client.get(url), name)


def test_configurators_cannot_see_calls_or_erase(client, config_objects):
    client.force_login(make_admin_user(CONFIGURE))
    for name, url in admin_screens(config_objects):
        namespace = name.split(":")[0]
        if namespace in ("wagtail_calltracking_calls", "wagtail_calltracking_erasure", "wagtail_calltracking_deliveries"):
            assert_refused(client.get(url), name)


def test_anonymous_users_are_sent_to_the_login_page(config_objects):
    client = Client(HTTP_USER_AGENT=BROWSER_UA)
    for name, url in admin_screens(config_objects):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], name


# --- rate limit of the cache-safe endpoint -----------------------------------------------------------------


def ask(client, **extra):
    return client.post("/calltracking/number/", json.dumps({"search": "?utm_source=x"}),
                       content_type="application/json", **extra)


def test_forged_cookies_do_not_escape_the_rate_limit(site, settings):
    """A script that sends a fresh garbage cookie with every request is still counted by its
    address: no pool exhaustion by cookie rotation."""
    settings.WAGTAIL_CALLTRACKING = {**settings.WAGTAIL_CALLTRACKING, "NUMBER_ENDPOINT_RATE_LIMIT": 5}
    statuses = []
    for attempt in range(8):
        client = Client(HTTP_USER_AGENT=BROWSER_UA, REMOTE_ADDR="198.51.100.9")
        client.cookies["ct_visitor"] = f"1|{attempt}|{attempt}|1700000000|||0:forged:signature"
        statuses.append(ask(client).status_code)
    assert statuses == [200] * 5 + [429] * 3
    assert VisitorSession.objects.count() == 5  # the refused requests stored nothing


def test_rate_limited_answers_are_cheap_and_never_cached(client, site, settings, django_assert_max_num_queries):
    settings.WAGTAIL_CALLTRACKING = {**settings.WAGTAIL_CALLTRACKING, "NUMBER_ENDPOINT_RATE_LIMIT": 1}
    ask(client)
    with django_assert_max_num_queries(0):
        limited = ask(client)
    assert limited.status_code == 429
    assert "no-store" in limited["Cache-Control"]
    assert limited["Retry-After"].isdigit()
