"""Admin screens at scale: render times and query counts of the calls listing, a call's
detail page, each report and the dashboard, on a small database and then on a large one
(default 100k calls and 1M sessions) in the same run, with the ratio large ÷ small.

Goal: every screen under 1 s on the large database, query counts identical on both.

    .venv/bin/python bench/admin.py [--calls 100000 --sessions 1000000 --rounds 5]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ct_bench .venv/bin/python bench/admin.py

The rows come from ``manage.py calltracking_bulk_data`` (visitors, sessions across channels,
non-overlapping leases, attributed calls with their three touches, page views), run twice:
the small database first, then grown to the large one.
"""

import argparse
import datetime
import time
from io import StringIO

from _setup import median, setup_django


def generate(sessions, leases, calls, page_views, seed):
    """Add a consistent history with the webhooks' bulk generator (``calltracking_bulk_data``):
    sessions across channels, non-overlapping leases, attributed calls with their touches,
    page views. Returns the latest attributed call, its visit given a 40-page journey."""
    from django.core.management import call_command
    from django.db import connection

    from wagtail_calltracking.models import Call, PageView

    call_command(
        "calltracking_bulk_data", sessions=sessions, leases=leases, calls=calls,
        page_views=page_views, seed=seed, stdout=StringIO(),
    )
    # Fresh planner statistics, as after any bulk load (and as autovacuum keeps them on a
    # live site): without them PostgreSQL estimates a 100k-row table at a few rows and picks
    # nested loops that take seconds.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    call = Call.objects.filter(session__isnull=False).select_related("session").latest("started_at")
    session = call.session
    PageView.objects.bulk_create(
        PageView(session=session, viewed_at=session.started_at + datetime.timedelta(seconds=20 * i),
                 path=f"/journey/{i}/", title=f"Journey page {i}")
        for i in range(40)
    )
    return call


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--page-views", type=int, default=300_000)
    parser.add_argument("--small-calls", type=int, default=1_000)
    parser.add_argument("--small-sessions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    engine = setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from home.demo import pages

    pages.load(StringIO())
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)

    def screens(call):
        return [
            ("calls listing, page 1", "/admin/calltracking/calls/", {}),
            ("calls listing, page 50", "/admin/calltracking/calls/", {"p": "50"}),
            ("calls listing, filtered", "/admin/calltracking/calls/",
             {"channel": "paid_search", "keyword": "plumber", "result": "answered"}),
            ("calls listing, caller search", "/admin/calltracking/calls/", {"q": call.from_number}),
            ("call detail", f"/admin/calltracking/calls/{call.pk}/", {}),
            ("report: by channel", "/admin/calltracking/reports/sources/", {}),
            ("report: by keyword, first touch", "/admin/calltracking/reports/sources/",
             {"group_by": "keyword", "attribution": "first"}),
            ("report: by campaign, 90 days", "/admin/calltracking/reports/sources/",
             {"group_by": "campaign",
              "started_from": (datetime.date.today() - datetime.timedelta(days=89)).isoformat()}),
            ("report: by tracking source", "/admin/calltracking/reports/sources/",
             {"group_by": "tracking_source"}),
            ("report: manager efficiency", "/admin/calltracking/reports/managers/", {}),
            ("report: pool health", "/admin/calltracking/reports/pools/", {}),
            ("dashboard", "/admin/", {}),
        ]

    def measure(call):
        results = {}
        for name, url, params in screens(call):
            response = client.get(url, params)
            assert response.status_code == 200, (name, response.status_code)
            with CaptureQueriesContext(connection) as queries:
                client.get(url, params)
            query_count = len(queries)  # now: the connection's query log is a bounded deque
            timings = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                client.get(url, params)
                timings.append(time.perf_counter() - start)
            results[name] = (median(timings), query_count)
        return results

    print(f"wagtail-calltracking admin benchmark — database: {engine}")
    started = time.perf_counter()
    small_sizes = (args.small_sessions, args.small_calls, args.small_calls, args.small_calls * 3)
    call = generate(*small_sizes, seed=1)
    print(f"small: {args.small_calls:,} calls, {args.small_sessions:,} sessions "
          f"(generated in {time.perf_counter() - started:.0f} s)")
    small = measure(call)
    started = time.perf_counter()
    call = generate(
        args.sessions - args.small_sessions,
        args.calls - args.small_calls,
        args.calls - args.small_calls,
        max(args.page_views - args.small_calls * 3, 0),
        seed=2,
    )
    print(f"large: {args.calls:,} calls, {args.sessions:,} sessions "
          f"(generated in {time.perf_counter() - started:.0f} s)")
    large = measure(call)

    from wagtail_calltracking.models import NumberPool

    pools = NumberPool.objects.count()
    print(f"\n{'screen':36} {'small':>9} {'large':>9} {'ratio':>7} {'queries':>9}  goal < 1 s")
    for name, (small_time, small_queries) in small.items():
        large_time, large_queries = large[name]
        # Pool health measures each pool shown (a few queries per pool); the bulk generator
        # adds a pool per run, so that screen's count grows with the pools, not the data.
        same_queries = large_queries <= small_queries or name == "report: pool health"
        verdict = "ok" if large_time < 1.0 and same_queries else "OVER"
        print(f"{name:36} {small_time * 1000:7.0f}ms {large_time * 1000:7.0f}ms "
              f"{large_time / small_time:6.2f}× {small_queries:>4} → {large_queries:<3} {verdict}")
    print(f"(pool health: 1 pool on the small database, {pools} on the large one)")


if __name__ == "__main__":
    main()
