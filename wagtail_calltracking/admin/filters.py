"""Filter sets of the calls listing and the reports (django-filter, Wagtail widgets).

Filters on attribution (channel, campaign, keyword…) act on the ``ct_*`` annotations added by
:func:`~wagtail_calltracking.admin.queries.with_attribution`, so the attribution model chosen
in the same form applies to them.
"""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from wagtail.admin.filters import DateRangePickerWidget, WagtailFilterSet
from wagtail.admin.widgets import BooleanRadioSelect
from wagtail.models import Site

from ..models import (
    Call,
    CallResult,
    CallTag,
    Channel,
    Confidence,
    Manager,
    NumberPool,
    Source,
    TouchModel,
    TrackingNumber,
)
from .queries import DIMENSION_CHOICES, default_touch_model, filter_started

UNATTRIBUTED = "unattributed"
UNTAGGED = "untagged"


def _keep(queryset, name, value):
    """For filters read by the view itself (attribution model, grouping)."""
    return queryset


class DateRangeFilter(django_filters.DateFromToRangeFilter):
    """A local-date range over a datetime field, as an index-friendly half-open interval."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", DateRangePickerWidget)
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if not value:
            return qs
        return filter_started(qs, value.start, value.stop, field=self.field_name)


class DefaultsMixin:
    """Fills missing values with defaults (so radios show what applies and the filter form
    does not count a default as "filtering")."""

    def get_defaults(self) -> dict:
        return {}

    def __init__(self, data=None, *args, **kwargs):
        defaults = self.get_defaults()
        if data is not None and defaults:
            data = data.copy()
            for key, value in defaults.items():
                if not data.get(key):
                    data[key] = value
        super().__init__(data, *args, **kwargs)
        for key, value in defaults.items():
            if key in self.filters:
                self.filters[key].extra["initial"] = value


class SiteFilterMixin:
    """Adds a site filter when the installation has more than one site."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if Site.objects.count() < 2:
            self.filters.pop("site", None)


class AttributionModelFilter(django_filters.ChoiceFilter):
    def __init__(self, **kwargs):
        kwargs.setdefault("label", _("Attribution model"))
        kwargs.setdefault("choices", TouchModel.choices)
        kwargs.setdefault("empty_label", None)
        kwargs.setdefault("null_label", None)
        kwargs.setdefault("widget", forms.RadioSelect)
        kwargs.setdefault("method", _keep)
        super().__init__(**kwargs)


class CallFilterSet(DefaultsMixin, SiteFilterMixin, WagtailFilterSet):
    started = DateRangeFilter(field_name="started_at", label=_("Date"))
    attribution = AttributionModelFilter()
    source = django_filters.ModelChoiceFilter(
        label=_("Tracking source"), queryset=Source.objects.all(), field_name="source"
    )
    channel = django_filters.ChoiceFilter(
        label=_("Channel"),
        choices=[*Channel.choices, (UNATTRIBUTED, _("Unattributed"))],
        method="filter_channel",
        empty_label=_("All"),
    )
    campaign = django_filters.CharFilter(
        label=_("Campaign contains"), field_name="ct_campaign", lookup_expr="icontains"
    )
    keyword = django_filters.CharFilter(
        label=_("Keyword contains"), field_name="ct_keyword", lookup_expr="icontains"
    )
    tracking_number = django_filters.ModelChoiceFilter(
        label=_("Tracking number"), queryset=TrackingNumber.objects.all()
    )
    result = django_filters.MultipleChoiceFilter(
        label=_("Result"), choices=CallResult.choices, widget=forms.CheckboxSelectMultiple
    )
    manager = django_filters.ModelChoiceFilter(
        label=_("Answered by"), queryset=Manager.objects.all()
    )
    is_first_time = django_filters.BooleanFilter(
        label=_("First-time caller"), widget=BooleanRadioSelect
    )
    confidence = django_filters.MultipleChoiceFilter(
        label=_("Attribution confidence"),
        choices=Confidence.choices,
        widget=forms.CheckboxSelectMultiple,
    )
    tag = django_filters.ChoiceFilter(
        label=_("Tag"),
        choices=[*CallTag.choices, (UNTAGGED, _("Not tagged"))],
        method="filter_tag",
        empty_label=_("All"),
    )
    site = django_filters.ModelChoiceFilter(label=_("Site"), queryset=Site.objects.all())

    class Meta:
        model = Call
        fields = []

    def get_defaults(self):
        return {"attribution": default_touch_model()}

    def filter_channel(self, queryset, name, value):
        if value == UNATTRIBUTED:
            return queryset.filter(ct_channel="")
        return queryset.filter(ct_channel=value)

    def filter_tag(self, queryset, name, value):
        if value == UNTAGGED:
            return queryset.filter(tag="")
        return queryset.filter(tag=value)


