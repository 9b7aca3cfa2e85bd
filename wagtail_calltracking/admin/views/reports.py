"""Reports (Wagtail ``ReportView``: filters, pagination, CSV and XLSX export).

- Calls by source: calls, answered, missed, first-time callers, average talk time, sessions and
  the session-to-call conversion rate, grouped by channel / source / campaign / keyword /
  landing page / tracking source under the attribution model chosen in the filters.
- Manager efficiency: calls, answer rate, missed, average time to answer and talk time, missed
  calls nobody called back.
- Pool health: numbers, utilisation, peak concurrency, exhaustion events, recommended size.

Each report runs a fixed number of aggregate queries whatever the page size or data size.
"""

from __future__ import annotations

import datetime
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.db.models import Avg, Count, Exists, OuterRef, Q, Sum
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from wagtail.admin.ui.tables import Column
from wagtail.admin.views.reports import ReportView

from ...models import Call, CallResult, CallTag, Manager, NumberPool, Source, TouchModel
from ...numbers.health import pool_health
from ...numbers.phone import ANONYMOUS
from ..columns import DurationColumn, LinkColumn, NumberColumn, OptionalNumberColumn, PercentColumn
from ..filters import AttributionReportFilterSet, ManagerReportFilterSet, PoolHealthFilterSet
from ..formatting import SafeCsvExportMixin, channel_label, format_percent, format_seconds, percent
from ..permissions import can_view_calls, can_view_pool_health, policy_for
from ..queries import (
    DIMENSIONS,
    MISSED_RESULTS,
    as_local_date,
    clean_touch_model,
    default_report_range,
    default_touch_model,
    sessions_started_between,
    started_between,
    with_attribution,
)

ANSWERED = Q(result=CallResult.ANSWERED)
MISSED = Q(result__in=MISSED_RESULTS)
#: A sessions IN (...) list longer than this is replaced by a full GROUP BY (exports).
SESSION_LOOKUP_LIMIT = 500


class CallTrackingReportView(SafeCsvExportMixin, ReportView):
    """Common parts: permission check, effective date range, calls-listing links."""

    results_template_name = "wagtail_calltracking/admin/reports/report_results.html"
    template_name = "wagtail_calltracking/admin/reports/report.html"
    header_icon = "ct-phone"
    paginate_by = 50
    calls_index_url_name = "wagtail_calltracking_calls:index"

    def user_may_view(self, user) -> bool:
        return can_view_calls(user)

    def dispatch(self, request, *args, **kwargs):
        if not self.user_may_view(request.user):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)

    @cached_property
    def filter_values(self) -> dict:
        if self.filters is not None and self.filters.is_valid():
            return self.filters.form.cleaned_data
        return {}

    @cached_property
    def date_range(self) -> tuple[datetime.date, datetime.date]:
        """The chosen dates, or the last 30 days (either bound may be given alone)."""
        default_start, default_end = default_report_range(30)
        chosen = self.filter_values.get("started")
        start = as_local_date(chosen.start) if chosen else None
        end = as_local_date(chosen.stop) if chosen else None
        if start is None and end is None:
            return default_start, default_end
        if start is None:
            start = end - (default_end - default_start)
        if end is None:
            end = max(start, default_end)
        return start, end

    def get_page_subtitle(self):
        start, end = self.date_range
        return _("%(start)s – %(end)s") % {
            "start": start.strftime("%Y-%m-%d"),
            "end": end.strftime("%Y-%m-%d"),
        }

    def get_filename(self):
        start, end = self.date_range
        return f"{self.export_filename}-{start:%Y%m%d}-{end:%Y%m%d}"

    def calls_url(self, **params) -> str:
        start, end = self.date_range
        query = {
            "started_from": start.isoformat(),
            "started_to": end.isoformat(),
            **{key: value for key, value in params.items() if value not in (None, "")},
        }
        return reverse(self.calls_index_url_name) + "?" + urlencode(query)

    def get_filtered_queryset(self):
        # Each report applies its filters to the rows it aggregates (inside get_queryset).
        return self.get_queryset()

    def filtered_calls(self):
        start, end = self.date_range
        return started_between(Call.objects.all(), start, end)

    def get_context_data(self, *args, **kwargs):
        context = super().get_context_data(*args, **kwargs)
        context["totals"] = self.get_totals()
        return context

    def get_totals(self):
        return None


