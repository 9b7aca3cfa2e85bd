"""Pool health: concurrency from lease history, utilisation, exhaustions, recommended size."""

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from wagtail_calltracking.models import Lease, NumberPool, PoolStat
from wagtail_calltracking.numbers.health import (
    HealthStatus,
    PoolHealth,
    concurrency_profile,
    pool_health,
    weighted_percentile,
)

from .factories import make_pool, make_session
from .numbers_fixtures import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(minute=30, second=0, microsecond=0)


def at(minutes):
    return NOW + timedelta(minutes=minutes)


def add_lease(pool, start, end, *, released=True, reclaimed=False, number=None):
    """A lease live on [start, end) (released at ``end``, or expiring there by hold time)."""
    number = number or pool.numbers.first()
    hold = timedelta(minutes=pool.hold_minutes)
    return Lease.objects.create(
        number=number,
        pool=pool,
        session=make_session(),
        leased_at=start,
        last_seen_at=end if released else end - hold,
        released_at=end if released else None,
        reclaimed=reclaimed,
    )


def test_concurrency_profile_sweep():
    base = NOW
    intervals = [
        (base, base + timedelta(minutes=30)),
        (base + timedelta(minutes=10), base + timedelta(minutes=20)),
        (base + timedelta(minutes=20), base + timedelta(minutes=40)),  # starts as one ends
    ]
    durations, hourly, peak, peak_at = concurrency_profile(intervals, base - timedelta(minutes=30), base + timedelta(minutes=60))
    assert peak == 2 and peak_at == base + timedelta(minutes=10)
    assert durations[2] == 20 * 60  # 10–20 and 20–30
    assert durations[1] == 10 * 60 + 10 * 60  # 0–10 and 30–40
    assert durations[0] == 30 * 60 + 20 * 60
    assert max(hourly.values()) == 2


def test_weighted_percentile():
    assert weighted_percentile({0: 99.0, 5: 1.0}, 0.99) == 0
    assert weighted_percentile({0: 98.0, 5: 2.0}, 0.99) == 5
    assert weighted_percentile({}, 0.99) == 0


def test_health_of_a_pool_without_traffic(site):
    pool = make_pool(size=4, site=site)
    health = pool_health(pool, now=NOW)
    assert isinstance(health, PoolHealth)
    assert health.size == 4 and health.leases == 0 and health.peak_concurrency == 0
    assert health.status == HealthStatus.NO_DATA and health.recommended_size == 0


def test_empty_pool_is_reported(site):
    pool = NumberPool.objects.create(name="Empty", site=site)
    health = pool_health(pool, now=NOW)
    assert health.status == HealthStatus.EMPTY and "no active numbers" in health.advice


def test_peak_utilisation_and_recommendation(site):
    pool = make_pool(size=10, site=site, hold_minutes=20)
    pool.created_at = NOW - timedelta(days=60)
    numbers = list(pool.numbers.all())
    # Three visitors at once for an hour every day of the last 29 days, otherwise quiet.
    for day in range(1, 30):
        start = NOW - timedelta(days=day)
        for index in range(3):
            add_lease(pool, start, start + timedelta(hours=1), number=numbers[index])
    health = pool_health(pool, now=NOW, days=30)
    assert health.peak_concurrency == 3
    assert health.p99_concurrency == 3  # 1 h/day = 4 % of the time at 3
    assert health.leases == 87
    assert health.utilisation == pytest.approx(0.3)
    assert health.average_utilisation == pytest.approx(3 * 29 / (30 * 24) / 10, abs=0.001)
    assert health.mean_lease_minutes == pytest.approx(60)
    assert health.recommended_size == 4  # ceil(3 × 1.25)
    assert health.status == HealthStatus.OVERSIZED
    busiest = max(health.hourly, key=lambda hour: hour.peak_concurrency)
    assert busiest.peak_concurrency == 3 and busiest.leases == 3


