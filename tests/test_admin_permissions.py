"""Permissions: three separate grants (view calls, tag calls, configure sources/numbers), each
tested with a non-superuser group. Without a grant the menu item and the dashboard panel are
hidden and the views answer with Wagtail's permission-denied response: a redirect to the
dashboard with an error message (403 for XHR requests)."""

import pytest
from django.contrib.auth.models import Permission
from django.test import RequestFactory
from django.urls import reverse
from wagtail import hooks

from wagtail_calltracking.models import Call, CallTag
from wagtail_calltracking.signals import call_tagged

from .admin_fixtures import CONFIGURE, TAG_CALLS, VIEW_CALLS, journey_call, make_admin_user
from .factories import make_pool, make_source

pytestmark = pytest.mark.django_db

CALL_SCREENS = [
    "wagtail_calltracking_calls:index",
    "wagtail_calltracking_calls:index_results",
    "wagtail_calltracking_report_sources:index",
    "wagtail_calltracking_report_sources:index_results",
    "wagtail_calltracking_report_managers:index",
]
CONFIG_SCREENS = [
    "wagtail_calltracking_sources:index",
    "wagtail_calltracking_sources:add",
    "wagtail_calltracking_numbers:index",
    "wagtail_calltracking_numbers:add",
    "wagtail_calltracking_pools:index",
    "wagtail_calltracking_pools:add",
    "wagtail_calltracking_managers:index",
    "wagtail_calltracking_managers:add",
]


def assert_denied(response):
    """Wagtail's permission-denied response for a normal (non-XHR) request."""
    assert response.status_code == 302, response.status_code
    assert response["Location"] == reverse("wagtailadmin_home")


def menu_for(user):
    """The names of the "Call tracking" submenu items shown to ``user`` (None: no menu)."""
    from wagtail.admin.menu import admin_menu

    reverse("wagtailadmin_home")  # URL conf loaded: viewsets registered
    request = RequestFactory().get("/admin/")
    request.user = user
    for item in admin_menu.menu_items_for_request(request):
        if item.name == "calltracking":
            return [sub.name for sub in item.menu.menu_items_for_request(request)]
    return None


@pytest.fixture
def call(site):
    return journey_call()


def test_superuser_sees_every_screen(client, call):
    user = make_admin_user(superuser=True)
    client.force_login(user)
    names = menu_for(user)
    # In this order (integrations add their own screens before "settings").
    ours = ["calls", "calls-by-source", "manager-efficiency", "pool-health", "sources",
            "numbers", "pools", "managers", "settings"]
    assert [name for name in names if name in ours] == ours
    for name in CALL_SCREENS + CONFIG_SCREENS + ["wagtail_calltracking_report_pools:index"]:
        assert client.get(reverse(name)).status_code == 200, name
    assert client.get(reverse("wagtail_calltracking_calls:inspect", args=[call.pk])).status_code == 200


def test_user_without_grants_sees_nothing(client, call):
    user = make_admin_user([])
    client.force_login(user)
    assert menu_for(user) is None
    for name in CALL_SCREENS + CONFIG_SCREENS + ["wagtail_calltracking_report_pools:index"]:
        assert_denied(client.get(reverse(name)))
    assert_denied(client.get(reverse("wagtail_calltracking_calls:inspect", args=[call.pk])))
    home = client.get(reverse("wagtailadmin_home"))
    assert b"calltracking-dashboard" not in home.content


def test_denied_xhr_gets_403(client, call):
    client.force_login(make_admin_user([]))
    response = client.get(
        reverse("wagtail_calltracking_calls:index_results"), headers={"x-requested-with": "XMLHttpRequest"}
    )
    assert response.status_code == 403


def test_view_calls_grant(client, call):
    user = make_admin_user(VIEW_CALLS)
    client.force_login(user)
    names = menu_for(user)
    assert names == ["calls", "calls-by-source", "manager-efficiency", "pool-health"]
    for name in CALL_SCREENS + ["wagtail_calltracking_report_pools:index"]:
        assert client.get(reverse(name)).status_code == 200, name
    for name in CONFIG_SCREENS:
        assert_denied(client.get(reverse(name)))
    detail = client.get(reverse("wagtail_calltracking_calls:inspect", args=[call.pk]))
    assert detail.status_code == 200
    assert b"Save classification" not in detail.content  # no tagging without tag_call
    home = client.get(reverse("wagtailadmin_home"))
    assert b"calltracking-dashboard" in home.content


def test_view_only_user_cannot_tag(client, call):
    client.force_login(make_admin_user(VIEW_CALLS))
    response = client.post(
        reverse("wagtail_calltracking_calls:inspect", args=[call.pk]),
        {"tag": CallTag.LEAD, "value": "100", "note": "hi"},
    )
    assert_denied(response)
    call.refresh_from_db()
    assert call.tag == ""


