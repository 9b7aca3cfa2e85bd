"""Tracking sources, numbers, pools and leases (static, dynamic and combined tracking).

Leasing invariant: a number's live lease is ``TrackingNumber.current_lease`` while that
lease is not released and its ``last_seen_at`` is within the pool's hold time. Because
``current_lease`` is a single column on the number row, and every change to it happens under
that row's lock (``numbers.leasing``), a number can never be held by two live sessions.
``TrackingNumber.save()`` never writes the lease-state columns of an existing row, so an
editor saving a number in the admin cannot overwrite a lease taken meanwhile.
"""

import fnmatch
import re
from urllib.parse import urlsplit

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..numbers.phone import clean_phone_field, format_number, to_e164, validate_phone_number
from .choices import Channel

#: Characters allowed in a landing parameter value (it is typed on flyers and in URLs).
LANDING_VALUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*$")
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}$")


def normalize_domain(value):
    """``https://www.Yelp.com/biz/x`` → ``yelp.com`` (what referrer rules compare)."""
    value = (value or "").strip().lower()
    if "//" in value:
        value = urlsplit(value).hostname or ""
    else:
        value = value.split("/", 1)[0].split(":", 1)[0]
    value = value.strip(".")
    return value[4:] if value.startswith("www.") else value


def normalize_path(value):
    """A landing path rule: leading slash, no query string, no trailing slash (so that
    ``/paper`` matches ``/paper`` and ``/paper/...`` but not ``/papers``)."""
    value = (value or "").strip().split("?", 1)[0].split("#", 1)[0]
    if not value:
        return ""
    if not value.startswith("/"):
        value = "/" + value
    return value.rstrip("/") or "/"


def validate_patterns(value):
    """Source patterns: comma-separated alternatives with * and ? wildcards."""
    for pattern in split_patterns(value):
        try:
            re.compile(fnmatch.translate(pattern))
        except re.error:
            raise ValidationError(
                _("“%(pattern)s” is not a valid pattern."), params={"pattern": pattern}
            ) from None


def split_patterns(value):
    return [part.strip().lower() for part in (value or "").split(",") if part.strip()]


