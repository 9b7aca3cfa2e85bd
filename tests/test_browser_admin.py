"""The whole story in a real browser (Debian's headless Chromium through Playwright):

1. a visitor lands from a paid-search ad URL and sees a number from the pool;
2. that number is called through the demo telephony provider (real HTTP webhooks to the
   live server: incoming call, then completion);
3. an editor (a non-superuser in a group with "view calls" and "tag calls") logs in, opens
   the dashboard, the calls listing and the call's page, and finds the keyword and the
   visitor's page-by-page journey; then tags the call as a lead.

Screenshots of every admin screen (light and dark) are saved in ``test-artifacts/``.
"""

import json
import re
import urllib.request
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connections

from wagtail_calltracking.models import (
    Call,
    CallResult,
    CallTrackingSiteSettings,
    Channel,
    Confidence,
    NumberPool,
    PoolAudience,
    Source,
    TrackingNumber,
)

from .admin_fixtures import CONFIGURE, TAG_CALLS, make_admin_user
from .browser import launch, require_chromium, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LANDING = "/?utm_source=google&utm_medium=cpc&utm_term=plumber&gclid=TEST"
CALLER = "+13125550142"


@pytest.fixture
def tracked_site(transactional_db, site, content_page):
    """A pool of numbers for paid search, and somewhere to forward calls to."""
    pool = NumberPool.objects.create(name="Paid search", audience=PoolAudience.SOURCES, site=site)
    for index in range(3):
        TrackingNumber.objects.create(number=f"+1212200{7000 + index}", pool=pool, provider="demo",
                                      site=site)
    Source.objects.create(name="Google Ads", channel=Channel.PAID_SEARCH, pool=pool, site=site)
    CallTrackingSiteSettings.objects.update_or_create(
        site=site, defaults={"canonical_number": "+12125550100", "fallback_forward_to": "+13125550199"}
    )
    return pool


