"""Vonage (Nexmo) Voice API.

Dashboard (Applications › your voice application › Capabilities › Voice):

* Answer URL: ``https://<site>/calltracking/webhooks/vonage/voice/`` (GET or POST);
* Event URL: ``https://<site>/calltracking/webhooks/vonage/status/`` (POST);
* signed webhooks on (the default), with the account's *signature secret* in
  ``VONAGE_SIGNATURE_SECRET``; link the tracking numbers to the application.

The answer is an NCCO ``connect`` whose ``eventUrl`` is ``status/``; recording (``record``
action, events to ``recording/``) and the whisper (``onAnswer`` → ``whisper/``) when enabled.

Every request carries ``Authorization: Bearer <JWT>`` signed HS256 with the signature
secret: the token's signature, its ``iat`` (stale tokens are refused) and, for requests with a
body, its ``payload_hash`` (SHA-256 of the raw body) are checked. Numbers arrive without
"+" and are normalised to E.164. Legs are grouped by ``conversation_uuid``: the call is keyed
on it, the inbound leg is the caller's and the outbound leg is the forward.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from django.http import JsonResponse

from ..conf import ct_settings
from ..models import CallResult
from ..numbers.phone import to_e164
from .base import (
    CallEventType,
    CallWebhookEvent,
    CallWebhookView,
    FormOrQueryMixin,
    VoiceWebhookMixin,
    WebhookInputError,
    WebhookSignatureError,
    clean,
    is_json_request,
    json_object,
    parse_datetime_any,
    to_int,
)
from .registry import WebhookProvider, webhook_url

#: Status of the caller's (inbound) leg → (event type, result). Its "answered" means Vonage
#: picked up to run the NCCO, not that anyone answered.
CALLER_LEG_STATUSES = {
    "started": (CallEventType.RINGING, None),
    "ringing": (CallEventType.RINGING, None),
    "answered": (CallEventType.RINGING, None),
    "completed": (CallEventType.COMPLETED, None),
    "busy": (CallEventType.COMPLETED, CallResult.BUSY),
    "cancelled": (CallEventType.COMPLETED, CallResult.MISSED),
    "unanswered": (CallEventType.COMPLETED, CallResult.MISSED),
    "timeout": (CallEventType.COMPLETED, CallResult.MISSED),
    "rejected": (CallEventType.COMPLETED, CallResult.FAILED),
    "failed": (CallEventType.COMPLETED, CallResult.FAILED),
}
#: Status of the forwarded (outbound) leg → (event type, result).
FORWARDED_LEG_STATUSES = {
    "started": (CallEventType.RINGING, None),
    "ringing": (CallEventType.RINGING, None),
    "answered": (CallEventType.ANSWERED, None),
    "human": (CallEventType.ANSWERED, None),
    "machine": (CallEventType.COMPLETED, CallResult.VOICEMAIL),
    "completed": (CallEventType.COMPLETED, None),
    "busy": (CallEventType.COMPLETED, CallResult.BUSY),
    "cancelled": (CallEventType.COMPLETED, CallResult.MISSED),
    "unanswered": (CallEventType.COMPLETED, CallResult.MISSED),
    "timeout": (CallEventType.COMPLETED, CallResult.MISSED),
    "rejected": (CallEventType.COMPLETED, CallResult.FAILED),
    "failed": (CallEventType.COMPLETED, CallResult.FAILED),
}


# --- signature ------------------------------------------------------------------------------


def _b64url_decode(segment: str) -> bytes:
    segment = segment.strip()
    padding = "=" * (-len(segment) % 4)
    try:
        return base64.urlsafe_b64decode(segment + padding)
    except (ValueError, TypeError) as error:
        raise WebhookSignatureError(f"Malformed token: {error}")


def verify_hs256_jwt(token: str, secrets: list[str]) -> dict:
    """The claims of an HS256 JWT signed with one of ``secrets``; raises otherwise. Only
    HS256 is accepted (no "none", no algorithm confusion)."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise WebhookSignatureError("Malformed token.")
    try:
        header = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError):
        raise WebhookSignatureError("Malformed token.")
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise WebhookSignatureError("Token is not signed with HS256.")
    if not isinstance(claims, dict):
        raise WebhookSignatureError("Malformed token claims.")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii", "replace")
    signature = _b64url_decode(parts[2])
    for secret in secrets:
        expected = hmac.new(secret.encode("utf-8"), signing_input, hashlib.sha256).digest()
        if hmac.compare_digest(expected, signature):
            return claims
    raise WebhookSignatureError("Invalid token signature.")


