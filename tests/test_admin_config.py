"""Configuration screens: sources, numbers, pools (numbers inline), managers, site settings,
with the validation errors a user needs."""

import pytest
from django.urls import reverse

from wagtail_calltracking.models import (
    CallTrackingSiteSettings,
    Manager,
    NumberPool,
    Source,
    TrackingNumber,
)

from .admin_fixtures import make_admin_user
from .factories import make_number, make_pool, make_source

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, site):
    client.force_login(make_admin_user(superuser=True))
    return client


def errors_of(response):
    """Every error message of the bound form (and its numbers formset), flattened."""
    form = response.context["form"]
    messages = [str(e) for errors in form.errors.values() for e in errors]
    formset = getattr(form, "numbers_formset", None)
    if formset is not None:
        messages += [str(e) for row in formset.errors for errors in row.values() for e in errors]
        messages += [str(e) for e in formset.non_form_errors()]
    return messages


# --- numbers ---------------------------------------------------------------------------------


def test_add_number_normalises_to_e164(admin_client):
    response = admin_client.post(
        reverse("wagtail_calltracking_numbers:add"),
        {"number": "(212) 555-0188", "label": "Billboard", "provider": "twilio", "active": "on",
         "forward_to": "312 555 0100"},
    )
    assert response.status_code == 302
    number = TrackingNumber.objects.get()
    assert (number.number, number.forward_to) == ("+12125550188", "+13125550100")


@pytest.mark.parametrize("value", ["12345", "not a number", "+1 555 0000 0000 0000 0000"])
def test_invalid_number_is_refused(admin_client, value):
    response = admin_client.post(
        reverse("wagtail_calltracking_numbers:add"), {"number": value, "active": "on"}
    )
    assert response.status_code == 200
    assert any("is not a valid phone number" in message for message in errors_of(response))
    assert not TrackingNumber.objects.exists()


def test_duplicate_number_is_refused(admin_client):
    make_number(number="+12125550188")
    response = admin_client.post(
        reverse("wagtail_calltracking_numbers:add"), {"number": "212-555-0188", "active": "on"}
    )
    assert response.status_code == 200
    assert any("already a tracking number" in message for message in errors_of(response))


def test_static_number_cannot_join_a_pool(admin_client):
    number = make_number()
    make_source(name="Newspaper", static_number=number)
    pool = make_pool(size=1)
    response = admin_client.post(
        reverse("wagtail_calltracking_numbers:edit", args=[number.pk]),
        {"number": number.number, "active": "on", "pool": pool.pk},
    )
    assert response.status_code == 200
    assert any("static number" in message for message in errors_of(response))
    number.refresh_from_db()
    assert number.pool_id is None


def test_numbers_listing_and_search(admin_client):
    pool = make_pool(size=1, name="Web")
    static = make_number(number="+12125550177", label="Flyer")
    make_source(name="Flyer", static_number=static)
    make_number(number="+12125550166")
    response = admin_client.get(reverse("wagtail_calltracking_numbers:index"))
    html = response.content.decode()
    assert "Pool: Web" in html and "Source: Flyer" in html and "Unused" in html
    found = admin_client.get(reverse("wagtail_calltracking_numbers:index"), {"q": "(212) 555-0177"})
    assert [n.pk for n in found.context["object_list"]] == [static.pk]
    used = admin_client.get(reverse("wagtail_calltracking_numbers:index"), {"usage": "pool"})
    assert [n.pool_id for n in used.context["object_list"]] == [pool.pk]


# --- sources ---------------------------------------------------------------------------------


def source_data(**overrides):
    data = {"name": "Newspaper", "active": "on", "priority": "100", "landing_parameter": "paper"}
    data.update(overrides)
    return data


def test_add_static_source(admin_client):
    number = make_number()
    response = admin_client.post(
        reverse("wagtail_calltracking_sources:add"), source_data(static_number=number.pk)
    )
    assert response.status_code == 302, errors_of(response)
    assert Source.objects.get().static_number == number


def test_source_without_a_number_is_refused(admin_client):
    response = admin_client.post(reverse("wagtail_calltracking_sources:add"), source_data())
    assert response.status_code == 200
    messages = errors_of(response)
    assert any("A source needs a number" in message for message in messages)
    # Said once, in our words (the model's own message is not repeated).
    assert len([m for m in messages if "number" in m.lower()]) == 1
    assert not Source.objects.exists()


