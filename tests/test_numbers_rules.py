"""Source matching (``rules.match_source``) and the cached number configuration."""

import pytest
from django.core.cache.backends.base import BaseCache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from wagtail_calltracking.models import (
    CallTrackingSiteSettings,
    Channel,
    NumberPool,
    PoolAudience,
    Source,
    TrackingNumber,
    VisitorSession,
)
from wagtail_calltracking.numbers import rules
from wagtail_calltracking.numbers.rules import get_config, landing_value, match_source

from .factories import make_number, make_pool, make_source
from .numbers_fixtures import *  # noqa: F403 (fixtures)
from .numbers_fixtures import CANONICAL

pytestmark = pytest.mark.django_db


def unsaved_session(**fields):
    """A session as the middleware hands it to match_source (not saved yet)."""
    fields.setdefault("channel", Channel.DIRECT)
    return VisitorSession(**fields)


def test_landing_parameter_matches_offline_source(site, newspaper):
    assert match_source(unsaved_session(channel="offline", source="newspaper", landing_query="ct=newspaper"), site) == newspaper
    # The parameter alone (whatever the channel) and any case.
    assert match_source(unsaved_session(landing_query="utm_x=1&CT=NewsPaper"), site) == newspaper
    assert match_source(unsaved_session(landing_query="ct=billboard"), site) is None


def test_landing_parameter_name_is_configurable(site, newspaper, settings):
    settings.WAGTAIL_CALLTRACKING = {**settings.WAGTAIL_CALLTRACKING, "LANDING_PARAMETER": "src"}
    assert match_source(unsaved_session(landing_query="src=newspaper"), site) == newspaper
    assert match_source(unsaved_session(landing_query="ct=newspaper"), site) is None


def test_vanity_landing_path_matches_whole_segments(site):
    flyer = make_source(name="Flyer", landing_path="/spring", static_number=make_number())
    assert match_source(unsaved_session(landing_path="/spring"), site) == flyer
    assert match_source(unsaved_session(landing_path="/spring/"), site) == flyer
    assert match_source(unsaved_session(landing_path="/Spring/offer/"), site) == flyer
    assert match_source(unsaved_session(landing_path="/springfield/"), site) is None


def test_utm_patterns_channel_and_referrer_rules(site, pool):
    google = make_source(name="Google Ads", utm_source="google, bing", utm_medium="cpc", pool=pool, priority=10)
    spring = make_source(name="Spring", utm_campaign="spring-*", static_number=make_number(), priority=20)
    yelp = make_source(name="Yelp", referrer_domain="yelp.com", static_number=make_number(), priority=30)
    social = make_source(name="Social", channel="organic_social", static_number=make_number(), priority=40)

    assert match_source(unsaved_session(source="Google", medium="cpc"), site) == google
    assert match_source(unsaved_session(source="bing", medium="CPC"), site) == google
    assert match_source(unsaved_session(source="google", medium="organic"), site) is None
    assert match_source(unsaved_session(source="x", campaign="Spring-2025"), site) == spring
    assert match_source(unsaved_session(campaign="autumn"), site) is None
    assert match_source(unsaved_session(referrer_domain="m.yelp.com"), site) == yelp
    assert match_source(unsaved_session(referrer_domain="yelp.com"), site) == yelp
    assert match_source(unsaved_session(referrer_domain="notyelp.com"), site) is None
    assert match_source(unsaved_session(channel="organic_social"), site) == social


def test_every_filled_rule_must_match(site):
    both = make_source(name="Google brand", utm_source="google", utm_campaign="brand", static_number=make_number())
    assert match_source(unsaved_session(source="google", campaign="brand"), site) == both
    assert match_source(unsaved_session(source="google", campaign="generic"), site) is None


