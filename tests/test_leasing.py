"""Leasing pool numbers: reuse, refresh, least-recently-used choice, cool-down, lazy expiry,
exhaustion policies, release, history and the query budget (SQLite and PostgreSQL)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from wagtail_calltracking.models import (
    ExhaustionPolicy,
    Lease,
    LeaseReleaseReason,
    NumberPool,
    PoolStat,
    TrackingNumber,
)
from wagtail_calltracking.numbers import leasing
from wagtail_calltracking.numbers.leasing import (
    Kind,
    lease_at,
    lease_end,
    number_for_session,
    release_expired_leases,
    release_lease,
    release_number,
)

from .factories import make_number, make_pool, make_session
from .numbers_fixtures import *  # noqa: F403 (fixtures)
from .numbers_fixtures import pool_config

pytestmark = pytest.mark.django_db

T0 = timezone.now().replace(microsecond=0) - timedelta(days=1)


def at(minutes=0, seconds=0):
    return T0 + timedelta(minutes=minutes, seconds=seconds)


def lease_from(pool, session, minutes=0, seconds=0, **kwargs):
    return number_for_session(pool_config(pool), session.pk, now=at(minutes, seconds), **kwargs)


def test_a_new_session_gets_a_number_and_keeps_it(pool):
    session = make_session()
    first = lease_from(pool, session)
    assert first.kind == Kind.DYNAMIC and first.is_dynamic
    assert first.e164 in set(pool.numbers.values_list("number", flat=True))
    again = lease_from(pool, session, minutes=5)
    assert (again.e164, again.lease_id) == (first.e164, first.lease_id)
    number = TrackingNumber.objects.get(pk=first.number_id)
    assert number.current_lease_id == first.lease_id
    lease = Lease.objects.get(pk=first.lease_id)
    assert lease.session_id == session.pk and lease.pool_id == pool.pk
    assert lease.leased_at == at(0) and lease.released_at is None


def test_two_sessions_get_different_numbers(pool):
    numbers = {lease_from(pool, make_session()).e164 for _ in range(3)}
    assert len(numbers) == 3


def test_live_lease_costs_one_select_and_refresh_is_throttled(pool):
    session = make_session()
    leased = lease_from(pool, session)
    config = pool_config(pool)
    with CaptureQueriesContext(connection) as queries:
        number_for_session(config, session.pk, now=at(seconds=30))
    assert len(queries) == 1 and queries[0]["sql"].lstrip().upper().startswith("SELECT")
    with CaptureQueriesContext(connection) as queries:
        number_for_session(config, session.pk, now=at(minutes=2))
    assert len(queries) == 2
    assert queries[1]["sql"].lstrip().upper().startswith("UPDATE")
    assert Lease.objects.get(pk=leased.lease_id).last_seen_at == at(minutes=2)
    with CaptureQueriesContext(connection) as queries:
        number_for_session(config, session.pk, now=at(minutes=2, seconds=50))
    assert len(queries) == 1  # within a minute of the last write: no UPDATE


def test_activity_keeps_the_number_beyond_the_hold_time(pool):
    session = make_session()
    first = lease_from(pool, session)
    for minute in range(10, 100, 10):  # active every 10 minutes, hold is 20
        assert lease_from(pool, session, minutes=minute).lease_id == first.lease_id


def test_new_number_is_the_free_one_idle_longest(pool):
    numbers = list(pool.numbers.order_by("pk"))
    TrackingNumber.objects.filter(pk=numbers[0].pk).update(idle_since=at(-30))
    TrackingNumber.objects.filter(pk=numbers[1].pk).update(idle_since=at(-90))
    TrackingNumber.objects.filter(pk=numbers[2].pk).update(idle_since=at(-60))
    order = [lease_from(pool, make_session()).number_id for _ in range(3)]
    assert order == [numbers[1].pk, numbers[2].pk, numbers[0].pk]


def test_never_used_numbers_come_first(pool):
    numbers = list(pool.numbers.order_by("pk"))
    TrackingNumber.objects.filter(pk__in=[numbers[0].pk, numbers[1].pk]).update(idle_since=at(-600))
    assert lease_from(pool, make_session()).number_id == numbers[2].pk


def test_expired_lease_frees_the_number_after_the_cooldown(pool):
    NumberPool.objects.filter(pk=pool.pk).update(hold_minutes=20, cooldown_minutes=10)
    single = make_pool(size=0, name="Single", hold_minutes=20, cooldown_minutes=10)
    number = make_number(pool=single)
    first_session, second_session = make_session(), make_session()
    first = lease_from(single, first_session)
    # Hold not over: exhausted (fallback).
    assert lease_from(single, second_session, minutes=15).kind == Kind.OVERFLOW
    # Hold over (20 min) but cool-down (10 min) not yet: still exhausted.
    assert lease_from(single, second_session, minutes=25).kind == Kind.OVERFLOW
    # After hold + cool-down: the number is reused, the old lease closed at its natural end.
    second = lease_from(single, second_session, minutes=31)
    assert second.kind == Kind.DYNAMIC and second.number_id == number.pk
    old = Lease.objects.get(pk=first.lease_id)
    assert old.released_at == at(20) and old.release_reason == LeaseReleaseReason.EXPIRED
    number.refresh_from_db()
    assert number.current_lease_id == second.lease_id


def test_expired_lease_of_a_returning_visitor_is_revived_if_nobody_took_the_number(pool):
    session = make_session()
    first = lease_from(pool, session)
    later = lease_from(pool, session, minutes=45)  # hold (20) is long over
    assert later.lease_id == first.lease_id and later.e164 == first.e164
    lease = Lease.objects.get(pk=first.lease_id)
    assert lease.last_seen_at == at(45) and lease.released_at is None


def test_returning_visitor_gets_a_new_number_when_theirs_was_taken(pool):
    single = make_pool(size=1, name="Single", cooldown_minutes=0)
    visitor_a, visitor_b = make_session(), make_session()
    first = lease_from(single, visitor_a)
    taken = lease_from(single, visitor_b, minutes=25)
    assert taken.number_id == first.number_id
    assert lease_from(single, visitor_a, minutes=26).kind == Kind.OVERFLOW


def test_exhaustion_fallback_shows_the_overflow_number_and_is_counted(pool, django_capture_on_commit_callbacks):
    overflow = make_number(number="+12125550188")
    NumberPool.objects.filter(pk=pool.pk).update(fallback_number=overflow)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            assert lease_from(pool, make_session()).kind == Kind.DYNAMIC
        results = [lease_from(pool, make_session()) for _ in range(2)]
    assert all(r.kind == Kind.OVERFLOW and r.e164 == "+12125550188" for r in results)
    assert all(not r.is_dynamic for r in results)
    stat = PoolStat.objects.get(pool=pool)
    assert (stat.leases, stat.exhaustions, stat.peak_concurrency) == (3, 2, 3)
    assert stat.hour == at(0).replace(minute=0, second=0)


def test_exhaustion_without_overflow_number_returns_no_number(pool):
    for _ in range(3):
        lease_from(pool, make_session())
    result = lease_from(pool, make_session())
    assert result.kind == Kind.OVERFLOW and result.e164 == ""  # the tag shows the canonical number


def test_exhaustion_reuse_oldest_reclaims_the_least_recently_active_lease(pool, django_capture_on_commit_callbacks):
    NumberPool.objects.filter(pk=pool.pk).update(exhaustion_policy=ExhaustionPolicy.REUSE_OLDEST)
    sessions = [make_session() for _ in range(3)]
    leases = [lease_from(pool, s, minutes=i) for i, s in enumerate(sessions)]
    lease_from(pool, sessions[0], minutes=5)  # session 0 active again: session 1 is now the oldest
    with django_capture_on_commit_callbacks(execute=True):
        newcomer = lease_from(pool, make_session(), minutes=6)
    assert newcomer.kind == Kind.DYNAMIC and newcomer.reclaimed
    assert newcomer.number_id == leases[1].number_id
    victim = Lease.objects.get(pk=leases[1].lease_id)
    assert victim.released_at == at(6) and victim.release_reason == LeaseReleaseReason.RECLAIMED
    assert Lease.objects.get(pk=newcomer.lease_id).reclaimed
    stat = PoolStat.objects.get(pool=pool)
    assert (stat.leases, stat.exhaustions) == (1, 1)
    # The victim comes back: its lease is gone, it gets one in turn (reclaimed again).
    again = lease_from(pool, sessions[1], minutes=7)
    assert again.reclaimed and again.lease_id != leases[1].lease_id


def test_empty_pool_serves_the_fallback(pool):
    empty = NumberPool.objects.create(name="Empty")
    result = number_for_session(pool_config(empty), make_session().pk, now=at())
    assert result.kind == Kind.OVERFLOW


def test_inactive_numbers_are_never_leased(pool):
    pool.numbers.update(active=False)
    assert lease_from(pool, make_session()).kind == Kind.OVERFLOW


def test_deleted_session_gets_nothing(pool):
    session = make_session()
    session_id = session.pk
    session.delete()
    assert number_for_session(pool_config(pool), session_id, now=at()) is None


def test_page_view_lease_without_session(pool):
    result = number_for_session(pool_config(pool), None, now=at())
    assert result.is_dynamic
    assert Lease.objects.get(pk=result.lease_id).session_id is None


def test_new_session_skips_the_lookup(pool):
    session = make_session()
    with CaptureQueriesContext(connection) as queries:
        lease_from(pool, session, new_session=True)
    assert not any("visitorsession" in q["sql"].lower() for q in queries)


def test_a_session_never_holds_two_numbers_of_a_pool(pool):
    """Two requests of one session racing (both saw no lease): the second finds the first's."""
    session = make_session()
    config = pool_config(pool)
    first = leasing._acquire(config, session.pk, at(), lock_session=True)
    second = leasing._acquire(config, session.pk, at(seconds=1), lock_session=True)
    assert first.lease_id == second.lease_id
    assert Lease.objects.filter(session=session).count() == 1


