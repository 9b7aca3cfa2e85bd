"""Load the example site's demo content and configuration. Idempotent: run it any time."""

from django.core.management.base import BaseCommand
from django.db import transaction

from home.demo import calls, integrations, numbers, pages

# One module per area, in dependency order; each exposes an idempotent load(stdout).
DEMO_STEPS = [
    pages,
    numbers,
    # After the numbers step, before integrations (history must not trigger deliveries):
    # visits, leases and calls attributed by the webhook processing code.
    calls,
    integrations,
]


class Command(BaseCommand):
    help = "Load demo pages, tracking numbers, sources and sample calls (idempotent)."

    def handle(self, *args, **options):
        for step in DEMO_STEPS:
            self.stdout.write(f"Demo: {step.__name__.rsplit('.', 1)[-1]}")
            with transaction.atomic():
                step.load(self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
