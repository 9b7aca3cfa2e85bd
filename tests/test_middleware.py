"""Visitor and session capture by CallTrackingMiddleware: behaviour and query budget."""

import time

import pytest
from django.core import signing
from django.db import connection
from django.test import AsyncClient, Client, override_settings
from django.test.utils import CaptureQueriesContext

from wagtail_calltracking.conf import ct_settings
from wagtail_calltracking.models import Channel, PageView, Visitor, VisitorSession
from wagtail_calltracking.tracking.cookie import SALT, VisitorCookie, read_cookie

from .conftest import BROWSER_UA, MOBILE_UA

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.urls")]

COOKIE = "ct_visitor"


def signed(cookie: VisitorCookie) -> str:
    return signing.get_cookie_signer(salt=COOKIE + SALT).sign(cookie.encode())


def cookie_of(client) -> VisitorCookie:
    raw = client.cookies[COOKIE].value
    return VisitorCookie.decode(signing.get_cookie_signer(salt=COOKIE + SALT).unsign(raw))


def age_cookie(client, seconds):
    """Pretend the session's activity was last written `seconds` ago."""
    cookie = cookie_of(client)
    cookie.written_at -= seconds
    client.cookies[COOKIE] = signed(cookie)
    return cookie


_NOT_WRITES = ("SELECT", "SAVEPOINT", "RELEASE", "BEGIN", "COMMIT", "SET ", "ROLLBACK")


def writes(queries):
    return [q["sql"] for q in queries if not q["sql"].lstrip().upper().startswith(_NOT_WRITES)]


def selects(queries):
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("SELECT")]


# --- the journey ----------------------------------------------------------------------------


def test_paid_search_visit_records_session_keyword_and_page_views(client):
    response = client.get(
        "/plain/?utm_source=google&utm_medium=cpc&utm_term=plumber&gclid=TEST",
        HTTP_REFERER="https://www.google.com/",
    )
    assert response.status_code == 200
    session = VisitorSession.objects.get()
    assert session.channel == Channel.PAID_SEARCH
    assert (session.source, session.medium, session.keyword, session.term) == ("google", "cpc", "plumber", "plumber")
    assert session.gclid == "TEST"
    assert session.landing_path == "/plain/"
    assert "utm_term=plumber" in session.landing_query
    assert session.referrer_domain == "google.com"
    assert (session.browser, session.os, session.device_type) == ("Chrome", "Windows", "desktop")
    assert session.ip_address == "127.0.0.1"

    client.get("/plain/?page=2")
    client.get("/form/")
    views = list(PageView.objects.filter(session=session).order_by("viewed_at", "pk"))
    assert [v.path for v in views] == ["/plain/", "/plain/", "/form/"]
    assert views[1].query == "page=2"
    assert views[0].title == "Plain & simple"
    assert VisitorSession.objects.count() == 1  # same session throughout


def test_cookie_is_signed_httponly_lax_and_secure_on_https(client):
    response = client.get("/plain/")
    morsel = response.cookies[COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Lax" and not morsel["secure"]
    assert int(morsel["max-age"]) == 365 * 86400
    assert ":" in morsel.value  # signed
    session = VisitorSession.objects.get()
    assert cookie_of(client).session_id == session.pk

    https = Client(HTTP_USER_AGENT=BROWSER_UA)
    response = https.get("/plain/", secure=True)
    assert response.cookies[COOKIE]["secure"]


@override_settings(WAGTAIL_CALLTRACKING={**ct_settings.user_settings, "VISITOR_COOKIE_NAME": "acme_v",
                                         "VISITOR_COOKIE_AGE_DAYS": 30})
def test_cookie_name_and_lifetime_are_configurable(client):
    response = client.get("/plain/")
    assert "acme_v" in response.cookies and COOKIE not in response.cookies
    assert int(response.cookies["acme_v"]["max-age"]) == 30 * 86400


def test_anonymous_visitors_get_no_django_session(client):
    response = client.get("/plain/")
    assert "sessionid" not in response.cookies


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "1|1|1|1|||0",  # unsigned
        "",
        "x" * 5000,
        "\x00\x01",
        "1|1|1|1|||0:forgedsignature",
    ],
)
def test_garbage_or_forged_cookie_is_a_new_visitor(client, value):
    client.cookies[COOKIE] = value
    response = client.get("/plain/")
    assert response.status_code == 200
    assert Visitor.objects.count() == 1 and VisitorSession.objects.count() == 1


