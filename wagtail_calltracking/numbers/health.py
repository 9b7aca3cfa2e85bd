"""Pool health: is a pool big enough for the site's real traffic?

Established products size pools with rules of thumb (one number per 20 daily visitors,
peak hourly users ÷ sessions per hour…). The quantity that matters is the number of leases
live at the same time, and we have every lease's interval, so we measure it:

* the concurrency step function is rebuilt from the lease history (each lease is live on
  ``[leased_at, lease_end)``), clipped to the observation window;
* **peak concurrency per hour**, **utilisation** (peak ÷ pool size, and the time-weighted
  average), **exhaustion count** (from the hourly :class:`~wagtail_calltracking.models.PoolStat`
  rollup written on the leasing path);
* **recommended size** = the time-weighted 99th percentile of concurrency × (1 +
  ``POOL_HEADROOM``), at least p99 + 1. When the pool was exhausted the observed
  concurrency is capped at the pool size, so the turned-away demand is estimated — in the
  busiest hour, exhaustions × mean lease duration ÷ 60 minutes extra numbers — and the
  recommendation is at least the pool size plus that.

``pool_health(pool, days=30)`` returns a :class:`PoolHealth`; ``manage.py
calltracking_pool_health`` prints it for every pool.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from ..conf import ct_settings

#: Utilisation above which a pool is "tight" (Call Dynamics' rule of thumb: add numbers when
#: utilisation is regularly above 75 %).
TIGHT_UTILISATION = 0.75


class HealthStatus:
    OK = "ok"
    TIGHT = "tight"
    UNDERSIZED = "undersized"
    OVERSIZED = "oversized"
    EMPTY = "empty"
    NO_DATA = "no_data"


@dataclass(frozen=True)
class HourlyUsage:
    """One hour of a pool's life (hours without any lease or exhaustion are omitted)."""

    hour: datetime
    #: Most leases live at the same instant during the hour.
    peak_concurrency: int
    #: Leases started during the hour.
    leases: int
    #: Visitors who found every number taken during the hour.
    exhaustions: int


@dataclass(frozen=True)
class PoolHealth:
    """Health of one pool over an observation window. Ratios are fractions (0.8 = 80 %)."""

    pool_id: int
    pool_name: str
    #: Active numbers in the pool now.
    size: int
    days: int
    window_start: datetime
    window_end: datetime
    #: Leases started in the window, and how many of them were reclaimed from another visitor.
    leases: int
    reclaimed_leases: int
    exhaustions: int
    peak_concurrency: int
    peak_at: datetime | None
    #: Time-weighted 99th percentile and mean of concurrency over the window.
    p99_concurrency: int
    average_concurrency: float
    #: peak_concurrency ÷ size, and average_concurrency ÷ size (0 for an empty pool).
    utilisation: float
    average_utilisation: float
    #: Mean duration of the leases that ended in the window, in minutes.
    mean_lease_minutes: float
    #: Extra simultaneous numbers the turned-away visitors would have needed in the worst hour.
    unmet_demand: float
    recommended_size: int
    headroom: float
    status: str
    advice: str
    hourly: tuple[HourlyUsage, ...] = field(default=())

    @property
    def hours_with_exhaustion(self) -> int:
        return sum(1 for hour in self.hourly if hour.exhaustions)

    def as_dict(self) -> dict:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "hourly"}
        for key in ("window_start", "window_end", "peak_at"):
            data[key] = data[key].isoformat() if data[key] else None
        data["hourly"] = [
            {
                "hour": hour.hour.isoformat(),
                "peak_concurrency": hour.peak_concurrency,
                "leases": hour.leases,
                "exhaustions": hour.exhaustions,
            }
            for hour in self.hourly
        ]
        return data


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def concurrency_profile(intervals, start: datetime, end: datetime):
    """Sweep lease intervals (clipped to ``[start, end)``) into the concurrency step function.

    Returns ``(durations, hourly_peaks, peak, peak_at)``: seconds spent at each concurrency
    level, the peak per hour, the overall peak and when it was first reached. Ends are
    processed before starts at the same instant (intervals are half-open: a number handed
    straight to another visitor is not counted twice)."""
    events = []
    for lease_start, lease_stop in intervals:
        lease_start, lease_stop = max(lease_start, start), min(lease_stop, end)
        if lease_stop > lease_start:
            events.append((lease_start, 1))
            events.append((lease_stop, -1))
    events.sort(key=lambda event: (event[0], event[1]))
    durations: dict[int, float] = defaultdict(float)
    hourly_peaks: dict[datetime, int] = defaultdict(int)
    level, cursor, peak, peak_at = 0, start, 0, None
    for moment, delta in events:
        if moment > cursor:
            durations[level] += (moment - cursor).total_seconds()
            if level:
                hour = _hour(cursor)
                while hour < moment:
                    hourly_peaks[hour] = max(hourly_peaks[hour], level)
                    hour += timedelta(hours=1)
            cursor = moment
        level += delta
        if level > peak:
            peak, peak_at = level, moment
    if end > cursor:
        durations[level] += (end - cursor).total_seconds()
    return dict(durations), dict(hourly_peaks), peak, peak_at


