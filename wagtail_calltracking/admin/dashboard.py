"""The call tracking panel on the Wagtail dashboard (``construct_homepage_panels``)."""

from __future__ import annotations

import datetime

from django.db.models import Case, Count, IntegerField, Q, Value, When
from django.urls import reverse
from django.utils import timezone
from wagtail.admin.ui.components import Component

from ..models import Call, CallResult, TouchModel
from .chart import build_daily_channel_chart
from .formatting import channel_label, format_percent, percent
from .queries import (
    FINISHED_RESULTS,
    default_touch_model,
    local_day_bounds,
    started_between,
    with_attribution,
)

CHART_DAYS = 30
TOP_SOURCES = 5


def day_bucket(first_day: datetime.date, days: int) -> Case:
    """The index (0 … days-1) of the local day a call started on, as a plain SQL ``CASE``
    over precomputed bounds: correct across DST changes, and no per-row time zone function
    (which SQLite runs in Python)."""
    whens = []
    for index in range(days):
        _lower, upper = local_day_bounds(None, first_day + datetime.timedelta(days=index))
        whens.append(When(started_at__lt=upper, then=Value(index)))
    return Case(*whens, default=Value(None), output_field=IntegerField())


def dashboard_stats(today: datetime.date | None = None, touch_model: str | None = None) -> dict:
    """Calls today and in the last 7 days, the 7-day answer rate, first-time callers, the top
    sources and the 30-day chart, from one aggregate query whatever the volume."""
    today = today or timezone.localdate()
    touch_model = touch_model or default_touch_model()
    first_day = today - datetime.timedelta(days=CHART_DAYS - 1)
    week_first_index = CHART_DAYS - 7

    recent = started_between(Call.objects.all(), first_day, today)
    rows = (
        with_attribution(recent, touch_model)
        .annotate(day=day_bucket(first_day, CHART_DAYS))
        .values("day", "ct_channel", "ct_source")
        .annotate(
            calls=Count("id"),
            finished=Count("id", filter=Q(result__in=FINISHED_RESULTS)),
            answered=Count("id", filter=Q(result=CallResult.ANSWERED)),
            first_time=Count("id", filter=Q(is_first_time=True)),
        )
        .order_by()
    )
    per_day, sources = [], {}
    totals = {"today": 0, "week": 0, "finished": 0, "answered": 0, "first_time": 0}
    for row in rows:
        index = row["day"]
        if index is None:
            continue
        per_day.append((first_day + datetime.timedelta(days=index), row["ct_channel"], row["calls"]))
        key = (row["ct_source"], row["ct_channel"])
        sources[key] = sources.get(key, 0) + row["calls"]
        if index == CHART_DAYS - 1:
            totals["today"] += row["calls"]
        if index >= week_first_index:
            totals["week"] += row["calls"]
            for name in ("finished", "answered", "first_time"):
                totals[name] += row[name]
    top_sources = [
        {"source": source, "channel": channel_label(channel), "calls": calls}
        for (source, channel), calls in sorted(sources.items(), key=lambda item: (-item[1], item[0]))[
            :TOP_SOURCES
        ]
    ]
    return {
        "calls_today": totals["today"],
        "calls_week": totals["week"],
        "first_time_week": totals["first_time"],
        "answer_rate": format_percent(percent(totals["answered"], totals["finished"])),
        "top_sources": top_sources,
        "chart": build_daily_channel_chart(per_day, first_day, CHART_DAYS),
        "touch_model_label": TouchModel(touch_model).label,
    }


class CallTrackingDashboardPanel(Component):
    name = "calltracking"
    template_name = "wagtail_calltracking/admin/dashboard/panel.html"
    #: After Wagtail's moderation panels (210-220), before recent edits (250).
    order = 240

    class Media:
        css = {"all": ["wagtail_calltracking/admin/admin.css"]}

    def __init__(self, request):
        self.request = request

    def get_context_data(self, parent_context=None):
        context = super().get_context_data(parent_context)
        context.update(dashboard_stats())
        calls_url = reverse("wagtail_calltracking_calls:index")
        today = timezone.localdate()
        context["calls_url"] = calls_url
        context["calls_today_url"] = f"{calls_url}?started_from={today.isoformat()}"
        context["calls_week_url"] = (
            f"{calls_url}?started_from={(today - datetime.timedelta(days=6)).isoformat()}"
        )
        context["report_url"] = reverse("wagtail_calltracking_report_sources:index")
        return context
