"""Atomic leasing of pool numbers (dynamic number insertion).

Lease semantics — attribution (``attribution.py``) and the admin rely on them:

* A lease covers the half-open interval ``[leased_at, end)`` where ``end`` is
  ``released_at`` when set, else ``last_seen_at`` + the pool's hold time (:func:`lease_end`).
* For one number, lease intervals never overlap: a number is held by at most one live
  session at any instant. :func:`lease_at` returns the lease covering an instant.
* ``TrackingNumber.current_lease`` is the number's latest lease. It is *live* while
  ``lease_end(lease) > now``. Expiry is lazy: nothing has to run when a visitor leaves; the
  next leasing transaction that takes the number (or ``manage.py calltracking_release_leases``)
  writes ``released_at`` = the lease's natural end, so history reads the same either way.
* Leases are never deleted when released: they are the history late calls are attributed
  through. (Deleting a *number* deletes its leases; deactivate numbers instead.)
* ``last_seen_at`` is refreshed at most once per ``LEASE_REFRESH_SECONDS`` (one UPDATE), so
  a lease can end up to that long before the visitor's real last activity + hold.
* ``reclaimed=True``: the number was taken from another live session because the pool was
  exhausted (policy "reuse the least recently active"); calls around ``leased_at`` are
  ambiguous. The previous lease is released at the same instant with reason ``reclaimed``.
* A released number rests for the pool's cool-down before another visitor gets it.

Concurrency: every change to a number's ``current_lease``/``idle_since`` happens in a
transaction holding that number's row lock. On PostgreSQL (and other databases with
``SELECT … FOR NO KEY UPDATE SKIP LOCKED``) concurrent visitors lock *different* free
numbers — no table or global lock, no retries: a locked number is simply skipped. (``NO KEY``:
the row locks never block inserts whose foreign keys point at the locked rows, such as page
views of the session.) On SQLite the
transaction first takes the database write lock (a no-op write), so concurrent leasing
waits on ``timeout`` instead of failing on a lock upgrade, whatever the project's
``transaction_mode``. The one race that remains — a visitor refreshing a lease at the
instant another transaction finds it expired — is settled on the lease row itself: the
expiring UPDATE re-checks ``last_seen_at`` and the refreshing UPDATE re-checks
``released_at``, so exactly one of them wins.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import DatabaseError, connection, transaction
from django.db.models import Case, DateTimeField, ExpressionWrapper, F, Q, Value, When
from django.db.models.functions import Coalesce, Least
from django.utils import timezone

from ..conf import ct_settings

logger = logging.getLogger(__name__)

#: Hold time assumed for a lease whose pool was deleted (its lease was released then, so
#: this only matters for rows written by hand).
DEFAULT_HOLD_MINUTES = 20
#: Free numbers tried per leasing transaction before giving up on a pathological race.
MAX_CANDIDATES = 8


class Kind:
    DYNAMIC = "dynamic"
    #: The pool was exhausted: the overflow number or the site's canonical number is shown.
    OVERFLOW = "overflow"


@dataclass(frozen=True)
class LeaseResult:
    """The outcome of asking a pool for a session's number."""

    kind: str
    e164: str = ""
    number_id: int | None = None
    lease_id: int | None = None
    reclaimed: bool = False
    #: The session's channel when it was read on the way (None when not read).
    channel: str | None = None

    @property
    def is_dynamic(self) -> bool:
        return self.kind == Kind.DYNAMIC


@dataclass(frozen=True)
class SessionLease:
    """The row read by :func:`lookup_session_lease`: the session's channel and its most
    recent unreleased lease in the given pools (live or expired)."""

    channel: str
    lease_id: int | None
    pool_id: int | None
    number_id: int | None
    e164: str
    last_seen_at: datetime | None
    number_active: bool
    number_current_lease_id: int | None
    reclaimed: bool = False

    def is_live(self, hold_minutes: int, now: datetime) -> bool:
        return (
            self.lease_id is not None
            and self.number_active
            and self.number_current_lease_id == self.lease_id
            and self.last_seen_at + timedelta(minutes=hold_minutes) > now
        )


# --- reading leases ------------------------------------------------------------------------


