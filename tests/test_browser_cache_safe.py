"""Cache-safe mode in a real headless Chromium (Debian's, through Playwright).

A CDN serves one HTML to everyone and strips utm parameters before Django sees them. Here the
"CDN" is a Playwright route that answers every page request with the HTML Django rendered
once for somebody else. The deferred script must still get each visitor their own number
from the private endpoint (it posts ``location.search`` and ``document.referrer``), swap only
the tagged elements, keep their width, and leave the canonical (NAP) number alone.
"""

import re

import pytest

from wagtail_calltracking.models import (
    CallTrackingSiteSettings,
    Channel,
    Lease,
    NumberPool,
    PoolAudience,
    Source,
    TrackingNumber,
    VisitorSession,
)

from .browser import launch, require_chromium, screenshot
from .conftest import BROWSER_UA

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CANONICAL = "+12125550100"
NEWSPAPER = "+13125550142"
NUMBER = "header .phone [data-ct-number]"


@pytest.fixture
def cache_safe_site(transactional_db, site, home_page, settings):
    settings.WAGTAIL_CALLTRACKING = {**settings.WAGTAIL_CALLTRACKING, "CACHE_SAFE": True}
    pool = NumberPool.objects.create(name="Paid search", audience=PoolAudience.SOURCES, site=site)
    for index in range(3):
        TrackingNumber.objects.create(number=f"+1212200{7100 + index}", pool=pool, provider="demo")
    Source.objects.create(name="Google Ads", channel=Channel.PAID_SEARCH, pool=pool, site=site)
    paper = TrackingNumber.objects.create(number=NEWSPAPER, provider="demo", site=site)
    Source.objects.create(name="Newspaper", landing_parameter="newspaper", static_number=paper, site=site)
    CallTrackingSiteSettings.objects.update_or_create(site=site, defaults={"canonical_number": CANONICAL})
    return pool


def cdn(context, cached_html):
    """Serve ``cached_html`` for every page request, as a CDN with one cached copy would
    (scripts, styles and the number endpoint still reach the origin)."""

    def handle(route):
        if route.request.resource_type == "document":
            route.fulfill(status=200, content_type="text/html; charset=utf-8", body=cached_html)
        else:
            route.continue_()

    context.route(re.compile(r".*"), handle)


def swapped(page):
    page.wait_for_selector(f"{NUMBER}[data-ct-swapped]", timeout=10000)
    element = page.locator(NUMBER)
    return {
        "text": element.inner_text(),
        "href": element.get_attribute("href"),
        "kind": element.get_attribute("data-ct-swapped"),
        "width": element.evaluate("el => el.getBoundingClientRect().width"),
        "min_width": element.evaluate("el => parseFloat(el.style.minWidth)"),
    }


def test_cached_page_gets_each_visitor_their_number(cache_safe_site, live_server, monkeypatch):
    require_chromium()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop in this thread
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser, first_context = launch(playwright)
        try:
            # Django renders the page once (cache-safe: canonical number + script)…
            page = first_context.new_page()
            page.route("**/calltracking.js", lambda route: route.abort())  # the raw HTML first
            page.goto(live_server.url + "/")
            cached_html = page.content()
            canonical_width = page.locator(NUMBER).evaluate("el => el.getBoundingClientRect().width")
            assert page.locator(NUMBER).inner_text() == "(212) 555-0100"
            assert cached_html.count("calltracking.js") == 1
            page.close()

            # …and the "CDN" serves that same HTML to a paid-search visitor (utm stripped
            # before Django: only the browser still knows them).
            ad_context = browser.new_context(user_agent=BROWSER_UA)
            cdn(ad_context, cached_html)
            ad_page = ad_context.new_page()
            ad_page.goto(live_server.url + "/?utm_source=google&utm_medium=cpc&utm_term=plumber&gclid=TEST")
            ad = swapped(ad_page)
            pool_numbers = dict(
                TrackingNumber.objects.filter(pool=cache_safe_site).values_list("number", "id")
            )
            assert ad["kind"] == "dynamic"
            assert ad["href"].removeprefix("tel:") in pool_numbers
            assert re.fullmatch(r"\(212\) 200-71\d\d", ad["text"])
            assert ad["min_width"] == pytest.approx(canonical_width, abs=0.5)
            assert ad["width"] >= canonical_width - 0.5  # no layout shift
            # Only tagged elements change: the NAP line keeps the canonical number.
            assert "Main line: (212) 555-0100" in ad_page.inner_text("footer")
            assert CANONICAL in ad_page.inner_html("script[type='application/ld+json']")
            screenshot(ad_page, "cache_safe_paid_search")

            # A newspaper reader gets the same cached HTML and the newspaper's number.
            paper_context = browser.new_context(user_agent=BROWSER_UA)
            cdn(paper_context, cached_html)
            paper_page = paper_context.new_page()
            paper_page.goto(live_server.url + "/?ct=newspaper")
            paper = swapped(paper_page)
            assert (paper["text"], paper["href"], paper["kind"]) == ("(312) 555-0142", "tel:" + NEWSPAPER, "static")

            # The paid-search visitor moves on to another cached page: same number.
            ad_page.goto(live_server.url + "/drain-cleaning/")
            assert swapped(ad_page)["href"] == ad["href"]
        finally:
            browser.close()

    sessions = VisitorSession.objects.order_by("pk")
    assert [s.channel for s in sessions if s.channel != Channel.DIRECT] == [Channel.PAID_SEARCH, Channel.OFFLINE]
    paid = sessions.get(channel=Channel.PAID_SEARCH)
    assert paid.keyword == "plumber" and paid.gclid == "TEST"
    assert Lease.objects.filter(session=paid).count() == 1
