"""Fill a (throwaway) database with a large, consistent call-tracking history, for benchmarks.

    manage.py calltracking_bulk_data                                    # 1M sessions, 100k leases, 100k calls
    manage.py calltracking_bulk_data --sessions 200000 --leases 20000 --calls 20000 --page-views 500000

Rows are written with ``bulk_create`` in batches (SQLite and PostgreSQL), consistent with the
product's semantics: visitors with several sessions across channels, leases of a bulk pool's
numbers that never overlap (hold time and cool-down respected), calls inside their lease with
exact attribution and their three touches, static-number and unattributed calls. Generated
rows are recognisable (pool and sources named "Bulk …", call ids "bulk-…"); use a dedicated
database, there is no clean-up.
"""

import random
import time
import uuid
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from wagtail.models import Site

from wagtail_calltracking.models import (
    Call,
    CallResult,
    CallStatus,
    CallTouch,
    Channel,
    Confidence,
    Lease,
    LeaseReleaseReason,
    NumberPool,
    PageView,
    Source,
    TouchModel,
    TrackingNumber,
    Visitor,
    VisitorSession,
)
from wagtail_calltracking.numbers.phone import to_e164

#: channel, source, medium, campaign, keyword choices, referrer domain, share
PROFILES = [
    (
        Channel.PAID_SEARCH,
        "google",
        "cpc",
        "emergency",
        ["emergency plumber", "plumber near me", "drain cleaning"],
        "google.com",
        25,
    ),
    (Channel.ORGANIC_SEARCH, "google", "organic", "", [""], "google.com", 25),
    (Channel.PAID_SOCIAL, "facebook", "paid_social", "spring", [""], "facebook.com", 8),
    (Channel.ORGANIC_SOCIAL, "facebook", "social", "", [""], "facebook.com", 6),
    (Channel.EMAIL, "newsletter", "email", "monthly", [""], "", 6),
    (Channel.REFERRAL, "yelp.com", "referral", "", [""], "yelp.com", 8),
    (Channel.DIRECT, "(direct)", "(none)", "", [""], "", 22),
]
PATHS = ["/", "/emergency-plumbing/", "/drain-cleaning/", "/water-heaters/", "/bathroom-remodeling/", "/contact/"]
RESULTS = [
    (CallResult.ANSWERED, 66),
    (CallResult.MISSED, 13),
    (CallResult.ABANDONED, 9),
    (CallResult.VOICEMAIL, 6),
    (CallResult.BUSY, 4),
    (CallResult.FAILED, 2),
]


def bulk_numbers(count, prefix="+1646"):
    """``count`` valid numbers not yet used as tracking numbers."""
    existing = set(TrackingNumber.objects.values_list("number", flat=True))
    numbers, candidate = [], 2000000
    while len(numbers) < count:
        e164 = to_e164(f"{prefix}{candidate}")
        if e164 and e164 not in existing:
            numbers.append(e164)
        candidate += 1
    return numbers


