"""Incoming-call webhook latency: an empty database vs a loaded one.

    .venv/bin/python bench/webhooks.py                       # SQLite (temporary file)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_ct .venv/bin/python bench/webhooks.py
    .venv/bin/python bench/webhooks.py --sessions 200000 --leases 20000 --calls 20000   # quicker

Each measured request is a signed Twilio voice webhook through the whole Django stack
(middleware, signature, raw log, call record, attribution through a live lease and the
caller's history, forwarding TwiML) for a pool number held by a live visitor session. It is
measured first on an empty database, then after ``calltracking_bulk_data`` has written 1M
sessions, 100k leases and 100k calls (the measured numbers then carry the bulk lease
history). Goal: loaded/empty ≤ 1.5× and p99 < 30 ms.
"""

import argparse
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import os  # noqa: E402

os.environ.setdefault("CALLTRACKING_TWILIO_AUTH_TOKEN", "bench-twilio-token")

from _setup import setup_django  # noqa: E402

TOKEN = os.environ["CALLTRACKING_TWILIO_AUTH_TOKEN"]
VOICE = "/calltracking/webhooks/twilio/voice/"


def percentile(values, fraction):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def prepare_live_leases(numbers, visitors):
    """A live session lease on each number, as a visitor browsing right now holds."""
    from django.utils import timezone

    from wagtail_calltracking.models import Lease, TrackingNumber, VisitorSession

    now = timezone.now()
    for number in numbers:
        session = VisitorSession.objects.create(
            visitor_id=random.choice(visitors), site_id=number.site_id, started_at=now - timedelta(minutes=3),
            last_activity_at=now, channel="paid_search", source="google", medium="cpc", keyword="plumber",
            gclid="bench", landing_path="/",
        )
        lease = Lease.objects.create(number=number, pool=number.pool, session=session,
                                     leased_at=now - timedelta(minutes=3), last_seen_at=now)
        TrackingNumber.objects.filter(pk=number.pk).update(current_lease=lease)


def measure(client, numbers, callers, count, label):
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(TOKEN)
    timings = []
    for index in range(count):
        number = numbers[index % len(numbers)]
        params = {
            "CallSid": f"CA{label}{index:030d}"[:34],
            "AccountSid": "AC" + "0" * 32,
            "From": random.choice(callers),
            "To": number.number,
            "CallStatus": "ringing",
            "Direction": "inbound",
        }
        signature = validator.compute_signature("http://testserver" + VOICE, params)
        body = urlencode(params)
        started = time.perf_counter()
        response = client.post(VOICE, body, content_type="application/x-www-form-urlencoded",
                               HTTP_X_TWILIO_SIGNATURE=signature)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content
        assert b"<Dial" in response.content
    return timings


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--leases", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=600, help="Measured webhooks per phase.")
    parser.add_argument("--warmup", type=int, default=60)
    args = parser.parse_args()
    random.seed(7)

    engine = setup_django()
    from django.core.management import call_command
    from django.test import Client
    from wagtail.models import Site

    from wagtail_calltracking.models import Call, CallTrackingSiteSettings, NumberPool, Source, TrackingNumber, Visitor

    site = Site.objects.get(is_default_site=True)
    CallTrackingSiteSettings.objects.update_or_create(site=site, defaults={"fallback_forward_to": "+12175550100"})
    client = Client(HTTP_HOST="testserver")

    # --- empty database: a pool of 20 numbers, nothing else --------------------------------
    pool = NumberPool.objects.create(name="Bench pool", site=site)
    numbers = [TrackingNumber.objects.create(number=f"+1312200{1000 + i:04d}", pool=pool, site=site, provider="twilio")
               for i in range(20)]
    Source.objects.create(name="Bench ads", site=site, pool=pool, channel="paid_search")
    visitors = [Visitor.objects.create().pk for _ in range(50)]
    prepare_live_leases(numbers, visitors)
    callers = [f"+1217{random.randint(2000000, 9999999)}" for _ in range(200)]
    measure(client, numbers, callers, args.warmup, "W")
    empty = measure(client, numbers, callers, args.requests, "E")

    # --- loaded database ---------------------------------------------------------------------
    started = time.monotonic()
    call_command("calltracking_bulk_data", sessions=args.sessions, leases=args.leases, calls=args.calls,
                 stdout=sys.stderr)
    load_seconds = time.monotonic() - started
    if engine.startswith("postgres"):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    bulk_pool = NumberPool.objects.filter(name__startswith="Bulk pool").latest("pk")
    bulk_numbers = list(bulk_pool.numbers.all()[:20])
    loaded_visitors = list(Visitor.objects.order_by("?").values_list("pk", flat=True)[:200]) if engine == "sqlite" else \
        list(Visitor.objects.values_list("pk", flat=True)[:200])
    prepare_live_leases(bulk_numbers, loaded_visitors)
    # Callers who called before: the first-time check and the history link have work to do.
    callers = list(Call.objects.values_list("from_number", flat=True)[:200])
    measure(client, bulk_numbers, callers, args.warmup, "V")
    loaded = measure(client, bulk_numbers, callers, args.requests, "L")

    rows = {"empty": empty, "loaded": loaded}
    print(f"\nIncoming-call webhook (Twilio voice, signed, full stack) on {engine}, {args.requests} requests each")
    print(f"loaded = {args.sessions:,} sessions, {args.leases:,} leases, {args.calls:,} calls (generated in {load_seconds:.0f}s)")
    print(f"{'':8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for label, values in rows.items():
        print(f"{label:8} {percentile(values, 0.5):8.2f} {percentile(values, 0.99):8.2f} {statistics.mean(values):8.2f}")
    p50_ratio = percentile(loaded, 0.5) / percentile(empty, 0.5)
    p99_ratio = percentile(loaded, 0.99) / percentile(empty, 0.99)
    print(f"ratio loaded/empty: p50 {p50_ratio:.2f}x, p99 {p99_ratio:.2f}x (goal ≤ 1.5x); "
          f"p99 loaded {percentile(loaded, 0.99):.1f} ms (goal < 30 ms)")


if __name__ == "__main__":
    main()
