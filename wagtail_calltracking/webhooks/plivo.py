"""Plivo Voice (XML application).

Console (Voice › Applications › XML › your application; then link the tracking numbers):

* Answer URL: ``https://<site>/calltracking/webhooks/plivo/voice/`` (POST);
* Hangup URL: ``https://<site>/calltracking/webhooks/plivo/status/`` (POST);
* ``PLIVO_AUTH_TOKEN``: the (sub)account's auth token.

The Plivo XML answer is ``<Dial action="dial/" callbackUrl="status/">``: ``dial/`` receives
the forward's outcome (``DialStatus``), ``status/`` the forwarded leg's events
(``DialAction`` answer/hangup) and the hangup of the whole call. Recording uses
``<Record startOnDialAnswer>`` reporting to ``recording/``; the whisper uses
``<Dial confirmSound="whisper/">``.

Requests are verified with signature V3 (``X-Plivo-Signature-V3`` and its nonce): HMAC-SHA256
of the URL, its sorted query, the sorted POST parameters and the nonce, keyed with the auth
token. Numbers arrive without "+" and are normalised to E.164.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit, urlunsplit
from xml.etree import ElementTree

from django.http import HttpResponse

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
    form_params,
    public_url,
    to_int,
)
from .registry import WebhookProvider, webhook_url

#: ``DialStatus`` (the ``<Dial action>`` request) → result.
DIAL_OUTCOMES = {
    "completed": CallResult.ANSWERED,
    "answer": CallResult.ANSWERED,
    "busy": CallResult.BUSY,
    "failed": CallResult.FAILED,
    "timeout": CallResult.MISSED,
    "no-answer": CallResult.MISSED,
    "cancel": CallResult.MISSED,
    "canceled": CallResult.MISSED,
}
#: ``HangupCause`` of the forwarded leg (``DialBLegHangupCause``) → result.
HANGUP_CAUSES = {
    "NORMAL_CLEARING": None,  # ended normally: answered if it was answered
    "USER_BUSY": CallResult.BUSY,
    "NO_ANSWER": CallResult.MISSED,
    "NO_USER_RESPONSE": CallResult.MISSED,
    "ORIGINATOR_CANCEL": CallResult.MISSED,
    "ALLOTTED_TIMEOUT": CallResult.MISSED,
    "CALL_REJECTED": CallResult.FAILED,
    "UNALLOCATED_NUMBER": CallResult.FAILED,
    "NORMAL_TEMPORARY_FAILURE": CallResult.FAILED,
    "INVALID_NUMBER_FORMAT": CallResult.FAILED,
}
#: ``CallStatus`` of the caller's leg on the hangup URL → result (None: inferred).
CALLER_HANGUP_STATUSES = {
    "completed": None,
    "busy": CallResult.BUSY,
    "failed": CallResult.FAILED,
    "timeout": CallResult.MISSED,
    "no-answer": CallResult.MISSED,
    "cancel": CallResult.MISSED,
}


# --- signature ------------------------------------------------------------------------------


def _sorted_query(params: dict[str, list[str]]) -> str:
    return "&".join(
        "&".join(f"{key}={value}" for value in sorted(params[key])) for key in sorted(params)
    )


def _sorted_params(params: dict[str, list[str]]) -> str:
    return "".join(
        "".join(f"{key}{value}" for value in sorted(params[key])) for key in sorted(params)
    )


def signature_v3_base(method: str, url: str, params: dict[str, list[str]]) -> str:
    """The string Plivo signs (before ``"." + nonce``): see plivo.utils.signature_v3."""
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    query = parse_qs(parts.query, keep_blank_values=True)
    if method == "GET":
        merged = {**params, **query}
        query_string = _sorted_query(merged)
        return base + ("?" + query_string if query_string else "")
    query_string = _sorted_query(query)
    if not params:
        return base + ("?" + query_string if query_string else "")
    return base + "?" + query_string + ("." if query_string else "") + _sorted_params(params)


def signature_v3(secret: str, method: str, url: str, params, nonce: str) -> str:
    message = f"{signature_v3_base(method, url, params)}.{nonce}".encode()
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class PlivoSignatureMixin:
    secret_setting = "PLIVO_AUTH_TOKEN"

    def validate_request(self, request):
        secrets = ct_settings.secrets(self.secret_setting)
        if not secrets:
            raise WebhookSignatureError(f"{self.secret_setting} is not configured.")
        header = request.headers.get("X-Plivo-Signature-V3", "")
        nonce = request.headers.get("X-Plivo-Signature-V3-Nonce", "")
        if not header or not nonce:
            raise WebhookSignatureError("Missing X-Plivo-Signature-V3 (and nonce) headers.")
        method = "GET" if request.method == "GET" else "POST"
        params = {} if method == "GET" else dict(form_params(request).lists())
        url = public_url(request)
        offered = [value.strip().encode("utf-8", "replace") for value in header.split(",")]
        for secret in secrets:
            expected = signature_v3(secret, method, url, params, nonce).encode()
            if any(hmac.compare_digest(expected, value) for value in offered):
                return
        raise WebhookSignatureError("Invalid X-Plivo-Signature-V3.")


# --- parsing --------------------------------------------------------------------------------


class PlivoBaseView(PlivoSignatureMixin, FormOrQueryMixin, CallWebhookView):
    provider = "plivo"

    def params(self, request):
        return form_params(request)

    def call_uuid(self, params, *names) -> str:
        for name in names or ("CallUUID",):
            value = params.get(name, "")
            if isinstance(value, str) and value.strip():
                if len(value) > 128:
                    raise WebhookInputError(f"{name} is too long.")
                return clean(value, 128)
        raise WebhookInputError(f"Missing {' or '.join(names or ('CallUUID',))}.")

    def raw(self, params) -> dict:
        return {key: params.get(key, "") for key in list(params.keys())[:80]}


class PlivoVoiceView(VoiceWebhookMixin, PlivoBaseView):
    def parse_events(self, request):
        params = self.params(request)
        call_uuid = self.call_uuid(params)
        to_number = clean(params.get("To", ""), 64)
        if not to_number:
            raise WebhookInputError("Missing To.")
        return [
            CallWebhookEvent(
                event_type=CallEventType.INCOMING,
                call_id=call_uuid,
                leg_id=call_uuid,
                dedupe_key=f"answer:{call_uuid}",
                from_number=clean(params.get("From", ""), 64),
                to_number=to_number,
                caller_name=clean(params.get("CallerName", ""), 255),
                raw=self.raw(params),
            )
        ]

    def render_forwarding(self, request, plan, call=None):
        root = ElementTree.Element("Response")
        if plan.record and plan.announcement:
            ElementTree.SubElement(root, "Speak").text = plan.announcement
        if plan.record:
            ElementTree.SubElement(
                root,
                "Record",
                {
                    "action": webhook_url(request, self.provider, "recording"),
                    "method": "POST",
                    "startOnDialAnswer": "true",
                    "redirect": "false",
                    "maxLength": "7200",
                },
            )
        dial = ElementTree.SubElement(
            root,
            "Dial",
            {
                "action": webhook_url(request, self.provider, "dial"),
                "method": "POST",
                "timeout": str(plan.timeout),
                "callbackUrl": webhook_url(request, self.provider, "status"),
                "callbackMethod": "POST",
            },
        )
        if not plan.pass_caller_id and plan.caller_id:
            dial.set("callerId", plan.caller_id.lstrip("+"))
        if plan.whisper:
            dial.set(
                "confirmSound", webhook_url(request, self.provider, "whisper", {"text": plan.whisper})
            )
        destination = plan.destination
        if destination.lower().startswith("sip:"):
            ElementTree.SubElement(dial, "User").text = destination
        else:
            ElementTree.SubElement(dial, "Number").text = (to_e164(destination) or destination).lstrip("+")
        return plivo_xml(root)


def plivo_xml(root) -> HttpResponse:
    body = b'<?xml version="1.0" encoding="UTF-8"?>' + ElementTree.tostring(root, encoding="utf-8")
    return HttpResponse(body, content_type="application/xml; charset=utf-8")


def _hangup_xml() -> HttpResponse:
    root = ElementTree.Element("Response")
    ElementTree.SubElement(root, "Hangup")
    return plivo_xml(root)


class PlivoStatusView(PlivoBaseView):
    """The hangup URL of the application, and the ``<Dial callbackUrl>`` events of the
    forwarded leg (recognised by their ``DialAction``)."""

    endpoint = "status"

    def parse_events(self, request):
        params = self.params(request)
        action = clean(params.get("DialAction", ""), 32).lower()
        if action:
            return self.dial_callback_events(params, action)
        call_uuid = self.call_uuid(params)
        status = clean(params.get("CallStatus", ""), 32).lower()
        if status not in CALLER_HANGUP_STATUSES:
            if status in ("ringing", "in-progress"):
                return []
            raise WebhookInputError("Missing or unknown CallStatus.")
        return [
            CallWebhookEvent(
                event_type=CallEventType.COMPLETED,
                call_id=call_uuid,
                leg_id=call_uuid,
                dedupe_key=f"hangup:{call_uuid}",
                outcome=CALLER_HANGUP_STATUSES[status],
                from_number=clean(params.get("From", ""), 64),
                to_number=clean(params.get("To", ""), 64),
                total_seconds=to_int(params.get("Duration")),
                raw=self.raw(params),
            )
        ]

    def dial_callback_events(self, params, action: str):
        call_uuid = self.call_uuid(params, "DialALegUUID", "CallUUID")
        leg = clean(params.get("DialBLegUUID", ""), 128)
        destination = clean(params.get("DialBLegTo", ""), 64)
        common = {
            "call_id": call_uuid,
            "leg_id": leg,
            "is_forwarded_leg": True,
            "to_number": destination,
            "forwarded_to": destination,
            "raw": self.raw(params),
        }
        if action in ("answer", "connected"):
            return [CallWebhookEvent(event_type=CallEventType.ANSWERED, dedupe_key=f"dial-answer:{leg}", **common)]
        if action == "hangup":
            cause = clean(params.get("DialBLegHangupCause", ""), 64).upper()
            duration = to_int(params.get("DialBLegDuration"))
            outcome = HANGUP_CAUSES.get(cause)
            if outcome is None and duration:
                outcome = CallResult.ANSWERED
            return [
                CallWebhookEvent(
                    event_type=CallEventType.COMPLETED,
                    dedupe_key=f"dial-hangup:{leg}",
                    outcome=outcome,
                    talk_seconds=duration,
                    **common,
                )
            ]
        return []  # "digits" and future actions


class PlivoDialView(PlivoBaseView):
    """``<Dial action>``: the forward's outcome. Answers XML (the caller may be waiting)."""

    endpoint = "dial"
    drives_call = True

    def parse_events(self, request):
        params = self.params(request)
        call_uuid = self.call_uuid(params, "CallUUID", "DialALegUUID")
        status = clean(params.get("DialStatus", ""), 32).lower()
        outcome = DIAL_OUTCOMES.get(status)
        if outcome is None:
            raise WebhookInputError("Missing or unknown DialStatus.")
        return [
            CallWebhookEvent(
                event_type=CallEventType.COMPLETED,
                call_id=call_uuid,
                leg_id=clean(params.get("DialBLegUUID", ""), 128),
                dedupe_key=f"dial:{call_uuid}",
                outcome=outcome,
                talk_seconds=to_int(params.get("DialBLegDuration"))
                if outcome == CallResult.ANSWERED
                else 0,
                from_number=clean(params.get("From", ""), 64),
                to_number=clean(params.get("To", ""), 64),
                raw=self.raw(params),
            )
        ]

    def build_response(self, request, result):
        return _hangup_xml()

    def fallback_response(self, request, events):
        return _hangup_xml()

    def empty_events_response(self, request):
        return _hangup_xml()


