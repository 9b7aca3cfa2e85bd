"""Write ``released_at`` on every lease whose visitor has left (hold time over) and free its
number. Optional housekeeping: leasing expires leases lazily and attribution computes a
lease's end either way; running this from cron every few minutes keeps the admin's
"current lease" columns and exports tidy.

    manage.py calltracking_release_leases
"""

from django.core.management.base import BaseCommand

from ...numbers.leasing import release_expired_leases


class Command(BaseCommand):
    help = "Release the leases of visitors who left (hold time over); frees their numbers."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size, **options):
        released = release_expired_leases(batch_size=max(1, batch_size))
        self.stdout.write(f"Released {released} expired lease(s).")
