"""The call tracking panel on the Wagtail dashboard (``construct_homepage_panels``)."""

from __future__ import annotations

import datetime

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone
from wagtail.admin.ui.components import Component

from ..models import Call, CallResult, TouchModel
from .chart import build_daily_channel_chart
from .formatting import channel_label, format_percent, percent
from .queries import FINISHED_RESULTS, default_touch_model, local_day_bounds, with_attribution

CHART_DAYS = 30
TOP_SOURCES = 5


def dashboard_stats(today: datetime.date | None = None, touch_model: str | None = None) -> dict:
    """Calls today and in the last 7 days, the 7-day answer rate, the top sources and the
    30-day chart: three aggregate queries whatever the volume."""
    today = today or timezone.localdate()
    touch_model = touch_model or default_touch_model()
    first_chart_day = today - datetime.timedelta(days=CHART_DAYS - 1)
    today_start, _ = local_day_bounds(today, None)
    week_start, _ = local_day_bounds(today - datetime.timedelta(days=6), None)
    chart_start, chart_end = local_day_bounds(first_chart_day, today)

    recent = Call.objects.filter(started_at__gte=chart_start, started_at__lt=chart_end)
    this_week = Q(started_at__gte=week_start)
    counts = recent.aggregate(
        today=Count("id", filter=Q(started_at__gte=today_start)),
        week=Count("id", filter=this_week),
        week_finished=Count("id", filter=this_week & Q(result__in=FINISHED_RESULTS)),
        week_answered=Count("id", filter=this_week & Q(result=CallResult.ANSWERED)),
        week_first_time=Count("id", filter=this_week & Q(is_first_time=True)),
    )
    attributed = with_attribution(recent, touch_model)
    top_sources = [
        {
            "source": row["ct_source"],
            "channel": channel_label(row["ct_channel"]),
            "calls": row["calls"],
        }
        for row in attributed.values("ct_source", "ct_channel")
        .annotate(calls=Count("id"))
        .order_by("-calls", "ct_source")[:TOP_SOURCES]
    ]
    per_day = (
        attributed.annotate(day=TruncDate("started_at", tzinfo=timezone.get_current_timezone()))
        .values_list("day", "ct_channel")
        .annotate(calls=Count("id"))
        .order_by()
    )
    chart = build_daily_channel_chart(per_day, first_chart_day, CHART_DAYS)
    return {
        "calls_today": counts["today"],
        "calls_week": counts["week"],
        "first_time_week": counts["week_first_time"],
        "answer_rate": format_percent(percent(counts["week_answered"], counts["week_finished"])),
        "top_sources": top_sources,
        "chart": chart,
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