def test_source_with_both_a_number_and_a_pool_is_refused(admin_client):
    response = admin_client.post(
        reverse("wagtail_calltracking_sources:add"),
        source_data(static_number=make_number().pk, pool=make_pool(size=1).pk),
    )
    assert response.status_code == 200
    assert any("not both" in message for message in errors_of(response))


def test_static_number_choices_exclude_pool_and_used_numbers(admin_client):
    pool = make_pool(size=1)
    used = make_number()
    make_source(name="Flyer", static_number=used)
    free = make_number()
    response = admin_client.get(reverse("wagtail_calltracking_sources:add"))
    choices = set(response.context["form"].fields["static_number"].queryset)
    assert choices == {free}
    assert not choices & set(pool.numbers.all())


def test_sources_listing(admin_client):
    pool = make_pool(size=1, name="Web")
    make_source(name="Google Ads", pool=pool, utm_source="google", utm_medium="cpc")
    html = admin_client.get(reverse("wagtail_calltracking_sources:index")).content.decode()
    assert "Google Ads" in html and "Pool: Web" in html and "source: google; medium: cpc" in html


# --- pools -----------------------------------------------------------------------------------


def pool_data(rows=(), bulk="", initial=0, **overrides):
    data = {
        "name": "Online visitors",
        "active": "on",
        "audience": "all",
        "hold_minutes": "20",
        "cooldown_minutes": "10",
        "exhaustion_policy": "fallback",
        "bulk_numbers": bulk,
        "numbers-TOTAL_FORMS": str(len(rows)),
        "numbers-INITIAL_FORMS": str(initial),
        "numbers-MIN_NUM_FORMS": "0",
        "numbers-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        for key, value in row.items():
            data[f"numbers-{index}-{key}"] = value
    data.update(overrides)
    return data


def test_add_pool_with_numbers_inline(admin_client):
    response = admin_client.post(
        reverse("wagtail_calltracking_pools:add"),
        pool_data(
            rows=[
                {"number": "(212) 555-0101", "label": "One", "active": "on"},
                {"number": "+12125550102", "label": "Two", "active": "on", "provider": "twilio"},
            ],
            bulk="+1 212 555 0103, Three\n212-555-0104\n\n",
        ),
    )
    assert response.status_code == 302, errors_of(response)
    pool = NumberPool.objects.get()
    assert sorted(pool.numbers.values_list("number", "label")) == [
        ("+12125550101", "One"),
        ("+12125550102", "Two"),
        ("+12125550103", "Three"),
        ("+12125550104", ""),
    ]


def test_pool_without_numbers_is_refused(admin_client):
    response = admin_client.post(reverse("wagtail_calltracking_pools:add"), pool_data())
    assert response.status_code == 200
    assert any("A pool needs at least one number" in m for m in errors_of(response))
    assert not NumberPool.objects.exists()


def test_invalid_number_in_pool_is_refused(admin_client):
    response = admin_client.post(
        reverse("wagtail_calltracking_pools:add"),
        pool_data(rows=[{"number": "555-CALL-NOW", "active": "on"}], bulk="+12125550101\nhello"),
    )
    assert response.status_code == 200
    messages = errors_of(response)
    assert any("“555-CALL-NOW” is not a valid phone number" in m for m in messages)
    assert any("Line 2: “hello” is not a valid phone number" in m for m in messages)
    assert not NumberPool.objects.exists() and not TrackingNumber.objects.exists()


def test_number_already_in_another_pool_is_refused(admin_client):
    other = make_pool(size=1, name="Paid search pool")
    taken = other.numbers.get()
    for data in (
        pool_data(rows=[{"number": taken.number, "active": "on"}]),
        pool_data(rows=[{"number": "+12125550101", "active": "on"}], bulk=taken.number),
    ):
        response = admin_client.post(reverse("wagtail_calltracking_pools:add"), data)
        assert response.status_code == 200
        assert any("already in the pool “Paid search pool”" in m for m in errors_of(response))
    assert NumberPool.objects.count() == 1


def test_static_number_cannot_be_added_to_a_pool(admin_client):
    static = make_number()
    make_source(name="Billboard", static_number=static)
    response = admin_client.post(
        reverse("wagtail_calltracking_pools:add"), pool_data(bulk=static.number)
    )
    assert response.status_code == 200
    assert any("static number of the source “Billboard”" in m for m in errors_of(response))


def test_duplicate_numbers_within_the_form(admin_client):
    response = admin_client.post(
        reverse("wagtail_calltracking_pools:add"),
        pool_data(
            rows=[{"number": "+12125550101", "active": "on"}, {"number": "212 555 0101", "active": "on"}]
        ),
    )
    assert response.status_code == 200
    assert any("twice" in m for m in errors_of(response))


def test_edit_pool_removes_a_number_without_deleting_it(admin_client):
    pool = make_pool(size=2)
    first, second = pool.numbers.order_by("number")
    rows = [
        {"id": first.pk, "pool": pool.pk, "number": first.number, "label": "renamed", "active": "on"},
        {"id": second.pk, "pool": pool.pk, "number": second.number, "active": "on", "DELETE": "on"},
    ]
    response = admin_client.post(
        reverse("wagtail_calltracking_pools:edit", args=[pool.pk]),
        pool_data(rows=rows, initial=2, name=pool.name),
    )
    assert response.status_code == 302, errors_of(response)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.label, first.pool_id) == ("renamed", pool.pk)
    assert second.pool_id is None  # kept (with its lease history), just out of the pool


