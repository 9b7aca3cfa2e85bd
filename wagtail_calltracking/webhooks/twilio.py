"""Twilio Programmable Voice.

Console (Phone Numbers › the number › Voice configuration):

* "A call comes in": Webhook, ``https://<site>/calltracking/webhooks/twilio/voice/``, POST.
* "Call status changes": ``https://<site>/calltracking/webhooks/twilio/status/``, POST
  (gives the whole call's duration and catches calls whose voice webhook failed).

The TwiML answer points ``<Dial action>`` at ``dial/`` (the forward's outcome),
``<Number statusCallback>`` at ``status/`` (the forwarded leg: ringing, answered, completed),
``recordingStatusCallback`` at ``recording/`` and the whisper ``<Number url>`` at
``whisper/``. Every request is verified with ``X-Twilio-Signature`` (HMAC-SHA1 of the URL
plus the sorted POST parameters, keyed with the auth token; HMAC-SHA256 when Twilio says so
in ``X-Twilio-Webhooks-Signature-Settings``), trying the URL with and without its default
port as Twilio's own validator does.
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
    is_json_request,
    parse_datetime_any,
    public_url,
    to_int,
)
from .registry import WebhookProvider, webhook_url

# --- vocabulary -----------------------------------------------------------------------------

#: ``DialCallStatus`` (the ``<Dial action>`` request) → result.
DIAL_OUTCOMES = {
    "completed": CallResult.ANSWERED,
    "answered": CallResult.ANSWERED,
    "busy": CallResult.BUSY,
    "no-answer": CallResult.MISSED,
    "failed": CallResult.FAILED,
    "canceled": CallResult.MISSED,
}
#: ``CallStatus`` of the forwarded (child) leg → (event type, result).
FORWARDED_LEG_STATUSES = {
    "queued": (CallEventType.RINGING, None),
    "initiated": (CallEventType.RINGING, None),
    "ringing": (CallEventType.RINGING, None),
    "in-progress": (CallEventType.ANSWERED, None),
    "answered": (CallEventType.ANSWERED, None),
    "completed": (CallEventType.COMPLETED, CallResult.ANSWERED),
    "busy": (CallEventType.COMPLETED, CallResult.BUSY),
    "no-answer": (CallEventType.COMPLETED, CallResult.MISSED),
    "failed": (CallEventType.COMPLETED, CallResult.FAILED),
    "canceled": (CallEventType.COMPLETED, CallResult.MISSED),
}
#: ``CallStatus`` of the inbound (parent) call → (event type, result). "in-progress" on the
#: parent only means the platform picked up to run our TwiML, not that anyone answered;
#: "completed" says nothing about the forward (inferred from what we know).
CALLER_LEG_STATUSES = {
    "queued": (CallEventType.RINGING, None),
    "initiated": (CallEventType.RINGING, None),
    "ringing": (CallEventType.RINGING, None),
    "in-progress": (CallEventType.RINGING, None),
    "completed": (CallEventType.COMPLETED, None),
    "busy": (CallEventType.COMPLETED, CallResult.BUSY),
    "no-answer": (CallEventType.COMPLETED, CallResult.MISSED),
    "failed": (CallEventType.COMPLETED, CallResult.FAILED),
    "canceled": (CallEventType.COMPLETED, CallResult.MISSED),
}

_HASHES = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}


# --- signature ------------------------------------------------------------------------------


def url_variants(url: str) -> list[str]:
    """The URL without and with its default port: Twilio signs either, inconsistently."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    default_port = 443 if parts.scheme == "https" else 80
    try:
        port = parts.port
    except ValueError:
        port = None
    with_port = parts._replace(netloc=f"{userinfo}{host}:{port or default_port}")
    without_port = parts._replace(netloc=f"{userinfo}{host}") if port in (None, default_port) else parts
    variants = [urlunsplit(without_port), urlunsplit(with_port), url]
    return list(dict.fromkeys(variants))