def lease_end(lease, hold_minutes: int | None = None) -> datetime:
    """When ``lease`` ends (or will end if the visitor does nothing more): ``released_at``,
    else ``last_seen_at`` + the pool's hold time. May lie in the future for a live lease."""
    if lease.released_at is not None:
        return lease.released_at
    if hold_minutes is None:
        pool = lease.pool if lease.pool_id else None
        hold_minutes = pool.hold_minutes if pool is not None else DEFAULT_HOLD_MINUTES
    return lease.last_seen_at + timedelta(minutes=hold_minutes)


def is_live(lease, now: datetime | None = None, hold_minutes: int | None = None) -> bool:
    return lease_end(lease, hold_minutes) > (now or timezone.now())


def latest_lease_before(number, when: datetime):
    """The number's lease that started last at or before ``when`` (live then or not), with
    its pool loaded; None if the number had never been leased by then. Because a number's
    lease intervals never overlap, it is the only lease that can cover ``when``."""
    from ..models import Lease

    number_id = getattr(number, "pk", number)
    return (
        Lease.objects.filter(number_id=number_id, leased_at__lte=when)
        .select_related("pool", "session")
        .order_by("-leased_at", "-pk")
        .first()
    )


def lease_at(number, when: datetime):
    """The lease of ``number`` (instance or id) live at ``when``, or None."""
    lease = latest_lease_before(number, when)
    if lease is not None and lease_end(lease) > when:
        return lease
    return None


def lookup_session_lease(session_id: int, pool_ids) -> SessionLease | None:
    """One SELECT: the session's channel and its latest unreleased lease in ``pool_ids``.
    None when the session does not exist (erased, purged).

    The query runs on every page view that shows a pool number, so it is plain SQL (built
    once per database vendor and number of pools): the ORM's query building would cost more
    than the indexed lookup itself."""
    pool_ids = [int(pool_id) for pool_id in pool_ids]
    if not pool_ids:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_lookup_sql(connection.vendor, len(pool_ids)), [*pool_ids, int(session_id)])
        row = cursor.fetchone()
    if row is None:
        return None
    channel, lease_id, pool_id, number_id, e164, last_seen, active, current, reclaimed = row
    return SessionLease(
        channel=channel,
        lease_id=lease_id,
        pool_id=pool_id,
        number_id=number_id,
        e164=e164 or "",
        last_seen_at=_datetime_from_db(last_seen),
        number_active=bool(active),
        number_current_lease_id=current,
        reclaimed=bool(reclaimed),
    )


@functools.lru_cache(maxsize=32)
def _lookup_sql(vendor: str, pool_count: int) -> str:
    from ..models import Lease, TrackingNumber, VisitorSession

    qn = connection.ops.quote_name

    def column(model, field):
        return qn(model._meta.get_field(field).column)

    session, lease, number = (qn(m._meta.db_table) for m in (VisitorSession, Lease, TrackingNumber))
    placeholders = ", ".join(["%s"] * pool_count)
    return (
        f"SELECT s.{column(VisitorSession, 'channel')}, l.{column(Lease, 'id')}, "  # noqa: S608
        f"l.{column(Lease, 'pool')}, l.{column(Lease, 'number')}, n.{column(TrackingNumber, 'number')}, "
        f"l.{column(Lease, 'last_seen_at')}, n.{column(TrackingNumber, 'active')}, "
        f"n.{column(TrackingNumber, 'current_lease')}, l.{column(Lease, 'reclaimed')} "
        f"FROM {session} s "
        f"LEFT JOIN {lease} l ON l.{column(Lease, 'session')} = s.{column(VisitorSession, 'id')} "
        f"AND l.{column(Lease, 'released_at')} IS NULL AND l.{column(Lease, 'pool')} IN ({placeholders}) "
        f"LEFT JOIN {number} n ON n.{column(TrackingNumber, 'id')} = l.{column(Lease, 'number')} "
        f"WHERE s.{column(VisitorSession, 'id')} = %s "
        f"ORDER BY CASE WHEN l.{column(Lease, 'id')} IS NULL THEN 1 ELSE 0 END, "
        f"l.{column(Lease, 'leased_at')} DESC, l.{column(Lease, 'id')} DESC "
        "LIMIT 1"
    )


def _datetime_from_db(value):
    """A datetime column read with a raw cursor (SQLite returns text or naive UTC)."""
    if value is None:
        return None
    convert = getattr(connection.ops, "convert_datetimefield_value", None)
    if convert is not None:
        value = convert(value, None, connection)
    if isinstance(value, str):
        from django.utils.dateparse import parse_datetime

        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


