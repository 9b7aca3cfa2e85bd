"""Admin screens at scale: render times and query counts of the calls listing, a call's
detail page, each report and the dashboard, on a small database and then on a large one
(default 100k calls and 1M sessions) in the same run, with the ratio large ÷ small.

Goal: every screen under 1 s on the large database, query counts identical on both.

    .venv/bin/python bench/admin.py [--calls 100000 --sessions 1000000 --rounds 5]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ct_bench .venv/bin/python bench/admin.py

The rows are written directly with bulk inserts (visitors, sessions, leases, page views for
the called sessions, calls with their three attribution touches, hourly pool statistics), in
the shapes the middleware, leasing and webhook code produce.
"""

import argparse
import datetime
import random
import time

from _setup import median, setup_django

CHANNELS = [
    ("paid_search", "google", "cpc", 30),
    ("organic_search", "google", "organic", 25),
    ("direct", "", "", 15),
    ("referral", "yelp.com", "referral", 8),
    ("paid_social", "facebook", "paid_social", 7),
    ("email", "newsletter", "email", 5),
    ("organic_social", "facebook", "social", 4),
    ("display", "gdn", "display", 3),
    ("other_campaign", "partner", "affiliate", 2),
    ("offline", "Newspaper", "", 1),
]
CAMPAIGNS = ["", "spring-plumbing", "drain-promo", "water-heaters", "emergency-24-7", "brand"]
KEYWORDS = ["", "plumber", "emergency plumber", "drain cleaning", "water heater repair",
            "plumber near me", "leak repair", "bathroom remodel", "sewer line", "clogged toilet"]
RESULTS = ["answered"] * 6 + ["missed", "missed", "abandoned", "busy", "voicemail"]
PATHS = ["/", "/emergency-plumbing/", "/drain-cleaning/", "/water-heaters/", "/contact/",
         "/bathroom-remodeling/"]
BATCH = 5000