def compute_signature(secret: str, url: str, params, algorithm: str = "HMAC_SHA1") -> str:
    """Twilio's algorithm: the URL, then each parameter name followed by its values, names
    and values sorted; HMAC keyed with the auth token, base64."""
    message = url
    if params:
        for name in sorted(set(params.keys())):
            values = params.getlist(name) if hasattr(params, "getlist") else [params[name]]
            for value in sorted(set(values)):
                message += name + value
    digest = hmac.new(secret.encode("utf-8"), message.encode("utf-8"), _HASHES[algorithm]).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_algorithm(request) -> str:
    settings_header = request.headers.get("X-Twilio-Webhooks-Signature-Settings", "")
    for part in settings_header.split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return "HMAC_SHA1"


class TwilioSignatureMixin:
    """Verifies ``X-Twilio-Signature`` against every configured auth token (rotation)."""

    secret_setting = "TWILIO_AUTH_TOKEN"

    def validate_request(self, request):
        secrets = ct_settings.secrets(self.secret_setting)
        if not secrets:
            raise WebhookSignatureError(f"{self.secret_setting} is not configured.")
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature:
            raise WebhookSignatureError("Missing X-Twilio-Signature header.")
        algorithm = signature_algorithm(request)
        if algorithm not in _HASHES:
            raise WebhookSignatureError(f"Unsupported signature algorithm {algorithm!r}.")
        url = public_url(request)
        query = parse_qs(urlsplit(url).query)
        if "bodySHA256" in query:
            # JSON bodies: the URL carries the body's hash and is signed alone.
            expected = hashlib.sha256(request.body).hexdigest()
            if not hmac.compare_digest(expected, query["bodySHA256"][0]):
                raise WebhookSignatureError("Body does not match bodySHA256.")
            params = None
        elif request.method == "POST" and not is_json_request(request):
            params = form_params(request)
        else:
            params = None
        for candidate in url_variants(url):
            for secret in secrets:
                computed = compute_signature(secret, candidate, params, algorithm)
                if hmac.compare_digest(computed.encode(), signature.encode("utf-8", "replace")):
                    return
        raise WebhookSignatureError("Invalid X-Twilio-Signature.")


# --- parsing --------------------------------------------------------------------------------


