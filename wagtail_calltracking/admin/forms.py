"""Forms of the configuration screens and the call classification form.

The validation errors a user needs are raised here with plain words: an invalid phone number,
a number already used by another pool or as a source's static number, a static source without
a number, a pool without numbers.
"""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.forms.models import BaseInlineFormSet, inlineformset_factory
from django.utils.translation import gettext_lazy as _
from wagtail.admin.forms import WagtailAdminModelForm

from ..models import Call, NumberPool, TrackingNumber
from ..numbers.phone import to_e164

PHONE_PLACEHOLDER = "+15551234567"


def invalid_number_error(value):
    return ValidationError(
        _("“%(value)s” is not a valid phone number. Use the international form, e.g. +15551234567."),
        code="invalid_phone_number",
        params={"value": value},
    )


def number_in_use_error(existing: TrackingNumber, pool: NumberPool | None = None):
    """Why ``existing`` cannot be (re)used, in words an editor can act on."""
    static_source = getattr(existing, "static_source", None) if existing.pk else None
    if existing.pool_id and (pool is None or existing.pool_id != pool.pk):
        return ValidationError(
            _("%(number)s is already in the pool “%(pool)s”. Remove it from that pool first."),
            code="number_in_other_pool",
            params={"number": existing.national, "pool": existing.pool},
        )
    if static_source is not None:
        return ValidationError(
            _("%(number)s is the static number of the source “%(source)s”."),
            code="number_is_static",
            params={"number": existing.national, "source": static_source},
        )
    return ValidationError(
        _(
            "%(number)s already exists as an unused tracking number: open it under "
            "Numbers and choose this pool there."
        ),
        code="number_exists",
        params={"number": existing.national},
    )


def normalise_number(value: str) -> str:
    value = (value or "").strip()
    if not value:
        return value
    e164 = to_e164(value)
    if e164 is None:
        raise invalid_number_error(value)
    return e164


def find_number(e164: str, exclude_pk=None) -> TrackingNumber | None:
    queryset = TrackingNumber.objects.select_related("pool", "static_source").filter(number=e164)
    if exclude_pk:
        queryset = queryset.exclude(pk=exclude_pk)
    return queryset.first()


# --- tracking numbers ------------------------------------------------------------------------


class TrackingNumberForm(WagtailAdminModelForm):
    def clean_number(self):
        number = normalise_number(self.cleaned_data.get("number", ""))
        existing = find_number(number, exclude_pk=self.instance.pk)
        if existing is not None:
            raise ValidationError(
                _("%(number)s is already a tracking number."),
                code="duplicate_number",
                params={"number": existing.national},
            )
        return number

    def clean_forward_to(self):
        return normalise_number(self.cleaned_data.get("forward_to", ""))

    # A static number put into a pool, or a pool of another site, is refused by
    # TrackingNumber.clean() with a field error.


# --- sources ---------------------------------------------------------------------------------


