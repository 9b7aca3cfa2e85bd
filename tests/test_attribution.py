"""Attribution: lease live at the call's start, grace window, reclaimed and overlapping
candidates, static sources, touches, caller history, release after the call."""

from datetime import timedelta

import pytest
from django.utils import timezone

from wagtail_calltracking.attribution import attribute_call, find_attribution, reattribute
from wagtail_calltracking.models import (
    Call,
    CallTouch,
    Confidence,
    Lease,
    LeaseReleaseReason,
    TouchModel,
    TrackingNumber,
    Visitor,
)
from wagtail_calltracking.numbers import leasing
from wagtail_calltracking.numbers.rules import build_config

from .factories import make_call, make_number, make_pool, make_session, make_source
from .webhook_fixtures import CALLER, lease_number

NOW = timezone.now


def minutes(n):
    return timedelta(minutes=n)


def new_call(number, started_at=None, caller=CALLER, **kwargs):
    call = make_call(to_number=number.number if number else "+19175550100", from_number=caller,
                     started_at=started_at or NOW(), **kwargs)
    attribute_call(call)
    call.save()
    return call


def touches(call):
    return {touch.model: touch for touch in CallTouch.objects.filter(call=call)}


@pytest.fixture
def pool(site):
    return make_pool(size=2, site=site, name="Online", hold_minutes=20)


@pytest.fixture
def ads(site, pool):
    return make_source(name="Google Ads", site=site, channel="paid_search", pool=pool)


@pytest.fixture
def number(pool):
    return pool.numbers.order_by("number").first()


def paid_session(source, **kwargs):
    kwargs.setdefault("started_at", NOW() - minutes(10))
    fields = {"channel": "paid_search", "source": "google", "medium": "cpc", "campaign": "spring",
              "keyword": "plumber", "landing_path": "/", "matched_source": source, **kwargs}
    return make_session(**fields)


