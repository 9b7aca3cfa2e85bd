"""``{% call_deliveries call %}``: where a call was reported (GA4, Google Ads, CRM), for the
call's admin page. Shown to users allowed to see the delivery log only."""

from django import template
from django.urls import reverse

from ..models import Delivery

register = template.Library()

DELIVERIES_URL_NAME = "wagtail_calltracking_deliveries"


@register.inclusion_tag("wagtail_calltracking/integrations/call_deliveries.html", takes_context=True)
def call_deliveries(context, call):
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("wagtail_calltracking.view_delivery"):
        return {"visible": False}
    rows = list(
        Delivery.objects.filter(call_id=call.pk)
        .defer("payload", "last_response")
        .order_by("created_at", "pk")
    )
    for row in rows:
        row.detail_url = reverse(f"{DELIVERIES_URL_NAME}:inspect", args=[row.pk])
    return {
        "visible": True,
        "deliveries": rows,
        "log_url": reverse(f"{DELIVERIES_URL_NAME}:index") + f"?call={call.pk}",
    }