def test_priority_orders_rules_and_landing_rules_come_first(site, pool):
    low = make_source(name="Any paid", channel="paid_search", pool=pool, priority=50)
    high = make_source(name="Google paid", channel="paid_search", utm_source="google", static_number=make_number(), priority=5)
    assert match_source(unsaved_session(channel="paid_search", source="google"), site) == high
    assert match_source(unsaved_session(channel="paid_search", source="bing"), site) == low
    # A landing rule wins over a higher-priority non-landing rule.
    flyer = make_source(name="Flyer", landing_parameter="flyer", static_number=make_number(), priority=900)
    assert match_source(
        unsaved_session(channel="paid_search", source="google", landing_query="ct=flyer"), site
    ) == flyer


def test_sources_without_rules_or_inactive_never_match(site):
    make_source(name="Manual only", static_number=make_number())
    make_source(name="Off", landing_parameter="off", static_number=make_number(), active=False)
    inactive_number = make_number(active=False)
    make_source(name="Dead number", landing_parameter="dead", static_number=inactive_number)
    assert match_source(unsaved_session(), site) is None
    assert match_source(unsaved_session(landing_query="ct=off"), site) is None
    assert match_source(unsaved_session(landing_query="ct=dead"), site) is None


def test_sources_of_another_site_do_not_match(site):
    from wagtail.models import Site

    other = Site.objects.create(hostname="other.example", root_page=site.root_page)
    make_source(name="Other", site=other, landing_parameter="other", static_number=make_number())
    everywhere = make_source(name="Everywhere", landing_parameter="all", static_number=make_number())
    assert match_source(unsaved_session(landing_query="ct=other"), site) is None
    assert match_source(unsaved_session(landing_query="ct=other"), other).name == "Other"
    assert match_source(unsaved_session(landing_query="ct=all"), site) == everywhere
    assert match_source(unsaved_session(landing_query="ct=all"), None) == everywhere


def test_match_source_costs_no_query_on_a_warm_cache(site, newspaper, paid_search):
    get_config(site)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            assert match_source(unsaved_session(landing_query="ct=newspaper"), site) == newspaper
            assert match_source(unsaved_session(channel="paid_search", source="google"), site) == paid_search
    assert len(queries) == 0


def test_configuration_contents(site, site_settings, newspaper, pool, paid_search):
    everyone = make_pool(size=2, site=site, name="Everyone", audience=PoolAudience.ALL)
    make_pool(size=1, site=site, name="Paused", audience=PoolAudience.ALL, active=False)
    config = get_config(site)
    assert config.canonical_e164 == CANONICAL
    assert config.display_format == "national"
    assert [rule.name for rule in config.rules] == ["Newspaper", "Paid search"]
    assert config.source("newspaper").static_e164 == "+13125550142"
    assert config.source(newspaper.pk).name == "Newspaper"
    assert config.source(newspaper).name == "Newspaper"
    assert config.source("nope") is None
    assert config.pool("online").size == 3
    assert config.pool(str(pool.pk)).id == pool.pk
    assert config.audience_pools == (everyone.pk,)
    assert config.audience_pool_for(Channel.DIRECT).id == everyone.pk


def test_non_direct_audience(site):
    non_direct = make_pool(size=1, site=site, name="Campaigns", audience=PoolAudience.NON_DIRECT)
    config = get_config(site)
    assert config.needs_channel()
    assert config.audience_pool_for(Channel.DIRECT) is None
    assert config.audience_pool_for(None) is None
    assert config.audience_pool_for(Channel.ORGANIC_SEARCH).id == non_direct.pk


@pytest.mark.parametrize("model", ["source", "pool", "number", "settings"])
def test_saving_or_deleting_configuration_invalidates_the_cache(site, site_settings, newspaper, pool, model, django_capture_on_commit_callbacks):
    assert get_config(site).rules
    with django_capture_on_commit_callbacks(execute=True):
        if model == "source":
            Source.objects.filter(pk=newspaper.pk).first().delete()
        elif model == "pool":
            pool.name = "Renamed"
            pool.save()
        elif model == "number":
            number = TrackingNumber.objects.get(number="+13125550142")
            number.active = False
            number.save()
        else:
            settings_row = CallTrackingSiteSettings.objects.get(site=site)
            settings_row.canonical_number = "+12125550111"
            settings_row.save()
    config = get_config(site)
    if model in ("source", "number"):
        assert [rule.name for rule in config.rules] == []
    elif model == "pool":
        assert config.pool("renamed") is not None
    else:
        assert config.canonical_e164 == "+12125550111"


