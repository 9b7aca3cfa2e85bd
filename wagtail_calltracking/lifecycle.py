"""Data retention: delete visitor journeys (page views, sessions, visitors) and the raw webhook
log once they are older than the configured retention, keeping what reports need.

What is kept: every call, with its attribution summary — the three ``CallTouch`` rows
(channel, source, medium, campaign, keyword, landing path, referrer domain) and the snapshot
fields copied onto the call at attribution (tracking source, confidence, click ids, GA ids).
Reports group calls by those, never by the session, so they read the same before and after
a purge. Leases are kept too (they carry no personal data once their session link is gone,
and late calls are attributed through them); a lease whose session is purged simply loses
that link, exactly like a lease shown to a visitor who did not consent.

What is deleted, in batches of ``batch_size`` rows (each batch its own short transaction, so
a purge of millions of rows never holds long locks and can be interrupted and re-run):

* page views viewed before the cut-off;
* sessions whose last activity is before the cut-off — except a session that still holds a
  live lease (its number is on someone's screen; it is purged by a later run);
* visitors first seen before the cut-off that have no session left;
* with ``webhook_log_days``: raw webhook log entries received before that cut-off that were
  processed, rejected or ignored (entries awaiting a replay are never deleted).

Run ``manage.py calltracking_purge`` daily from cron, or enqueue :data:`purge_task`
(django-tasks) from your scheduler; see ``docs/privacy.md``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_tasks import task

from .conf import ct_settings

logger = logging.getLogger("wagtail_calltracking.privacy")

DEFAULT_BATCH_SIZE = 5000
#: A batch that meets a concurrent write (a page view inserted for a session being purged)
#: is retried this many times before the run gives up on that batch.
BATCH_RETRIES = 3


@dataclass
class PurgeSummary:
    """What a purge removed (or, for a dry run, would remove)."""

    days: int | None = None
    cutoff: datetime | None = None
    dry_run: bool = False
    page_views: int = 0
    sessions: int = 0
    visitors: int = 0
    #: Sessions past the cut-off kept because they still hold a live lease.
    sessions_kept_live: int = 0
    #: Expired leases whose end was written down (their numbers return to the pool).
    leases_released: int = 0
    #: Leases (history) that lost the link to their purged session.
    leases_unlinked: int = 0
    #: Calls whose session link was removed; their attribution summary is kept.
    calls_unlinked: int = 0
    webhook_log_days: int | None = None
    webhook_events: int = 0

    def as_dict(self) -> dict:
        data = asdict(self)
        data["cutoff"] = self.cutoff.isoformat() if self.cutoff else None
        return data

    @property
    def removed(self) -> int:
        return self.page_views + self.sessions + self.visitors + self.webhook_events

    def lines(self) -> list[str]:
        verb = "would be deleted" if self.dry_run else "deleted"
        lines = []
        if self.cutoff is not None:
            lines.append(f"Journeys older than {self.days} days (before {self.cutoff:%Y-%m-%d %H:%M %Z}):")
            lines.append(f"  page views {verb}: {self.page_views}")
            lines.append(f"  sessions {verb}: {self.sessions}")
            lines.append(f"  visitors {verb}: {self.visitors}")
            if self.sessions_kept_live:
                lines.append(f"  sessions kept (they still hold a live number): {self.sessions_kept_live}")
            lines.append(f"  calls keeping their attribution summary without the session: {self.calls_unlinked}")
            lines.append(f"  leases kept as history without the session: {self.leases_unlinked}")
            if self.leases_released:
                lines.append(f"  expired leases closed: {self.leases_released}")
        if self.webhook_log_days is not None:
            lines.append(
                f"Raw webhook log entries older than {self.webhook_log_days} days {verb}: {self.webhook_events}"
            )
        return lines


def _positive_days(value, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive number of days, not {value!r}.")
    return value


def purge_expired_data(
    days: int | None = None,
    *,
    webhook_log_days: int | None = None,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
) -> PurgeSummary:
    """Delete journeys older than ``days`` (default: ``RETENTION_DAYS``) and, with
    ``webhook_log_days`` (default: ``WEBHOOK_LOG_RETENTION_DAYS``), the settled raw webhook
    log older than that. Nothing is purged for a retention that is None (keep forever).

    Returns a :class:`PurgeSummary`. Raises ValueError for a retention that is not a
    positive number of days."""
    days = _positive_days(ct_settings.RETENTION_DAYS if days is None else days, "RETENTION_DAYS")
    if webhook_log_days is None:
        webhook_log_days = ct_settings.WEBHOOK_LOG_RETENTION_DAYS
    webhook_log_days = _positive_days(webhook_log_days, "WEBHOOK_LOG_RETENTION_DAYS")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    now = now or timezone.now()
    summary = PurgeSummary(days=days, dry_run=dry_run, webhook_log_days=webhook_log_days)
    if days is not None:
        summary.cutoff = now - timedelta(days=days)
        _purge_journeys(summary, now, batch_size)
    if webhook_log_days is not None:
        _purge_webhook_log(summary, now - timedelta(days=webhook_log_days), batch_size)
    if not dry_run:
        logger.info("Retention purge: %s", summary.as_dict())
    return summary


# --- journeys -------------------------------------------------------------------------------


def _sessions_holding_live_leases():
    """Ids of sessions whose lease is still unreleased (after the expired ones were closed,
    an unreleased lease is a live one): a number on a visitor's screen."""
    from .models import Lease

    return Lease.objects.filter(released_at__isnull=True, session__isnull=False).values("session_id")