class AttributionReportView(CallTrackingReportView):
    page_title = gettext_lazy("Calls by source")
    verbose_name = gettext_lazy("row")
    verbose_name_plural = gettext_lazy("rows")
    filterset_class = AttributionReportFilterSet
    export_filename = "calls-by-source"
    default_ordering = "-calls"
    list_export = [
        "label",
        "calls",
        "answered",
        "missed",
        "first_time",
        "answer_rate",
        "avg_talk_seconds",
        "leads",
        "value",
        "sessions",
        "conversion_rate",
    ]

    @cached_property
    def export_headings(self):
        return {
            "label": str(self.dimension.label),
            "calls": _("Calls"),
            "answered": _("Answered"),
            "missed": _("Missed"),
            "first_time": _("First-time callers"),
            "answer_rate": _("Answer rate (%)"),
            "avg_talk_seconds": _("Average talk time (s)"),
            "leads": _("Leads"),
            "value": _("Value"),
            "sessions": _("Sessions"),
            "conversion_rate": _("Session-to-call conversion (%)"),
        }

    @cached_property
    def dimension(self):
        return DIMENSIONS.get(self.filter_values.get("group_by") or "channel", DIMENSIONS["channel"])

    @cached_property
    def touch_model(self):
        return clean_touch_model(self.filter_values.get("attribution") or default_touch_model())

    def get_page_title(self):
        return _("Calls by %(dimension)s") % {"dimension": str(self.dimension.label).lower()}

    @cached_property
    def columns(self):
        return [
            LinkColumn(
                "label",
                label=self.dimension.label,
                sort_key="group",
                get_url=lambda row: row.get("calls_url"),
            ),
            NumberColumn("calls", label=_("Calls"), sort_key="calls"),
            NumberColumn("answered", label=_("Answered"), sort_key="answered"),
            NumberColumn("missed", label=_("Missed"), sort_key="missed"),
            NumberColumn("first_time", label=_("First-time"), sort_key="first_time"),
            PercentColumn("answer_rate", label=_("Answer rate")),
            DurationColumn("avg_talk_seconds", label=_("Avg. talk time"), sort_key="avg_talk_seconds"),
            NumberColumn("leads", label=_("Leads"), sort_key="leads"),
            OptionalNumberColumn("sessions", label=_("Sessions")),
            PercentColumn("conversion_rate", label=_("Conversion")),
        ]

    @cached_property
    def attributed_calls(self):
        calls = with_attribution(self.filtered_calls(), self.touch_model)
        return self.filter_queryset(calls)

    @cached_property
    def grouped_rows(self) -> list[dict]:
        """Every group of the period in one aggregate query. Groups are few (channels,
        sources, campaigns, keywords): sorting, paginating and the totals line then need no
        further query (a COUNT over the grouped subquery would cost as much again)."""
        return list(
            self.attributed_calls.annotate(group=self.dimension.call_expression)
            .values("group")
            .annotate(
                calls=Count("id"),
                answered=Count("id", filter=ANSWERED),
                missed=Count("id", filter=MISSED),
                first_time=Count("id", filter=Q(is_first_time=True)),
                talk_total=Sum("talk_seconds", filter=ANSWERED),
                talk_counted=Count("talk_seconds", filter=ANSWERED),
                leads=Count("id", filter=Q(tag=CallTag.LEAD)),
                value=Sum("value"),
                # Visits that led to at least one call (a visitor calling twice is one
                # converted visit): the numerator of the conversion rate.
                converted=Count("ct_touch__session", distinct=True),
            )
            .order_by()
        )

    def get_queryset(self):
        rows = []
        for grouped in self.grouped_rows:
            row = dict(grouped)
            row["avg_talk_seconds"] = (
                row["talk_total"] / row["talk_counted"] if row["talk_counted"] else None
            )
            rows.append(row)
        return self.order_rows(rows)

    def order_rows(self, rows):
        ordering = self.ordering or self.default_ordering
        field = ordering.lstrip("-")
        descending = ordering.startswith("-")
        # Blank values last whatever the direction; ties in group order.
        rows.sort(key=lambda row: str(row["group"] if row["group"] is not None else ""))
        present = [row for row in rows if row.get(field) is not None]
        missing = [row for row in rows if row.get(field) is None]
        present.sort(
            key=lambda row: row[field] if field != "group" else str(row[field]),
            reverse=descending,
        )
        return present + missing

    def get_totals(self):
        rows = self.grouped_rows
        totals = {
            key: sum(row[key] or 0 for row in rows)
            for key in ("calls", "answered", "missed", "first_time", "talk_total", "talk_counted")
        }
        average = totals["talk_total"] / totals["talk_counted"] if totals["talk_counted"] else None
        totals["avg_talk_seconds"] = average
        totals["answer_rate"] = format_percent(percent(totals["answered"], totals["calls"]))
        totals["avg_talk"] = format_seconds(average)
        totals["touch_model"] = TouchModel(self.touch_model).label
        return totals

    def session_counts(self, groups) -> dict:
        start, end = self.date_range
        sessions = sessions_started_between(start, end)
        values = self.filter_values
        if values.get("site"):
            sessions = sessions.filter(site=values["site"])
        if values.get("channel"):
            sessions = sessions.filter(channel=values["channel"])
        if values.get("source"):
            sessions = sessions.filter(matched_source=values["source"])
        sessions = sessions.annotate(group=self.dimension.session_expression)
        wanted = [group for group in groups if group not in (None, "")]
        if not wanted:
            return {}
        if len(wanted) <= SESSION_LOOKUP_LIMIT:
            sessions = sessions.filter(group__in=wanted)
        return {
            row["group"]: row["sessions"]
            for row in sessions.values("group").annotate(sessions=Count("id")).order_by()
        }

    def decorate_paginated_queryset(self, object_list):
        rows = list(object_list)
        groups = [row["group"] for row in rows]
        sessions = self.session_counts(groups)
        source_names = {}
        if self.dimension.key == "tracking_source":
            source_names = dict(
                Source.objects.filter(pk__in=[g for g in groups if g]).values_list("pk", "name")
            )
        for row in rows:
            group = row["group"]
            row["label"] = self.label_for(group, source_names)
            row["answer_rate"] = percent(row["answered"], row["calls"])
            row["sessions"] = sessions.get(group) if group not in (None, "") else None
            row["conversion_rate"] = percent(row["converted"], row["sessions"])
            row["calls_url"] = self.calls_url_for(group)
        return rows

    def label_for(self, group, source_names) -> str:
        key = self.dimension.key
        if key == "channel":
            return channel_label(group)
        if key == "tracking_source":
            return source_names.get(group, _("(no tracking source)")) if group else _(
                "(no tracking source)"
            )
        return group or _("(none)")

    def calls_url_for(self, group):
        key = self.dimension.key
        common = {"attribution": self.touch_model}
        if key == "channel":
            return self.calls_url(channel=group or "unattributed", **common)
        if key == "tracking_source" and group:
            return self.calls_url(source=group, **common)
        if key in ("campaign", "keyword") and group:
            return self.calls_url(**{key: group}, **common)
        return None


