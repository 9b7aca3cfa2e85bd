"""Wagtail admin registration only: the views live in :mod:`wagtail_calltracking.admin`."""

from wagtail import hooks
from wagtail.contrib.settings.registry import register_setting

from .admin import privacy as privacy_admin  # noqa: F401  (adds "Erase personal data" to the menu)
from .admin.dashboard import CallTrackingDashboardPanel
from .admin.permissions import can_view_calls
from .admin.viewsets import CallTrackingViewSetGroup
from .integrations import admin as integrations_admin  # noqa: F401  (adds its screens to the menu)
from .models import CallTrackingSiteSettings

# Settings › Call tracking settings (canonical number, fallback destination, hold time,
# display format, cache-safe mode, forwarding options).
register_setting(CallTrackingSiteSettings, icon="ct-phone")


@hooks.register("register_admin_viewset")
def register_calltracking_viewsets():
    return CallTrackingViewSetGroup()


@hooks.register("construct_homepage_panels")
def add_calltracking_dashboard_panel(request, panels):
    if can_view_calls(request.user):
        panels.append(CallTrackingDashboardPanel(request))


@hooks.register("register_icons")
def register_calltracking_icons(icons):
    return [
        *icons,
        "wagtail_calltracking/admin/icons/ct-phone.svg",
        "wagtail_calltracking/admin/icons/ct-chart.svg",
    ]
