"""System checks: misconfiguration reported with hints (never by mutating settings).

IDs: ``wagtail_calltracking.E0xx`` errors, ``.W0xx`` warnings. Areas add their checks below
with their own id ranges: settings/middleware 001–019, numbers 020–039, webhooks 040–059,
integrations 060–079, privacy 080–099.
"""

from __future__ import annotations

import importlib

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .conf import DEFAULTS, SETTINGS_NAME

MIDDLEWARE_PATH = "wagtail_calltracking.middleware.CallTrackingMiddleware"
_REQUIRED_BEFORE = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
)

_POSITIVE_INTEGERS = (
    "VISITOR_COOKIE_AGE_DAYS",
    "SESSION_TIMEOUT_MINUTES",
    "CONFIG_CACHE_SECONDS",
    "NUMBER_ENDPOINT_RATE_LIMIT",
    "WEBHOOK_TOLERANCE_SECONDS",
    "WEBHOOK_MAX_BODY_BYTES",
    "ATTRIBUTION_GRACE_MINUTES",
    "FIRST_TIME_CALLER_DAYS",
    "HTTP_TIMEOUT_SECONDS",
    "DELIVERY_MAX_ATTEMPTS",
    "DELIVERY_BACKOFF_SECONDS",
)
_NON_NEGATIVE_INTEGERS = ("ACTIVITY_WRITE_INTERVAL_SECONDS", "ABANDONED_CALL_SECONDS")
_BOOLEANS = (
    "DYNAMIC_NUMBERS_WITHOUT_CONSENT",
    "HONOUR_GPC",
    "HONOUR_DNT",
    "CACHE_SAFE",
    "DEMO_PROVIDER_ENABLED",
    "RELEASE_NUMBER_AFTER_CALL",
)
_CHOICES = {"IP_STORAGE": ("full", "anonymised", "none")}


def _user_settings():
    value = getattr(settings, SETTINGS_NAME, None)
    return value


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs):
    errors = []
    user = _user_settings()
    if user is None:
        return errors
    if not isinstance(user, dict):
        return [
            Error(
                f"{SETTINGS_NAME} must be a dict.",
                hint=f"Write {SETTINGS_NAME} = {{'SESSION_TIMEOUT_MINUTES': 30, ...}}.",
                id="wagtail_calltracking.E001",
            )
        ]
    for key in user:
        if key not in DEFAULTS:
            close = [k for k in DEFAULTS if k.split("_")[0] == str(key).split("_")[0]]
            errors.append(
                Error(
                    f"Unknown setting {SETTINGS_NAME}[{key!r}].",
                    hint=(f"Did you mean one of: {', '.join(close)}?" if close else "")
                    + " Known settings are listed in the README's settings reference.",
                    id="wagtail_calltracking.E002",
                )
            )
    for key in _POSITIVE_INTEGERS:
        if key in user and not (isinstance(user[key], int) and not isinstance(user[key], bool) and user[key] > 0):
            errors.append(_invalid(key, user[key], "a positive integer"))
    for key in _NON_NEGATIVE_INTEGERS:
        if key in user and not (isinstance(user[key], int) and not isinstance(user[key], bool) and user[key] >= 0):
            errors.append(_invalid(key, user[key], "an integer ≥ 0"))
    for key in _BOOLEANS:
        if key in user and not isinstance(user[key], bool):
            errors.append(_invalid(key, user[key], "True or False"))
    for key, choices in _CHOICES.items():
        if key in user and user[key] not in choices:
            errors.append(_invalid(key, user[key], " / ".join(repr(c) for c in choices)))
    if "VISITOR_COOKIE_NAME" in user and not (
        isinstance(user["VISITOR_COOKIE_NAME"], str)
        and user["VISITOR_COOKIE_NAME"].replace("_", "").replace("-", "").isalnum()
    ):
        errors.append(_invalid("VISITOR_COOKIE_NAME", user["VISITOR_COOKIE_NAME"], "letters, digits, - and _"))
    if "DEFAULT_REGION" in user:
        import phonenumbers

        if user["DEFAULT_REGION"] not in phonenumbers.SUPPORTED_REGIONS:
            errors.append(
                _invalid("DEFAULT_REGION", user["DEFAULT_REGION"], "an ISO 3166-1 region code such as 'US' or 'GB'")
            )
    for key in ("EXCLUDE_PATHS", "TRUSTED_PROXIES", "GEOLOCATORS"):
        if key in user and not (isinstance(user[key], list | tuple) and all(isinstance(v, str) for v in user[key])):
            errors.append(_invalid(key, user[key], "a list of strings"))
    if isinstance(user.get("GEOLOCATORS"), list | tuple):
        for path in user["GEOLOCATORS"]:
            if isinstance(path, str) and not _importable(path):
                errors.append(
                    Error(
                        f"{SETTINGS_NAME}['GEOLOCATORS'] names {path!r}, which cannot be imported.",
                        hint="Give the dotted path of a callable taking (request, ip).",
                        id="wagtail_calltracking.E004",
                    )
                )
    consent = user.get("CONSENT")
    if consent is not None and not (
        (isinstance(consent, str) and _importable(consent))
        or (isinstance(consent, dict) and isinstance(consent.get("cookie"), str) and consent.get("cookie"))
    ):
        errors.append(
            _invalid(
                "CONSENT",
                consent,
                "None, {'cookie': 'name', 'accepted': ['yes']} or the dotted path of a callable",
            )
        )
    return errors