class PlivoRecordingView(PlivoBaseView):
    endpoint = "recording"

    def parse_events(self, request):
        params = self.params(request)
        url = clean(params.get("RecordUrl", ""), 1024)
        if not url:
            return []
        call_uuid = self.call_uuid(params)
        duration = to_int(params.get("RecordingDuration"))
        if duration is None:
            milliseconds = to_int(params.get("RecordingDurationMs"))
            duration = milliseconds // 1000 if milliseconds is not None else None
        return [
            CallWebhookEvent(
                event_type=CallEventType.RECORDING,
                call_id=call_uuid,
                leg_id=call_uuid,
                dedupe_key=f"recording:{clean(params.get('RecordingID', ''), 64) or url}",
                recording_url=url,
                recording_duration=duration,
                raw=self.raw(params),
            )
        ]

    def empty_events_response(self, request):
        return plivo_xml(ElementTree.Element("Response"))

    def build_response(self, request, result):
        return plivo_xml(ElementTree.Element("Response"))


class PlivoWhisperView(PlivoBaseView):
    """``confirmSound``: spoken to the manager who answers."""

    endpoint = "whisper"
    drives_call = True

    def parse_events(self, request):
        return []

    def whisper(self, request):
        root = ElementTree.Element("Response")
        text = clean(request.GET.get("text", ""), 255)
        if text:
            ElementTree.SubElement(root, "Speak").text = text
        return plivo_xml(root)

    def empty_events_response(self, request):
        return self.whisper(request)

    def fallback_response(self, request, events):
        return self.whisper(request)


provider = WebhookProvider(
    name="plivo",
    label="Plivo",
    secret_setting="PLIVO_AUTH_TOKEN",
    endpoints={
        "voice": PlivoVoiceView,
        "status": PlivoStatusView,
        "dial": PlivoDialView,
        "recording": PlivoRecordingView,
        "whisper": PlivoWhisperView,
    },
)
