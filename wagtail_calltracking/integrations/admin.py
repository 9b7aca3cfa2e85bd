"""Admin screens of the integrations, added to the "Call tracking" menu:

- **Deliveries**: the log of every GA4 event, Google Ads feed row and CRM webhook, with
  filters, the payload and last response of each, and re-sending (one, or all failed ones);
- **CRM webhooks**: endpoints, the events they receive, their signing secret, a test ping;
- **GA4 properties**: measurement id, API secret, event name, which calls count, and a
  "validate" action that asks GA4's validation server about the payload;
- **Google Ads feeds**: conversion name, time zone, values, per-source rules, the feed URL
  to paste into Google Ads, a CSV download and token regeneration.

Permissions are Django model permissions (Wagtail's group editor): ``view_delivery`` shows
the log, ``resend_delivery`` re-sends; add / change / delete on each configuration model.
"""

from __future__ import annotations

import json

import django_filters
from django.contrib.auth.models import Permission
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import TemplateView, View
from wagtail.admin import messages
from wagtail.admin.filters import DateRangePickerWidget, WagtailFilterSet
from wagtail.admin.panels import FieldPanel, InlinePanel, MultiFieldPanel, ObjectList, Panel
from wagtail.admin.ui.tables import (
    BooleanColumn,
    Column,
    DateColumn,
    StatusTagColumn,
    TitleColumn,
)
from wagtail.admin.views import generic
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin
from wagtail.admin.views.generic.permissions import PermissionCheckedMixin
from wagtail.admin.viewsets.model import ModelViewSet
from wagtail.admin.widgets.button import HeaderButton
from wagtail.permission_policies import ModelPermissionPolicy

from ..admin.compat import MenuItem, NumberColumn
from ..admin.readonly import ReadOnlyModelViewSet
from ..conf import ct_settings
from ..models import (
    CRMEndpoint,
    Delivery,
    DeliveryEvent,
    DeliveryKind,
    DeliveryStatus,
    GA4Property,
    GoogleAdsFeed,
)
from . import crm, delivery, ga4
from .google_ads import feed_rows
from .views import csv_response

TEMPLATES = "wagtail_calltracking/integrations/"
CALL_DETAIL_URL_NAME = "wagtail_calltracking_calls:inspect"

STATUS_PRIMARY = {DeliveryStatus.DELIVERED, DeliveryStatus.AWAITING_FETCH}


def call_detail_url(call_id):
    try:
        return reverse(CALL_DETAIL_URL_NAME, args=[call_id])
    except NoReverseMatch:
        return ""


def public_url(request, url_path):
    base = ct_settings.PUBLIC_BASE_URL
    if base:
        return str(base).rstrip("/") + url_path
    return request.build_absolute_uri(url_path)


class ConfigurationMixin:
    """Shared by the configuration screens of this module."""

    add_to_reference_index = False
    copy_view_enabled = False
    search_backend_name = None

    def get_permissions_to_register(self):
        opts = self.model._meta
        return Permission.objects.filter(
            content_type__app_label=opts.app_label,
            codename__in=[f"{action}_{opts.model_name}" for action in ("add", "change", "delete")],
        )


def failed_deliveries(kind):
    """Subquery: failed deliveries of each target in the last 7 days."""
    since = timezone.now() - timezone.timedelta(days=7)
    return Coalesce(
        Subquery(
            Delivery.objects.filter(
                kind=kind, target_id=OuterRef("pk"), status=DeliveryStatus.FAILED, created_at__gte=since
            )
            .order_by()
            .values("target_id")
            .annotate(n=Count("pk"))
            .values("n")[:1],
            output_field=IntegerField(),
        ),
        Value(0),
    )


def deliveries_url(**filters):
    query = "&".join(f"{key}={value}" for key, value in filters.items())
    return reverse(DeliveryViewSet.name + ":index") + (f"?{query}" if query else "")


