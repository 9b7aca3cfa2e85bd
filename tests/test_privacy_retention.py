"""Retention: ``calltracking_purge`` / ``purge_expired_data`` / ``purge_task`` delete old page
views, sessions and visitors (and the settled raw webhook log) in batches, keep every call's
attribution summary so reports stay right, and keep leases consistent."""

import datetime
import io
import json

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from wagtail_calltracking.admin.queries import with_attribution
from wagtail_calltracking.lifecycle import purge_expired_data, purge_task
from wagtail_calltracking.models import (
    Call,
    CallTouch,
    Lease,
    LeaseReleaseReason,
    PageView,
    TouchModel,
    Visitor,
    VisitorSession,
    WebhookEvent,
    WebhookEventStatus,
)

from .admin_fixtures import journey_call
from .factories import make_pool, make_session
from .privacy_fixtures import PAID_LANDING, ring, shown_number

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_caches")]

DAY = datetime.timedelta(days=1)


def calltracking_settings(**values):
    return override_settings(WAGTAIL_CALLTRACKING={**settings.WAGTAIL_CALLTRACKING, **values})


def age(days, *, visitor=None, pages=2, **fields):
    """A finished session that started ``days`` ago, with ``pages`` page views."""
    started = timezone.now() - days * DAY
    session = make_session(visitor, started_at=started, last_activity_at=started + datetime.timedelta(minutes=5),
                           **fields)
    if visitor is None:
        Visitor.objects.filter(pk=session.visitor_id).update(created_at=started)
    PageView.objects.bulk_create(
        PageView(session=session, viewed_at=started + datetime.timedelta(minutes=index), path=f"/p{index}/")
        for index in range(pages)
    )
    return session


def report_rows():
    """What the reports group calls by, under every attribution model."""
    rows = {}
    for model in TouchModel.values:
        rows[model] = sorted(
            with_attribution(Call.objects.all(), model).values_list(
                "pk", "ct_channel", "ct_source", "ct_medium", "ct_campaign", "ct_keyword", "ct_landing_path"
            )
        )
    return rows


def test_purge_deletes_old_journeys_and_keeps_recent_ones(db):
    old = age(40)
    recent = age(5)
    summary = purge_expired_data(30)
    assert not VisitorSession.objects.filter(pk=old.pk).exists()
    assert not Visitor.objects.filter(pk=old.visitor_id).exists()
    assert VisitorSession.objects.filter(pk=recent.pk).exists()
    assert PageView.objects.filter(session=recent).count() == 2
    assert (summary.page_views, summary.sessions, summary.visitors) == (2, 1, 1)
    assert summary.removed == 4


def test_a_returning_visitors_recent_visits_and_identity_are_kept(db):
    visitor = age(60).visitor
    age(2, visitor=visitor)
    summary = purge_expired_data(30)
    assert Visitor.objects.filter(pk=visitor.pk).exists()
    assert VisitorSession.objects.filter(visitor=visitor).count() == 1
    assert summary.visitors == 0 and summary.sessions == 1


def test_old_page_views_of_a_continuing_session_are_deleted(db):
    session = age(40, pages=3)
    VisitorSession.objects.filter(pk=session.pk).update(last_activity_at=timezone.now())
    PageView.objects.create(session=session, path="/today/")
    summary = purge_expired_data(30)
    assert list(PageView.objects.filter(session=session).values_list("path", flat=True)) == ["/today/"]
    assert summary.sessions == 0 and summary.page_views == 3


def test_reports_are_the_same_after_the_purge(site):
    old_call = journey_call(started_at=timezone.now() - 45 * DAY, visits=3)
    VisitorSession.objects.filter(visitor=old_call.visitor).update(
        last_activity_at=timezone.now() - 44 * DAY
    )
    Visitor.objects.filter(pk=old_call.visitor_id).update(created_at=timezone.now() - 50 * DAY)
    recent_call = journey_call(caller="+13125550111")
    before = report_rows()
    summary = purge_expired_data(30)
    assert summary.sessions == 3 and summary.calls_unlinked == 1
    assert report_rows() == before
    old_call.refresh_from_db()
    assert old_call.session_id is None and old_call.visitor_id is None
    assert old_call.gclid == "TEST-GCLID"  # the snapshot copied at attribution stays
    assert CallTouch.objects.filter(call=old_call).count() == 3
    assert not CallTouch.objects.filter(call=old_call, session__isnull=False).exists()
    recent_call.refresh_from_db()
    assert recent_call.session_id is not None


