"""Send due deliveries (GA4, Google Ads feed rows, CRM webhooks), re-send failed ones, and
schedule deliveries that are missing.

Run it from cron every minute or so when the task backend cannot schedule retries itself
(the immediate backend). With the database backend (``django-tasks-db``) retries are queued
as deferred tasks and this command is a safety net.

    manage.py calltracking_deliveries                   # send what is due
    manage.py calltracking_deliveries --retry-failed    # failed ones become due again
    manage.py calltracking_deliveries --resend 12 13    # these deliveries, now
    manage.py calltracking_deliveries --backfill 2026-05-01   # calls with missing deliveries
    manage.py calltracking_deliveries --stats           # counts by integration and status
"""

from __future__ import annotations

import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from ...integrations import delivery
from ...models import Delivery, DeliveryStatus


def parse_since(value: str) -> datetime.datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"Not a date: {value!r} (use YYYY-MM-DD or an ISO date-time).")
        parsed = datetime.datetime.combine(day, datetime.time.min)
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


class Command(BaseCommand):
    help = "Send due call-tracking deliveries, re-send failed ones, backfill missing ones."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None, help="Send at most this many.")
        parser.add_argument(
            "--retry-failed",
            action="store_true",
            help="Make failed deliveries due again (with a fresh retry budget) before sending.",
        )
        parser.add_argument(
            "--since",
            help="With --retry-failed: only deliveries created since this date.",
        )
        parser.add_argument("--resend", nargs="+", type=int, metavar="ID", help="Re-send these deliveries now.")
        parser.add_argument(
            "--backfill",
            metavar="DATE",
            help="Create the missing deliveries of calls completed since DATE, then send.",
        )
        parser.add_argument("--stats", action="store_true", help="Print counts by integration and status only.")

    def handle(self, *args, **options):
        if options["stats"]:
            return self.print_stats()

        if options["resend"]:
            ids = options["resend"]
            known = set(Delivery.objects.filter(pk__in=ids).values_list("pk", flat=True))
            for missing in sorted(set(ids) - known):
                self.stderr.write(f"No delivery {missing}.")
            count = delivery.reset_for_resend(known)
            self.stdout.write(f"{count} delivery(ies) queued for re-sending.")

        if options["retry_failed"]:
            failed = Delivery.objects.filter(status=DeliveryStatus.FAILED)
            if options["since"]:
                failed = failed.filter(created_at__gte=parse_since(options["since"]))
            count = delivery.reset_for_resend(list(failed.values_list("pk", flat=True)))
            self.stdout.write(f"{count} failed delivery(ies) queued for re-sending.")

        if options["backfill"]:
            count = delivery.backfill(parse_since(options["backfill"]))
            self.stdout.write(f"{count} missing delivery(ies) scheduled.")

        counts = delivery.process_due(limit=options["limit"])
        if counts:
            summary = ", ".join(f"{n} {DeliveryStatus(status).label.lower()}" for status, n in sorted(counts.items()))
            self.stdout.write(f"Processed {sum(counts.values())}: {summary}.")
        else:
            self.stdout.write("Nothing due.")
        return None

    def print_stats(self):
        stats = delivery.counts_by_status()
        if not stats:
            self.stdout.write("No deliveries.")
            return
        for (kind, status), count in sorted(stats.items()):
            self.stdout.write(f"{kind:12} {status:16} {count}")
