"""Google Ads click conversions: rows, rules per source, the authenticated CSV feed."""

import base64
import csv
import io
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.factories import make_source
from tests.integrations_fixtures import GCLID, make_attributed_call
from wagtail_calltracking.integrations import google_ads
from wagtail_calltracking.models import (
    Call,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    GoogleAdsFeed,
    GoogleAdsSourceRule,
)
from wagtail_calltracking.signals import call_completed, call_tagged

pytestmark = pytest.mark.django_db

GBRAID = "0AAAAAoq_gbraid-TEST123"
WBRAID = "ClkKCQjw_wbraid-TEST456"


def complete(call, capture):
    with capture(execute=True):
        call_completed.send(sender=Call, call=call)
    return Delivery.objects.get(call=call, kind=DeliveryKind.GOOGLE_ADS)


def feed_url(feed):
    return reverse("wagtail_calltracking:google_ads_feed", args=[feed.feed_token])


def parse(content: bytes):
    text = content.decode()
    first, rest = text.split("\r\n", 1)
    return first, list(csv.reader(io.StringIO(rest)))


def test_feed_in_googles_template(client, site, ads_feed, django_capture_on_commit_callbacks):
    call = make_attributed_call(site)
    row = complete(call, django_capture_on_commit_callbacks)
    assert row.status == DeliveryStatus.AWAITING_FETCH

    response = client.get(feed_url(ads_feed))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "no-store" in response["Cache-Control"]
    first, rows = parse(response.content)
    assert first == "Parameters:TimeZone=America/New_York"
    assert rows[0] == [
        "Google Click ID",
        "Conversion Name",
        "Conversion Time",
        "Conversion Value",
        "Conversion Currency",
    ]
    local = timezone.localtime(call.started_at, timezone=__import__("zoneinfo").ZoneInfo("America/New_York"))
    assert rows[1] == [GCLID, "Phone call lead", local.strftime("%Y-%m-%d %H:%M:%S"), "75.00", "USD"]
    assert len(rows) == 2


def test_fetch_marks_rows_delivered_and_keeps_listing_them(client, site, ads_feed, django_capture_on_commit_callbacks):
    row = complete(make_attributed_call(site), django_capture_on_commit_callbacks)
    # A HEAD (reachability check) is not a fetch.
    assert client.head(feed_url(ads_feed)).status_code == 200
    row.refresh_from_db()
    assert row.status == DeliveryStatus.AWAITING_FETCH

    client.get(feed_url(ads_feed))
    row.refresh_from_db()
    ads_feed.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED
    assert row.delivered_at is not None
    assert ads_feed.last_fetched_at is not None
    # Still listed: Google de-duplicates identical rows, and a failed import can be retried.
    _, rows = parse(client.get(feed_url(ads_feed)).content)
    assert len(rows) == 2


def test_rows_older_than_the_window_leave_the_feed(client, site, ads_feed, django_capture_on_commit_callbacks):
    complete(
        make_attributed_call(site, started_at=timezone.now() - timedelta(days=61)), django_capture_on_commit_callbacks
    )
    complete(
        make_attributed_call(site, started_at=timezone.now() - timedelta(days=59)), django_capture_on_commit_callbacks
    )
    _, rows = parse(client.get(feed_url(ads_feed)).content)
    assert len(rows) == 2  # header + the recent one


@pytest.mark.parametrize(
    "ids, expected",
    [
        ({"gclid": GCLID, "gbraid": GBRAID, "wbraid": WBRAID}, GCLID),
        ({"gclid": "", "gbraid": GBRAID, "wbraid": WBRAID}, WBRAID),
        ({"gclid": "", "gbraid": GBRAID, "wbraid": ""}, GBRAID),
    ],
)
def test_one_click_id_per_row_never_combined(site, ads_feed, ids, expected):
    call = make_attributed_call(site, **ids)
    call.session.gclid = ids["gclid"]
    call.session.save()
    row = google_ads.build_row(ads_feed, Call.objects.select_related("session", "source").get(pk=call.pk))
    assert row["click_id"] == expected
    rendered = google_ads.render_csv(ads_feed, [Delivery(payload=row)])
    for other in {GCLID, GBRAID, WBRAID} - {expected}:
        assert other not in rendered


