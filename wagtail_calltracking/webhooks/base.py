"""The webhook view every provider builds on (in the style of django-anymail).

A request goes through, in this order:

1. **size** — bodies over ``WEBHOOK_MAX_BODY_BYTES`` are refused (413) unread;
2. **verification** — every ``validate_request`` defined along the class hierarchy runs
   (:func:`collect_all_methods`) on the raw body and the public URL, before anything is
   parsed; a failure answers 403 and is logged (the request is kept in the raw log as
   *rejected*, no call is stored);
3. **raw log** — the request is stored as a :class:`~wagtail_calltracking.models.WebhookEvent`;
4. **parsing** — ``parse_events(request)`` turns the provider's payload into
   :class:`CallWebhookEvent` objects (plain dict mappings from the provider's vocabulary to
   ours); bad input answers 400 with a clear message;
5. **processing** — :func:`~wagtail_calltracking.webhooks.processing.process_events`
   creates or updates the call (unique on provider + call id), attributes it and records its
   timeline, then signals after commit;
6. **answer** — ``build_response``: forwarding markup for the voice endpoint, an
   acknowledgement elsewhere.

**Fail-open:** when storing or processing fails (database unreachable, attribution raising),
endpoints whose answer drives a live call (voice, dial result, whisper) still answer: the
voice endpoint forwards to the last known or configured fallback destination. The event is
written to the spool/log for ``calltracking_replay_webhooks``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, transaction
from django.http import Http404, HttpResponse, JsonResponse, QueryDict, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import View

from ..conf import ct_settings
from . import spool

logger = logging.getLogger("wagtail_calltracking.webhooks")


# --- errors -------------------------------------------------------------------------------


class WebhookError(Exception):
    """Base of the errors a webhook answers with a 4xx status."""

    status_code = 400


class WebhookInputError(WebhookError):
    """The payload is malformed or incomplete (400)."""

    status_code = 400


class WebhookSignatureError(WebhookError):
    """Missing, forged or stale signature, or no secret to check it with (403)."""

    status_code = 403


class WebhookPayloadTooLarge(WebhookError):
    status_code = 413


# --- the normalised event -----------------------------------------------------------------


class CallEventType:
    """Our vocabulary: every provider's statuses map onto these."""

    #: The call reached the tracking number (the voice webhook).
    INCOMING = "incoming"
    #: The call (or the forwarded leg) is ringing; no state change beyond "ringing".
    RINGING = "ringing"
    #: A person answered the forwarded leg.
    ANSWERED = "answered"
    #: The call or the forwarded leg ended (``outcome`` says how, when the provider knows).
    COMPLETED = "completed"
    #: A recording is ready.
    RECORDING = "recording"


@dataclass
class CallWebhookEvent:
    """One normalised call event, whatever the provider.

    ``call_id`` identifies the inbound call (for a forwarded leg: its parent), so every event
    of one conversation updates one :class:`~wagtail_calltracking.models.Call`.
    """

    event_type: str
    call_id: str
    #: The leg this event is about (the parent's or the forwarded leg's id).
    leg_id: str = ""
    #: True when the event describes the forwarded leg (to the business), not the caller's.
    is_forwarded_leg: bool = False
    #: Provider's identity of the event: retries and duplicates carry the same key.
    dedupe_key: str = ""
    sequence: int | None = None
    #: When it happened according to the provider (None: when we received it).
    timestamp: datetime | None = None
    from_number: str = ""
    to_number: str = ""
    forwarded_to: str = ""
    conversation_id: str = ""
    #: CallResult value when the event says definitively how the forward ended.
    outcome: str | None = None
    talk_seconds: int | None = None
    total_seconds: int | None = None
    #: Provider-reported ring time (seconds from start to answer).
    ring_seconds: int | None = None
    started_at: datetime | None = None
    answered_at: datetime | None = None
    recording_url: str = ""
    recording_duration: int | None = None
    caller_name: str = ""
    caller_city: str = ""
    caller_region: str = ""
    caller_country: str = ""
    #: The answering agent's identity (extension, SIP user, agent id) when sent.
    agent: str = ""
    raw: dict = field(default_factory=dict)


# --- small, total parsing helpers ---------------------------------------------------------


