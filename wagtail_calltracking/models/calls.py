"""Calls, their attribution summary, their event history, the raw webhook log and managers."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..numbers.phone import clean_phone_field, format_number, validate_phone_number
from .choices import CallResult, CallStatus, CallTag, Confidence, TouchModel


class Manager(models.Model):
    """A person who answers calls (identified by the number or extension a call was
    forwarded to, or by the provider's agent identity)."""

    name = models.CharField(_("name"), max_length=255)
    phone = models.CharField(
        _("phone"), max_length=32, blank=True, validators=[validate_phone_number]
    )
    extension = models.CharField(_("extension or agent id"), max_length=64, blank=True)
    email = models.EmailField(_("email"), blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("admin user"),
    )
    site = models.ForeignKey(
        "wagtailcore.Site",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("site"),
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("manager")
        verbose_name_plural = _("managers")
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        super().clean()
        clean_phone_field(self, "phone")


class Call(models.Model):
    #: Lifecycle order: a status never moves backwards (late "ringing" after "completed").
    STATUS_RANK = {CallStatus.RINGING: 0, CallStatus.IN_PROGRESS: 1, CallStatus.COMPLETED: 2}

    provider = models.CharField(_("provider"), max_length=32)
    provider_call_id = models.CharField(_("provider call id"), max_length=128)
    conversation_id = models.CharField(
        _("conversation id"), max_length=128, blank=True, db_index=True
    )
    site = models.ForeignKey(
        "wagtailcore.Site",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("site"),
    )

    tracking_number = models.ForeignKey(
        "wagtail_calltracking.TrackingNumber",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="calls",
        verbose_name=_("tracking number"),
    )
    to_number = models.CharField(_("number called"), max_length=32, blank=True)
    from_number = models.CharField(_("caller"), max_length=32, blank=True, db_index=True)
    caller_name = models.CharField(_("caller name"), max_length=255, blank=True)
    caller_city = models.CharField(_("caller city"), max_length=128, blank=True)
    caller_region = models.CharField(_("caller region"), max_length=128, blank=True)
    caller_country = models.CharField(_("caller country"), max_length=8, blank=True)
    forwarded_to = models.CharField(_("forwarded to"), max_length=32, blank=True)
    manager = models.ForeignKey(
        Manager,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="calls",
        verbose_name=_("answered by"),
    )

    status = models.CharField(
        _("status"), max_length=20, choices=CallStatus.choices, default=CallStatus.RINGING
    )
    result = models.CharField(
        _("result"), max_length=20, choices=CallResult.choices, default=CallResult.PENDING
    )
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    ring_seconds = models.PositiveIntegerField(_("ring time (s)"), null=True, blank=True)
    talk_seconds = models.PositiveIntegerField(_("talk time (s)"), null=True, blank=True)
    recording_url = models.URLField(_("recording"), max_length=1024, blank=True)
    recording_duration = models.PositiveIntegerField(_("recording length (s)"), null=True, blank=True)
    #: The whole inbound call as the provider billed it (ring + talk + announcements).
    total_seconds = models.PositiveIntegerField(_("total duration (s)"), null=True, blank=True)

    # Attribution.
    source = models.ForeignKey(
        "wagtail_calltracking.Source",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="calls",
        verbose_name=_("tracking source"),
    )
    session = models.ForeignKey(
        "wagtail_calltracking.VisitorSession",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="calls",
        verbose_name=_("session"),
    )
    visitor = models.ForeignKey(
        "wagtail_calltracking.Visitor",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="calls",
        verbose_name=_("visitor"),
    )
    lease = models.ForeignKey(
        "wagtail_calltracking.Lease",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="calls",
        verbose_name=_("lease"),
    )
    confidence = models.CharField(
        _("attribution"),
        max_length=20,
        choices=Confidence.choices,
        default=Confidence.UNATTRIBUTED,
    )
    candidate_sessions = models.ManyToManyField(
        "wagtail_calltracking.VisitorSession",
        blank=True,
        related_name="+",
        verbose_name=_("candidate sessions"),
    )
    is_first_time = models.BooleanField(_("first-time caller"), default=True)
    #: When attribution ran (None: not yet, e.g. it failed and the webhook awaits replay).
    attributed_at = models.DateTimeField(_("attributed at"), null=True, blank=True, editable=False)

    # Copied from the session at attribution: conversions still work after a purge.
    gclid = models.CharField("gclid", max_length=255, blank=True)
    gbraid = models.CharField("gbraid", max_length=255, blank=True)
    wbraid = models.CharField("wbraid", max_length=255, blank=True)
    ga_client_id = models.CharField(_("GA client id"), max_length=64, blank=True)
    ga_session_ids = models.JSONField(_("GA session ids"), default=dict, blank=True)

    # Editors' classification (the only thing editable in the admin).
    tag = models.CharField(_("tag"), max_length=32, choices=CallTag.choices, blank=True)
    value = models.DecimalField(
        _("value"), max_digits=12, decimal_places=2, null=True, blank=True
    )
    note = models.TextField(_("note"), blank=True)

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("call")
        verbose_name_plural = _("calls")
        ordering = ["-started_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_call_id"], name="ct_call_unique_provider_id"
            )
        ]
        indexes = [
            models.Index(fields=["-started_at", "-id"], name="ct_call_started_idx"),
            models.Index(fields=["from_number", "started_at"], name="ct_call_caller_idx"),
            models.Index(fields=["source", "started_at"], name="ct_call_source_idx"),
            models.Index(fields=["manager", "started_at"], name="ct_call_manager_idx"),
        ]
        permissions = [
            ("tag_call", _("Can tag calls and set their value and note")),
        ]

    def __str__(self):
        return f"{self.from_number or '?'} → {self.to_number} @ {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def from_display(self):
        return format_number(self.from_number) if self.from_number.startswith("+") else self.from_number

    @property
    def to_display(self):
        return format_number(self.to_number) if self.to_number.startswith("+") else self.to_number

    @property
    def is_answered(self):
        return self.result == CallResult.ANSWERED


