"""``{% load calltracking %}``: the number a visitor should call, rendered server-side.

* ``{% tracking_number %}`` → ``<a href="tel:+15551234567" class="calltracking-number">(555)
  123-4567</a>``, the number chosen by the documented precedence (``numbers.rules``).
  Arguments (all optional): ``source="Newspaper"`` or ``pool="Online"`` (name or id) to force
  one; ``format="national|international|e164"``; ``class="btn"`` (extra CSS classes);
  ``label="Call us"`` (link text instead of the number); ``link=False`` (a ``<span>``);
  ``cache_safe=True|False`` (override the site's cache-safe mode). ``… as num`` stores the
  number (``num.e164``, ``num.national``, ``num.international``, ``num.tel_href``,
  ``num.is_dynamic``, ``num.source``, ``num.display``); ``{{ num }}`` is the formatted number
  and ``{{ num.link }}`` the link the tag would render.
* ``{% canonical_number %}`` (or ``… as main``): the site's canonical number, never
  per-visitor — for NAP text and structured data.
* ``{% tracking_schema_org %}``: JSON-LD (schema.org ``LocalBusiness`` by default) with the
  canonical number as ``telephone``.
* ``{% tracking_number_script %}``: the cache-safe swap script (included automatically by the
  first cache-safe ``{% tracking_number %}`` rendered without ``as``).

Lazy: nothing is looked up, leased or created until a tag renders; all tags of a request
share one lookup. Rendering a per-visitor number marks the response ``Cache-Control:
private`` / ``Vary: Cookie`` (the middleware applies the headers). Without the middleware the
context is inert, no session exists, and the tags show the canonical (or a forced static)
number, which is the same for everyone — so no header is needed.
"""

from __future__ import annotations

import json
import logging

from django import template
from django.template.base import token_kwargs
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from ..conf import ct_settings
from ..numbers.selection import (
    NumberKind,
    RequestNumbers,
    ShownNumber,
    canonical_number,
    config_for_request,
    number_for_request,
)
from ..tracking.context import get_tracking_context

logger = logging.getLogger(__name__)
register = template.Library()

FORMATS = ("national", "international", "e164")
NUMBER_TEMPLATE = "wagtail_calltracking/tags/number.html"
SCRIPT_TEMPLATE = "wagtail_calltracking/tags/script.html"
SCRIPT_PATH = "wagtail_calltracking/js/calltracking.js"


# --- rendering ---------------------------------------------------------------------------


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


def render_number(number: ShownNumber) -> str:
    """The link (or span) for ``number``, plus the cache-safe script the first time."""
    if not number:
        return ""
    options = number.option
    cache_safe = options.get("cache_safe", False)
    css = options.get("css_class") or ("calltracking-canonical" if options.get("canonical") else "calltracking-number")
    html = render_to_string(
        NUMBER_TEMPLATE,
        {
            "number": number,
            "css_class": css,
            "label": options.get("label") or "",
            "link": options.get("link", True),
            "cache_safe": cache_safe,
            "swap_key": number.swap_key or "",
        },
    ).strip()
    memo = options.get("memo")
    if cache_safe and memo is not None and not memo.script_rendered:
        html += script_html(memo)
    return mark_safe(html)  # noqa: S308 (rendered by an autoescaping template)


def script_html(memo: RequestNumbers | None = None) -> str:
    """The deferred swap script tag (once per request when ``memo`` is given)."""
    if memo is not None:
        if memo.script_rendered:
            return ""
        memo.script_rendered = True
    try:
        endpoint = reverse("wagtail_calltracking:number")
    except NoReverseMatch:
        logger.warning(
            "Cache-safe tracking numbers need the endpoint: "
            'path("calltracking/", include("wagtail_calltracking.urls"))'
        )
        return ""
    return render_to_string(
        SCRIPT_TEMPLATE, {"src": static(SCRIPT_PATH), "endpoint": endpoint}
    ).strip()


def _with_options(number: ShownNumber, **options) -> ShownNumber:
    from dataclasses import replace

    merged = dict(number.options)
    merged.update({key: value for key, value in options.items() if value is not None})
    return replace(number, options=tuple(merged.items()))


# --- the tags ------------------------------------------------------------------------------


class NumberNode(template.Node):
    """Shared parsing: ``{% tag key=value … [as var] %}``."""

    def __init__(self, kwargs, target_var):
        self.kwargs = kwargs
        self.target_var = target_var

    @classmethod
    def parse(cls, parser, token):
        bits = token.split_contents()
        tag_name, bits = bits[0], bits[1:]
        target_var = None
        if len(bits) >= 2 and bits[-2] == "as":
            target_var = bits[-1]
            bits = bits[:-2]
        kwargs = token_kwargs(bits, parser, support_legacy=False)
        if bits:
            raise template.TemplateSyntaxError(
                f"{tag_name} takes keyword arguments only (key=value), and optionally 'as var'; "
                f"got {' '.join(bits)!r}"
            )
        unknown = set(kwargs) - cls.ARGUMENTS
        if unknown:
            raise template.TemplateSyntaxError(
                f"{tag_name}: unknown argument(s) {', '.join(sorted(unknown))}; "
                f"expected {', '.join(sorted(cls.ARGUMENTS))}"
            )
        return cls(kwargs, target_var)

    def resolve(self, context) -> dict:
        return {key: value.resolve(context) for key, value in self.kwargs.items()}

    def output(self, context, value):
        if self.target_var:
            context[self.target_var] = value
            return ""
        return value.link