def test_release_lease_after_a_call_frees_the_number_after_cooldown(pool):
    NumberPool.objects.filter(pk=pool.pk).update(cooldown_minutes=5)
    session = make_session()
    leased = lease_from(pool, session)
    lease = Lease.objects.get(pk=leased.lease_id)
    assert release_lease(lease, LeaseReleaseReason.CALL, at=at(3))
    assert not release_lease(lease, LeaseReleaseReason.CALL, at=at(4))  # idempotent
    lease.refresh_from_db()
    assert lease.released_at == at(3) and lease.release_reason == LeaseReleaseReason.CALL
    number = TrackingNumber.objects.get(pk=leased.number_id)
    assert number.current_lease_id is None and number.idle_since == at(3)
    # The visitor gets a (different) number on the next page; the released one rests 5 min.
    nxt = lease_from(pool, session, minutes=4)
    assert nxt.lease_id != leased.lease_id and nxt.number_id != leased.number_id


def test_release_never_extends_a_lease_beyond_its_natural_end(pool):
    leased = lease_from(pool, make_session())
    release_lease(leased.lease_id, LeaseReleaseReason.CALL, at=at(90))
    assert Lease.objects.get(pk=leased.lease_id).released_at == at(20)


def test_lease_end_and_lease_at(pool):
    session = make_session()
    leased = lease_from(pool, session)
    lease_from(pool, session, minutes=10)  # refresh → ends at 30
    lease = Lease.objects.get(pk=leased.lease_id)
    assert lease_end(lease) == at(30)
    assert lease_end(lease, hold_minutes=5) == at(15)
    number = lease.number
    assert lease_at(number, at(29)) == lease
    assert lease_at(number, at(30)) is None  # half-open interval
    assert lease_at(number, at(-1)) is None
    assert leasing.latest_lease_before(number, at(45)) == lease
    assert leasing.is_live(lease, now=at(29)) and not leasing.is_live(lease, now=at(31))


