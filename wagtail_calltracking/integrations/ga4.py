"""Google Analytics 4: one Measurement Protocol event per qualifying call.

The event joins the visitor's GA session through the ``_ga`` client id and the
``_ga_<container>`` session id captured by the middleware (``tracking/ga.py`` parses both
cookie formats, GS1 and GS2), and is back-dated to the call's start. GA4 accepts events up to
72 hours old; older calls are skipped with that reason. No phone number (the caller's or
ours) is ever sent: Google's terms forbid personal data in Analytics.

Documented limits enforced here: event and parameter names ≤ 40 characters (letters,
digits, underscores, starting with a letter), ≤ 25 parameters per event, string values
≤ 100 characters.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from decimal import Decimal

import requests
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from ..conf import ct_settings
from ..models import CallResult, DeliveryEvent, DeliveryKind, GA4Property
from ..models.integrations import GA4_NAME_RE
from ..tracking.ga import client_id_from_cookie, session_id_from_cookie
from . import payloads
from .base import Integration, Skip, check_rules, dumps, post

MAX_PARAMS = 25
MAX_NAME_CHARS = 40
MAX_VALUE_CHARS = 100
MAX_AGE = timedelta(hours=72)
#: GA4 wants a positive engagement time for the event to join the session in Realtime.
ENGAGEMENT_TIME_MSEC = 1
_CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

__all__ = [
    "GA4Integration",
    "build_event_payload",
    "client_id_from_cookie",
    "session_id_from_cookie",
    "validate",
]


def collect_url(debug=False) -> str:
    base = str(ct_settings.GA4_ENDPOINT).rstrip("/")
    return f"{base}/debug/mp/collect" if debug else f"{base}/mp/collect"


def session_id_for(call, measurement_id: str) -> str:
    """The GA session id of ``measurement_id`` stored for the call. Keys are "G-XXXX" (the
    middleware's form); the bare container id and a raw cookie value are accepted too."""
    ids = call.ga_session_ids if isinstance(call.ga_session_ids, dict) else {}
    container = measurement_id.removeprefix("G-")
    for key in (measurement_id, container, f"_ga_{container}"):
        value = ids.get(key)
        if value:
            value = str(value)
            if value.isdigit():
                return value
            parsed = session_id_from_cookie(value)
            if parsed:
                return parsed
    return ""


def pseudonymous_client_id(call) -> str:
    """A stable GA-style client id for a call without one (never derived from a number)."""
    digest = hashlib.sha256(f"{settings.SECRET_KEY}:call:{call.pk}".encode()).hexdigest()
    return f"{int(digest[:12], 16) % 10**10}.{int(call.started_at.timestamp())}"


def clean_name(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", name)[:MAX_NAME_CHARS]
    return name if GA4_NAME_RE.match(name) else ""


def clean_value(value):
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, int | float):
        return value
    return str(value)[:MAX_VALUE_CHARS]


def limit_params(params: dict) -> dict:
    """GA4's limits: valid names, short values, at most 25 parameters (the first ones win:
    callers list them by importance). Empty values are left out."""
    cleaned = {}
    for name, value in params.items():
        if value is None or value == "":
            continue
        name = clean_name(name)
        if not name or name in cleaned:
            continue
        cleaned[name] = clean_value(value)
        if len(cleaned) == MAX_PARAMS:
            break
    return cleaned


def event_params(call, session_id: str) -> dict:
    touch = payloads.primary_touch(call)
    value, currency = payloads.conversion_value(call)
    source = call.source if call.source_id else None
    params = {
        # Session stitching first: without these the event floats outside the visit.
        "session_id": session_id,
        "engagement_time_msec": ENGAGEMENT_TIME_MSEC,
        "call_result": call.result,
        "call_duration": call.talk_seconds or 0,
        "first_time_caller": call.is_first_time,
        "source": touch["source"],
        "medium": touch["medium"],
        "campaign": touch["campaign"],
        "keyword": touch["keyword"],
        "channel": touch["channel"],
        "tracking_source": source.name if source else "",
        "landing_page": touch["landing_path"],
        "attribution": call.confidence,
        "call_tag": call.tag,
        "provider": call.provider,
    }
    if value is not None and currency:
        # GA4 ignores a value without a currency: send both or neither.
        params["value"] = value
        params["currency"] = currency
    return params


def build_event_payload(prop: GA4Property, call) -> dict:
    client_id = call.ga_client_id if _CLIENT_ID_RE.match(call.ga_client_id or "") else ""
    if not client_id:
        if not prop.send_without_client_id:
            raise Skip(
                _("No GA client id: the visitor's _ga cookie was not seen (or the call came to a static number).")
            )
        client_id = pseudonymous_client_id(call)
    params = event_params(call, session_id_for(call, prop.measurement_id))
    # The value and currency must survive the 25-parameter cut: they make it a conversion.
    ordered = {k: params[k] for k in ("value", "currency") if k in params} | params
    return {
        "client_id": client_id,
        "timestamp_micros": int(call.started_at.timestamp() * 1_000_000),
        "events": [{"name": prop.event_name, "params": limit_params(ordered)}],
    }


def check_age(payload) -> None:
    timestamp = payload.get("timestamp_micros")
    if timestamp is None:
        return
    age = timezone.now().timestamp() - timestamp / 1_000_000
    if age > MAX_AGE.total_seconds():
        raise Skip(_("The call is older than 72 hours: GA4 does not accept older events."))


class GA4Integration(Integration):
    kind = DeliveryKind.GA4
    model = GA4Property

    def targets(self, call, event):
        if event != DeliveryEvent.CALL_COMPLETED:
            return []
        return list(GA4Property.objects.filter(payloads.site_filter(call), active=True))

    def build_payload(self, target, call, event, delivery):
        check_rules(target, call)
        payload = build_event_payload(target, call)
        check_age(payload)
        return payload

    def send(self, target, delivery):
        payload = dict(delivery.payload)
        check_age(payload)
        if payload.get("timestamp_micros", 0) > timezone.now().timestamp() * 1_000_000:
            # A provider clock ahead of ours: GA4 rejects events from the future.
            payload["timestamp_micros"] = int(timezone.now().timestamp() * 1_000_000)
        return post(
            collect_url(),
            body=dumps(payload),
            params={"measurement_id": target.measurement_id, "api_secret": target.api_secret},
            redact=(target.api_secret,),
        )


def sample_payload(prop: GA4Property) -> dict:
    """The payload the newest qualifying call would produce (a made-up call if none)."""
    from ..models import Delivery, DeliveryStatus

    latest = (
        Delivery.objects.filter(kind=DeliveryKind.GA4, target_id=prop.pk)
        .exclude(status=DeliveryStatus.SKIPPED)
        .exclude(payload={})
        .order_by("-created_at")
        .values_list("payload", flat=True)
        .first()
    )
    if latest:
        return latest
    now = timezone.now()
    return {
        "client_id": f"1234567890.{int(now.timestamp())}",
        "timestamp_micros": int(now.timestamp() * 1_000_000),
        "events": [
            {
                "name": prop.event_name,
                "params": limit_params(
                    {
                        "session_id": str(int(now.timestamp())),
                        "engagement_time_msec": ENGAGEMENT_TIME_MSEC,
                        "call_result": CallResult.ANSWERED,
                        "call_duration": 95,
                        "first_time_caller": True,
                        "source": "google",
                        "medium": "cpc",
                        "campaign": "sample",
                    }
                ),
            }
        ],
    }


def validate(prop: GA4Property, payload: dict | None = None) -> dict:
    """Send ``payload`` (default: :func:`sample_payload`) to GA4's validation server.

    Returns {"payload", "messages": [{"fieldPath", "description", "validationCode"}],
    "error"}: an empty message list means GA4 would accept the event."""
    payload = payload or sample_payload(prop)
    result = {"payload": payload, "messages": [], "error": ""}
    try:
        response = requests.post(
            collect_url(debug=True),
            params={"measurement_id": prop.measurement_id, "api_secret": prop.api_secret},
            data=dumps(payload),
            headers={"Content-Type": "application/json"},
            timeout=(float(ct_settings.HTTP_TIMEOUT_SECONDS),) * 2,
        )
        response.raise_for_status()
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        result["error"] = str(exc).replace(prop.api_secret, "********") if prop.api_secret else str(exc)
        return result
    messages = body.get("validationMessages") if isinstance(body, dict) else None
    result["messages"] = [
        {
            "fieldPath": str(m.get("fieldPath", "")),
            "description": str(m.get("description", "")),
            "validationCode": str(m.get("validationCode", "")),
        }
        for m in (messages or [])
        if isinstance(m, dict)
    ]
    return result
