"""Fixtures and helpers of the numbers tests (pools, sources, site settings, rendering)."""

from datetime import timedelta

import pytest
from django.core.cache import caches
from django.core.signals import request_finished
from django.db import close_old_connections
from django.http import HttpResponse
from django.template import engines
from django.test import RequestFactory
from django.utils import timezone

from wagtail_calltracking.conf import ct_settings
from wagtail_calltracking.middleware import CallTrackingMiddleware
from wagtail_calltracking.models import (
    CallTrackingSiteSettings,
    Lease,
    NumberPool,
    PoolAudience,
)
from wagtail_calltracking.numbers.rules import PoolConfig, build_config

from .conftest import BROWSER_UA
from .factories import make_number, make_pool, make_session, make_source

CANONICAL = "+12125550100"
FALLBACK_FORWARD = "+12125550199"


@pytest.fixture(autouse=True)
def clear_config_cache():
    caches[ct_settings.CACHE_ALIAS].clear()
    yield
    caches[ct_settings.CACHE_ALIAS].clear()


@pytest.fixture
def site_settings(site):
    settings_row, _ = CallTrackingSiteSettings.objects.update_or_create(
        site=site,
        defaults={"canonical_number": CANONICAL, "fallback_forward_to": FALLBACK_FORWARD},
    )
    return settings_row


@pytest.fixture
def pool(site):
    return make_pool(size=3, site=site, name="Online", audience=PoolAudience.SOURCES)


@pytest.fixture
def all_visitors_pool(site):
    return make_pool(size=3, site=site, name="Everyone", audience=PoolAudience.ALL)


@pytest.fixture
def newspaper(site):
    number = make_number(number="+13125550142", label="Newspaper ad", site=site)
    return make_source(name="Newspaper", site=site, landing_parameter="newspaper", static_number=number)


@pytest.fixture
def paid_search(site, pool):
    return make_source(
        name="Paid search", site=site, channel="paid_search", utm_source="google", pool=pool
    )


def pool_config(pool: NumberPool) -> PoolConfig:
    """The cached form of ``pool`` (what leasing receives from the tag)."""
    return build_config(pool.site_id).pools[pool.pk]


def session(**fields):
    return make_session(**fields)


def minutes(n):
    return timedelta(minutes=n)


def now():
    return timezone.now()


def live_leases(pool):
    return Lease.objects.filter(pool=pool, released_at__isnull=True)


def render_through_middleware(template_source, path="/", *, cookies=None, user_agent=BROWSER_UA, **extra):
    """Render ``template_source`` inside the real middleware for a GET of ``path`` and return
    the response (with ``response.request`` for inspection)."""
    factory = RequestFactory(HTTP_USER_AGENT=user_agent)
    request = factory.get(path, **extra)
    if cookies:
        request.COOKIES.update(cookies)
    template = engines["django"].from_string(template_source)

    def view(req):
        return HttpResponse(template.render({}, req))

    response = CallTrackingMiddleware(view)(request)
    response.wsgi_request = request
    close_like_a_server(response)
    return response


def close_like_a_server(response):
    """Close ``response`` as a server does once it has sent it (the page view is written then),
    without closing the test's database connection (as Django's test client does)."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def cookies_of(response):
    return {name: morsel.value for name, morsel in response.cookies.items() if morsel.value}
