"""The dashboard panel: figures, top sources and the server-side SVG chart (no network, dark
mode through CSS custom properties)."""

import datetime
import re
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from wagtail_calltracking.admin.chart import build_daily_channel_chart, nice_ceiling
from wagtail_calltracking.admin.dashboard import dashboard_stats
from wagtail_calltracking.admin.formatting import format_percent, format_seconds
from wagtail_calltracking.models import CallResult, Channel

from .admin_fixtures import make_admin_user, simple_call
from .factories import make_call

pytestmark = pytest.mark.django_db

CSS = Path(__file__).resolve().parent.parent / (
    "wagtail_calltracking/static/wagtail_calltracking/admin/admin.css"
)


def days_ago(days, hours=0):
    today_noon = timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0)
    return today_noon - datetime.timedelta(days=days, hours=hours)


def test_figures_top_sources_and_chart(site):
    simple_call(started_at=days_ago(0), result=CallResult.ANSWERED)
    simple_call(started_at=days_ago(0), result=CallResult.MISSED, is_first_time=False)
    simple_call(started_at=days_ago(3), channel=Channel.EMAIL, utm_source="newsletter",
                result=CallResult.ANSWERED)
    simple_call(started_at=days_ago(3), result=CallResult.PENDING)  # still ringing: not in the rate
    simple_call(started_at=days_ago(20), channel=Channel.ORGANIC_SEARCH)
    simple_call(started_at=days_ago(40))  # outside every window
    make_call(started_at=days_ago(1), result=CallResult.BUSY)  # unattributed
    stats = dashboard_stats()
    assert stats["calls_today"] == 2
    assert stats["calls_week"] == 5
    assert stats["answer_rate"] == "50 %"  # 2 answered of 4 finished calls
    top = [(row["source"], row["channel"], row["calls"]) for row in stats["top_sources"]]
    assert top[0] == ("google", "Paid search", 3)
    assert ("newsletter", "Email", 1) in top and ("", "Unattributed", 1) in top
    chart = stats["chart"]
    assert chart.total == 6
    assert {series.key: series.total for series in chart.series} == {
        "paid_search": 3, "email": 1, "organic_search": 1, "unattributed": 1,
    }
    assert len(chart.table) == 30
    today_row = chart.table[-1]
    assert today_row[2] == 2


def test_panel_on_the_dashboard(client, site):
    simple_call(started_at=days_ago(0), keyword="plumber")
    client.force_login(make_admin_user(superuser=True))
    response = client.get(reverse("wagtailadmin_home"))
    html = response.content.decode()
    assert 'id="calltracking-dashboard' in html or "calltracking-dashboard" in html
    assert "<svg" in html and 'class="ct-chart"' in html and "ct-series--paid_search" in html
    assert "wagtail_calltracking/admin/admin.css" in html
    # Nothing is loaded from the network: no external script or stylesheet in the panel.
    panel = html[html.index("calltracking-dashboard"):]
    panel = panel[: panel.index("</section>")] if "</section>" in panel else panel
    assert not re.search(r"(src|href)=\"https?://", panel)
    # Colours come from CSS classes (themeable), never inline fills.
    svg = html[html.index("<svg class=\"ct-chart\""): html.index("</svg>", html.index("<svg class=\"ct-chart\""))]
    assert "fill=" not in svg and "style=" not in svg


def test_chart_styles_follow_the_admin_theme():
    css = CSS.read_text()
    keys = [*Channel.values, "unattributed"]
    for key in keys:
        assert f".ct-series--{key} {{ --ct-series:" in css
        assert f".w-theme-dark .ct-series--{key} " in css
        assert f".w-theme-system .ct-series--{key} " in css
    assert "prefers-color-scheme: dark" in css
    assert "var(--w-color-text-context" in css and "currentColor" in css


def test_chart_geometry():
    today = timezone.localdate()
    first = today - datetime.timedelta(days=2)
    chart = build_daily_channel_chart(
        [(first, "paid_search", 3), (first, "", 1), (today, "email", 2), (today, "bogus<x>", 1)],
        first,
        3,
    )
    assert chart.total == 7
    assert [s.key for s in chart.series] == ["paid_search", "email", "other_campaign", "unattributed"]
    # Stacked bars stay inside the plot and the tallest day reaches the top gridline.
    for segment in chart.segments:
        assert chart.plot_top <= segment.y <= chart.plot_bottom
        assert segment.y + segment.height <= chart.plot_bottom + 0.01
    assert max(tick.value for tick in chart.ticks) == nice_ceiling(4) == 5
    empty = build_daily_channel_chart([], first, 3)
    assert empty.total == 0 and empty.segments == [] and "No calls" in empty.summary


def test_dashboard_queries_do_not_grow(client, site, django_assert_max_num_queries):
    user = make_admin_user(superuser=True)
    client.force_login(user)
    simple_call(started_at=days_ago(0))
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("wagtailadmin_home"))
    for day in range(30):
        simple_call(started_at=days_ago(day), channel=list(Channel.values)[day % 10])
    with django_assert_max_num_queries(len(few)):
        client.get(reverse("wagtailadmin_home"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, ""), (0, "0:00"), (7, "0:07"), (75, "1:15"), (3725, "1:02:05"), (89.6, "1:30"), ("x", "")],
)
def test_format_seconds(value, expected):
    assert format_seconds(value) == expected


def test_format_percent():
    assert format_percent(None) == "–"
    assert format_percent(50.0) == "50 %"
    assert format_percent(66.7) == "66.7 %"


@pytest.mark.parametrize(("value", "expected"), [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (260, 500)])
def test_nice_ceiling(value, expected):
    assert nice_ceiling(value) == expected