class ConfigurationActionView(PermissionCheckedMixin, WagtailAdminTemplateMixin, TemplateView):
    """A page about one configuration object (validate, ping, regenerate), permission-checked
    against the object's model; POST does the action."""

    model = None
    permission_policy = None
    any_permission_required = ["change"]
    index_url_name = None
    edit_url_name = None
    header_icon = "cog"

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.object = get_object_or_404(self.model, pk=kwargs["pk"])

    def get_breadcrumbs_items(self):
        return self.breadcrumbs_items + [
            {"url": reverse(self.index_url_name), "label": self.model._meta.verbose_name_plural},
            {"url": reverse(self.edit_url_name, args=[self.object.pk]), "label": str(self.object)},
            {"url": "", "label": self.get_page_title()},
        ]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["object"] = self.object
        context["edit_url"] = reverse(self.edit_url_name, args=[self.object.pk])
        return context


# --- the delivery log ------------------------------------------------------------------------


class DeliveryFilterSet(WagtailFilterSet):
    status = django_filters.MultipleChoiceFilter(label=gettext_lazy("Status"), choices=DeliveryStatus.choices)
    kind = django_filters.ChoiceFilter(label=gettext_lazy("Integration"), choices=DeliveryKind.choices)
    event = django_filters.ChoiceFilter(label=gettext_lazy("Event"), choices=DeliveryEvent.choices)
    created_at = django_filters.DateFromToRangeFilter(label=gettext_lazy("Created"), widget=DateRangePickerWidget)
    call = django_filters.NumberFilter(field_name="call_id", label=gettext_lazy("Call id"))
    target_id = django_filters.NumberFilter(label=gettext_lazy("Target id"))

    class Meta:
        model = Delivery
        fields = ["status", "kind", "event", "created_at", "call", "target_id"]


class CallColumn(Column):
    def get_value(self, instance):
        return instance.call_id

    def get_cell_context_data(self, instance, parent_context):
        context = super().get_cell_context_data(instance, parent_context)
        url = call_detail_url(instance.call_id)
        label = _("Call %(id)s") % {"id": instance.call_id}
        context["value"] = format_html('<a href="{}">{}</a>', url, label) if url else label
        return context


class CreatedTitleColumn(TitleColumn):
    def get_value(self, instance):
        return date_format(timezone.localtime(instance.created_at), "SHORT_DATETIME_FORMAT")


class OutcomeColumn(Column):
    """What happened last: the error, the reason it was not sent, or the next attempt."""

    def get_value(self, instance):
        if instance.status == DeliveryStatus.SKIPPED:
            return instance.skip_reason
        if instance.status == DeliveryStatus.RETRYING and instance.next_attempt_at:
            when = date_format(timezone.localtime(instance.next_attempt_at), "SHORT_DATETIME_FORMAT")
            return _("%(error)s — next attempt %(when)s") % {"error": instance.last_error, "when": when}
        if instance.status == DeliveryStatus.FAILED:
            return instance.last_error
        if instance.last_status_code:
            return f"HTTP {instance.last_status_code}"
        return ""