def test_end_to_end_a_purged_visitor_keeps_its_call_report(client, tracked_site, home_page):
    number = shown_number(client.get(PAID_LANDING).content)
    ring(client, number)
    call = Call.objects.get()
    before = report_rows()
    # Everything happened 100 days ago.
    past = timezone.now() - 100 * DAY
    VisitorSession.objects.update(started_at=past, last_activity_at=past)
    PageView.objects.update(viewed_at=past)
    Visitor.objects.update(created_at=past)
    Lease.objects.update(leased_at=past, last_seen_at=past)
    summary = purge_expired_data(90)
    assert Visitor.objects.count() == VisitorSession.objects.count() == PageView.objects.count() == 0
    assert report_rows() == before
    lease = Lease.objects.get()
    assert lease.session_id is None
    assert lease.released_at == past + datetime.timedelta(minutes=20)  # closed at its natural end
    assert lease.release_reason == LeaseReleaseReason.EXPIRED
    assert summary.leases_released == 1 and summary.leases_unlinked == 1
    assert Call.objects.get(pk=call.pk).lease_id == lease.pk
    # The visitor comes back with its old cookie: a new journey starts, nothing breaks.
    response = client.get("/")
    assert response.status_code == 200
    assert VisitorSession.objects.count() == 1


def test_a_session_holding_a_live_lease_is_kept(site):
    session = age(40)
    pool = make_pool(size=1, site=site)
    number = pool.numbers.get()
    lease = Lease.objects.create(number=number, pool=pool, session=session, leased_at=timezone.now())
    number.__class__.objects.filter(pk=number.pk).update(current_lease=lease)
    summary = purge_expired_data(30)
    assert VisitorSession.objects.filter(pk=session.pk).exists()
    assert summary.sessions_kept_live == 1 and summary.sessions == 0
    assert summary.page_views == 2  # its old page views go
    lease.refresh_from_db()
    assert lease.session_id == session.pk and lease.released_at is None


def test_dry_run_counts_what_the_purge_deletes(site):
    for days in (40, 50, 5):
        age(days, pages=3)
    journey_call(started_at=timezone.now() - 45 * DAY)
    VisitorSession.objects.filter(started_at__lt=timezone.now() - 30 * DAY).update(
        last_activity_at=timezone.now() - 40 * DAY
    )
    Visitor.objects.update(created_at=timezone.now() - 60 * DAY)
    counts = (VisitorSession.objects.count(), PageView.objects.count(), Visitor.objects.count())
    preview = purge_expired_data(30, dry_run=True)
    assert (VisitorSession.objects.count(), PageView.objects.count(), Visitor.objects.count()) == counts
    summary = purge_expired_data(30)
    for name in ("page_views", "sessions", "visitors", "calls_unlinked", "leases_unlinked", "sessions_kept_live"):
        assert getattr(preview, name) == getattr(summary, name), name
    assert summary.sessions == 4 and summary.visitors == 3


def test_purge_works_in_batches(db):
    for _ in range(5):
        age(40, pages=3)
    with CaptureQueriesContext(connection) as queries:
        summary = purge_expired_data(30, batch_size=2)
    assert (summary.page_views, summary.sessions, summary.visitors) == (15, 5, 5)
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    page_view_deletes = [sql for sql in deletes if "pageview" in sql.lower().split("where")[0]]
    assert len(page_view_deletes) >= 8  # 15 rows, 2 at a time
    assert PageView.objects.count() == VisitorSession.objects.count() == Visitor.objects.count() == 0