class Source(models.Model):
    """A marketing source with rules matched against a visitor's session, and either a
    static number (one number per source) or a pool (one number per session)."""

    site = models.ForeignKey(
        "wagtailcore.Site",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("site"),
        help_text=_("Leave empty to use this source on every site."),
    )
    name = models.CharField(_("name"), max_length=255)
    active = models.BooleanField(_("active"), default=True)
    priority = models.PositiveIntegerField(
        _("priority"),
        default=100,
        help_text=_("Sources are tried in ascending priority; the first that matches wins."),
    )

    # Matching rules: every filled rule must match (empty rules match anything; the landing
    # parameter and the landing path are alternatives: either one matches). A source with no
    # rule at all matches nothing: templates can still force it.
    landing_parameter = models.CharField(
        _("landing parameter value"),
        max_length=100,
        blank=True,
        help_text=_(
            "Offline campaigns: matches landing URLs carrying this value in the landing "
            "parameter, e.g. “newspaper” for /?ct=newspaper."
        ),
    )
    landing_path = models.CharField(
        _("landing path"),
        max_length=255,
        blank=True,
        help_text=_("Matches sessions whose landing path starts with this, e.g. a vanity URL /paper."),
    )
    utm_source = models.CharField(
        _("source pattern"),
        max_length=255,
        blank=True,
        validators=[validate_patterns],
        help_text=_(
            "utm_source (or detected engine) pattern, e.g. “google” or “google, bing”; * and ? "
            "wildcards, comma-separated alternatives, case-insensitive."
        ),
    )
    utm_medium = models.CharField(
        _("medium pattern"),
        max_length=255,
        blank=True,
        validators=[validate_patterns],
        help_text=_("utm_medium pattern, e.g. “cpc, ppc, paid*”."),
    )
    utm_campaign = models.CharField(
        _("campaign pattern"),
        max_length=255,
        blank=True,
        validators=[validate_patterns],
        help_text=_("utm_campaign pattern, e.g. “spring-*”."),
    )
    channel = models.CharField(
        _("channel"),
        max_length=20,
        choices=Channel.choices,
        blank=True,
        help_text=_("Matches sessions of this channel only."),
    )
    referrer_domain = models.CharField(
        _("referrer domain"),
        max_length=255,
        blank=True,
        help_text=_("Matches referrers on this domain or its subdomains, e.g. yelp.com."),
    )

    # What the visitor sees: exactly one of the two.
    static_number = models.OneToOneField(
        "wagtail_calltracking.TrackingNumber",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="static_source",
        verbose_name=_("static number"),
    )
    pool = models.ForeignKey(
        "wagtail_calltracking.NumberPool",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="sources",
        verbose_name=_("number pool"),
    )

    forward_to = models.CharField(
        _("forward calls to"),
        max_length=32,
        blank=True,
        validators=[validate_phone_number],
        help_text=_("Overrides the number's and the site's forwarding destination."),
    )
    report_channel = models.CharField(
        _("reporting channel"),
        max_length=20,
        choices=Channel.choices,
        blank=True,
        help_text=_("Channel reported for calls to this source's static number (default: offline)."),
    )
    value = models.DecimalField(
        _("conversion value"), max_digits=12, decimal_places=2, null=True, blank=True
    )
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    RULE_FIELDS = (
        "landing_parameter",
        "landing_path",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "channel",
        "referrer_domain",
    )

    class Meta:
        verbose_name = _("tracking source")
        verbose_name_plural = _("tracking sources")
        ordering = ["priority", "name"]

    def __str__(self):
        return self.name

    @property
    def is_static(self):
        return self.static_number_id is not None

    @property
    def has_rules(self):
        return any(getattr(self, field) for field in self.RULE_FIELDS)

    @property
    def call_channel(self):
        return self.report_channel or self.channel or Channel.OFFLINE

    @property
    def has_landing_rule(self):
        """Offline-campaign rules (landing parameter or vanity path) win over other rules."""
        return bool(self.landing_parameter or self.landing_path)

    def clean(self):
        super().clean()
        clean_phone_field(self, "forward_to")
        errors = {}
        self.landing_parameter = (self.landing_parameter or "").strip()
        if self.landing_parameter and not LANDING_VALUE_RE.match(self.landing_parameter):
            errors["landing_parameter"] = _(
                "Use letters, digits, “-”, “_”, “.” or “~” only (it is typed in a URL)."
            )
        self.landing_path = normalize_path(self.landing_path)
        if self.landing_path == "/":
            errors["landing_path"] = _(
                "“/” would match every visitor; use a vanity path such as /paper."
            )
        if self.referrer_domain:
            self.referrer_domain = normalize_domain(self.referrer_domain)
            if not _DOMAIN_RE.match(self.referrer_domain):
                errors["referrer_domain"] = _("Enter a domain such as yelp.com.")
        if bool(self.static_number_id) == bool(self.pool_id):
            errors[NON_FIELD_ERRORS] = _(
                "Choose either a static number or a number pool for this source (exactly one)."
            )
        elif self.static_number_id:
            number = self.static_number
            if number.pool_id:
                errors["static_number"] = _(
                    "This number belongs to the pool “%(pool)s”; a static number cannot be "
                    "in a pool."
                ) % {"pool": number.pool}
            elif not number.active:
                errors["static_number"] = _("This number is inactive.")
            elif self.site_id and number.site_id and number.site_id != self.site_id:
                errors["static_number"] = _("This number belongs to another site.")
        elif self.pool_id and self.site_id and self.pool.site_id and self.pool.site_id != self.site_id:
            errors["pool"] = _("This pool belongs to another site.")
        if self.landing_parameter and self.active and "landing_parameter" not in errors:
            clash = Source.objects.filter(
                active=True, landing_parameter__iexact=self.landing_parameter
            ).exclude(pk=self.pk)
            if self.site_id:
                clash = clash.filter(models.Q(site_id=self.site_id) | models.Q(site__isnull=True))
            clash = clash.first()
            if clash is not None:
                errors["landing_parameter"] = _(
                    "The source “%(source)s” already uses this landing parameter."
                ) % {"source": clash}
        if self.currency:
            self.currency = self.currency.upper()
        if errors:
            raise ValidationError(errors)