def test_leasing_does_not_invalidate_the_configuration(site, pool):
    """Leasing writes with QuerySet.update(): no signal, the cache stays warm."""
    from wagtail_calltracking.numbers.leasing import number_for_session

    from .factories import make_session

    config = get_config(site)
    number_for_session(config.pools[pool.pk], make_session().pk)
    with CaptureQueriesContext(connection) as queries:
        get_config(site)
    assert len(queries) == 0


class BrokenCache(BaseCache):
    """A cache backend whose server is down."""

    def __init__(self, location, params):
        super().__init__(params)

    def _fail(self, *args, **kwargs):
        raise ConnectionError("cache server down")

    get = set = add = delete = delete_many = incr = clear = _fail


def test_broken_cache_backend_does_not_break_matching(site, newspaper, settings):
    settings.CACHES = {**settings.CACHES, "broken": {"BACKEND": "tests.test_numbers_rules.BrokenCache"}}
    settings.WAGTAIL_CALLTRACKING = {**settings.WAGTAIL_CALLTRACKING, "CACHE_ALIAS": "broken"}
    assert match_source(unsaved_session(landing_query="ct=newspaper"), site) == newspaper
    newspaper.save()  # invalidation with a broken cache is logged, not raised


def test_landing_value_parsing():
    assert landing_value("?ct=Newspaper") == "newspaper"
    assert landing_value("a=1&ct=%20flyer%20") == "flyer"
    assert landing_value("") == ""
    assert landing_value("ct") == ""
    assert landing_value("&".join(f"p{i}=1" for i in range(500))) == ""


def test_pool_without_numbers_is_in_the_configuration_with_size_zero(site):
    NumberPool.objects.create(name="Empty", site=site, audience=PoolAudience.ALL)
    assert get_config(site).pool("empty").size == 0


class TestMatchingFuzz(HypothesisTestCase):
    """Garbage in a session (from forged landing URLs) never breaks matching."""

    @classmethod
    def setUpTestData(cls):
        make_source(name="Flyer", landing_parameter="flyer", landing_path="/f", static_number=make_number())
        make_source(name="Pattern", utm_source="g*o?le, [x", utm_campaign="*", static_number=make_number())
        make_source(name="Ref", referrer_domain="yelp.com", static_number=make_number())

    @settings(max_examples=200, deadline=None)
    @given(
        st.fixed_dictionaries(
            {
                "channel": st.sampled_from([c.value for c in Channel] + ["", "??"]),
                "source": st.text(max_size=60),
                "medium": st.text(max_size=60),
                "campaign": st.text(max_size=60),
                "referrer_domain": st.text(max_size=60),
                "landing_path": st.text(max_size=80),
                "landing_query": st.text(max_size=200),
            }
        )
    )
    def test_match_source_never_raises(self, fields):
        rules._compile_patterns.cache_clear()
        result = match_source(VisitorSession(**fields), None)
        assert result is None or isinstance(result, Source)


def test_landing_parameter_and_path_are_alternatives(site):
    paper = make_source(name="Paper", landing_parameter="paper", landing_path="/paper", static_number=make_number())
    assert match_source(unsaved_session(landing_query="ct=paper", landing_path="/"), site) == paper
    assert match_source(unsaved_session(landing_path="/paper/"), site) == paper
    assert match_source(unsaved_session(landing_path="/other/"), site) is None
    both = make_source(name="Paper email", landing_parameter="mail", utm_medium="email", static_number=make_number())
    assert match_source(unsaved_session(landing_query="ct=mail", medium="email"), site) == both
    assert match_source(unsaved_session(landing_query="ct=mail", medium="cpc"), site) is None