@pytest.mark.django_db
class TestPoolNumbers:
    def test_exact(self, ads, number):
        session = paid_session(ads, gclid="G1", gbraid="GB", wbraid="WB", ga_client_id="1.2",
                               ga_session_ids={"G-X": "99"})
        lease = lease_number(number, session, NOW() - minutes(9), NOW() - minutes(1))
        call = new_call(number)
        assert call.confidence == Confidence.EXACT
        assert (call.session, call.lease, call.visitor_id, call.source) == (session, lease, session.visitor_id, ads)
        assert (call.gclid, call.gbraid, call.wbraid, call.ga_client_id, call.ga_session_ids) == (
            "G1", "GB", "WB", "1.2", {"G-X": "99"})
        assert call.tracking_number == number and call.site_id == number.site_id
        assert call.attributed_at is not None and not call.candidate_sessions.exists()

    def test_the_lease_live_at_the_call_start_wins_not_the_current_one(self, ads, number):
        """A call that started while A held the number is A's, even if it is processed
        after the number went to B (late or replayed webhooks)."""
        a = paid_session(ads, started_at=NOW() - minutes(90))
        b = paid_session(ads, started_at=NOW() - minutes(5))
        lease_number(number, a, NOW() - minutes(90), NOW() - minutes(60), released_at=NOW() - minutes(40), live=False)
        lease_number(number, b, NOW() - minutes(5))
        call = new_call(number, started_at=NOW() - minutes(50))
        assert call.session == a and call.confidence == Confidence.EXACT
        assert new_call(number).session == b

    def test_late_within_the_grace_window(self, ads, number):
        session = paid_session(ads, started_at=NOW() - minutes(120))
        lease_number(number, session, NOW() - minutes(120), NOW() - minutes(100), live=False)
        # Lease ended at last_seen + 20 min hold = 80 minutes ago: a call now is 80 min late.
        assert new_call(number).confidence == Confidence.UNATTRIBUTED
        call = new_call(number, started_at=NOW() - minutes(30))
        assert call.confidence == Confidence.LATE and call.session == session

    def test_lease_end_is_exclusive(self, ads, number):
        session = paid_session(ads)
        lease = lease_number(number, session, NOW() - minutes(30), released_at=NOW() - minutes(10), live=False)
        call = new_call(number, started_at=lease.released_at)
        assert call.confidence == Confidence.LATE
        call = new_call(number, started_at=lease.released_at - timedelta(seconds=1))
        assert call.confidence == Confidence.EXACT

    def test_grace_window_setting(self, ads, number, settings):
        session = paid_session(ads)
        lease_number(number, session, NOW() - minutes(40), released_at=NOW() - minutes(15), live=False)
        settings.WAGTAIL_CALLTRACKING = {**settings.WAGTAIL_CALLTRACKING, "ATTRIBUTION_GRACE_MINUTES": 10}
        call = new_call(number)
        assert call.confidence == Confidence.UNATTRIBUTED and call.session is None
        assert call.source == ads  # the pool's only source is still known
        assert all(t.channel == "" and t.session_id is None for t in touches(call).values())

    def test_reclaimed_lease_is_ambiguous(self, ads, number):
        """The pool ran out and the number was taken from A (still browsing) for B."""
        a = paid_session(ads, started_at=NOW() - minutes(15))
        b = paid_session(ads, started_at=NOW() - minutes(3))
        lease_number(number, a, NOW() - minutes(15), NOW() - minutes(4), released_at=NOW() - minutes(3), live=False)
        Lease.objects.filter(session=a).update(release_reason=LeaseReleaseReason.RECLAIMED)
        lease_number(number, b, NOW() - minutes(3), reclaimed=True)
        call = new_call(number)
        assert call.confidence == Confidence.AMBIGUOUS
        assert call.session == b
        assert set(call.candidate_sessions.all()) == {a, b}

    def test_several_leases_ending_in_the_grace_window_are_ambiguous(self, ads, number):
        a = paid_session(ads, started_at=NOW() - minutes(70))
        b = paid_session(ads, started_at=NOW() - minutes(35))
        lease_number(number, a, NOW() - minutes(70), released_at=NOW() - minutes(50), live=False)
        lease_number(number, b, NOW() - minutes(35), released_at=NOW() - minutes(10), live=False)
        call = new_call(number)
        assert call.confidence == Confidence.AMBIGUOUS and call.session == b
        assert set(call.candidate_sessions.all()) == {a, b}

    def test_lease_without_session_is_source_only(self, ads, number):
        lease_number(number, None, NOW() - minutes(5))
        call = new_call(number)
        assert call.confidence == Confidence.SOURCE_ONLY and call.source == ads and call.session is None
        assert {t.source for t in touches(call).values()} == {"Google Ads"}

    def test_matched_source_of_another_pool_is_not_used(self, site, ads, number):
        other_pool = make_pool(size=1, site=site, name="Other")
        other = make_source(name="Facebook", site=site, pool=other_pool)
        session = paid_session(other)
        lease_number(number, session, NOW() - minutes(5))
        assert new_call(number).source == ads

    def test_pool_with_several_sources_leaves_the_source_to_the_session(self, site, ads, number, pool):
        make_source(name="Bing Ads", site=site, pool=pool)
        lease_number(number, None, NOW() - minutes(5))
        assert new_call(number).source is None

    def test_real_leasing_contract(self, site, ads, pool):
        """Leases taken by the numbers engineer's leasing code attribute exactly."""
        session = paid_session(ads, started_at=NOW() - minutes(1))
        config = build_config(site.pk).pools[pool.pk]
        result = leasing.number_for_session(config, session.pk)
        assert result.is_dynamic
        number = TrackingNumber.objects.get(pk=result.number_id)
        call = new_call(number)
        assert call.session == session and call.lease_id == result.lease_id
        assert call.confidence == Confidence.EXACT

    def test_release_number_after_call(self, ads, number, settings):
        session = paid_session(ads)
        lease = lease_number(number, session, NOW() - minutes(5))
        settings.WAGTAIL_CALLTRACKING = {**settings.WAGTAIL_CALLTRACKING, "RELEASE_NUMBER_AFTER_CALL": True}
        call = new_call(number)
        assert call.confidence == Confidence.EXACT
        lease.refresh_from_db()
        number.refresh_from_db()
        assert lease.released_at is not None and lease.release_reason == LeaseReleaseReason.CALL
        assert number.current_lease_id is None
        # History is kept: the call still points at the lease.
        assert Call.objects.get().lease == lease

    def test_no_release_by_default(self, ads, number):
        session = paid_session(ads)
        lease = lease_number(number, session, NOW() - minutes(5))
        new_call(number)
        lease.refresh_from_db()
        assert lease.released_at is None

    def test_query_budget(self, ads, number, django_assert_max_num_queries):
        session = paid_session(ads)
        lease_number(number, session, NOW() - minutes(5))
        call = make_call(to_number=number.number, from_number=CALLER, started_at=NOW())
        with django_assert_max_num_queries(9):
            attribute_call(call)


