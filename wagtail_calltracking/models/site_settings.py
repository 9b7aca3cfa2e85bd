"""Per-site settings editors change in the Wagtail admin (Settings › Call tracking)."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from wagtail.contrib.settings.models import BaseSiteSetting

from ..numbers.phone import clean_phone_field, format_number, validate_phone_number


class DisplayFormat(models.TextChoices):
    NATIONAL = "national", _("National, e.g. (555) 123-4567")
    INTERNATIONAL = "international", _("International, e.g. +1 555-123-4567")


class CallTrackingSiteSettings(BaseSiteSetting):
    canonical_number = models.CharField(
        _("canonical number"),
        max_length=32,
        blank=True,
        validators=[validate_phone_number],
        help_text=_(
            "The business's main number: shown when no tracking number applies, in cached "
            "pages and in schema.org markup (keeps NAP / local SEO consistent)."
        ),
    )
    fallback_forward_to = models.CharField(
        _("fallback forwarding destination"),
        max_length=32,
        blank=True,
        validators=[validate_phone_number],
        help_text=_(
            "Where calls ring when neither the number, its source nor its pool names a "
            "destination, and whenever processing a call fails (callers are never dropped)."
        ),
    )
    display_format = models.CharField(
        _("display format"),
        max_length=20,
        choices=DisplayFormat.choices,
        default=DisplayFormat.NATIONAL,
    )
    default_hold_minutes = models.PositiveIntegerField(
        _("default hold time (minutes)"),
        default=20,
        validators=[MinValueValidator(2)],
        help_text=_("Hold time for new pools: how long a visitor keeps a number after leaving."),
    )
    cache_safe_mode = models.BooleanField(
        _("cache-safe mode"),
        default=False,
        help_text=_(
            "For sites behind a CDN or page cache: pages carry the canonical number and a "
            "small script asks for the visitor's number."
        ),
    )
    ring_timeout = models.PositiveIntegerField(
        _("ring timeout (seconds)"),
        default=25,
        validators=[MinValueValidator(5), MaxValueValidator(120)],
    )
    record_calls = models.BooleanField(_("record calls"), default=False)
    recording_announcement = models.CharField(
        _("recording announcement"),
        max_length=255,
        blank=True,
        default="This call may be recorded for quality purposes.",
        help_text=_("Played to the caller before connecting when recording is on."),
    )
    whisper = models.BooleanField(
        _("whisper the source"),
        default=False,
        help_text=_("Tell the answering manager where the call came from before connecting."),
    )
    whisper_template = models.CharField(
        _("whisper message"), max_length=255, default="Call from {source}."
    )
    pass_caller_id = models.BooleanField(
        _("pass the caller's number through"),
        default=True,
        help_text=_("Managers see the caller's number; otherwise they see the tracking number."),
    )

    class Meta:
        verbose_name = _("call tracking settings")

    def clean(self):
        super().clean()
        clean_phone_field(self, "canonical_number")
        clean_phone_field(self, "fallback_forward_to")

    @property
    def canonical_display(self):
        return format_number(self.canonical_number, self.display_format) if self.canonical_number else ""
