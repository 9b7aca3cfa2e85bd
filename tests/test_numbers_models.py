"""Configuration models: validation with clear errors, E.164 normalisation, lease-state safety."""

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from wagtail_calltracking.models import NumberPool, Source, TrackingNumber
from wagtail_calltracking.models.numbers import normalize_domain, normalize_path

from .factories import make_number, make_pool, make_session, make_source
from .numbers_fixtures import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.django_db


def test_number_is_normalised_to_e164_on_clean_and_save():
    number = TrackingNumber(number="(212) 555-0123", provider="demo")
    number.full_clean()
    assert number.number == "+12125550123"
    saved = TrackingNumber.objects.create(number="+1 312 555 0142", provider="demo")
    saved.refresh_from_db()
    assert saved.number == "+13125550142"
    assert saved.national == "(312) 555-0142"
    assert saved.international == "+1 312-555-0142"
    assert saved.display("international") == "+1 312-555-0142"


@pytest.mark.parametrize("value", ["12", "not a number", "+1 000 000 0000", "+99912345", "5" * 40])
def test_invalid_number_has_a_clear_field_error(value):
    number = TrackingNumber(number=value, provider="demo")
    with pytest.raises(ValidationError) as error:
        number.full_clean()
    assert "number" in error.value.message_dict
    assert "not a valid phone number" in " ".join(error.value.message_dict["number"])


def test_invalid_forwarding_destination_is_rejected():
    number = TrackingNumber(number="+12125550123", forward_to="call me maybe")
    with pytest.raises(ValidationError) as error:
        number.full_clean()
    assert "forward_to" in error.value.message_dict


def test_source_needs_exactly_one_of_static_number_and_pool(site, pool):
    number = make_number()
    for kwargs in ({}, {"static_number": number, "pool": pool}):
        source = Source(name="Flyer", landing_parameter="flyer", **kwargs)
        with pytest.raises(ValidationError, match="exactly one"):
            source.full_clean()
    Source(name="Flyer", landing_parameter="flyer", static_number=number).full_clean()


def test_static_number_cannot_be_in_a_pool(pool):
    pooled = pool.numbers.first()
    source = Source(name="Billboard", landing_parameter="billboard", static_number=pooled)
    with pytest.raises(ValidationError) as error:
        source.full_clean()
    assert "static_number" in error.value.message_dict


def test_number_used_as_static_cannot_join_a_pool(pool):
    number = make_number()
    make_source(name="Radio", landing_parameter="radio", static_number=number)
    number.pool = pool
    with pytest.raises(ValidationError) as error:
        number.full_clean()
    assert "pool" in error.value.message_dict


def test_inactive_static_number_is_rejected():
    number = make_number(active=False)
    with pytest.raises(ValidationError) as error:
        Source(name="Radio", landing_parameter="radio", static_number=number).full_clean()
    assert "inactive" in str(error.value)


@pytest.mark.parametrize("value", ["news paper", "a&b", "x=y", "?ct", "-lead", "é"])
def test_landing_parameter_must_be_url_safe(value):
    source = Source(name="Flyer", landing_parameter=value, static_number=make_number())
    with pytest.raises(ValidationError) as error:
        source.full_clean()
    assert "landing_parameter" in error.value.message_dict


def test_landing_parameter_is_unique_among_active_sources():
    make_source(name="Newspaper", landing_parameter="newspaper", static_number=make_number())
    clash = Source(name="Paper 2", landing_parameter="NEWSPAPER", static_number=make_number())
    with pytest.raises(ValidationError, match="already uses"):
        clash.full_clean()
    clash.active = False
    clash.full_clean()  # an inactive duplicate is harmless


def test_landing_path_and_referrer_domain_are_normalised():
    source = Source(
        name="Flyer",
        landing_path="paper/?utm=x",
        referrer_domain="https://www.Yelp.com/biz/acme",
        static_number=make_number(),
    )
    source.full_clean()
    assert source.landing_path == "/paper"
    assert source.referrer_domain == "yelp.com"
    with pytest.raises(ValidationError) as error:
        Source(name="All", landing_path="/", static_number=make_number()).full_clean()
    assert "landing_path" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        Source(name="Bad", referrer_domain="not a domain!", static_number=make_number()).full_clean()
    assert "referrer_domain" in error.value.message_dict


def test_domain_and_path_helpers():
    assert normalize_domain("WWW.Example.COM:8080/x") == "example.com"
    assert normalize_domain("") == ""
    assert normalize_path("") == ""
    assert normalize_path("/offer/") == "/offer"
    assert normalize_path("offer#x") == "/offer"


def test_pool_overflow_number_must_be_outside_pools(pool):
    other = make_pool(size=1, name="Other")
    pool.fallback_number = other.numbers.first()
    with pytest.raises(ValidationError) as error:
        pool.full_clean()
    assert "fallback_number" in error.value.message_dict
    pool.fallback_number = pool.numbers.first()
    with pytest.raises(ValidationError):
        pool.full_clean()
    pool.fallback_number = make_number()
    pool.full_clean()


def test_pool_hold_time_bounds():
    with pytest.raises(ValidationError) as error:
        NumberPool(name="Tiny", hold_minutes=1).full_clean()
    assert "hold_minutes" in error.value.message_dict
    NumberPool(name="OK", hold_minutes=20).full_clean()


def test_number_inherits_its_pools_site(site):
    pool = make_pool(size=1, site=site)
    assert pool.numbers.get().site_id == site.pk


def test_number_in_a_pool_of_another_site_is_rejected(site):
    from wagtail.models import Site

    other_site = Site.objects.create(hostname="other.example", root_page=site.root_page)
    pool = make_pool(size=0, site=other_site)
    number = TrackingNumber(number="+12125550177", site=site, pool=pool)
    with pytest.raises(ValidationError) as error:
        number.full_clean()
    assert "pool" in error.value.message_dict


def test_saving_a_stale_number_never_overwrites_its_lease(pool):
    """An admin form loaded before a lease was taken must not wipe it on save."""
    from wagtail_calltracking.models import Lease

    number = pool.numbers.first()
    stale = TrackingNumber.objects.get(pk=number.pk)
    lease = Lease.objects.create(number=number, pool=pool, session=make_session())
    TrackingNumber.objects.filter(pk=number.pk).update(current_lease=lease)
    stale.label = "Edited in the admin"
    stale.save()
    number.refresh_from_db()
    assert number.label == "Edited in the admin"
    assert number.current_lease_id == lease.pk


class TestNumberValidationFuzz(HypothesisTestCase):
    @settings(max_examples=150, deadline=None)
    @given(st.text(max_size=40))
    def test_any_text_is_either_a_valid_number_or_a_validation_error(self, value):
        number = TrackingNumber(number=value, provider="demo")
        try:
            number.full_clean()
        except ValidationError as error:
            assert error.message_dict
        else:
            assert number.number.startswith("+")
