"""A stacked bar chart of calls per day by channel, as server-side SVG geometry.

No JavaScript, no network: :func:`build_daily_channel_chart` returns plain numbers and labels
that ``templates/wagtail_calltracking/admin/dashboard/chart.svg.html`` renders (so every label
is autoescaped). Colours come from CSS classes (``ct-series--<channel>``) whose custom
properties have a light and a dark variant, following Wagtail's admin theme.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field

from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..models import Channel
from .formatting import channel_label

WIDTH = 720
HEIGHT = 240
MARGIN_LEFT = 40
MARGIN_RIGHT = 8
MARGIN_TOP = 10
MARGIN_BOTTOM = 28
BAR_FILL_RATIO = 0.72
#: CSS-safe series keys (channel values are [a-z_]); anything else maps to "other".
SERIES_KEYS = {*Channel.values, "unattributed"}


@dataclass
class Segment:
    x: float
    y: float
    width: float
    height: float
    series: str
    title: str


@dataclass
class Series:
    key: str
    label: str
    total: int


@dataclass
class Tick:
    value: int
    y: float


@dataclass
class DayLabel:
    x: float
    label: str


@dataclass
class Chart:
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    segments: list[Segment] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    day_labels: list[DayLabel] = field(default_factory=list)
    total: int = 0
    summary: str = ""
    #: Rows of (day label, [(series label, count), ...], day total) for the accessible table.
    table: list = field(default_factory=list)


def nice_ceiling(value: int) -> int:
    """The smallest "round" number ≥ value (1, 2, 5 × 10^n), so gridlines fall on integers."""
    if value <= 1:
        return 1
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * exponent:
            return step * exponent
    return 10 * exponent


def series_key(channel: str) -> str:
    if not channel:
        return "unattributed"
    return channel if channel in SERIES_KEYS else "other_campaign"


def build_daily_channel_chart(counts, first_day: datetime.date, days: int) -> Chart:
    """``counts``: iterable of ``(date, channel, n)``. Days without calls are drawn empty."""
    per_day: dict[datetime.date, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for day, channel, n in counts:
        key = series_key(channel)
        per_day.setdefault(day, {})
        per_day[day][key] = per_day[day].get(key, 0) + n
        totals[key] = totals.get(key, 0) + n

    order = [key for key, _n in sorted(totals.items(), key=lambda item: (-item[1], item[0]))]
    labels = {key: channel_label("" if key == "unattributed" else key) for key in order}

    chart = Chart(
        width=WIDTH,
        height=HEIGHT,
        plot_left=MARGIN_LEFT,
        plot_right=WIDTH - MARGIN_RIGHT,
        plot_top=MARGIN_TOP,
        plot_bottom=HEIGHT - MARGIN_BOTTOM,
    )
    chart.series = [Series(key, labels[key], totals[key]) for key in order]
    chart.total = sum(totals.values())

    day_totals = [sum(per_day.get(first_day + datetime.timedelta(days=i), {}).values()) for i in range(days)]
    top = nice_ceiling(max(day_totals, default=0))
    plot_height = chart.plot_bottom - chart.plot_top
    slot = (chart.plot_right - chart.plot_left) / days
    bar_width = round(slot * BAR_FILL_RATIO, 2)
    scale = plot_height / top

    for step in (0, top / 2, top) if top >= 2 else (0, top):
        if step != int(step):
            continue
        chart.ticks.append(Tick(int(step), round(chart.plot_bottom - step * scale, 2)))

    label_every = max(1, math.ceil(days / 6))
    for index in range(days):
        day = first_day + datetime.timedelta(days=index)
        x = round(chart.plot_left + index * slot + (slot - bar_width) / 2, 2)
        day_label = date_format(day, "M j")
        if (days - 1 - index) % label_every == 0:
            chart.day_labels.append(DayLabel(round(x + bar_width / 2, 2), day_label))
        y = chart.plot_bottom
        day_counts = per_day.get(day, {})
        row = []
        for key in order:
            n = day_counts.get(key, 0)
            if not n:
                continue
            height = n * scale
            y -= height
            title = ngettext(
                "%(day)s · %(series)s: %(count)s call",
                "%(day)s · %(series)s: %(count)s calls",
                n,
            ) % {"day": day_label, "series": labels[key], "count": n}
            chart.segments.append(
                Segment(x, round(y, 2), bar_width, round(height, 2), key, title)
            )
            row.append((labels[key], n))
        chart.table.append((day_label, row, sum(day_counts.values())))

    chart.summary = ngettext(
        "%(count)s call in the last %(days)s days, by channel.",
        "%(count)s calls in the last %(days)s days, by channel.",
        chart.total,
    ) % {"count": chart.total, "days": days}
    if not chart.total:
        chart.summary = _("No calls in the last %(days)s days.") % {"days": days}
    return chart
