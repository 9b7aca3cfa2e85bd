"""Telnyx TeXML (Twilio-compatible markup; Telnyx's own ed25519 signature).

Portal (Voice › Programmable Voice › TeXML Applications › your application; assign the
tracking numbers to it):

* Voice URL: ``https://<site>/calltracking/webhooks/telnyx/voice/`` (POST);
* Status callback: ``https://<site>/calltracking/webhooks/telnyx/status/`` (POST);
* ``TELNYX_PUBLIC_KEY``: the account's public key (Account settings › Keys & credentials ›
  Public key, base64).

The answer is TeXML ``<Dial>`` with the same extras as Twilio (``dial/``, ``recording/``,
``whisper/``, forwarded-leg ``status/``). The ``status/`` endpoint also accepts Call Control
JSON events (``call.initiated``, ``call.answered``, ``call.hangup``,
``call.recording.saved``), grouping legs by ``call_session_id``; they carry no duration, so
ring and talk times are derived from the events' ``occurred_at``.

Every request is verified: ``telnyx-signature-ed25519`` is the ed25519 signature of
``"{telnyx-timestamp}|{raw body}"``; timestamps outside ``WEBHOOK_TOLERANCE_SECONDS`` are
refused. Verification uses PyNaCl (or ``cryptography`` when installed instead):
``pip install "wagtail-calltracking[telnyx]"``.
"""

from __future__ import annotations

import base64
import binascii
import time

from ..conf import ct_settings
from ..models import CallResult
from .base import (
    CallEventType,
    CallWebhookEvent,
    WebhookInputError,
    WebhookSignatureError,
    clean,
    is_json_request,
    json_object,
    parse_datetime_any,
)
from .registry import WebhookProvider
from .twilio import (
    TwimlDialView,
    TwimlRecordingView,
    TwimlStatusView,
    TwimlVoiceView,
    TwimlWhisperView,
)

#: Call Control ``hangup_cause`` → result (None: answered if it was answered).
HANGUP_CAUSES = {
    "normal_clearing": None,
    "originator_cancel": CallResult.MISSED,
    "timeout": CallResult.MISSED,
    "no_answer": CallResult.MISSED,
    "time_limit": None,
    "user_busy": CallResult.BUSY,
    "call_rejected": CallResult.FAILED,
    "not_found": CallResult.FAILED,
    "unspecified": CallResult.FAILED,
}