def test_lease_history_is_kept_and_intervals_never_overlap(pool):
    single = make_pool(size=1, name="Single", cooldown_minutes=0, hold_minutes=5,
                       exhaustion_policy=ExhaustionPolicy.REUSE_OLDEST)
    minute = 0
    for i in range(6):
        lease_from(single, make_session(), minutes=minute)
        minute += 3 if i % 2 else 7  # alternately reclaimed and expired
    leases = list(Lease.objects.filter(pool=single).order_by("leased_at"))
    assert len(leases) == 6
    for before, after in zip(leases, leases[1:], strict=False):
        assert lease_end(before) <= after.leased_at


def test_release_expired_leases_housekeeping(pool):
    sessions = [make_session() for _ in range(3)]
    leases = [lease_from(pool, s) for s in sessions]
    lease_from(pool, sessions[0], minutes=15)  # still live at minute 30
    released = release_expired_leases(now=at(30))
    assert released == 2
    for result in leases[1:]:
        lease = Lease.objects.get(pk=result.lease_id)
        assert lease.released_at == at(20) and lease.release_reason == LeaseReleaseReason.EXPIRED
        number = TrackingNumber.objects.get(pk=result.number_id)
        assert number.current_lease_id is None and number.idle_since == at(20)
    assert Lease.objects.get(pk=leases[0].lease_id).released_at is None
    assert release_expired_leases(now=at(30)) == 0