def clean(value: Any, max_length: int) -> str:
    """A string safe for any database column: str, no NUL, valid UTF-8, truncated."""
    if value is None:
        return ""
    if not isinstance(value, str):
        if isinstance(value, bool | int | float):
            value = str(value)
        else:
            return ""
    value = value.replace("\x00", "")
    value = value.encode("utf-8", "replace").decode("utf-8")
    return value.strip()[:max_length]


def sanitize_json(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` storable in a JSONField on every backend (no NUL, no lone
    surrogates, bounded depth and size)."""
    if depth > 20:
        return None
    if isinstance(value, str):
        return clean(value, 4096)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -(2**63) < value < 2**63 else str(value)
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {
            clean(str(k), 255): sanitize_json(v, depth + 1) for k, v in list(value.items())[:200]
        }
    if isinstance(value, list | tuple):
        return [sanitize_json(v, depth + 1) for v in list(value)[:200]]
    return clean(str(value), 4096)


def to_int(value: Any) -> int | None:
    """A non-negative int from "12", 12, "12.0"; None for anything else."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(float(value)) if isinstance(value, str | int | float) else None
    except (TypeError, ValueError, OverflowError):
        return None
    if number is None or number < 0 or number > 10**9:
        return None
    return number


def parse_datetime_any(value: Any) -> datetime | None:
    """An aware datetime from ISO 8601, RFC 2822 or unix seconds/milliseconds; else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
            seconds = float(value)
            if seconds > 1e11:  # milliseconds
                seconds /= 1000
            if not 0 < seconds < 1e10:
                return None
            return datetime.fromtimestamp(seconds, tz=UTC)
        if not isinstance(value, str) or not value.strip() or len(value) > 64:
            return None
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            parsed = parsedate_to_datetime(text)
        if parsed is None:
            return None
        if timezone.is_naive(parsed):
            parsed = parsed.replace(tzinfo=UTC)
        if not 1990 < parsed.year < 2200:
            return None
        return parsed
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def form_params(request) -> QueryDict:
    """The form parameters of a POST (or the query of a GET), parsed once."""
    if request.method == "GET":
        return request.GET
    try:
        return request.POST
    except MultiPartParserError as error:
        raise WebhookInputError(f"Unreadable form body: {error}")


def json_body(request) -> Any:
    try:
        return json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise WebhookInputError(f"The body is not valid JSON: {error}")


def json_object(request) -> dict:
    payload = json_body(request)
    if not isinstance(payload, dict):
        raise WebhookInputError("The JSON body must be an object.")
    return payload


def is_json_request(request) -> bool:
    return (request.content_type or "").lower() in ("application/json", "text/json")


def public_url(request) -> str:
    """The URL exactly as the provider requested it: ``PUBLIC_BASE_URL`` (for servers behind
    TLS-terminating proxies) plus the raw path and query string, never re-encoded."""
    base = ct_settings.PUBLIC_BASE_URL
    if base:
        return base.rstrip("/") + request.get_full_path()
    return request.build_absolute_uri()


def public_base(request) -> str:
    """scheme://host[:port] the provider reaches us at (for URLs in forwarding markup)."""
    base = ct_settings.PUBLIC_BASE_URL
    if base:
        return base.rstrip("/")
    return f"{request.scheme}://{request.get_host()}"


def collect_all_methods(cls, method_name):
    """Every distinct ``method_name`` along the MRO, most derived first (anymail's helper):
    mixins contribute validators without cooperating through ``super()``."""
    methods = []
    for ancestor in cls.__mro__:
        method = ancestor.__dict__.get(method_name)
        if method is not None and method not in methods:
            methods.append(method)
    return methods


#: Headers kept in the raw log (signatures are useful to audit; credentials are not kept).
_LOGGED_HEADER_PREFIXES = ("x-", "telnyx-", "i-twilio-")
_LOGGED_HEADERS = {"content-type", "content-length", "user-agent", "host"}


def loggable_headers(request) -> dict[str, str]:
    headers = {}
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in _LOGGED_HEADERS or lower.startswith(_LOGGED_HEADER_PREFIXES):
            headers[clean(name, 100)] = clean(value, 1024)
        elif lower == "authorization":
            headers[name] = clean(value.split(" ", 1)[0], 20) + " …"  # scheme only
    headers["REMOTE_ADDR"] = clean(request.META.get("REMOTE_ADDR", ""), 64)
    return headers


# --- the view -----------------------------------------------------------------------------


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class CallWebhookView(View):
    """Base of every provider endpoint. Subclasses set ``provider`` and ``endpoint`` and
    implement ``parse_events``; signature mixins add a ``validate_request``."""

    #: Registry name of the provider ("twilio").
    provider: str = ""
    #: Name of the endpoint ("voice", "status", "dial", "recording", "whisper").
    endpoint: str = ""
    http_method_names = ["post", "head", "options"]
    #: Endpoints that only deliver information may ask for a retry (503) when our side
    #: fails; endpoints whose answer drives a live call always answer (fail-open).
    drives_call = False
    #: Set when the raw log could not be written: the fail-open answer then avoids the
    #: database entirely.
    database_down = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators = collect_all_methods(self.__class__, "validate_request")

    # Subclass API ---------------------------------------------------------------------------

    def validate_request(self, request):
        """Raise :class:`WebhookSignatureError` unless the request is authentic.

        *Every* definition along the class hierarchy runs (see :func:`collect_all_methods`):
        no need to chain to ``super()``. Compare with ``hmac.compare_digest``."""

    def parse_events(self, request) -> list[CallWebhookEvent]:
        """Normalised events of the request; raise :class:`WebhookInputError` on bad input."""
        raise NotImplementedError

    def build_response(self, request, result) -> HttpResponse:
        """The answer after successful processing (``result`` is a ProcessingResult)."""
        return HttpResponse(status=204)

    def fallback_response(self, request, events) -> HttpResponse | None:
        """The answer when storing or processing failed; None = 503 (provider retries)."""
        return None

    def empty_events_response(self, request) -> HttpResponse:
        """Answer for a valid request that carries nothing we track (e.g. an event type we
        don't use)."""
        return HttpResponse(status=204)

    # HTTP ----------------------------------------------------------------------------------

    def dispatch(self, request, *args, **kwargs):
        from . import registry

        if not registry.is_mounted(self.provider):
            raise Http404(f"The {self.provider} provider is not enabled.")
        return super().dispatch(request, *args, **kwargs)

    def head(self, request, *args, **kwargs):
        # Some consoles probe a webhook URL before saving it.
        return HttpResponse()

    def post(self, request, *args, **kwargs):
        return self.handle(request)

    def handle(self, request) -> HttpResponse:
        from .processing import deferring_signals, send_pending

        with deferring_signals() as pending:
            response = self.process_request(request)
        if pending:
            # Sent when the server closes the response, i.e. after the provider has its answer.
            response._resource_closers.append(lambda: send_pending(pending))
        return response

    # The pipeline --------------------------------------------------------------------------

    def run_validators(self, request):
        for validator in self.validators:
            validator(self, request)

    def process_request(self, request) -> HttpResponse:
        received_at = timezone.now()
        try:
            body = self.read_body(request)
        except WebhookError as error:
            logger.warning("%s/%s webhook refused: %s", self.provider, self.endpoint, error)
            return self.error_response(error)

        try:
            self.run_validators(request)
        except WebhookError as error:
            self.log_rejected(request, body, received_at, error)
            return self.error_response(error)

        from .processing import (
            mark_webhook_event,
            process_events,
            store_webhook_event,
        )

        try:
            webhook_event = store_webhook_event(self, request, body, received_at)
        except DatabaseError as error:
            logger.error(
                "%s/%s webhook could not be stored (database unavailable: %s); failing open",
                self.provider,
                self.endpoint,
                error,
            )
            spool.write(self, request, body, received_at, error=f"store failed: {error}")
            self.database_down = True
            return self.fail_open(request)

        try:
            try:
                events = self.parse_events(request)
            except WebhookError:
                raise
            except Exception as error:  # noqa: BLE001 — a parser bug must not become a 500
                logger.exception("%s/%s parser failed", self.provider, self.endpoint)
                raise WebhookInputError(f"Unreadable payload ({type(error).__name__}).")
        except WebhookError as error:
            mark_webhook_event(webhook_event, "rejected", error=str(error))
            logger.warning("%s/%s webhook: bad input: %s", self.provider, self.endpoint, error)
            if self.drives_call:
                # A caller may be waiting: forward them anyway rather than hang up.
                return self.fail_open(request, events=None)
            return self.error_response(error)

        if not events:
            mark_webhook_event(webhook_event, "ignored")
            return self.empty_events_response(request)

        try:
            result = process_events(
                self.provider, events, webhook_event=webhook_event, received_at=received_at
            )
            response = self.build_response(request, result)
        except Exception as error:  # noqa: BLE001 — fail-open: a caller must never be dropped
            logger.exception(
                "%s/%s webhook processing failed; failing open", self.provider, self.endpoint
            )
            if not mark_webhook_event(webhook_event, "failed", error=repr(error)):
                spool.write(self, request, body, received_at, error=repr(error))
            return self.fail_open(request, events=events)

        return response

    def read_body(self, request) -> bytes:
        limit = ct_settings.WEBHOOK_MAX_BODY_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise WebhookInputError("Invalid Content-Length.")
        if declared > limit:
            raise WebhookPayloadTooLarge(f"Body of {declared} bytes exceeds the {limit} limit.")
        try:
            body = request.body
        except (RequestDataTooBig, UnreadablePostError) as error:
            raise WebhookInputError(f"Unreadable body: {error}")
        if len(body) > limit:
            raise WebhookPayloadTooLarge(f"Body exceeds the {limit} bytes limit.")
        return body

    def fail_open(self, request, events=None) -> HttpResponse:
        if events is None and self.drives_call:
            try:
                events = self.parse_events(request)
            except Exception:  # noqa: BLE001 — still answer the call
                events = []
        try:
            response = self.fallback_response(request, events or [])
        except Exception:  # noqa: BLE001
            logger.exception("%s/%s fallback answer failed", self.provider, self.endpoint)
            response = None
        if response is None:
            return HttpResponse(
                "Temporarily unavailable; please retry.",
                status=503,
                content_type="text/plain",
                headers={"Retry-After": "5"},
            )
        return response

    def error_response(self, error: WebhookError) -> HttpResponse:
        return JsonResponse({"error": str(error)}, status=error.status_code)

    def log_rejected(self, request, body, received_at, error):
        logger.warning(
            "%s/%s webhook rejected (%s) from %s",
            self.provider,
            self.endpoint,
            error,
            request.META.get("REMOTE_ADDR", "?"),
        )
        from .processing import store_webhook_event

        try:
            store_webhook_event(
                self,
                request,
                body,
                received_at,
                signature_valid=False,
                status="rejected",
                error=str(error),
            )
        except DatabaseError:
            logger.warning("rejected webhook not logged: database unavailable")


class FormOrQueryMixin:
    """Endpoints that also accept GET (the provider may be configured either way)."""

    http_method_names = ["get", "post", "head", "options"]

    def get(self, request, *args, **kwargs):
        return self.handle(request)


class VoiceWebhookMixin:
    """The incoming-call endpoint: answers with forwarding markup, always (fail-open)."""

    endpoint = "voice"
    drives_call = True

    def render_forwarding(self, request, plan, call=None) -> HttpResponse:
        """Provider markup for ``plan`` (a :class:`~.forwarding.ForwardingPlan`)."""
        raise NotImplementedError

    def no_destination_response(self, request) -> HttpResponse | None:
        """Answer when no forwarding destination is known at all (None: 503, so that the
        provider's own fallback URL takes over)."""
        return None

    def build_response(self, request, result) -> HttpResponse:
        from .forwarding import fallback_plan, plan_forwarding

        call = result.call
        plan = plan_forwarding(call) if call is not None else None
        if plan is None:
            logger.error(
                "No forwarding destination for the call to %s: set one on the number, source, "
                "pool or in the site's call tracking settings (fallback destination).",
                call.to_number if call is not None else "?",
            )
            if call is not None:
                plan = fallback_plan(
                    call.to_number, call.from_number, call.provider_call_id, use_database=True
                )
        if plan is None:
            return self._no_destination(request)
        return self.render_forwarding(request, plan, call)

    def fallback_response(self, request, events) -> HttpResponse | None:
        from .forwarding import fallback_plan

        event = events[0] if events else None
        use_database = not self.database_down
        if event is not None:
            plan = fallback_plan(
                event.to_number, event.from_number, event.call_id, use_database=use_database
            )
        else:
            plan = fallback_plan(use_database=use_database)
        if plan is None:
            return self._no_destination(request)
        return self.render_forwarding(request, plan, None)

    def _no_destination(self, request) -> HttpResponse:
        response = self.no_destination_response(request)
        if response is None:
            response = HttpResponse(
                "No forwarding destination configured.",
                status=503,
                content_type="text/plain",
                headers={"Retry-After": "5"},
            )
        return response