def test_cookie_signed_with_another_key_is_ignored(client):
    other = signing.Signer(key="another-secret", salt=COOKIE + SALT).sign(VisitorCookie(1, 1, int(time.time())).encode())
    client.cookies[COOKIE] = other
    client.get("/plain/")
    assert cookie_of(client).visitor_id == Visitor.objects.get().pk


def test_cookie_for_a_deleted_session_starts_afresh(client):
    client.get("/plain/")
    old = VisitorSession.objects.get()
    Visitor.objects.all().delete()  # erased while browsing
    # The page view waits for the response: it finds the session gone and writes nothing
    # (no dangling row); the cookie cannot change any more.
    response = client.get("/plain/")
    assert response.status_code == 200 and COOKIE not in response.cookies
    assert not VisitorSession.objects.exists() and not PageView.objects.exists()
    # The next request checks the session before its response and starts afresh.
    response = client.get("/plain/")
    session = VisitorSession.objects.get()
    assert session.pk != old.pk and cookie_of(client).session_id == session.pk
    assert PageView.objects.filter(session=session).count() == 1


def test_cookie_for_a_deleted_session_is_checked_at_the_next_activity_write(client):
    """Another process served the request that found the session gone: the session's next
    activity write (at most ACTIVITY_WRITE_INTERVAL_SECONDS later) finds it gone."""
    from wagtail_calltracking.tracking.writes import missing_sessions

    client.get("/plain/")
    old = VisitorSession.objects.get()
    Visitor.objects.all().delete()
    client.get("/plain/")
    missing_sessions.discard(old.pk)  # as if it had been noticed by another process
    client.get("/plain/")
    assert not VisitorSession.objects.exists()
    age_cookie(client, 61)
    client.get("/plain/")
    assert VisitorSession.objects.get().pk != old.pk


def test_cookie_for_a_deleted_session_due_for_update_starts_afresh(client):
    client.get("/plain/")
    VisitorSession.objects.all().delete()
    age_cookie(client, 120)
    client.get("/plain/")
    assert VisitorSession.objects.count() == 1
    assert PageView.objects.count() == 1


# --- sessions like GA -----------------------------------------------------------------------


def test_inactivity_starts_a_new_session_of_the_same_visitor(client):
    client.get("/plain/?utm_source=google&utm_medium=cpc")
    age_cookie(client, 31 * 60)
    client.get("/plain/")
    sessions = list(VisitorSession.objects.order_by("started_at", "pk"))
    assert len(sessions) == 2 and sessions[0].visitor_id == sessions[1].visitor_id
    assert sessions[1].channel == Channel.DIRECT


@override_settings(WAGTAIL_CALLTRACKING={**ct_settings.user_settings, "SESSION_TIMEOUT_MINUTES": 5})
def test_session_timeout_is_configurable(client):
    client.get("/plain/")
    age_cookie(client, 6 * 60)
    client.get("/plain/")
    assert VisitorSession.objects.count() == 2


def test_new_campaign_parameters_start_a_new_session(client):
    client.get("/plain/?utm_source=google&utm_medium=cpc")
    client.get("/plain/?utm_source=google&utm_medium=cpc")  # reload: same campaign
    assert VisitorSession.objects.count() == 1
    client.get("/plain/?utm_source=newsletter&utm_medium=email")
    sessions = list(VisitorSession.objects.order_by("pk"))
    assert [s.channel for s in sessions] == [Channel.PAID_SEARCH, Channel.EMAIL]
    assert sessions[0].visitor_id == sessions[1].visitor_id


