"""Stored and reflected XSS, end to end: script payloads arrive the way an attacker would send
them — in a landing URL's utm values, the Referer and User-Agent headers, a page title, the
caller name of a telephony webhook, a CRM's error response — and every admin screen of the app
(enumerated from the registered viewsets, so later screens are covered too) shows them
escaped. Search and filter parameters are reflected escaped as well."""

from urllib.parse import quote

import pytest
from django.urls import reverse
from werkzeug import Response

from wagtail_calltracking.models import (
    Call,
    CRMEndpoint,
    Delivery,
    GA4Property,
    GoogleAdsFeed,
    Manager,
    NumberPool,
    PageView,
    Source,
    TrackingNumber,
    VisitorSession,
)

from .admin_fixtures import make_admin_user, make_manager
from .conftest import BROWSER_UA
from .factories import make_number
from .hostile_helpers import ATTRIBUTE, SCRIPT, admin_screens, assert_escaped
from .privacy_fixtures import CALLER, demo_post, shown_number

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_caches")]

ESCAPED_SCRIPT = "&lt;script&gt;alert(&quot;ct-xss&quot;)&lt;/script&gt;"


@pytest.fixture
def hostile_world(client, tracked_site, home_page, httpserver, django_capture_on_commit_callbacks, settings):
    from home.models import ContentPage

    site = tracked_site["site"]
    page = home_page.add_child(instance=ContentPage(title=SCRIPT, slug="hostile", intro=ATTRIBUTE))
    landing = (
        f"/hostile/?utm_source={quote(SCRIPT)}&utm_medium=cpc&utm_campaign={quote(ATTRIBUTE)}"
        f"&utm_term={quote(SCRIPT)}&utm_content={quote(ATTRIBUTE)}&gclid=G-XSS"
    )
    response = client.get(
        landing, HTTP_REFERER=f"https://evil.example/{ATTRIBUTE}", HTTP_USER_AGENT=f"{BROWSER_UA} {SCRIPT}"
    )
    assert response.status_code == 200
    number = shown_number(response.content)

    httpserver.expect_request("/crm").respond_with_response(Response(SCRIPT, status=500))
    settings.WAGTAIL_CALLTRACKING = {**settings.WAGTAIL_CALLTRACKING, "HTTP_TIMEOUT_SECONDS": 2}
    CRMEndpoint.objects.create(site=site, name=SCRIPT, url=httpserver.url_for("/crm"), secret="crm-signing-secret-xss",
                               on_call_started=True, on_call_completed=True)
    make_manager(SCRIPT, extension="201")
    with django_capture_on_commit_callbacks(execute=True):
        demo_post(client, "voice", {"call_id": "xss-1", "from": CALLER, "to": number, "caller_name": SCRIPT})
    with django_capture_on_commit_callbacks(execute=True):
        demo_post(client, "status", {"event": "completed", "call_id": "xss-1", "result": "answered",
                                     "talk_seconds": 40, "agent": "201",
                                     "recording_url": f"https://recordings.example.com/{ATTRIBUTE}"})
    call = Call.objects.get(provider_call_id="xss-1")
    call.note = SCRIPT
    call.save(update_fields=["note"])
    TrackingNumber.objects.filter(pk=call.tracking_number_id).update(label=SCRIPT)
    NumberPool.objects.filter(pk=tracked_site["pool"].pk).update(name=SCRIPT)
    Source.objects.filter(pk=tracked_site["newspaper"].pk).update(name=SCRIPT)
    static = make_number(label=ATTRIBUTE, site=site)
    Source.objects.create(name=ATTRIBUTE, static_number=static, utm_campaign="x")
    GA4Property.objects.create(site=site, name=SCRIPT, measurement_id="G-XSS123", api_secret=ATTRIBUTE)
    GoogleAdsFeed.objects.create(site=site, name=SCRIPT, conversion_name=SCRIPT)
    return {"call": call, "page": page}


def test_the_payloads_were_stored_as_sent(hostile_world):
    """The attack reached the database through the real input paths (so the screens below
    really render it)."""
    session = VisitorSession.objects.get()
    assert session.source == SCRIPT.lower() or session.source == SCRIPT
    assert ATTRIBUTE in session.referrer
    assert SCRIPT in session.user_agent
    assert PageView.objects.filter(title=SCRIPT).exists()
    call = hostile_world["call"]
    assert call.caller_name == SCRIPT
    assert call.manager.name == SCRIPT
    assert Delivery.objects.filter(last_response__contains="<script>").exists()


def test_every_admin_screen_escapes_the_payloads(client, hostile_world):
    client.force_login(make_admin_user(superuser=True))
    call = hostile_world["call"]
    objects = {
        Call: call,
        Source: Source.objects.get(name=SCRIPT),
        TrackingNumber: call.tracking_number,
        NumberPool: call.tracking_number.pool,
        Manager: Manager.objects.get(name=SCRIPT),
        CRMEndpoint: CRMEndpoint.objects.get(),
        GA4Property: GA4Property.objects.get(),
        GoogleAdsFeed: GoogleAdsFeed.objects.get(),
        Delivery: Delivery.objects.filter(last_response__contains="<script>").first(),
        None: None,
    }
    rendered = 0
    for name, url in admin_screens(objects):
        response = client.get(url)
        assert response.status_code in (200, 302), (name, response.status_code)
        if response.status_code == 200 and response["Content-Type"].startswith("text/html"):
            assert_escaped(response.content.decode(), name)
            rendered += 1
    assert rendered >= 40
    for name in ("wagtailadmin_home",):
        assert_escaped(client.get(reverse(name)).content.decode(), name)


def test_call_detail_and_delivery_log_show_the_payloads_as_text(client, hostile_world):
    client.force_login(make_admin_user(superuser=True))
    call = hostile_world["call"]
    detail = client.get(reverse("wagtail_calltracking_calls:inspect", args=[call.pk])).content.decode()
    assert_escaped(detail)
    assert detail.count(ESCAPED_SCRIPT) >= 3  # caller name, page title, utm values, note…
    delivery = Delivery.objects.filter(last_response__contains="<script>").first()
    log = client.get(reverse("wagtail_calltracking_deliveries:inspect", args=[delivery.pk])).content.decode()
    assert_escaped(log)
    assert ESCAPED_SCRIPT in log


@pytest.mark.parametrize("parameter", ["q", "source", "channel", "group_by", "attribution", "date_from", "status"])
def test_search_and_filters_reflect_escaped(client, hostile_world, parameter):
    client.force_login(make_admin_user(superuser=True))
    for name in (
        "wagtail_calltracking_calls:index",
        "wagtail_calltracking_calls:index_results",
        "wagtail_calltracking_report_sources:index",
        "wagtail_calltracking_report_managers:index",
        "wagtail_calltracking_deliveries:index",
        "wagtail_calltracking_sources:index",
        "wagtail_calltracking_numbers:index",
    ):
        response = client.get(reverse(name), {parameter: SCRIPT})
        assert response.status_code in (200, 400), (name, response.status_code)
        assert_escaped(response.content.decode(), f"{name}?{parameter}")


def test_erasure_screen_escapes_what_it_is_given(client, hostile_world):
    client.force_login(make_admin_user(superuser=True))
    url = reverse("wagtail_calltracking_erasure:index")
    for data in ({"phone_numbers": SCRIPT}, {"visitor_ids": ATTRIBUTE}, {"phone_numbers": CALLER, "follow_links": "on"}):
        assert_escaped(client.post(url, data).content.decode(), str(data))
    assert_escaped(client.get(url, {"call": hostile_world["call"].pk}).content.decode())
