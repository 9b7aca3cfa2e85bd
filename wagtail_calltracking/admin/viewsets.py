"""The "Call tracking" admin menu: one viewset per screen, grouped in
:class:`CallTrackingViewSetGroup` (registered in ``wagtail_hooks.py``).

Adding a screen to the menu is one edit: append a viewset instance to
:data:`calltracking_viewsets` (in the module that defines it, before the hooks run, e.g.
``calltracking_viewsets.append(my_viewset)`` in your ``admin`` module imported from
``wagtail_hooks.py``, or directly in the list below). The group shows the items in list
order; each item's own menu item decides whether the current user sees it. Integrations
(GA4 / Google Ads settings, CRM endpoints, delivery log) are added this way.

Model viewsets here never register their model in Wagtail's reference index: tracking numbers
are saved on the leasing path and must not pay for reference indexing.
"""

from __future__ import annotations

import re

from django.contrib.auth.models import Permission
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from wagtail.admin.menu import MenuItem
from wagtail.admin.panels import FieldPanel, MultiFieldPanel, ObjectList
from wagtail.admin.ui.tables import BooleanColumn, Column, TitleColumn
from wagtail.admin.views import generic
from wagtail.admin.viewsets.base import ViewSet, ViewSetGroup
from wagtail.admin.viewsets.model import ModelViewSet

from ..models import (
    Call,
    CallTrackingSiteSettings,
    Manager,
    NumberPool,
    Source,
    TrackingNumber,
)
from ..numbers.phone import to_e164
from . import permissions
from .columns import NumberColumn
from .filters import ManagerFilterSet, SourceFilterSet, TrackingNumberFilterSet
from .forms import NumberPoolForm, SourceForm, TrackingNumberForm
from .panels import PoolNumbersPanel
from .readonly import ReadOnlyModelViewSet
from .views.calls import CallDetailView, CallIndexView
from .views.reports import AttributionReportView, ManagerReportView, PoolHealthReportView

PHONE_ICON = "ct-phone"
CHART_ICON = "ct-chart"


def _calls_last_30_days(field):
    """Subquery: calls in the last 30 days whose ``field`` is the row."""
    since = timezone.now() - timezone.timedelta(days=30)
    return Coalesce(
        Subquery(
            Call.objects.filter(**{field: OuterRef("pk")}, started_at__gte=since)
            .order_by()
            .values(field)
            .annotate(n=Count("id"))
            .values("n")[:1]
        ),
        0,
    )


def _number_aware_search(queryset, query, number_field, text_fields=()):
    """Match a phone number however it is typed, or text fields."""
    condition = Q()
    for field in text_fields:
        condition |= Q(**{f"{field}__icontains": query})
    e164 = to_e164(query)
    if e164:
        condition |= Q(**{number_field: e164})
    digits = re.sub(r"\D", "", query)
    if len(digits) >= 3:
        condition |= Q(**{f"{number_field}__contains": digits})
    return queryset.filter(condition) if condition else queryset.none()


class ConfigurationViewSetMixin:
    """Shared by the configuration screens (sources, numbers, pools, managers)."""

    add_to_reference_index = False
    copy_view_enabled = False
    search_backend_name = None

    def get_permissions_to_register(self):
        return Permission.objects.filter(
            content_type__app_label=self.model._meta.app_label,
            codename__in=[
                f"{action}_{self.model._meta.model_name}"
                for action in permissions.CONFIGURATION_ACTIONS
            ],
        )


# --- calls -----------------------------------------------------------------------------------


class CallViewSet(ReadOnlyModelViewSet):
    """The calls listing and each call's detail page (no add, edit or delete: calls come from
    the telephony provider; editors only classify them)."""

    model = Call
    name = "wagtail_calltracking_calls"
    url_prefix = "calltracking/calls"
    icon = PHONE_ICON
    menu_label = _("Calls")
    index_view_class = CallIndexView
    inspect_view_class = CallDetailView
    export_filename = "calls"
    permission_codenames = ("view_call", "tag_call")

    def register_admin_url_finder(self):
        # Links from elsewhere in the admin (e.g. the log) lead to the call's detail page.
        from wagtail.admin.admin_url_finder import ModelAdminURLFinder, register_admin_url_finder

        viewset = self

        class CallAdminURLFinder(ModelAdminURLFinder):
            def construct_edit_url(self, instance):
                return reverse(viewset.get_url_name("inspect"), args=[instance.pk])

            def get_edit_url(self, instance):
                if permissions.can_view_calls(self.user):
                    return self.construct_edit_url(instance)

        register_admin_url_finder(Call, CallAdminURLFinder)


