"""Google Ads offline click conversions as a CSV feed Google Ads fetches on a schedule.

A qualifying call of a visitor who came from a Google ad (a ``gclid``, or on iOS a ``wbraid``
/ ``gbraid``) becomes one row in Google's "conversions from clicks" template::

    Parameters:TimeZone=America/New_York
    Google Click ID,Conversion Name,Conversion Time,Conversion Value,Conversion Currency
    Cj0KCQjw…,Phone call,2026-05-08 14:00:00,50.00,USD

Each row carries exactly one click id: a gclid when there is one, else the wbraid, else the
gbraid — Google rejects a conversion that combines them. Rows are prepared when the call
completes (a ``Delivery`` in the state "in the feed") and marked delivered the first time
Google fetches the feed. Every fetch lists the last ``window_days`` days; Google ignores the
rows it has already imported (same click id, conversion name and time).
"""

from __future__ import annotations

import csv
import io
import re
import zoneinfo
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.utils import timezone
from django.utils.translation import gettext as _

from ..models import (
    DeliveryEvent,
    DeliveryKind,
    DeliveryStatus,
    GoogleAdsFeed,
)
from . import payloads
from .base import Integration, Outcome, Skip, check_rules

HEADER = [
    "Google Click ID",
    "Conversion Name",
    "Conversion Time",
    "Conversion Value",
    "Conversion Currency",
]
#: Click ids are URL-safe tokens. Anything else (a forged ``?gclid==HYPERLINK(…)``) is
#: refused: it would be rejected by Google and is a spreadsheet-injection risk.
CLICK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
#: Precedence when a click carries several ids (they are never combined).
CLICK_ID_PRECEDENCE = ("gclid", "wbraid", "gbraid")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def pick_click_id(call) -> tuple[str, str]:
    """(kind, id) of the one click id to send; ("", "") when the call has none."""
    candidates = {name: getattr(call, name) for name in CLICK_ID_PRECEDENCE}
    if call.session_id and call.session is not None:
        for name in CLICK_ID_PRECEDENCE:
            candidates[name] = candidates[name] or getattr(call.session, name, "")
    for name in CLICK_ID_PRECEDENCE:
        value = (candidates[name] or "").strip()
        if value:
            if not CLICK_ID_RE.match(value):
                raise Skip(_("The %(kind)s is malformed and was not sent.") % {"kind": name})
            return name, value
    return "", ""


def rule_for(feed, call):
    if not call.source_id:
        return None
    for rule in feed.source_rules.all():
        if rule.source_id == call.source_id:
            return rule
    return None


def format_value(value) -> str:
    if value is None:
        return ""
    try:
        return str(Decimal(value).quantize(Decimal("0.01")))
    except (InvalidOperation, ValueError, TypeError):
        return ""


def build_row(feed: GoogleAdsFeed, call) -> dict:
    rule = rule_for(feed, call)
    if rule is not None and not rule.include:
        raise Skip(_("Calls from this source are excluded from the feed."))
    check_rules(
        feed,
        call,
        min_talk_seconds=rule.min_talk_seconds if rule and rule.min_talk_seconds is not None else None,
    )
    kind, click_id = pick_click_id(call)
    if not click_id:
        raise Skip(_("No Google click id (gclid / wbraid / gbraid): not a Google Ads visitor."))
    source = call.source if call.source_id else None
    if call.value is not None:
        value = call.value
    elif rule is not None and rule.value is not None:
        value = rule.value
    elif source is not None and source.value is not None:
        value = source.value
    else:
        value = feed.default_value
    currency = ((source.currency if source else "") or feed.default_currency or "").upper()
    value_text = format_value(value)
    return {
        "click_id": click_id,
        "click_id_type": kind,
        "conversion_name": (rule.conversion_name if rule and rule.conversion_name else feed.conversion_name),
        "conversion_time": call.started_at.astimezone(zoneinfo.ZoneInfo("UTC")).isoformat(),
        "value": value_text,
        # A currency without a value means nothing to Google; keep the pair together.
        "currency": currency if value_text else "",
    }