class DeliveryIndexView(generic.IndexView):
    any_permission_required = ["view"]
    filterset_class = DeliveryFilterSet
    default_ordering = "-created_at"
    paginate_by = 50
    page_title = gettext_lazy("Deliveries")
    search_fields = ["target_name", "last_error", "skip_reason"]
    search_backend_name = None
    export_filename = "deliveries"
    list_export = [
        "id",
        "created_at",
        "get_kind_display",
        "target_name",
        "get_event_display",
        "call_id",
        "get_status_display",
        "attempts",
        "last_attempt_at",
        "last_status_code",
        "last_error",
        "skip_reason",
        "delivered_at",
    ]

    def search_queryset(self, queryset):
        if not self.is_searching:
            return queryset
        query = self.search_query
        condition = Q()
        for field in self.search_fields:
            condition |= Q(**{f"{field}__icontains": query})
        return queryset.filter(condition)

    def get_base_queryset(self):
        return super().get_base_queryset().defer("payload", "last_response")

    @cached_property
    def list_display(self):
        return [
            "created_at",
            Column("kind", label=_("Integration"), accessor="get_kind_display", sort_key="kind"),
            Column("target_name", label=_("Target"), sort_key="target_name"),
            Column("event", label=_("Event"), accessor="get_event_display"),
            CallColumn("call", label=_("Call")),
            StatusTagColumn(
                "status",
                label=_("Status"),
                accessor="get_status_display",
                primary=lambda d: d.status in STATUS_PRIMARY,
                sort_key="status",
            ),
            NumberColumn("attempts", label=_("Attempts"), sort_key="attempts"),
            OutcomeColumn("outcome", label=_("Last outcome")),
        ]

    def _get_title_column(self, field_name, column_class=None, **kwargs):
        # The first column links to the delivery and carries the row's action buttons.
        return super()._get_title_column(field_name, CreatedTitleColumn, **kwargs)

    def can_resend(self):
        return self.permission_policy.user_has_permission(self.request.user, "resend")

    def get_list_more_buttons(self, instance):
        buttons = list(super().get_list_more_buttons(instance))
        if instance.is_resendable and self.can_resend():
            buttons.append(
                MenuItem(
                    _("Re-send"),
                    url=reverse(DeliveryViewSet.name + ":resend", args=[instance.pk]),
                    icon_name="resubmit",
                    priority=5,
                )
            )
        return buttons

    @cached_property
    def header_buttons(self):
        buttons = list(super().header_buttons)
        if self.can_resend():
            failed = Delivery.objects.filter(status=DeliveryStatus.FAILED).count()
            if failed:
                buttons.append(
                    HeaderButton(
                        _("Re-send failed (%(count)s)") % {"count": failed},
                        url=reverse(DeliveryViewSet.name + ":resend_failed"),
                        icon_name="resubmit",
                    )
                )
        return buttons


class DeliveryInspectView(generic.InspectView):
    any_permission_required = ["view"]
    template_name = TEMPLATES + "delivery_inspect.html"

    def get_object(self, queryset=None):
        return get_object_or_404(Delivery.objects.select_related("call"), pk=self.pk)

    def get_page_subtitle(self):
        return str(self.object)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        obj = self.object
        context["delivery"] = obj
        context["payload_json"] = json.dumps(obj.payload, indent=2, ensure_ascii=False, sort_keys=True)
        context["call_url"] = call_detail_url(obj.call_id)
        context["can_resend"] = obj.is_resendable and self.permission_policy.user_has_permission(
            self.request.user, "resend"
        )
        context["resend_url"] = reverse(DeliveryViewSet.name + ":resend", args=[obj.pk])
        context["target_url"] = target_edit_url(obj)
        return context


def target_edit_url(obj) -> str:
    viewset = {
        DeliveryKind.GA4: GA4PropertyViewSet,
        DeliveryKind.GOOGLE_ADS: GoogleAdsFeedViewSet,
        DeliveryKind.CRM: CRMEndpointViewSet,
    }.get(obj.kind)
    model = {
        DeliveryKind.GA4: GA4Property,
        DeliveryKind.GOOGLE_ADS: GoogleAdsFeed,
        DeliveryKind.CRM: CRMEndpoint,
    }.get(obj.kind)
    if viewset is None or not model.objects.filter(pk=obj.target_id).exists():
        return ""
    return reverse(viewset.name + ":edit", args=[obj.target_id])


