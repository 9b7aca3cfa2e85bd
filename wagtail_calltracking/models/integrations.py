"""Where calls are reported to (GA4, Google Ads, CRM / automation webhooks) and the log of
every delivery.

A ``Delivery`` is the outbox row of one (target, call, event): it is stored before anything is
sent, so a crash, a timeout or a target that is down never loses a conversion. It is unique
per (kind, target, call, event): signals that fire twice, workers that race and editors who
click twice can never deliver the same event to the same target twice after a success.
"""

import re
import secrets
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from modelcluster.fields import ParentalKey
from modelcluster.models import ClusterableModel


def generate_secret():
    return secrets.token_urlsafe(32)


def default_time_zone():
    return settings.TIME_ZONE or "UTC"


class DeliveryKind(models.TextChoices):
    GA4 = "ga4", _("Google Analytics 4")
    GOOGLE_ADS = "google_ads", _("Google Ads conversion feed")
    CRM = "crm", _("CRM / automation webhook")


class DeliveryEvent(models.TextChoices):
    CALL_STARTED = "call_started", _("Call started")
    CALL_COMPLETED = "call_completed", _("Call completed")
    CALL_TAGGED = "call_tagged", _("Call tagged")


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    RETRYING = "retrying", _("Failed, will retry")
    AWAITING_FETCH = "awaiting_fetch", _("In the feed, waiting for Google Ads")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Not sent")


#: GA4 event names: letters, digits and underscores, starting with a letter, 40 characters.
GA4_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
#: Names GA4 reserves for its own events (Measurement Protocol reference).
GA4_RESERVED_EVENT_NAMES = frozenset(
    {
        "ad_activeview",
        "ad_click",
        "ad_exposure",
        "ad_impression",
        "ad_query",
        "ad_reward",
        "adunit_exposure",
        "app_background",
        "app_clear_data",
        "app_exception",
        "app_install",
        "app_remove",
        "app_store_refund",
        "app_store_subscription_cancel",
        "app_store_subscription_convert",
        "app_store_subscription_renew",
        "app_update",
        "app_upgrade",
        "dynamic_link_app_open",
        "dynamic_link_app_update",
        "dynamic_link_first_open",
        "error",
        "first_open",
        "first_visit",
        "in_app_purchase",
        "notification_dismiss",
        "notification_foreground",
        "notification_open",
        "notification_receive",
        "os_update",
        "session_start",
        "session_start_with_rollout",
        "user_engagement",
    }
)
GA4_RESERVED_PREFIXES = ("_", "firebase_", "ga_", "google_", "gtag.")
MEASUREMENT_ID_RE = re.compile(r"^G-[A-Z0-9]{4,20}$", re.IGNORECASE)


def validate_ga4_event_name(value):
    if not GA4_NAME_RE.match(value or ""):
        raise ValidationError(_("Use up to 40 letters, digits and underscores, starting with a letter."))
    if value in GA4_RESERVED_EVENT_NAMES or value.lower().startswith(GA4_RESERVED_PREFIXES):
        raise ValidationError(_("“%(name)s” is reserved by Google Analytics.") % {"name": value})


def validate_measurement_id(value):
    if not MEASUREMENT_ID_RE.match(value or ""):
        raise ValidationError(_("A GA4 measurement id looks like G-XXXXXXXXXX."))


def validate_time_zone(value):
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            _("Unknown time zone “%(zone)s”: use an IANA name such as America/New_York.") % {"zone": value}
        )


def validate_currency(value):
    if value and not re.fullmatch(r"[A-Za-z]{3}", value):
        raise ValidationError(_("Use a three-letter ISO 4217 code such as USD or EUR."))


class CallRules(models.Model):
    """Which calls count as conversions (shared by GA4 and Google Ads)."""

    answered_only = models.BooleanField(
        _("answered calls only"), default=True, help_text=_("Missed, busy and failed calls are not sent.")
    )
    min_talk_seconds = models.PositiveIntegerField(
        _("minimum talk time (seconds)"),
        default=0,
        help_text=_("Shorter calls are not sent (0: any length)."),
    )
    first_time_only = models.BooleanField(
        _("first-time callers only"),
        default=False,
        help_text=_("Repeat callers (who called recently) are not sent."),
    )

    class Meta:
        abstract = True


