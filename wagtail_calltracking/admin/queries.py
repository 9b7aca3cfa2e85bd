"""Query building blocks shared by the calls listing, the reports and the dashboard.

Everything here returns querysets (never lists) so that each screen stays at a fixed number of
queries whatever the page size: attribution is read through one filtered join on
:class:`~wagtail_calltracking.models.CallTouch` (one row per call and attribution model).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import connection
from django.db.models import (
    Case,
    CharField,
    DateTimeField,
    F,
    FilteredRelation,
    Func,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Concat, NullIf
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..conf import ct_settings
from ..models import CallResult, Channel, TouchModel, VisitorSession

#: Results that mean nobody talked to the caller.
MISSED_RESULTS = (
    CallResult.MISSED,
    CallResult.BUSY,
    CallResult.FAILED,
    CallResult.ABANDONED,
    CallResult.VOICEMAIL,
)
#: Results of calls that have ended (the denominator of answer rates).
FINISHED_RESULTS = (CallResult.ANSWERED, *MISSED_RESULTS)

ATTRIBUTION_FIELDS = ("channel", "source", "medium", "campaign", "keyword", "landing_path")


def default_touch_model() -> str:
    value = ct_settings.REPORT_ATTRIBUTION_MODEL
    return value if value in TouchModel.values else TouchModel.LAST_NON_DIRECT


def clean_touch_model(value) -> str:
    return value if value in TouchModel.values else default_touch_model()


def _blank_to_null(expression):
    return NullIf(expression, Value(""))


def with_attribution(queryset: QuerySet, touch_model: str) -> QuerySet:
    """Annotate calls with ``ct_channel``, ``ct_source``, ``ct_medium``, ``ct_campaign``,
    ``ct_keyword`` and ``ct_landing_path`` under ``touch_model`` (first / last / last
    non-direct touch), chosen after the fact.

    A call without a touch of that model but with a static tracking source (newspaper,
    billboard…) is reported under the source's reporting channel and name."""
    touch_model = clean_touch_model(touch_model)
    static = Q(source__static_number__isnull=False)
    static_channel = Coalesce(
        _blank_to_null(F("source__report_channel")),
        _blank_to_null(F("source__channel")),
        Value(Channel.OFFLINE),
    )
    return queryset.annotate(
        ct_touch=FilteredRelation("touches", condition=Q(touches__model=touch_model)),
    ).annotate(
        ct_channel=Coalesce(
            _blank_to_null(F("ct_touch__channel")),
            Case(When(static, then=static_channel), default=Value(""), output_field=CharField()),
        ),
        ct_source=Coalesce(
            _blank_to_null(F("ct_touch__source")),
            Case(When(static, then=F("source__name")), default=Value(""), output_field=CharField()),
        ),
        ct_medium=Coalesce(F("ct_touch__medium"), Value("")),
        ct_campaign=Coalesce(F("ct_touch__campaign"), Value("")),
        ct_keyword=Coalesce(F("ct_touch__keyword"), Value("")),
        ct_landing_path=Coalesce(F("ct_touch__landing_path"), Value("")),
    )


@dataclass(frozen=True)
class Dimension:
    """A way to group calls (and the sessions they convert) in the attribution report."""

    key: str
    label: str
    #: Expression over annotated calls (see :func:`with_attribution`).
    call_expression: object
    #: The same value computed over visitor sessions (for the conversion rate).
    session_expression: object


def _concat_source_medium(source, medium):
    return Concat(
        Coalesce(_blank_to_null(source), Value("(none)")),
        Value(" / "),
        Coalesce(_blank_to_null(medium), Value("(none)")),
        output_field=CharField(),
    )


