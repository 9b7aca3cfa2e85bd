"""Consent and privacy signals across the product: without consent no cookie and no journey
are stored, static and canonical numbers are still shown (pages and cache-safe endpoint), and
dynamic numbers are shown only when ``DYNAMIC_NUMBERS_WITHOUT_CONSENT`` allows it — as a lease
bound to the page view (no session, no persistent id). IP minimisation is applied on every
path that stores an address."""

import json

import pytest
from django.conf import settings
from django.test import override_settings

from wagtail_calltracking.models import (
    Call,
    CallTouch,
    Confidence,
    Lease,
    PageView,
    TrackingNumber,
    Visitor,
    VisitorSession,
)

from .privacy_fixtures import (
    CALLER,
    CANONICAL,
    NEWSPAPER_NUMBER,
    PAID_LANDING,
    ring,
    shown_number,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_caches")]

CONSENT_GATE = {"cookie": "cookie_consent", "accepted": ["all", "analytics"]}


def calltracking_settings(**values):
    return override_settings(WAGTAIL_CALLTRACKING={**settings.WAGTAIL_CALLTRACKING, **values})


def assert_nothing_stored(response):
    assert "ct_visitor" not in response.cookies or response.cookies["ct_visitor"].value == ""
    assert Visitor.objects.count() == 0
    assert VisitorSession.objects.count() == 0
    assert PageView.objects.count() == 0


def pool_numbers(tracked):
    return set(TrackingNumber.objects.filter(pool=tracked["pool"]).values_list("number", flat=True))


# --- numbers without consent ------------------------------------------------------------------


def test_without_consent_the_canonical_number_is_shown_and_nothing_stored(client, tracked_site, home_page):
    with calltracking_settings(CONSENT=CONSENT_GATE):
        response = client.get(PAID_LANDING)
    assert response.status_code == 200
    assert shown_number(response.content) == CANONICAL
    assert_nothing_stored(response)
    assert Lease.objects.count() == 0


def test_without_consent_a_static_source_number_is_still_shown(client, tracked_site, home_page):
    with calltracking_settings(CONSENT=CONSENT_GATE):
        response = client.get("/?ct=newspaper")
    assert shown_number(response.content) == NEWSPAPER_NUMBER
    assert_nothing_stored(response)
    # It depends on how this visitor arrived: never cached for others.
    assert "private" in response["Cache-Control"]


def test_without_consent_the_landing_is_not_remembered(client, tracked_site, home_page):
    """No cookie, so the next page (without the landing parameter) shows the canonical number."""
    with calltracking_settings(CONSENT=CONSENT_GATE):
        client.get("/?ct=newspaper")
        response = client.get("/")
    assert shown_number(response.content) == CANONICAL
    assert_nothing_stored(response)


def test_dynamic_numbers_without_consent_lease_for_the_page_view_only(client, tracked_site, home_page):
    with calltracking_settings(CONSENT=CONSENT_GATE, DYNAMIC_NUMBERS_WITHOUT_CONSENT=True):
        first = client.get(PAID_LANDING)
        second = client.get(PAID_LANDING)
    numbers = [shown_number(first.content), shown_number(second.content)]
    assert set(numbers) <= pool_numbers(tracked_site)
    # Bound to one page view each: no session, and a fresh lease per page view.
    leases = list(Lease.objects.order_by("pk"))
    assert len(leases) == 2
    assert all(lease.session_id is None for lease in leases)
    assert numbers[0] != numbers[1]
    assert_nothing_stored(first)
    assert_nothing_stored(second)
    assert "private" in first["Cache-Control"]


def test_a_call_to_a_number_shown_without_consent_is_attributed_to_its_source_only(
    client, tracked_site, home_page
):
    with calltracking_settings(CONSENT=CONSENT_GATE, DYNAMIC_NUMBERS_WITHOUT_CONSENT=True):
        number = shown_number(client.get(PAID_LANDING).content)
    ring(client, number)
    call = Call.objects.get()
    assert call.confidence == Confidence.SOURCE_ONLY
    assert call.session_id is None and call.visitor_id is None
    assert call.gclid == ""  # nothing of the visit was kept to copy
    assert CallTouch.objects.filter(call=call).count() == 3


def test_consent_given_gives_a_session_number_and_the_cookie(client, tracked_site, home_page):
    client.cookies["cookie_consent"] = "analytics"
    with calltracking_settings(CONSENT=CONSENT_GATE):
        response = client.get(PAID_LANDING)
    assert shown_number(response.content) in pool_numbers(tracked_site)
    assert response.cookies["ct_visitor"].value
    lease = Lease.objects.get()
    assert lease.session_id == VisitorSession.objects.get().pk
    assert PageView.objects.count() == 1


def test_withdrawn_consent_deletes_the_cookie_and_stores_nothing_more(client, tracked_site, home_page):
    client.cookies["cookie_consent"] = "all"
    with calltracking_settings(CONSENT=CONSENT_GATE):
        client.get(PAID_LANDING)
        client.cookies["cookie_consent"] = "rejected"
        response = client.get("/")
    assert response.cookies["ct_visitor"].value == ""  # deleted
    assert PageView.objects.count() == 1
    assert shown_number(response.content) == CANONICAL


@pytest.mark.parametrize(
    ("setting", "header"),
    [("HONOUR_GPC", {"HTTP_SEC_GPC": "1"}), ("HONOUR_DNT", {"HTTP_DNT": "1"})],
)
def test_privacy_signals_act_as_a_refusal(client, tracked_site, home_page, setting, header):
    with calltracking_settings(**{setting: True}):
        response = client.get(PAID_LANDING, **header)
        static = client.get("/?ct=newspaper", **header)
    assert shown_number(response.content) == CANONICAL
    assert shown_number(static.content) == NEWSPAPER_NUMBER
    assert_nothing_stored(response)
    assert Lease.objects.count() == 0


# --- the cache-safe endpoint --------------------------------------------------------------------


def ask_endpoint(client, search="", keys=("",), **extra):
    return client.post(
        "/calltracking/number/",
        json.dumps({"search": search, "referrer": "", "path": "/", "keys": list(keys)}),
        content_type="application/json",
        **extra,
    )


def test_cache_safe_endpoint_without_consent(client, tracked_site, home_page):
    newspaper = tracked_site["newspaper"]
    with calltracking_settings(CONSENT=CONSENT_GATE):
        response = ask_endpoint(client, "?utm_source=google&utm_medium=cpc", keys=("", f"s:{newspaper.pk}"))
        landing = ask_endpoint(client, "?ct=newspaper")
    numbers = response.json()["numbers"]
    assert numbers[""]["e164"] == CANONICAL
    assert numbers[f"s:{newspaper.pk}"]["e164"] == NEWSPAPER_NUMBER
    assert landing.json()["numbers"][""]["e164"] == NEWSPAPER_NUMBER
    assert "no-store" in response["Cache-Control"]
    assert_nothing_stored(response)
    assert Lease.objects.count() == 0


def test_cache_safe_endpoint_dynamic_without_consent(client, tracked_site, home_page):
    with calltracking_settings(CONSENT=CONSENT_GATE, DYNAMIC_NUMBERS_WITHOUT_CONSENT=True):
        response = ask_endpoint(client, "?utm_source=google&utm_medium=cpc")
    number = response.json()["numbers"][""]
    assert number["is_dynamic"] is True
    assert number["e164"] in pool_numbers(tracked_site)
    assert Lease.objects.get().session_id is None
    assert_nothing_stored(response)


# --- IP minimisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "address", "stored"),
    [
        ("full", "203.0.113.77", "203.0.113.77"),
        ("anonymised", "203.0.113.77", "203.0.113.0"),
        ("anonymised", "2001:db8:abcd:12:34::1", "2001:db8:abcd::"),
        ("none", "203.0.113.77", None),
    ],
)
def test_ip_minimisation_on_pages_and_the_cache_safe_endpoint(client, tracked_site, home_page, mode, address, stored):
    with calltracking_settings(IP_STORAGE=mode):
        client.get(PAID_LANDING, REMOTE_ADDR=address)
        other = type(client)(HTTP_USER_AGENT=client.defaults["HTTP_USER_AGENT"])
        ask_endpoint(other, "?utm_source=bing&utm_medium=cpc", REMOTE_ADDR=address)
    sessions = list(VisitorSession.objects.order_by("pk"))
    assert len(sessions) == 2
    assert [session.ip_address for session in sessions] == [stored, stored]


def test_anonymised_ip_is_not_kept_anywhere_else(client, tracked_site, home_page):
    """The full address is never written: not in the session, not in the page views."""
    with calltracking_settings(IP_STORAGE="anonymised"):
        client.get(PAID_LANDING, REMOTE_ADDR="198.51.100.201")
        client.get("/", REMOTE_ADDR="198.51.100.201")
    session = VisitorSession.objects.get()
    assert session.ip_address == "198.51.100.0"
    for page_view in PageView.objects.values():
        assert "198.51.100.201" not in json.dumps(page_view, default=str)
    assert "198.51.100.201" not in json.dumps(
        VisitorSession.objects.values().get(), default=str
    )


def test_caller_is_still_recorded_and_forwarded_without_consent(client, tracked_site, home_page):
    """Consent governs the website journey; a phone call is still handled and recorded."""
    with calltracking_settings(CONSENT=CONSENT_GATE):
        client.get("/?ct=newspaper")
    answer = ring(client, NEWSPAPER_NUMBER)
    assert answer["action"] == "forward"
    call = Call.objects.get()
    assert call.from_number == CALLER
    assert call.source == tracked_site["newspaper"]
