from .calls import Call, CallEvent, CallTouch, Manager, WebhookEvent, WebhookEventStatus
from .choices import CallResult, CallStatus, CallTag, Channel, Confidence, DeviceType, TouchModel
from .numbers import (
    ExhaustionPolicy,
    Lease,
    LeaseReleaseReason,
    NumberPool,
    PoolAudience,
    PoolStat,
    Source,
    TrackingNumber,
)
from .site_settings import CallTrackingSiteSettings, DisplayFormat
from .tracking import PageView, Visitor, VisitorSession

__all__ = [
    "Call",
    "CallEvent",
    "CallResult",
    "CallStatus",
    "CallTag",
    "CallTouch",
    "CallTrackingSiteSettings",
    "Channel",
    "Confidence",
    "DeviceType",
    "DisplayFormat",
    "ExhaustionPolicy",
    "Lease",
    "LeaseReleaseReason",
    "Manager",
    "NumberPool",
    "PageView",
    "PoolAudience",
    "PoolStat",
    "Source",
    "TouchModel",
    "TrackingNumber",
    "Visitor",
    "VisitorSession",
    "WebhookEvent",
    "WebhookEventStatus",
]
