"""Stored XSS: everything visitors and callers control (utm values, referrers, user agents,
page titles and paths, caller names) is shown escaped on every admin screen, the SVG chart
included."""

import csv
import io

import pytest
from django.urls import reverse

from wagtail_calltracking.models import CallTouch, Channel, PageView, TouchModel

from .admin_fixtures import journey_call, make_admin_user, make_manager
from .factories import make_number, make_pool, make_source

pytestmark = pytest.mark.django_db

PAYLOAD = '<script>alert("xss")</script>'
ATTRIBUTE_PAYLOAD = '"><img src=x onerror=alert(1)>'
SVG_PAYLOAD = "</text><script>alert(2)</script>"


@pytest.fixture
def hostile_call(site):
    pool = make_pool(size=1, name=f"Pool {PAYLOAD}")
    manager = make_manager(f"Manager {PAYLOAD}")
    call = journey_call(pages=2, pool=pool, manager=manager, caller_name=PAYLOAD,
                        caller_city=ATTRIBUTE_PAYLOAD, note=PAYLOAD,
                        recording_url=f"https://example.com/{ATTRIBUTE_PAYLOAD}")
    session = call.session
    for field in ("source", "medium", "campaign", "term", "keyword", "referrer", "user_agent",
                  "browser", "os", "region", "city", "landing_path", "gclid"):
        setattr(session, field, PAYLOAD if field != "referrer" else f"https://evil.example/{ATTRIBUTE_PAYLOAD}")
    session.save()
    PageView.objects.filter(session=session).update(title=PAYLOAD, path=f"/{ATTRIBUTE_PAYLOAD}")
    CallTouch.objects.filter(call=call).update(
        channel=SVG_PAYLOAD[:20], source=PAYLOAD, medium=PAYLOAD, campaign=PAYLOAD,
        keyword=PAYLOAD, landing_path=ATTRIBUTE_PAYLOAD,
    )
    CallTouch.objects.filter(call=call, model=TouchModel.FIRST).update(channel=Channel.EMAIL)
    call.tracking_number.label = PAYLOAD
    call.tracking_number.save()
    make_source(name=f"Source {PAYLOAD}", static_number=make_number(label=PAYLOAD),
                utm_campaign="x")
    return call


def assert_escaped(html):
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert 'onerror=alert(1)>' not in html.replace("&gt;", ">").replace("&lt;img", "") or (
        "<img src=x onerror" not in html
    )


SCREENS = [
    ("wagtail_calltracking_calls:index", {}),
    ("wagtail_calltracking_calls:index", {"attribution": "first"}),
    ("wagtail_calltracking_report_sources:index", {"group_by": "channel"}),
    ("wagtail_calltracking_report_sources:index", {"group_by": "source"}),
    ("wagtail_calltracking_report_sources:index", {"group_by": "source_medium"}),
    ("wagtail_calltracking_report_sources:index", {"group_by": "campaign"}),
    ("wagtail_calltracking_report_sources:index", {"group_by": "keyword"}),
    ("wagtail_calltracking_report_sources:index", {"group_by": "landing_path"}),
    ("wagtail_calltracking_report_sources:index", {"group_by": "tracking_source"}),
    ("wagtail_calltracking_report_managers:index", {}),
    ("wagtail_calltracking_report_pools:index", {}),
    ("wagtail_calltracking_sources:index", {}),
    ("wagtail_calltracking_numbers:index", {}),
    ("wagtail_calltracking_pools:index", {}),
    ("wagtail_calltracking_managers:index", {}),
    ("wagtailadmin_home", {}),
]


@pytest.mark.parametrize(("name", "params"), SCREENS)
def test_screens_escape_visitor_data(client, hostile_call, name, params):
    client.force_login(make_admin_user(superuser=True))
    response = client.get(reverse(name), params)
    assert response.status_code == 200
    assert_escaped(response.content.decode())


def test_call_detail_escapes_everything(client, hostile_call):
    client.force_login(make_admin_user(superuser=True))
    html = client.get(reverse("wagtail_calltracking_calls:inspect", args=[hostile_call.pk])).content.decode()
    assert_escaped(html)
    # The payloads are there, as text.
    assert "&lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt;" in html
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html


def test_pool_edit_page_escapes_labels(client, hostile_call):
    client.force_login(make_admin_user(superuser=True))
    pool = hostile_call.tracking_number.pool
    html = client.get(reverse("wagtail_calltracking_pools:edit", args=[pool.pk])).content.decode()
    assert_escaped(html)


def test_exports_keep_payloads_as_text_and_defuse_formulas(client, hostile_call):
    hostile_call.note = '=HYPERLINK("https://evil.example","click")'
    hostile_call.save()
    client.force_login(make_admin_user(superuser=True))
    response = client.get(reverse("wagtail_calltracking_calls:index"), {"export": "csv"})
    row = next(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert row["Caller name"] == PAYLOAD  # CSV is data, not HTML: unchanged
    assert row["Note"] == "'" + hostile_call.note  # never evaluated as a formula
    assert row["Caller"] == "+13125550100"  # phone numbers untouched


def test_chart_escapes_series_labels(client, site):
    """Unknown channel values (older data, manual imports) fall back to a known series key in
    CSS classes and are escaped in titles."""
    from django.template.loader import render_to_string
    from django.utils import timezone

    from wagtail_calltracking.admin.chart import build_daily_channel_chart

    today = timezone.localdate()
    chart = build_daily_channel_chart([(today, SVG_PAYLOAD, 2)], today, 1)
    html = render_to_string("wagtail_calltracking/admin/dashboard/chart.html", {"chart": chart})
    assert "<script>" not in html and "</text><script>" not in html
    assert "ct-series--other_campaign" in html
