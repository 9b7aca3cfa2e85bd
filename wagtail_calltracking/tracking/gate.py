"""One gate shared by the middleware, the template tag and the cache-safe endpoint:
is this request a real visitor's page view worth tracking? No query, no parsing."""

from __future__ import annotations

import contextlib
import functools
import re

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import NoReverseMatch, URLResolver, get_resolver, get_urlconf, reverse

from ..conf import ct_settings
from .useragent import looks_like_bot

_PREFETCH_HEADERS = ("HTTP_PURPOSE", "HTTP_SEC_PURPOSE", "HTTP_X_PURPOSE", "HTTP_X_MOZ")
_PREFETCH_VALUES = ("prefetch", "prerender", "preview")


@functools.cache
def _builtin_excluded_prefixes(urlconf) -> tuple[str, ...]:
    """Static/media URLs, the Wagtail admin, the Django admin and our own endpoints."""
    prefixes = []
    for url in (getattr(settings, "STATIC_URL", None), getattr(settings, "MEDIA_URL", None)):
        if url and url.startswith("/") and url != "/":
            prefixes.append(url)
    for name in ("wagtailadmin_home", "admin:index"):
        with contextlib.suppress(NoReverseMatch):
            prefixes.append(reverse(name, urlconf=urlconf))
    # Webhooks, the number endpoint and the feeds live under the include() of our URLconf.
    prefixes.extend(_own_prefixes(get_resolver(urlconf).url_patterns, "/", depth=0))
    return tuple(p for p in prefixes if p and p != "/")


def _own_prefixes(patterns, prefix: str, depth: int):
    for pattern in patterns:
        if not isinstance(pattern, URLResolver) or depth > 3:
            continue
        route = str(pattern.pattern)
        if route.startswith("^"):  # regex routes: cannot be turned into a prefix reliably
            continue
        if pattern.app_name == "wagtail_calltracking":
            if route:
                yield prefix + route
        else:
            yield from _own_prefixes(pattern.url_patterns, prefix + route, depth + 1)


@functools.cache
def _configured_exclusions(exclusions: tuple[str, ...]):
    prefixes, patterns = [], []
    for item in exclusions:
        if item.startswith("re:"):
            patterns.append(re.compile(item[3:]))
        else:
            prefixes.append(item)
    return tuple(prefixes), tuple(patterns)


def path_is_excluded(path: str) -> bool:
    if path.startswith(_builtin_excluded_prefixes(get_urlconf())):
        return True
    if path in ("/favicon.ico", "/robots.txt", "/sitemap.xml") or path.startswith("/.well-known/"):
        return True
    prefixes, patterns = _configured_exclusions(tuple(ct_settings.EXCLUDE_PATHS or ()))
    if prefixes and path.startswith(prefixes):
        return True
    return any(pattern.search(path) for pattern in patterns)


def is_prefetch(request) -> bool:
    meta = request.META
    for header in _PREFETCH_HEADERS:
        value = meta.get(header)
        if value and any(v in value.lower() for v in _PREFETCH_VALUES):
            return True
    return False


def request_is_trackable(request, *, any_method: bool = False, path: str | None = None) -> bool:
    """The cheap gate: method, prefetch, bots, excluded paths. No query, no UA parsing.

    ``path`` overrides the request's path (the cache-safe endpoint checks the page's path)."""
    if not any_method and request.method not in ("GET", "HEAD"):
        return False
    # Cheapest and most common skips first: static files, admin, our own endpoints.
    if path_is_excluded(path if path is not None else (request.path_info or "/")):
        return False
    if is_prefetch(request):
        return False
    return not looks_like_bot(request.META.get("HTTP_USER_AGENT"))


@receiver(setting_changed)
def _clear_caches(*, setting, **kwargs):
    if setting in ("ROOT_URLCONF", "STATIC_URL", "MEDIA_URL", "WAGTAIL_CALLTRACKING"):
        _builtin_excluded_prefixes.cache_clear()
        _configured_exclusions.cache_clear()
