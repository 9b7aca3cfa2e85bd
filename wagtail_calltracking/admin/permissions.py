"""Who may see and change what. Calls and visitor data are personal data, so three separate
grants exist (all visible in Wagtail's group editor):

- ``wagtail_calltracking.view_call``: the calls listing, call details, reports, dashboard panel;
- ``wagtail_calltracking.tag_call``: tag a call (lead / spam / existing customer), set its value
  and note (only useful together with ``view_call``);
- add / change / delete on sources, tracking numbers, number pools and managers: configuration.
"""

from __future__ import annotations

from functools import cache

from wagtail.permission_policies import ModelPermissionPolicy

from ..models import Call, Manager, NumberPool, Source, TrackingNumber

CONFIGURATION_MODELS = (Source, TrackingNumber, NumberPool, Manager)
CONFIGURATION_ACTIONS = ("add", "change", "delete")


@cache
def policy_for(model) -> ModelPermissionPolicy:
    """A plain model permission policy (same answers on Wagtail 7 and 8)."""
    return ModelPermissionPolicy(model)


def can_view_calls(user) -> bool:
    return policy_for(Call).user_has_permission(user, "view")


def can_tag_calls(user) -> bool:
    policy = policy_for(Call)
    return policy.user_has_permission(user, "view") and policy.user_has_permission(user, "tag")


def can_configure(user, model=None) -> bool:
    """Any configuration permission (on ``model``, or on any configuration model)."""
    models = (model,) if model is not None else CONFIGURATION_MODELS
    return any(
        policy_for(m).user_has_any_permission(user, CONFIGURATION_ACTIONS) for m in models
    )


def can_view_pool_health(user) -> bool:
    """Pool sizing is operational data: call viewers and whoever configures pools see it."""
    return can_view_calls(user) or can_configure(user, NumberPool)