class ManagerReportView(CallTrackingReportView):
    page_title = gettext_lazy("Manager efficiency")
    verbose_name = gettext_lazy("manager")
    verbose_name_plural = gettext_lazy("managers")
    filterset_class = ManagerReportFilterSet
    export_filename = "manager-efficiency"
    default_ordering = "-calls"
    list_export = [
        "label",
        "calls",
        "answered",
        "answer_rate",
        "missed",
        "avg_answer_seconds",
        "avg_talk_seconds",
        "talk_seconds",
        "not_called_back",
    ]
    export_headings = {
        "label": gettext_lazy("Manager"),
        "calls": gettext_lazy("Calls"),
        "answered": gettext_lazy("Answered"),
        "answer_rate": gettext_lazy("Answered (%)"),
        "missed": gettext_lazy("Missed"),
        "avg_answer_seconds": gettext_lazy("Average time to answer (s)"),
        "avg_talk_seconds": gettext_lazy("Average talk time (s)"),
        "talk_seconds": gettext_lazy("Total talk time (s)"),
        "not_called_back": gettext_lazy("Missed, not called back"),
    }

    @cached_property
    def columns(self):
        return [
            LinkColumn(
                "label",
                label=_("Manager"),
                get_url=lambda row: row.get("calls_url"),
            ),
            NumberColumn("calls", label=_("Calls"), sort_key="calls"),
            NumberColumn("answered", label=_("Answered"), sort_key="answered"),
            PercentColumn("answer_rate", label=_("Answered %")),
            NumberColumn("missed", label=_("Missed"), sort_key="missed"),
            DurationColumn(
                "avg_answer_seconds", label=_("Avg. time to answer"), sort_key="avg_answer_seconds"
            ),
            DurationColumn("avg_talk_seconds", label=_("Avg. talk time"), sort_key="avg_talk_seconds"),
            NumberColumn(
                "not_called_back", label=_("Missed, not called back"), sort_key="not_called_back"
            ),
        ]

    def get_queryset(self):
        calls = self.filter_queryset(self.filtered_calls())
        answered_later = Call.objects.filter(
            from_number=OuterRef("from_number"),
            started_at__gt=OuterRef("started_at"),
            result=CallResult.ANSWERED,
        )
        rows = calls.values("manager").annotate(
            calls=Count("id"),
            answered=Count("id", filter=ANSWERED),
            missed=Count("id", filter=MISSED),
            avg_answer_seconds=Avg("ring_seconds", filter=ANSWERED),
            avg_talk_seconds=Avg("talk_seconds", filter=ANSWERED),
            talk_seconds=Sum("talk_seconds"),
            not_called_back=Count(
                "id",
                filter=MISSED
                & ~Q(from_number__in=["", ANONYMOUS])
                & ~Exists(answered_later),
            ),
        )
        ordering = self.ordering or self.default_ordering
        return rows.order_by(ordering, "manager")

    def decorate_paginated_queryset(self, object_list):
        rows = list(object_list)
        names = dict(
            Manager.objects.filter(pk__in=[row["manager"] for row in rows if row["manager"]])
            .values_list("pk", "name")
        )
        for row in rows:
            manager_id = row["manager"]
            row["label"] = names.get(manager_id, _("(deleted manager)")) if manager_id else _(
                "(no manager)"
            )
            row["answer_rate"] = percent(row["answered"], row["calls"])
            row["calls_url"] = self.calls_url(manager=manager_id) if manager_id else None
        return rows