# --- reports ---------------------------------------------------------------------------------


class ReportViewSet(ViewSet):
    """One report in the menu: an index view and its results fragment."""

    view_class = None
    icon = CHART_ICON

    def user_may_view(self, user) -> bool:
        return permissions.can_view_calls(user)

    @cached_property
    def index_view(self):
        return self.construct_view(
            self.view_class,
            index_url_name=self.get_url_name("index"),
            index_results_url_name=self.get_url_name("index_results"),
        )

    @cached_property
    def index_results_view(self):
        return self.construct_view(
            self.view_class,
            index_url_name=self.get_url_name("index"),
            index_results_url_name=self.get_url_name("index_results"),
            results_only=True,
        )

    def get_urlpatterns(self):
        return [
            path("", self.index_view, name="index"),
            path("results/", self.index_results_view, name="index_results"),
        ]

    @cached_property
    def menu_item_class(self):
        viewset = self

        def is_shown(_self, request):
            return viewset.user_may_view(request.user)

        return type(f"{type(self).__name__}MenuItem", (MenuItem,), {"is_shown": is_shown})


class AttributionReportViewSet(ReportViewSet):
    name = "wagtail_calltracking_report_sources"
    url_prefix = "calltracking/reports/sources"
    menu_label = _("Calls by source")
    view_class = AttributionReportView


class ManagerReportViewSet(ReportViewSet):
    name = "wagtail_calltracking_report_managers"
    url_prefix = "calltracking/reports/managers"
    menu_label = _("Manager efficiency")
    view_class = ManagerReportView
    icon = "group"


class PoolHealthReportViewSet(ReportViewSet):
    name = "wagtail_calltracking_report_pools"
    url_prefix = "calltracking/reports/pools"
    menu_label = _("Pool health")
    view_class = PoolHealthReportView
    icon = "tasks"

    def user_may_view(self, user) -> bool:
        return permissions.can_view_pool_health(user)


# --- configuration ---------------------------------------------------------------------------


class SourceIndexView(generic.IndexView):
    def get_base_queryset(self):
        return (
            super()
            .get_base_queryset()
            .select_related("static_number", "pool", "site")
            .annotate(recent_calls=_calls_last_30_days("source"))
        )


def _source_number(source):
    if source.static_number_id:
        return source.static_number.national
    if source.pool_id:
        return _("Pool: %(pool)s") % {"pool": source.pool.name}
    return ""


def _source_rules(source):
    parts = []
    labels = {
        "landing_parameter": _("landing"),
        "landing_path": _("path"),
        "utm_source": _("source"),
        "utm_medium": _("medium"),
        "utm_campaign": _("campaign"),
        "channel": _("channel"),
        "referrer_domain": _("referrer"),
    }
    for field in Source.RULE_FIELDS:
        value = getattr(source, field)
        if value:
            parts.append(f"{labels[field]}: {value}")
    return "; ".join(parts) or _("(matches everything)")