def test_deactivating_a_number_releases_its_lease(pool):
    leased = lease_from(pool, make_session())
    number = TrackingNumber.objects.get(pk=leased.number_id)
    number.active = False
    number.save()
    lease = Lease.objects.get(pk=leased.lease_id)
    assert lease.released_at is not None and lease.release_reason == LeaseReleaseReason.DEACTIVATED
    assert TrackingNumber.objects.get(pk=number.pk).current_lease_id is None


def test_moving_a_number_out_of_its_pool_releases_its_lease(pool):
    leased = lease_from(pool, make_session())
    number = TrackingNumber.objects.get(pk=leased.number_id)
    number.pool = None
    number.save()
    assert Lease.objects.get(pk=leased.lease_id).release_reason == LeaseReleaseReason.DEACTIVATED


def test_editing_a_leased_number_keeps_its_lease(pool):
    leased = lease_from(pool, make_session(), minutes=24 * 60)  # live now-ish is not needed
    number = TrackingNumber.objects.get(pk=leased.number_id)
    number.label = "Renamed"
    number.save()
    assert Lease.objects.get(pk=leased.lease_id).release_reason == ""


def test_deactivating_or_deleting_a_pool_releases_its_leases(pool):
    results = [lease_from(pool, make_session()) for _ in range(2)]
    pool.active = False
    pool.save()
    assert all(Lease.objects.get(pk=r.lease_id).released_at is not None for r in results)
    other = make_pool(size=2, name="Other")
    result = lease_from(other, make_session())
    other.delete()
    lease = Lease.objects.get(pk=result.lease_id)
    assert lease.released_at is not None and lease.pool_id is None
    assert lease_end(lease) == lease.released_at


def test_deleting_a_leased_number_works(pool):
    leased = lease_from(pool, make_session())
    TrackingNumber.objects.get(pk=leased.number_id).delete()
    assert not Lease.objects.filter(pk=leased.lease_id).exists()
    assert release_number(leased.number_id, LeaseReleaseReason.DEACTIVATED) is False


def test_database_error_while_leasing_shows_the_fallback(pool, monkeypatch):
    from django.db import OperationalError

    def broken(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(leasing, "_lease_free_number", broken)
    result = lease_from(pool, make_session())
    assert result.kind == Kind.OVERFLOW
    assert TrackingNumber.objects.count() == 3  # the page's transaction is still usable


def test_pool_stat_upsert_accumulates(pool):
    when = at(10)
    leasing.record_pool_stat(pool.pk, when, leases=2)
    leasing.record_pool_stat(pool.pk, when, exhaustions=1, peak=3)
    leasing.record_pool_stat(pool.pk, when, leases=1, peak=2)
    stat = PoolStat.objects.get(pool=pool)
    assert (stat.leases, stat.exhaustions, stat.peak_concurrency) == (3, 1, 3)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("synchronous", [False, True])
def test_lease_commit_durability_setting(settings, synchronous):
    settings.WAGTAIL_CALLTRACKING = {**settings.WAGTAIL_CALLTRACKING, "LEASE_SYNCHRONOUS_COMMIT": synchronous}
    pool = make_pool(size=1, name="Durable")
    session = make_session()
    with CaptureQueriesContext(connection) as queries:
        assert number_for_session(pool_config(pool), session.pk).is_dynamic
    relaxed = any("synchronous_commit TO OFF" in q["sql"] for q in queries)
    assert relaxed is not synchronous


def test_lease_commit_is_never_relaxed_inside_the_callers_transaction(pool):
    with CaptureQueriesContext(connection) as queries:
        lease_from(pool, make_session())
    assert not any("synchronous_commit" in q["sql"] for q in queries)
