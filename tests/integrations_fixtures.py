"""Fixtures and row factories for the integrations tests (imported by tests/test_integrations_*)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from tests.factories import make_call, make_number, make_session, make_source
from wagtail_calltracking.models import (
    CallResult,
    CallStatus,
    CallTouch,
    CRMEndpoint,
    GA4Property,
    GoogleAdsFeed,
    PageView,
    TouchModel,
)

GCLID = "Cj0KCQjw_test-GCLID_1234567890abcdef"
CLIENT_ID = "1197596843.1673515099"
GA_SESSION = "1673515099"
MEASUREMENT_ID = "G-ABC123XYZ"


def make_attributed_call(site=None, *, started_at=None, **kwargs):
    """An answered, completed call from a Google Ads visitor who viewed three pages."""
    started_at = started_at or timezone.now() - timedelta(minutes=10)
    source = kwargs.pop("source", None)
    if source is None:
        source = make_source(
            name="Google Ads",
            site=site,
            utm_source="google",
            utm_medium="cpc",
            value=Decimal("75.00"),
            currency="usd",
        )
    session = make_session(
        site=site,
        started_at=started_at - timedelta(minutes=5),
        channel="paid_search",
        source="google",
        medium="cpc",
        campaign="spring-drains",
        keyword="emergency plumber",
        term="emergency plumber",
        landing_path="/drain-cleaning/",
        referrer_domain="www.google.com",
        gclid=kwargs.get("gclid", GCLID),
        ga_client_id=CLIENT_ID,
        ga_session_ids={MEASUREMENT_ID: GA_SESSION},
        browser="Chrome",
        os="Android",
        device_type="mobile",
        city="Springfield",
    )
    for offset, (path, title) in enumerate(
        [("/drain-cleaning/", "Drain cleaning"), ("/water-heaters/", "Water heaters"), ("/contact/", "Contact")]
    ):
        PageView.objects.create(
            session=session, path=path, title=title, viewed_at=session.started_at + timedelta(minutes=offset)
        )
    number = make_number(site=site, label="Website pool 1")
    defaults = {
        "site": site,
        "tracking_number": number,
        "to_number": number.number,
        "from_number": "+13125550100",
        "status": CallStatus.COMPLETED,
        "result": CallResult.ANSWERED,
        "started_at": started_at,
        "answered_at": started_at + timedelta(seconds=8),
        "ended_at": started_at + timedelta(seconds=8 + 184),
        "ring_seconds": 8,
        "talk_seconds": 184,
        "source": source,
        "session": session,
        "visitor": session.visitor,
        "confidence": "exact",
        "is_first_time": True,
        "gclid": GCLID,
        "ga_client_id": CLIENT_ID,
        "ga_session_ids": {MEASUREMENT_ID: GA_SESSION},
    }
    defaults.update(kwargs)
    call = make_call(**defaults)
    for model in (TouchModel.FIRST, TouchModel.LAST, TouchModel.LAST_NON_DIRECT):
        CallTouch.objects.create(
            call=call,
            model=model,
            session=session,
            channel="paid_search",
            source="google",
            medium="cpc",
            campaign="spring-drains",
            keyword="emergency plumber",
            landing_path="/drain-cleaning/",
            referrer_domain="www.google.com",
        )
    return call


@pytest.fixture
def integrations_settings(httpserver):
    """Point GA4 at the local HTTP server; fast retries and timeouts."""
    with override_settings(
        WAGTAIL_CALLTRACKING={
            **settings.WAGTAIL_CALLTRACKING,
            "GA4_ENDPOINT": httpserver.url_for("/ga").rstrip("/"),
            "HTTP_TIMEOUT_SECONDS": 1,
            "DELIVERY_MAX_ATTEMPTS": 3,
            "DELIVERY_BACKOFF_SECONDS": 30,
        }
    ):
        yield httpserver


@pytest.fixture
def ga4_property(site):
    return GA4Property.objects.create(
        site=site, name="Acme web", measurement_id=MEASUREMENT_ID, api_secret="s3cr3t-api"
    )


@pytest.fixture
def crm_endpoint(db, httpserver):
    """A CRM endpoint for every site (no dependency on Wagtail's pages: usable in
    transactional tests, which run on a flushed database)."""
    return CRMEndpoint.objects.create(
        site=None,
        name="CRM",
        url=httpserver.url_for("/crm"),
        secret="crm-signing-secret",
        on_call_started=True,
        on_call_completed=True,
        on_call_tagged=True,
    )


@pytest.fixture
def ads_feed(site):
    return GoogleAdsFeed.objects.create(
        site=site,
        name="Ads",
        time_zone="America/New_York",
        conversion_name="Phone call lead",
        min_talk_seconds=60,
        default_currency="USD",
    )