def post_json(url, document):
    request = urllib.request.Request(
        url, data=json.dumps(document).encode(), headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # the live server, on loopback
        return response.status, json.loads(response.read() or b"{}")


def test_paid_search_visit_call_and_editor_story(live_server, tracked_site, content_page,
                                                 monkeypatch):
    require_chromium()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM checks below are plain
    # synchronous queries (the live server handles the browser's requests in its own thread).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    editor = make_admin_user(TAG_CALLS, username="editor")
    with sync_playwright() as playwright:
        browser, visitor_context = launch(playwright)
        try:
            # 1. The visitor lands from the ad and sees a pool number; reads a second page.
            visitor = visitor_context.new_page()
            visitor.goto(live_server.url + LANDING)
            link = visitor.locator("a.calltracking-number").first
            link.wait_for()
            tel = link.get_attribute("href")
            assert tel.startswith("tel:+")
            dialled = tel.removeprefix("tel:")
            assert TrackingNumber.objects.filter(pool=tracked_site, number=dialled).exists()
            screenshot(visitor, "visitor-landing")
            visitor.goto(live_server.url + content_page.url)
            assert visitor.locator("a.calltracking-number").first.get_attribute("href") == tel

            # 2. The phone rings: the README's `manage.py calltracking_simulate_call`, through
            # the demo provider's voice and status webhooks; then the same provider over HTTP
            # (the live server's URLs), for a second, missed call.
            output = StringIO()
            call_command("calltracking_simulate_call", "--to", dialled, "--from", CALLER,
                         "--result", "answered", "--duration", "154", "--ring", "6",
                         "--call-id", "browser-story-1", stdout=output)
            assert "Paid search" in output.getvalue() and "plumber" in output.getvalue()
            status, answer = post_json(
                live_server.url + "/calltracking/webhooks/demo/voice/",
                {"call_id": "browser-story-2", "from": "+13125550143", "to": dialled},
            )
            assert status == 200 and answer["action"] == "forward"
            status, _ = post_json(
                live_server.url + "/calltracking/webhooks/demo/status/",
                {"event": "completed", "call_id": "browser-story-2", "result": "missed",
                 "ring_seconds": 25},
            )
            assert status == 200
            call = Call.objects.get(provider_call_id="browser-story-1")
            assert call.result == CallResult.ANSWERED
            assert call.confidence == Confidence.EXACT and call.session.keyword == "plumber"

            # 3. The editor's side.
            editor_context = browser.new_context(viewport={"width": 1400, "height": 1400})
            page = editor_context.new_page()
            _log_in(page, live_server.url, editor.username)

            panel = page.locator("#calltracking-dashboard-section, [id^=calltracking-dashboard]").first
            panel.wait_for()
            assert page.locator("svg.ct-chart").count() == 1
            assert page.locator(".ct-chart__bar.ct-series--paid_search").count() >= 1
            assert "google" in page.locator(".ct-top-sources").inner_text()
            screenshot(page, "admin-dashboard")

            page.click("text=Call tracking")
            page.click("a[href='/admin/calltracking/calls/']")
            page.wait_for_url(re.compile(r"/admin/calltracking/calls/$"))
            rows = page.locator("#listing-results table.listing > tbody > tr")
            assert rows.count() == 2
            row = rows.filter(has_text="2:34")  # the answered call's talk time
            assert "plumber" in row.inner_text() and "Paid search" in row.inner_text()
            screenshot(page, "admin-calls")

            row.locator("td.title a").click()
            page.wait_for_url(re.compile(rf"/admin/calltracking/calls/{call.pk}/$"))
            body = page.locator("main").inner_text()
            assert "plumber" in body and "TEST" in body  # keyword and gclid
            journey = page.locator("details.ct-journey[open]")
            assert journey.count() == 1
            journey_text = journey.inner_text()
            assert content_page.title in journey_text and content_page.url in journey_text
            assert "+0:00" in journey_text  # page-by-page, timed from the landing
            screenshot(page, "admin-call-detail")

            # Tag the call as a lead with a value.
            page.select_option("#id_tag", "lead")
            page.fill("#id_value", "350")
            page.fill("#id_note", "Booked a water heater repair")
            page.click("text=Save classification")
            page.wait_for_url(re.compile(rf"/admin/calltracking/calls/{call.pk}/$"))
            assert "Call classification saved" in page.locator("body").inner_text()
            call.refresh_from_db()
            assert (call.tag, int(call.value)) == ("lead", 350)

            # The reports.
            page.goto(live_server.url + "/admin/calltracking/reports/sources/?group_by=keyword")
            report = page.locator("#listing-results table.listing > tbody").inner_text()
            assert "plumber" in report
            screenshot(page, "admin-report-keywords")
            page.goto(live_server.url + "/admin/calltracking/reports/managers/")
            screenshot(page, "admin-report-managers")
            page.goto(live_server.url + "/admin/calltracking/reports/pools/")
            assert "Paid search" in page.locator("#listing-results").inner_text()
            screenshot(page, "admin-report-pool-health")
            # Configuration is not this editor's business.
            page.goto(live_server.url + "/admin/calltracking/pools/")
            assert page.url.rstrip("/").endswith("/admin")

            # Someone who configures numbers, on their screens.
            configurator = make_admin_user(CONFIGURE, username="configurator")
            setup = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
            _log_in(setup, live_server.url, configurator.username)
            for name, path in (("sources", "sources/"), ("numbers", "numbers/"), ("pools", "pools/"),
                               ("pool-edit", f"pools/edit/{tracked_site.pk}/"),
                               ("managers", "managers/")):
                setup.goto(f"{live_server.url}/admin/calltracking/{path}")
                assert setup.url.endswith(f"/admin/calltracking/{path}"), setup.url
                screenshot(setup, f"admin-config-{name}")
            # The pool's numbers are edited inline: "Add a number" adds a row.
            setup.goto(f"{live_server.url}/admin/calltracking/pools/edit/{tracked_site.pk}/")
            rows = setup.locator("[data-ct-formset-rows] > tr")
            assert rows.count() == 3
            setup.click("[data-ct-formset-add]")
            assert rows.count() == 4
            setup.locator("[data-ct-formset-rows] > tr").last.locator("input[name$='-number']").fill(
                "+1 212 200 7003"
            )
            setup.click("button[type=submit]:has-text('Save')")
            setup.wait_for_url(re.compile(r"/admin/calltracking/pools/$"))
            assert tracked_site.numbers.count() == 4

            # The same screens in the admin's dark theme.
            dark_context = browser.new_context(viewport={"width": 1400, "height": 1400},
                                               color_scheme="dark")
            dark = dark_context.new_page()
            _log_in(dark, live_server.url, editor.username)
            dark.locator("svg.ct-chart").wait_for()
            label_colour = dark.locator(".ct-chart__label").first.evaluate(
                "element => getComputedStyle(element).fill"
            )
            bar_colour = dark.locator(".ct-chart__bar.ct-series--paid_search").first.evaluate(
                "element => getComputedStyle(element).fill"
            )
            assert _luminance(label_colour) > 0.5, label_colour  # light text on a dark surface
            assert bar_colour == "rgb(116, 173, 255)", bar_colour  # the dark-theme tone
            screenshot(dark, "admin-dashboard-dark")
            dark.goto(live_server.url + f"/admin/calltracking/calls/{call.pk}/")
            screenshot(dark, "admin-call-detail-dark")
        finally:
            browser.close()
            # Inside Playwright's event loop the ORM runs in its own context, with its own
            # database connections: close them here, or the test database cannot be dropped.
            connections.close_all()


def _log_in(page, base_url, username):
    page.goto(base_url + "/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "password")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))


def _luminance(css_colour):
    red, green, blue = (int(value) for value in re.findall(r"\d+", css_colour)[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255
