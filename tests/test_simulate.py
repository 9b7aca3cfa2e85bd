"""``calltracking_simulate_call`` (the README's walk-through), the demo call history and the
bulk data generator."""

import io
import re

import pytest
from django.core.management import CommandError, call_command

from wagtail_calltracking.models import (
    Call,
    CallResult,
    CallTouch,
    Confidence,
    Lease,
    Manager,
    NumberPool,
    PageView,
    PoolAudience,
    VisitorSession,
    WebhookEvent,
)
from wagtail_calltracking.webhooks import forwarding

from .factories import make_number, make_pool, make_source
from .webhook_fixtures import settings_with

pytestmark = pytest.mark.usefixtures("forget_destinations")


@pytest.fixture
def demo_numbers(site, call_settings):
    """The demo's configuration: a pool for paid search, two offline static numbers."""
    pool = make_pool(size=4, site=site, name="Online", audience=PoolAudience.SOURCES)
    ads = make_source(name="Google Ads", site=site, utm_source="google", utm_medium="cpc", pool=pool, priority=20)
    newspaper = make_source(name="Newspaper", site=site, landing_parameter="newspaper", priority=10,
                            static_number=make_number(number="+13125550142", site=site))
    billboard = make_source(name="Billboard", site=site, landing_parameter="billboard", priority=10,
                            static_number=make_number(number="+13125550143", site=site))
    return pool, ads, newspaper, billboard


def simulate(*args):
    out = io.StringIO()
    call_command("calltracking_simulate_call", *args, stdout=out, stderr=out)
    return out.getvalue()


@pytest.mark.django_db
class TestSimulateCall:
    def test_the_readme_walkthrough(self, client, demo_numbers):
        """Visit from a paid-search URL, call the number shown, find the call attributed."""
        response = client.get("/?utm_source=google&utm_medium=cpc&utm_term=plumber&gclid=TEST")
        assert response.status_code == 200
        shown = re.search(r'href="tel:(\+\d+)"', response.content.decode()).group(1)
        pool = demo_numbers[0]
        assert pool.numbers.filter(number=shown).exists()

        output = simulate("--to", shown, "--from", "+13125550177", "--duration", "184")
        call = Call.objects.get()
        session = VisitorSession.objects.get()
        assert call.provider == "demo" and call.session == session and call.confidence == Confidence.EXACT
        assert call.result == CallResult.ANSWERED and call.talk_seconds == 184
        assert call.gclid == "TEST" and call.source == demo_numbers[1]
        assert "Exact" in output and "plumber" in output and "Google Ads" in output
        assert WebhookEvent.objects.filter(provider="demo", status="processed").count() == 2

    def test_national_format_and_outcomes(self, demo_numbers):
        simulate("--to", "(312) 555-0142", "--result", "missed")
        simulate("--to", "312-555-0143", "--result", "abandoned")
        simulate("--to", "+13125550142", "--result", "busy")
        simulate("--to", "+13125550142", "--result", "voicemail")
        results = list(Call.objects.order_by("pk").values_list("result", "confidence"))
        assert results == [("missed", "source_only"), ("abandoned", "source_only"), ("busy", "source_only"),
                           ("voicemail", "source_only")]
        assert Call.objects.filter(source=demo_numbers[2]).count() == 3

    def test_unknown_number_warns_and_records_an_unattributed_call(self, demo_numbers):
        output = simulate("--to", "+19175550123")
        assert "not a tracking number" in output
        assert Call.objects.get().confidence == Confidence.UNATTRIBUTED

    def test_agent_and_backdated_call(self, demo_numbers):
        Manager.objects.create(name="Alice", extension="201")
        simulate("--to", "+13125550142", "--agent", "201", "--at", "2025-03-01T10:00:00")
        call = Call.objects.get()
        assert call.manager.name == "Alice"
        assert call.started_at.year == 2025 and call.started_at.month == 3

    def test_refuses_when_the_demo_provider_is_disabled(self, demo_numbers):
        with settings_with(DEMO_PROVIDER_ENABLED=False), pytest.raises(CommandError, match="DEMO_PROVIDER_ENABLED"):
            simulate("--to", "+13125550142")
        with pytest.raises(CommandError, match="ISO 8601"):
            simulate("--to", "+13125550142", "--at", "last tuesday")


@pytest.mark.django_db
class TestDemoHistory:
    def test_loads_attributed_history_once(self, demo_numbers, content_page):
        from home.demo import calls

        out = io.StringIO()
        calls.load(out)
        assert "visits and" in out.getvalue()
        history = Call.objects.filter(provider_call_id__startswith=calls.CALL_ID_PREFIX)
        assert history.count() > 50
        confidences = set(history.values_list("confidence", flat=True))
        assert {Confidence.EXACT, Confidence.SOURCE_ONLY, Confidence.UNATTRIBUTED} <= confidences
        assert {Confidence.LATE, Confidence.AMBIGUOUS} <= confidences
        assert history.filter(confidence=Confidence.AMBIGUOUS, candidate_sessions__isnull=False).exists()
        channels = set(CallTouch.objects.filter(model="last").values_list("channel", flat=True))
        assert {"paid_search", "offline"} <= channels
        assert set(history.values_list("result", flat=True)) >= {"answered", "missed"}
        assert history.filter(manager__isnull=False).exists()
        assert history.filter(tag="lead", value__isnull=False).exists()
        assert PageView.objects.exists()
        assert set(VisitorSession.objects.values_list("channel", flat=True)) >= {
            "paid_search", "organic_search", "email", "referral", "direct", "offline", "paid_social"}
        # Leases of one number never overlap.
        for number in demo_numbers[0].numbers.all():
            leases = list(Lease.objects.filter(number=number).order_by("leased_at"))
            for before, after in zip(leases, leases[1:], strict=False):
                assert before.released_at <= after.leased_at
                if after.reclaimed:
                    assert before.released_at == after.leased_at and before.release_reason == "reclaimed"
        assert not Lease.objects.filter(released_at__isnull=True).exists()  # today's numbers stay free
        count = history.count()
        calls.load(io.StringIO())
        assert history.count() == count

    def test_without_numbers_it_skips(self, site):
        from home.demo import calls

        out = io.StringIO()
        calls.load(out)
        assert "skipping" in out.getvalue() and not Call.objects.exists()


@pytest.mark.django_db
def test_bulk_data_generator(site):
    out = io.StringIO()
    call_command("calltracking_bulk_data", "--sessions", "3000", "--leases", "300", "--calls", "400",
                 "--page-views", "500", "--pool-size", "12", "--batch-size", "700", stdout=out)
    assert VisitorSession.objects.count() == 3000
    assert 250 <= Lease.objects.count() <= 300
    assert Call.objects.count() == 400 and CallTouch.objects.count() == 1200
    assert PageView.objects.count() == 500
    exact = Call.objects.filter(confidence=Confidence.EXACT).select_related("lease")
    assert exact.count() >= 250
    for call in exact[:50]:
        assert call.lease.leased_at <= call.started_at <= call.lease.released_at
        assert call.session_id == call.lease.session_id
    pool = NumberPool.objects.get(name__startswith="Bulk pool")
    for number in pool.numbers.all():
        leases = list(Lease.objects.filter(number=number).order_by("leased_at"))
        for before, after in zip(leases, leases[1:], strict=False):
            assert before.released_at <= after.leased_at
    # A second run adds to the same database without collisions.
    call_command("calltracking_bulk_data", "--sessions", "100", "--leases", "10", "--calls", "10",
                 "--pool-size", "3", stdout=io.StringIO())
    assert Call.objects.count() == 410
    forwarding._last_destination.clear()