def test_removing_every_number_is_refused(admin_client):
    pool = make_pool(size=1)
    only = pool.numbers.get()
    rows = [{"id": only.pk, "pool": pool.pk, "number": only.number, "active": "on", "DELETE": "on"}]
    response = admin_client.post(
        reverse("wagtail_calltracking_pools:edit", args=[pool.pk]),
        pool_data(rows=rows, initial=1, name=pool.name),
    )
    assert response.status_code == 200
    assert any("A pool needs at least one number" in m for m in errors_of(response))
    only.refresh_from_db()
    assert only.pool_id == pool.pk


def test_pool_edit_page_renders_the_numbers(admin_client):
    pool = make_pool(size=2, name="Web")
    response = admin_client.get(reverse("wagtail_calltracking_pools:edit", args=[pool.pk]))
    html = response.content.decode()
    for number in pool.numbers.all():
        assert f'value="{number.number}"' in html
    assert "data-ct-formset-add" in html and "pool-numbers.js" in html
    listing = admin_client.get(reverse("wagtail_calltracking_pools:index"))
    assert listing.context["object_list"][0].active_numbers == 2


def test_fallback_number_choices(admin_client):
    pool = make_pool(size=1)
    outside = make_number()
    response = admin_client.get(reverse("wagtail_calltracking_pools:edit", args=[pool.pk]))
    assert set(response.context["form"].fields["fallback_number"].queryset) == {outside}


# --- managers and settings -------------------------------------------------------------------


def test_add_manager_and_invalid_phone(admin_client):
    url = reverse("wagtail_calltracking_managers:add")
    response = admin_client.post(url, {"name": "Alice", "phone": "call me", "active": "on"})
    assert response.status_code == 200
    assert any("is not a valid phone number" in m for m in errors_of(response))
    response = admin_client.post(url, {"name": "Alice", "phone": "312 555 0111", "active": "on"})
    assert response.status_code == 302
    assert Manager.objects.get().phone == "+13125550111"


def test_site_settings_in_the_settings_menu(admin_client, site):
    from django.test import RequestFactory
    from wagtail.admin.menu import settings_menu

    request = RequestFactory().get("/admin/")
    request.user = make_admin_user(superuser=True)
    labels = [str(item.label) for item in settings_menu.menu_items_for_request(request)]
    assert "Call tracking settings" in labels
    url = reverse("wagtailsettings:edit", args=["wagtail_calltracking", "calltrackingsitesettings", site.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    for field in ("canonical_number", "fallback_forward_to", "default_hold_minutes",
                  "display_format", "cache_safe_mode"):
        assert f'name="{field}"' in html, field
    data = {
        "canonical_number": "212 555 0100",
        "fallback_forward_to": "not a phone",
        "display_format": "national",
        "default_hold_minutes": "20",
        "ring_timeout": "25",
        "recording_announcement": "",
        "whisper_template": "Call from {source}.",
        "pass_caller_id": "on",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 200  # the invalid fallback number is reported
    assert "is not a valid phone number" in response.content.decode()
    data["fallback_forward_to"] = "+13125550100"
    response = admin_client.post(url, data)
    assert response.status_code == 302
    settings_row = CallTrackingSiteSettings.for_site(site)
    assert settings_row.canonical_number == "+12125550100"