class GA4Property(CallRules):
    """A GA4 web data stream that receives one event per qualifying call."""

    site = models.ForeignKey(
        "wagtailcore.Site",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("site"),
        help_text=_("Leave empty to send calls of every site."),
    )
    name = models.CharField(_("name"), max_length=255, blank=True)
    active = models.BooleanField(_("active"), default=True)
    measurement_id = models.CharField(
        _("measurement id"),
        max_length=32,
        validators=[validate_measurement_id],
        help_text=_("Admin › Data streams › your web stream, e.g. G-ABC123XYZ."),
    )
    api_secret = models.CharField(
        _("Measurement Protocol API secret"),
        max_length=255,
        help_text=_("Admin › Data streams › Measurement Protocol API secrets."),
    )
    event_name = models.CharField(
        _("event name"),
        max_length=40,
        default="phone_call",
        validators=[validate_ga4_event_name],
        help_text=_("Mark this event as a key event in GA4 to count calls as conversions."),
    )
    send_without_client_id = models.BooleanField(
        _("send calls without a GA client id"),
        default=False,
        help_text=_(
            "Calls to static numbers (or from visitors whose _ga cookie was not seen) have no "
            "GA client id. When on, they are sent with a pseudonymous id derived from the call, "
            "so GA4 counts every call; they are not tied to a website session."
        ),
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("GA4 property")
        verbose_name_plural = _("GA4 properties")
        ordering = ["name", "measurement_id"]

    def __str__(self):
        return f"{self.name} ({self.measurement_id})" if self.name else self.measurement_id

    def clean(self):
        super().clean()
        if self.measurement_id:
            self.measurement_id = self.measurement_id.strip().upper()
        clash = GA4Property.objects.filter(site=self.site, measurement_id=self.measurement_id)
        if self.measurement_id and clash.exclude(pk=self.pk).exists():
            raise ValidationError({"measurement_id": _("This measurement id is already set up for this site.")})


class GoogleAdsFeed(ClusterableModel, CallRules):
    """A CSV of click conversions that Google Ads fetches on a schedule (Conversions ›
    Uploads › Schedules), in Google's "conversions from clicks" template."""

    site = models.ForeignKey(
        "wagtailcore.Site",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("site"),
        help_text=_("Leave empty to include calls of every site."),
    )
    name = models.CharField(_("name"), max_length=255, default="Google Ads phone calls")
    active = models.BooleanField(_("active"), default=True)
    feed_token = models.CharField(
        _("feed token"),
        max_length=64,
        unique=True,
        default=generate_secret,
        help_text=_("The secret in the feed URL (and the password for HTTP basic auth)."),
    )
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        default=default_time_zone,
        validators=[validate_time_zone],
        help_text=_("Conversion times are written in this zone (the feed's TimeZone line)."),
    )
    conversion_name = models.CharField(
        _("conversion name"),
        max_length=100,
        default="Phone call",
        help_text=_("Must match exactly a conversion action of type Import › Conversions from clicks."),
    )
    default_value = models.DecimalField(
        _("default conversion value"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("Used when neither the call, its source rule nor its source has a value."),
    )
    #: Google's own call conversions count calls of 60 seconds or more by default.
    min_talk_seconds = models.PositiveIntegerField(
        _("minimum talk time (seconds)"),
        default=60,
        help_text=_("Shorter calls are not sent (0: any length)."),
    )
    default_currency = models.CharField(_("default currency"), max_length=3, blank=True, validators=[validate_currency])
    window_days = models.PositiveIntegerField(
        _("days of conversions in the feed"),
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(90)],
        help_text=_(
            "Each fetch lists the conversions of this many days; Google Ads ignores rows it has "
            "already imported. Google accepts clicks up to 90 days old."
        ),
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_fetched_at = models.DateTimeField(_("last fetched by Google Ads"), null=True, editable=False)

    class Meta:
        verbose_name = _("Google Ads conversion feed")
        verbose_name_plural = _("Google Ads conversion feeds")
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def basic_auth_username(self):
        return f"feed{self.pk}"

    def clean(self):
        super().clean()
        if self.default_currency:
            self.default_currency = self.default_currency.upper()

    def regenerate_token(self):
        self.feed_token = generate_secret()
        self.save(update_fields=["feed_token"])


class GoogleAdsSourceRule(models.Model):
    """Per-source overrides for a feed: a different conversion action, threshold or value."""

    feed = ParentalKey(GoogleAdsFeed, on_delete=models.CASCADE, related_name="source_rules")
    source = models.ForeignKey(
        "wagtail_calltracking.Source",
        on_delete=models.CASCADE,
        related_name="google_ads_rules",
        verbose_name=_("tracking source"),
    )
    include = models.BooleanField(_("send this source's calls"), default=True, help_text=_("Off: never in the feed."))
    conversion_name = models.CharField(
        _("conversion name"), max_length=100, blank=True, help_text=_("Empty: the feed's.")
    )
    min_talk_seconds = models.PositiveIntegerField(
        _("minimum talk time (seconds)"), null=True, blank=True, help_text=_("Empty: the feed's.")
    )
    value = models.DecimalField(
        _("conversion value"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("Empty: the source's value, else the feed's default."),
    )

    class Meta:
        verbose_name = _("source rule")
        verbose_name_plural = _("source rules")
        constraints = [models.UniqueConstraint(fields=["feed", "source"], name="ct_adsrule_unique_source")]

    def __str__(self):
        return f"{self.feed}: {self.source}"


class CRMEndpoint(models.Model):
    """An HTTPS endpoint (CRM, Zapier / Make / n8n hook, own system) that receives signed JSON
    for the call events it subscribes to."""

    site = models.ForeignKey(
        "wagtailcore.Site",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("site"),
        help_text=_("Leave empty to send calls of every site."),
    )
    name = models.CharField(_("name"), max_length=255)
    url = models.URLField(
        _("URL"),
        max_length=1024,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text=_("Receives a POST with a JSON body for each subscribed event."),
    )
    secret = models.CharField(
        _("signing secret"),
        max_length=255,
        default=generate_secret,
        help_text=_(
            "Each request carries X-CallTracking-Signature: v1=HMAC-SHA256 of "
            "“timestamp.body” with this secret (see the documentation)."
        ),
    )
    on_call_started = models.BooleanField(_("call started"), default=False)
    on_call_completed = models.BooleanField(_("call completed"), default=True)
    on_call_tagged = models.BooleanField(_("call tagged"), default=False)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    EVENT_FIELDS = {
        DeliveryEvent.CALL_STARTED: "on_call_started",
        DeliveryEvent.CALL_COMPLETED: "on_call_completed",
        DeliveryEvent.CALL_TAGGED: "on_call_tagged",
    }

    class Meta:
        verbose_name = _("CRM webhook")
        verbose_name_plural = _("CRM webhooks")
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def events(self):
        return [event for event, field in self.EVENT_FIELDS.items() if getattr(self, field)]

    def clean(self):
        super().clean()
        if self.active and not self.events:
            raise ValidationError(_("Choose at least one event to send."))


class Delivery(models.Model):
    """One event of one call for one target: the outbox row and its delivery log."""

    kind = models.CharField(_("integration"), max_length=20, choices=DeliveryKind.choices)
    #: Primary key of the GA4Property / GoogleAdsFeed / CRMEndpoint (by ``kind``); not a
    #: foreign key so the log outlives a deleted target.
    target_id = models.PositiveBigIntegerField(_("target id"))
    target_name = models.CharField(_("target"), max_length=255, blank=True)
    call = models.ForeignKey(
        "wagtail_calltracking.Call",
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("call"),
    )
    event = models.CharField(_("event"), max_length=20, choices=DeliveryEvent.choices)
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    #: A worker holds the row until this time while it sends (a crashed worker's claim expires).
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_attempt_at = models.DateTimeField(_("last attempt"), null=True, blank=True)
    last_status_code = models.PositiveIntegerField(_("last HTTP status"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    last_response = models.TextField(_("last response"), blank=True)
    skip_reason = models.CharField(_("reason not sent"), max_length=255, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    #: Statuses a worker may pick up.
    SENDABLE = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
    #: Statuses an editor may re-send from the admin.
    RESENDABLE = (
        DeliveryStatus.FAILED,
        DeliveryStatus.RETRYING,
        DeliveryStatus.SKIPPED,
        DeliveryStatus.PENDING,
    )

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "target_id", "call", "event"], name="ct_delivery_unique_event")
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="ct_delivery_due_idx"),
            models.Index(fields=["kind", "target_id", "status"], name="ct_delivery_target_idx"),
        ]
        permissions = [("resend_delivery", _("Can re-send deliveries"))]

    def __str__(self):
        return f"{self.get_kind_display()} · {self.target_name} · {self.get_event_display()}"

    @property
    def is_erased(self):
        from ..privacy import ERASED_MARK

        return self.skip_reason == ERASED_MARK

    @property
    def is_resendable(self):
        """Failed, retrying, skipped or pending — never delivered (no duplicates), and never
        a delivery whose personal data was erased."""
        return self.status in self.RESENDABLE and not self.is_erased

    @classmethod
    def resendable(cls, queryset=None):
        from ..privacy import ERASED_MARK

        queryset = cls.objects.all() if queryset is None else queryset
        return queryset.filter(status__in=cls.RESENDABLE).exclude(skip_reason=ERASED_MARK)
