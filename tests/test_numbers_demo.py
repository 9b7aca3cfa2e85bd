"""The example site's demo numbers: what a new user sees when following the README."""

import io

import pytest
from django.test import Client
from home.demo import numbers as demo_numbers
from home.demo import pages as demo_pages

from wagtail_calltracking.models import Lease, NumberPool, Source, TrackingNumber
from wagtail_calltracking.numbers.checks import check_number_configuration
from wagtail_calltracking.numbers.phone import parse

from .conftest import BROWSER_UA
from .numbers_fixtures import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db

PAID = "/?utm_source=google&utm_medium=cpc&utm_term=plumber&gclid=TEST"


@pytest.fixture
def demo(site):
    out = io.StringIO()
    demo_pages.load(out)
    demo_numbers.load(out)
    demo_numbers.load(out)  # idempotent
    from django.core.cache import cache

    cache.clear()
    return out.getvalue()


def visit(path, **headers):
    client = Client(HTTP_USER_AGENT=BROWSER_UA)
    response = client.get(path, follow=True, **headers)
    assert response.status_code == 200
    return response.content.decode()


def header_number(content):
    start = content.index('class="phone"')
    return content[start : content.index("</a>", start)]


def test_demo_configuration(demo):
    pool = NumberPool.objects.get(name="Online visitors")
    assert pool.numbers.filter(active=True).count() == 10
    assert set(Source.objects.values_list("name", flat=True)) == {
        "Paid search",
        "Newspaper (Spring Gazette)",
        "Billboard (Route 66)",
        "Yelp listing",
    }
    assert TrackingNumber.objects.count() == 14
    assert all(parse(n) is not None for n in TrackingNumber.objects.values_list("number", flat=True))
    assert set(TrackingNumber.objects.values_list("provider", flat=True)) == {"demo"}
    assert check_number_configuration(databases=["default"]) == []
    assert "Online visitors" in demo


def test_numbers_change_with_the_landing_url(demo):
    pool_numbers = [TrackingNumber.objects.get(number=n).national for n in demo_numbers.POOL_NUMBERS]
    paid = header_number(visit(PAID))
    assert any(n in paid for n in pool_numbers)
    assert "(217) 555-0120" in header_number(visit("/?ct=newspaper"))
    assert "(217) 555-0120" in header_number(visit("/paper/"))
    assert "(217) 555-0121" in header_number(visit("/?ct=billboard"))
    assert "(217) 555-0121" in header_number(visit("/billboard"))  # Wagtail redirect to /?ct=billboard
    assert "(217) 555-0122" in header_number(visit("/", HTTP_REFERER="https://www.yelp.com/biz/acme"))
    organic = header_number(visit("/", HTTP_REFERER="https://www.google.com/search?q=plumber"))
    assert any(n in organic for n in pool_numbers)
    assert "(217) 555-0100" in header_number(visit("/"))  # direct: the canonical number
    assert Lease.objects.count() == 2
