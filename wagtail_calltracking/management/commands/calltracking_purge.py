"""Delete visitor journeys (page views, sessions, visitors) older than the retention, and
optionally the settled raw webhook log; calls keep their attribution summary.

    manage.py calltracking_purge                     # RETENTION_DAYS / WEBHOOK_LOG_RETENTION_DAYS
    manage.py calltracking_purge --days 90           # journeys older than 90 days
    manage.py calltracking_purge --webhook-log-days 30
    manage.py calltracking_purge --days 90 --dry-run # count only
    manage.py calltracking_purge --json              # the summary as JSON (for monitoring)

Run it daily from cron (or enqueue ``wagtail_calltracking.lifecycle.purge_task``). Safe to
interrupt and re-run: it works in short batches. See docs/privacy.md.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from ...conf import ct_settings
from ...lifecycle import DEFAULT_BATCH_SIZE, purge_expired_data


class Command(BaseCommand):
    help = "Delete page views, sessions and visitors older than the retention (calls keep their attribution)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=None, help="Retention in days (default: the RETENTION_DAYS setting)."
        )
        parser.add_argument(
            "--webhook-log-days",
            type=int,
            default=None,
            help="Also delete settled raw webhook log entries older than this (default: WEBHOOK_LOG_RETENTION_DAYS).",
        )
        parser.add_argument(
            "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="Rows deleted per transaction."
        )
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the summary as JSON.")

    def handle(self, *args, days=None, webhook_log_days=None, batch_size=DEFAULT_BATCH_SIZE, dry_run=False,
               as_json=False, **options):
        if days is None and ct_settings.RETENTION_DAYS is None and webhook_log_days is None and (
            ct_settings.WEBHOOK_LOG_RETENTION_DAYS is None
        ):
            raise CommandError(
                "No retention configured: pass --days N (and/or --webhook-log-days N), or set "
                "WAGTAIL_CALLTRACKING['RETENTION_DAYS']."
            )
        try:
            summary = purge_expired_data(
                days, webhook_log_days=webhook_log_days, batch_size=batch_size, dry_run=dry_run
            )
        except ValueError as error:
            raise CommandError(str(error))
        if as_json:
            self.stdout.write(json.dumps(summary.as_dict(), indent=2))
            return
        for line in summary.lines():
            self.stdout.write(line)
        if dry_run:
            self.stdout.write(self.style.WARNING("Dry run: nothing was deleted."))
        else:
            self.stdout.write(self.style.SUCCESS(f"Purge complete: {summary.removed} rows deleted."))

