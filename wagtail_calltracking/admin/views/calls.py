"""Calls: the listing (filters, search by caller, CSV/XLSX export) and the call detail page
with the visitor's journey. Calls are never edited here; editors with ``tag_call`` classify
them (lead / spam / existing customer) and give them a value and a note."""

from __future__ import annotations

import datetime
import re
from collections import OrderedDict

from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from wagtail.admin import messages
from wagtail.admin.ui.tables import Column
from wagtail.admin.views import generic

from ...models import Call, CallTouch, PageView, TouchModel, VisitorSession
from ...numbers.phone import ANONYMOUS, to_e164
from ...signals import call_tagged
from ..columns import (
    AttributionColumn,
    CallerColumn,
    CallTimeColumn,
    ConfidenceColumn,
    DurationColumn,
    FirstTimeColumn,
    ResultColumn,
    TrackingNumberColumn,
)
from ..filters import CallFilterSet
from ..formatting import SafeCsvExportMixin, channel_label, export_value, format_seconds
from ..forms import CallTagForm
from ..permissions import can_tag_calls
from ..queries import clean_touch_model, default_touch_model, with_attribution

#: Upper bounds that keep the detail page fast for visitors with long histories.
SEQUENCE_LIMIT = 50
JOURNEY_PAGE_VIEW_LIMIT = 500
PREVIOUS_CALLS_LIMIT = 20


def _localise(value):
    return timezone.localtime(value) if value else value


def _export_datetime_csv(value):
    return _localise(value).isoformat(sep=" ", timespec="seconds") if value else ""


def _export_datetime_xlsx(value):
    return timezone.make_naive(_localise(value)) if value else None


class CallIndexView(SafeCsvExportMixin, generic.IndexView):
    model = Call
    any_permission_required = ["view"]
    template_name = "wagtail_calltracking/admin/calls/index.html"
    results_template_name = "wagtail_calltracking/admin/calls/index_results.html"
    filterset_class = CallFilterSet
    default_ordering = "-started_at"
    paginate_by = 50
    page_title = gettext_lazy("Calls")
    search_fields = ["from_number"]  # searched by search_queryset below (number-aware)
    search_backend_name = None
    export_filename = "calls"
    list_export = [
        "id",
        "started_at",
        "from_number",
        "caller_name",
        "to_number",
        "tracking_number.label",
        "get_result_display",
        "ring_seconds",
        "talk_seconds",
        "manager.name",
        "is_first_time",
        "get_confidence_display",
        "source.name",
        "ct_channel",
        "ct_source",
        "ct_medium",
        "ct_campaign",
        "ct_keyword",
        "ct_landing_path",
        "gclid",
        "get_tag_display",
        "value",
        "note",
        "caller_city",
        "caller_region",
        "caller_country",
        "recording_url",
    ]
    export_headings = {
        "id": gettext_lazy("Call id"),
        "started_at": gettext_lazy("Started at"),
        "from_number": gettext_lazy("Caller"),
        "caller_name": gettext_lazy("Caller name"),
        "to_number": gettext_lazy("Tracking number"),
        "tracking_number.label": gettext_lazy("Tracking number label"),
        "get_result_display": gettext_lazy("Result"),
        "ring_seconds": gettext_lazy("Ring time (s)"),
        "talk_seconds": gettext_lazy("Talk time (s)"),
        "manager.name": gettext_lazy("Answered by"),
        "is_first_time": gettext_lazy("First-time caller"),
        "get_confidence_display": gettext_lazy("Attribution confidence"),
        "source.name": gettext_lazy("Tracking source"),
        "ct_channel": gettext_lazy("Channel"),
        "ct_source": gettext_lazy("Source"),
        "ct_medium": gettext_lazy("Medium"),
        "ct_campaign": gettext_lazy("Campaign"),
        "ct_keyword": gettext_lazy("Keyword"),
        "ct_landing_path": gettext_lazy("Landing page"),
        "gclid": "gclid",
        "get_tag_display": gettext_lazy("Tag"),
        "value": gettext_lazy("Value"),
        "note": gettext_lazy("Note"),
        "caller_city": gettext_lazy("Caller city"),
        "caller_region": gettext_lazy("Caller region"),
        "caller_country": gettext_lazy("Caller country"),
        "recording_url": gettext_lazy("Recording"),
    }

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.custom_value_preprocess = {
            **self.custom_value_preprocess,
            datetime.datetime: {
                self.FORMAT_CSV: _export_datetime_csv,
                self.FORMAT_XLSX: _export_datetime_xlsx,
            },
        }
        self.custom_field_preprocess = {
            **self.custom_field_preprocess,
            "ct_channel": {self.FORMAT_CSV: channel_label, self.FORMAT_XLSX: channel_label},
        }

    # --- columns -------------------------------------------------------------------------

    @cached_property
    def columns(self):
        return [
            CallTimeColumn(
                "started_at",
                label=_("Time"),
                sort_key="started_at",
                get_url=self.get_detail_url,
            ),
            CallerColumn("from_number", label=_("Caller")),
            TrackingNumberColumn("tracking_number", label=_("Tracking number")),
            AttributionColumn("attribution", label=_("Source, campaign, keyword")),
            ResultColumn(),
            DurationColumn("talk_seconds", label=_("Duration"), sort_key="talk_seconds"),
            Column("manager", label=_("Answered by"), accessor="manager.name"),
            FirstTimeColumn("is_first_time", label=_("First-time")),
            ConfidenceColumn("confidence", label=_("Confidence")),
        ]

    def get_detail_url(self, instance):
        return reverse(self.inspect_url_name, args=(quote(instance.pk),))

    # Calls are never added, edited, copied or deleted in the admin.
    def get_add_url(self):
        return None

    def get_edit_url(self, instance):
        return None

    def get_copy_url(self, instance):
        return None

    def get_delete_url(self, instance):
        return None

    def get_inspect_url(self, instance):
        return self.get_detail_url(instance)

    def get_list_more_buttons(self, instance):
        return []

    # --- queryset ------------------------------------------------------------------------

    @cached_property
    def touch_model(self):
        if self.filters is not None and self.filters.is_valid():
            return clean_touch_model(self.filters.form.cleaned_data.get("attribution"))
        return default_touch_model()

    def get_base_queryset(self):
        queryset = Call.objects.select_related("tracking_number", "manager", "source")
        return with_attribution(queryset, self.touch_model)

    def order_queryset(self, queryset):
        queryset = super().order_queryset(queryset)
        # A stable order for pagination: the (started_at, id) index.
        ordering = self.ordering or "-started_at"
        descending = ordering.startswith("-")
        return queryset.order_by(ordering, "-pk" if descending else "pk")

    def search_queryset(self, queryset):
        """Search by caller number however it is typed (E.164, national format, a fragment
        of digits) or by caller name."""
        if not self.is_searching:
            return queryset
        query = self.search_query.strip()
        e164 = to_e164(query)
        condition = Q(caller_name__icontains=query)
        if e164:
            condition |= Q(from_number=e164)
        digits = re.sub(r"\D", "", query)
        if len(digits) >= 3:
            condition |= Q(from_number__contains=digits)
        elif query.lower() == ANONYMOUS:
            condition |= Q(from_number=ANONYMOUS)
        return queryset.filter(condition)

    # --- export --------------------------------------------------------------------------

    def to_row_dict(self, item):
        # Relations may be empty (no manager, no tracking number): export a blank cell.
        return OrderedDict((field, export_value(item, field)) for field in self.list_export)

    def stream_csv(self, queryset):
        # Stream in chunks: an export of every call never holds them all in memory.
        return super().stream_csv(_Chunked(queryset))

    def write_xlsx(self, queryset, output):
        return super().write_xlsx(_Chunked(queryset), output)

    def get_context_data(self, *args, **kwargs):
        context = super().get_context_data(*args, **kwargs)
        context["touch_model_label"] = TouchModel(self.touch_model).label
        return context