class Command(BaseCommand):
    help = "Generate a large call-tracking history with bulk_create (benchmarks)."

    def add_arguments(self, parser):
        parser.add_argument("--sessions", type=int, default=1_000_000)
        parser.add_argument("--leases", type=int, default=100_000)
        parser.add_argument("--calls", type=int, default=100_000)
        parser.add_argument("--visitors", type=int, default=None, help="Default: sessions / 3.")
        parser.add_argument("--page-views", type=int, default=0, help="Total page views (spread over sessions).")
        parser.add_argument("--pool-size", type=int, default=60)
        parser.add_argument("--days", type=int, default=180, help="History length, ending now.")
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args, **options):
        self.rng = random.Random(options["seed"])
        self.batch = options["batch_size"]
        sessions_total, leases_total, calls_total = options["sessions"], options["leases"], options["calls"]
        if min(sessions_total, leases_total, calls_total) < 0 or leases_total > sessions_total:
            raise CommandError("Sizes must be ≥ 0, with no more leases than sessions.")
        started = time.monotonic()
        self.now = timezone.now() - timedelta(hours=1)
        self.start = self.now - timedelta(days=options["days"])
        self.site = Site.objects.filter(is_default_site=True).first()
        with transaction.atomic():
            self.setup(options["pool_size"])
        visitors = self.make_visitors(options["visitors"] or max(1, sessions_total // 3))
        lease_sessions = self.make_sessions(sessions_total, visitors, leases_total)
        self.log(f"{sessions_total} sessions", started)
        leases = self.make_leases(lease_sessions)
        self.log(f"{len(leases)} leases", started)
        self.make_calls(calls_total, leases)
        self.log(f"{calls_total} calls with their touches", started)
        if options["page_views"]:
            self.make_page_views(options["page_views"])
            self.log(f"{options['page_views']} page views", started)
        self.stdout.write(self.style.SUCCESS(f"Done in {time.monotonic() - started:.0f}s."))

    def log(self, what, started):
        self.stdout.write(f"  {what} ({time.monotonic() - started:.0f}s)")

    # --- configuration ----------------------------------------------------------------------

    def setup(self, pool_size):
        self.pool = NumberPool.objects.create(
            name=f"Bulk pool {uuid.uuid4().hex[:6]}", site=self.site, hold_minutes=20, cooldown_minutes=10
        )
        numbers = bulk_numbers(pool_size + 4)
        self.pool_numbers = TrackingNumber.objects.bulk_create(
            [
                TrackingNumber(number=n, pool=self.pool, site=self.site, provider="twilio", label="Bulk")
                for n in numbers[:pool_size]
            ]
        )
        self.paid_source = Source.objects.create(
            name=f"Bulk paid search {self.pool.pk}", site=self.site, pool=self.pool, channel=Channel.PAID_SEARCH
        )
        self.static_sources = []
        for index, e164 in enumerate(numbers[pool_size:]):
            number = TrackingNumber.objects.create(number=e164, site=self.site, provider="twilio", label="Bulk static")
            self.static_sources.append(
                Source.objects.create(
                    name=f"Bulk offline {self.pool.pk}-{index}",
                    site=self.site,
                    static_number=number,
                    landing_parameter=f"bulk{self.pool.pk}x{index}",
                )
            )

    # --- rows -------------------------------------------------------------------------------

    def make_visitors(self, count):
        ids = []
        for offset in range(0, count, self.batch):
            size = min(self.batch, count - offset)
            created = Visitor.objects.bulk_create(
                [Visitor(key=uuid.uuid4(), created_at=self.start) for _ in range(size)], batch_size=self.batch
            )
            ids.extend(visitor.pk for visitor in created)
        return ids

    def make_sessions(self, count, visitor_ids, leases_wanted):
        """Sessions in chronological order; returns the light records of those that lease."""
        span = (self.now - self.start).total_seconds()
        step = span / max(1, count)
        lease_every = count / leases_wanted if leases_wanted else None
        next_lease = 0.0
        weights = [profile[6] for profile in PROFILES]
        chosen = []
        index = 0
        while index < count:
            size = min(self.batch, count - index)
            rows = []
            for position in range(index, index + size):
                started_at = self.start + timedelta(seconds=position * step + self.rng.uniform(0, step))
                channel, source, medium, campaign, keywords, referrer, _ = self.rng.choices(PROFILES, weights=weights)[
                    0
                ]
                keyword = self.rng.choice(keywords)
                duration = timedelta(seconds=self.rng.randint(10, 1500))
                rows.append(
                    VisitorSession(
                        visitor_id=self.rng.choice(visitor_ids),
                        site=self.site,
                        started_at=started_at,
                        last_activity_at=started_at + duration,
                        channel=channel,
                        source=source,
                        medium=medium,
                        campaign=campaign,
                        term=keyword,
                        keyword=keyword,
                        referrer_domain=referrer,
                        referrer=f"https://{referrer}/" if referrer else "",
                        landing_path=self.rng.choice(PATHS),
                        matched_source=self.paid_source if channel == Channel.PAID_SEARCH else None,
                        gclid=f"bulk{position}" if channel == Channel.PAID_SEARCH else "",
                        browser="Chrome",
                        os="Android",
                        device_type="mobile",
                        country="US",
                        region="IL",
                        city="Springfield",
                        ip_address="203.0.113.7",
                    )
                )
            created = VisitorSession.objects.bulk_create(rows, batch_size=self.batch)
            for position, session in enumerate(created, start=index):
                if lease_every is not None and position >= next_lease:
                    next_lease += lease_every
                    chosen.append(
                        (
                            session.pk,
                            session.visitor_id,
                            session.started_at,
                            session.last_activity_at,
                            {
                                name: getattr(session, name)
                                for name in (
                                    "channel",
                                    "source",
                                    "medium",
                                    "campaign",
                                    "keyword",
                                    "landing_path",
                                    "referrer_domain",
                                )
                            },
                        )
                    )
            index += size
        return chosen

    def make_leases(self, sessions):
        """Non-overlapping leases: each session takes the number idle longest (cool-down kept)."""
        hold = timedelta(minutes=self.pool.hold_minutes)
        cooldown = timedelta(minutes=self.pool.cooldown_minutes)
        free_at = {number.pk: self.start - timedelta(days=1) for number in self.pool_numbers}
        leases, pending = [], []
        for session_id, visitor_id, started_at, last_seen, touch in sessions:
            number_id = min(free_at, key=free_at.get)
            if free_at[number_id] > started_at:
                continue  # pool exhausted at that moment: the visitor saw the fallback number
            end = last_seen + hold
            free_at[number_id] = end + cooldown
            pending.append(
                (
                    Lease(
                        number_id=number_id,
                        pool=self.pool,
                        session_id=session_id,
                        leased_at=started_at,
                        last_seen_at=last_seen,
                        released_at=end,
                        release_reason=LeaseReleaseReason.EXPIRED,
                    ),
                    visitor_id,
                    touch,
                )
            )
            if len(pending) >= self.batch:
                leases.extend(self.flush_leases(pending))
                pending = []
        leases.extend(self.flush_leases(pending))
        return leases

    def flush_leases(self, pending):
        created = Lease.objects.bulk_create([lease for lease, _, _ in pending], batch_size=self.batch)
        return [(lease, visitor_id, touch) for lease, (_, visitor_id, touch) in zip(created, pending, strict=True)]

    def make_calls(self, count, leases):
        numbers = {number.pk: number.number for number in self.pool_numbers}
        result_weights = [weight for _, weight in RESULTS]
        attributed = min(len(leases), int(count * 0.7))
        picks = self.rng.sample(range(len(leases)), attributed) if attributed else []
        calls = []
        for sequence in range(count):
            result = self.rng.choices([r for r, _ in RESULTS], weights=result_weights)[0]
            ring = self.rng.randint(2, 12) if result == CallResult.ABANDONED else self.rng.randint(3, 28)
            talk = self.rng.randint(20, 900) if result == CallResult.ANSWERED else 0
            call = Call(
                provider="demo",
                provider_call_id=f"bulk-{self.pool.pk}-{sequence:08d}",
                site=self.site,
                from_number=f"+1217{2000000 + self.rng.randint(0, 7999999)}",
                status=CallStatus.COMPLETED,
                result=result,
                ring_seconds=ring,
                talk_seconds=talk,
                total_seconds=ring + talk,
            )
            touch = {}
            if sequence < attributed:
                lease, visitor_id, touch = leases[picks[sequence]]
                call.started_at = lease.leased_at + (lease.last_seen_at - lease.leased_at) / 2
                call.tracking_number_id, call.to_number = lease.number_id, numbers[lease.number_id]
                call.lease_id, call.session_id, call.visitor_id = lease.pk, lease.session_id, visitor_id
                call.source, call.confidence = self.paid_source, Confidence.EXACT
            elif sequence % 3 and self.static_sources:
                source = self.rng.choice(self.static_sources)
                call.started_at = self.start + timedelta(
                    seconds=self.rng.uniform(0, (self.now - self.start).total_seconds())
                )
                call.tracking_number_id, call.to_number = source.static_number_id, source.static_number.number
                call.source, call.confidence = source, Confidence.SOURCE_ONLY
                touch = {"channel": source.call_channel, "source": source.name}
            else:
                call.started_at = self.start + timedelta(
                    seconds=self.rng.uniform(0, (self.now - self.start).total_seconds())
                )
                number_id = self.rng.choice(list(numbers))
                call.tracking_number_id, call.to_number = number_id, numbers[number_id]
                call.confidence = Confidence.UNATTRIBUTED
            call.created_at = call.started_at
            call.attributed_at = call.started_at
            if result == CallResult.ANSWERED:
                call.answered_at = call.started_at + timedelta(seconds=ring)
            call.ended_at = call.started_at + timedelta(seconds=ring + talk)
            calls.append((call, touch))
            if len(calls) >= self.batch:
                self.flush_calls(calls)
                calls = []
        self.flush_calls(calls)

    def flush_calls(self, calls):
        created = Call.objects.bulk_create([call for call, _ in calls], batch_size=self.batch)
        rows = []
        for call, (_, touch) in zip(created, calls, strict=True):
            for model in (TouchModel.FIRST, TouchModel.LAST, TouchModel.LAST_NON_DIRECT):
                rows.append(CallTouch(call_id=call.pk, model=model, session_id=call.session_id, **touch))
        CallTouch.objects.bulk_create(rows, batch_size=self.batch)

    def make_page_views(self, count):
        session_ids = list(
            VisitorSession.objects.filter(site=self.site).order_by("-pk").values_list("pk", "started_at")[:count]
        )
        for offset in range(0, count, self.batch):
            rows = []
            for position in range(offset, min(count, offset + self.batch)):
                session_id, started_at = session_ids[position % len(session_ids)]
                rows.append(
                    PageView(
                        session_id=session_id,
                        viewed_at=started_at + timedelta(seconds=position % 600),
                        path=self.rng.choice(PATHS),
                    )
                )
            PageView.objects.bulk_create(rows, batch_size=self.batch)