# --- taking numbers -------------------------------------------------------------------------


def number_for_session(pool, session_id: int | None, *, lookup: SessionLease | None = None,
                       new_session: bool = False, now: datetime | None = None) -> LeaseResult | None:
    """The session's number from ``pool`` (a ``rules.PoolConfig``): its live lease (refreshed
    at most once per ``LEASE_REFRESH_SECONDS``), else a newly leased number, else the pool's
    exhaustion policy. None when the session no longer exists.

    ``lookup``: the session's row if the caller already read it (no second SELECT).
    ``new_session``: the session was created in this request — it cannot hold a lease yet,
    so the lookup is skipped. ``session_id=None`` leases for one page view (no consent).
    """
    now = now or timezone.now()
    previous = None
    if session_id is not None and not new_session:
        if lookup is None:
            lookup = lookup_session_lease(session_id, (pool.id,))
            if lookup is None:
                return None
        if lookup.lease_id is not None and lookup.pool_id == pool.id:
            if lookup.is_live(pool.hold_minutes, now):
                if _refresh(lookup, now):
                    return LeaseResult(
                        kind=Kind.DYNAMIC,
                        e164=lookup.e164,
                        number_id=lookup.number_id,
                        lease_id=lookup.lease_id,
                        reclaimed=lookup.reclaimed,
                        channel=lookup.channel,
                    )
            else:
                previous = lookup
    try:
        result = _acquire(pool, session_id, now, previous=previous, lock_session=not new_session)
    except DatabaseError:
        # The atomic block rolled back (to its savepoint when nested): the page still renders.
        logger.exception("Leasing a number from pool %s failed; showing the fallback", pool.id)
        return LeaseResult(kind=Kind.OVERFLOW, e164=pool.fallback_e164, number_id=pool.fallback_number_id)
    if result is not None and lookup is not None and result.channel is None:
        result = LeaseResult(**{**result.__dict__, "channel": lookup.channel})
    return result


def _refresh(lookup: SessionLease, now: datetime) -> bool:
    """Keep a live lease alive; False if it was released under us (take another number)."""
    from ..models import Lease

    interval = timedelta(seconds=int(ct_settings.LEASE_REFRESH_SECONDS))
    if now - lookup.last_seen_at < interval:
        return True
    return bool(
        Lease.objects.filter(pk=lookup.lease_id, released_at__isnull=True).update(last_seen_at=now)
    )