def _invalid(key, value, expected):
    return Error(
        f"{SETTINGS_NAME}[{key!r}] is {value!r}.",
        hint=f"Expected {expected}.",
        id="wagtail_calltracking.E003",
    )


def _importable(path: str) -> bool:
    module, _, attr = path.rpartition(".")
    if not module:
        return False
    try:
        return hasattr(importlib.import_module(module), attr)
    except Exception:
        return False


@register(Tags.compatibility)
def check_middleware(app_configs=None, **kwargs):
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if MIDDLEWARE_PATH not in middleware:
        return [
            Warning(
                "CallTrackingMiddleware is not installed: visitors, sessions and page views are "
                "not recorded, and dynamic numbers cannot be leased.",
                hint=f"Add {MIDDLEWARE_PATH!r} to MIDDLEWARE after AuthenticationMiddleware.",
                id="wagtail_calltracking.W001",
            )
        ]
    errors = []
    position = middleware.index(MIDDLEWARE_PATH)
    for required in _REQUIRED_BEFORE:
        if required in middleware and middleware.index(required) > position:
            errors.append(
                Error(
                    f"CallTrackingMiddleware is placed before {required.rsplit('.', 1)[-1]}.",
                    hint=f"Move {MIDDLEWARE_PATH!r} below {required!r} in MIDDLEWARE.",
                    id="wagtail_calltracking.E010",
                )
            )
    cache_middleware = "django.middleware.cache.UpdateCacheMiddleware"
    if cache_middleware in middleware and middleware.index(cache_middleware) > position:
        errors.append(
            Warning(
                "UpdateCacheMiddleware runs after CallTrackingMiddleware and may cache pages "
                "carrying a visitor's number.",
                hint="Put UpdateCacheMiddleware first in MIDDLEWARE, or use cache-safe mode.",
                id="wagtail_calltracking.W011",
            )
        )
    return errors


# Area checks registered on import.
from . import privacy as privacy_checks  # noqa: E402, F401  (retention, consent: E080–W081)
from .integrations import checks as integration_checks  # noqa: E402, F401  (task backend: E060–E064)
from .numbers import checks as number_checks  # noqa: E402, F401  (pools, sources, numbers: W020–W039)
from .webhooks import checks as webhook_checks  # noqa: E402, F401  (providers, secrets: E040–W049)
