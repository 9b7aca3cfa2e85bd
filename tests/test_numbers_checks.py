"""System checks of the numbers area."""

import pytest
from django.core.checks import Error, Warning

from wagtail_calltracking.models import CallTrackingSiteSettings, NumberPool, PoolAudience, Source
from wagtail_calltracking.numbers.checks import check_number_configuration, check_number_settings

from .factories import make_number, make_pool, make_source
from .numbers_fixtures import *  # noqa: F403 (fixtures)
from .numbers_fixtures import CANONICAL

pytestmark = pytest.mark.django_db


def ids(messages):
    return sorted(message.id for message in messages)


def config_ids():
    return ids(check_number_configuration(databases=["default"]))


def test_clean_configuration_has_no_messages(site, site_settings, paid_search, newspaper):
    assert config_ids() == []


def test_pool_without_numbers_warns(site, site_settings):
    empty = NumberPool.objects.create(name="Empty", site=site, audience=PoolAudience.ALL)
    messages = check_number_configuration(databases=["default"])
    assert ids(messages) == ["wagtail_calltracking.W020"]
    assert isinstance(messages[0], Warning) and messages[0].obj == empty
    assert "no active numbers" in messages[0].msg


def test_static_number_inside_a_pool_is_an_error(site, site_settings, pool):
    pooled = pool.numbers.first()
    make_source(name="Bad", landing_parameter="bad", pool=pool)
    Source.objects.filter(name="Bad").update(static_number=pooled, pool=None)
    messages = [m for m in check_number_configuration(databases=["default"]) if m.id == "wagtail_calltracking.E023"]
    assert len(messages) == 1 and isinstance(messages[0], Error)


def test_source_and_pool_misconfigurations(site, site_settings, pool):
    make_source(name="Neither", landing_parameter="n")  # saved without clean()
    make_source(name="Both", landing_parameter="b", static_number=make_number(), pool=pool)
    make_source(name="Dead", landing_parameter="d", static_number=make_number(active=False))
    paused = make_pool(size=1, site=site, name="Paused", active=False)
    make_source(name="Paused pool", channel="email", pool=paused)
    make_source(name="Manual", static_number=make_number())
    found = config_ids()
    for code in ("W025", "W026", "W027", "W028", "W029"):
        assert f"wagtail_calltracking.{code}" in found


def test_overflow_number_problems(site, site_settings, pool):
    other = make_pool(size=1, site=site, name="Other", audience=PoolAudience.ALL)
    NumberPool.objects.filter(pk=pool.pk).update(fallback_number=other.numbers.first())
    assert "wagtail_calltracking.W021" in config_ids()
    shared = make_number()
    make_source(name="Radio", landing_parameter="radio", static_number=shared)
    NumberPool.objects.filter(pk=pool.pk).update(fallback_number=shared)
    assert "wagtail_calltracking.W022" in config_ids()


def test_pool_serving_only_sources_but_unused(site, site_settings, pool):
    assert "wagtail_calltracking.W024" in config_ids()


def test_several_all_visitor_pools_on_one_site(site, site_settings):
    make_pool(size=1, site=site, name="A", audience=PoolAudience.ALL)
    make_pool(size=1, site=site, name="B", audience=PoolAudience.NON_DIRECT)
    assert "wagtail_calltracking.W030" in config_ids()


def test_missing_canonical_number(site, paid_search):
    assert "wagtail_calltracking.W031" in config_ids()
    CallTrackingSiteSettings.objects.create(site=site, canonical_number=CANONICAL)
    assert "wagtail_calltracking.W031" not in config_ids()


def test_checks_skip_other_databases_and_missing_tables(site, monkeypatch):
    NumberPool.objects.create(name="Empty", site=site)
    assert check_number_configuration(databases=["other"]) == []
    from wagtail_calltracking.numbers import checks

    monkeypatch.setattr(checks, "_database_ready", lambda alias: False)
    assert check_number_configuration(databases=None) == []


def test_settings_checks(settings):
    assert check_number_settings() == []
    settings.WAGTAIL_CALLTRACKING = {
        **settings.WAGTAIL_CALLTRACKING,
        "LANDING_PARAMETER": "c t",
        "LEASE_REFRESH_SECONDS": 600,
        "POOL_HEADROOM": -1,
        "LEASE_SYNCHRONOUS_COMMIT": "yes",
    }
    assert ids(check_number_settings()) == [
        "wagtail_calltracking.E020",
        "wagtail_calltracking.E021",
        "wagtail_calltracking.E022",
        "wagtail_calltracking.E024",
    ]


def test_checks_run_through_django(site, site_settings):
    from django.core import checks

    NumberPool.objects.create(name="Empty", site=site)
    messages = checks.run_checks(tags=["wagtail_calltracking"], databases=["default"])
    assert "wagtail_calltracking.W020" in ids(messages)