class _Chunked:
    """A queryset wrapper iterated with ``.iterator()`` (``model`` kept for export headings)."""

    def __init__(self, queryset):
        self.queryset = queryset
        self.model = queryset.model

    def __iter__(self):
        return self.queryset.iterator(chunk_size=2000)


class CallDetailView(generic.InspectView):
    """Everything about one call: result, timings, recording, manager, attribution with
    candidates, the visitor's visits (multi-channel sequence) and page-by-page journey,
    device and region, and earlier calls from the same caller."""

    model = Call
    any_permission_required = ["view"]
    template_name = "wagtail_calltracking/admin/calls/detail.html"
    edit_url_name = None
    delete_url_name = None
    inspect_url_name = None

    def setup(self, request, *args, **kwargs):
        # Unlike InspectView, fetch the call only once the permission check has passed (the
        # existence of a call id is not revealed to users who may not see calls).
        super(generic.InspectView, self).setup(request, *args, **kwargs)
        self.pk = self.kwargs[self.pk_url_kwarg]
        self.fields = []

    def dispatch(self, request, *args, **kwargs):
        if not self.user_has_any_permission(self.any_permission_required):
            raise PermissionDenied
        self.object = self.get_object()
        return super().dispatch(request, *args, **kwargs)

    def get_object(self, queryset=None):
        queryset = Call.objects.select_related(
            "tracking_number",
            "tracking_number__pool",
            "manager",
            "source",
            "session",
            "session__matched_source",
            "lease",
            "site",
        )
        try:
            return queryset.get(pk=self.pk)
        except (Call.DoesNotExist, ValueError):
            raise Http404

    def get_page_title(self):
        return _("Call from %(caller)s") % {"caller": self.object.from_display or _("unknown")}

    def get_page_subtitle(self):
        return ""

    def get_breadcrumbs_items(self):
        items = list(self.breadcrumbs_items)
        if self.index_url_name:
            items.append({"url": reverse(self.index_url_name), "label": _("Calls")})
        items.append({"url": "", "label": self.get_page_title()})
        return items

    def get_edit_url(self):
        return None

    def get_delete_url(self):
        return None

    @cached_property
    def can_tag(self):
        return can_tag_calls(self.request.user)

    def post(self, request, *args, **kwargs):
        if not self.can_tag:
            raise PermissionDenied
        form = CallTagForm(request.POST, instance=self.object)
        if form.is_valid():
            call = form.save()
            transaction.on_commit(
                lambda: call_tagged.send(sender=Call, call=call, user=request.user)
            )
            messages.success(request, _("Call classification saved."))
            return redirect(reverse(self.inspect_url_name, args=(quote(call.pk),)))
        messages.validation_error(request, _("The classification could not be saved."), form)
        return self.render_to_response(self.get_context_data(tag_form=form))

    def get_fields(self):
        return []

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        call = self.object
        if self.can_tag and "tag_form" not in context:
            context["tag_form"] = CallTagForm(instance=call)
        context.update(
            call=call,
            can_tag=self.can_tag,
            ring_time=format_seconds(call.ring_seconds),
            talk_time=format_seconds(call.talk_seconds),
            recording_url=call.recording_url
            if call.recording_url.startswith(("https://", "http://"))
            else "",
            touches=self.get_touches(call),
            candidates=self.get_candidates(call),
            events=list(call.events.all()[:200]),
            previous_calls=self.get_previous_calls(call),
            index_url=reverse(self.index_url_name) if self.index_url_name else "",
        )
        context.update(self.get_journey(call))
        return context

    def get_touches(self, call):
        order = {model: index for index, model in enumerate(TouchModel.values)}
        touches = sorted(CallTouch.objects.filter(call=call), key=lambda t: order.get(t.model, 99))
        for touch in touches:
            touch.channel_label = channel_label(touch.channel)
        return touches

    def get_candidates(self, call):
        return list(
            call.candidate_sessions.exclude(pk=call.session_id).order_by("-last_activity_at")[:20]
        )

    def get_previous_calls(self, call):
        if not call.from_number or call.from_number == ANONYMOUS:
            return []
        previous = list(
            Call.objects.filter(from_number=call.from_number, started_at__lt=call.started_at)
            .exclude(pk=call.pk)
            .select_related("source", "tracking_number")
            .order_by("-started_at", "-pk")[:PREVIOUS_CALLS_LIMIT]
        )
        for other in previous:
            other.detail_url = reverse(self.inspect_url_name, args=(quote(other.pk),))
            other.talk_time = format_seconds(other.talk_seconds)
        return previous

    def get_journey(self, call):
        """The visitor's visits up to the call (multi-channel sequence) and their page views,
        in a fixed number of queries whatever the history's length."""
        visitor_id = call.visitor_id or (call.session.visitor_id if call.session_id else None)
        if visitor_id is None:
            return {"visits": [], "visits_total": 0, "attributed_visit": None, "journey_visit": None}
        sessions_before_call = VisitorSession.objects.filter(
            visitor_id=visitor_id, started_at__lte=call.started_at
        )
        if call.session_id:
            # The attributed session is always shown, even if it began after the call
            # (a late lease refresh) – the sequence is "up to the call" otherwise.
            sessions_before_call = VisitorSession.objects.filter(
                Q(visitor_id=visitor_id, started_at__lte=call.started_at) | Q(pk=call.session_id)
            )
        visits = list(
            sessions_before_call.annotate(page_count=Count("page_views"))
            .select_related("landing_page")
            .order_by("-started_at", "-pk")[:SEQUENCE_LIMIT]
        )
        visits.reverse()
        visits_total = (
            len(visits)
            if len(visits) < SEQUENCE_LIMIT
            else sessions_before_call.order_by().count()
        )
        pages_by_session: dict[int, list[PageView]] = {visit.pk: [] for visit in visits}
        page_views = (
            PageView.objects.filter(session_id__in=list(pages_by_session))
            .order_by("session_id", "viewed_at", "pk")
            .only("session_id", "viewed_at", "path", "query", "title", "page_id")[
                :JOURNEY_PAGE_VIEW_LIMIT
            ]
        )
        for page_view in page_views:
            pages_by_session[page_view.session_id].append(page_view)

        attributed_visit = None
        for number, visit in enumerate(visits, start=1):
            visit.number = number
            visit.channel_label = channel_label(visit.channel)
            visit.is_attributed = visit.pk == call.session_id
            visit.is_candidate = False
            pages = pages_by_session[visit.pk]
            for index, page_view in enumerate(pages):
                page_view.offset = format_seconds(
                    (page_view.viewed_at - visit.started_at).total_seconds()
                )
                following = pages[index + 1].viewed_at if index + 1 < len(pages) else None
                page_view.time_on_page = (
                    format_seconds((following - page_view.viewed_at).total_seconds())
                    if following
                    else ""
                )
            visit.pages = pages
            visit.pages_truncated = len(pages) < (visit.page_count or 0)
            if visit.is_attributed:
                attributed_visit = visit
        return {
            "visits": visits,
            "visits_total": visits_total,
            "attributed_visit": attributed_visit,
            # Without an attributed session (e.g. a caller recognised by number), the
            # latest visit before the call is the most useful journey to show.
            "journey_visit": attributed_visit or (visits[-1] if visits else None),
        }