def test_tag_calls_grant(client, call, django_capture_on_commit_callbacks):
    user = make_admin_user(TAG_CALLS)
    client.force_login(user)
    received = []

    def receiver(sender, **kwargs):
        received.append((sender, kwargs))

    call_tagged.connect(receiver)
    try:
        url = reverse("wagtail_calltracking_calls:inspect", args=[call.pk])
        assert b"Save classification" in client.get(url).content
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                url,
                {"tag": CallTag.LEAD, "value": "250.50", "note": "Wants a quote",
                 "result": "missed", "from_number": "+15550000000"},
            )
    finally:
        call_tagged.disconnect(receiver)
    assert response.status_code == 302 and response["Location"] == url
    call.refresh_from_db()
    assert (call.tag, str(call.value), call.note) == (CallTag.LEAD, "250.50", "Wants a quote")
    # Nothing else is editable.
    assert call.result == "answered" and call.from_number == "+13125550100"
    assert len(received) == 1
    sender, kwargs = received[0]
    assert sender is Call and kwargs["call"].pk == call.pk and kwargs["user"] == user
    # Tagging does not give configuration rights.
    for name in CONFIG_SCREENS:
        assert_denied(client.get(reverse(name)))


def test_configure_grant(client, call):
    user = make_admin_user(CONFIGURE)
    client.force_login(user)
    names = menu_for(user)
    assert names == ["pool-health", "sources", "numbers", "pools", "managers"]
    for name in CONFIG_SCREENS + ["wagtail_calltracking_report_pools:index"]:
        assert client.get(reverse(name)).status_code == 200, name
    # Personal data stays out of reach.
    for name in CALL_SCREENS:
        assert_denied(client.get(reverse(name)))
    assert_denied(client.get(reverse("wagtail_calltracking_calls:inspect", args=[call.pk])))
    home = client.get(reverse("wagtailadmin_home"))
    assert b"calltracking-dashboard" not in home.content


def test_partial_configuration_grant(client, site):
    """A group allowed to change sources only sees sources (and cannot add pools)."""
    pool = make_pool(size=1)
    make_source(name="Paid", pool=pool)
    user = make_admin_user(["wagtail_calltracking.change_source"])
    client.force_login(user)
    assert menu_for(user) == ["sources"]
    assert client.get(reverse("wagtail_calltracking_sources:index")).status_code == 200
    assert_denied(client.get(reverse("wagtail_calltracking_sources:add")))
    assert_denied(client.get(reverse("wagtail_calltracking_pools:add")))


def test_settings_grant(client, site):
    user = make_admin_user(["wagtail_calltracking.change_calltrackingsitesettings"])
    client.force_login(user)
    assert menu_for(user) == ["settings"]
    url = reverse("wagtailsettings:edit", args=["wagtail_calltracking", "calltrackingsitesettings"])
    response = client.get(url, follow=True)
    assert response.status_code == 200
    assert b"canonical_number" in response.content


def test_permissions_are_registered_for_the_group_editor(client):
    registered = set()
    for hook in hooks.get_hooks("register_permissions"):
        registered.update(
            f"{p.content_type.app_label}.{p.codename}" for p in hook().select_related("content_type")
        )
    ours = {name for name in registered if name.startswith("wagtail_calltracking.")}
    expected = {
        "wagtail_calltracking.view_call",
        "wagtail_calltracking.tag_call",
        "wagtail_calltracking.change_calltrackingsitesettings",
        *CONFIGURE,
    }
    assert expected <= ours
    # Calls are never added, edited or deleted in the admin: those grants are not offered.
    assert not {"wagtail_calltracking.add_call", "wagtail_calltracking.change_call",
                "wagtail_calltracking.delete_call"} & ours
    # And they appear in Wagtail's group editor.
    client.force_login(make_admin_user(superuser=True))
    page = client.get(reverse("wagtailusers_groups:add")).content.decode()
    for codename in ("view_call", "tag_call", "add_source", "change_trackingnumber",
                     "delete_numberpool", "add_manager"):
        permission = Permission.objects.get(codename=codename)
        assert f'value="{permission.pk}"' in page, codename


def test_existence_of_a_call_is_not_revealed(client, call):
    client.force_login(make_admin_user([]))
    assert_denied(client.get(reverse("wagtail_calltracking_calls:inspect", args=[call.pk])))
    assert_denied(client.get(reverse("wagtail_calltracking_calls:inspect", args=[call.pk + 1000])))


def test_site_specific_settings_grant(client, site):
    """Wagtail's per-site settings permission (group editor › site settings) shows the menu's
    Settings entry too (per-site grants exist from Wagtail 7.1)."""
    GroupSitePermission = getattr(pytest.importorskip("wagtail.models"), "GroupSitePermission", None)
    if GroupSitePermission is None:
        pytest.skip("per-site settings permissions need Wagtail 7.1+")

    user = make_admin_user([])
    GroupSitePermission.objects.create(
        group=user.groups.get(),
        site=site,
        permission=Permission.objects.get(codename="change_calltrackingsitesettings"),
    )
    assert menu_for(user) == ["settings"]