class CallTouch(models.Model):
    """The attribution summary of a call under one model (first / last / last non-direct
    touch). Survives the purge of sessions so reports stay right."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="touches")
    model = models.CharField(max_length=20, choices=TouchModel.choices)
    session = models.ForeignKey(
        "wagtail_calltracking.VisitorSession",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    channel = models.CharField(_("channel"), max_length=20, blank=True)
    source = models.CharField(_("source"), max_length=255, blank=True)
    medium = models.CharField(_("medium"), max_length=255, blank=True)
    campaign = models.CharField(_("campaign"), max_length=255, blank=True)
    keyword = models.CharField(_("keyword"), max_length=255, blank=True)
    landing_path = models.CharField(_("landing path"), max_length=2048, blank=True)
    referrer_domain = models.CharField(_("referrer domain"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("call attribution touch")
        verbose_name_plural = _("call attribution touches")
        constraints = [
            models.UniqueConstraint(fields=["call", "model"], name="ct_calltouch_unique_model")
        ]
        indexes = [models.Index(fields=["model", "channel"], name="ct_calltouch_channel_idx")]

    def __str__(self):
        return f"{self.call_id} {self.model}: {self.channel} {self.source}"


class CallEvent(models.Model):
    """One normalised progress event of a call (the call's timeline)."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="events")
    webhook_event = models.ForeignKey(
        "wagtail_calltracking.WebhookEvent",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="call_events",
    )
    event_type = models.CharField(_("event"), max_length=32)
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now)
    sequence = models.IntegerField(null=True, blank=True)
    leg_id = models.CharField(max_length=128, blank=True)
    #: Identity of the provider event (retries and duplicates carry the same key): an event
    #: already recorded for the call is not applied twice.
    dedupe_key = models.CharField(max_length=255, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("call event")
        verbose_name_plural = _("call events")
        ordering = ["occurred_at", "pk"]
        indexes = [models.Index(fields=["call", "occurred_at"], name="ct_callevent_call_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["call", "dedupe_key"],
                condition=~models.Q(dedupe_key=""),
                name="ct_callevent_unique_key",
            )
        ]

    def __str__(self):
        return f"{self.event_type} @ {self.occurred_at}"


class WebhookEventStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    PROCESSED = "processed", _("Processed")
    REJECTED = "rejected", _("Rejected (signature or input)")
    FAILED = "failed", _("Failed (will be replayed)")
    IGNORED = "ignored", _("Ignored")


class WebhookEvent(models.Model):
    """Every webhook request as received, stored before anything else happens."""

    provider = models.CharField(_("provider"), max_length=32)
    endpoint = models.CharField(_("endpoint"), max_length=32)
    received_at = models.DateTimeField(_("received at"), default=timezone.now, db_index=True)
    method = models.CharField(max_length=8)
    url = models.TextField(_("URL"))
    headers = models.JSONField(default=dict, blank=True)
    content_type = models.CharField(max_length=255, blank=True)
    body = models.BinaryField(blank=True, default=b"")
    signature_valid = models.BooleanField(null=True)
    status = models.CharField(
        max_length=20, choices=WebhookEventStatus.choices, default=WebhookEventStatus.RECEIVED
    )
    error = models.TextField(blank=True)
    call = models.ForeignKey(
        Call, on_delete=models.SET_NULL, null=True, blank=True, related_name="webhook_events"
    )
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        indexes = [models.Index(fields=["status", "received_at"], name="ct_webhook_status_idx")]

    def __str__(self):
        return f"{self.provider}/{self.endpoint} @ {self.received_at:%Y-%m-%d %H:%M:%S}"