class ResendView(PermissionCheckedMixin, WagtailAdminTemplateMixin, TemplateView):
    """Re-send one delivery (``pk``) or every failed one: a confirmation page, then POST."""

    permission_policy = ModelPermissionPolicy(Delivery)
    permission_required = "resend"
    template_name = TEMPLATES + "resend_confirm.html"
    page_title = gettext_lazy("Re-send")
    header_icon = "resubmit"

    def get_queryset(self):
        if "pk" in self.kwargs:
            return Delivery.objects.filter(pk=self.kwargs["pk"])
        return Delivery.objects.filter(status=DeliveryStatus.FAILED)

    def get_breadcrumbs_items(self):
        return self.breadcrumbs_items + [
            {"url": reverse(DeliveryViewSet.name + ":index"), "label": _("Deliveries")},
            {"url": "", "label": self.get_page_title()},
        ]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        rows = Delivery.resendable(self.get_queryset())
        context["count"] = rows.count()
        context["single"] = rows.first() if "pk" in self.kwargs else None
        if "pk" in self.kwargs and not context["count"]:
            get_object_or_404(Delivery, pk=self.kwargs["pk"])
        context["index_url"] = reverse(DeliveryViewSet.name + ":index")
        return context

    def post(self, request, *args, **kwargs):
        ids = list(Delivery.resendable(self.get_queryset()).values_list("pk", flat=True))
        sent = delivery.resend(ids)
        if len(ids) == 1:
            row = Delivery.objects.get(pk=ids[0])
            message = _("Delivery re-sent: %(status)s.") % {"status": row.get_status_display()}
            if row.status in STATUS_PRIMARY:
                messages.success(request, message)
            else:
                messages.warning(request, message)
            return HttpResponseRedirect(reverse(DeliveryViewSet.name + ":inspect", args=[ids[0]]))
        messages.success(request, _("%(count)s deliveries queued for re-sending.") % {"count": sent})
        return HttpResponseRedirect(reverse(DeliveryViewSet.name + ":index"))


class DeliveryViewSet(ReadOnlyModelViewSet):
    """The delivery log: read-only, with re-sending."""

    model = Delivery
    name = "wagtail_calltracking_deliveries"
    url_prefix = "calltracking/deliveries"
    icon = "resubmit"
    menu_label = gettext_lazy("Deliveries")
    index_view_class = DeliveryIndexView
    inspect_view_class = DeliveryInspectView
    permission_codenames = ("view_delivery", "resend_delivery")

    def get_urlpatterns(self):
        return [
            *super().get_urlpatterns(),
            path("<int:pk>/resend/", ResendView.as_view(), name="resend"),
            path("resend-failed/", ResendView.as_view(), name="resend_failed"),
        ]

    def register_admin_url_finder(self):
        pass


# --- CRM webhooks ----------------------------------------------------------------------------


class IntegrationIndexView(generic.IndexView):
    """Listing of one integration's targets: each row offers its action (send a test,
    validate, download) to editors who may change it, and a link to its deliveries."""

    delivery_kind: str
    #: (label, URL name within the viewset, icon) of the row's action.
    row_action: tuple

    @property
    def viewset_namespace(self):
        return self.index_url_name.rpartition(":")[0]

    def get_base_queryset(self):
        return super().get_base_queryset().select_related("site")

    def get_list_more_buttons(self, instance):
        buttons = list(super().get_list_more_buttons(instance))
        if self.user_has_permission("change"):
            label, url_name, icon = self.row_action
            buttons.append(
                MenuItem(
                    label,
                    url=reverse(f"{self.viewset_namespace}:{url_name}", args=[instance.pk]),
                    icon_name=icon,
                    priority=15,
                )
            )
        buttons.append(
            MenuItem(
                _("Deliveries"),
                url=deliveries_url(kind=self.delivery_kind, target_id=instance.pk),
                icon_name="list-ul",
                priority=16,
            )
        )
        return buttons


class CRMEndpointIndexView(IntegrationIndexView):
    delivery_kind = DeliveryKind.CRM
    row_action = (gettext_lazy("Send a test"), "ping", "resubmit")

    def get_base_queryset(self):
        return super().get_base_queryset().annotate(recent_failures=failed_deliveries(DeliveryKind.CRM))