def test_referrer_change_within_a_session_keeps_the_session(client):
    client.get("/plain/", HTTP_REFERER="https://www.bing.com/search?q=plumber")
    client.get("/form/", HTTP_REFERER="https://www.facebook.com/")
    assert VisitorSession.objects.count() == 1


def test_multi_channel_sequence_and_touches(client):
    client.get("/plain/?utm_source=google&utm_medium=cpc&utm_term=boiler")
    age_cookie(client, 2 * 3600)
    client.get("/plain/", HTTP_REFERER="https://www.facebook.com/")
    age_cookie(client, 2 * 3600)
    client.get("/plain/")  # direct
    visitor = Visitor.objects.get()
    touches = list(visitor.touches())
    assert [t.channel for t in touches] == [Channel.PAID_SEARCH, Channel.ORGANIC_SOCIAL, Channel.DIRECT]
    assert visitor.first_touch.channel == Channel.PAID_SEARCH
    assert visitor.last_touch.channel == Channel.DIRECT
    # A direct visit does not overwrite the earlier campaign (GA's rule).
    assert Visitor.objects.get().last_non_direct_touch.channel == Channel.ORGANIC_SOCIAL


def test_only_direct_visits_last_non_direct_falls_back_to_last():
    visitor = Visitor.objects.create()
    VisitorSession.objects.create(visitor=visitor)
    assert visitor.last_non_direct_touch == visitor.last_touch


# --- what is captured ------------------------------------------------------------------------


def test_user_agent_parsed_once_per_session(client, monkeypatch):
    from wagtail_calltracking.tracking import context

    calls = []
    real = context.parse_user_agent
    monkeypatch.setattr(context, "parse_user_agent", lambda ua: calls.append(ua) or real(ua))
    mobile = Client(HTTP_USER_AGENT=MOBILE_UA)
    for _ in range(3):
        mobile.get("/plain/")
    assert len(calls) == 1
    assert VisitorSession.objects.get().device_type == "mobile"


@override_settings(WAGTAIL_CALLTRACKING={**ct_settings.user_settings, "PROXY_COUNT": 1,
                                         "TRUSTED_PROXIES": ["10.0.0."]})
def test_client_ip_through_trusted_proxy(client):
    client.get("/plain/", HTTP_X_FORWARDED_FOR="203.0.113.7, 10.0.0.2", REMOTE_ADDR="10.0.0.2")
    assert VisitorSession.objects.get().ip_address == "203.0.113.7"


@pytest.mark.parametrize("mode, expected", [("full", "203.0.113.7"), ("anonymised", "203.0.113.0"), ("none", None)])
def test_ip_storage_setting(client, mode, expected):
    with override_settings(WAGTAIL_CALLTRACKING={**ct_settings.user_settings, "IP_STORAGE": mode}):
        client.get("/plain/", REMOTE_ADDR="203.0.113.7")
    assert VisitorSession.objects.get().ip_address == expected


def test_ipv6_anonymised_to_48(client):
    with override_settings(WAGTAIL_CALLTRACKING={**ct_settings.user_settings, "IP_STORAGE": "anonymised"}):
        client.get("/plain/", REMOTE_ADDR="2001:db8:abcd:12::1")
    assert VisitorSession.objects.get().ip_address == "2001:db8:abcd::"


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"HTTP_CF_IPCOUNTRY": "de", "HTTP_CF_REGION": "Bavaria", "HTTP_CF_IPCITY": "Munich"},
         ("DE", "Bavaria", "Munich")),
        ({"HTTP_CF_IPCOUNTRY": "XX"}, ("", "", "")),
        ({"HTTP_CLOUDFRONT_VIEWER_COUNTRY": "US", "HTTP_CLOUDFRONT_VIEWER_COUNTRY_REGION_NAME": "Illinois",
          "HTTP_CLOUDFRONT_VIEWER_CITY": "Chicago"}, ("US", "Illinois", "Chicago")),
        ({"HTTP_X_APPENGINE_COUNTRY": "FR", "HTTP_X_APPENGINE_REGION": "idf",
          "HTTP_X_APPENGINE_CITY": "paris"}, ("FR", "idf", "paris")),
        ({"HTTP_CLOUDFRONT_VIEWER_COUNTRY": "JP", "HTTP_CLOUDFRONT_VIEWER_CITY": "K%C5%8Dbe"},
         ("JP", "", "Kōbe")),
    ],
)
def test_region_from_cdn_headers(client, headers, expected):
    client.get("/plain/", **headers)
    session = VisitorSession.objects.get()
    assert (session.country, session.region, session.city) == expected