def feed_rows(feed: GoogleAdsFeed, now=None):
    """Deliveries listed by a fetch of ``feed`` (oldest first)."""
    from ..models import Delivery

    now = now or timezone.now()
    return (
        Delivery.objects.filter(
            kind=DeliveryKind.GOOGLE_ADS,
            target_id=feed.pk,
            status__in=(DeliveryStatus.AWAITING_FETCH, DeliveryStatus.DELIVERED),
            call__started_at__gte=now - timedelta(days=feed.window_days),
        )
        .order_by("call__started_at", "pk")
        .only("pk", "payload", "status")
    )


def format_time(iso_value: str, zone: zoneinfo.ZoneInfo) -> str:
    return datetime.fromisoformat(iso_value).astimezone(zone).strftime(TIME_FORMAT)


def render_csv(feed: GoogleAdsFeed, deliveries) -> str:
    zone = zoneinfo.ZoneInfo(feed.time_zone)
    out = io.StringIO()
    out.write(f"Parameters:TimeZone={feed.time_zone}\r\n")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for delivery in deliveries:
        row = delivery.payload
        if not row.get("click_id") or not row.get("conversion_time"):
            continue
        writer.writerow(
            [
                row["click_id"],
                row["conversion_name"],
                format_time(row["conversion_time"], zone),
                row.get("value", ""),
                row.get("currency", ""),
            ]
        )
    return out.getvalue()


def mark_fetched(feed: GoogleAdsFeed, delivery_ids) -> int:
    """Google Ads fetched the feed: its new rows are delivered."""
    from ..models import Delivery

    now = timezone.now()
    GoogleAdsFeed.objects.filter(pk=feed.pk).update(last_fetched_at=now)
    return Delivery.objects.filter(pk__in=list(delivery_ids), status=DeliveryStatus.AWAITING_FETCH).update(
        status=DeliveryStatus.DELIVERED, delivered_at=now, updated_at=now
    )


class GoogleAdsIntegration(Integration):
    kind = DeliveryKind.GOOGLE_ADS
    model = GoogleAdsFeed

    def targets(self, call, event):
        if event != DeliveryEvent.CALL_COMPLETED:
            return []
        return list(
            GoogleAdsFeed.objects.filter(payloads.site_filter(call), active=True).prefetch_related("source_rules")
        )

    def build_payload(self, target, call, event, delivery):
        return build_row(target, call)

    def send(self, target, delivery):
        # Nothing is pushed: the row is listed until Google Ads fetches the feed.
        return Outcome(ok=True, awaiting_fetch=True)

    def on_call_tagged(self, call):
        """A call tagged as spam leaves the feed; a value set by an editor is used — as long as
        Google has not fetched the row yet (imported conversions cannot be changed here)."""
        from ..models import Delivery

        rows = Delivery.objects.filter(
            kind=self.kind,
            call=call,
            status__in=(DeliveryStatus.AWAITING_FETCH, DeliveryStatus.SKIPPED),
        )
        for delivery in rows:
            feed = (
                GoogleAdsFeed.objects.filter(pk=delivery.target_id, active=True)
                .prefetch_related("source_rules")
                .first()
            )
            if feed is None:
                continue
            try:
                payload = build_row(feed, call)
            except Skip as skip:
                if delivery.status != DeliveryStatus.SKIPPED or delivery.skip_reason != skip.reason:
                    delivery.status = DeliveryStatus.SKIPPED
                    delivery.skip_reason = skip.reason[:255]
                    delivery.save(update_fields=["status", "skip_reason", "updated_at"])
                continue
            delivery.payload = payload
            delivery.status = DeliveryStatus.AWAITING_FETCH
            delivery.skip_reason = ""
            delivery.save(update_fields=["payload", "status", "skip_reason", "updated_at"])