def test_click_id_from_the_session_when_not_copied_to_the_call(site, ads_feed):
    call = make_attributed_call(site, gclid="")
    call.session.gclid = GCLID
    call.session.save()
    assert google_ads.build_row(ads_feed, call)["click_id"] == GCLID


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"gclid": '=HYPERLINK("http://x")'}, "malformed"),
        ({"result": "missed", "talk_seconds": 0}, "Not answered"),
        ({"talk_seconds": 59}, "under the minimum"),
        ({"tag": "spam"}, "spam"),
    ],
)
def test_calls_that_do_not_count(site, ads_feed, django_capture_on_commit_callbacks, changes, reason):
    call = make_attributed_call(site, **changes)
    if "gclid" in changes:
        call.session.gclid = changes["gclid"]
        call.session.save()
    row = complete(call, django_capture_on_commit_callbacks)
    assert row.status == DeliveryStatus.SKIPPED
    assert reason in row.skip_reason


def test_no_click_id_is_skipped(site, ads_feed, django_capture_on_commit_callbacks):
    call = make_attributed_call(site, gclid="")
    call.session.gclid = ""
    call.session.save()
    row = complete(call, django_capture_on_commit_callbacks)
    assert row.status == DeliveryStatus.SKIPPED
    assert "No Google click id" in row.skip_reason


def test_source_rules(site, ads_feed):
    call = make_attributed_call(site, talk_seconds=40)
    rule = GoogleAdsSourceRule.objects.create(
        feed=ads_feed,
        source=call.source,
        conversion_name="Qualified call",
        min_talk_seconds=30,
        value=Decimal("120"),
    )
    feed = GoogleAdsFeed.objects.prefetch_related("source_rules").get(pk=ads_feed.pk)
    row = google_ads.build_row(feed, call)
    assert row["conversion_name"] == "Qualified call"
    assert row["value"] == "120.00"
    assert row["currency"] == "USD"

    rule.include = False
    rule.save()
    feed = GoogleAdsFeed.objects.prefetch_related("source_rules").get(pk=ads_feed.pk)
    with pytest.raises(google_ads.Skip, match="excluded"):
        google_ads.build_row(feed, call)


def test_rule_of_another_source_does_not_apply(site, ads_feed):
    call = make_attributed_call(site)
    GoogleAdsSourceRule.objects.create(feed=ads_feed, source=make_source(name="Newspaper"), include=False)
    feed = GoogleAdsFeed.objects.prefetch_related("source_rules").get(pk=ads_feed.pk)
    assert google_ads.build_row(feed, call)["conversion_name"] == "Phone call lead"


def test_value_precedence(site, ads_feed):
    ads_feed.default_value = Decimal("10")
    ads_feed.save()
    call = make_attributed_call(site, value=Decimal("999.5"))
    assert google_ads.build_row(ads_feed, call)["value"] == "999.50"  # the editor's value
    call.value = None
    assert google_ads.build_row(ads_feed, call)["value"] == "75.00"  # the source's
    call.source.value = None
    assert google_ads.build_row(ads_feed, call)["value"] == "10.00"  # the feed's default
    ads_feed.default_value = None
    row = google_ads.build_row(ads_feed, call)
    assert row["value"] == "" and row["currency"] == ""  # Google uses the action's default


def test_tagging_updates_rows_not_yet_fetched(client, site, ads_feed, django_capture_on_commit_callbacks):
    call = make_attributed_call(site)
    row = complete(call, django_capture_on_commit_callbacks)
    call.tag = "spam"
    call.save()
    with django_capture_on_commit_callbacks(execute=True):
        call_tagged.send(sender=Call, call=call, user=None)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.SKIPPED
    _, rows = parse(client.get(feed_url(ads_feed)).content)
    assert len(rows) == 1

    call.tag = "lead"
    call.value = Decimal("500")
    call.save()
    with django_capture_on_commit_callbacks(execute=True):
        call_tagged.send(sender=Call, call=call, user=None)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.AWAITING_FETCH
    assert row.payload["value"] == "500.00"

    client.get(feed_url(ads_feed))  # Google imported it: later edits no longer change it
    call.tag = "spam"
    call.save()
    with django_capture_on_commit_callbacks(execute=True):
        call_tagged.send(sender=Call, call=call, user=None)
    row.refresh_from_db()
    assert row.status == DeliveryStatus.DELIVERED


