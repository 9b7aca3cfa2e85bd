"""Admin screen: erase a visitor's or a caller's personal data (right to be forgotten).

Call tracking › Erase personal data: enter a caller's phone number and/or a visitor id (the
call detail page shows both; ``?call=<id>`` pre-fills them from a call), review what would
be erased, then confirm. The erasure itself is :func:`wagtail_calltracking.privacy.erase_personal_data`.

Who may erase: superusers, and members of a group granted the custom permission
``wagtail_calltracking.erase_personal_data`` (Settings › Groups › Visitor › "Can erase a
visitor's or caller's personal data"). It is declared on the ``Visitor`` model's ``Meta``, so
Django creates it with the other permissions on ``migrate``, and it is registered with
Wagtail's ``register_permissions`` hook so it shows in the group editor.

Importing this module (from ``wagtail_hooks.py``) adds the screen to the "Call tracking" menu.
"""

from __future__ import annotations

import logging

from django import forms
from django.contrib.auth.models import Permission
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from django.views.generic import FormView
from wagtail import hooks
from wagtail.admin import messages
from wagtail.admin.auth import permission_denied
from wagtail.admin.menu import MenuItem
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin
from wagtail.admin.viewsets.base import ViewSet

from ..models import Call
from ..privacy import ErasureError, caller_number, erase_personal_data, parse_visitor_key

logger = logging.getLogger("wagtail_calltracking.privacy")

PERMISSION = "wagtail_calltracking.erase_personal_data"


def can_erase_personal_data(user) -> bool:
    return bool(user and user.is_active and (user.is_superuser or user.has_perm(PERMISSION)))


def _split(value: str) -> list[str]:
    return [part.strip() for part in (value or "").replace(",", "\n").splitlines() if part.strip()]


class ErasureForm(forms.Form):
    phone_numbers = forms.CharField(
        label=_("Caller phone numbers"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("One per line, in any format, e.g. +1 312 555 0100."),
    )
    visitor_ids = forms.CharField(
        label=_("Visitor ids"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("One per line: the visitor id shown on a call's detail page."),
    )
    follow_links = forms.BooleanField(
        label=_("Also erase linked callers and visitors"),
        required=False,
        initial=True,
        help_text=_(
            "A visitor's calls bring their caller numbers; a caller's calls bring the visitors "
            "they were attributed to (the same person)."
        ),
    )

    def clean_phone_numbers(self):
        numbers = _split(self.cleaned_data.get("phone_numbers"))
        errors = []
        for number in numbers:
            try:
                caller_number(number)
            except ErasureError as error:
                errors.append(str(error))
        if errors:
            raise forms.ValidationError(errors)
        return numbers

    def clean_visitor_ids(self):
        keys = _split(self.cleaned_data.get("visitor_ids"))
        errors = []
        for key in keys:
            try:
                parse_visitor_key(key)
            except ErasureError:
                errors.append(_("“%(value)s” is not a visitor id.") % {"value": key[:64]})
        if errors:
            raise forms.ValidationError(errors)
        return keys

    def clean(self):
        cleaned = super().clean()
        if not self.errors and not cleaned.get("phone_numbers") and not cleaned.get("visitor_ids"):
            raise forms.ValidationError(_("Enter at least one phone number or visitor id."))
        return cleaned


class ErasureView(WagtailAdminTemplateMixin, FormView):
    """A form, a preview (dry run) of what would be erased, then the erasure on confirmation."""

    form_class = ErasureForm
    template_name = "wagtail_calltracking/admin/privacy/erase.html"
    page_title = _("Erase personal data")
    header_icon = "bin"
    index_url_name = None

    def dispatch(self, request, *args, **kwargs):
        if not can_erase_personal_data(request.user):
            return permission_denied(request)
        return super().dispatch(request, *args, **kwargs)

    def get_breadcrumbs_items(self):
        return self.breadcrumbs_items + [{"url": "", "label": self.get_page_title()}]

    def get_initial(self):
        initial = super().get_initial()
        call_id = self.request.GET.get("call", "")
        if call_id.isdigit():
            call = Call.objects.filter(pk=int(call_id)).select_related("visitor").first()
            if call is not None:
                initial["phone_numbers"] = call.from_number if call.from_number.startswith("+") else ""
                initial["visitor_ids"] = str(call.visitor.key) if call.visitor_id else ""
        return initial

    def form_valid(self, form):
        data = form.cleaned_data
        arguments = {
            "visitor_keys": data["visitor_ids"],
            "phone_numbers": data["phone_numbers"],
            "follow_links": data["follow_links"],
        }
        if self.request.POST.get("confirm") != "1":
            preview = erase_personal_data(**arguments, dry_run=True)
            confirmed = {
                "phone_numbers": ", ".join(data["phone_numbers"]),
                "visitor_ids": ", ".join(data["visitor_ids"]),
                "follow_links": data["follow_links"],
            }
            return self.render_to_response(
                self.get_context_data(form=form, preview=preview, confirming=True, confirmed=confirmed)
            )
        summary = erase_personal_data(**arguments)
        logger.info("Personal data erased by user %s: %s", self.request.user.pk, summary.as_dict())
        messages.success(self.request, " ".join(summary.lines()))
        if summary.recording_urls:
            messages.warning(
                self.request,
                _("Delete these recordings at the telephony provider: %(urls)s")
                % {"urls": ", ".join(summary.recording_urls)},
            )
        return HttpResponseRedirect(reverse(ErasureViewSet.name + ":index"))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("preview", None)
        context.setdefault("confirming", False)
        return context


class ErasureViewSet(ViewSet):
    name = "wagtail_calltracking_erasure"
    url_prefix = "calltracking/erase"
    icon = "bin"
    menu_label = _("Erase personal data")

    @cached_property
    def erase_view(self):
        return self.construct_view(ErasureView)

    def get_urlpatterns(self):
        return [path("", self.erase_view, name="index")]

    @cached_property
    def menu_item_class(self):
        def is_shown(_self, request):
            return can_erase_personal_data(request.user)

        return type("ErasureMenuItem", (MenuItem,), {"is_shown": is_shown})

    def on_register(self):
        super().on_register()
        hooks.register("register_permissions", registered_permissions)


def registered_permissions():
    """The erasure permission, for Wagtail's group editor."""
    app_label, codename = PERMISSION.split(".")
    return Permission.objects.filter(content_type__app_label=app_label, codename=codename)


def _add_to_menu():
    from .viewsets import calltracking_viewsets

    if not any(isinstance(viewset, ErasureViewSet) for viewset in calltracking_viewsets):
        calltracking_viewsets.append(ErasureViewSet())


_add_to_menu()
