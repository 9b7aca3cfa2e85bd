"""Demo history: four weeks of visits and the calls they produced, attributed by the real code.

Sessions are classified by the tracking code's own landing classifier (utm tags, click ids,
referrers), matched to the configured sources by the numbers rules, given pool numbers with
non-overlapping leases (hold time and cool-down respected), and their calls go through the
demo provider's processing — the same path as a webhook: call record, timeline, attribution
(exact, late, ambiguous, source-only, unattributed), managers, ring and talk times. Static
numbers (newspaper, billboard…) get their own calls. Idempotent: skipped once loaded.
"""

import random
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone
from wagtail.models import Page, Site

from wagtail_calltracking.models import (
    Call,
    CallResult,
    CallTag,
    CallTrackingSiteSettings,
    Lease,
    LeaseReleaseReason,
    Manager,
    NumberPool,
    PageView,
    Source,
    Visitor,
    VisitorSession,
)
from wagtail_calltracking.numbers.leasing import record_pool_stat
from wagtail_calltracking.numbers.rules import get_config, match_source
from wagtail_calltracking.tracking.landing import classify
from wagtail_calltracking.tracking.useragent import parse_user_agent
from wagtail_calltracking.webhooks.base import CallEventType, CallWebhookEvent
from wagtail_calltracking.webhooks.processing import process_events

CALL_ID_PREFIX = "demo-history-"
DAYS = 28
BUSINESS_LINE = "+12175550100"

MANAGERS = [
    ("Alice Moreno", "+12175550101", "201"),
    ("Ben Carter", "+12175550102", "202"),
    ("Chloe Nguyen", "+12175550103", "203"),
]

#: (weight, query string, referrer, probability that the visit leads to a call)
TRAFFIC = [
    (
        14,
        "utm_source=google&utm_medium=cpc&utm_campaign=emergency&utm_term={kw}&gclid={click}",
        "https://www.google.com/",
        0.16,
    ),
    (8, "gclid={click}", "https://www.google.com/", 0.14),
    (
        4,
        "utm_source=bing&utm_medium=cpc&utm_campaign=brand&utm_term={kw}&msclkid={click}",
        "https://www.bing.com/",
        0.12,
    ),
    (18, "", "https://www.google.com/search?q={kw_q}", 0.07),
    (4, "", "https://duckduckgo.com/", 0.06),
    (
        5,
        "utm_source=facebook&utm_medium=paid_social&utm_campaign=spring-promo&fbclid={click}",
        "https://m.facebook.com/",
        0.05,
    ),
    (4, "", "https://www.facebook.com/", 0.03),
    (5, "utm_source=newsletter&utm_medium=email&utm_campaign=may-tips", "", 0.08),
    (5, "", "https://www.yelp.com/biz/acme-plumbing-springfield", 0.11),
    (3, "", "https://www.angi.com/companylist/us/il/springfield/plumbing.htm", 0.09),
    (14, "", "", 0.08),
    (2, "ct=newspaper", "", 0.10),
    (2, "ct=billboard", "", 0.10),
]
KEYWORDS = [
    "emergency plumber",
    "plumber near me",
    "water heater repair",
    "drain cleaning springfield",
    "burst pipe repair",
    "24 hour plumber",
    "bathroom remodel cost",
    "clogged toilet",
]
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
]
PLACES = [
    ("IL", "Springfield", 40),
    ("IL", "Chatham", 10),
    ("IL", "Decatur", 8),
    ("IL", "Chicago", 6),
    ("MO", "St. Louis", 4),
    ("IL", "Peoria", 5),
]
#: (result, weight, ring seconds range)
OUTCOMES = [
    ("answered", 66, (3, 20)),
    ("missed", 12, (20, 30)),
    ("abandoned", 8, (2, 12)),
    ("voicemail", 6, (25, 30)),
    ("busy", 5, (1, 3)),
    ("failed", 3, (0, 2)),
]


@dataclass
class NumberSlot:
    number_id: int
    e164: str
    free_at: object
    lease: object = None