DIMENSIONS = {
    dimension.key: dimension
    for dimension in (
        Dimension("channel", _("Channel"), F("ct_channel"), F("channel")),
        Dimension("source", _("Source"), F("ct_source"), F("source")),
        Dimension(
            "source_medium",
            _("Source / medium"),
            _concat_source_medium(F("ct_source"), F("ct_medium")),
            _concat_source_medium(F("source"), F("medium")),
        ),
        Dimension("campaign", _("Campaign"), F("ct_campaign"), F("campaign")),
        # The session's keyword is its utm_term, else the search engine's referrer keyword
        # (what the touches copy).
        Dimension("keyword", _("Keyword"), F("ct_keyword"), F("keyword")),
        Dimension("landing_path", _("Landing page"), F("ct_landing_path"), F("landing_path")),
        # Grouped by id (names are looked up for the page shown).
        Dimension("tracking_source", _("Tracking source"), F("source_id"), F("matched_source_id")),
    )
}
DIMENSION_CHOICES = [(key, dimension.label) for key, dimension in DIMENSIONS.items()]


def as_local_date(value) -> datetime.date | None:
    """A date from a date or a datetime (django-filter's date ranges give aware datetimes)."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    return value


def local_day_bounds(start: datetime.date | None, end: datetime.date | None):
    """Aware datetimes for ``[start 00:00, end+1 00:00)`` in the current time zone, so that a
    date range filter uses the ``started_at`` index (no per-row date conversion)."""
    tz = timezone.get_current_timezone()
    start, end = as_local_date(start), as_local_date(end)
    lower = (
        timezone.make_aware(datetime.datetime.combine(start, datetime.time.min), tz)
        if start
        else None
    )
    upper = (
        timezone.make_aware(
            datetime.datetime.combine(end + datetime.timedelta(days=1), datetime.time.min), tz
        )
        if end
        else None
    )
    return lower, upper


def filter_started(queryset: QuerySet, start, end, field: str = "started_at") -> QuerySet:
    lower, upper = local_day_bounds(start, end)
    if lower is not None:
        queryset = queryset.filter(**{f"{field}__gte": lower})
    if upper is not None:
        queryset = queryset.filter(**{f"{field}__lt": upper})
    return queryset


def default_report_range(days: int = 30):
    """The last ``days`` days including today, as local dates."""
    today = timezone.localdate()
    return today - datetime.timedelta(days=days - 1), today


def countable_sessions() -> QuerySet:
    """Sessions that count as visits in conversion rates (bots excluded)."""
    return VisitorSession.objects.filter(is_bot=False)


class _WithoutIndex(Func):
    """SQLite's unary ``+``: the same value, but the planner may not use an index for it."""

    template = "(+%(expressions)s)"
    output_field = DateTimeField()


#: On SQLite, a date range covering more than this share of a table's time span is read by a
#: sequential scan. With SQLite's small default page cache, fetching a third of a 100k-call or
#: 1M-session table row by row through the ``started_at`` index is several times slower than
#: reading the table in order (measured: 1.3 s vs 0.4 s for 330k of 1M sessions). PostgreSQL's
#: planner makes that choice itself, so this applies to SQLite only.
SEQUENTIAL_SCAN_SHARE = 0.15


def started_between(queryset: QuerySet, start, end, field: str = "started_at") -> QuerySet:
    """``queryset`` restricted to rows whose ``field`` falls on the local dates
    ``[start, end]`` (either may be None), read the fastest way for the range's size."""
    lower, upper = local_day_bounds(start, end)
    if connection.vendor == "sqlite" and lower is not None:
        model = queryset.model
        oldest = model._default_manager.order_by(field).values_list(field, flat=True).first()
        newest = timezone.now()
        if oldest is not None and newest > oldest:
            span = (newest - oldest).total_seconds()
            share = ((upper or newest) - max(lower, oldest)).total_seconds() / span
            if share > SEQUENTIAL_SCAN_SHARE:
                queryset = queryset.alias(_started_scan=_WithoutIndex(field)).filter(
                    _started_scan__gte=lower
                )
                if upper is not None:
                    queryset = queryset.filter(_started_scan__lt=upper)
                return queryset
    return filter_started(queryset, start, end, field=field)


def sessions_started_between(start, end) -> QuerySet:
    """Countable sessions started on the local dates ``[start, end]``."""
    return started_between(countable_sessions(), start, end)
