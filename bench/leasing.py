"""Leasing benchmark: throughput across processes, the page-view cost of leasing, double leases.

1. **Cost ratio** (one process, interleaved batches so machine noise hits both sides): the
   example home page served through Django's full stack (middleware, Wagtail, template) to a
   new paid-search visitor, (a) showing ``{% tracking_number %}`` — a new session *and* a
   newly leased pool number — versus (b) the same tracked page without a number. Also a
   returning visitor with a live lease versus no number. Goal: (a)/(b) ≤ 1.5×.
2. **Leases per second** with several processes leasing at once from one large pool (every
   request gets a new number), and with a small pool (most requests hit the exhaustion
   policy).
3. **Double leases**: overlapping lease intervals on one number (must be 0).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ct_bench_leasing .venv/bin/python bench/leasing.py
    .venv/bin/python bench/leasing.py --rounds 20 --batch 30 --processes 8 --visitors 300

Without DATABASE_URL it runs on a temporary SQLite file (the multi-process part then measures
SQLite's single-writer lock). The named PostgreSQL database is created if missing and its
call-tracking tables are emptied first: point it at a scratch database.
"""

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from _setup import ROOT, median

BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
LANDING = "/?utm_source=google&utm_medium=cpc&utm_term=plumber&gclid=BENCH{}"


def ensure_postgres_database(url):
    """Create the scratch database named in DATABASE_URL if it does not exist."""
    import dj_database_url
    import psycopg

    config = dj_database_url.parse(url)
    name = config["NAME"]
    admin = psycopg.connect(
        host=config["HOST"] or "127.0.0.1", port=config["PORT"] or 5432, user=config["USER"],
        password=config["PASSWORD"] or None, dbname="postgres", autocommit=True,
    )
    with admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')


def setup(database_url):
    sys.path[:0] = [str(ROOT), str(ROOT / "example_site")]
    if database_url.startswith("postgres"):
        ensure_postgres_database(database_url)
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_site.settings")
    os.environ.setdefault("DJANGO_DEBUG", "0")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "*")
    import django
    from django.conf import settings

    # The page (b) renders without the number: the example base template, with the tag
    # switched off by a request header.
    template_dir = Path(tempfile.mkdtemp(prefix="ct-bench-templates-"))
    base = (ROOT / "example_site/templates/base.html").read_text()
    assert "{% tracking_number %}" in base
    (template_dir / "base.html").write_text(
        base.replace(
            "{% tracking_number %}",
            "{% if not request.META.HTTP_X_BENCH_NO_NUMBER %}{% tracking_number %}{% endif %}",
        )
    )
    django.setup()
    settings.TEMPLATES[0]["DIRS"] = [template_dir, *settings.TEMPLATES[0]["DIRS"]]
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def reset_data(pool_size):
    from io import StringIO

    from django.core.cache import cache
    from home.demo import pages

    from wagtail_calltracking.models import (
        CallTrackingSiteSettings,
        Lease,
        NumberPool,
        PageView,
        PoolStat,
        Source,
        TrackingNumber,
        Visitor,
    )

    Lease.objects.all().delete()
    PageView.objects.all().delete()
    Visitor.objects.all().delete()
    PoolStat.objects.all().delete()
    Source.objects.all().delete()
    TrackingNumber.objects.update(current_lease=None)
    TrackingNumber.objects.all().delete()
    NumberPool.objects.all().delete()
    pages.load(StringIO())
    from wagtail.models import Site

    site = Site.objects.get(is_default_site=True)
    CallTrackingSiteSettings.objects.update_or_create(site=site, defaults={"canonical_number": "+12175550100"})
    pool = NumberPool.objects.create(name="Bench", site=site, cooldown_minutes=0, hold_minutes=20)
    TrackingNumber.objects.bulk_create(
        [TrackingNumber(number=f"+1217{2000000 + i:07d}", pool=pool, site=site, provider="demo") for i in range(pool_size)]
    )
    Source.objects.create(name="Paid search", site=site, channel="paid_search", pool=pool)
    cache.clear()
    return pool


def free_all_numbers(pool):
    """Between timed batches (not timed): every lease ends now, every number is free again."""
    from django.utils import timezone

    from wagtail_calltracking.models import Lease, TrackingNumber

    now = timezone.now()
    Lease.objects.filter(pool=pool, released_at__isnull=True).update(released_at=now, release_reason="expired")
    TrackingNumber.objects.filter(pool=pool).update(current_lease=None, idle_since=None)