class AttributionReportFilterSet(DefaultsMixin, SiteFilterMixin, WagtailFilterSet):
    started = DateRangeFilter(field_name="started_at", label=_("Date (default: last 30 days)"))
    group_by = django_filters.ChoiceFilter(
        label=_("Group by"),
        choices=DIMENSION_CHOICES,
        empty_label=None,
        null_label=None,
        method=_keep,
        widget=forms.RadioSelect,
    )
    attribution = AttributionModelFilter()
    channel = django_filters.ChoiceFilter(
        label=_("Channel"),
        choices=Channel.choices,
        field_name="ct_channel",
        empty_label=_("All"),
    )
    source = django_filters.ModelChoiceFilter(
        label=_("Tracking source"), queryset=Source.objects.all(), field_name="source"
    )
    exclude_spam = django_filters.BooleanFilter(
        label=_("Exclude calls tagged as spam"),
        method="filter_exclude_spam",
        widget=forms.CheckboxInput,
        initial=False,
    )
    site = django_filters.ModelChoiceFilter(label=_("Site"), queryset=Site.objects.all())

    class Meta:
        model = Call
        fields = []

    def get_defaults(self):
        return {"group_by": "channel", "attribution": default_touch_model()}

    def filter_exclude_spam(self, queryset, name, value):
        return queryset.exclude(tag=CallTag.SPAM) if value else queryset


class ManagerReportFilterSet(SiteFilterMixin, WagtailFilterSet):
    started = DateRangeFilter(field_name="started_at", label=_("Date (default: last 30 days)"))
    site = django_filters.ModelChoiceFilter(label=_("Site"), queryset=Site.objects.all())

    class Meta:
        model = Call
        fields = []


class PoolHealthFilterSet(DefaultsMixin, SiteFilterMixin, WagtailFilterSet):
    days = django_filters.ChoiceFilter(
        label=_("Period"),
        choices=[("7", _("Last 7 days")), ("30", _("Last 30 days")), ("90", _("Last 90 days"))],
        empty_label=None,
        null_label=None,
        method=_keep,
        widget=forms.RadioSelect,
    )
    site = django_filters.ModelChoiceFilter(
        label=_("Site"), queryset=Site.objects.all(), method="filter_site"
    )

    class Meta:
        model = NumberPool
        fields = []

    def get_defaults(self):
        return {"days": "30"}

    def filter_site(self, queryset, name, value):
        return queryset.filter(Q(site=value) | Q(site__isnull=True))


class TrackingNumberFilterSet(SiteFilterMixin, WagtailFilterSet):
    pool = django_filters.ModelChoiceFilter(label=_("Pool"), queryset=NumberPool.objects.all())
    usage = django_filters.ChoiceFilter(
        label=_("Used as"),
        choices=[("pool", _("Pool number")), ("static", _("Static number")), ("free", _("Unused"))],
        method="filter_usage",
        empty_label=_("All"),
    )
    active = django_filters.BooleanFilter(label=_("Active"), widget=BooleanRadioSelect)
    provider = django_filters.CharFilter(label=_("Provider"), lookup_expr="iexact")
    site = django_filters.ModelChoiceFilter(label=_("Site"), queryset=Site.objects.all())

    class Meta:
        model = TrackingNumber
        fields = []

    def filter_usage(self, queryset, name, value):
        if value == "pool":
            return queryset.filter(pool__isnull=False)
        if value == "static":
            return queryset.filter(static_source__isnull=False)
        return queryset.filter(pool__isnull=True, static_source__isnull=True)


class SourceFilterSet(SiteFilterMixin, WagtailFilterSet):
    method = django_filters.ChoiceFilter(
        label=_("Number"),
        choices=[("static", _("Static number")), ("pool", _("Number pool"))],
        method="filter_method",
        empty_label=_("All"),
    )
    active = django_filters.BooleanFilter(label=_("Active"), widget=BooleanRadioSelect)
    site = django_filters.ModelChoiceFilter(label=_("Site"), queryset=Site.objects.all())

    class Meta:
        model = Source
        fields = []

    def filter_method(self, queryset, name, value):
        if value == "static":
            return queryset.filter(static_number__isnull=False)
        return queryset.filter(pool__isnull=False)


class ManagerFilterSet(SiteFilterMixin, WagtailFilterSet):
    active = django_filters.BooleanFilter(label=_("Active"), widget=BooleanRadioSelect)
    site = django_filters.ModelChoiceFilter(label=_("Site"), queryset=Site.objects.all())

    class Meta:
        model = Manager
        fields = []
