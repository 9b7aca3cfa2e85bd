"""Incoming-call webhook latency: an empty database vs a loaded one, measured side by side.

    .venv/bin/python bench/webhooks.py                       # SQLite (temporary files)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_ct .venv/bin/python bench/webhooks.py
    .venv/bin/python bench/webhooks.py --sessions 200000 --leases 20000 --calls 20000   # quicker

Two databases are migrated: one stays empty (a pool of 20 numbers), the other receives
``calltracking_bulk_data`` (default: 1M sessions, 100k leases, 100k calls). Each measured
request is a signed Twilio voice webhook through the whole Django stack (middleware,
signature, raw log, call record, attribution through a live lease and the caller's history,
forwarding TwiML) for a pool number held by a live visitor session — on the loaded database,
numbers and callers that carry the bulk history. Requests alternate between the two databases
in small blocks, so machine noise hits both alike. The figure is the time until the response
is ready (what the provider waits for); the signals to integrations run after it, when the
server closes the response, and are shown separately. Goal: loaded/empty ≤ 1.5×, p99 < 30 ms.

With PostgreSQL, the named database holds the empty side and ``<name>_loaded`` (dropped and
re-created) the loaded side.
"""

import argparse
import copy
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


def use_database(wrapper):
    """Route the default alias to ``wrapper`` (the empty or the loaded database)."""
    from django.db import connections

    connections["default"] = wrapper


def add_loaded_database(engine):
    from django.db import connections

    default = connections["default"]
    settings_dict = copy.deepcopy(default.settings_dict)
    if engine == "sqlite":
        settings_dict["NAME"] = str(Path(settings_dict["NAME"]).with_name("bench-loaded.sqlite3"))
    else:
        settings_dict["NAME"] = f"{settings_dict['NAME']}_loaded"
        with default.cursor() as cursor:  # autocommit: CREATE DATABASE may run here
            cursor.execute(f'DROP DATABASE IF EXISTS "{settings_dict["NAME"]}"')
            cursor.execute(f'CREATE DATABASE "{settings_dict["NAME"]}"')
    return default.__class__(settings_dict, alias="default")


def configure(pool_name, numbers_count=20):
    from wagtail.models import Site

    from wagtail_calltracking.models import CallTrackingSiteSettings, NumberPool, Source, TrackingNumber

    site = Site.objects.get(is_default_site=True)
    CallTrackingSiteSettings.objects.update_or_create(site=site, defaults={"fallback_forward_to": "+12175550100"})
    pool = NumberPool.objects.create(name=pool_name, site=site)
    numbers = [
        TrackingNumber.objects.create(number=f"+1312200{1000 + i:04d}", pool=pool, site=site, provider="twilio")
        for i in range(numbers_count)
    ]
    Source.objects.create(name="Bench ads", site=site, pool=pool, channel="paid_search")
    return numbers


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


class Side:
    def __init__(self, label, wrapper, numbers, callers):
        self.label, self.wrapper, self.numbers, self.callers = label, wrapper, numbers, callers
        #: Until the response is ready (what the provider waits for).
        self.timings = []
        #: Including the work done when the server closes the response (signals → integrations).
        self.with_after_response = []
        self.sent = 0


RESPONSE_READY = [0.0]


def instrument_client_handler():
    """Note when the handler has produced the response — before the test client closes it
    (a WSGI server sends the response, then closes it)."""
    from django.test.client import ClientHandler

    original = ClientHandler.get_response

    def get_response(self, request):
        response = original(self, request)
        RESPONSE_READY[0] = time.perf_counter()
        return response

    ClientHandler.get_response = get_response