class ExhaustionPolicy(models.TextChoices):
    FALLBACK = "fallback", _("Show the fallback number")
    REUSE_OLDEST = "reuse_oldest", _("Reuse the least recently active number (call flagged ambiguous)")


class PoolAudience(models.TextChoices):
    SOURCES = "sources", _("Only the sources that use this pool")
    NON_DIRECT = "non_direct", _("All visitors except direct traffic")
    ALL = "all", _("All website visitors")


class NumberPool(models.Model):
    """Numbers leased one per visitor session (dynamic number insertion)."""

    site = models.ForeignKey(
        "wagtailcore.Site",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("site"),
    )
    name = models.CharField(_("name"), max_length=255)
    active = models.BooleanField(_("active"), default=True)
    audience = models.CharField(
        _("serves"),
        max_length=20,
        choices=PoolAudience.choices,
        default=PoolAudience.SOURCES,
        help_text=_("Which sessions get a number from this pool when no source rule applies."),
    )
    hold_minutes = models.PositiveIntegerField(
        _("hold time (minutes)"),
        default=20,
        validators=[MinValueValidator(2), MaxValueValidator(24 * 60)],
        help_text=_("How long a number stays with a visitor after their last activity."),
    )
    cooldown_minutes = models.PositiveIntegerField(
        _("cool-down (minutes)"),
        default=10,
        validators=[MaxValueValidator(24 * 60)],
        help_text=_(
            "How long a released number rests before another visitor gets it, so that a "
            "late call still reaches the right visitor's history."
        ),
    )
    exhaustion_policy = models.CharField(
        _("when every number is in use"),
        max_length=20,
        choices=ExhaustionPolicy.choices,
        default=ExhaustionPolicy.FALLBACK,
    )
    fallback_number = models.ForeignKey(
        "wagtail_calltracking.TrackingNumber",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("overflow number"),
        help_text=_("Shown when the pool is exhausted; empty = the site's canonical number."),
    )
    forward_to = models.CharField(
        _("forward calls to"), max_length=32, blank=True, validators=[validate_phone_number]
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("number pool")
        verbose_name_plural = _("number pools")
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        super().clean()
        clean_phone_field(self, "forward_to")
        if self.fallback_number_id:
            fallback = self.fallback_number
            if self.pk and fallback.pool_id == self.pk:
                raise ValidationError(
                    {"fallback_number": _("The overflow number must not be one of the pool's numbers.")}
                )
            if fallback.pool_id:
                raise ValidationError(
                    {"fallback_number": _("The overflow number must not belong to a pool.")}
                )
            if not fallback.active:
                raise ValidationError({"fallback_number": _("This number is inactive.")})


class TrackingNumber(models.Model):
    number = models.CharField(
        _("number"),
        max_length=32,
        unique=True,
        validators=[validate_phone_number],
        help_text=_("The tracking number in international form, e.g. +15551234567."),
    )
    label = models.CharField(_("label"), max_length=255, blank=True)
    site = models.ForeignKey(
        "wagtailcore.Site",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("site"),
    )
    provider = models.CharField(
        _("telephony provider"),
        max_length=32,
        blank=True,
        help_text=_("The provider that routes this number (twilio, vonage, plivo, telnyx, generic, demo)."),
    )
    pool = models.ForeignKey(
        NumberPool,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="numbers",
        verbose_name=_("pool"),
    )
    forward_to = models.CharField(
        _("forward calls to"),
        max_length=32,
        blank=True,
        validators=[validate_phone_number],
        help_text=_("The business line that rings; empty = the source's, pool's or site's."),
    )
    active = models.BooleanField(_("active"), default=True)

    # Lease state, changed only under this row's lock (see numbers.leasing).
    current_lease = models.OneToOneField(
        "wagtail_calltracking.Lease",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    idle_since = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("tracking number")
        verbose_name_plural = _("tracking numbers")
        ordering = ["number"]
        indexes = [models.Index(fields=["pool", "active"], name="ct_number_pool_idx")]

    def __str__(self):
        return f"{self.national} ({self.label})" if self.label else self.national

    def save(self, *args, **kwargs):
        # Numbers created in code (demo data, imports) are stored in E.164 like the admin's.
        e164 = to_e164(self.number)
        if e164:
            self.number = e164
        if self.pool_id and not self.site_id:
            self.site_id = self.pool.site_id
        if (
            not self._state.adding
            and self.pk is not None
            and kwargs.get("update_fields") is None
            and not kwargs.get("force_insert")
        ):
            # Never write lease state from a possibly stale instance (an admin form loaded
            # minutes ago): leasing changes those columns under the row lock.
            kwargs["update_fields"] = [
                field.name
                for field in self._meta.concrete_fields
                if not field.primary_key and field.name not in self.LEASE_STATE_FIELDS
            ]
        return super().save(*args, **kwargs)

    #: Columns owned by ``numbers.leasing`` (changed only under the row lock).
    LEASE_STATE_FIELDS = ("current_lease", "idle_since")

    @property
    def national(self):
        return format_number(self.number, "national")

    @property
    def international(self):
        return format_number(self.number, "international")

    def display(self, style="national"):
        return format_number(self.number, style)

    def clean(self):
        super().clean()
        clean_phone_field(self, "number")
        clean_phone_field(self, "forward_to")
        errors = {}
        if self.pool_id:
            if self.pk and Source.objects.filter(static_number_id=self.pk).exists():
                errors["pool"] = _(
                    "This number is the static number of a source; a static number cannot be "
                    "in a pool."
                )
            elif self.site_id and self.pool.site_id and self.pool.site_id != self.site_id:
                errors["pool"] = _("This pool belongs to another site.")
        if errors:
            raise ValidationError(errors)


class LeaseReleaseReason(models.TextChoices):
    EXPIRED = "expired", _("Visitor inactive")
    RECLAIMED = "reclaimed", _("Reclaimed for another visitor (pool exhausted)")
    CALL = "call", _("Released after a call")
    DEACTIVATED = "deactivated", _("Number deactivated or removed from the pool")
    ERASED = "erased", _("Visitor data erased")


class Lease(models.Model):
    """A pool number held by a session. Kept as history after release: calls that come in
    after the visitor left are attributed through it."""

    number = models.ForeignKey(
        TrackingNumber, on_delete=models.CASCADE, related_name="leases", verbose_name=_("number")
    )
    pool = models.ForeignKey(
        NumberPool, on_delete=models.SET_NULL, null=True, related_name="leases", verbose_name=_("pool")
    )
    session = models.ForeignKey(
        "wagtail_calltracking.VisitorSession",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="leases",
        verbose_name=_("session"),
        help_text=_("Empty for a lease bound to a single page view (no consent)."),
    )
    leased_at = models.DateTimeField(_("leased at"), default=timezone.now)
    last_seen_at = models.DateTimeField(_("last seen"), default=timezone.now)
    released_at = models.DateTimeField(_("released at"), null=True, blank=True)
    release_reason = models.CharField(
        _("release reason"), max_length=20, choices=LeaseReleaseReason.choices, blank=True
    )
    #: Taken from another live session because the pool was exhausted: calls to the number
    #: around this time are ambiguous.
    reclaimed = models.BooleanField(_("reclaimed"), default=False)

    class Meta:
        verbose_name = _("lease")
        verbose_name_plural = _("leases")
        indexes = [
            models.Index(fields=["number", "leased_at"], name="ct_lease_number_idx"),
            models.Index(fields=["session", "released_at"], name="ct_lease_session_idx"),
            models.Index(fields=["pool", "leased_at"], name="ct_lease_pool_idx"),
        ]

    def __str__(self):
        return f"{self.number} → {self.session_id or 'page view'} @ {self.leased_at:%Y-%m-%d %H:%M}"


class PoolStat(models.Model):
    """Hourly rollup per pool, upserted on the leasing path (counts only)."""

    pool = models.ForeignKey(NumberPool, on_delete=models.CASCADE, related_name="stats")
    hour = models.DateTimeField()
    leases = models.PositiveIntegerField(default=0)
    exhaustions = models.PositiveIntegerField(default=0)
    peak_concurrency = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("pool statistic")
        verbose_name_plural = _("pool statistics")
        constraints = [
            models.UniqueConstraint(fields=["pool", "hour"], name="ct_poolstat_unique_hour")
        ]

    def __str__(self):
        return f"{self.pool} {self.hour:%Y-%m-%d %H}:00"
