"""Replay telephony webhook events that failed (or were spooled while the database was down).

    manage.py calltracking_replay_webhooks                 # failed + stuck events
    manage.py calltracking_replay_webhooks --spool /var/spool/calltracking
    manage.py calltracking_replay_webhooks --spool /var/log/app.log   # CALLTRACKING_SPOOL lines
    manage.py calltracking_replay_webhooks --id 42 --id 43 --dry-run

Safe to run any time (e.g. from cron every few minutes): processing is idempotent.
"""

from datetime import timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from wagtail_calltracking.conf import ct_settings
from wagtail_calltracking.models import WebhookEvent, WebhookEventStatus
from wagtail_calltracking.webhooks import registry, spool
from wagtail_calltracking.webhooks.replay import import_spool_record, replay


class Command(BaseCommand):
    help = "Replay failed telephony webhook events and import spooled ones."

    def add_arguments(self, parser):
        parser.add_argument("--provider", choices=sorted(registry.BUILTIN_PROVIDERS), help="Only this provider.")
        parser.add_argument("--id", type=int, action="append", dest="ids", help="Replay this event (repeatable).")
        parser.add_argument(
            "--days", type=int, default=30, help="Only events received in the last N days (default 30)."
        )
        parser.add_argument(
            "--stuck-minutes",
            type=int,
            default=10,
            help="Also replay events still 'received' after N minutes (a crash mid-processing).",
        )
        parser.add_argument(
            "--spool",
            nargs="*",
            metavar="PATH",
            help="Import spool files or log files first (default: WEBHOOK_SPOOL_DIR).",
        )
        parser.add_argument("--max-attempts", type=int, default=10, help="Skip events replayed this often.")
        parser.add_argument("--limit", type=int, default=10_000)
        parser.add_argument("--dry-run", action="store_true", help="List what would be replayed.")

    def handle(self, *args, **options):
        dry_run = options["dry_run"]
        if options["spool"] is not None:
            paths = options["spool"] or ([ct_settings.WEBHOOK_SPOOL_DIR] if ct_settings.WEBHOOK_SPOOL_DIR else [])
            if not paths:
                raise CommandError("Give spool paths, or set WEBHOOK_SPOOL_DIR.")
            self.import_spool(paths, dry_run)

        if options["ids"]:
            events = WebhookEvent.objects.filter(pk__in=options["ids"])
        else:
            now = timezone.now()
            events = WebhookEvent.objects.filter(
                received_at__gte=now - timedelta(days=options["days"]),
                signature_valid=True,
                attempts__lt=options["max_attempts"],
            ).filter(
                models_q_failed_or_stuck(now - timedelta(minutes=options["stuck_minutes"]))
            )
        if options["provider"]:
            events = events.filter(provider=options["provider"])
        events = events.order_by("received_at", "pk")[: options["limit"]]

        counts = {}
        for event in events:
            if dry_run:
                self.stdout.write(f"would replay #{event.pk} {event} ({event.status}: {event.error[:80]})")
                continue
            status = replay(event)
            counts[status] = counts.get(status, 0) + 1
            self.stdout.write(f"#{event.pk} {event}: {status}")
        if not dry_run:
            summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "nothing to replay"
            self.stdout.write(self.style.SUCCESS(f"Replayed: {summary}."))

    def import_spool(self, paths, dry_run):
        imported = skipped = 0
        done_files = set()
        records = spool.read_records(paths)
        for file, record in records:
            if dry_run:
                self.stdout.write(f"would import {record.get('provider')}/{record.get('endpoint')} from {file}")
                continue
            row = import_spool_record(record)
            if row is None:
                skipped += 1
            else:
                imported += 1
            if file.suffix == ".json":
                done_files.add(file)
        for file in done_files:
            # The raw log now holds the request: the spool file has served its purpose.
            Path(file).unlink(missing_ok=True)
        if not dry_run:
            self.stdout.write(f"Spool: {imported} imported, {skipped} already imported or unreadable.")


def models_q_failed_or_stuck(stuck_before):
    from django.db.models import Q

    return Q(status=WebhookEventStatus.FAILED) | Q(
        status=WebhookEventStatus.RECEIVED, received_at__lt=stuck_before
    )