def generate(calls, sessions, days=90, seed=7, offset=0):
    """Insert ``sessions`` sessions and ``calls`` calls spread over the last ``days`` days."""
    from django.db import transaction
    from django.utils import timezone

    from wagtail_calltracking.models import (
        Call,
        CallTouch,
        Lease,
        Manager,
        NumberPool,
        PageView,
        PoolStat,
        Source,
        TrackingNumber,
        Visitor,
        VisitorSession,
    )

    rng = random.Random(seed + offset)
    now = timezone.now()
    weights = [weight for *_rest, weight in CHANNELS]

    pool, _ = NumberPool.objects.get_or_create(name="Bench pool", defaults={"audience": "all"})
    numbers = list(pool.numbers.all())
    for index in range(len(numbers), 20):
        numbers.append(TrackingNumber.objects.create(number=f"+1212300{1000 + index}", pool=pool,
                                                     provider="demo"))
    newspaper_number, _ = TrackingNumber.objects.get_or_create(number="+12123009999",
                                                               defaults={"provider": "demo"})
    newspaper, _ = Source.objects.get_or_create(name="Newspaper",
                                                defaults={"static_number": newspaper_number})
    paid, _ = Source.objects.get_or_create(name="Paid search", defaults={"pool": pool,
                                                                        "channel": "paid_search"})
    managers = [Manager.objects.get_or_create(name=f"Manager {i}")[0] for i in range(8)]

    def moment():
        return now - datetime.timedelta(seconds=rng.randint(60, days * 86400))

    visitor_base = (Visitor.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    session_base = (VisitorSession.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    call_base = (Call.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    visitor_count = max(1, int(sessions * 0.6))

    with transaction.atomic():
        for start in range(0, visitor_count, BATCH):
            Visitor.objects.bulk_create(
                Visitor(pk=visitor_base + i, created_at=now - datetime.timedelta(days=days))
                for i in range(start, min(start + BATCH, visitor_count))
            )
    session_meta = {}
    with transaction.atomic():
        for start in range(0, sessions, BATCH):
            rows = []
            for i in range(start, min(start + BATCH, sessions)):
                channel, source, medium, _weight = rng.choices(CHANNELS, weights)[0]
                began = moment()
                keyword = rng.choice(KEYWORDS) if channel == "paid_search" else ""
                pk = session_base + i
                session_meta[pk] = (channel, source, medium, began)
                rows.append(VisitorSession(
                    pk=pk, visitor_id=visitor_base + rng.randrange(visitor_count),
                    started_at=began, last_activity_at=began + datetime.timedelta(minutes=4),
                    channel=channel, source=source, medium=medium,
                    campaign=rng.choice(CAMPAIGNS) if channel in ("paid_search", "email") else "",
                    keyword=keyword, term=keyword, landing_path=rng.choice(PATHS),
                    gclid=f"G{pk}" if channel == "paid_search" else "",
                    ip_address=f"198.51.{pk % 250}.{pk % 200}", browser="Chrome",
                    browser_version="126", os="Windows", os_version="11", device_type="desktop",
                    user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0",
                    country="US", region="Illinois", city="Chicago",
                    matched_source_id=paid.pk if channel == "paid_search" else None,
                ))
            VisitorSession.objects.bulk_create(rows)

    session_ids = list(session_meta)
    with transaction.atomic():
        for start in range(0, calls, BATCH):
            call_rows, touch_rows, lease_rows, view_rows = [], [], [], []
            for i in range(start, min(start + BATCH, calls)):
                pk = call_base + i
                attributed = rng.random() < 0.75
                session_id = rng.choice(session_ids) if attributed else None
                channel, source, medium, began = (
                    session_meta[session_id] if attributed else ("", "", "", moment())
                )
                started = began + datetime.timedelta(minutes=3)
                result = rng.choice(RESULTS)
                number = rng.choice(numbers)
                if attributed:
                    lease = Lease(number=number, pool=pool, session_id=session_id, leased_at=began,
                                  last_seen_at=started, released_at=started + datetime.timedelta(minutes=20))
                    lease_rows.append(lease)
                    for step in range(3):
                        view_rows.append(PageView(session_id=session_id,
                                                  viewed_at=began + datetime.timedelta(seconds=50 * step),
                                                  path=rng.choice(PATHS), title=f"Page {step}"))
                call_rows.append(Call(
                    pk=pk, provider="demo", provider_call_id=f"BENCH-{offset}-{pk}",
                    tracking_number=number, to_number=number.number,
                    from_number=f"+1312{rng.randint(2000000, 2999999)}",
                    started_at=started, status="completed", result=result,
                    ring_seconds=rng.randint(2, 25),
                    talk_seconds=rng.randint(15, 900) if result == "answered" else None,
                    manager=rng.choice(managers) if result == "answered" or rng.random() < 0.5 else None,
                    session_id=session_id,
                    visitor_id=None,
                    source=paid if channel == "paid_search" else None,
                    confidence="exact" if attributed else "unattributed",
                    is_first_time=rng.random() < 0.7,
                ))
                for model in ("first", "last", "last_non_direct"):
                    touch_rows.append(CallTouch(call_id=pk, model=model, session_id=session_id,
                                                channel=channel, source=source, medium=medium,
                                                keyword=rng.choice(KEYWORDS) if channel == "paid_search" else ""))
            Call.objects.bulk_create(call_rows)
            CallTouch.objects.bulk_create(touch_rows)
            Lease.objects.bulk_create(lease_rows)
            PageView.objects.bulk_create(view_rows)
        hours = [(now - datetime.timedelta(hours=h)).replace(minute=0, second=0, microsecond=0)
                 for h in range(days * 24)]
        existing = set(PoolStat.objects.filter(pool=pool).values_list("hour", flat=True))
        PoolStat.objects.bulk_create(
            PoolStat(pool=pool, hour=hour, leases=rng.randint(0, 40), exhaustions=rng.randint(0, 1),
                     peak_concurrency=rng.randint(1, 20))
            for hour in hours if hour not in existing
        )
    return Call.objects.order_by("-pk").filter(session__isnull=False).first()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--small-calls", type=int, default=1_000)
    parser.add_argument("--small-sessions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    engine = setup_django()
    from io import StringIO

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
    call = generate(args.small_calls, args.small_sessions)
    print(f"small: {args.small_calls:,} calls, {args.small_sessions:,} sessions "
          f"(generated in {time.perf_counter() - started:.0f} s)")
    small = measure(call)
    started = time.perf_counter()
    call = generate(args.calls - args.small_calls, args.sessions - args.small_sessions, offset=1)
    print(f"large: {args.calls:,} calls, {args.sessions:,} sessions "
          f"(generated in {time.perf_counter() - started:.0f} s)")
    large = measure(call)

    print(f"\n{'screen':36} {'small':>9} {'large':>9} {'ratio':>7} {'queries':>9}  goal < 1 s")
    for name, (small_time, small_queries) in small.items():
        large_time, large_queries = large[name]
        verdict = "ok" if large_time < 1.0 and large_queries <= small_queries else "OVER"
        print(f"{name:36} {small_time * 1000:7.0f}ms {large_time * 1000:7.0f}ms "
              f"{large_time / small_time:6.2f}× {small_queries:>4} → {large_queries:<3} {verdict}")


if __name__ == "__main__":
    main()