def _events_label(endpoint):
    labels = dict(DeliveryEvent.choices)
    return ", ".join(str(labels[event]) for event in endpoint.events) or "—"


class PingView(ConfigurationActionView):
    model = CRMEndpoint
    permission_policy = ModelPermissionPolicy(CRMEndpoint)
    template_name = TEMPLATES + "crm_ping.html"
    page_title = gettext_lazy("Send a test")
    header_icon = "resubmit"

    def post(self, request, *args, **kwargs):
        outcome = crm.send_ping(self.object)
        context = self.get_context_data(outcome=outcome, payload=json.dumps(crm.ping_payload(self.object), indent=2))
        return TemplateResponse(request, self.template_name, context)


class CRMEndpointViewSet(ConfigurationMixin, ModelViewSet):
    model = CRMEndpoint
    name = "wagtail_calltracking_crm"
    url_prefix = "calltracking/integrations/crm"
    icon = "link-external"
    menu_label = gettext_lazy("CRM webhooks")
    index_view_class = CRMEndpointIndexView
    search_fields = ["name", "url"]
    list_filter = ["active"]
    edit_handler = ObjectList(
        [
            FieldPanel("name"),
            FieldPanel("active"),
            FieldPanel("site"),
            FieldPanel("url"),
            MultiFieldPanel(
                [FieldPanel("on_call_started"), FieldPanel("on_call_completed"), FieldPanel("on_call_tagged")],
                heading=gettext_lazy("Events"),
                help_text=gettext_lazy(
                    "Call started: as the phone rings (attribution known, no outcome yet). Call "
                    "completed: once, with the result and talk time. Call tagged: when an editor "
                    "classifies the call or sets its value."
                ),
            ),
            FieldPanel("secret"),
        ]
    )

    @cached_property
    def list_display(self):
        return [
            "name",
            Column("url", label=_("URL")),
            Column("events", label=_("Events"), accessor=_events_label),
            BooleanColumn("active", label=_("Active"), sort_key="active"),
            NumberColumn("recent_failures", label=_("Failed (7 days)"), sort_key="recent_failures"),
        ]

    def get_urlpatterns(self):
        return [
            *super().get_urlpatterns(),
            path(
                "ping/<int:pk>/",
                PingView.as_view(index_url_name=self.get_url_name("index"), edit_url_name=self.get_url_name("edit")),
                name="ping",
            ),
        ]


# --- GA4 -------------------------------------------------------------------------------------


def _rules_label(obj):
    parts = [_("answered only") if obj.answered_only else _("all results")]
    if obj.min_talk_seconds:
        parts.append(_("≥ %(s)s s talk") % {"s": obj.min_talk_seconds})
    if obj.first_time_only:
        parts.append(_("first-time callers"))
    return ", ".join(str(p) for p in parts)


class GA4PropertyIndexView(IntegrationIndexView):
    delivery_kind = DeliveryKind.GA4
    row_action = (gettext_lazy("Validate"), "validate", "success")

    def get_base_queryset(self):
        return super().get_base_queryset().annotate(recent_failures=failed_deliveries(DeliveryKind.GA4))


class ValidateView(ConfigurationActionView):
    """Sends the newest real payload (or a sample) to GA4's validation server, which records
    nothing, and shows its ``validationMessages``."""

    model = GA4Property
    permission_policy = ModelPermissionPolicy(GA4Property)
    template_name = TEMPLATES + "ga4_validate.html"
    page_title = gettext_lazy("Validate")
    header_icon = "success"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        result = ga4.validate(self.object)
        context["result"] = result
        context["payload_json"] = json.dumps(result["payload"], indent=2, ensure_ascii=False)
        context["endpoint"] = ga4.collect_url(debug=True)
        return context


