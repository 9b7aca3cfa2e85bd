"""Cache-safe mode: the tag renders the canonical number + data attributes + one deferred
script; the private JSON endpoint records the landing, leases and answers."""

import json

import pytest
from django.conf import settings as django_settings
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from wagtail_calltracking.models import (
    CallTrackingSiteSettings,
    Channel,
    Lease,
    PageView,
    VisitorSession,
)

from .conftest import BROWSER_UA
from .factories import make_number, make_source
from .numbers_fixtures import *  # noqa: F403 (fixtures)
from .numbers_fixtures import CANONICAL, render_through_middleware

pytestmark = pytest.mark.django_db

ENDPOINT = "/calltracking/number/"
NEWSPAPER = "+13125550142"
SCRIPT = '<script src="/static/wagtail_calltracking/js/calltracking.js" data-endpoint="/calltracking/number/" defer></script>'


@pytest.fixture
def cache_safe(settings):
    settings.WAGTAIL_CALLTRACKING = {**settings.WAGTAIL_CALLTRACKING, "CACHE_SAFE": True}


def post(client, payload, **extra):
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    return client.post(ENDPOINT, body, content_type=extra.pop("content_type", "application/json"), **extra)


def html(response):
    return response.content.decode()


# --- the tag in cache-safe mode --------------------------------------------------------------


def test_cache_safe_tag_renders_canonical_with_data_attributes_and_one_script(cache_safe, site_settings, paid_search, pool):
    response = render_through_middleware(
        "{% load calltracking %}{% tracking_number %} {% tracking_number format='international' %}"
        " {% tracking_number_script %}",
        "/?utm_source=google&utm_medium=cpc",
    )
    content = html(response)
    assert content == (
        '<a href="tel:+12125550100" class="calltracking-number" data-ct-number="" '
        'data-ct-format="national">(212) 555-0100</a>' + SCRIPT + " "
        '<a href="tel:+12125550100" class="calltracking-number" data-ct-number="" '
        'data-ct-format="international">+1 212-555-0100</a> '
    )
    assert not Lease.objects.exists()  # the page itself never carries a visitor's number
    assert "private" not in response.get("Cache-Control", "")


def test_site_setting_switches_cache_safe_mode_and_tag_overrides_it(site_settings, newspaper):
    CallTrackingSiteSettings.objects.filter(pk=site_settings.pk).update(cache_safe_mode=True)
    from wagtail_calltracking.numbers.rules import invalidate_config

    invalidate_config()
    safe = html(render_through_middleware("{% load calltracking %}{% tracking_number %}", "/?ct=newspaper"))
    assert CANONICAL in safe and "data-ct-number" in safe and NEWSPAPER not in safe
    direct = html(render_through_middleware("{% load calltracking %}{% tracking_number cache_safe=False %}", "/?ct=newspaper"))
    assert NEWSPAPER in direct and "data-ct-number" not in direct


def test_per_tag_cache_safe_and_forced_keys(site_settings, newspaper, pool):
    content = html(
        render_through_middleware(
            "{% load calltracking %}"
            '{% tracking_number cache_safe=True source="Newspaper" label="Call" %}'
            '{% tracking_number cache_safe=True pool="Online" link=False %}'
        )
    )
    assert f'data-ct-number="s:{newspaper.pk}"' in content and "data-ct-label" in content
    assert f'<span class="calltracking-number" data-ct-number="p:{pool.pk}"' in content
    assert content.count("<script") == 1


def test_script_is_small_and_dependency_free():
    from pathlib import Path

    import wagtail_calltracking

    script = Path(wagtail_calltracking.__file__).parent / "static/wagtail_calltracking/js/calltracking.js"
    source = script.read_text()
    assert len(source.encode()) < 2048
    assert "import " not in source and "require(" not in source


# --- the endpoint ----------------------------------------------------------------------------