def test_rare_spikes_are_ignored_by_the_p99(site):
    pool = make_pool(size=6, site=site)
    pool.created_at = NOW - timedelta(days=60)
    numbers = list(pool.numbers.all())
    for index in range(6):  # a single 10-minute spike to 6
        add_lease(pool, at(-600), at(-590), number=numbers[index])
    health = pool_health(pool, now=NOW, days=30)
    assert health.peak_concurrency == 6 and health.p99_concurrency == 0
    assert health.utilisation == 1.0
    assert health.status == HealthStatus.TIGHT


def test_exhaustions_make_the_pool_undersized_with_unmet_demand(site):
    pool = make_pool(size=2, site=site, hold_minutes=20)
    pool.created_at = NOW - timedelta(days=2)
    numbers = list(pool.numbers.all())
    for index in range(2):
        add_lease(pool, at(-120), at(-60), number=numbers[index])
    hour = at(-120).replace(minute=0)
    PoolStat.objects.create(pool=pool, hour=hour, leases=2, exhaustions=6, peak_concurrency=2)
    health = pool_health(pool, now=NOW, days=30)
    assert health.exhaustions == 6
    assert health.unmet_demand == pytest.approx(6 * 60 / 60)  # 6 visitors × 60 min ÷ 60
    assert health.recommended_size >= 2 + 6
    assert health.status == HealthStatus.UNDERSIZED
    assert "6 visitors found every number taken" in health.advice
    assert health.hours_with_exhaustion == 1


def test_live_and_reclaimed_leases_and_window_clipping(site):
    pool = make_pool(size=3, site=site, hold_minutes=20)
    pool.created_at = NOW - timedelta(days=40)
    add_lease(pool, at(-31 * 24 * 60), at(-31 * 24 * 60 + 30))  # before the window: ignored
    add_lease(pool, at(-10), at(30), released=False)  # live: ends by hold time after now
    add_lease(pool, at(-5), at(-1), reclaimed=True, number=pool.numbers.last())
    health = pool_health(pool, now=NOW, days=30)
    assert health.leases == 2 and health.reclaimed_leases == 1
    assert health.peak_concurrency == 2
    assert health.window_end == NOW


def test_young_pool_window_starts_at_creation(site):
    pool = make_pool(size=2, site=site)
    pool.created_at = NOW - timedelta(hours=2)
    health = pool_health(pool, now=NOW, days=30)
    assert health.window_start == NOW - timedelta(hours=2)


def test_as_dict_is_json_serialisable(site):
    pool = make_pool(size=2, site=site)
    add_lease(pool, at(-30), at(-10))
    data = pool_health(pool, now=NOW).as_dict()
    json.dumps(data)
    assert data["pool_name"] == pool.name and data["hourly"][0]["peak_concurrency"] == 1


def test_management_command_table_and_json(site, capsys):
    pool = make_pool(size=2, site=site, name="Paid search", created_at=timezone.now() - timedelta(days=3))
    add_lease(pool, timezone.now() - timedelta(minutes=30), timezone.now() - timedelta(minutes=10))
    call_command("calltracking_pool_health", "--hourly")
    out = capsys.readouterr().out
    assert "Paid search" in out and "Recommend" in out and "peak" in out
    call_command("calltracking_pool_health", "--json", "--pool", "paid search", "--days", "7")
    data = json.loads(capsys.readouterr().out)
    assert data[0]["pool_name"] == "Paid search" and data[0]["days"] == 7 and data[0]["leases"] == 1


def test_management_command_errors_and_monitoring_exit_code(site):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="No pool"):
        call_command("calltracking_pool_health", "--pool", "nope")
    with pytest.raises(CommandError):
        call_command("calltracking_pool_health", "--days", "0")
    NumberPool.objects.create(name="Empty", site=site)
    with pytest.raises(SystemExit) as exit_info:
        call_command("calltracking_pool_health", "--fail-undersized")
    assert exit_info.value.code == 1


def test_release_leases_command(site, capsys):
    pool = make_pool(size=1, site=site)
    lease = add_lease(pool, at(-100), at(-60), released=False)
    pool.numbers.update(current_lease=lease)
    call_command("calltracking_release_leases")
    assert "Released 1 expired lease" in capsys.readouterr().out
    lease.refresh_from_db()
    assert lease.released_at == at(-60)