def test_feed_lists_only_its_own_rows(client, site, ads_feed, django_capture_on_commit_callbacks):
    other = GoogleAdsFeed.objects.create(site=site, name="Second account", min_talk_seconds=0)
    complete_rows = None
    call = make_attributed_call(site)
    with django_capture_on_commit_callbacks(execute=True):
        call_completed.send(sender=Call, call=call)
    complete_rows = Delivery.objects.filter(call=call, kind=DeliveryKind.GOOGLE_ADS)
    assert complete_rows.count() == 2
    _, rows = parse(client.get(feed_url(other)).content)
    assert rows[1][1] == "Phone call"
    _, rows = parse(client.get(feed_url(ads_feed)).content)
    assert rows[1][1] == "Phone call lead"


def test_unknown_or_inactive_tokens_are_404(client, site, ads_feed):
    base = reverse("wagtail_calltracking:google_ads_feed", args=["x"])
    assert client.get(base.replace("/x/", "/wrong-token/")).status_code == 404
    assert client.get(base.replace("/x/", "/" + "a" * 300 + "/")).status_code == 404
    ads_feed.active = False
    ads_feed.save()
    assert client.get(feed_url(ads_feed)).status_code == 404
    assert client.post(feed_url(ads_feed)).status_code == 405


def basic(username, password):
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_basic_auth_feed(client, site, ads_feed, django_capture_on_commit_callbacks):
    complete(make_attributed_call(site), django_capture_on_commit_callbacks)
    url = reverse("wagtail_calltracking:google_ads_feed_basic_auth")
    response = client.get(url, HTTP_AUTHORIZATION=basic(f"feed{ads_feed.pk}", ads_feed.feed_token))
    assert response.status_code == 200
    assert response.content.startswith(b"Parameters:TimeZone=America/New_York\r\n")
    for header in [
        None,
        "Bearer abc",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"\xff\xfe").decode(),
        "Basic " + base64.b64encode(b"no-colon").decode(),
        basic(f"feed{ads_feed.pk}", "wrong"),
        basic("feed999", ads_feed.feed_token),
    ]:
        kwargs = {"HTTP_AUTHORIZATION": header} if header else {}
        response = client.get(url, **kwargs)
        assert response.status_code == 401, header
        assert response["WWW-Authenticate"].startswith("Basic")


@given(st.text(max_size=200))
@hsettings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
def test_garbage_authorization_never_500s(client, ads_feed, header):
    url = reverse("wagtail_calltracking:google_ads_feed_basic_auth")
    try:
        response = client.get(url, HTTP_AUTHORIZATION=header)
    except ValueError:
        return  # the test client refuses headers with newlines; a server would too
    assert response.status_code == 401


def test_regenerated_token_invalidates_the_old_url(client, site, ads_feed):
    old = feed_url(ads_feed)
    ads_feed.regenerate_token()
    assert client.get(old).status_code == 404
    assert client.get(feed_url(ads_feed)).status_code == 200


def test_names_with_commas_and_quotes_are_quoted(site, ads_feed):
    ads_feed.conversion_name = 'Call, "qualified"'
    call = make_attributed_call(site)
    rendered = google_ads.render_csv(ads_feed, [Delivery(payload=google_ads.build_row(ads_feed, call))])
    _, rows = parse(rendered.encode())
    assert rows[1][1] == 'Call, "qualified"'


def test_time_zone_is_validated(site):
    feed = GoogleAdsFeed(site=site, name="x", time_zone="Mars/Olympus")
    with pytest.raises(ValidationError):
        feed.full_clean()
    GoogleAdsFeed(site=site, name="x", time_zone="Europe/Paris", default_currency="eur").full_clean()


def test_conversion_time_in_the_feeds_zone(site, ads_feed):
    from datetime import datetime

    call = make_attributed_call(site, started_at=datetime(2026, 5, 8, 18, 0, 0, tzinfo=UTC))
    row = google_ads.build_row(ads_feed, call)
    ads_feed.time_zone = "Europe/Paris"
    rendered = google_ads.render_csv(ads_feed, [Delivery(payload=row)])
    assert "Parameters:TimeZone=Europe/Paris" in rendered
    assert "2026-05-08 20:00:00" in rendered


def test_feed_query_count(client, site, ads_feed, django_capture_on_commit_callbacks, django_assert_max_num_queries):
    for _ in range(5):
        complete(make_attributed_call(site), django_capture_on_commit_callbacks)
    with django_assert_max_num_queries(5):
        response = client.get(feed_url(ads_feed))
    _, rows = parse(response.content)
    assert len(rows) == 6
