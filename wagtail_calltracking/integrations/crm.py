"""CRM / automation webhooks: signed JSON for call started / completed / tagged.

Each request::

    POST <endpoint URL>
    Content-Type: application/json
    X-CallTracking-Event: call.completed
    X-CallTracking-Delivery: 1234            (the same on every retry: de-duplicate on it)
    X-CallTracking-Timestamp: 1715170000     (unix seconds of this attempt)
    X-CallTracking-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>

The same scheme as the inbound generic telephony webhook (``webhooks/generic.py``), so one
verification routine serves both directions. The receiver recomputes the HMAC over the raw
body bytes it received, compares in constant time, and rejects timestamps too far from its
clock (replays). See docs/integrations.md.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from ..models import CRMEndpoint, DeliveryKind
from . import payloads
from .base import Integration, dumps, post

SIGNATURE_HEADER = "X-CallTracking-Signature"
TIMESTAMP_HEADER = "X-CallTracking-Timestamp"
EVENT_HEADER = "X-CallTracking-Event"
DELIVERY_HEADER = "X-CallTracking-Delivery"


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, tolerance=300, now=None) -> bool:
    """The receiving side (also used by the tests): True when the signature is ours and
    the timestamp is within ``tolerance`` seconds."""
    try:
        age = abs((now or time.time()) - int(timestamp))
    except (TypeError, ValueError):
        return False
    if age > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def signed_headers(endpoint: CRMEndpoint, body: bytes, *, event: str, delivery_id) -> dict:
    timestamp = int(time.time())
    return {
        EVENT_HEADER: event,
        DELIVERY_HEADER: str(delivery_id),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(endpoint.secret, timestamp, body),
    }


class CRMIntegration(Integration):
    kind = DeliveryKind.CRM
    model = CRMEndpoint

    def targets(self, call, event):
        field = CRMEndpoint.EVENT_FIELDS.get(event)
        if field is None:
            return []
        return list(CRMEndpoint.objects.filter(payloads.site_filter(call), active=True, **{field: True}))

    def build_payload(self, target, call, event, delivery):
        return payloads.crm_payload(call, event, delivery_id=delivery.pk)

    def send(self, target, delivery):
        body = dumps(delivery.payload)
        headers = signed_headers(
            target,
            body,
            event=delivery.payload.get("event") or delivery.event,
            delivery_id=delivery.pk,
        )
        return post(target.url, body=body, headers=headers, redact=(target.secret,))


def ping_payload(endpoint: CRMEndpoint) -> dict:
    """A "ping" the admin sends to check an endpoint and its signature verification."""
    return {
        "event": "ping",
        "delivery_id": None,
        "sent_by": "wagtail-calltracking",
        "endpoint": endpoint.name,
        "message": "Test delivery from the Wagtail admin. Verify the signature as documented.",
    }


def send_ping(endpoint: CRMEndpoint):
    body = dumps(ping_payload(endpoint))
    headers = signed_headers(endpoint, body, event="ping", delivery_id="test")
    return post(endpoint.url, body=body, headers=headers, redact=(endpoint.secret,))