class History:
    def __init__(self, stdout, site, rng, now):
        self.stdout, self.site, self.rng, self.now = stdout, site, rng, now
        self.config = get_config(site)
        self.pools = {pool.pk: pool for pool in NumberPool.objects.filter(active=True).prefetch_related("numbers")}
        self.slots = {
            pool_id: [
                NumberSlot(n.pk, n.number, now - timedelta(days=DAYS + 1)) for n in pool.numbers.all() if n.active
            ]
            for pool_id, pool in self.pools.items()
        }
        self.pages = list(
            Page.objects.live().descendant_of(site.root_page, inclusive=True).specific().order_by("path")[:20]
        )
        self.callers: list[str] = []
        self.returning: list[Visitor] = []
        self.call_count = 0
        self.page_views: list[PageView] = []
        self.agents = [extension for _, _, extension in MANAGERS]

    # --- visits -----------------------------------------------------------------------------

    def visit_times(self, day_start):
        """Visit start times of one day: more on weekdays, mostly during business hours."""
        weekday = day_start.weekday() < 5
        count = self.rng.randint(30, 60) if weekday else self.rng.randint(15, 30)
        times = []
        for _ in range(count):
            hour = min(23, max(6, int(self.rng.gauss(13, 3.5))))
            times.append(
                day_start + timedelta(hours=hour, minutes=self.rng.randint(0, 59), seconds=self.rng.randint(0, 59))
            )
        return sorted(times)

    def make_session(self, started_at):
        weight_total = sum(row[0] for row in TRAFFIC)
        pick = self.rng.uniform(0, weight_total)
        query, referrer, call_rate = TRAFFIC[-1][1:]
        for weight, *profile in TRAFFIC:
            pick -= weight
            if pick <= 0:
                query, referrer, call_rate = profile
                break
        keyword = self.rng.choice(KEYWORDS)
        click = "".join(
            self.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") for _ in range(24)
        )
        query = query.format(kw=keyword.replace(" ", "+"), click=click)
        referrer = referrer.format(kw_q=keyword.replace(" ", "+"))
        landing_page = self.rng.choice(self.pages) if self.pages else None
        path = landing_page.url_path[len(self.site.root_page.url_path) - 1 :] if landing_page else "/"
        landing = classify(query, referrer, own_hosts=(self.site.hostname,), path=path)
        visitor = (
            self.rng.choice(self.returning)
            if self.returning and self.rng.random() < 0.18
            else Visitor.objects.create(created_at=started_at)
        )
        if self.rng.random() < 0.3:
            self.returning.append(visitor)
        region, city, _ = self.rng.choices(PLACES, weights=[p[2] for p in PLACES])[0]
        octet = self.rng.randint(1, 254)
        session = VisitorSession(
            visitor=visitor,
            site=self.site,
            started_at=started_at,
            last_activity_at=started_at,
            landing_page=landing_page,
            ip_address=f"198.51.100.{octet}" if octet % 2 else f"203.0.113.{octet}",
            country="US",
            region=region,
            city=city,
            **landing.session_fields(),
            **parse_user_agent(self.rng.choice(USER_AGENTS)),
        )
        if landing.click_ids.get("gclid"):
            session.ga_client_id = f"{self.rng.randint(10**8, 10**9)}.{int(started_at.timestamp())}"
            session.ga_session_ids = {"G-DEMO1234": str(int(started_at.timestamp()))}
        session.matched_source = match_source(session, self.site)
        session.save()
        # Page views: the landing page, then a few more.
        viewed_at = started_at
        for index in range(self.rng.choices([1, 2, 3, 4, 5, 6], weights=[30, 25, 20, 12, 8, 5])[0]):
            page = landing_page if index == 0 else (self.rng.choice(self.pages) if self.pages else None)
            page_path = page.url_path[len(self.site.root_page.url_path) - 1 :] if page else "/"
            self.page_views.append(
                PageView(
                    session=session,
                    viewed_at=viewed_at,
                    path=page_path,
                    page=page,
                    title=page.title if page else "",
                    query=landing.landing_query if index == 0 else "",
                )
            )
            viewed_at += timedelta(seconds=self.rng.randint(20, 240))
        session.last_activity_at = viewed_at - timedelta(seconds=1)
        VisitorSession.objects.filter(pk=session.pk).update(last_activity_at=session.last_activity_at)
        return session, call_rate

    def pool_for(self, session):
        source = session.matched_source
        if source is not None:
            return (None, source) if source.static_number_id else (source.pool_id, source)
        pool = self.config.audience_pool_for(session.channel)
        return (pool.id if pool else None), None

    def lease(self, pool_id, session):
        """(lease, slot, reclaimed): the number idle longest, as the leasing code picks it.
        Now and then the pool runs out at a peak and the least recently active live lease is
        reclaimed ("reuse the oldest"): calls to that number are then ambiguous."""
        pool = self.pools.get(pool_id)
        slots = self.slots.get(pool_id) or []
        if pool is None or not slots:
            return None, None, False
        start = session.started_at + timedelta(seconds=2)
        end = session.last_activity_at + timedelta(minutes=pool.hold_minutes)
        free = [slot for slot in slots if slot.free_at <= start]
        live = [slot for slot in slots if slot.lease is not None and slot.lease.released_at > start]
        reclaim = live and (not free or self.rng.random() < 0.012)
        if not free and not reclaim:
            record_pool_stat(pool.pk, start, exhaustions=1)
            return None, None, False
        if reclaim:
            slot = min(live, key=lambda s: s.lease.last_seen_at)
            Lease.objects.filter(pk=slot.lease.pk).update(
                released_at=start, release_reason=LeaseReleaseReason.RECLAIMED
            )
            record_pool_stat(pool.pk, start, exhaustions=1)
        else:
            slot = min(free, key=lambda s: s.free_at)
        slot.lease = Lease.objects.create(
            number_id=slot.number_id,
            pool=pool,
            session=session,
            leased_at=start,
            last_seen_at=session.last_activity_at,
            released_at=end,
            release_reason=LeaseReleaseReason.EXPIRED,
            reclaimed=bool(reclaim),
        )
        busy = sum(1 for s in slots if s.free_at > start)
        record_pool_stat(pool.pk, start, leases=1, peak=min(len(slots), busy + 1))
        slot.free_at = end + timedelta(minutes=pool.cooldown_minutes)
        return slot.lease, slot, bool(reclaim)

    # --- calls ------------------------------------------------------------------------------

    def caller(self):
        if self.callers and self.rng.random() < 0.15:
            return self.rng.choice(self.callers)
        if self.rng.random() < 0.03:
            return "anonymous"
        number = f"+1217{self.rng.randint(2000000, 9999999)}"
        self.callers.append(number)
        return number

    def simulate_call(self, to_number, started_at):
        self.call_count += 1
        call_id = f"{CALL_ID_PREFIX}{self.call_count:05d}"
        result, _, ring_range = self.rng.choices(OUTCOMES, weights=[o[1] for o in OUTCOMES])[0]
        ring = self.rng.randint(*ring_range)
        caller = self.caller()
        events = [
            CallWebhookEvent(
                event_type=CallEventType.INCOMING,
                call_id=call_id,
                dedupe_key=f"incoming:{call_id}",
                from_number=caller,
                to_number=to_number,
                timestamp=started_at,
            )
        ]
        if result == "answered":
            talk = int(self.rng.lognormvariate(4.6, 0.8))  # a few minutes, long tail
            agent = self.rng.choice(self.agents)
            events.append(
                CallWebhookEvent(
                    event_type=CallEventType.ANSWERED,
                    call_id=call_id,
                    agent=agent,
                    dedupe_key=f"answered:{call_id}",
                    timestamp=started_at + timedelta(seconds=ring),
                )
            )
            events.append(
                CallWebhookEvent(
                    event_type=CallEventType.COMPLETED,
                    call_id=call_id,
                    outcome=CallResult.ANSWERED,
                    talk_seconds=talk,
                    ring_seconds=ring,
                    agent=agent,
                    dedupe_key=f"completed:{call_id}",
                    timestamp=started_at + timedelta(seconds=ring + talk),
                )
            )
        else:
            outcome = CallResult.MISSED if result == "abandoned" else result
            events.append(
                CallWebhookEvent(
                    event_type=CallEventType.COMPLETED,
                    call_id=call_id,
                    outcome=outcome,
                    ring_seconds=ring,
                    dedupe_key=f"completed:{call_id}",
                    timestamp=started_at + timedelta(seconds=ring),
                )
            )
        processed = process_events("demo", events, received_at=started_at)
        return processed.call

    def run(self):
        day = (self.now - timedelta(days=DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
        latest = self.now - timedelta(hours=2)  # leave today's live traffic to the real demo
        static_numbers = list(
            Source.objects.filter(active=True, static_number__isnull=False, static_number__active=True).values_list(
                "static_number__number", flat=True
            )
        )
        pool_numbers = [slot.e164 for slots in self.slots.values() for slot in slots]
        sessions = 0
        while day < latest:
            for started_at in self.visit_times(day):
                if started_at >= latest:
                    break
                session, call_rate = self.make_session(started_at)
                sessions += 1
                pool_id, _ = self.pool_for(session)
                lease, slot, reclaimed = self.lease(pool_id, session) if pool_id else (None, None, False)
                if reclaimed:
                    # The displaced visitor dials the number they noted: both saw it.
                    self.simulate_call(slot.e164, started_at + timedelta(seconds=self.rng.randint(40, 240)))
                elif slot is not None and self.rng.random() < call_rate:
                    # Mostly while browsing; some after leaving (late), within the grace window.
                    if self.rng.random() < 0.8:
                        offset = self.rng.uniform(
                            20, max(21, (session.last_activity_at - started_at).total_seconds() + 60)
                        )
                    else:
                        offset = (session.last_activity_at - started_at).total_seconds() + self.rng.uniform(
                            25 * 60, 55 * 60
                        )
                    call_at = started_at + timedelta(seconds=offset)
                    if call_at < latest:
                        self.simulate_call(slot.e164, call_at)
            for _ in range(self.rng.randint(1, 3) if static_numbers else 0):
                self.simulate_call(
                    self.rng.choice(static_numbers),
                    day + timedelta(hours=self.rng.randint(8, 19), minutes=self.rng.randint(0, 59)),
                )
            if pool_numbers and self.rng.random() < 0.3:
                # Someone dials a pool number they noted days ago: nobody holds it any more.
                self.simulate_call(self.rng.choice(pool_numbers), day + timedelta(hours=self.rng.randint(7, 21)))
            if len(self.page_views) > 2000:
                PageView.objects.bulk_create(self.page_views)
                self.page_views = []
            day += timedelta(days=1)
        PageView.objects.bulk_create(self.page_views)
        return sessions


def ensure_managers(site):
    for name, phone, extension in MANAGERS:
        Manager.objects.get_or_create(extension=extension, defaults={"name": name, "phone": phone, "site": site})


def ensure_fallback_destination(site, stdout):
    settings_row, _ = CallTrackingSiteSettings.objects.get_or_create(site=site)
    if not settings_row.fallback_forward_to:
        settings_row.fallback_forward_to = BUSINESS_LINE
        settings_row.save(update_fields=["fallback_forward_to"])
        stdout.write(f"  fallback forwarding destination set to {BUSINESS_LINE}")


def tag_calls(rng):
    """What editors do in the admin: mark leads (with a value) and spam."""
    for call in Call.objects.filter(provider_call_id__startswith=CALL_ID_PREFIX).select_related("source"):
        roll = rng.random()
        if call.result == CallResult.ANSWERED and roll < 0.45:
            call.tag = CallTag.LEAD
            call.value = (
                call.source.value if call.source_id and call.source.value else Decimal(rng.randrange(120, 950, 10))
            )
        elif call.result == CallResult.ANSWERED and roll < 0.52:
            call.tag = CallTag.EXISTING_CUSTOMER
        elif roll > 0.97:
            call.tag = CallTag.SPAM
        else:
            continue
        Call.objects.filter(pk=call.pk).update(tag=call.tag, value=call.value)


def load(stdout, *, seed=2024, now=None):
    if Call.objects.filter(provider_call_id__startswith=CALL_ID_PREFIX).exists():
        stdout.write("  call history already loaded")
        return
    site = Site.objects.filter(is_default_site=True).select_related("root_page").first()
    if site is None:
        stdout.write("  no default site: run the pages step first")
        return
    if (
        not Source.objects.filter(Q(static_number__isnull=False) | Q(pool__isnull=False)).exists()
        and not NumberPool.objects.exists()
    ):
        stdout.write("  no tracking numbers configured: skipping the call history")
        return
    ensure_managers(site)
    ensure_fallback_destination(site, stdout)
    history = History(stdout, site, random.Random(seed), now or timezone.now())
    sessions = history.run()
    tag_calls(random.Random(seed + 1))
    stdout.write(f"  {sessions} visits and {history.call_count} calls over the last {DAYS} days")
