"""Generic JSON provider for self-hosted PBXs (Asterisk, FreePBX, FreeSWITCH, 3CX scripts).

Endpoints (POST, ``Content-Type: application/json``):

* ``voice/`` — the call reached a tracking number; the answer says where to forward it::

      {"call_id": "1714567890.42", "from": "+15551230000", "to": "+15557654321"}
      → {"action": "forward", "forward_to": "+15559876543", "timeout": 25, "record": false,
         "announcement": "", "whisper": "Call from Google Ads.", "caller_id": "+15551230000",
         "pass_caller_id": true, "call_id": "1714567890.42", "source": "Google Ads",
         "confidence": "exact", "fallback": false}

  ``voice/?format=text`` answers the destination alone, as ``text/plain``.
* ``status/`` — progress and completion (one event, a list, or ``{"events": [...]}``)::

      {"event": "completed", "call_id": "1714567890.42", "result": "answered",
       "talk_seconds": 184, "ring_seconds": 7, "agent": "201", "timestamp": 1714568090}

  ``event``: incoming, ringing, answered, completed, recording. ``result``: answered, missed,
  busy, failed, voicemail (Asterisk's DIALSTATUS values ANSWER, NOANSWER, BUSY, CANCEL,
  CONGESTION, CHANUNAVAIL are accepted too). Optional: ``forwarded_to``, ``agent`` (extension
  or agent id, matched against managers), ``total_seconds``, ``recording_url``,
  ``recording_duration``, ``caller_name``, ``event_id`` (de-duplication of retries),
  ``timestamp`` (ISO 8601 or unix seconds; default: when received).

Signature: ``X-CallTracking-Timestamp: <unix seconds>`` and
``X-CallTracking-Signature: v1=<hex>`` where ``<hex>`` is HMAC-SHA256, keyed with
``GENERIC_SECRET``, of ``"<timestamp>." + raw body``. Several ``v1=`` values may be sent,
comma-separated (the sender rotating secrets); timestamps outside
``WEBHOOK_TOLERANCE_SECONDS`` are refused. ``docs/providers.md`` has a copy-paste Asterisk
AGI script.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from django.http import HttpResponse, JsonResponse

from ..conf import ct_settings
from ..models import CallResult
from .base import (
    CallEventType,
    CallWebhookEvent,
    CallWebhookView,
    VoiceWebhookMixin,
    WebhookInputError,
    WebhookSignatureError,
    clean,
    is_json_request,
    json_body,
    parse_datetime_any,
    to_int,
)
from .registry import WebhookProvider

TIMESTAMP_HEADER = "X-CallTracking-Timestamp"
SIGNATURE_HEADER = "X-CallTracking-Signature"

EVENT_TYPES = {
    "incoming": CallEventType.INCOMING,
    "start": CallEventType.INCOMING,
    "ringing": CallEventType.RINGING,
    "answered": CallEventType.ANSWERED,
    "answer": CallEventType.ANSWERED,
    "completed": CallEventType.COMPLETED,
    "hangup": CallEventType.COMPLETED,
    "end": CallEventType.COMPLETED,
    "recording": CallEventType.RECORDING,
}
RESULTS = {
    "answered": CallResult.ANSWERED,
    "answer": CallResult.ANSWERED,
    "missed": CallResult.MISSED,
    "abandoned": CallResult.MISSED,  # missed vs abandoned is decided by the ring time
    "no-answer": CallResult.MISSED,
    "noanswer": CallResult.MISSED,
    "cancel": CallResult.MISSED,
    "canceled": CallResult.MISSED,
    "cancelled": CallResult.MISSED,
    "busy": CallResult.BUSY,
    "failed": CallResult.FAILED,
    "congestion": CallResult.FAILED,
    "chanunavail": CallResult.FAILED,
    "dontcall": CallResult.FAILED,
    "torture": CallResult.FAILED,
    "invalidargs": CallResult.FAILED,
    "voicemail": CallResult.VOICEMAIL,
}
MAX_EVENTS_PER_REQUEST = 100


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The hex signature a sender puts in ``X-CallTracking-Signature: v1=<hex>``."""
    return hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


class GenericSignatureMixin:
    secret_setting = "GENERIC_SECRET"

    def validate_request(self, request):
        secrets = ct_settings.secrets(self.secret_setting)
        if not secrets:
            raise WebhookSignatureError(f"{self.secret_setting} is not configured.")
        timestamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
        header = request.headers.get(SIGNATURE_HEADER, "")
        if not timestamp or not header:
            raise WebhookSignatureError(f"Missing {TIMESTAMP_HEADER} / {SIGNATURE_HEADER} headers.")
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise WebhookSignatureError(f"Invalid {TIMESTAMP_HEADER}.")
        if abs(time.time() - int(timestamp)) > ct_settings.WEBHOOK_TOLERANCE_SECONDS:
            raise WebhookSignatureError(f"Stale {TIMESTAMP_HEADER}.")
        offered = [
            part.strip()[3:].lower().encode("utf-8", "replace")
            for part in header.split(",")
            if part.strip().startswith("v1=")
        ]
        for secret in secrets:
            expected = sign(secret, timestamp, request.body).encode()
            if any(hmac.compare_digest(expected, value) for value in offered):
                return
        raise WebhookSignatureError(f"Invalid {SIGNATURE_HEADER}.")


