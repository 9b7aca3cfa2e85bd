"""Row factories shared by the test modules: plain functions with sensible defaults."""

import itertools

from django.utils import timezone

from wagtail_calltracking.models import (
    Call,
    NumberPool,
    Source,
    TrackingNumber,
    Visitor,
    VisitorSession,
)

_numbers = itertools.count(1000)


def next_e164():
    """A fresh valid US number (+1 212-555-01xx style numbers are not all valid)."""
    return f"+1212{next(_numbers) + 2000000:07d}"


def make_number(**kwargs):
    kwargs.setdefault("number", next_e164())
    kwargs.setdefault("provider", "demo")
    return TrackingNumber.objects.create(**kwargs)


def make_pool(size=3, **kwargs):
    kwargs.setdefault("name", "Online pool")
    pool = NumberPool.objects.create(**kwargs)
    for _ in range(size):
        make_number(pool=pool)
    return pool


def make_source(**kwargs):
    kwargs.setdefault("name", "Source")
    return Source.objects.create(**kwargs)


def make_session(visitor=None, **kwargs):
    visitor = visitor or Visitor.objects.create()
    kwargs.setdefault("started_at", timezone.now())
    kwargs.setdefault("last_activity_at", kwargs["started_at"])
    return VisitorSession.objects.create(visitor=visitor, **kwargs)


def make_call(**kwargs):
    kwargs.setdefault("provider", "demo")
    kwargs.setdefault("provider_call_id", f"CA{next(_numbers):032d}")
    kwargs.setdefault("from_number", "+13125550100")
    return Call.objects.create(**kwargs)