class SourceViewSet(ConfigurationViewSetMixin, ModelViewSet):
    model = Source
    name = "wagtail_calltracking_sources"
    url_prefix = "calltracking/sources"
    icon = "crosshairs"
    menu_label = _("Sources")
    export_filename = "sources"
    index_view_class = SourceIndexView
    filterset_class = SourceFilterSet
    search_fields = ["name", "utm_source", "utm_campaign", "landing_parameter"]
    list_export = ["name", "active", "priority", "static_number", "pool", "forward_to"]
    edit_handler = ObjectList(
        [
            MultiFieldPanel(
                [
                    FieldPanel("name"),
                    FieldPanel("active"),
                    FieldPanel("priority"),
                    FieldPanel("site"),
                ],
                heading=_("Source"),
            ),
            MultiFieldPanel(
                [
                    FieldPanel("landing_parameter"),
                    FieldPanel("landing_path"),
                    FieldPanel("utm_source"),
                    FieldPanel("utm_medium"),
                    FieldPanel("utm_campaign"),
                    FieldPanel("channel"),
                    FieldPanel("referrer_domain"),
                ],
                heading=_("Matching rules"),
                help_text=_(
                    "Every filled rule must match the visitor's landing; empty rules match "
                    "anything."
                ),
            ),
            MultiFieldPanel(
                [FieldPanel("static_number"), FieldPanel("pool")],
                heading=_("Number shown"),
                help_text=_("A static number (offline sources) or a pool (one number per visit)."),
            ),
            MultiFieldPanel(
                [
                    FieldPanel("forward_to"),
                    FieldPanel("report_channel"),
                    FieldPanel("value"),
                    FieldPanel("currency"),
                ],
                heading=_("Calls"),
            ),
        ],
        base_form_class=SourceForm,
    )

    @cached_property
    def list_display(self):
        return [
            "name",
            Column("number", label=_("Number"), accessor=_source_number),
            Column("rules", label=_("Rules"), accessor=_source_rules),
            NumberColumn("priority", label=_("Priority"), sort_key="priority"),
            BooleanColumn("active", label=_("Active"), sort_key="active"),
            NumberColumn("recent_calls", label=_("Calls (30 days)"), sort_key="recent_calls"),
        ]


class TrackingNumberIndexView(generic.IndexView):
    def get_base_queryset(self):
        return (
            super()
            .get_base_queryset()
            .select_related("pool", "static_source", "site")
            .annotate(recent_calls=_calls_last_30_days("tracking_number"))
        )

    def search_queryset(self, queryset):
        if not self.is_searching:
            return queryset
        return _number_aware_search(queryset, self.search_query, "number", ["label"])


def _number_usage(number):
    if number.pool_id:
        return _("Pool: %(pool)s") % {"pool": number.pool.name}
    static_source = getattr(number, "static_source", None)
    if static_source is not None:
        return _("Source: %(source)s") % {"source": static_source.name}
    return _("Unused")


class TrackingNumberViewSet(ConfigurationViewSetMixin, ModelViewSet):
    model = TrackingNumber
    name = "wagtail_calltracking_numbers"
    url_prefix = "calltracking/numbers"
    icon = "list-ol"
    menu_label = _("Numbers")
    export_filename = "tracking-numbers"
    index_view_class = TrackingNumberIndexView
    filterset_class = TrackingNumberFilterSet
    search_fields = ["number", "label"]
    list_export = ["number", "label", "provider", "pool", "forward_to", "active"]
    list_per_page = 50
    edit_handler = ObjectList(
        [
            MultiFieldPanel(
                [
                    FieldPanel("number"),
                    FieldPanel("label"),
                    FieldPanel("provider"),
                    FieldPanel("active"),
                ],
                heading=_("Number"),
            ),
            MultiFieldPanel(
                [FieldPanel("site"), FieldPanel("pool"), FieldPanel("forward_to")],
                heading=_("Use"),
            ),
        ],
        base_form_class=TrackingNumberForm,
    )

    @cached_property
    def list_display(self):
        return [
            TitleColumn("number", label=_("Number"), accessor="national", sort_key="number"),
            Column("label", label=_("Label"), sort_key="label"),
            Column("usage", label=_("Used as"), accessor=_number_usage),
            Column("provider", label=_("Provider"), sort_key="provider"),
            BooleanColumn("active", label=_("Active"), sort_key="active"),
            NumberColumn("recent_calls", label=_("Calls (30 days)"), sort_key="recent_calls"),
        ]


class NumberPoolIndexView(generic.IndexView):
    def get_base_queryset(self):
        return (
            super()
            .get_base_queryset()
            .select_related("site", "fallback_number")
            .annotate(
                active_numbers=Count("numbers", filter=Q(numbers__active=True), distinct=True),
            )
        )


