"""Vocabularies shared by models, tracking, webhooks and reports."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    PAID_SEARCH = "paid_search", _("Paid search")
    ORGANIC_SEARCH = "organic_search", _("Organic search")
    PAID_SOCIAL = "paid_social", _("Paid social")
    ORGANIC_SOCIAL = "organic_social", _("Organic social")
    EMAIL = "email", _("Email")
    DISPLAY = "display", _("Display")
    REFERRAL = "referral", _("Referral")
    OTHER_CAMPAIGN = "other_campaign", _("Other campaign")
    OFFLINE = "offline", _("Offline")
    DIRECT = "direct", _("Direct")


class DeviceType(models.TextChoices):
    DESKTOP = "desktop", _("Desktop")
    MOBILE = "mobile", _("Mobile")
    TABLET = "tablet", _("Tablet")
    OTHER = "other", _("Other")


class CallStatus(models.TextChoices):
    """Where the call is in its life: only ever moves forward (see ``Call.STATUS_RANK``)."""

    RINGING = "ringing", _("Ringing")
    IN_PROGRESS = "in_progress", _("In progress")
    COMPLETED = "completed", _("Completed")


class CallResult(models.TextChoices):
    PENDING = "pending", _("In progress")
    ANSWERED = "answered", _("Answered")
    MISSED = "missed", _("Missed")
    BUSY = "busy", _("Busy")
    FAILED = "failed", _("Failed")
    ABANDONED = "abandoned", _("Abandoned")
    VOICEMAIL = "voicemail", _("Voicemail")


class Confidence(models.TextChoices):
    EXACT = "exact", _("Exact")
    LATE = "late", _("Late (after the visitor left)")
    AMBIGUOUS = "ambiguous", _("Ambiguous")
    SOURCE_ONLY = "source_only", _("Source only")
    UNATTRIBUTED = "unattributed", _("Unattributed")


class CallTag(models.TextChoices):
    LEAD = "lead", _("Lead")
    SPAM = "spam", _("Spam")
    EXISTING_CUSTOMER = "existing_customer", _("Existing customer")


class TouchModel(models.TextChoices):
    FIRST = "first", _("First touch")
    LAST = "last", _("Last touch")
    LAST_NON_DIRECT = "last_non_direct", _("Last non-direct touch")