def test_webhook_log_retention_keeps_entries_awaiting_replay(db):
    old = timezone.now() - 40 * DAY
    for status in WebhookEventStatus.values:
        WebhookEvent.objects.create(provider="demo", endpoint="voice", method="POST", url="/", status=status,
                                    received_at=old, body=b'{"from": "+13125550177"}')
    WebhookEvent.objects.create(provider="demo", endpoint="voice", method="POST", url="/",
                                status=WebhookEventStatus.PROCESSED)
    summary = purge_expired_data(webhook_log_days=30)
    assert summary.webhook_events == 3
    assert summary.cutoff is None  # journeys: no retention configured
    assert sorted(WebhookEvent.objects.values_list("status", flat=True)) == sorted(
        [WebhookEventStatus.FAILED, WebhookEventStatus.RECEIVED, WebhookEventStatus.PROCESSED]
    )


def test_nothing_is_purged_without_a_retention(db):
    age(4000)
    summary = purge_expired_data()
    assert summary.removed == 0 and summary.cutoff is None
    assert VisitorSession.objects.count() == 1


@pytest.mark.parametrize("days", [0, -3, True, "30"])
def test_invalid_retention_is_refused(db, days):
    with pytest.raises(ValueError):
        purge_expired_data(days)


# --- command and task -------------------------------------------------------------------------------------


def purge_command(*args):
    out = io.StringIO()
    call_command("calltracking_purge", *args, stdout=out)
    return out.getvalue()


def test_command_uses_the_retention_setting_and_reports(db):
    age(40)
    age(10)
    with calltracking_settings(RETENTION_DAYS=30):
        output = purge_command()
    assert "Journeys older than 30 days" in output
    assert "page views deleted: 2" in output
    assert "sessions deleted: 1" in output
    assert "Purge complete: 4 rows deleted." in output
    assert VisitorSession.objects.count() == 1


def test_command_dry_run_and_json(db):
    age(40)
    assert "Dry run: nothing was deleted." in purge_command("--days", "30", "--dry-run")
    assert VisitorSession.objects.count() == 1
    data = json.loads(purge_command("--days", "30", "--json", "--batch-size", "1"))
    assert data["sessions"] == 1 and data["page_views"] == 2 and data["days"] == 30
    assert VisitorSession.objects.count() == 0


def test_command_refuses_without_retention_and_bad_values(db):
    with pytest.raises(CommandError, match="No retention configured"):
        purge_command()
    with pytest.raises(CommandError, match="positive"):
        purge_command("--days", "0")
    with pytest.raises(CommandError, match="batch_size"):
        purge_command("--days", "3", "--batch-size", "0")


def test_periodic_task(db):
    age(40)
    with calltracking_settings(RETENTION_DAYS=30, WEBHOOK_LOG_RETENTION_DAYS=90):
        result = purge_task.enqueue()
    assert result.return_value["sessions"] == 1
    assert result.return_value["webhook_log_days"] == 90
    assert VisitorSession.objects.count() == 0
    # Unconfigured: a no-op, not an error.
    assert purge_task.enqueue().return_value["days"] is None


# --- system checks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "ids"),
    [
        ({"RETENTION_DAYS": 90, "WEBHOOK_LOG_RETENTION_DAYS": 30}, []),
        ({"RETENTION_DAYS": 0}, ["wagtail_calltracking.E080"]),
        ({"RETENTION_DAYS": "90"}, ["wagtail_calltracking.E080"]),
        ({"WEBHOOK_LOG_RETENTION_DAYS": True}, ["wagtail_calltracking.E080"]),
        ({"DYNAMIC_NUMBERS_WITHOUT_CONSENT": True}, ["wagtail_calltracking.W081"]),
        ({"DYNAMIC_NUMBERS_WITHOUT_CONSENT": True, "HONOUR_GPC": True}, []),
        ({"DYNAMIC_NUMBERS_WITHOUT_CONSENT": True, "CONSENT": {"cookie": "c"}}, []),
    ],
)
def test_privacy_system_checks(values, ids):
    from django.core import checks

    with calltracking_settings(**values):
        found = [message.id for message in checks.run_checks() if message.id.startswith("wagtail_calltracking.")]
    assert [i for i in found if i in ("wagtail_calltracking.E080", "wagtail_calltracking.W081")] == ids