class TrackingNumberNode(NumberNode):
    ARGUMENTS = frozenset({"source", "pool", "format", "class", "label", "link", "cache_safe"})

    def render(self, context):
        options = self.resolve(context)
        request = context.get("request")
        try:
            number = tracking_number_for(request, **options)
        except Exception:
            # A tracking problem must never break the page: show the canonical number.
            logger.exception("{% tracking_number %} failed; showing the canonical number")
            number = canonical_number(config_for_request(request))
        return self.output(context, number)


class CanonicalNumberNode(NumberNode):
    ARGUMENTS = frozenset({"format", "class", "label", "link"})

    def render(self, context):
        options = self.resolve(context)
        config = config_for_request(context.get("request"))
        display_format = options.get("format")
        number = canonical_number(
            config, display_format if display_format in FORMATS else None
        )
        number = _with_options(
            number,
            canonical=True,
            css_class=_classes("calltracking-canonical", options.get("class")),
            label=options.get("label"),
            link=_truthy(options["link"]) if "link" in options else None,
        )
        return self.output(context, number)


def _classes(base: str, extra) -> str:
    extra = str(extra or "").strip()
    return f"{base} {extra}" if extra else base


def tracking_number_for(request, *, source=None, pool=None, format=None, label=None,  # noqa: A002
                        link=True, cache_safe=None, **extra) -> ShownNumber:
    """What ``{% tracking_number %}`` shows for ``request`` (usable from Python too)."""
    css_class = _classes("calltracking-number", extra.get("class"))
    display_format = format if format in FORMATS else None
    if format and display_format is None:
        logger.warning("{%% tracking_number %%}: unknown format %r (national, international, e164)", format)
    memo = RequestNumbers.for_request(request)
    config = config_for_request(request)
    if cache_safe is None:
        cache_safe = bool(ct_settings.CACHE_SAFE) or config.cache_safe
    else:
        cache_safe = _truthy(cache_safe)
    if cache_safe:
        # The swap script asks for this visitor's number as soon as the page loads.
        get_tracking_context(request).expect_callback()
        number = canonical_number(config, display_format)
        from dataclasses import replace

        number = replace(number, swap_key=_swap_key(config, source, pool))
    else:
        number = number_for_request(
            request, source=source, pool=pool, display_format=display_format, config=config
        )
    return _with_options(
        number,
        css_class=css_class,
        label=label,
        link=_truthy(link),
        cache_safe=cache_safe,
        memo=memo,
    )


def _swap_key(config, source, pool) -> str:
    """Which number the cache-safe script asks for: "" (the precedence), "s:<id>", "p:<id>"."""
    if source not in (None, ""):
        rule = config.source(source)
        return f"s:{rule.id}" if rule else ""
    if pool not in (None, ""):
        found = config.pool(pool)
        return f"p:{found.id}" if found else ""
    return ""


@register.tag("tracking_number")
def tracking_number(parser, token):
    return TrackingNumberNode.parse(parser, token)


@register.tag("canonical_number")
def canonical_number_tag(parser, token):
    return CanonicalNumberNode.parse(parser, token)


@register.simple_tag(takes_context=True)
def tracking_number_script(context):
    """The cache-safe swap script, once per page (for templates that use ``… as num``)."""
    request = context.get("request")
    return mark_safe(script_html(RequestNumbers.for_request(request)))  # noqa: S308


_JSON_SCRIPT_ESCAPES = {ord(">"): "\\u003E", ord("<"): "\\u003C", ord("&"): "\\u0026"}


@register.simple_tag(takes_context=True)
def tracking_schema_org(context, type="LocalBusiness", name=None, url=None):  # noqa: A002
    """schema.org JSON-LD carrying the canonical number (NAP-safe: never a tracking number)."""
    request = context.get("request")
    config = config_for_request(request)
    if not config.canonical_e164:
        return ""
    if url is None and request is not None:
        try:
            url = request.build_absolute_uri("/")
        except Exception:
            url = None
    data = {
        "@context": "https://schema.org",
        "@type": str(type or "LocalBusiness"),
        "name": str(name or config.site_name or _wagtail_site_name()),
        "telephone": config.canonical_e164,
    }
    if url:
        data["url"] = str(url)
    payload = json.dumps(data, ensure_ascii=False).translate(_JSON_SCRIPT_ESCAPES)
    return format_html(
        '<script type="application/ld+json">{}</script>', mark_safe(payload)  # noqa: S308
    )


def _wagtail_site_name() -> str:
    from django.conf import settings

    return getattr(settings, "WAGTAIL_SITE_NAME", "") or ""


__all__ = [
    "NumberKind",
    "register",
    "render_number",
    "script_html",
    "tracking_number_for",
]