@pytest.mark.django_db
class TestTouches:
    def test_first_last_and_last_non_direct(self, ads, number):
        visitor = Visitor.objects.create()
        organic = make_session(visitor=visitor, started_at=NOW() - timedelta(days=20), channel="organic_search",
                               source="google", medium="organic", landing_path="/blog/")
        email = make_session(visitor=visitor, started_at=NOW() - timedelta(days=5), channel="email",
                             source="newsletter", medium="email", campaign="may")
        direct = make_session(visitor=visitor, started_at=NOW() - minutes(10), channel="direct", source="(direct)",
                              medium="(none)", landing_path="/contact/")
        make_session(visitor=visitor, started_at=NOW() + minutes(10), channel="paid_search")  # after the call
        lease_number(number, direct, NOW() - minutes(9))
        result = touches(new_call(number))
        assert result[TouchModel.FIRST].session == organic and result[TouchModel.FIRST].landing_path == "/blog/"
        assert result[TouchModel.LAST].session == direct and result[TouchModel.LAST].channel == "direct"
        assert result[TouchModel.LAST_NON_DIRECT].session == email
        assert result[TouchModel.LAST_NON_DIRECT].campaign == "may"

    def test_only_direct_visits(self, ads, number):
        session = make_session(channel="direct")
        lease_number(number, session, NOW() - minutes(5))
        result = touches(new_call(number))
        assert {t.session for t in result.values()} == {session}

    def test_static_number_touches_carry_the_source(self, site):
        static = make_number(number="+13125550142", site=site)
        billboard = make_source(name="Billboard I-90", site=site, static_number=static, report_channel="display")
        call = new_call(static)
        assert call.confidence == Confidence.SOURCE_ONLY and call.source == billboard and call.session is None
        result = touches(call)
        assert {(t.channel, t.source) for t in result.values()} == {("display", "Billboard I-90")}
        newspaper = make_source(name="Newspaper", site=site, static_number=make_number(number="+13125550143"))
        assert {t.channel for t in touches(new_call(newspaper.static_number)).values()} == {"offline"}

    def test_unknown_number(self, db):
        call = new_call(None)
        assert call.confidence == Confidence.UNATTRIBUTED and call.tracking_number is None
        assert len(touches(call)) == 3


@pytest.mark.django_db
class TestCallerHistory:
    def test_first_time_window(self, ads, number):
        make_call(from_number=CALLER, started_at=NOW() - timedelta(days=100))
        assert new_call(number).is_first_time is True
        assert new_call(number, started_at=NOW() + minutes(1)).is_first_time is False

    def test_first_time_days_setting(self, ads, number, settings):
        other = "+13125550178"
        make_call(from_number=CALLER, started_at=NOW() - timedelta(days=10))
        make_call(from_number=other, started_at=NOW() - timedelta(days=10))
        assert new_call(number).is_first_time is False
        settings.WAGTAIL_CALLTRACKING = {**settings.WAGTAIL_CALLTRACKING, "FIRST_TIME_CALLER_DAYS": 7}
        assert new_call(number, caller=other).is_first_time is True

    def test_withheld_caller_is_never_first_time(self, ads, number):
        assert new_call(number, caller="anonymous").is_first_time is False

    def test_static_call_is_linked_to_the_callers_earlier_visitor(self, site, ads, number):
        session = paid_session(ads, started_at=NOW() - timedelta(days=3))
        lease_number(number, session, NOW() - timedelta(days=3), live=False)
        first = new_call(number, started_at=NOW() - timedelta(days=3) + minutes(1))
        assert first.visitor_id == session.visitor_id
        make_call(from_number=CALLER, started_at=NOW() - timedelta(days=1))  # unattributed in between
        newspaper = make_source(name="Newspaper", site=site, static_number=make_number(number="+13125550144"))
        call = new_call(newspaper.static_number)
        assert call.visitor_id == session.visitor_id and call.session is None
        assert call.confidence == Confidence.SOURCE_ONLY


@pytest.mark.django_db
def test_reattribute_after_a_data_fix(ads, number):
    call = new_call(number)
    assert call.confidence == Confidence.UNATTRIBUTED
    session = paid_session(ads)
    lease_number(number, session, call.started_at - minutes(1))
    reattribute(call)
    call.refresh_from_db()
    assert call.confidence == Confidence.EXACT and call.session == session
    assert CallTouch.objects.filter(call=call).count() == 3


@pytest.mark.django_db
def test_find_attribution_reads_only(ads, number, django_assert_max_num_queries):
    lease_number(number, paid_session(ads), NOW() - minutes(5))
    with django_assert_max_num_queries(3):
        assert find_attribution(number, NOW()).confidence == Confidence.EXACT
