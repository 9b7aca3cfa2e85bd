"""Local stand-ins for GA4 and a CRM, so the demo's deliveries go somewhere real without
leaving the machine (the example site points GA4_ENDPOINT and the demo CRM webhook here).

- ``POST /demo-receiver/ga4/mp/collect`` answers 204 like GA4 (which never reports errors);
- ``POST /demo-receiver/ga4/debug/mp/collect`` answers like GA4's validation server, with
  ``validationMessages`` for the documented limits (names, parameter count, value length);
- ``POST /demo-receiver/crm/`` verifies the X-CallTracking-Signature the way a CRM should
  (the snippet of docs/integrations.md) and echoes what it received; the answer shows up in
  the admin's delivery log under "Last response".

The last requests are kept in memory for the demo page ``GET /demo-receiver/``.
"""

import hashlib
import hmac
import json
import re
import time
from collections import deque

from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from wagtail_calltracking.models import CRMEndpoint

RECEIVED = deque(maxlen=50)
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


def verify_calltracking_webhook(secret: str, body: bytes, headers) -> bool:
    """The verification snippet of docs/integrations.md."""
    timestamp = headers.get("X-CallTracking-Timestamp", "")
    signature = headers.get("X-CallTracking-Signature", "")
    try:
        if abs(time.time() - int(timestamp)) > 300:  # reject replays
            return False
    except ValueError:
        return False
    message = timestamp.encode() + b"." + body
    expected = "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def _json(request):
    try:
        return json.loads(request.body or b"null")
    except ValueError:
        return None


@csrf_exempt
@require_POST
def ga4_collect(request):
    RECEIVED.appendleft({"to": "GA4", "query": request.GET.get("measurement_id", ""), "body": _json(request)})
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def ga4_debug(request):
    body = _json(request)
    messages = []
    if not isinstance(body, dict) or not body.get("client_id"):
        messages.append(
            {"fieldPath": "client_id", "description": "client_id is required.", "validationCode": "VALUE_REQUIRED"}
        )
    for i, event in enumerate((body or {}).get("events") or []):
        if not NAME_RE.match(str(event.get("name", ""))):
            messages.append(
                {
                    "fieldPath": f"events[{i}].name",
                    "description": "Invalid event name.",
                    "validationCode": "NAME_INVALID",
                }
            )
        params = event.get("params") or {}
        if len(params) > 25:
            messages.append(
                {
                    "fieldPath": f"events[{i}].params",
                    "description": "Too many parameters.",
                    "validationCode": "EXCEEDED_MAX_ENTITIES",
                }
            )
        for name, value in params.items():
            if not NAME_RE.match(name):
                messages.append(
                    {
                        "fieldPath": f"events[{i}].params.{name}",
                        "description": "Invalid parameter name.",
                        "validationCode": "NAME_INVALID",
                    }
                )
            if isinstance(value, str) and len(value) > 100:
                messages.append(
                    {
                        "fieldPath": f"events[{i}].params.{name}",
                        "description": "Value too long.",
                        "validationCode": "VALUE_INVALID",
                    }
                )
    return JsonResponse({"validationMessages": messages})


@csrf_exempt
@require_POST
def crm(request):
    secrets = CRMEndpoint.objects.filter(url__contains="/demo-receiver/crm/").values_list("secret", flat=True)
    verified = any(verify_calltracking_webhook(secret, request.body, request.headers) for secret in secrets)
    body = _json(request) or {}
    RECEIVED.appendleft({"to": "CRM", "verified": verified, "body": body})
    if not verified:
        return JsonResponse({"error": "bad signature"}, status=401)
    attribution = body.get("attribution") or {}
    return JsonResponse(
        {
            "received": body.get("event"),
            "signature": "valid",
            "call": (body.get("call") or {}).get("id"),
            "source": attribution.get("source"),
            "keyword": attribution.get("keyword"),
        }
    )


@require_GET
def index(request):
    return JsonResponse({"received": list(RECEIVED)}, json_dumps_params={"indent": 2})


urlpatterns = [
    path("", index, name="demo_receiver"),
    path("ga4/mp/collect", ga4_collect),
    path("ga4/debug/mp/collect", ga4_debug),
    path("crm/", crm),
]