def weighted_percentile(durations: dict[int, float], fraction: float) -> int:
    """The smallest level ``c`` such that the time spent above ``c`` is at most
    ``1 - fraction`` of the total (time-weighted percentile of a step function)."""
    total = sum(durations.values())
    if total <= 0:
        return 0
    allowed_above = total * (1 - fraction)
    above = 0.0
    for level in sorted(durations, reverse=True):
        if above + durations[level] > allowed_above + 1e-9:
            return level
        above += durations[level]
    return 0


def pool_health(pool, days: int = 30, now: datetime | None = None,
                headroom: float | None = None) -> PoolHealth:
    """Measure ``pool`` (a NumberPool) over the last ``days`` days (from its creation if
    younger, or from its first lease for imported history). A few queries; the cost grows
    with the number of leases in the window."""
    from ..models import Lease, PoolStat

    now = now or timezone.now()
    headroom = float(ct_settings.POOL_HEADROOM if headroom is None else headroom)
    window_end = now
    window_start = now - timedelta(days=days)
    hold = timedelta(minutes=pool.hold_minutes)
    size = pool.numbers.filter(active=True).count()

    leases = Lease.objects.filter(pool=pool, leased_at__lt=window_end).filter(
        Q(released_at__gt=window_start)
        | Q(released_at__isnull=True, last_seen_at__gt=window_start - hold)
    )
    intervals = []
    lease_count = reclaimed = 0
    total_minutes, ended = 0.0, 0
    for leased_at, last_seen_at, released_at, was_reclaimed in leases.values_list(
        "leased_at", "last_seen_at", "released_at", "reclaimed"
    ).iterator(chunk_size=5000):
        stop = released_at if released_at is not None else last_seen_at + hold
        intervals.append((leased_at, stop))
        if leased_at >= window_start:
            lease_count += 1
            reclaimed += bool(was_reclaimed)
        if stop <= now:
            total_minutes += (stop - leased_at).total_seconds() / 60
            ended += 1
    # A young pool is observed from its creation (or its first lease, for imported history),
    # so that idle days before it existed do not dilute the percentiles.
    first_seen = min([pool.created_at or window_start, *(start for start, _stop in intervals)])
    window_start = min(max(window_start, first_seen), now)
    durations, hourly_peaks, peak, peak_at = concurrency_profile(intervals, window_start, window_end)

    hourly_leases: dict[datetime, int] = defaultdict(int)
    for leased_at, _stop in intervals:
        if leased_at >= window_start:
            hourly_leases[_hour(leased_at)] += 1
    hourly_exhaustions: dict[datetime, int] = defaultdict(int)
    exhaustions = 0
    for hour, count, stat_peak in PoolStat.objects.filter(
        pool=pool, hour__gte=_hour(window_start), hour__lt=window_end
    ).values_list("hour", "exhaustions", "peak_concurrency"):
        hourly_exhaustions[hour] += count
        exhaustions += count
        if count and stat_peak > hourly_peaks.get(hour, 0):
            # An exhaustion means every number was held at that moment.
            hourly_peaks[hour] = stat_peak
        if count and stat_peak > peak:
            peak, peak_at = stat_peak, hour

    observed_seconds = max((window_end - window_start).total_seconds(), 0.0)
    average = (
        sum(level * seconds for level, seconds in durations.items()) / observed_seconds
        if observed_seconds
        else 0.0
    )
    p99 = weighted_percentile(durations, 0.99)
    mean_lease_minutes = total_minutes / ended if ended else float(pool.hold_minutes)
    unmet = max(
        (count * mean_lease_minutes / 60 for count in hourly_exhaustions.values()), default=0.0
    )

    recommended = max(math.ceil(p99 * (1 + headroom)), p99 + 1) if (p99 or lease_count) else 0
    if exhaustions:
        recommended = max(recommended, math.ceil(size + unmet), size + 1)
    recommended = max(recommended, 1) if (lease_count or exhaustions) else recommended

    hours = sorted(set(hourly_peaks) | set(hourly_leases) | set(hourly_exhaustions))
    hourly = tuple(
        HourlyUsage(
            hour=hour,
            peak_concurrency=hourly_peaks.get(hour, 0),
            leases=hourly_leases.get(hour, 0),
            exhaustions=hourly_exhaustions.get(hour, 0),
        )
        for hour in hours
    )
    utilisation = peak / size if size else 0.0
    status, advice = _assess(size, lease_count, exhaustions, utilisation, recommended)
    return PoolHealth(
        pool_id=pool.pk,
        pool_name=pool.name,
        size=size,
        days=days,
        window_start=window_start,
        window_end=window_end,
        leases=lease_count,
        reclaimed_leases=reclaimed,
        exhaustions=exhaustions,
        peak_concurrency=peak,
        peak_at=peak_at,
        p99_concurrency=p99,
        average_concurrency=round(average, 3),
        utilisation=round(utilisation, 4),
        average_utilisation=round(average / size, 4) if size else 0.0,
        mean_lease_minutes=round(mean_lease_minutes, 2),
        unmet_demand=round(unmet, 2),
        recommended_size=recommended,
        headroom=headroom,
        status=status,
        advice=advice,
        hourly=hourly,
    )


