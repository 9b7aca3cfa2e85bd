"""The ``WAGTAIL_CALLTRACKING`` settings namespace.

Every setting lives in one dict in the project's settings::

    WAGTAIL_CALLTRACKING = {"SESSION_TIMEOUT_MINUTES": 30, ...}

Values are read lazily (on attribute access, cached until Django's ``setting_changed``
signal fires), so tests can use ``override_settings`` and importing this module never
touches ``django.conf.settings``. Unknown keys and invalid values are reported by the
system checks in :mod:`wagtail_calltracking.checks`, not here: a typo must never take the
site down at import time.
"""

from __future__ import annotations

from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

SETTINGS_NAME = "WAGTAIL_CALLTRACKING"

#: Every known setting with its default. The README's settings reference mirrors this.
DEFAULTS: dict[str, Any] = {
    # --- visitor cookie and sessions (middleware) ---
    # Name of the first-party signed cookie that identifies a visitor.
    "VISITOR_COOKIE_NAME": "ct_visitor",
    # Lifetime of the visitor cookie, in days.
    "VISITOR_COOKIE_AGE_DAYS": 365,
    # Cookie domain (None = the current host only).
    "VISITOR_COOKIE_DOMAIN": None,
    # A session (visit) ends after this many minutes without a page view, as in GA.
    "SESSION_TIMEOUT_MINUTES": 30,
    # Session activity is written to the database (and the cookie refreshed) at most this
    # often; page views themselves are always recorded.
    "ACTIVITY_WRITE_INTERVAL_SECONDS": 60,
    # Extra paths never tracked: prefixes ("/api/") or regular expressions ("re:^/shop/\\d+").
    "EXCLUDE_PATHS": [],
    # Query parameter naming an offline source on a landing URL: /?ct=newspaper
    "LANDING_PARAMETER": "ct",
    # Geolocators tried in order (dotted paths to callables taking (request, ip)).
    "GEOLOCATORS": [
        "wagtail_calltracking.tracking.geo.cdn_headers",
        "wagtail_calltracking.tracking.geo.geoip2_database",
    ],
    # Client IP resolution through django-ipware: trusted proxy IP prefixes and proxy count.
    "TRUSTED_PROXIES": [],
    "PROXY_COUNT": None,
    # --- privacy ---
    # How IP addresses are stored: "full", "anonymised" (IPv4 /24, IPv6 /48) or "none".
    "IP_STORAGE": "full",
    # Consent gate: None (no gate), or {"cookie": "name", "accepted": ["yes", "true", "1"]},
    # or a dotted path to a callable taking the request and returning True/False.
    "CONSENT": None,
    # Without consent, still show dynamic numbers bound to the page view only.
    "DYNAMIC_NUMBERS_WITHOUT_CONSENT": False,
    # Honour the Global Privacy Control (Sec-GPC: 1) and Do-Not-Track (DNT: 1) headers.
    "HONOUR_GPC": False,
    "HONOUR_DNT": False,
    # Retention of sessions and page views, in days (None = keep forever).
    "RETENTION_DAYS": None,
    # Retention of the raw webhook log (request bodies carry callers' numbers), in days
    # (None = keep forever). Entries awaiting a replay are never purged.
    "WEBHOOK_LOG_RETENTION_DAYS": None,
    # --- numbers ---
    # Region used to parse numbers written without a country code.
    "DEFAULT_REGION": "US",
    # Seconds a rendered number configuration (sources, pools, site settings) is cached.
    "CONFIG_CACHE_SECONDS": 60,
    # Cache alias for the configuration cache and rate limits.
    "CACHE_ALIAS": "default",
    # Cache-safe mode for every site (a site setting can also switch it on).
    "CACHE_SAFE": False,
    # A live lease's last_seen_at is written at most this often (one UPDATE); keep it well
    # below the pools' hold time (at least 2 minutes).
    "LEASE_REFRESH_SECONDS": 60,
    # PostgreSQL: wait for the disk flush when committing a new lease. Off (default), as for
    # sessions and page views: a database crash can lose the leases of the last fraction of a
    # second; on: one more disk flush per new visitor that gets a pool number.
    "LEASE_SYNCHRONOUS_COMMIT": False,
    # Pool health: spare capacity added to the observed p99 concurrency when recommending a
    # pool size (0.25 = 25 %; at least one spare number is always recommended).
    "POOL_HEADROOM": 0.25,
    # Requests per visitor per minute allowed on the cache-safe number endpoint.
    "NUMBER_ENDPOINT_RATE_LIMIT": 30,
    # --- webhooks and attribution ---
    # Public base URL as the telephony provider sees it (https://www.example.com), used to
    # verify signatures behind TLS-terminating proxies. None = build from the request.
    "PUBLIC_BASE_URL": None,
    # Secrets: a string or a list of strings (rotation: every listed secret is accepted).
    "TWILIO_AUTH_TOKEN": None,
    "VONAGE_SIGNATURE_SECRET": None,
    "PLIVO_AUTH_TOKEN": None,
    "TELNYX_PUBLIC_KEY": None,
    "GENERIC_SECRET": None,
    # The simulated "demo" provider refuses every request unless this is True.
    "DEMO_PROVIDER_ENABLED": False,
    # Webhook timestamps older (or further in the future) than this are rejected.
    "WEBHOOK_TOLERANCE_SECONDS": 300,
    # Largest webhook body accepted, in bytes.
    "WEBHOOK_MAX_BODY_BYTES": 256 * 1024,
    # A call within this many minutes after a lease ended is still attributed ("late").
    "ATTRIBUTION_GRACE_MINUTES": 60,
    # A caller is "first-time" unless they called within this many days.
    "FIRST_TIME_CALLER_DAYS": 90,
    # Unanswered calls shorter than this are "abandoned" rather than "missed".
    "ABANDONED_CALL_SECONDS": 15,
    # Release a pool number back to the pool once a call to it has been attributed.
    "RELEASE_NUMBER_AFTER_CALL": False,
    # Providers whose webhook URLs answer: None = every provider with a configured secret
    # (plus "demo" when DEMO_PROVIDER_ENABLED), or a list such as ["twilio"]. A listed
    # provider without a secret is a system-check error; an unlisted one answers 404.
    "PROVIDERS": None,
    # Last-resort forwarding destination (E.164) used when the database is unreachable and
    # no destination is known from earlier calls: a caller is never dropped. None = answer
    # 503 so the provider's own fallback URL takes over.
    "FALLBACK_FORWARD_TO": None,
    # Directory where webhook events that could not be stored (database down) are written
    # as JSON files for `calltracking_replay_webhooks --spool`. They are always logged too
    # (logger "wagtail_calltracking.webhooks.spool", one JSON document per line).
    "WEBHOOK_SPOOL_DIR": None,
    # --- admin ---
    # Attribution model shown by default in the calls listing, reports and dashboard:
    # "first", "last" or "last_non_direct" (editors can switch it in the filters).
    "REPORT_ATTRIBUTION_MODEL": "last_non_direct",
    # --- integrations ---
    # django-tasks backend alias used for deliveries.
    "TASK_BACKEND": "default",
    # Timeout for outbound HTTP requests, in seconds.
    "HTTP_TIMEOUT_SECONDS": 5,
    # Retry schedule for failed deliveries: attempts and the base of the exponential backoff.
    "DELIVERY_MAX_ATTEMPTS": 8,
    "DELIVERY_BACKOFF_SECONDS": 30,
    # Longest wait between two attempts, however many attempts are configured.
    "DELIVERY_MAX_BACKOFF_SECONDS": 6 * 3600,
    # django-tasks queue name used for deliveries (must be one of the backend's QUEUES).
    "TASK_QUEUE_NAME": "default",
    # Base URL of the GA4 Measurement Protocol (/mp/collect and /debug/mp/collect are
    # appended). "https://region1.google-analytics.com" collects in the EU.
    "GA4_ENDPOINT": "https://www.google-analytics.com",
}


class SettingsNamespace:
    """Attribute access to the namespace with defaults, read lazily."""

    def __init__(self, defaults: dict[str, Any]):
        self.defaults = defaults
        self._cache: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        from django.conf import settings

        value = getattr(settings, SETTINGS_NAME, None)
        return value if isinstance(value, dict) else {}

    def __getattr__(self, name: str) -> Any:
        if name not in self.defaults:
            raise AttributeError(f"{SETTINGS_NAME} has no setting {name!r}")
        try:
            return self._cache[name]
        except KeyError:
            value = self.user_settings.get(name, self.defaults[name])
            self._cache[name] = value
            return value

    def secrets(self, name: str) -> list[str]:
        """A secret setting as a list (a string or a list are both accepted: rotation)."""
        value = getattr(self, name)
        if not value:
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list | tuple):
            return []  # misconfigured (reported by the system checks): no secret, no access
        return [str(v) for v in value if v]

    def reload(self) -> None:
        self._cache.clear()


ct_settings = SettingsNamespace(DEFAULTS)


@receiver(setting_changed)
def _reload_settings(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTINGS_NAME:
        ct_settings.reload()