class GA4PropertyViewSet(ConfigurationMixin, ModelViewSet):
    model = GA4Property
    name = "wagtail_calltracking_ga4"
    url_prefix = "calltracking/integrations/ga4"
    icon = "site"
    menu_label = gettext_lazy("GA4 properties")
    index_view_class = GA4PropertyIndexView
    search_fields = ["name", "measurement_id"]
    list_filter = ["active"]
    edit_handler = ObjectList(
        [
            FieldPanel("name"),
            FieldPanel("active"),
            FieldPanel("site"),
            FieldPanel("measurement_id"),
            FieldPanel("api_secret"),
            FieldPanel("event_name"),
            MultiFieldPanel(
                [
                    FieldPanel("answered_only"),
                    FieldPanel("min_talk_seconds"),
                    FieldPanel("first_time_only"),
                    FieldPanel("send_without_client_id"),
                ],
                heading=gettext_lazy("Which calls are sent"),
            ),
        ]
    )

    @cached_property
    def list_display(self):
        return [
            "name",
            Column("measurement_id", label=_("Measurement id"), sort_key="measurement_id"),
            Column("event_name", label=_("Event")),
            Column("rules", label=_("Calls sent"), accessor=_rules_label),
            BooleanColumn("active", label=_("Active"), sort_key="active"),
            NumberColumn("recent_failures", label=_("Failed (7 days)"), sort_key="recent_failures"),
        ]

    def get_urlpatterns(self):
        return [
            *super().get_urlpatterns(),
            path(
                "validate/<int:pk>/",
                ValidateView.as_view(
                    index_url_name=self.get_url_name("index"), edit_url_name=self.get_url_name("edit")
                ),
                name="validate",
            ),
        ]


# --- Google Ads ------------------------------------------------------------------------------


class FeedURLPanel(Panel):
    """The URLs and credentials to paste into Google Ads (existing feeds only)."""

    class BoundPanel(Panel.BoundPanel):
        template_name = TEMPLATES + "feed_url_panel.html"

        def is_shown(self):
            return bool(self.instance and self.instance.pk)

        def get_context_data(self, parent_context=None):
            context = super().get_context_data(parent_context)
            feed = self.instance
            context["feed"] = feed
            context["token_url"] = public_url(
                self.request, reverse("wagtail_calltracking:google_ads_feed", args=[feed.feed_token])
            )
            context["basic_url"] = public_url(self.request, reverse("wagtail_calltracking:google_ads_feed_basic_auth"))
            context["insecure"] = not context["token_url"].startswith("https://")
            context["download_url"] = reverse(GoogleAdsFeedViewSet.name + ":download", args=[feed.pk])
            context["regenerate_url"] = reverse(GoogleAdsFeedViewSet.name + ":regenerate", args=[feed.pk])
            context["rows"] = feed_rows(feed).count()
            return context


class GoogleAdsFeedIndexView(IntegrationIndexView):
    delivery_kind = DeliveryKind.GOOGLE_ADS
    row_action = (gettext_lazy("Download CSV"), "download", "download")

    def get_base_queryset(self):
        since = timezone.now() - timezone.timedelta(days=90)
        waiting = (
            Delivery.objects.filter(
                kind=DeliveryKind.GOOGLE_ADS,
                target_id=OuterRef("pk"),
                status=DeliveryStatus.AWAITING_FETCH,
                created_at__gte=since,
            )
            .order_by()
            .values("target_id")
            .annotate(n=Count("pk"))
            .values("n")[:1]
        )
        return (
            super()
            .get_base_queryset()
            .annotate(waiting_rows=Coalesce(Subquery(waiting, output_field=IntegerField()), Value(0)))
        )


class DownloadFeedView(PermissionCheckedMixin, View):
    """The same CSV as Google Ads gets; downloading it does not mark rows as fetched."""

    permission_policy = ModelPermissionPolicy(GoogleAdsFeed)
    any_permission_required = ["change"]

    def get(self, request, pk):
        feed = get_object_or_404(GoogleAdsFeed, pk=pk)
        return csv_response(feed, mark=False, download=True)


