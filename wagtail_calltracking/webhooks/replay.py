"""Replaying webhook events: failed ones from the raw log, and spooled ones (received while
the database was down). Used by ``manage.py calltracking_replay_webhooks``.

A replay re-runs parsing and processing on the stored request (its signature was verified
when it was received; provider timestamps would be stale by now). Processing is idempotent,
so replaying an event twice, or one that partly succeeded, is safe: what was applied is not
applied again, and what failed (e.g. attribution) is completed.
"""

from __future__ import annotations

import base64
import logging
from datetime import datetime
from urllib.parse import urlsplit

from django.db import transaction
from django.test import RequestFactory
from django.utils import timezone

from ..models import WebhookEvent, WebhookEventStatus
from . import registry
from .base import WebhookError, clean
from .processing import mark_webhook_event, process_events

logger = logging.getLogger("wagtail_calltracking.webhooks")


def rebuild_request(method: str, url: str, headers: dict, content_type: str, body: bytes):
    """A Django request equivalent to the stored one (path, query, headers, body)."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    meta = {}
    for name, value in (headers or {}).items():
        if not isinstance(value, str) or name == "REMOTE_ADDR":
            continue
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            continue
        meta[f"HTTP_{key}"] = value
    meta["HTTP_HOST"] = parts.netloc or "replay.invalid"
    meta["wsgi.url_scheme"] = parts.scheme or "https"
    factory = RequestFactory()
    if method.upper() == "GET":
        return factory.get(path, **meta)
    return factory.generic(method.upper(), path, data=body, content_type=content_type or "", **meta)


def view_for(provider: str, endpoint: str):
    view_class = registry.get_provider(provider).endpoints[endpoint]
    return view_class()


def replay(webhook_event: WebhookEvent) -> str:
    """Re-process one stored event; returns the resulting status."""
    view = view_for(webhook_event.provider, webhook_event.endpoint)
    request = rebuild_request(
        webhook_event.method,
        webhook_event.url,
        webhook_event.headers,
        webhook_event.content_type,
        bytes(webhook_event.body),
    )
    WebhookEvent.objects.filter(pk=webhook_event.pk).update(attempts=webhook_event.attempts + 1)
    try:
        events = view.parse_events(request)
    except WebhookError as error:
        mark_webhook_event(webhook_event, WebhookEventStatus.REJECTED, error=str(error))
        return WebhookEventStatus.REJECTED
    except Exception as error:  # noqa: BLE001 — a parser bug: keep the event for a later replay
        logger.exception("replay of webhook event %s: parser failed", webhook_event.pk)
        mark_webhook_event(webhook_event, WebhookEventStatus.FAILED, error=repr(error))
        return WebhookEventStatus.FAILED
    if not events:
        mark_webhook_event(webhook_event, WebhookEventStatus.IGNORED)
        return WebhookEventStatus.IGNORED
    try:
        result = process_events(
            webhook_event.provider,
            events,
            webhook_event=webhook_event,
            received_at=webhook_event.received_at,
        )
    except Exception as error:  # noqa: BLE001 — report and keep it for the next replay
        logger.exception("replay of webhook event %s failed", webhook_event.pk)
        mark_webhook_event(webhook_event, WebhookEventStatus.FAILED, error=repr(error))
        return WebhookEventStatus.FAILED
    # process_events recorded the outcome on the event in its transaction.
    return WebhookEventStatus.FAILED if result.errors else WebhookEventStatus.PROCESSED


def import_spool_record(record: dict) -> WebhookEvent | None:
    """Store a spooled request in the raw log (None when it was imported before, or is not
    a record of a known provider endpoint)."""
    provider, endpoint = record.get("provider"), record.get("endpoint")
    if provider not in registry.BUILTIN_PROVIDERS or endpoint not in registry.get_provider(provider).endpoints:
        logger.warning("spool record for unknown endpoint %s/%s skipped", provider, endpoint)
        return None
    try:
        received_at = datetime.fromisoformat(record["received_at"])
        body = base64.b64decode(record.get("body_b64", ""), validate=True)
    except (KeyError, TypeError, ValueError) as error:
        logger.warning("unreadable spool record skipped: %s", error)
        return None
    if timezone.is_naive(received_at):
        received_at = timezone.make_aware(received_at, timezone.utc)
    with transaction.atomic():
        for existing in WebhookEvent.objects.filter(
            provider=provider, endpoint=endpoint, received_at=received_at
        ).only("body"):
            if bytes(existing.body) == body:
                return None
        return WebhookEvent.objects.create(
            provider=provider,
            endpoint=endpoint,
            received_at=received_at,
            method=clean(record.get("method", "POST"), 8),
            url=clean(record.get("url", ""), 4096),
            headers=record.get("headers") if isinstance(record.get("headers"), dict) else {},
            content_type=clean(record.get("content_type", ""), 255),
            body=body,
            signature_valid=True,
            status=WebhookEventStatus.FAILED,
            error=clean("spooled: " + str(record.get("error", "")), 2000),
        )