def _assess(size, leases, exhaustions, utilisation, recommended) -> tuple[str, str]:
    if size == 0:
        return HealthStatus.EMPTY, _(
            "The pool has no active numbers: every visitor sees the overflow or canonical number."
        )
    if not leases and not exhaustions:
        return HealthStatus.NO_DATA, _("No visitor was given a number from this pool yet.")
    if exhaustions:
        return HealthStatus.UNDERSIZED, _(
            "%(count)d visitors found every number taken. Grow the pool to %(size)d numbers."
        ) % {"count": exhaustions, "size": recommended}
    if recommended > size:
        return HealthStatus.UNDERSIZED, _(
            "Busy hours come close to the pool size. Grow the pool to %(size)d numbers."
        ) % {"size": recommended}
    if utilisation > TIGHT_UTILISATION:
        return HealthStatus.TIGHT, _(
            "The pool was more than 75%% used at its peak; consider %(size)d numbers."
        ) % {"size": max(recommended, size + 1)}
    if recommended < size and size - recommended >= 2 and utilisation < 0.5:
        return HealthStatus.OVERSIZED, _(
            "%(spare)d numbers were never needed at the same time; %(size)d would do."
        ) % {"spare": size - recommended, "size": recommended}
    return HealthStatus.OK, _("The pool size fits the traffic.")


def all_pools_health(days: int = 30, now: datetime | None = None, pools=None) -> list[PoolHealth]:
    from ..models import NumberPool

    pools = pools if pools is not None else NumberPool.objects.order_by("name", "pk")
    return [pool_health(pool, days=days, now=now) for pool in pools]
