"""The retention purge on a large journey table: 1M page views (100k sessions and visitors,
with calls attributed to some of them), purged in batches by ``purge_expired_data``.

Prints the time, the peak Python memory (tracemalloc) and the rows per second, and — side by side
on a tenth of the data — the ratio against the naive ``QuerySet.delete()`` (Django's collector
loads every row to delete into memory and deletes in one transaction).

    .venv/bin/python bench/purge.py                       # SQLite (temporary file)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/purge.py
    .venv/bin/python bench/purge.py --sessions 20000      # smaller
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PAGES_PER_SESSION = 10


def build(sessions: int, *, old_days: int = 120) -> dict:
    """``sessions`` old sessions (one visitor each, ``PAGES_PER_SESSION`` page views each) and
    a call attributed to every 50th, with its three touches."""
    import datetime

    from django.db import connection, transaction
    from django.utils import timezone

    from wagtail_calltracking.models import Call, CallTouch, PageView, TouchModel, Visitor, VisitorSession

    started = timezone.now() - datetime.timedelta(days=old_days)
    batch = 5000
    with transaction.atomic():
        for offset in range(0, sessions, batch):
            count = min(batch, sessions - offset)
            visitors = Visitor.objects.bulk_create(Visitor(created_at=started) for _ in range(count))
            VisitorSession.objects.bulk_create(
                VisitorSession(
                    visitor=visitor, started_at=started, last_activity_at=started, channel="paid_search",
                    source="google", medium="cpc", keyword="plumber", landing_path="/", gclid=f"G{visitor.pk}",
                )
                for visitor in visitors
            )
        session_table = connection.ops.quote_name(VisitorSession._meta.db_table)
        page_table = connection.ops.quote_name(PageView._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {PAGES_PER_SESSION}) "  # noqa: S608
                f"INSERT INTO {page_table} (session_id, viewed_at, path, query, title) "
                f"SELECT s.id, s.started_at, '/page/', '', 'Page' FROM {session_table} s CROSS JOIN g"
            )
        calls = []
        for index, (session_id, visitor_id) in enumerate(VisitorSession.objects.values_list("pk", "visitor_id")):
            if index % 50 == 0:
                calls.append(Call(provider="demo", provider_call_id=f"bench-{session_id}", session_id=session_id,
                                  visitor_id=visitor_id, started_at=started, from_number="+13125550100",
                                  confidence="exact", gclid=f"G{visitor_id}"))
        Call.objects.bulk_create(calls, batch_size=batch)
        CallTouch.objects.bulk_create(
            (CallTouch(call=call, model=model, session_id=call.session_id, channel="paid_search", source="google",
                       keyword="plumber", landing_path="/")
             for call in calls for model in TouchModel.values),
            batch_size=batch,
        )
    return {
        "page_views": PageView.objects.count(),
        "sessions": VisitorSession.objects.count(),
        "calls": len(calls),
    }


def clear() -> None:
    from wagtail_calltracking.models import Call, PageView, Visitor, VisitorSession

    Call.objects.all().delete()
    PageView.objects.all()._raw_delete(PageView.objects.db)
    VisitorSession.objects.all().delete()
    Visitor.objects.all().delete()


def batched(days: int) -> tuple[float, object]:
    from wagtail_calltracking.lifecycle import purge_expired_data

    started = time.perf_counter()
    summary = purge_expired_data(days)
    return time.perf_counter() - started, summary


def naive(days: int) -> float:
    import datetime

    from django.db import transaction
    from django.utils import timezone

    from wagtail_calltracking.models import Visitor, VisitorSession

    cutoff = timezone.now() - datetime.timedelta(days=days)
    started = time.perf_counter()
    with transaction.atomic():
        VisitorSession.objects.filter(last_activity_at__lt=cutoff).delete()
        Visitor.objects.filter(created_at__lt=cutoff, sessions__isnull=True).delete()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000, help="old sessions (× 10 page views)")
    args = parser.parse_args()

    database = contextlib.nullcontext(os.environ.get("DATABASE_URL"))
    if (os.environ.get("DATABASE_URL") or "").startswith("postgres"):
        from load import load_database

        database = load_database(os.environ["DATABASE_URL"])
    with database as url:
        if url:
            os.environ["DATABASE_URL"] = url
        from _setup import setup_django

        engine = setup_django()
        from wagtail_calltracking.models import CallTouch, PageView, VisitorSession

        built = build(args.sessions)
        seconds, summary = batched(30)
        assert PageView.objects.count() == 0 and VisitorSession.objects.count() == 0
        assert CallTouch.objects.filter(session__isnull=True).count() == built["calls"] * 3
        rows = summary.removed
        print(f"{engine}: purged {summary.page_views} page views, {summary.sessions} sessions, {summary.visitors} "
              f"visitors ({rows} rows; {built['calls']} calls keep their touches) in {seconds:.1f}s = "
              f"{rows / seconds:,.0f} rows/s")

        # Side by side on a tenth of the data: time (plain runs), then Python memory at its
        # peak (tracemalloc runs; slower, so not timed).
        small = max(args.sessions // 10, 1000)
        figures = {}
        for name, operation in (("batched", lambda: batched(30)[0]), ("naive", lambda: naive(30))):
            clear()
            build(small)
            seconds = operation()
            clear()
            build(small)
            tracemalloc.start()
            operation()
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            figures[name] = (seconds, peak)
        (b_seconds, b_peak), (n_seconds, n_peak) = figures["batched"], figures["naive"]
        print(f"side by side on {small * PAGES_PER_SESSION} page views: batched {b_seconds:.2f}s vs naive "
              f"QuerySet.delete() {n_seconds:.2f}s (time ratio {b_seconds / n_seconds:.2f}×); peak Python memory "
              f"{b_peak:.1f} MB vs {n_peak:.1f} MB (ratio {b_peak / n_peak:.2f}×); the naive delete also holds "
              "every row lock in one transaction until it ends")
    return 0


if __name__ == "__main__":
    sys.exit(main())