class NumberPoolViewSet(ConfigurationViewSetMixin, ModelViewSet):
    model = NumberPool
    name = "wagtail_calltracking_pools"
    url_prefix = "calltracking/pools"
    icon = "grid"
    menu_label = _("Pools")
    export_filename = "number-pools"
    index_view_class = NumberPoolIndexView
    search_fields = ["name"]
    list_filter = ["active", "audience"]
    list_export = ["name", "active", "audience", "hold_minutes", "exhaustion_policy"]
    edit_handler = ObjectList(
        [
            MultiFieldPanel(
                [
                    FieldPanel("name"),
                    FieldPanel("active"),
                    FieldPanel("site"),
                    FieldPanel("audience"),
                ],
                heading=_("Pool"),
            ),
            MultiFieldPanel(
                [
                    FieldPanel("hold_minutes"),
                    FieldPanel("cooldown_minutes"),
                    FieldPanel("exhaustion_policy"),
                    FieldPanel("fallback_number"),
                    FieldPanel("forward_to"),
                ],
                heading=_("Leasing"),
            ),
            MultiFieldPanel(
                [PoolNumbersPanel(), FieldPanel("bulk_numbers")],
                heading=_("Numbers"),
            ),
        ],
        base_form_class=NumberPoolForm,
    )

    @cached_property
    def list_display(self):
        return [
            "name",
            NumberColumn("active_numbers", label=_("Active numbers"), sort_key="active_numbers"),
            Column("audience", label=_("Serves"), accessor="get_audience_display"),
            NumberColumn("hold_minutes", label=_("Hold (min)"), sort_key="hold_minutes"),
            Column(
                "exhaustion_policy",
                label=_("When exhausted"),
                accessor="get_exhaustion_policy_display",
            ),
            BooleanColumn("active", label=_("Active"), sort_key="active"),
        ]


class ManagerIndexView(generic.IndexView):
    def get_base_queryset(self):
        return (
            super()
            .get_base_queryset()
            .select_related("user", "site")
            .annotate(recent_calls=_calls_last_30_days("manager"))
        )


class ManagerViewSet(ConfigurationViewSetMixin, ModelViewSet):
    model = Manager
    name = "wagtail_calltracking_managers"
    url_prefix = "calltracking/managers"
    icon = "user"
    menu_label = _("Managers")
    export_filename = "managers"
    index_view_class = ManagerIndexView
    filterset_class = ManagerFilterSet
    search_fields = ["name", "phone", "extension", "email"]
    list_export = ["name", "phone", "extension", "email", "active"]
    form_fields = ["name", "phone", "extension", "email", "user", "site", "active"]

    @cached_property
    def list_display(self):
        return [
            "name",
            Column("phone", label=_("Phone")),
            Column("extension", label=_("Extension or agent id")),
            BooleanColumn("active", label=_("Active"), sort_key="active"),
            NumberColumn("recent_calls", label=_("Calls (30 days)"), sort_key="recent_calls"),
        ]


# --- settings link ---------------------------------------------------------------------------


class SiteSettingsLink(ViewSet):
    """A menu entry leading to Settings › Call tracking settings (registered with
    ``register_setting`` in ``wagtail_hooks.py``): Wagtail's own setting menu item, so that
    it is shown exactly to those who may change the settings (site-specific grants too)."""

    name = "wagtail_calltracking_settings_link"
    icon = "cog"
    menu_label = _("Settings")

    def get_urlpatterns(self):
        return []

    def get_menu_item(self, order=None):
        from wagtail.contrib.settings.registry import SettingMenuItem

        item = SettingMenuItem(
            CallTrackingSiteSettings,
            icon=self.icon,
            name="settings",
            order=next(o for o in (self.menu_order, order, 8999) if o is not None),
        )
        item.label = self.menu_label
        return item


#: The items of the "Call tracking" menu, in order. Append viewsets here to extend the menu.
calltracking_viewsets: list[ViewSet] = [
    CallViewSet(),
    AttributionReportViewSet(),
    ManagerReportViewSet(),
    PoolHealthReportViewSet(),
    SourceViewSet(),
    TrackingNumberViewSet(),
    NumberPoolViewSet(),
    ManagerViewSet(),
    SiteSettingsLink(),
]


class CallTrackingViewSetGroup(ViewSetGroup):
    menu_label = _("Call tracking")
    menu_icon = PHONE_ICON
    menu_name = "calltracking"
    menu_order = 250

    def __init__(self):
        self.items = tuple(calltracking_viewsets)
        super().__init__()
