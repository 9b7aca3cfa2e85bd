"""``{% call_privacy call %}``: the erasure action on a call's admin page — a link to the
erasure screen pre-filled from the call (its caller number and visitor id). Shown to users
allowed to erase personal data only (see ``admin/privacy.py``). No query."""

from django import template
from django.urls import reverse

register = template.Library()


@register.inclusion_tag("wagtail_calltracking/admin/privacy/call_privacy.html", takes_context=True)
def call_privacy(context, call):
    from ..admin.privacy import ErasureViewSet, can_erase_personal_data

    request = context.get("request")
    if not can_erase_personal_data(getattr(request, "user", None)):
        return {"visible": False}
    return {
        "visible": True,
        "identifiable": bool(call.from_number or call.visitor_id),
        "erase_url": reverse(f"{ErasureViewSet.name}:index") + f"?call={call.pk}",
    }