def ed25519_backend():
    """A function ``verify(public_key_bytes, message, signature) -> bool``, or None when
    neither PyNaCl nor cryptography is installed."""
    try:
        from nacl.exceptions import BadSignatureError, CryptoError
        from nacl.signing import VerifyKey
    except ImportError:
        pass
    else:

        def verify_nacl(key: bytes, message: bytes, signature: bytes) -> bool:
            try:
                VerifyKey(key).verify(message, signature)
            except (BadSignatureError, CryptoError, ValueError, TypeError):
                return False
            return True

        return verify_nacl
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        return None

    def verify_cryptography(key: bytes, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True

    return verify_cryptography


def decode_public_key(value: str) -> bytes | None:
    """A 32-byte ed25519 key from its base64 form (as the Telnyx portal shows it)."""
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == 32 else None


class TelnyxSignatureMixin:
    secret_setting = "TELNYX_PUBLIC_KEY"

    def validate_request(self, request):
        keys = [decode_public_key(value) for value in ct_settings.secrets(self.secret_setting)]
        keys = [key for key in keys if key]
        if not keys:
            raise WebhookSignatureError(f"{self.secret_setting} is not configured (or invalid).")
        verify = ed25519_backend()
        if verify is None:
            raise WebhookSignatureError("PyNaCl (or cryptography) is needed to verify Telnyx webhooks.")
        signature_b64 = request.headers.get("telnyx-signature-ed25519", "")
        timestamp = request.headers.get("telnyx-timestamp", "")
        if not signature_b64 or not timestamp:
            raise WebhookSignatureError("Missing telnyx-signature-ed25519 / telnyx-timestamp headers.")
        if not timestamp.strip().isdigit() or len(timestamp) > 12:
            raise WebhookSignatureError("Invalid telnyx-timestamp.")
        if abs(time.time() - int(timestamp)) > ct_settings.WEBHOOK_TOLERANCE_SECONDS:
            raise WebhookSignatureError("Stale telnyx-timestamp.")
        try:
            signature = base64.b64decode(signature_b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookSignatureError("Malformed telnyx-signature-ed25519.")
        message = timestamp.strip().encode("ascii") + b"|" + request.body
        if not any(verify(key, message, signature) for key in keys):
            raise WebhookSignatureError("Invalid telnyx-signature-ed25519.")


class TelnyxMixin(TelnyxSignatureMixin):
    provider = "telnyx"


class TelnyxVoiceView(TelnyxMixin, TwimlVoiceView):
    pass


class TelnyxStatusView(TelnyxMixin, TwimlStatusView):
    def parse_events(self, request):
        if is_json_request(request):
            return call_control_events(json_object(request))
        return self.status_events(request)


class TelnyxDialView(TelnyxMixin, TwimlDialView):
    pass


class TelnyxRecordingView(TelnyxMixin, TwimlRecordingView):
    pass


class TelnyxWhisperView(TelnyxMixin, TwimlWhisperView):
    pass


def call_control_events(document: dict) -> list[CallWebhookEvent]:
    """Call Control JSON (``{"data": {"event_type": …, "payload": {…}}}``) → events."""
    data = document.get("data")
    if not isinstance(data, dict):
        raise WebhookInputError("Missing data object.")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise WebhookInputError("Missing data.payload object.")
    event_type = clean(data.get("event_type"), 64)
    session = clean(payload.get("call_session_id"), 128)
    leg = clean(payload.get("call_leg_id") or payload.get("call_control_id"), 128)
    if not session:
        raise WebhookInputError("Missing call_session_id.")
    occurred_at = parse_datetime_any(data.get("occurred_at"))
    forwarded = clean(payload.get("direction"), 16).lower() == "outgoing"
    common = {
        "call_id": session,
        "leg_id": leg,
        "conversation_id": session,
        "dedupe_key": f"event:{clean(data.get('id'), 100) or leg + ':' + event_type}",
        "timestamp": occurred_at,
        "is_forwarded_leg": forwarded,
        "from_number": clean(payload.get("from"), 64),
        "to_number": clean(payload.get("to"), 64),
        "raw": {"event_type": event_type, "payload": dict(list(payload.items())[:60])},
    }
    if forwarded:
        common["forwarded_to"] = common["to_number"]
    if event_type == "call.initiated":
        kind = CallEventType.RINGING if forwarded else CallEventType.INCOMING
        return [CallWebhookEvent(event_type=kind, **common)]
    if event_type in ("call.answered", "call.bridged"):
        # The caller's leg is "answered" by the application itself: only the forwarded
        # leg's answer is a person answering.
        kind = CallEventType.ANSWERED if forwarded else CallEventType.RINGING
        return [CallWebhookEvent(event_type=kind, **common)]
    if event_type == "call.hangup":
        cause = clean(payload.get("hangup_cause"), 64).lower()
        outcome = HANGUP_CAUSES.get(cause, CallResult.FAILED if forwarded else None)
        if not forwarded and outcome not in (CallResult.MISSED, None):
            outcome = None  # the caller's leg ending says little about the forward
        started = parse_datetime_any(payload.get("start_time"))
        return [
            CallWebhookEvent(
                event_type=CallEventType.COMPLETED,
                outcome=outcome,
                started_at=None if forwarded else started,
                **common,
            )
        ]
    if event_type == "call.recording.saved":
        urls = payload.get("recording_urls") or payload.get("public_recording_urls") or {}
        url = ""
        if isinstance(urls, dict):
            url = clean(urls.get("mp3") or urls.get("wav"), 1024)
        if not url:
            return []
        start = parse_datetime_any(payload.get("recording_started_at"))
        end = parse_datetime_any(payload.get("recording_ended_at"))
        common["is_forwarded_leg"] = False
        return [
            CallWebhookEvent(
                event_type=CallEventType.RECORDING,
                recording_url=url,
                recording_duration=int((end - start).total_seconds()) if start and end and end >= start else None,
                **common,
            )
        ]
    return []


provider = WebhookProvider(
    name="telnyx",
    label="Telnyx",
    secret_setting="TELNYX_PUBLIC_KEY",
    endpoints={
        "voice": TelnyxVoiceView,
        "status": TelnyxStatusView,
        "dial": TelnyxDialView,
        "recording": TelnyxRecordingView,
        "whisper": TelnyxWhisperView,
    },
)
