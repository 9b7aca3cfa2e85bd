"""Leasing under real concurrency on SQLite, with SQLite's default (deferred) transactions.

The example site configures ``transaction_mode: IMMEDIATE``, but a project may not: leasing
must still take the write lock first, so that concurrent processes wait for it instead of
failing with "database is locked" on a read-to-write lock upgrade.
"""

import dataclasses
from collections import defaultdict

import pytest
from django.db import connection, connections

from wagtail_calltracking.models import Lease, NumberPool, PoolStat, TrackingNumber
from wagtail_calltracking.numbers.leasing import lease_end
from wagtail_calltracking.numbers.rules import PoolConfig

from .leasing_worker import migrate_in_child, run_workers

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite-specific")

ALIAS = "leasing_file"
DEFERRED = {"timeout": 30}  # no transaction_mode: Python's sqlite3 default (deferred)


@pytest.fixture
def sqlite_file(tmp_path, django_db_blocker):
    """A migrated SQLite file of its own (not the suite's in-memory test database), used
    through an extra database alias here and as the workers' default database."""
    path = str(tmp_path / "leasing.sqlite3")
    config = {**connections["default"].settings_dict, "NAME": path, "OPTIONS": DEFERRED, "TEST": {"NAME": path}}
    connections.settings[ALIAS] = config
    with django_db_blocker.unblock():
        migrate_in_child(path, DEFERRED)
        yield path
        connections[ALIAS].close()
    del connections[ALIAS]
    del connections.settings[ALIAS]


def test_processes_lease_concurrently_on_sqlite_without_immediate_mode(sqlite_file):
    pool = NumberPool.objects.using(ALIAS).create(name="File pool", cooldown_minutes=0)
    TrackingNumber.objects.using(ALIAS).bulk_create(
        [TrackingNumber(number=f"+1212200{8000 + i}", pool=pool, provider="demo") for i in range(20)]
    )
    config = PoolConfig(
        id=pool.pk, name=pool.name, site_id=None, audience=pool.audience, hold_minutes=20,
        cooldown_minutes=0, exhaustion_policy=pool.exhaustion_policy, fallback_e164="",
        fallback_number_id=None, size=20,
    )
    summaries = run_workers(
        sqlite_file, dataclasses.asdict(config), 4, 40, using=ALIAS, database_options=DEFERRED
    )
    assert sum(s["errors"] for s in summaries) == 0, [s.get("messages") for s in summaries]
    assert sum(s["dynamic"] for s in summaries) == 20
    assert sum(s["overflow"] for s in summaries) == 4 * 40 - 20
    by_number = defaultdict(list)
    for lease in Lease.objects.using(ALIAS).filter(pool=pool).select_related("pool").order_by("leased_at"):
        by_number[lease.number_id].append(lease)
    assert len(by_number) == 20 and all(len(leases) == 1 for leases in by_number.values())
    for leases in by_number.values():
        for before, after in zip(leases, leases[1:], strict=False):
            assert lease_end(before) <= after.leased_at
    stats = PoolStat.objects.using(ALIAS).filter(pool=pool)
    assert sum(s.exhaustions for s in stats) == 4 * 40 - 20