def _take_write_lock() -> None:
    """SQLite: take the database write lock first (a write that touches no row). In a
    deferred transaction a read-then-write upgrade fails at once under contention; a
    transaction that starts with a write waits for the lock instead."""
    if connection.vendor == "sqlite":
        from ..models import TrackingNumber

        table = connection.ops.quote_name(TrackingNumber._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET id = id WHERE 0 = 1")  # noqa: S608


def _relax_commit(outermost: bool) -> None:
    """PostgreSQL: don't wait for the WAL flush when this leasing transaction commits, unless
    ``LEASE_SYNCHRONOUS_COMMIT``. Visibility and locking are unchanged (other transactions see
    the lease at once, the no-double-lease guarantee holds); only a database *crash* within
    the last fraction of a second could lose the newest leases — the same trade the middleware
    makes for sessions and page views. Never inside the caller's own transaction."""
    if outermost and connection.vendor == "postgresql" and not ct_settings.LEASE_SYNCHRONOUS_COMMIT:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _acquire(pool, session_id, now, *, previous=None, lock_session=True) -> LeaseResult | None:
    from ..models import VisitorSession

    outermost = transaction.get_autocommit()
    with transaction.atomic():
        _relax_commit(outermost)
        _take_write_lock()
        if session_id is not None and lock_session:
            # Serialise one session's concurrent requests (parallel tabs, prefetches) so that
            # it never ends up holding two numbers; other sessions are not blocked.
            locked = list(
                VisitorSession.objects.select_for_update(no_key=True).filter(pk=session_id).values_list("pk", flat=True)
            )
            if not locked:
                return None
            current = lookup_session_lease(session_id, (pool.id,))
            if current is not None and current.lease_id is not None:
                if current.is_live(pool.hold_minutes, now):
                    return LeaseResult(
                        kind=Kind.DYNAMIC,
                        e164=current.e164,
                        number_id=current.number_id,
                        lease_id=current.lease_id,
                        reclaimed=current.reclaimed,
                        channel=current.channel,
                    )
                previous = current
        if previous is not None:
            revived = _revive(pool, previous, now)
            if revived is not None:
                return revived
        result = _lease_free_number(pool, session_id, now)
        if result is None:
            result = _exhausted(pool, session_id, now)
        return result


def _revive(pool, previous: SessionLease, now) -> LeaseResult | None:
    """The session's lease expired but nobody took the number since: keep it (the visitor
    sees the same number again, and no other session held it in between)."""
    from ..models import Lease, TrackingNumber

    if not previous.number_active or previous.number_current_lease_id != previous.lease_id:
        return None
    locked = list(
        TrackingNumber.objects.filter(
            pk=previous.number_id, current_lease_id=previous.lease_id, active=True, pool_id=pool.id
        )
        .select_for_update(skip_locked=True, no_key=True)
        .values_list("pk", flat=True)
    )
    if not locked:
        return None
    if not Lease.objects.filter(pk=previous.lease_id, released_at__isnull=True).update(last_seen_at=now):
        return None
    return LeaseResult(
        kind=Kind.DYNAMIC,
        e164=previous.e164,
        number_id=previous.number_id,
        lease_id=previous.lease_id,
        reclaimed=previous.reclaimed,
    )


def _lease_free_number(pool, session_id, now) -> LeaseResult | None:
    """Lease the free number idle longest (past its cool-down); None if there is none."""
    from ..models import Lease, LeaseReleaseReason, TrackingNumber

    hold = timedelta(minutes=pool.hold_minutes)
    cooldown = timedelta(minutes=pool.cooldown_minutes)
    expired_before = now - hold - cooldown
    skipped: list[int] = []
    for _attempt in range(MAX_CANDIDATES):
        candidate = (
            TrackingNumber.objects.filter(pool_id=pool.id, active=True)
            .filter(
                Q(current_lease__isnull=True)
                & (Q(idle_since__isnull=True) | Q(idle_since__lte=now - cooldown))
                | Q(current_lease__released_at__isnull=False, current_lease__released_at__lte=now - cooldown)
                | Q(current_lease__released_at__isnull=True, current_lease__last_seen_at__lte=expired_before)
            )
            .exclude(pk__in=skipped)
            .annotate(
                free_since=Coalesce(
                    "idle_since",
                    "current_lease__released_at",
                    ExpressionWrapper(F("current_lease__last_seen_at") + hold, output_field=DateTimeField()),
                )
            )
            .order_by(F("free_since").asc(nulls_first=True), "pk")
            .select_for_update(skip_locked=True, of=("self",), no_key=True)
            .values_list("pk", "number", "current_lease_id")
            .first()
        )
        if candidate is None:
            return None
        number_id, e164, old_lease_id = candidate
        if old_lease_id is not None:
            # Close the previous lease at its natural end. The WHERE re-checks the expiry on
            # the lease row itself: if the visitor refreshed it meanwhile, nothing is updated
            # and this number is skipped.
            closed = (
                Lease.objects.filter(pk=old_lease_id)
                .filter(Q(released_at__isnull=False) | Q(last_seen_at__lte=expired_before))
                .update(
                    released_at=Coalesce(
                        F("released_at"),
                        ExpressionWrapper(F("last_seen_at") + hold, output_field=DateTimeField()),
                    ),
                    release_reason=Case(
                        When(released_at__isnull=True, then=Value(LeaseReleaseReason.EXPIRED)),
                        default=F("release_reason"),
                    ),
                )
            )
            if not closed:
                skipped.append(number_id)
                continue
        lease = Lease.objects.create(
            number_id=number_id, pool_id=pool.id, session_id=session_id, leased_at=now, last_seen_at=now
        )
        TrackingNumber.objects.filter(pk=number_id).update(current_lease_id=lease.pk, idle_since=None)
        _record_after_commit(pool.id, now, leases=1)
        return LeaseResult(kind=Kind.DYNAMIC, e164=e164, number_id=number_id, lease_id=lease.pk)
    return None


def _exhausted(pool, session_id, now) -> LeaseResult:
    """Every number is held: apply the pool's exhaustion policy and count the event."""
    from ..models import ExhaustionPolicy, Lease, LeaseReleaseReason, TrackingNumber

    if pool.exhaustion_policy == ExhaustionPolicy.REUSE_OLDEST:
        hold = timedelta(minutes=pool.hold_minutes)
        victim = (
            TrackingNumber.objects.filter(
                pool_id=pool.id, active=True, current_lease__isnull=False
            )
            .order_by("current_lease__last_seen_at", "pk")
            .select_for_update(skip_locked=True, of=("self",), no_key=True)
            .values_list("pk", "number", "current_lease_id")
            .first()
        )
        if victim is not None:
            number_id, e164, old_lease_id = victim
            Lease.objects.filter(pk=old_lease_id, released_at__isnull=True).update(
                released_at=Least(
                    Value(now, output_field=DateTimeField()),
                    ExpressionWrapper(F("last_seen_at") + hold, output_field=DateTimeField()),
                ),
                release_reason=LeaseReleaseReason.RECLAIMED,
            )
            lease = Lease.objects.create(
                number_id=number_id,
                pool_id=pool.id,
                session_id=session_id,
                leased_at=now,
                last_seen_at=now,
                reclaimed=True,
            )
            TrackingNumber.objects.filter(pk=number_id).update(current_lease_id=lease.pk, idle_since=None)
            _record_after_commit(pool.id, now, leases=1, exhaustions=1, peak=pool.size)
            return LeaseResult(
                kind=Kind.DYNAMIC, e164=e164, number_id=number_id, lease_id=lease.pk, reclaimed=True
            )
    _record_after_commit(pool.id, now, exhaustions=1, peak=pool.size)
    return LeaseResult(kind=Kind.OVERFLOW, e164=pool.fallback_e164, number_id=pool.fallback_number_id)


# --- releasing ------------------------------------------------------------------------------


def release_lease(lease, reason: str, at: datetime | None = None) -> bool:
    """Release ``lease`` (e.g. after a call, with ``RELEASE_NUMBER_AFTER_CALL``): it ends at
    ``at`` (default now) or at its natural end if that came first, and its number becomes
    free after the cool-down. Idempotent: False when the lease was already released."""
    from ..models import Lease, TrackingNumber

    at = at or timezone.now()
    lease_id = getattr(lease, "pk", lease)
    with transaction.atomic():
        _take_write_lock()
        row = Lease.objects.filter(pk=lease_id).select_related("pool").first()
        if row is None:
            return False
        number = (
            TrackingNumber.objects.select_for_update(no_key=True).filter(pk=row.number_id)
            .values_list("current_lease_id", flat=True).first()
        )
        end = min(at, lease_end(row)) if row.released_at is None else row.released_at
        end = max(end, row.leased_at)
        released = bool(
            Lease.objects.filter(pk=lease_id, released_at__isnull=True).update(
                released_at=end, release_reason=reason
            )
        )
        if number == lease_id:
            TrackingNumber.objects.filter(pk=row.number_id, current_lease_id=lease_id).update(
                current_lease=None, idle_since=end
            )
    if isinstance(lease, Lease) and released:
        lease.released_at, lease.release_reason = end, reason
    return released


def release_number(number, reason: str, at: datetime | None = None) -> bool:
    """Release the live lease of ``number`` (instance or id), if any: the number was
    deactivated, deleted or removed from its pool."""
    from ..models import TrackingNumber

    number_id = getattr(number, "pk", number)
    lease_id = TrackingNumber.objects.filter(pk=number_id).values_list("current_lease_id", flat=True).first()
    if not lease_id:
        return False
    return release_lease(lease_id, reason, at)


def release_expired_leases(now: datetime | None = None, batch_size: int = 500) -> int:
    """Write ``released_at`` (the natural end) on every lease that has ended, and free
    their numbers. Optional housekeeping (leasing expires leases lazily): keeps
    ``current_lease`` tidy for reports. Returns the number of leases released."""
    from ..models import Lease, LeaseReleaseReason, NumberPool, TrackingNumber

    now = now or timezone.now()
    total = 0
    holds = dict(NumberPool.objects.values_list("pk", "hold_minutes"))
    for pool_id, hold_minutes in holds.items():
        hold = timedelta(minutes=hold_minutes)
        while True:
            with transaction.atomic():
                _take_write_lock()
                rows = list(
                    TrackingNumber.objects.filter(
                        current_lease__pool_id=pool_id,
                        current_lease__released_at__isnull=True,
                        current_lease__last_seen_at__lte=now - hold,
                    )
                    .select_for_update(skip_locked=True, of=("self",), no_key=True)
                    .values_list("pk", "current_lease_id")[:batch_size]
                )
                for number_id, lease_id in rows:
                    Lease.objects.filter(
                        pk=lease_id, released_at__isnull=True, last_seen_at__lte=now - hold
                    ).update(
                        released_at=ExpressionWrapper(F("last_seen_at") + hold, output_field=DateTimeField()),
                        release_reason=LeaseReleaseReason.EXPIRED,
                    )
                    TrackingNumber.objects.filter(pk=number_id, current_lease_id=lease_id).update(
                        current_lease=None,
                        idle_since=Lease.objects.filter(pk=lease_id).values("released_at")[:1],
                    )
                total += len(rows)
            if len(rows) < batch_size:
                break
        # Unreleased leases no number points at any more (superseded by hand, or left by a
        # pool move) end at their natural end too.
        orphans = Lease.objects.filter(
            pool_id=pool_id, released_at__isnull=True, last_seen_at__lte=now - hold
        ).exclude(pk__in=TrackingNumber.objects.filter(current_lease__isnull=False).values("current_lease_id"))
        total += orphans.update(
            released_at=ExpressionWrapper(F("last_seen_at") + hold, output_field=DateTimeField()),
            release_reason=LeaseReleaseReason.EXPIRED,
        )
    return total


# --- pool statistics ------------------------------------------------------------------------


def _record_after_commit(pool_id: int, now: datetime, *, leases=0, exhaustions=0, peak=0) -> None:
    transaction.on_commit(
        lambda: record_pool_stat(pool_id, now, leases=leases, exhaustions=exhaustions, peak=peak),
        robust=True,
    )


def record_pool_stat(pool_id: int, when: datetime, *, leases=0, exhaustions=0, peak=0) -> None:
    """Add to the hourly rollup of ``pool_id`` in one statement (an upsert). Runs after the
    leasing transaction commits, so the hot rollup row is locked for one statement only."""
    from ..models import PoolStat

    hour = when.replace(minute=0, second=0, microsecond=0)
    opts = PoolStat._meta
    if connection.vendor in ("postgresql", "sqlite"):
        qn = connection.ops.quote_name
        table = qn(opts.db_table)
        hour_value = opts.get_field("hour").get_db_prep_value(hour, connection)
        if connection.vendor == "postgresql":
            greatest = "GREATEST"
            values = "SELECT %s::bigint, %s::timestamptz, %s::integer, %s::integer, %s::integer"
            if transaction.get_autocommit():
                # A statistic, committed on its own: don't wait for a WAL flush (a database
                # crash can lose the last fraction of a second of counts, never a lease).
                values += " WHERE set_config('synchronous_commit', 'off', true) IS NOT NULL"
        else:
            greatest = "MAX"
            values = "SELECT %s, %s, %s, %s, %s WHERE true"  # WHERE: SQLite's upsert-after-SELECT rule
        sql = (
            f"INSERT INTO {table} (pool_id, hour, leases, exhaustions, peak_concurrency) "  # noqa: S608
            f"{values} "
            "ON CONFLICT (pool_id, hour) DO UPDATE SET "
            f"leases = {table}.leases + excluded.leases, "
            f"exhaustions = {table}.exhaustions + excluded.exhaustions, "
            f"peak_concurrency = {greatest}({table}.peak_concurrency, excluded.peak_concurrency)"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [pool_id, hour_value, leases, exhaustions, peak])
        return
    # Other databases: update, else insert, else (lost the insert race) update.
    from django.db import IntegrityError

    def update():
        return PoolStat.objects.filter(pool_id=pool_id, hour=hour).update(
            leases=F("leases") + leases,
            exhaustions=F("exhaustions") + exhaustions,
            peak_concurrency=Case(
                When(peak_concurrency__lt=peak, then=Value(peak)), default=F("peak_concurrency")
            ),
        )

    if update():
        return
    try:
        with transaction.atomic():
            PoolStat.objects.create(
                pool_id=pool_id, hour=hour, leases=leases, exhaustions=exhaustions, peak_concurrency=peak
            )
    except IntegrityError:
        update()
