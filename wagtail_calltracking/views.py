"""The cache-safe number endpoint.

Pages served from a CDN or a page cache carry the canonical number and the deferred script
``static/wagtail_calltracking/js/calltracking.js``. The script POSTs here::

    {"search": location.search, "referrer": document.referrer,
     "path": location.pathname, "title": document.title, "keys": ["", "s:12", "p:3"]}

and gets ``{"numbers": {"": {"e164": …, "national": …, "international": …, "tel_href": …,
"display": …, "is_dynamic": …, "kind": …}, …}}``. The landing is recorded exactly as the
middleware would record it (``TrackingContext.for_landing``), so is the page view (path,
query string, title: the journey stays complete behind a CDN), a number is leased when the
precedence says so, and the visitor cookie is set on this response.

Safety: ``Cache-Control: private, no-store`` (never cached anywhere); CSRF-exempt (a cached
page has no usable token) but only ``POST`` with ``Content-Type: application/json`` is
accepted — a cross-site form cannot send that, and a cross-site ``fetch`` of it needs a CORS
preflight this endpoint does not grant; a per-visitor rate limit
(``NUMBER_ENDPOINT_RATE_LIMIT`` requests per minute) answers 429; malformed input answers
400/413/415, never 500.
"""

from __future__ import annotations

import json
import logging
import re
import time

from django.core.cache import caches
from django.http import JsonResponse
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views.decorators.csrf import csrf_exempt

from .conf import ct_settings
from .numbers.selection import RequestNumbers, Selector, canonical_number, config_for_request
from .tracking.writes import after_response

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024
MAX_KEYS = 10
_KEY = re.compile(r"^(|[sp]:\d{1,12})$")


def _error(message: str, status: int) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    _never_cache(response)
    return response


def _never_cache(response) -> None:
    patch_cache_control(response, private=True, no_store=True)
    patch_vary_headers(response, ("Cookie",))


def _rate_key(kind: str, ident) -> str:
    return f"wagtail_calltracking:rate:number:{int(time.time() // 60)}:{kind}:{ident}"


def _client_ip(request) -> str:
    try:
        from ipware import get_client_ip

        ip, _routable = get_client_ip(
            request,
            proxy_count=ct_settings.PROXY_COUNT,
            proxy_trusted_ips=list(ct_settings.TRUSTED_PROXIES or []) or None,
        )
    except Exception:
        ip = None
    return ip or request.META.get("REMOTE_ADDR") or "unknown"


def _rate_limited(request) -> int:
    """Seconds to wait when the visitor exceeded ``NUMBER_ENDPOINT_RATE_LIMIT`` requests in
    the current minute, else 0. Counted per visitor (the id in the signed visitor cookie);
    a request without a valid cookie is counted against its IP address."""
    limit = int(ct_settings.NUMBER_ENDPOINT_RATE_LIMIT)
    if limit <= 0:
        return 0
    from .tracking.cookie import read_cookie

    cookie = read_cookie(request)
    key = _rate_key("visitor", cookie.visitor_id) if cookie else _rate_key("ip", _client_ip(request))
    count = _increment(key)
    if count > limit:
        return 60 - int(time.time()) % 60 or 1
    return 0


def _increment(key: str) -> int:
    cache = caches[ct_settings.CACHE_ALIAS]
    try:
        if cache.add(key, 1, 90):
            return 1
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, 90)
        return 1
    except Exception:  # a broken cache must not take the endpoint down
        logger.exception("Rate limiting unavailable")
        return 0


def _string(payload: dict, name: str, limit: int) -> str:
    value = payload.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(name)
    return value[:limit]


@csrf_exempt
def number_view(request):
    """The visitor's number(s) for a cached page. See the module docstring."""
    if request.method != "POST":
        response = _error("Use POST.", 405)
        response["Allow"] = "POST"
        return response
    content_type = request.content_type or ""
    if content_type.lower() != "application/json":
        return _error("Content-Type must be application/json.", 415)
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY_BYTES:
        return _error("Request body too large.", 413)
    body = request.body
    if len(body) > MAX_BODY_BYTES:
        return _error("Request body too large.", 413)
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _error("Malformed JSON.", 400)
    if not isinstance(payload, dict):
        return _error("Expected a JSON object.", 400)
    try:
        search = _string(payload, "search", 4096)
        referrer = _string(payload, "referrer", 2048)
        path = _string(payload, "path", 2048)
        title = _string(payload, "title", 255)
    except ValueError as error:
        return _error(f"“{error}” must be a string.", 400)
    keys = payload.get("keys", [""])
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        return _error("“keys” must be a list of strings.", 400)
    keys = list(dict.fromkeys(key for key in keys if _KEY.match(key)))[:MAX_KEYS] or [""]
    if path and not path.startswith("/"):
        path = "/" + path

    retry_after = _rate_limited(request)
    if retry_after:
        response = _error("Too many requests.", 429)
        response["Retry-After"] = str(retry_after)
        return response

    from .tracking.context import TrackingContext

    context = TrackingContext.for_landing(request, search=search, referrer=referrer, path=path or "/")
    request.calltracking = context
    config = config_for_request(request)
    deferred = None
    if context.can_store:
        # Record the landing (new session: now, a lease may need it) or the activity
        # (continuing one), and the page view (after the response when it is the only write),
        # as the middleware would for an uncached page — even when no pool number is needed.
        try:
            deferred = context.record_landing_page_view(title)
        except Exception:  # the number matters more than the journey entry
            logger.exception("The cache-safe endpoint could not record the page view")
    selector = Selector(context, config, RequestNumbers.for_request(request))
    numbers = {}
    for key in keys:
        try:
            if key.startswith("s:"):
                number = selector.select(source=int(key[2:]))
            elif key.startswith("p:"):
                number = selector.select(pool=int(key[2:]))
            else:
                number = selector.select()
        except Exception:
            logger.exception("The cache-safe endpoint could not choose a number")
            number = canonical_number(config)
        numbers[key] = number.as_json()
    response = JsonResponse({"numbers": numbers})
    if getattr(context, "visitor_created", False) and context.visitor_id:
        # The new visitor's first request counts towards its own limit too.
        _increment(_rate_key("visitor", context.visitor_id))
    context.apply_to_response(response)
    _never_cache(response)
    if deferred is not None:
        after_response(response, deferred)
    return response