class PoolHealthReportView(CallTrackingReportView):
    """One row per pool, measured by :func:`wagtail_calltracking.numbers.health.pool_health`
    (the same figures as ``manage.py calltracking_pool_health``): active numbers, leases,
    peak and 99th-percentile concurrency, utilisation, exhaustion events and the recommended
    size with advice. A few queries per pool shown (installations have a handful of pools)."""

    page_title = gettext_lazy("Pool health")
    verbose_name = gettext_lazy("pool")
    verbose_name_plural = gettext_lazy("pools")
    filterset_class = PoolHealthFilterSet
    export_filename = "pool-health"
    default_ordering = "name"
    list_export = [
        "name",
        "health.size",
        "health.leases",
        "health.peak_concurrency",
        "health.p99_concurrency",
        "health.utilisation_percent",
        "health.average_utilisation_percent",
        "health.exhaustions",
        "health.mean_lease_minutes",
        "health.recommended_size",
        "health.advice",
    ]
    export_headings = {
        "name": gettext_lazy("Pool"),
        "health.size": gettext_lazy("Active numbers"),
        "health.leases": gettext_lazy("Leases"),
        "health.peak_concurrency": gettext_lazy("Peak concurrency"),
        "health.p99_concurrency": gettext_lazy("99th percentile concurrency"),
        "health.utilisation_percent": gettext_lazy("Peak utilisation (%)"),
        "health.average_utilisation_percent": gettext_lazy("Average utilisation (%)"),
        "health.exhaustions": gettext_lazy("Exhaustion events"),
        "health.mean_lease_minutes": gettext_lazy("Mean lease (minutes)"),
        "health.recommended_size": gettext_lazy("Recommended size"),
        "health.advice": gettext_lazy("Advice"),
    }

    def user_may_view(self, user) -> bool:
        return can_view_pool_health(user)

    @cached_property
    def days(self) -> int:
        try:
            return int(self.filter_values.get("days") or 30)
        except (TypeError, ValueError):
            return 30

    @cached_property
    def date_range(self):
        return default_report_range(self.days)

    @cached_property
    def columns(self):
        return [
            LinkColumn("name", label=_("Pool"), sort_key="name", get_url=self.pool_edit_url),
            NumberColumn("size", accessor="health.size", label=_("Active numbers")),
            NumberColumn("leases", accessor="health.leases", label=_("Leases")),
            NumberColumn(
                "peak", accessor="health.peak_concurrency", label=_("Peak concurrency")
            ),
            NumberColumn("p99", accessor="health.p99_concurrency", label=_("99th percentile")),
            PercentColumn(
                "utilisation", accessor="health.utilisation_percent", label=_("Peak utilisation")
            ),
            NumberColumn(
                "exhaustions", accessor="health.exhaustions", label=_("Exhaustion events")
            ),
            NumberColumn(
                "recommended", accessor="health.recommended_size", label=_("Recommended size")
            ),
            HealthColumn("status", label=_("Health")),
        ]

    def get_queryset(self):
        pools = self.filter_queryset(NumberPool.objects.all())
        ordering = self.ordering or self.default_ordering
        return pools.order_by(ordering, "pk")

    @cached_property
    def can_change_pools(self):
        return policy_for(NumberPool).user_has_permission(self.request.user, "change")

    def pool_edit_url(self, pool):
        if self.can_change_pools:
            return reverse("wagtail_calltracking_pools:edit", args=[pool.pk])
        return None

    def decorate_paginated_queryset(self, object_list):
        for pool in object_list:
            pool.health = PoolHealthRow(pool_health(pool, days=self.days))
        return object_list


class PoolHealthRow:
    """A :class:`PoolHealth` with display values for the table and the export."""

    def __init__(self, health):
        self.health = health

    def __getattr__(self, name):
        return getattr(self.health, name)

    @property
    def utilisation_percent(self):
        return round(self.health.utilisation * 100, 1)

    @property
    def average_utilisation_percent(self):
        return round(self.health.average_utilisation * 100, 1)


class HealthColumn(Column):
    cell_template_name = "wagtail_calltracking/admin/cells/pool_health.html"