def test_endpoint_records_the_landing_and_returns_the_static_number(client, site_settings, newspaper):
    response = post(client, {"search": "?ct=newspaper", "referrer": "", "path": "/offers/", "keys": [""]})
    assert response.status_code == 200
    number = response.json()["numbers"][""]
    assert number == {
        "e164": NEWSPAPER,
        "national": "(312) 555-0142",
        "international": "+1 312-555-0142",
        "tel_href": "tel:" + NEWSPAPER,
        "display": "(312) 555-0142",
        "is_dynamic": False,
        "kind": "static",
    }
    assert response["Cache-Control"] in ("private, no-store", "no-store, private")
    assert "Cookie" in response["Vary"]
    assert "ct_visitor" in response.cookies
    session = VisitorSession.objects.get()
    assert (session.channel, session.source, session.landing_path) == (Channel.OFFLINE, "newspaper", "/offers/")
    assert session.matched_source == newspaper
    assert not PageView.objects.filter(path=ENDPOINT).exists()


def test_endpoint_records_the_cached_pages_as_the_journey(client, site_settings, paid_search, pool):
    """Cached pages never reach the middleware: the endpoint records each page view the
    browser reports (path, query string, title), in the visitor's one session."""
    post(client, {"search": "?utm_source=google&utm_medium=cpc&utm_term=plumber", "referrer": "",
                  "path": "/", "title": "Acme Plumbing"})
    post(client, {"search": "", "referrer": "http://testserver/", "path": "/drain-cleaning/",
                  "title": "Drain cleaning <b>24/7</b>\x00"})
    session = VisitorSession.objects.get()
    views = list(session.page_views.order_by("viewed_at", "pk").values_list("path", "query", "title"))
    assert views == [
        ("/", "utm_source=google&utm_medium=cpc&utm_term=plumber", "Acme Plumbing"),
        ("/drain-cleaning/", "", "Drain cleaning <b>24/7</b>"),
    ]
    assert post(client, {"path": "/", "title": 42}).status_code == 400


def test_endpoint_leases_a_pool_number_and_keeps_it(client, site_settings, paid_search, pool):
    payload = {"search": "?utm_source=google&utm_medium=cpc&utm_term=plumber&gclid=TEST", "referrer": "https://www.google.com/", "path": "/"}
    first = post(client, payload).json()["numbers"][""]
    assert first["is_dynamic"] and first["kind"] == "dynamic"
    assert first["e164"] in set(pool.numbers.values_list("number", flat=True))
    session = VisitorSession.objects.get()
    assert session.channel == Channel.PAID_SEARCH and session.keyword == "plumber" and session.gclid == "TEST"
    assert Lease.objects.get().session == session
    # The next cached page of the same visitor (cookie kept by the client, no parameters).
    again = post(client, {"search": "", "referrer": "http://testserver/", "path": "/contact/"}).json()["numbers"][""]
    assert again["e164"] == first["e164"]
    assert VisitorSession.objects.count() == 1 and Lease.objects.count() == 1


def test_endpoint_answers_several_keys_and_ignores_garbage_keys(client, site_settings, newspaper, pool):
    keys = ["", f"s:{newspaper.pk}", f"p:{pool.pk}", "x:1", "s:abc", "<script>"]
    numbers = post(client, {"search": "", "keys": keys}).json()["numbers"]
    assert set(numbers) == {"", f"s:{newspaper.pk}", f"p:{pool.pk}"}
    assert numbers[""]["e164"] == CANONICAL
    assert numbers[f"s:{newspaper.pk}"]["e164"] == NEWSPAPER
    assert numbers[f"p:{pool.pk}"]["is_dynamic"]


def test_endpoint_refuses_anything_but_post_json(client, site_settings):
    assert client.get(ENDPOINT).status_code == 405
    assert client.post(ENDPOINT, {"search": "?ct=x"}).status_code == 415  # a cross-site form
    assert post(client, "{}", content_type="text/plain").status_code == 415
    assert post(client, "{not json").status_code == 400
    assert post(client, "[1, 2]").status_code == 400
    assert post(client, b"\xff\xfe").status_code == 400
    assert post(client, {"search": 5}).status_code == 400
    assert post(client, {"keys": "nope"}).status_code == 400
    assert post(client, {"search": "x" * 10000}).status_code == 413
    for response in (client.get(ENDPOINT), post(client, "{bad")):
        assert "no-store" in response["Cache-Control"]
    assert not VisitorSession.objects.exists()


