"""System checks for the telephony webhooks (ids 040–059)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from ..conf import SETTINGS_NAME

SECRET_SETTINGS = (
    "TWILIO_AUTH_TOKEN",
    "VONAGE_SIGNATURE_SECRET",
    "PLIVO_AUTH_TOKEN",
    "TELNYX_PUBLIC_KEY",
    "GENERIC_SECRET",
)


def _user() -> dict:
    value = getattr(settings, SETTINGS_NAME, None)
    return value if isinstance(value, dict) else {}


@register(Tags.security, Tags.compatibility)
def check_webhooks(app_configs=None, **kwargs):
    from . import registry

    errors = []
    user = _user()

    for name in SECRET_SETTINGS:
        value = user.get(name)
        if value is not None and not (
            isinstance(value, str) or (isinstance(value, list | tuple) and all(isinstance(v, str) for v in value))
        ):
            errors.append(
                Error(
                    f"{SETTINGS_NAME}[{name!r}] must be a string or a list of strings.",
                    hint="A list accepts every secret in it (rotation: add the new one, then "
                    "remove the old one).",
                    id="wagtail_calltracking.E048",
                )
            )

    listed = user.get("PROVIDERS")
    if listed is not None:
        names = [listed] if isinstance(listed, str) else listed
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            errors.append(
                Error(
                    f"{SETTINGS_NAME}['PROVIDERS'] must be None or a list of provider names.",
                    hint=f"Known providers: {', '.join(registry.BUILTIN_PROVIDERS)}.",
                    id="wagtail_calltracking.E040",
                )
            )
            names = []
        for name in names:
            if name not in registry.BUILTIN_PROVIDERS:
                errors.append(
                    Error(
                        f"{SETTINGS_NAME}['PROVIDERS'] names an unknown provider {name!r}.",
                        hint=f"Known providers: {', '.join(registry.BUILTIN_PROVIDERS)}.",
                        id="wagtail_calltracking.E040",
                    )
                )
            elif name != "demo":
                provider = registry.get_provider(name)
                secret = user.get(provider.secret_setting)
                if isinstance(secret, str | list | tuple | type(None)) and not provider.has_secret():
                    errors.append(
                        Error(
                            f"The {provider.label} webhooks are enabled but "
                            f"{SETTINGS_NAME}[{provider.secret_setting!r}] is empty: every "
                            "request will be refused (403).",
                            hint=f"Set {provider.secret_setting} (the example site reads "
                            f"CALLTRACKING_{provider.secret_setting} from the environment), or "
                            "remove the provider from PROVIDERS.",
                            id="wagtail_calltracking.E041",
                        )
                    )

    telnyx_keys = user.get("TELNYX_PUBLIC_KEY")
    if telnyx_keys and isinstance(telnyx_keys, str | list | tuple):
        from .telnyx import decode_public_key, ed25519_backend

        for key in [telnyx_keys] if isinstance(telnyx_keys, str) else telnyx_keys:
            if isinstance(key, str) and decode_public_key(key) is None:
                errors.append(
                    Error(
                        f"{SETTINGS_NAME}['TELNYX_PUBLIC_KEY'] is not a base64 ed25519 public key "
                        "(32 bytes).",
                        hint="Copy the public key from the Telnyx portal (Keys & credentials).",
                        id="wagtail_calltracking.E042",
                    )
                )
        if ed25519_backend() is None:
            errors.append(
                Error(
                    "Telnyx webhooks need PyNaCl (or cryptography) to verify signatures.",
                    hint='pip install "wagtail-calltracking[telnyx]"',
                    id="wagtail_calltracking.E043",
                )
            )

    if user.get("DEMO_PROVIDER_ENABLED") is True and not settings.DEBUG:
        errors.append(
            Warning(
                "The demo telephony provider is enabled with DEBUG off: anyone can post "
                "unsigned simulated calls to /calltracking/webhooks/demo/.",
                hint=f"Set {SETTINGS_NAME}['DEMO_PROVIDER_ENABLED'] = False in production.",
                id="wagtail_calltracking.W044",
            )
        )

    base = user.get("PUBLIC_BASE_URL")
    if base is not None:
        parts = urlsplit(base) if isinstance(base, str) else None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            errors.append(
                Error(
                    f"{SETTINGS_NAME}['PUBLIC_BASE_URL'] is {base!r}.",
                    hint="Give the scheme and host the provider calls, without a path: "
                    "'https://www.example.com' (used to verify webhook signatures behind proxies).",
                    id="wagtail_calltracking.E045",
                )
            )

    fallback = user.get("FALLBACK_FORWARD_TO")
    if fallback is not None:
        from ..numbers.phone import to_e164

        if not isinstance(fallback, str) or (not fallback.lower().startswith("sip:") and to_e164(fallback) is None):
            errors.append(
                Error(
                    f"{SETTINGS_NAME}['FALLBACK_FORWARD_TO'] is {fallback!r}, not a phone number.",
                    hint="Use the international form, e.g. '+15551234567'.",
                    id="wagtail_calltracking.E046",
                )
            )

    spool = user.get("WEBHOOK_SPOOL_DIR")
    if spool is not None:
        existing = str(spool)
        while existing and not os.path.exists(existing):
            existing = os.path.dirname(existing.rstrip(os.sep))
        if (
            not isinstance(spool, str | os.PathLike)
            or not existing
            or not os.path.isdir(existing)
            or not os.access(existing, os.W_OK)
        ):
            errors.append(
                Warning(
                    f"{SETTINGS_NAME}['WEBHOOK_SPOOL_DIR'] ({spool!r}) is not writable.",
                    hint="Webhooks received while the database is down are then only logged.",
                    id="wagtail_calltracking.W047",
                )
            )

    if any(registry.is_mounted(name) for name in registry.BUILTIN_PROVIDERS if name != "demo"):
        from django.urls import NoReverseMatch

        try:
            registry.webhook_path("twilio", "voice")
        except NoReverseMatch:
            errors.append(
                Warning(
                    "Telephony providers are configured but the webhook URLs are not mounted.",
                    hint='Add path("calltracking/", include("wagtail_calltracking.urls")) to '
                    "your URLconf.",
                    id="wagtail_calltracking.W049",
                )
            )
        except Exception:  # noqa: BLE001, S110 — a broken URLconf is reported by Django itself
            pass
    return errors

