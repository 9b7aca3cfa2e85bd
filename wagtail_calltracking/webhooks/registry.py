"""The providers, their endpoints and URLs.

Adding a provider is one module (with a module-level ``provider = WebhookProvider(...)``)
and one line in :data:`BUILTIN_PROVIDERS`; see ``ADDING_PROVIDERS.md``.

URLs (mounted under ``include("wagtail_calltracking.urls")``, e.g. at ``/calltracking/``)::

    webhooks/<provider>/<endpoint>/      name "wagtail_calltracking:webhook-<provider>-<endpoint>"

Every provider has ``voice`` (the incoming call: answers with forwarding markup) and
``status`` (progress and completion events); some have extras (``dial``, ``recording``,
``whisper``) that the forwarding markup points at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from urllib.parse import urlencode

from django.urls import path, reverse

from ..conf import ct_settings

#: name → module. The module defines ``provider`` (a :class:`WebhookProvider`).
BUILTIN_PROVIDERS: dict[str, str] = {
    "twilio": "wagtail_calltracking.webhooks.twilio",
    "vonage": "wagtail_calltracking.webhooks.vonage",
    "plivo": "wagtail_calltracking.webhooks.plivo",
    "telnyx": "wagtail_calltracking.webhooks.telnyx",
    "generic": "wagtail_calltracking.webhooks.generic",
    "demo": "wagtail_calltracking.webhooks.demo",
}


@dataclass(frozen=True)
class WebhookProvider:
    name: str
    label: str
    #: The setting holding the secret(s) (None: the provider needs none, i.e. demo).
    secret_setting: str | None
    #: endpoint name → view class.
    endpoints: dict = field(default_factory=dict)

    def has_secret(self) -> bool:
        return self.secret_setting is None or bool(ct_settings.secrets(self.secret_setting))


@cache
def get_provider(name: str) -> WebhookProvider:
    module = import_module(BUILTIN_PROVIDERS[name])
    return module.provider


def providers() -> dict[str, WebhookProvider]:
    return {name: get_provider(name) for name in BUILTIN_PROVIDERS}


def configured_provider_names() -> list[str] | None:
    """The ``PROVIDERS`` setting as a list, or None (automatic)."""
    value = ct_settings.PROVIDERS
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(name) for name in value]


def is_mounted(name: str) -> bool:
    """Whether ``name``'s webhooks answer (otherwise 404).

    Automatic mode (``PROVIDERS`` = None): every provider whose secret is configured, plus
    ``demo`` when ``DEMO_PROVIDER_ENABLED``. With an explicit list: the listed providers
    (``demo`` still needs ``DEMO_PROVIDER_ENABLED``); a listed provider without a secret then
    refuses every request (403) and the system checks report it."""
    if name not in BUILTIN_PROVIDERS:
        return False
    if name == "demo" and not ct_settings.DEMO_PROVIDER_ENABLED:
        return False
    listed = configured_provider_names()
    if listed is None:
        return name == "demo" or get_provider(name).has_secret()
    return name in listed


def url_name(provider: str, endpoint: str) -> str:
    return f"webhook-{provider}-{endpoint}"


def urlpatterns() -> list:
    patterns = []
    for name, provider in providers().items():
        for endpoint, view in provider.endpoints.items():
            patterns.append(
                path(
                    f"webhooks/{name}/{endpoint}/",
                    view.as_view(),
                    name=url_name(name, endpoint),
                )
            )
    return patterns


def webhook_path(provider: str, endpoint: str) -> str:
    return reverse(f"wagtail_calltracking:{url_name(provider, endpoint)}")


def webhook_url(request, provider: str, endpoint: str, query: dict | None = None) -> str:
    """Absolute URL of an endpoint, as the provider must call it (``PUBLIC_BASE_URL``)."""
    from .base import public_base

    url = public_base(request) + webhook_path(provider, endpoint)
    if query:
        url += "?" + urlencode(query)
    return url
