"""The demo provider: simulated calls, for the example site, tests and first steps.

It speaks the generic provider's JSON (see :mod:`.generic`) without a signature, so it is
**off** unless ``DEMO_PROVIDER_ENABLED`` is True (its URLs answer 404 otherwise, and a system
check warns when it is on in production). ``manage.py calltracking_simulate_call`` drives it
through the same code path as a real provider: verification, raw log, call, attribution,
forwarding answer, status events.

The voice answer is the generic forwarding document plus the attribution of the call
(``"attribution": {...}``), so that a simulated call shows at once where it was attributed.
"""

from __future__ import annotations

from django.http import JsonResponse

from .base import CallWebhookView
from .generic import JsonCallEventsMixin, JsonVoiceMixin, plan_document
from .registry import WebhookProvider


def attribution_document(call) -> dict:
    if call is None:
        return {}
    session = call.session if call.session_id else None
    return {
        "call": call.pk,
        "confidence": call.confidence,
        "source": call.source.name if call.source_id else "",
        "session": call.session_id,
        "visitor": call.visitor_id,
        "channel": session.channel if session else "",
        "utm_source": session.source if session else "",
        "medium": session.medium if session else "",
        "campaign": session.campaign if session else "",
        "keyword": session.keyword if session else "",
        "landing_path": session.landing_path if session else "",
        "gclid": call.gclid,
        "first_time_caller": call.is_first_time,
    }


class DemoBaseView(JsonCallEventsMixin, CallWebhookView):
    provider = "demo"


class DemoVoiceView(JsonVoiceMixin, DemoBaseView):
    def render_forwarding(self, request, plan, call=None):
        if request.GET.get("format") == "text":
            return super().render_forwarding(request, plan, call)
        document = plan_document(plan, call)
        document["attribution"] = attribution_document(call)
        return JsonResponse(document)

    def no_destination_response(self, request):
        return JsonResponse(
            {
                "action": "reject",
                "forward_to": None,
                "reason": "No forwarding destination: set the site's fallback destination in "
                "Settings › Call tracking (or FALLBACK_FORWARD_TO).",
            }
        )


class DemoStatusView(DemoBaseView):
    endpoint = "status"

    def build_response(self, request, result):
        call = result.call
        return JsonResponse(
            {
                "ok": True,
                "call": call.pk if call else None,
                "status": call.status if call else None,
                "result": call.result if call else None,
            }
        )


provider = WebhookProvider(
    name="demo",
    label="Demo (simulated calls)",
    secret_setting=None,
    endpoints={"voice": DemoVoiceView, "status": DemoStatusView},
)