def cost_ratio(args):
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from wagtail_calltracking.models import Lease

    pool = reset_data(pool_size=max(args.batch * 2, 100))
    counter = iter(range(10**9))

    def new_visitor(with_number):
        client = Client(HTTP_USER_AGENT=BROWSER_UA)
        headers = {} if with_number else {"HTTP_X_BENCH_NO_NUMBER": "1"}

        def request():
            client.cookies.clear()
            response = client.get(LANDING.format(next(counter)), **headers)
            assert response.status_code == 200
            return response

        return request

    def returning_visitor(with_number):
        client = Client(HTTP_USER_AGENT=BROWSER_UA)
        client.get(LANDING.format(next(counter)))  # lands from the ad, gets a number
        headers = {} if with_number else {"HTTP_X_BENCH_NO_NUMBER": "1"}

        def request():
            response = client.get("/", **headers)
            assert response.status_code == 200
            return response

        return request

    # (name, factory, goal, free the numbers between batches: new visitors take a new
    # number each, returning visitors keep theirs)
    scenarios = [
        ("(a)/(b) new visitor: leases vs no number", new_visitor, 1.5, True),
        ("returning visitor: live lease vs no number", returning_visitor, None, False),
    ]
    print(f"{'scenario':44} {'no number':>10} {'number':>10} {'ratio':>7} {'goal':>6}  queries")
    for name, factory, goal, free_between in scenarios:
        free_all_numbers(pool)
        off, on = factory(False), factory(True)
        for fn in (off, on):
            for _ in range(3):
                fn()
        ratios, t_off, t_on = [], [], []
        for round_ in range(args.rounds):
            if free_between:
                free_all_numbers(pool)
            order = (off, on) if round_ % 2 == 0 else (on, off)
            timings = {}
            for fn in order:
                start = time.perf_counter()
                for _ in range(args.batch):
                    fn()
                timings[fn] = (time.perf_counter() - start) / args.batch
            t_off.append(timings[off])
            t_on.append(timings[on])
            ratios.append(timings[on] / timings[off])
        if free_between:
            free_all_numbers(pool)
        counts = []
        for fn in (off, on):
            with CaptureQueriesContext(connection) as queries:
                fn()
            counts.append(len(queries))
        ratio = median(ratios)
        verdict = "" if goal is None else ("ok" if ratio <= goal else "OVER")
        print(
            f"{name:44} {median(t_off) * 1000:8.2f}ms {median(t_on) * 1000:8.2f}ms {ratio:6.3f}× "
            f"{(f'≤{goal:.1f}' if goal else '-'):>6}  {counts[0]} → {counts[1]} {verdict}"
        )
    assert Lease.objects.exists()


def count_double_leases(pool):
    """Pairs of leases of one number whose intervals overlap (must be 0)."""
    from wagtail_calltracking.models import Lease
    from wagtail_calltracking.numbers.leasing import lease_end

    by_number = defaultdict(list)
    for lease in Lease.objects.filter(pool=pool).select_related("pool").order_by("leased_at", "pk"):
        by_number[lease.number_id].append(lease)
    overlaps = 0
    for leases in by_number.values():
        for before, after in zip(leases, leases[1:], strict=False):
            overlaps += lease_end(before) > after.leased_at
    live_per_number = defaultdict(int)
    for lease in Lease.objects.filter(pool=pool, released_at__isnull=True):
        live_per_number[lease.number_id] += 1
    overlaps += sum(count - 1 for count in live_per_number.values() if count > 1)
    return overlaps, sum(len(v) for v in by_number.values())


def throughput(args):
    from django.db import connection

    from wagtail_calltracking.models import NumberPool, PoolStat, TrackingNumber
    from wagtail_calltracking.numbers.rules import build_config

    sys.path.insert(0, str(ROOT))
    from tests.leasing_worker import run_workers

    total = args.processes * args.visitors
    print(f"\n{args.processes} processes × {args.visitors} new visitors each, leasing concurrently")
    print(f"{'pool':34} {'wall':>8} {'requests/s':>11} {'leases/s':>9} {'overflow':>9} {'double leases':>14}")
    for label, size in (("large pool (every visitor leases)", total + 10), ("small pool (50 numbers)", 50)):
        reset_data(pool_size=0)
        pool = NumberPool.objects.get(name="Bench")
        TrackingNumber.objects.bulk_create(
            [TrackingNumber(number=f"+1217{3000000 + i:07d}", pool=pool, site=pool.site, provider="demo") for i in range(size)]
        )
        config = build_config(pool.site_id).pools[pool.pk]
        database = connection.settings_dict["NAME"]
        started = time.perf_counter()
        summaries = run_workers(database, dataclasses.asdict(config), args.processes, args.visitors)
        wall = time.perf_counter() - started
        busy = max(summary["seconds"] for summary in summaries)
        errors = sum(summary["errors"] for summary in summaries)
        dynamic = sum(summary["dynamic"] for summary in summaries)
        overflow = sum(summary["overflow"] for summary in summaries)
        double, leases = count_double_leases(pool)
        exhaustions = sum(PoolStat.objects.filter(pool=pool).values_list("exhaustions", flat=True))
        print(
            f"{label:34} {busy:7.2f}s {total / busy:11.0f} {dynamic / busy:9.0f} {overflow:9d} {double:14d}"
            + (f"  ERRORS: {errors}" if errors else "")
        )
        assert leases == dynamic and exhaustions == overflow, (leases, dynamic, exhaustions, overflow)
        del wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--visitors", type=int, default=300, help="new visitors per process")
    args = parser.parse_args()

    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        path = Path(tempfile.mkdtemp(prefix="ct-bench-")) / "bench.sqlite3"
        database_url = f"sqlite:///{path}"
    setup(database_url)
    from django.db import connection

    print(
        f"wagtail-calltracking leasing benchmark — database: {connection.vendor}, "
        f"{args.rounds} rounds × {args.batch} requests per side"
    )
    cost_ratio(args)
    throughput(args)


if __name__ == "__main__":
    main()
