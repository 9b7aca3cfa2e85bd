"""A call and its attribution as plain JSON-able data (CRM payloads, GA4 parameters).

One place decides "where did this call come from" for every integration:
:func:`primary_touch` — the last non-direct touch (GA's default model), else the last touch,
else the session the call was attributed to, else the configured static source.
"""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone
from wagtail.models import Site

from ..models import CallTouch, Channel, TouchModel

#: Page views listed in a journey summary (the count is always complete).
JOURNEY_MAX_PAGES = 50

TOUCH_FIELDS = (
    "channel",
    "source",
    "medium",
    "campaign",
    "keyword",
    "landing_path",
    "referrer_domain",
)


def iso(value):
    return value.isoformat() if value else None


def call_site_id(call):
    """The call's site, else the default site (single-site installs leave sites empty)."""
    if call.site_id:
        return call.site_id
    if not hasattr(call, "_ct_default_site_id"):
        site = Site.objects.filter(is_default_site=True).only("pk").first()
        call._ct_default_site_id = site.pk if site else None
    return call._ct_default_site_id


def site_filter(call):
    """Targets of the call's site, or of every site (``site`` left empty)."""
    site_id = call_site_id(call)
    condition = Q(site__isnull=True)
    if site_id:
        condition |= Q(site_id=site_id)
    return condition


def touch_dict(touch) -> dict:
    return {field: getattr(touch, field) or "" for field in TOUCH_FIELDS}


def _session_touch(session) -> dict:
    return {
        "channel": session.channel,
        "source": session.source,
        "medium": session.medium,
        "campaign": session.campaign,
        "keyword": session.keyword or session.term,
        "landing_path": session.landing_path,
        "referrer_domain": session.referrer_domain,
    }


def _source_touch(source) -> dict:
    return {
        "channel": source.call_channel,
        "source": source.name,
        "medium": "call" if source.is_static else "",
        "campaign": "",
        "keyword": "",
        "landing_path": "",
        "referrer_domain": "",
    }


def touches(call) -> dict[str, dict]:
    """{"first": {...}, "last": {...}, "last_non_direct": {...}} (only the models stored)."""
    cached = getattr(call, "_ct_touches", None)
    if cached is None:
        rows = call.touches.all() if call.pk else CallTouch.objects.none()
        cached = {touch.model: touch_dict(touch) for touch in rows}
        call._ct_touches = cached
    return cached


def primary_touch(call) -> dict:
    stored = touches(call)
    for model in (TouchModel.LAST_NON_DIRECT, TouchModel.LAST, TouchModel.FIRST):
        if model in stored:
            return stored[model]
    if call.session_id and call.session is not None:
        return _session_touch(call.session)
    if call.source_id and call.source is not None:
        return _source_touch(call.source)
    return dict.fromkeys(TOUCH_FIELDS, "") | {"channel": Channel.DIRECT}


def click_ids(call) -> dict:
    ids = {name: getattr(call, name) for name in ("gclid", "gbraid", "wbraid") if getattr(call, name)}
    if call.session_id and call.session is not None:
        for name, value in call.session.click_ids.items():
            ids.setdefault(name, value)
    return ids


def conversion_value(call):
    """(value, currency): the editor's value on the call wins over the source's."""
    source = call.source if call.source_id else None
    value = call.value if call.value is not None else (source.value if source else None)
    currency = (source.currency if source else "") or ""
    return value, currency.upper()


def landing_url(call, path: str) -> str:
    if not path:
        return ""
    site = call.site if call.site_id else None
    if site is None:
        return path
    return site.root_url.rstrip("/") + path


def attribution(call) -> dict:
    primary = primary_touch(call)
    source = call.source if call.source_id else None
    return {
        "tracking_source": {"id": source.pk, "name": source.name} if source else None,
        "confidence": call.confidence,
        "channel": primary["channel"],
        "source": primary["source"],
        "medium": primary["medium"],
        "campaign": primary["campaign"],
        "keyword": primary["keyword"],
        "landing_page": primary["landing_path"],
        "landing_url": landing_url(call, primary["landing_path"]),
        "referrer_domain": primary["referrer_domain"],
        "click_ids": click_ids(call),
        "touches": touches(call),
    }


def journey(call) -> dict | None:
    """The visit the call came from: pages viewed, device and place, earlier visits."""
    session = call.session if call.session_id else None
    if session is None:
        return None
    views = list(
        session.page_views.order_by("viewed_at", "pk").values("path", "title", "viewed_at")[: JOURNEY_MAX_PAGES + 1]
    )
    page_count = len(views) if len(views) <= JOURNEY_MAX_PAGES else session.page_views.count()
    earlier_visits = (
        session.visitor.sessions.filter(started_at__lt=session.started_at).count() if session.visitor_id else 0
    )
    return {
        "session_started_at": iso(session.started_at),
        "landing_page": session.landing_path,
        "referrer_domain": session.referrer_domain,
        "page_count": page_count,
        "pages": [
            {"path": view["path"], "title": view["title"], "viewed_at": iso(view["viewed_at"])}
            for view in views[:JOURNEY_MAX_PAGES]
        ],
        "earlier_visits": earlier_visits,
        "device": session.device_type,
        "browser": session.browser,
        "os": session.os,
        "country": session.country,
        "region": session.region,
        "city": session.city,
    }


def admin_url(call) -> str:
    """The call's page in the Wagtail admin (absolute when WAGTAILADMIN_BASE_URL is set)."""
    from django.conf import settings
    from django.urls import NoReverseMatch, reverse

    try:
        path = reverse("wagtail_calltracking_calls:inspect", args=[call.pk])
    except NoReverseMatch:
        return ""
    base = getattr(settings, "WAGTAILADMIN_BASE_URL", "") or ""
    return base.rstrip("/") + path


def call_dict(call) -> dict:
    value, currency = conversion_value(call)
    manager = call.manager if call.manager_id else None
    number = call.tracking_number if call.tracking_number_id else None
    return {
        "id": call.pk,
        "provider": call.provider,
        "provider_call_id": call.provider_call_id,
        "status": call.status,
        "result": call.result,
        "started_at": iso(call.started_at),
        "answered_at": iso(call.answered_at),
        "ended_at": iso(call.ended_at),
        "ring_seconds": call.ring_seconds,
        "talk_seconds": call.talk_seconds,
        "caller": {
            "number": call.from_number,
            "name": call.caller_name,
            "city": call.caller_city,
            "region": call.caller_region,
            "country": call.caller_country,
            "first_time": call.is_first_time,
        },
        "tracking_number": {
            "number": call.to_number or (number.number if number else ""),
            "label": number.label if number else "",
        },
        "forwarded_to": call.forwarded_to,
        "answered_by": {"name": manager.name, "email": manager.email} if manager else None,
        "recording_url": call.recording_url,
        "tag": call.tag,
        "value": str(value) if value is not None else None,
        "currency": currency,
        "note": call.note,
        "admin_url": admin_url(call),
    }


def crm_payload(call, event: str, delivery_id: int | None = None) -> dict:
    return {
        "event": event.replace("call_", "call."),
        "delivery_id": delivery_id,
        "sent_by": "wagtail-calltracking",
        "created_at": iso(timezone.now()),
        "call": call_dict(call),
        "attribution": attribution(call),
        "journey": journey(call),
    }