class VonageSignatureMixin:
    secret_setting = "VONAGE_SIGNATURE_SECRET"

    def validate_request(self, request):
        secrets = ct_settings.secrets(self.secret_setting)
        if not secrets:
            raise WebhookSignatureError(f"{self.secret_setting} is not configured.")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise WebhookSignatureError("Missing Authorization: Bearer token.")
        claims = verify_hs256_jwt(token, secrets)
        issued_at = claims.get("iat")
        if isinstance(issued_at, bool) or not isinstance(issued_at, int | float):
            raise WebhookSignatureError("Token has no iat.")
        if abs(time.time() - issued_at) > ct_settings.WEBHOOK_TOLERANCE_SECONDS:
            raise WebhookSignatureError("Stale token (iat outside the tolerance).")
        expires = claims.get("exp")
        if isinstance(expires, int | float) and not isinstance(expires, bool) and time.time() > expires + 5:
            raise WebhookSignatureError("Expired token.")
        body = request.body
        if body:
            payload_hash = claims.get("payload_hash")
            if not isinstance(payload_hash, str):
                raise WebhookSignatureError("Token has no payload_hash for a request body.")
            if not hmac.compare_digest(
                hashlib.sha256(body).hexdigest().encode(), payload_hash.lower().encode("utf-8")
            ):
                raise WebhookSignatureError("Body does not match the token's payload_hash.")


# --- parsing --------------------------------------------------------------------------------


def _digits(e164: str) -> str:
    return e164.lstrip("+")


class VonageBaseView(VonageSignatureMixin, CallWebhookView):
    provider = "vonage"

    def payload(self, request) -> dict:
        if request.method == "GET":
            return {key: request.GET.get(key) for key in list(request.GET.keys())[:80]}
        if request.body and not is_json_request(request):
            raise WebhookInputError("Expected a JSON body (Content-Type: application/json).")
        return json_object(request) if request.body else {}

    def conversation(self, payload: dict) -> tuple[str, str]:
        conversation = payload.get("conversation_uuid")
        leg = payload.get("uuid")
        conversation = conversation if isinstance(conversation, str) else ""
        leg = leg if isinstance(leg, str) else ""
        call_id = conversation.strip() or leg.strip()
        if not call_id:
            raise WebhookInputError("Missing conversation_uuid and uuid.")
        if len(call_id) > 128:
            raise WebhookInputError("conversation_uuid is too long.")
        return clean(call_id, 128), clean(leg, 128)

    def raw(self, payload: dict) -> dict:
        return dict(list(payload.items())[:80])

    def recording_events(self, payload: dict) -> list[CallWebhookEvent]:
        url = clean(payload.get("recording_url"), 1024)
        if not url:
            return []
        call_id, leg = self.conversation(payload)
        start = parse_datetime_any(payload.get("start_time"))
        end = parse_datetime_any(payload.get("end_time"))
        duration = int((end - start).total_seconds()) if start and end and end >= start else None
        return [
            CallWebhookEvent(
                event_type=CallEventType.RECORDING,
                call_id=call_id,
                leg_id=leg,
                dedupe_key=f"recording:{clean(payload.get('recording_uuid'), 64) or url}",
                recording_url=url,
                recording_duration=duration,
                raw=self.raw(payload),
            )
        ]