class TwimlParsingMixin:
    """Parsing of Twilio-style form parameters (shared with Telnyx TeXML)."""

    def params(self, request):
        return form_params(request)

    def call_sid(self, params, name="CallSid") -> str:
        value = params.get(name, "")
        if not isinstance(value, str) or not value.strip():
            raise WebhookInputError(f"Missing {name}.")
        if len(value) > 128:
            raise WebhookInputError(f"{name} is too long.")
        return clean(value, 128)

    def caller_fields(self, params) -> dict:
        return {
            "from_number": clean(params.get("From", ""), 64),
            "to_number": clean(params.get("To", ""), 64),
            "caller_name": clean(params.get("CallerName", ""), 255),
            "caller_city": clean(params.get("FromCity", ""), 128),
            "caller_region": clean(params.get("FromState", ""), 128),
            "caller_country": clean(params.get("FromCountry", ""), 8),
        }

    def raw(self, params) -> dict:
        return {key: params.get(key, "") for key in list(params.keys())[:80]}

    def incoming_events(self, request) -> list[CallWebhookEvent]:
        params = self.params(request)
        sid = self.call_sid(params)
        fields = self.caller_fields(params)
        if not fields["to_number"]:
            raise WebhookInputError("Missing To.")
        return [
            CallWebhookEvent(
                event_type=CallEventType.INCOMING,
                call_id=sid,
                leg_id=sid,
                dedupe_key=f"voice:{sid}",
                raw=self.raw(params),
                **fields,
            )
        ]

    def status_events(self, request) -> list[CallWebhookEvent]:
        params = self.params(request)
        sid = self.call_sid(params)
        status = clean(params.get("CallStatus", ""), 32).lower()
        parent = clean(params.get("ParentCallSid", ""), 128)
        forwarded = bool(parent)
        table = FORWARDED_LEG_STATUSES if forwarded else CALLER_LEG_STATUSES
        if status not in table:
            if not status:
                raise WebhookInputError("Missing CallStatus.")
            return []  # a status we don't track
        event_type, outcome = table[status]
        duration = to_int(params.get("CallDuration"))
        sequence = to_int(params.get("SequenceNumber"))
        timestamp = parse_datetime_any(params.get("Timestamp"))
        event = CallWebhookEvent(
            event_type=event_type,
            call_id=parent or sid,
            leg_id=sid,
            is_forwarded_leg=forwarded,
            dedupe_key=f"status:{sid}:{status}:{sequence if sequence is not None else ''}",
            sequence=sequence,
            timestamp=timestamp,
            outcome=outcome,
            talk_seconds=duration if forwarded and event_type == CallEventType.COMPLETED else None,
            total_seconds=duration if not forwarded and event_type == CallEventType.COMPLETED else None,
            recording_url=clean(params.get("RecordingUrl", ""), 1024),
            recording_duration=to_int(params.get("RecordingDuration")),
            agent=clean(params.get("AgentId", "") or params.get("Agent", ""), 64),
            raw=self.raw(params),
            **self.caller_fields(params),
        )
        if forwarded:
            event.forwarded_to = event.to_number
        return [event]

    def dial_events(self, request) -> list[CallWebhookEvent]:
        params = self.params(request)
        sid = self.call_sid(params)
        status = clean(params.get("DialCallStatus", ""), 32).lower()
        outcome = DIAL_OUTCOMES.get(status)
        if outcome is None:
            raise WebhookInputError("Missing or unknown DialCallStatus.")
        return [
            CallWebhookEvent(
                event_type=CallEventType.COMPLETED,
                call_id=sid,
                leg_id=clean(params.get("DialCallSid", ""), 128),
                dedupe_key=f"dial:{sid}",
                outcome=outcome,
                talk_seconds=to_int(params.get("DialCallDuration"))
                if outcome == CallResult.ANSWERED
                else 0,
                recording_url=clean(params.get("RecordingUrl", ""), 1024),
                recording_duration=to_int(params.get("RecordingDuration")),
                raw=self.raw(params),
                **self.caller_fields(params),
            )
        ]

    def recording_events(self, request) -> list[CallWebhookEvent]:
        params = self.params(request)
        sid = self.call_sid(params)
        status = clean(params.get("RecordingStatus", "completed"), 32).lower()
        url = clean(params.get("RecordingUrl", ""), 1024)
        if status != "completed" or not url:
            return []
        recording_sid = clean(params.get("RecordingSid", ""), 64)
        return [
            CallWebhookEvent(
                event_type=CallEventType.RECORDING,
                call_id=sid,
                leg_id=sid,
                dedupe_key=f"recording:{recording_sid or url}",
                recording_url=url,
                recording_duration=to_int(params.get("RecordingDuration")),
                raw=self.raw(params),
            )
        ]


# --- markup ---------------------------------------------------------------------------------


def render_twiml(root: ElementTree.Element) -> HttpResponse:
    body = b'<?xml version="1.0" encoding="UTF-8"?>' + ElementTree.tostring(root, encoding="utf-8")
    return HttpResponse(body, content_type="text/xml; charset=utf-8")


def say_twiml(text: str) -> HttpResponse:
    root = ElementTree.Element("Response")
    if text:
        ElementTree.SubElement(root, "Say").text = text
    return render_twiml(root)


def hangup_twiml() -> HttpResponse:
    root = ElementTree.Element("Response")
    ElementTree.SubElement(root, "Hangup")
    return render_twiml(root)