def custom_geolocator(request, ip):
    return {"country": "ca", "region": "Ontario", "city": "Toronto"}


def failing_geolocator(request, ip):
    raise RuntimeError("geo service down")


@override_settings(WAGTAIL_CALLTRACKING={**ct_settings.user_settings, "GEOLOCATORS": [
    "tests.test_middleware.failing_geolocator", "tests.test_middleware.custom_geolocator"]})
def test_pluggable_geolocator_and_failures_are_skipped(client):
    client.get("/plain/")
    session = VisitorSession.objects.get()
    assert (session.country, session.region, session.city) == ("CA", "Ontario", "Toronto")


def test_ga_cookies_captured_at_start_or_when_they_appear(client):
    client.get("/plain/")
    assert VisitorSession.objects.get().ga_client_id == ""
    # gtag.js sets the cookies after the first page: the next page view picks them up.
    client.cookies["_ga"] = "GA1.1.1197596843.1673515099"
    client.cookies["_ga_ABC123"] = "GS2.1.s1673515099$o4$g1$t1673515200"
    with CaptureQueriesContext(connection) as ctx:
        client.get("/plain/")
    # The session update and the page view: one statement on PostgreSQL.
    assert len(writes(ctx.captured_queries)) == (1 if connection.vendor == "postgresql" else 2)
    session = VisitorSession.objects.get()
    assert session.ga_client_id == "1197596843.1673515099"
    assert session.ga_session_ids == {"G-ABC123": "1673515099"}
    with CaptureQueriesContext(connection) as ctx:
        client.get("/plain/")
    assert len(writes(ctx.captured_queries)) == 1  # captured: no more updates until due


def test_wagtail_page_recorded_with_title(client, content_page):
    client.get(content_page.url)
    view = PageView.objects.get()
    assert view.page_id == content_page.pk and view.title == "Drain cleaning"
    assert VisitorSession.objects.get().landing_page_id == content_page.pk


# --- skipped cheaply -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"HTTP_USER_AGENT": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
        {"HTTP_USER_AGENT": ""},
        {"HTTP_SEC_PURPOSE": "prefetch;prerender"},
        {"HTTP_PURPOSE": "prefetch"},
        {"HTTP_X_MOZ": "prefetch"},
    ],
)
def test_bots_and_prefetch_cost_no_query(client, kwargs):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get("/plain/", **kwargs)
    assert response.status_code == 200
    assert ctx.captured_queries == []
    assert COOKIE not in response.cookies


@pytest.mark.parametrize(
    "method, path",
    [
        ("post", "/form/"),
        ("get", "/admin/login/"),
        ("get", "/django-admin/login/"),
        ("get", "/static/app.css"),
        ("get", "/media/x.jpg"),
        ("get", "/api/data.json"),
        ("get", "/broken/"),
        ("get", "/does-not-exist/"),
        ("get", "/stream/"),
        ("get", "/go/"),
    ],
)
def test_non_page_requests_are_skipped(client, method, path):
    client.get("/plain/")  # a known visitor
    with CaptureQueriesContext(connection) as ctx:
        getattr(client, method)(path)
    assert writes(ctx.captured_queries) == [] or path == "/stream/"
    assert PageView.objects.count() == 1 or path == "/stream/"


def test_streaming_html_is_a_page_view_without_title(client):
    response = client.get("/stream/")
    assert b"".join(response.streaming_content) == b"<html><title>Stream</title></html>"
    # Recorded when the server closes the response, once the stream is sent.
    assert PageView.objects.get().title == ""