class VonageVoiceView(FormOrQueryMixin, VoiceWebhookMixin, VonageBaseView):
    def parse_events(self, request):
        payload = self.payload(request)
        call_id, leg = self.conversation(payload)
        to_number = clean(payload.get("to"), 64)
        if not to_number:
            raise WebhookInputError("Missing to.")
        return [
            CallWebhookEvent(
                event_type=CallEventType.INCOMING,
                call_id=call_id,
                leg_id=leg,
                conversation_id=call_id,
                dedupe_key=f"answer:{leg or call_id}",
                from_number=clean(payload.get("from") or payload.get("from_user"), 64),
                to_number=to_number,
                timestamp=parse_datetime_any(payload.get("timestamp")),
                raw=self.raw(payload),
            )
        ]

    def render_forwarding(self, request, plan, call=None):
        ncco = []
        if plan.record and plan.announcement:
            ncco.append({"action": "talk", "text": plan.announcement})
        if plan.record:
            ncco.append(
                {
                    "action": "record",
                    "eventUrl": [webhook_url(request, self.provider, "recording")],
                    "eventMethod": "POST",
                }
            )
        destination = plan.destination
        if destination.lower().startswith("sip:"):
            endpoint = {"type": "sip", "uri": destination}
        else:
            endpoint = {"type": "phone", "number": _digits(to_e164(destination) or destination)}
        if plan.whisper:
            endpoint["onAnswer"] = {
                "url": webhook_url(request, self.provider, "whisper", {"text": plan.whisper})
            }
        caller_id = plan.caller_id if plan.pass_caller_id else plan.tracking_number
        connect = {
            "action": "connect",
            "timeout": plan.timeout,
            "eventUrl": [webhook_url(request, self.provider, "status")],
            "eventMethod": "POST",
            "endpoint": [endpoint],
        }
        if caller_id and caller_id.startswith("+"):
            connect["from"] = _digits(caller_id)
        ncco.append(connect)
        return JsonResponse(ncco, safe=False)


class VonageStatusView(VonageBaseView):
    endpoint = "status"

    def parse_events(self, request):
        payload = self.payload(request)
        if payload.get("recording_url"):
            return self.recording_events(payload)
        call_id, leg = self.conversation(payload)
        status = clean(payload.get("status"), 32).lower()
        direction = clean(payload.get("direction"), 16).lower()
        forwarded = direction == "outbound"
        table = FORWARDED_LEG_STATUSES if forwarded else CALLER_LEG_STATUSES
        if status not in table:
            if not status:
                raise WebhookInputError("Missing status.")
            return []
        event_type, outcome = table[status]
        duration = to_int(payload.get("duration"))
        completed = event_type == CallEventType.COMPLETED
        timestamp = parse_datetime_any(payload.get("timestamp")) or parse_datetime_any(
            payload.get("end_time") if completed else None
        )
        event = CallWebhookEvent(
            event_type=event_type,
            call_id=call_id,
            leg_id=leg,
            conversation_id=call_id,
            is_forwarded_leg=forwarded,
            dedupe_key=f"event:{leg}:{status}",
            timestamp=timestamp,
            outcome=outcome,
            from_number=clean(payload.get("from"), 64),
            to_number=clean(payload.get("to"), 64),
            talk_seconds=duration if forwarded and completed else None,
            total_seconds=duration if not forwarded and completed else None,
            started_at=None if forwarded else parse_datetime_any(payload.get("start_time")),
            raw=self.raw(payload),
        )
        if forwarded:
            event.forwarded_to = event.to_number
        return [event]


class VonageRecordingView(VonageBaseView):
    endpoint = "recording"

    def parse_events(self, request):
        return self.recording_events(self.payload(request))

class VonageWhisperView(FormOrQueryMixin, VonageBaseView):
    """``onAnswer`` NCCO: spoken to the manager before the caller is connected."""

    endpoint = "whisper"
    drives_call = True

    def parse_events(self, request):
        return []

    def whisper(self, request):
        text = clean(request.GET.get("text", ""), 255)
        return JsonResponse([{"action": "talk", "text": text}] if text else [], safe=False)

    def empty_events_response(self, request):
        return self.whisper(request)

    def fallback_response(self, request, events):
        return self.whisper(request)


provider = WebhookProvider(
    name="vonage",
    label="Vonage",
    secret_setting="VONAGE_SIGNATURE_SECRET",
    endpoints={
        "voice": VonageVoiceView,
        "status": VonageStatusView,
        "recording": VonageRecordingView,
        "whisper": VonageWhisperView,
    },
)
