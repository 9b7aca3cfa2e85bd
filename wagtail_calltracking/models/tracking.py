"""Visitors, their sessions (visits) and page views: the journey a call is attributed to."""

import uuid

import swapper
from django.db import models
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from .choices import Channel, DeviceType

PAGE_MODEL = swapper.get_model_name("wagtailcore", "Page")


class Visitor(models.Model):
    """A browser, identified by the signed first-party visitor cookie.

    A visitor's sessions are its touches (the multi-channel sequence)."""

    key = models.UUIDField(_("visitor id"), default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(_("first seen"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("visitor")
        verbose_name_plural = _("visitors")
        # Granted in Wagtail's group editor (Visitor › custom permissions); see docs/privacy.md.
        permissions = [
            ("erase_personal_data", _("Can erase a visitor's or caller's personal data")),
        ]

    def __str__(self):
        return str(self.key)

    def touches(self, until=None):
        """Sessions in chronological order, optionally only those started before ``until``."""
        sessions = self.sessions.order_by("started_at", "pk")
        if until is not None:
            sessions = sessions.filter(started_at__lte=until)
        return sessions

    @cached_property
    def first_touch(self):
        return self.touches().first()

    @cached_property
    def last_touch(self):
        return self.touches().last()

    @cached_property
    def last_non_direct_touch(self):
        """The latest session with a known source; a direct visit never overwrites a
        campaign (GA's rule). Falls back to the last touch when every visit was direct."""
        return (
            self.touches().exclude(channel=Channel.DIRECT).last() or self.last_touch
        )


class VisitorSession(models.Model):
    """One visit: from the landing page until ``SESSION_TIMEOUT_MINUTES`` of inactivity or
    the arrival of new campaign parameters."""

    visitor = models.ForeignKey(
        Visitor, on_delete=models.CASCADE, related_name="sessions", verbose_name=_("visitor")
    )
    site = models.ForeignKey(
        "wagtailcore.Site",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("site"),
    )
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    last_activity_at = models.DateTimeField(_("last activity"), default=timezone.now)

    # Source of the visit.
    channel = models.CharField(
        _("channel"), max_length=20, choices=Channel.choices, default=Channel.DIRECT
    )
    source = models.CharField(_("source"), max_length=255, blank=True)
    medium = models.CharField(_("medium"), max_length=255, blank=True)
    campaign = models.CharField(_("campaign"), max_length=255, blank=True)
    term = models.CharField(_("utm_term"), max_length=255, blank=True)
    content = models.CharField(_("utm_content"), max_length=255, blank=True)
    keyword = models.CharField(_("search keyword"), max_length=255, blank=True)
    referrer = models.CharField(_("referrer"), max_length=2048, blank=True)
    referrer_domain = models.CharField(_("referrer domain"), max_length=255, blank=True)
    landing_path = models.CharField(_("landing path"), max_length=2048, blank=True)
    landing_query = models.CharField(_("landing query string"), max_length=2048, blank=True)
    landing_page = models.ForeignKey(
        PAGE_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("landing page"),
    )
    #: The configured tracking source whose rules matched this session when it started.
    matched_source = models.ForeignKey(
        "wagtail_calltracking.Source",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="sessions",
        verbose_name=_("matched tracking source"),
    )

    # Advertising click ids.
    gclid = models.CharField("gclid", max_length=255, blank=True)
    gbraid = models.CharField("gbraid", max_length=255, blank=True)
    wbraid = models.CharField("wbraid", max_length=255, blank=True)
    fbclid = models.CharField("fbclid", max_length=255, blank=True)
    msclkid = models.CharField("msclkid", max_length=255, blank=True)
    yclid = models.CharField("yclid", max_length=255, blank=True)
    ttclid = models.CharField("ttclid", max_length=255, blank=True)
    li_fat_id = models.CharField("li_fat_id", max_length=255, blank=True)

    # Google Analytics ids from the _ga / _ga_<id> cookies, for GA4 conversions.
    ga_client_id = models.CharField(_("GA client id"), max_length=64, blank=True)
    ga_session_ids = models.JSONField(
        _("GA session ids"), default=dict, blank=True, help_text=_("Measurement id → session id")
    )

    # The browser, parsed once per session.
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=512, blank=True)
    browser = models.CharField(_("browser"), max_length=64, blank=True)
    browser_version = models.CharField(_("browser version"), max_length=32, blank=True)
    os = models.CharField(_("operating system"), max_length=64, blank=True)
    os_version = models.CharField(_("OS version"), max_length=32, blank=True)
    device_type = models.CharField(
        _("device"), max_length=10, choices=DeviceType.choices, default=DeviceType.OTHER
    )
    is_bot = models.BooleanField(_("bot"), default=False)
    country = models.CharField(_("country"), max_length=2, blank=True)
    region = models.CharField(_("region"), max_length=128, blank=True)
    city = models.CharField(_("city"), max_length=128, blank=True)

    CLICK_ID_FIELDS = ("gclid", "gbraid", "wbraid", "fbclid", "msclkid", "yclid", "ttclid", "li_fat_id")

    class Meta:
        verbose_name = _("visitor session")
        verbose_name_plural = _("visitor sessions")
        indexes = [
            models.Index(fields=["visitor", "started_at"], name="ct_session_visitor_idx"),
            models.Index(fields=["started_at"], name="ct_session_started_idx"),
            models.Index(fields=["site", "started_at"], name="ct_session_site_idx"),
        ]

    def __str__(self):
        return f"{self.get_channel_display()} · {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def click_ids(self):
        return {name: getattr(self, name) for name in self.CLICK_ID_FIELDS if getattr(self, name)}

    @property
    def source_medium(self):
        if self.source or self.medium:
            return f"{self.source or '(none)'} / {self.medium or '(none)'}"
        return ""


class PageView(models.Model):
    session = models.ForeignKey(
        VisitorSession,
        on_delete=models.CASCADE,
        related_name="page_views",
        verbose_name=_("session"),
    )
    viewed_at = models.DateTimeField(_("viewed at"), default=timezone.now)
    path = models.CharField(_("path"), max_length=2048)
    query = models.CharField(_("query string"), max_length=2048, blank=True)
    page = models.ForeignKey(
        PAGE_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("page"),
    )
    title = models.CharField(_("title"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("page view")
        verbose_name_plural = _("page views")
        indexes = [
            models.Index(fields=["session", "viewed_at"], name="ct_pageview_session_idx"),
            models.Index(fields=["viewed_at"], name="ct_pageview_viewed_idx"),
        ]

    def __str__(self):
        return self.path