def _purge_journeys(summary: PurgeSummary, now: datetime, batch_size: int) -> None:
    from .models import Call, Lease, PageView, Visitor, VisitorSession
    from .numbers.leasing import release_expired_leases

    cutoff = summary.cutoff
    old_page_views = PageView.objects.filter(viewed_at__lt=cutoff)
    old_sessions = VisitorSession.objects.filter(last_activity_at__lt=cutoff)
    if summary.dry_run:
        live = old_sessions.filter(pk__in=_sessions_holding_live_leases())
        summary.page_views = old_page_views.count()
        purgeable = old_sessions.exclude(pk__in=live.values("pk"))
        summary.sessions = purgeable.count()
        summary.sessions_kept_live = live.count()
        summary.calls_unlinked = Call.objects.filter(session__in=purgeable.values("pk")).count()
        summary.leases_unlinked = Lease.objects.filter(session__in=purgeable.values("pk")).count()
        summary.visitors = (
            Visitor.objects.filter(created_at__lt=cutoff)
            .exclude(pk__in=VisitorSession.objects.exclude(pk__in=purgeable.values("pk")).values("visitor_id"))
            .count()
        )
        return

    # Leases that ended are closed first (at their natural end, as leasing itself would), so
    # that any lease still unreleased afterwards is live and protects its session.
    summary.leases_released = release_expired_leases(now)

    summary.page_views = _delete_in_batches(old_page_views, batch_size)

    live_sessions = _sessions_holding_live_leases()
    summary.sessions_kept_live = old_sessions.filter(pk__in=live_sessions).count()
    purgeable = old_sessions.exclude(pk__in=live_sessions)
    while True:
        ids = list(purgeable.order_by().values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        _retrying(lambda ids=ids: _delete_sessions(ids, summary))

    orphans = Visitor.objects.filter(created_at__lt=cutoff, sessions__isnull=True)
    summary.visitors = _delete_in_batches(orphans, batch_size, unlink_calls=True)


def _delete_sessions(ids: list[int], summary: PurgeSummary) -> None:
    """Delete one batch of sessions, their remaining page views and the links pointing at them
    (the call's attribution summary stays: touches keep their copied fields)."""
    from .models import Call, CallTouch, Lease, PageView, VisitorSession

    with transaction.atomic():
        page_views = PageView.objects.filter(session_id__in=ids).delete()[0]
        leases = Lease.objects.filter(session_id__in=ids).update(session=None)
        calls = Call.objects.filter(session_id__in=ids).update(session=None)
        CallTouch.objects.filter(session_id__in=ids).update(session=None)
        Call.candidate_sessions.through.objects.filter(visitorsession_id__in=ids).delete()
        sessions = VisitorSession.objects.filter(pk__in=ids).delete()[1].get(VisitorSession._meta.label, 0)
    # Counted once the batch has committed (a batch rolled back and retried counts once).
    summary.page_views += page_views
    summary.leases_unlinked += leases
    summary.calls_unlinked += calls
    summary.sessions += sessions


def _delete_in_batches(queryset, batch_size: int, *, unlink_calls: bool = False) -> int:
    """Delete the rows of ``queryset`` a batch at a time: each batch is one short transaction
    (``DELETE … WHERE id IN (SELECT id … LIMIT n)``, plus unlinking calls for visitors)."""
    from django.db.models import Subquery

    from .models import Call

    deleted = 0
    model = queryset.model
    while True:
        # Ordered, so that both statements of a batch see the same rows.
        ids = queryset.order_by("pk").values("pk")[:batch_size]
        if connection.features.allow_sliced_subqueries_with_in:
            batch = Subquery(ids)
        else:  # MySQL: no LIMIT in an IN subquery
            batch = [row["pk"] for row in ids]

        def delete_batch(batch=batch):
            with transaction.atomic():
                if unlink_calls:
                    Call.objects.filter(visitor_id__in=batch).update(visitor=None)
                return model.objects.filter(pk__in=batch).delete()[1].get(model._meta.label, 0)

        count = _retrying(delete_batch)
        deleted += count
        if count < batch_size:
            return deleted


def _retrying(operation):
    """Run one batch; a concurrent insert that references a row being deleted (PostgreSQL
    checks foreign keys at commit) rolls the batch back, and it is simply tried again."""
    for attempt in range(BATCH_RETRIES):
        try:
            return operation()
        except IntegrityError:
            if attempt == BATCH_RETRIES - 1:
                raise
            logger.info("A purge batch met a concurrent write; retrying it")
    return None


# --- the raw webhook log ----------------------------------------------------------------------


def _purge_webhook_log(summary: PurgeSummary, cutoff: datetime, batch_size: int) -> None:
    from .models import WebhookEvent, WebhookEventStatus

    settled = WebhookEvent.objects.filter(
        received_at__lt=cutoff,
        status__in=(WebhookEventStatus.PROCESSED, WebhookEventStatus.REJECTED, WebhookEventStatus.IGNORED),
    )
    if summary.dry_run:
        summary.webhook_events = settled.count()
        return
    summary.webhook_events = _delete_in_batches(settled, batch_size)


# --- the periodic task ------------------------------------------------------------------------


@task()
def purge_task(days: int | None = None, webhook_log_days: int | None = None) -> dict:
    """django-tasks task: :func:`purge_expired_data` with the configured retention. Enqueue it
    daily (``purge_task.enqueue()`` from cron or your scheduler; ``manage.py db_worker`` runs
    it with the database backend). Does nothing when no retention is configured."""
    return purge_expired_data(days, webhook_log_days=webhook_log_days).as_dict()