def test_endpoint_is_csrf_exempt(site_settings, newspaper):
    client = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=BROWSER_UA)
    response = post(client, {"search": "?ct=newspaper"})
    assert response.status_code == 200 and response.json()["numbers"][""]["e164"] == NEWSPAPER


def test_endpoint_rate_limit_per_visitor(client, site_settings, settings, monkeypatch):
    from wagtail_calltracking import views

    settings.WAGTAIL_CALLTRACKING = {**settings.WAGTAIL_CALLTRACKING, "NUMBER_ENDPOINT_RATE_LIMIT": 3}
    monkeypatch.setattr(views.time, "time", lambda: 1_800_000_010.0)  # one minute window
    statuses = [post(client, {"search": ""}).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    limited = post(client, {"search": ""})
    assert limited["Retry-After"] == "50" and "no-store" in limited["Cache-Control"]
    # Another visitor (another cookie, another IP) is not limited.
    other = Client(HTTP_USER_AGENT=BROWSER_UA, REMOTE_ADDR="10.1.2.3")
    assert post(other, {"search": ""}).status_code == 200


def test_endpoint_gives_bots_the_canonical_number_and_records_nothing(site_settings, newspaper):
    bot = Client(HTTP_USER_AGENT="Mozilla/5.0 (compatible; bingbot/2.0)")
    response = post(bot, {"search": "?ct=newspaper"})
    assert response.json()["numbers"][""]["e164"] == CANONICAL
    assert not VisitorSession.objects.exists()


def test_endpoint_with_nothing_configured(client, site):
    response = post(client, {})
    assert response.status_code == 200
    assert response.json()["numbers"][""]["e164"] == ""


def test_endpoint_for_excluded_page_path_is_inert(client, site_settings, newspaper):
    response = post(client, {"search": "?ct=newspaper", "path": "/admin/pages/"})
    assert response.json()["numbers"][""]["e164"] == CANONICAL
    assert not VisitorSession.objects.exists()


def test_static_number_source_forced_via_key_is_not_personal(client, site_settings):
    radio = make_source(name="Radio", static_number=make_number(number="+13125550145"))
    numbers = post(client, {"keys": [f"s:{radio.pk}"]}).json()["numbers"]
    assert numbers[f"s:{radio.pk}"]["e164"] == "+13125550145"


@override_settings(
    WAGTAIL_CALLTRACKING={**django_settings.WAGTAIL_CALLTRACKING, "NUMBER_ENDPOINT_RATE_LIMIT": 10**6}
)
class TestEndpointFuzz(HypothesisTestCase):
    """Whatever JSON a client sends, the endpoint answers 200/400/413, never 500."""

    @classmethod
    def setUpTestData(cls):
        from wagtail.models import Site

        site = Site.objects.get(is_default_site=True)
        CallTrackingSiteSettings.objects.update_or_create(site=site, defaults={"canonical_number": CANONICAL})
        make_source(name="Newspaper", landing_parameter="newspaper", static_number=make_number(number=NEWSPAPER))

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
        max_leaves=10,
    )

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.fixed_dictionaries(
            {},
            optional={
                "search": json_values | st.text(max_size=300),
                "referrer": json_values | st.text(max_size=300),
                "path": json_values | st.text(max_size=100),
                "keys": json_values | st.lists(st.text(max_size=12), max_size=12),
                "title": json_values,
            },
        )
    )
    def test_never_a_server_error(self, payload):
        client = Client(HTTP_USER_AGENT=BROWSER_UA)
        response = client.post(ENDPOINT, json.dumps(payload), content_type="application/json")
        assert response.status_code in (200, 400, 413), response.content
        assert "no-store" in response["Cache-Control"]