class JsonCallEventsMixin:
    """Parsing of the generic JSON call events (shared with the demo provider)."""

    #: Event assumed when a payload has no "event" (the voice endpoint: "incoming").
    default_event: str | None = None

    def documents(self, request) -> list[dict]:
        if not is_json_request(request):
            raise WebhookInputError("Expected Content-Type: application/json.")
        payload = json_body(request)
        if isinstance(payload, dict) and isinstance(payload.get("events"), list):
            payload = payload["events"]
        documents = payload if isinstance(payload, list) else [payload]
        if not documents or len(documents) > MAX_EVENTS_PER_REQUEST:
            raise WebhookInputError(f"Send between 1 and {MAX_EVENTS_PER_REQUEST} events.")
        if not all(isinstance(document, dict) for document in documents):
            raise WebhookInputError("Every event must be a JSON object.")
        return documents

    def event_from(self, document: dict) -> CallWebhookEvent:
        name = document.get("event", self.default_event)
        if not isinstance(name, str) or name.strip().lower() not in EVENT_TYPES:
            raise WebhookInputError(
                f"Unknown or missing event {name!r}; expected one of {', '.join(EVENT_TYPES)}."
            )
        name = name.strip().lower()
        call_id = document.get("call_id")
        if isinstance(call_id, int) and not isinstance(call_id, bool):
            call_id = str(call_id)
        if not isinstance(call_id, str) or not call_id.strip() or len(call_id) > 128:
            raise WebhookInputError("call_id must be a non-empty string of at most 128 characters.")
        call_id = clean(call_id, 128)
        result = document.get("result")
        outcome = None
        if result not in (None, ""):
            if not isinstance(result, str) or result.strip().lower() not in RESULTS:
                raise WebhookInputError(f"Unknown result {result!r}; expected one of {', '.join(RESULTS)}.")
            outcome = RESULTS[result.strip().lower()]
        kind = EVENT_TYPES[name]
        if kind == CallEventType.INCOMING and not clean(document.get("to"), 64):
            raise WebhookInputError("An incoming call needs the number called (to).")
        event_id = clean(document.get("event_id"), 200)
        talk = to_int(document.get("talk_seconds", document.get("duration")))
        if event_id:
            dedupe_key = f"{name}:{event_id}"
        elif kind == CallEventType.INCOMING:
            dedupe_key = f"incoming:{call_id}"  # a retried voice request
        else:
            dedupe_key = ""
        return CallWebhookEvent(
            event_type=kind,
            call_id=call_id,
            leg_id=clean(document.get("leg_id"), 128) or call_id,
            dedupe_key=dedupe_key,
            timestamp=parse_datetime_any(document.get("timestamp")),
            from_number=clean(document.get("from"), 64),
            to_number=clean(document.get("to"), 64),
            forwarded_to=clean(document.get("forwarded_to"), 64),
            outcome=outcome if kind == CallEventType.COMPLETED else None,
            talk_seconds=talk if kind == CallEventType.COMPLETED else None,
            total_seconds=to_int(document.get("total_seconds")),
            ring_seconds=to_int(document.get("ring_seconds")),
            recording_url=clean(document.get("recording_url"), 1024),
            recording_duration=to_int(document.get("recording_duration")),
            caller_name=clean(document.get("caller_name"), 255),
            agent=clean(document.get("agent"), 64),
            raw={key: document[key] for key in list(document)[:60]},
        )

    def parse_events(self, request):
        return [self.event_from(document) for document in self.documents(request)]


def plan_document(plan, call=None) -> dict:
    return {
        "action": "forward",
        "forward_to": plan.destination,
        "timeout": plan.timeout,
        "record": plan.record,
        "announcement": plan.announcement,
        "whisper": plan.whisper,
        "caller_id": plan.caller_id,
        "pass_caller_id": plan.pass_caller_id,
        "call_id": plan.call_id,
        "source": plan.source_label,
        "confidence": plan.confidence,
        "fallback": plan.fallback,
    }


class JsonVoiceMixin(VoiceWebhookMixin):
    default_event = "incoming"

    def render_forwarding(self, request, plan, call=None):
        if request.GET.get("format") == "text":
            return HttpResponse(plan.destination, content_type="text/plain; charset=utf-8")
        return JsonResponse(plan_document(plan, call))


class GenericBaseView(GenericSignatureMixin, JsonCallEventsMixin, CallWebhookView):
    provider = "generic"


class GenericVoiceView(JsonVoiceMixin, GenericBaseView):
    pass


class GenericStatusView(GenericBaseView):
    endpoint = "status"

    def build_response(self, request, result):
        return JsonResponse({"ok": True, "call_id": result.call.provider_call_id if result.call else None})


provider = WebhookProvider(
    name="generic",
    label="Generic JSON (self-hosted PBX)",
    secret_setting="GENERIC_SECRET",
    endpoints={"voice": GenericVoiceView, "status": GenericStatusView},
)