def send(client, side, count, record=True):
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(TOKEN)
    use_database(side.wrapper)
    for _ in range(count):
        number = side.numbers[side.sent % len(side.numbers)]
        params = {
            "CallSid": f"CA{side.label}{side.sent:031d}"[:34],
            "AccountSid": "AC" + "0" * 32,
            "From": random.choice(side.callers),
            "To": number.number,
            "CallStatus": "ringing",
            "Direction": "inbound",
        }
        side.sent += 1
        signature = validator.compute_signature("http://testserver" + VOICE, params)
        body = urlencode(params)
        started = time.perf_counter()
        response = client.post(VOICE, body, content_type="application/x-www-form-urlencoded",
                               HTTP_X_TWILIO_SIGNATURE=signature)
        finished = time.perf_counter()
        assert response.status_code == 200, response.content
        assert b"<Dial" in response.content
        if record:
            side.timings.append((RESPONSE_READY[0] - started) * 1000)
            side.with_after_response.append((finished - started) * 1000)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--leases", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=1000, help="Measured webhooks per database.")
    parser.add_argument("--block", type=int, default=10, help="Requests in a row on one database.")
    parser.add_argument("--warmup", type=int, default=60)
    args = parser.parse_args()
    random.seed(7)

    engine = setup_django()
    from django.core.management import call_command
    from django.db import connections
    from django.test import Client

    from wagtail_calltracking.models import Call, NumberPool, Visitor

    empty_wrapper = connections["default"]
    loaded_wrapper = add_loaded_database(engine)

    # Empty side: a pool of 20 numbers and nothing else.
    numbers = configure("Bench pool")
    prepare_live_leases(numbers, [Visitor.objects.create().pk for _ in range(50)])
    empty = Side("E", empty_wrapper, numbers, [f"+1217{random.randint(2000000, 9999999)}" for _ in range(200)])

    # Loaded side: the bulk history; the measured numbers and callers carry it.
    use_database(loaded_wrapper)
    call_command("migrate", verbosity=0, interactive=False)
    configure("Bench pool")
    started = time.monotonic()
    call_command("calltracking_bulk_data", sessions=args.sessions, leases=args.leases, calls=args.calls,
                 stdout=sys.stderr)
    load_seconds = time.monotonic() - started
    if engine.startswith("postgres"):
        with loaded_wrapper.cursor() as cursor:
            cursor.execute("ANALYZE")
    bulk_pool = NumberPool.objects.filter(name__startswith="Bulk pool").latest("pk")
    bulk_numbers = list(bulk_pool.numbers.order_by("pk")[:20])
    prepare_live_leases(bulk_numbers, list(Visitor.objects.order_by("pk").values_list("pk", flat=True)[:500]))
    loaded = Side("L", loaded_wrapper, bulk_numbers, list(Call.objects.values_list("from_number", flat=True)[:500]))

    instrument_client_handler()
    client = Client(HTTP_HOST="testserver")
    for side in (empty, loaded):
        send(client, side, args.warmup, record=False)
    for _ in range(max(1, args.requests // args.block)):
        for side in (empty, loaded):
            send(client, side, args.block)
    use_database(empty_wrapper)

    print(f"\nIncoming-call webhook (Twilio voice, signed, full stack) on {engine}: "
          f"{len(empty.timings)} requests per database, alternating in blocks of {args.block}")
    print(f"loaded = {args.sessions:,} sessions, {args.leases:,} leases, {args.calls:,} calls "
          f"(calltracking_bulk_data: {load_seconds:.0f}s)")
    print(f"{'':8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for side in (empty, loaded):
        values = side.timings
        print(f"{'empty' if side is empty else 'loaded':8} {percentile(values, 0.5):8.2f} "
              f"{percentile(values, 0.99):8.2f} {statistics.mean(values):8.2f}")
    for side in (empty, loaded):
        values = side.with_after_response
        print(f"{'(+after)':8} {percentile(values, 0.5):8.2f} {percentile(values, 0.99):8.2f} "
              f"{statistics.mean(values):8.2f}   {'empty' if side is empty else 'loaded'}, including the "
              "signals sent after the response (integrations)")
    p50_ratio = percentile(loaded.timings, 0.5) / percentile(empty.timings, 0.5)
    p99_ratio = percentile(loaded.timings, 0.99) / percentile(empty.timings, 0.99)
    print(f"ratio loaded/empty: p50 {p50_ratio:.2f}x, p99 {p99_ratio:.2f}x (goal ≤ 1.5x); "
          f"p99 loaded {percentile(loaded.timings, 0.99):.1f} ms (goal < 30 ms)")


if __name__ == "__main__":
    main()
