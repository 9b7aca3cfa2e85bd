"""Pool health: peak concurrency, utilisation, exhaustions and a recommended size per pool.

    manage.py calltracking_pool_health                  # every pool, last 30 days
    manage.py calltracking_pool_health --days 7 --pool "Paid search"
    manage.py calltracking_pool_health --hourly         # plus the busiest hours
    manage.py calltracking_pool_health --json           # machine-readable

Exit status 0; with ``--fail-undersized`` it is 1 when a pool is undersized or empty (for
monitoring).
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from ...models import NumberPool
from ...numbers.health import HealthStatus, all_pools_health


class Command(BaseCommand):
    help = "Show the health of every number pool: concurrency, utilisation, exhaustions, recommended size."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=30, help="Observation window in days (default 30).")
        parser.add_argument("--pool", action="append", default=[], help="Pool name or id (repeatable).")
        parser.add_argument("--hourly", action="store_true", help="Also list the 10 busiest hours.")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print JSON instead of a table."
        )
        parser.add_argument(
            "--fail-undersized", action="store_true", help="Exit with status 1 if a pool is undersized or empty."
        )

    def handle(self, *args, days, pool, hourly, as_json, fail_undersized, **options):
        if days < 1:
            raise CommandError("--days must be at least 1.")
        pools = NumberPool.objects.order_by("name", "pk")
        if pool:
            selected = []
            for key in pool:
                found = pools.filter(pk=int(key)) if key.isdigit() else pools.filter(name__iexact=key)
                if not found.exists():
                    raise CommandError(f"No pool named {key!r}.")
                selected.extend(found)
            pools = selected
        reports = all_pools_health(days=days, pools=pools)
        if as_json:
            self.stdout.write(_dumps([report.as_dict() for report in reports]))
        else:
            self._print(reports, hourly)
        if fail_undersized and any(
            r.status in (HealthStatus.UNDERSIZED, HealthStatus.EMPTY) for r in reports
        ):
            raise SystemExit(1)

    def _print(self, reports, hourly):
        if not reports:
            self.stdout.write("No number pools.")
            return
        header = (
            f"{'Pool':<24} {'Size':>4} {'Peak':>4} {'p99':>4} {'Util.':>6} {'Avg':>6} "
            f"{'Leases':>7} {'Exhaust.':>8} {'Recommend':>9}  Status"
        )
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for r in reports:
            style = {
                HealthStatus.UNDERSIZED: self.style.ERROR,
                HealthStatus.EMPTY: self.style.ERROR,
                HealthStatus.TIGHT: self.style.WARNING,
                HealthStatus.OVERSIZED: self.style.NOTICE,
            }.get(r.status, self.style.SUCCESS)
            self.stdout.write(
                f"{r.pool_name[:24]:<24} {r.size:>4} {r.peak_concurrency:>4} {r.p99_concurrency:>4} "
                f"{r.utilisation:>6.0%} {r.average_utilisation:>6.0%} {r.leases:>7} {r.exhaustions:>8} "
                f"{r.recommended_size:>9}  " + style(r.status)
            )
            self.stdout.write(f"    {r.advice}")
            if hourly and r.hourly:
                busiest = sorted(r.hourly, key=lambda h: (h.peak_concurrency, h.exhaustions), reverse=True)[:10]
                for hour in busiest:
                    self.stdout.write(
                        f"    {hour.hour:%Y-%m-%d %H:00}  peak {hour.peak_concurrency:>3}  "
                        f"leases {hour.leases:>4}  exhaustions {hour.exhaustions:>4}"
                    )


def _dumps(data) -> str:
    return json.dumps(data, indent=2, default=str)