class RegenerateTokenView(ConfigurationActionView):
    model = GoogleAdsFeed
    permission_policy = ModelPermissionPolicy(GoogleAdsFeed)
    template_name = TEMPLATES + "feed_regenerate.html"
    page_title = gettext_lazy("New feed URL")
    header_icon = "key"

    def post(self, request, *args, **kwargs):
        self.object.regenerate_token()
        messages.success(
            request,
            _("The feed has a new URL and password: update the schedule in Google Ads."),
        )
        return HttpResponseRedirect(reverse(self.edit_url_name, args=[self.object.pk]))


class GoogleAdsFeedViewSet(ConfigurationMixin, ModelViewSet):
    model = GoogleAdsFeed
    name = "wagtail_calltracking_google_ads"
    url_prefix = "calltracking/integrations/google-ads"
    icon = "tag"
    menu_label = gettext_lazy("Google Ads feeds")
    index_view_class = GoogleAdsFeedIndexView
    search_fields = ["name", "conversion_name"]
    list_filter = ["active"]
    edit_handler = ObjectList(
        [
            FieldPanel("name"),
            FieldPanel("active"),
            FieldPanel("site"),
            FeedURLPanel(heading=gettext_lazy("Feed URL for Google Ads")),
            MultiFieldPanel(
                [
                    FieldPanel("conversion_name"),
                    FieldPanel("time_zone"),
                    FieldPanel("default_value"),
                    FieldPanel("default_currency"),
                    FieldPanel("window_days"),
                ],
                heading=gettext_lazy("Conversions"),
            ),
            MultiFieldPanel(
                [FieldPanel("answered_only"), FieldPanel("min_talk_seconds"), FieldPanel("first_time_only")],
                heading=gettext_lazy("Which calls count"),
            ),
            InlinePanel(
                "source_rules",
                heading=gettext_lazy("Per-source rules"),
                label=gettext_lazy("Source rule"),
                panels=[
                    FieldPanel("source"),
                    FieldPanel("include"),
                    FieldPanel("conversion_name"),
                    FieldPanel("min_talk_seconds"),
                    FieldPanel("value"),
                ],
            ),
        ]
    )

    @cached_property
    def list_display(self):
        return [
            "name",
            Column("conversion_name", label=_("Conversion name")),
            Column("time_zone", label=_("Time zone")),
            Column("rules", label=_("Calls sent"), accessor=_rules_label),
            NumberColumn("waiting_rows", label=_("Waiting for Google"), sort_key="waiting_rows"),
            DateColumn("last_fetched_at", label=_("Last fetched"), sort_key="last_fetched_at"),
            BooleanColumn("active", label=_("Active"), sort_key="active"),
        ]

    def get_urlpatterns(self):
        return [
            *super().get_urlpatterns(),
            path("download/<int:pk>/", DownloadFeedView.as_view(), name="download"),
            path(
                "regenerate/<int:pk>/",
                RegenerateTokenView.as_view(
                    index_url_name=self.get_url_name("index"), edit_url_name=self.get_url_name("edit")
                ),
                name="regenerate",
            ),
        ]


#: In menu order, inserted before the admin's "Settings" link.
integration_viewsets = [
    DeliveryViewSet(),
    CRMEndpointViewSet(),
    GA4PropertyViewSet(),
    GoogleAdsFeedViewSet(),
]


def register(viewsets):
    """Insert the integration screens into the "Call tracking" menu list (before Settings)."""
    from ..admin.viewsets import SiteSettingsLink

    if any(isinstance(v, DeliveryViewSet) for v in viewsets):
        return
    position = next((i for i, v in enumerate(viewsets) if isinstance(v, SiteSettingsLink)), len(viewsets))
    viewsets[position:position] = integration_viewsets


def _add_to_menu():
    from ..admin.viewsets import calltracking_viewsets

    register(calltracking_viewsets)


# Importing this module (from wagtail_hooks.py) adds the screens to the "Call tracking" menu.
_add_to_menu()