class SourceForm(WagtailAdminModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "static_number" in self.fields:
            # Only numbers that are neither in a pool nor another source's static number.
            available = TrackingNumber.objects.filter(
                pool__isnull=True, static_source__isnull=True, active=True
            )
            if self.instance.static_number_id:
                available = available | TrackingNumber.objects.filter(
                    pk=self.instance.static_number_id
                )
            self.fields["static_number"].queryset = available.order_by("number")
            self.fields["static_number"].help_text = _(
                "For offline sources (newspaper, billboard…): a number not used anywhere else. "
                "Add new numbers under Call tracking › Numbers."
            )

    def clean_forward_to(self):
        return normalise_number(self.cleaned_data.get("forward_to", ""))

    def clean(self):
        cleaned_data = super().clean()
        static_number = cleaned_data.get("static_number")
        pool = cleaned_data.get("pool")
        if not static_number and not pool:
            raise ValidationError(
                _(
                    "A source needs a number: choose a static number for an offline source, "
                    "or a number pool for online traffic."
                ),
                code="source_without_number",
            )
        if static_number and pool:
            raise ValidationError(
                _("Choose either a static number or a number pool for this source, not both."),
                code="source_with_both",
            )
        return cleaned_data

    def _update_errors(self, errors):
        # The model repeats the "exactly one number" rule in its own words: keep only ours.
        own = ("source_without_number", "source_with_both")
        if any(self.has_error(NON_FIELD_ERRORS, code) for code in own) and hasattr(
            errors, "error_dict"
        ):
            errors.error_dict.pop(NON_FIELD_ERRORS, None)
            if not errors.error_dict:
                return
        super()._update_errors(errors)


# --- pools with their numbers inline ----------------------------------------------------------


class PoolNumberForm(forms.ModelForm):
    class Meta:
        model = TrackingNumber
        fields = ["number", "label", "provider", "forward_to", "active"]
        widgets = {
            "number": forms.TextInput(attrs={"placeholder": PHONE_PLACEHOLDER, "size": 16}),
            "label": forms.TextInput(attrs={"size": 16}),
            "provider": forms.TextInput(attrs={"size": 8}),
            "forward_to": forms.TextInput(attrs={"placeholder": _("(the pool's)"), "size": 16}),
        }

    def clean_number(self):
        number = normalise_number(self.cleaned_data.get("number", ""))
        existing = find_number(number, exclude_pk=self.instance.pk)
        if existing is not None:
            raise number_in_use_error(existing, pool=self.instance.pool if self.instance.pool_id else None)
        return number

    def clean_forward_to(self):
        return normalise_number(self.cleaned_data.get("forward_to", ""))


class BasePoolNumberFormSet(BaseInlineFormSet):
    """The pool's numbers. "Remove" takes a number out of the pool (kept, with its lease
    history, so late calls are still attributed) instead of deleting it."""

    def clean(self):
        # Before Django's own unique check, so the editor reads which row repeats a number
        # (rows are compared in E.164, whatever their formatting).
        seen = set()
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or self._should_delete_form(form):
                continue
            number = form.cleaned_data.get("number")
            if number and number in seen:
                form.add_error("number", _("This number appears twice in the pool."))
            seen.add(number)
        super().clean()

    @property
    def kept_numbers(self):
        return [
            form.cleaned_data["number"]
            for form in self.forms
            if hasattr(form, "cleaned_data")
            and form.cleaned_data.get("number")
            and not self._should_delete_form(form)
        ]

    def delete_existing(self, obj, commit=True):
        if commit:
            obj.pool = None
            obj.save(update_fields=["pool"])


PoolNumberFormSet = inlineformset_factory(
    NumberPool,
    TrackingNumber,
    form=PoolNumberForm,
    formset=BasePoolNumberFormSet,
    fk_name="pool",
    extra=0,
    can_delete=True,
)

_BULK_LINE = re.compile(r"^\s*(?P<number>[+\d][\d\s().\-]*\d)\s*(?:[,;\t]\s*(?P<label>.*))?$")


class NumberPoolForm(WagtailAdminModelForm):
    """The pool and its numbers (inline rows plus a box to paste many numbers at once)."""

    bulk_numbers = forms.CharField(
        label=_("Add several numbers"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "+15551234567, Pool 1\n+15551234568"}),
        help_text=_("One number per line, optionally followed by a comma and a label."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.numbers_formset = PoolNumberFormSet(
            self.data if self.is_bound else None,
            instance=self.instance,
            prefix="numbers",
            queryset=TrackingNumber.objects.filter(pool=self.instance).order_by("number")
            if self.instance.pk
            else TrackingNumber.objects.none(),
        )
        if not self.instance.pk and not self.is_bound:
            # A new pool starts with one empty row.
            self.numbers_formset.extra = 1
        if "fallback_number" in self.fields:
            # The overflow number is a tracked number outside every pool.
            candidates = TrackingNumber.objects.filter(active=True, pool__isnull=True)
            if self.instance.fallback_number_id:
                candidates = candidates | TrackingNumber.objects.filter(
                    pk=self.instance.fallback_number_id
                )
            self.fields["fallback_number"].queryset = candidates.order_by("number")

    def clean_forward_to(self):
        return normalise_number(self.cleaned_data.get("forward_to", ""))

    def clean_bulk_numbers(self):
        entries = []
        errors = []
        for line_number, line in enumerate(self.cleaned_data.get("bulk_numbers", "").splitlines(), 1):
            if not line.strip():
                continue
            match = _BULK_LINE.match(line)
            e164 = to_e164(match.group("number")) if match else None
            if e164 is None:
                errors.append(
                    ValidationError(
                        _("Line %(line)s: “%(value)s” is not a valid phone number."),
                        code="invalid_phone_number",
                        params={"line": line_number, "value": line.strip()[:40]},
                    )
                )
                continue
            existing = find_number(e164)
            in_this_pool = (
                existing is not None and self.instance.pk and existing.pool_id == self.instance.pk
            )
            if existing is not None and not in_this_pool:
                errors.append(number_in_use_error(existing))
                continue
            if in_this_pool:
                errors.append(
                    ValidationError(
                        _("%(number)s is already in this pool."),
                        code="number_in_this_pool",
                        params={"number": existing.national},
                    )
                )
                continue
            entries.append((e164, (match.group("label") or "").strip()[:255]))
        if errors:
            raise ValidationError(errors)
        return entries

    @property
    def media(self):
        return super().media + self.numbers_formset.media

    def is_valid(self):
        form_valid = super().is_valid()
        formset_valid = self.numbers_formset.is_valid()
        if form_valid and formset_valid:
            kept = self.numbers_formset.kept_numbers
            bulk = [number for number, _label in self.cleaned_data.get("bulk_numbers", [])]
            duplicates = sorted(set(kept) & set(bulk)) + sorted(
                {n for n in bulk if bulk.count(n) > 1}
            )
            if duplicates:
                self.add_error(
                    "bulk_numbers",
                    _("Listed twice: %(numbers)s") % {"numbers": ", ".join(duplicates)},
                )
            elif not kept and not bulk:
                self.add_error(
                    None,
                    ValidationError(
                        _("A pool needs at least one number: add its tracking numbers below."),
                        code="pool_without_numbers",
                    ),
                )
        return form_valid and formset_valid and not self.errors

    def has_changed(self):
        return super().has_changed() or self.numbers_formset.has_changed()

    def save(self, commit=True):
        with transaction.atomic():
            pool = super().save(commit=commit)
            if commit:
                self.save_numbers(pool)
        return pool

    def save_numbers(self, pool):
        self.numbers_formset.instance = pool
        for number in self.numbers_formset.save(commit=False):
            number.pool = pool
            if not number.site_id:
                number.site = pool.site
            number.save()
        for form in self.numbers_formset.deleted_forms:
            if form.instance.pk:
                self.numbers_formset.delete_existing(form.instance)
        for e164, label in self.cleaned_data.get("bulk_numbers", []):
            TrackingNumber.objects.create(
                number=e164, label=label, pool=pool, site=pool.site
            )


# --- classifying calls -----------------------------------------------------------------------


class CallTagForm(forms.ModelForm):
    class Meta:
        model = Call
        fields = ["tag", "value", "note"]
        widgets = {"note": forms.Textarea(attrs={"rows": 3})}
        labels = {"tag": _("Classification")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tag"].choices = [("", _("Not classified")), *self.fields["tag"].choices[1:]]
        self.fields["value"].min_value = 0
        self.fields["value"].widget.attrs["min"] = "0"

    def clean_value(self):
        value = self.cleaned_data.get("value")
        if value is not None and value < 0:
            raise ValidationError(_("The value cannot be negative."), code="negative_value")
        return value

    def save(self, commit=True):
        call = super().save(commit=False)
        if commit:
            call.save(update_fields=["tag", "value", "note", "updated_at"])
        return call
