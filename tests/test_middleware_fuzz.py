"""Hostile input at the middleware: random query strings, cookies and headers never cause a
5xx, and whatever is stored fits its column and contains no NUL or control characters."""

import string

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wagtail_calltracking.models import PageView, VisitorSession

from .conftest import BROWSER_UA

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.urls")]

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

KEYS = st.sampled_from(
    ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "gclid", "fbclid", "msclkid",
     "ct", "q", "page", "UTM_SOURCE", "", "%00", "a[b]"]
)
# Arbitrary code points, including NUL, surrogates escaped via percent-encoding, and huge values.
VALUES = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=string.printable, min_size=200, max_size=3000),
    st.binary(max_size=30).map(lambda b: "".join(f"%{x:02X}" for x in b)),
)
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=600)


def _query(pairs):
    return "&".join(f"{k}={v}" for k, v in pairs)


def _stored_strings_are_clean():
    for session in VisitorSession.objects.all():
        for field in session._meta.concrete_fields:
            value = getattr(session, field.attname)
            if isinstance(value, str):
                assert "\x00" not in value and "\n" not in value
                if getattr(field, "max_length", None):
                    assert len(value) <= field.max_length, field.name
    for view in PageView.objects.all():
        assert len(view.path) <= 2048 and len(view.query) <= 2048 and "\x00" not in view.query


@FUZZ
@given(pairs=st.lists(st.tuples(KEYS, VALUES), max_size=8), referrer=HEADER_TEXT)
def test_random_query_strings_and_referrers(pairs, referrer):
    client = Client(HTTP_USER_AGENT=BROWSER_UA)
    response = client.get("/plain/?" + _query(pairs), HTTP_REFERER=referrer)
    assert response.status_code < 500
    _stored_strings_are_clean()


@FUZZ
@given(raw_query=st.binary(max_size=500))
def test_raw_bytes_query_string(raw_query):
    client = Client(HTTP_USER_AGENT=BROWSER_UA)
    # QUERY_STRING as WSGI delivers undecodable bytes (latin-1 str of arbitrary bytes).
    response = client.get("/plain/", QUERY_STRING=raw_query.decode("latin-1"))
    assert response.status_code < 500
    _stored_strings_are_clean()


@FUZZ
@given(cookie=HEADER_TEXT, ga=HEADER_TEXT, ga_container=HEADER_TEXT)
def test_random_cookies(cookie, ga, ga_container):
    client = Client(HTTP_USER_AGENT=BROWSER_UA)
    header = f"ct_visitor={cookie}; _ga={ga}; _ga_ABC123={ga_container}"
    response = client.get("/plain/", HTTP_COOKIE=header)
    assert response.status_code < 500
    response = client.get("/form/")
    assert response.status_code < 500
    _stored_strings_are_clean()


@FUZZ
@given(
    ua=HEADER_TEXT,
    forwarded=HEADER_TEXT,
    country=HEADER_TEXT,
    city=HEADER_TEXT,
    host_suffix=st.text(alphabet=string.ascii_letters + string.digits + "-.:", max_size=30),
)
def test_random_headers(ua, forwarded, country, city, host_suffix):
    client = Client()
    response = client.get(
        "/plain/",
        HTTP_USER_AGENT=BROWSER_UA + ua,
        HTTP_X_FORWARDED_FOR=forwarded,
        HTTP_CF_IPCOUNTRY=country,
        HTTP_CF_IPCITY=city,
        HTTP_CLOUDFRONT_VIEWER_CITY=city,
        HTTP_HOST="testserver",
        HTTP_X_FORWARDED_HOST="evil" + host_suffix,
    )
    assert response.status_code < 500
    _stored_strings_are_clean()


def test_header_injection_in_values_is_not_reflected(client):
    response = client.get(
        "/plain/?utm_source=x%0d%0aSet-Cookie:%20evil=1",
        HTTP_REFERER="https://evil.test/\r\nX-Injected: 1",
    )
    assert response.status_code == 200
    assert "evil" not in response.cookies
    assert not response.has_header("X-Injected")
    session = VisitorSession.objects.get()
    assert "\r" not in session.source and "\n" not in session.referrer