@override_settings(WAGTAIL_CALLTRACKING={**ct_settings.user_settings, "EXCLUDE_PATHS": ["/excluded/", "re:^/f.rm/$"]})
def test_configured_exclusions(client):
    with CaptureQueriesContext(connection) as ctx:
        client.get("/excluded/page/")
        client.get("/form/")
    assert ctx.captured_queries == []
    client.get("/plain/")
    assert PageView.objects.count() == 1


def test_campaign_redirect_records_the_landing_without_a_page_view(client):
    client.get("/go/?utm_source=flyer&utm_medium=print")
    session = VisitorSession.objects.get()
    assert session.channel == Channel.OFFLINE and session.landing_path == "/go/"
    assert PageView.objects.count() == 0
    client.get("/plain/")  # the redirect target: same session
    assert PageView.objects.get().session_id == session.pk


# --- consent --------------------------------------------------------------------------------


@override_settings(WAGTAIL_CALLTRACKING={**ct_settings.user_settings,
                                         "CONSENT": {"cookie": "cookie_consent", "accepted": ["yes"]}})
def test_consent_cookie_gate(client):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get("/plain/")
    assert ctx.captured_queries == [] and COOKIE not in response.cookies
    client.cookies["cookie_consent"] = "no"
    client.get("/plain/")
    assert VisitorSession.objects.count() == 0
    client.cookies["cookie_consent"] = "yes"
    client.get("/plain/")
    assert VisitorSession.objects.count() == 1
    # Consent withdrawn: the visitor cookie is deleted and nothing more is stored.
    client.cookies["cookie_consent"] = "no"
    response = client.get("/plain/")
    assert response.cookies[COOKIE].value == ""
    assert PageView.objects.count() == 1


def consent_callable(request):
    return request.GET.get("consent") == "1"


@override_settings(WAGTAIL_CALLTRACKING={**ct_settings.user_settings,
                                         "CONSENT": "tests.test_middleware.consent_callable"})
def test_consent_callable(client):
    client.get("/plain/")
    assert VisitorSession.objects.count() == 0
    client.get("/plain/?consent=1")
    assert VisitorSession.objects.count() == 1


@override_settings(WAGTAIL_CALLTRACKING={**ct_settings.user_settings, "HONOUR_GPC": True, "HONOUR_DNT": True})
def test_gpc_and_dnt_honoured_when_configured(client):
    client.get("/plain/", HTTP_SEC_GPC="1")
    client.get("/plain/", HTTP_DNT="1")
    assert VisitorSession.objects.count() == 0
    client.get("/plain/")
    assert VisitorSession.objects.count() == 1


def test_gpc_ignored_by_default(client):
    client.get("/plain/", HTTP_SEC_GPC="1")
    assert VisitorSession.objects.count() == 1


# --- async ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_async_stack_records_page_views():
    """Under ASGI the middleware runs in async mode (no pytest async plugin needed)."""
    from asgiref.sync import async_to_sync

    async def visit():
        client = AsyncClient()
        browser = {"user-agent": BROWSER_UA}
        first = await client.get("/plain/?utm_source=bing&utm_medium=cpc", headers=browser)
        await client.get("/form/", headers=browser)  # the client sends the visitor cookie back
        bot = await client.get("/plain/", headers={"user-agent": "Googlebot/2.1"})
        return first, bot

    first, bot = async_to_sync(visit)()
    assert first.status_code == 200 and bot.status_code == 200
    assert COOKIE not in bot.cookies
    session = VisitorSession.objects.get()
    assert session.channel == Channel.PAID_SEARCH
    assert list(PageView.objects.values_list("path", flat=True).order_by("pk")) == ["/plain/", "/form/"]


def test_read_cookie_rejects_oversized_values(rf):
    request = rf.get("/")
    request.COOKIES[COOKIE] = "a" * 600
    assert read_cookie(request) is None
