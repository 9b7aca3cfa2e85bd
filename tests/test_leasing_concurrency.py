"""Leasing under real concurrency: several OS processes, each with its own PostgreSQL
connection, lease from one pool at the same time (SELECT … FOR UPDATE SKIP LOCKED).

Proves: no number is ever held by two live sessions (a number's lease intervals never
overlap), the exhaustion policy is applied to exactly the overflow, exhaustions are counted.
"""

import dataclasses
from collections import defaultdict

import pytest
from django.db import connection

from wagtail_calltracking.models import ExhaustionPolicy, Lease, PoolStat, TrackingNumber
from wagtail_calltracking.numbers.leasing import lease_end

from .factories import make_number, make_pool
from .leasing_worker import run_workers
from .numbers_fixtures import pool_config

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PROCESSES = 8


def assert_lease_intervals_never_overlap(pool):
    by_number = defaultdict(list)
    for lease in Lease.objects.filter(pool=pool).select_related("pool").order_by("leased_at", "pk"):
        by_number[lease.number_id].append(lease)
    for number_id, leases in by_number.items():
        for before, after in zip(leases, leases[1:], strict=False):
            assert lease_end(before) <= after.leased_at, (
                f"number {number_id}: lease {before.pk} ends {lease_end(before)}, "
                f"lease {after.pk} starts {after.leased_at}"
            )
        latest = leases[-1]
        assert TrackingNumber.objects.get(pk=number_id).current_lease_id == latest.pk
    return by_number


def test_many_processes_one_pool_fallback_policy():
    """8 × 500 new visitors against a 50-number pool (hold 20 min: nothing expires)."""
    overflow = make_number(number="+12125550188")
    pool = make_pool(size=50, name="Concurrent", fallback_number=overflow)
    summaries = run_workers(
        connection.settings_dict["NAME"], dataclasses.asdict(pool_config(pool)), PROCESSES, 500
    )
    assert sum(s["errors"] for s in summaries) == 0, [s.get("messages") for s in summaries]
    visitors = PROCESSES * 500
    dynamic = sum(s["dynamic"] for s in summaries)
    overflowed = sum(s["overflow"] for s in summaries)
    assert dynamic == 50
    assert overflowed == visitors - 50  # exactly the overflow got the fallback
    by_number = assert_lease_intervals_never_overlap(pool)
    assert len(by_number) == 50 and all(len(leases) == 1 for leases in by_number.values())
    assert Lease.objects.filter(pool=pool).values("session_id").distinct().count() == 50
    stats = PoolStat.objects.filter(pool=pool)
    assert sum(s.leases for s in stats) == 50
    assert sum(s.exhaustions for s in stats) == visitors - 50
    assert max(s.peak_concurrency for s in stats) == 50


def test_many_processes_reuse_oldest_policy_with_returning_visitors():
    """Every overflow reclaims the least recently active lease; returning visitors refresh,
    revive or lose their numbers meanwhile. Intervals must still never overlap."""
    pool = make_pool(size=20, name="Reclaiming", exhaustion_policy=ExhaustionPolicy.REUSE_OLDEST)
    per_process = 100
    summaries = run_workers(
        connection.settings_dict["NAME"],
        dataclasses.asdict(pool_config(pool)),
        PROCESSES,
        per_process,
        revisit_every=4,
    )
    assert sum(s["errors"] for s in summaries) == 0, [s.get("messages") for s in summaries]
    visitors = PROCESSES * per_process
    assert sum(s["overflow"] for s in summaries) == 0  # a number for everyone, some reclaimed
    assert_lease_intervals_never_overlap(pool)
    leases = Lease.objects.filter(pool=pool)
    reclaimed = leases.filter(reclaimed=True).count()
    assert reclaimed == leases.count() - 20  # every lease beyond the first 20 took a number
    assert leases.count() >= visitors
    stats = PoolStat.objects.filter(pool=pool)
    assert sum(s.exhaustions for s in stats) == reclaimed
    assert sum(s.leases for s in stats) == leases.count()
    # At most one live (unreleased) lease per number and per session.
    live = leases.filter(released_at__isnull=True)
    assert live.count() == live.values("number_id").distinct().count() <= 20
    assert live.count() == live.values("session_id").distinct().count()