def forwarding_twiml(request, provider: str, plan) -> HttpResponse:
    """``<Dial>`` to the destination, reporting to our dial/status/recording endpoints."""
    root = ElementTree.Element("Response")
    if plan.record and plan.announcement:
        ElementTree.SubElement(root, "Say").text = plan.announcement
    dial = ElementTree.SubElement(
        root,
        "Dial",
        {
            "action": webhook_url(request, provider, "dial"),
            "method": "POST",
            "timeout": str(plan.timeout),
            "answerOnBridge": "true",
        },
    )
    if not plan.pass_caller_id and plan.caller_id:
        dial.set("callerId", plan.caller_id)
    if plan.record:
        dial.set("record", "record-from-answer-dual")
        dial.set("recordingStatusCallback", webhook_url(request, provider, "recording"))
        dial.set("recordingStatusCallbackMethod", "POST")
    destination = plan.destination
    noun = "Sip" if destination.lower().startswith("sip:") else "Number"
    target = ElementTree.SubElement(
        dial,
        noun,
        {
            "statusCallback": webhook_url(request, provider, "status"),
            "statusCallbackEvent": "initiated ringing answered completed",
            "statusCallbackMethod": "POST",
        },
    )
    if plan.whisper:
        target.set("url", webhook_url(request, provider, "whisper", {"text": plan.whisper}))
        target.set("method", "POST")
    target.text = destination
    return render_twiml(root)


# --- views ---------------------------------------------------------------------------------
# Signature-less TwiML endpoints, shared by Twilio and Telnyx TeXML; each provider adds its
# signature mixin and its name.


class TwimlBaseView(FormOrQueryMixin, TwimlParsingMixin, CallWebhookView):
    """POST is what the consoles default to and what the docs recommend; GET is accepted
    too (the parameters are then in the signed URL)."""


class TwimlVoiceView(VoiceWebhookMixin, TwimlBaseView):
    def parse_events(self, request):
        return self.incoming_events(request)

    def render_forwarding(self, request, plan, call=None):
        return forwarding_twiml(request, self.provider, plan)


class TwimlStatusView(TwimlBaseView):
    endpoint = "status"

    def parse_events(self, request):
        return self.status_events(request)


class TwimlDialView(TwimlBaseView):
    """``<Dial action>``: the forward's outcome. The caller is still on the line: always
    answer TwiML (hang up; the call is over once the forward ended)."""

    endpoint = "dial"
    drives_call = True

    def parse_events(self, request):
        return self.dial_events(request)

    def build_response(self, request, result):
        return hangup_twiml()

    def fallback_response(self, request, events):
        return hangup_twiml()

    def empty_events_response(self, request):
        return hangup_twiml()


class TwimlRecordingView(TwimlBaseView):
    endpoint = "recording"

    def parse_events(self, request):
        return self.recording_events(request)


class TwimlWhisperView(TwimlBaseView):
    """Spoken to the manager who answers, before the caller is connected."""

    endpoint = "whisper"
    drives_call = True

    def parse_events(self, request):
        return []

    def whisper_text(self, request) -> str:
        return clean(request.GET.get("text", ""), 255)

    def empty_events_response(self, request):
        return say_twiml(self.whisper_text(request))

    def fallback_response(self, request, events):
        return say_twiml(self.whisper_text(request))


class TwilioVoiceView(TwilioSignatureMixin, TwimlVoiceView):
    provider = "twilio"


class TwilioStatusView(TwilioSignatureMixin, TwimlStatusView):
    provider = "twilio"


class TwilioDialView(TwilioSignatureMixin, TwimlDialView):
    provider = "twilio"


class TwilioRecordingView(TwilioSignatureMixin, TwimlRecordingView):
    provider = "twilio"


class TwilioWhisperView(TwilioSignatureMixin, TwimlWhisperView):
    provider = "twilio"


provider = WebhookProvider(
    name="twilio",
    label="Twilio",
    secret_setting="TWILIO_AUTH_TOKEN",
    endpoints={
        "voice": TwilioVoiceView,
        "status": TwilioStatusView,
        "dial": TwilioDialView,
        "recording": TwilioRecordingView,
        "whisper": TwilioWhisperView,
    },
)
