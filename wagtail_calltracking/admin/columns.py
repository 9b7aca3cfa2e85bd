"""Table columns of the calls listing and the reports (Wagtail ``ui.tables`` columns)."""

from __future__ import annotations

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _
from wagtail.admin.ui.tables import Column, StatusTagColumn, TitleColumn

from ..models import CallResult
from .compat import NumberColumn
from .formatting import channel_label, format_percent, format_seconds

TEMPLATE_DIR = "wagtail_calltracking/admin/cells/"


class CallTimeColumn(TitleColumn):
    """When the call started (date and time on two short lines), linking to its detail page."""

    cell_template_name = TEMPLATE_DIR + "call_time.html"

    def get_cell_context_data(self, instance, parent_context):
        context = super().get_cell_context_data(instance, parent_context)
        started = timezone.localtime(instance.started_at)
        same_year = started.year == timezone.localdate().year
        context["day"] = date_format(started, "M j" if same_year else "M j, Y")
        context["time"] = date_format(started, "TIME_FORMAT")
        context["iso"] = started.isoformat()
        return context


class CallerColumn(Column):
    cell_template_name = TEMPLATE_DIR + "caller.html"


class TrackingNumberColumn(Column):
    def get_value(self, instance):
        if instance.tracking_number_id:
            return instance.tracking_number.national
        return instance.to_display


class AttributionColumn(Column):
    """Channel, source / medium, campaign and keyword under the chosen attribution model."""

    cell_template_name = TEMPLATE_DIR + "attribution.html"

    def get_cell_context_data(self, instance, parent_context):
        context = super().get_cell_context_data(instance, parent_context)
        context["channel"] = channel_label(instance.ct_channel)
        context["attributed"] = bool(instance.ct_channel)
        return context


class ResultColumn(StatusTagColumn):
    """The call's result, and under it the editors' classification and value, if any."""

    cell_template_name = TEMPLATE_DIR + "result.html"

    def __init__(self, name="result", **kwargs):
        kwargs.setdefault("accessor", "get_result_display")
        kwargs.setdefault("label", _("Result"))
        kwargs.setdefault("primary", lambda call: call.result == CallResult.ANSWERED)
        super().__init__(name, **kwargs)


class DurationColumn(Column):
    """Seconds shown as m:ss (h:mm:ss for long values)."""

    def get_value(self, instance):
        return format_seconds(super().get_value(instance))


class OptionalNumberColumn(NumberColumn):
    """A number, or a dash where there is none (e.g. sessions of unattributed calls)."""

    def get_cell_context_data(self, instance, parent_context):
        context = super().get_cell_context_data(instance, parent_context)
        if context["raw_value"] is None:
            context["value"] = "–"
        return context


class PercentColumn(Column):
    def get_value(self, instance):
        return format_percent(super().get_value(instance))


class LinkColumn(TitleColumn):
    """A report's first column: the group's label, linking to the filtered calls listing."""

    empty_value_display = _("(none)")


class FirstTimeColumn(Column):
    def get_value(self, instance):
        return _("New") if instance.is_first_time else _("Repeat")


#: Short labels for the listing (the detail page shows the full explanation).
SHORT_CONFIDENCE = {
    "exact": _("Exact"),
    "late": _("Late"),
    "ambiguous": _("Ambiguous"),
    "source_only": _("Source only"),
    "unattributed": _("None"),
}


class ConfidenceColumn(Column):
    def get_value(self, instance):
        return SHORT_CONFIDENCE.get(instance.confidence, instance.get_confidence_display())
