"""Simulate a phone call to a tracking number through the demo provider.

    manage.py calltracking_simulate_call --to "+1 212-200-1000"
    manage.py calltracking_simulate_call --to 2122001000 --from +13125550177 --result missed
    manage.py calltracking_simulate_call --to +12122001000 --result answered --duration 180 --ring 6

The call takes the same path as a real provider's: the demo provider's voice webhook (raw
log, call record, attribution, forwarding answer), then its status webhook with the outcome.
Needs ``WAGTAIL_CALLTRACKING["DEMO_PROVIDER_ENABLED"] = True`` (development only).
"""

import contextlib
import json
import random
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.test import RequestFactory
from django.urls import NoReverseMatch
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from wagtail_calltracking.models import Call, TrackingNumber
from wagtail_calltracking.numbers.phone import to_e164
from wagtail_calltracking.webhooks import registry

RESULTS = ("answered", "missed", "abandoned", "busy", "failed", "voicemail")


def random_caller() -> str:
    while True:
        candidate = f"+1312{random.randint(2000000, 9999999)}"  # Chicago
        if to_e164(candidate):
            return candidate


def request_host() -> str:
    for host in getattr(settings, "ALLOWED_HOSTS", []):
        if host and host not in ("*",) and not host.startswith("."):
            return host
    return "localhost"


def post_to_demo(endpoint: str, document: dict):
    """POST ``document`` to the demo provider's ``endpoint`` view (no HTTP server needed)."""
    view_class = registry.get_provider("demo").endpoints[endpoint]
    path = f"/calltracking/webhooks/demo/{endpoint}/"
    with contextlib.suppress(NoReverseMatch):  # URLs not mounted: the view still works
        path = registry.webhook_path("demo", endpoint)
    request = RequestFactory().post(
        path, json.dumps(document), content_type="application/json", SERVER_NAME=request_host()
    )
    response = view_class.as_view()(request)
    try:
        body = json.loads(response.content or b"{}")
    except ValueError:
        body = {"raw": response.content.decode("utf-8", "replace")}
    return response.status_code, body


class Command(BaseCommand):
    help = "Simulate a call to a tracking number (demo provider) and show its attribution."

    def add_arguments(self, parser):
        parser.add_argument("--to", required=True, help="The tracking number called (any format).")
        parser.add_argument("--from", dest="caller", help="The caller's number (default: a random one).")
        parser.add_argument("--result", choices=RESULTS, default="answered")
        parser.add_argument("--duration", type=int, default=95, help="Talk time in seconds (answered calls).")
        parser.add_argument("--ring", type=int, default=None, help="Ring time in seconds.")
        parser.add_argument("--agent", default="", help="Extension or agent id of the manager who answers.")
        parser.add_argument("--at", help="When the call started (ISO 8601; default: now).")
        parser.add_argument("--call-id", help="Provider call id (default: a new one).")

    def handle(self, *args, **options):
        if not registry.is_mounted("demo"):
            raise CommandError(
                "The demo provider is disabled. Set WAGTAIL_CALLTRACKING['DEMO_PROVIDER_ENABLED'] = True "
                "(development only; the example site enables it)."
            )
        to_number = to_e164(options["to"]) or options["to"].strip()
        if not to_e164(options["to"]):
            self.stderr.write(self.style.WARNING(f"{options['to']!r} is not a valid phone number."))
        elif not TrackingNumber.objects.filter(number=to_number).exists():
            known = ", ".join(TrackingNumber.objects.filter(active=True).values_list("number", flat=True)[:10])
            self.stderr.write(self.style.WARNING(
                f"{to_number} is not a tracking number: the call will be unattributed. Known: {known or 'none'}."
            ))
        caller = options["caller"] or random_caller()
        started = timezone.now()
        if options["at"]:
            started = parse_datetime(options["at"])
            if started is None:
                raise CommandError(f"--at {options['at']!r} is not an ISO 8601 date-time.")
            if timezone.is_naive(started):
                started = timezone.make_aware(started)
        result = options["result"]
        ring = options["ring"]
        if ring is None:
            ring = {"answered": 7, "abandoned": 6, "missed": 25}.get(result, 12)
        call_id = options["call_id"] or f"sim-{uuid.uuid4().hex[:16]}"

        status, answer = post_to_demo(
            "voice", {"event": "incoming", "call_id": call_id, "from": caller, "to": to_number,
                      "timestamp": started.isoformat()}
        )
        if status >= 400:
            raise CommandError(f"The voice webhook answered {status}: {answer}")
        events = []
        if result == "answered":
            events.append({"event": "answered", "call_id": call_id, "agent": options["agent"],
                           "timestamp": (started + timedelta(seconds=ring)).isoformat()})
            end = started + timedelta(seconds=ring + options["duration"])
            events.append({"event": "completed", "call_id": call_id, "result": "answered",
                           "talk_seconds": options["duration"], "ring_seconds": ring,
                           "agent": options["agent"], "timestamp": end.isoformat()})
        else:
            events.append({"event": "completed", "call_id": call_id,
                           "result": "missed" if result == "abandoned" else result,
                           "ring_seconds": ring, "timestamp": (started + timedelta(seconds=ring)).isoformat()})
        status, body = post_to_demo("status", {"events": events})
        if status >= 400:
            raise CommandError(f"The status webhook answered {status}: {body}")

        call = Call.objects.select_related("source", "session", "manager").get(
            provider="demo", provider_call_id=call_id
        )
        self.report(call, answer)

    def report(self, call, answer):
        write = self.stdout.write
        write(self.style.SUCCESS(f"Call #{call.pk} from {call.from_display} to {call.to_display}"))
        destination = answer.get("forward_to")
        write(f"  forwarded to:  {destination or '(no destination configured)'}")
        write(f"  result:        {call.get_result_display()} (ring {call.ring_seconds}s, talk {call.talk_seconds}s)")
        if call.manager_id:
            write(f"  answered by:   {call.manager}")
        write(f"  attribution:   {call.get_confidence_display()}")
        if call.source_id:
            write(f"  source:        {call.source}")
        session = call.session
        if session is not None:
            write(f"  session:       #{session.pk} started {timezone.localtime(session.started_at):%Y-%m-%d %H:%M}")
            write(f"  channel:       {session.get_channel_display()} ({session.source_medium or '-'})")
            for label, value in (("campaign", session.campaign), ("keyword", session.keyword),
                                 ("landing page", session.landing_path), ("gclid", session.gclid)):
                if value:
                    write(f"  {label + ':':<14} {value}")
        elif call.visitor_id:
            write(f"  visitor:       #{call.visitor_id} (from this caller's earlier calls)")
        write(f"  first-time caller: {'yes' if call.is_first_time else 'no'}")
