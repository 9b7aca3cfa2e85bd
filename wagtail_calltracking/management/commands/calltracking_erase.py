"""Erase a visitor's or a caller's personal data (right to be forgotten), across every table
and the raw webhook log, with a summary.

    manage.py calltracking_erase --phone "+1 312 555 0100"
    manage.py calltracking_erase --visitor 0f8fad5b-d9cb-469f-a165-70867728950e
    manage.py calltracking_erase --phone +13125550100 --dry-run      # what would be erased
    manage.py calltracking_erase --phone +13125550100 --noinput      # no confirmation prompt
    manage.py calltracking_erase --phone +13125550100 --no-follow-links

By default links are followed: a visitor's calls bring their caller numbers, a caller's calls
bring the visitors they were attributed to. Calls stay (counted in reports) without their
personal data. See docs/privacy.md for what is erased where.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from ...privacy import ErasureError, erase_personal_data


class Command(BaseCommand):
    help = "Erase the personal data of visitors (by visitor id) and callers (by phone number)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--visitor", action="append", default=[], metavar="VISITOR_ID", help="A visitor id (repeatable)."
        )
        parser.add_argument(
            "--phone", action="append", default=[], metavar="NUMBER", help="A caller's phone number (repeatable)."
        )
        parser.add_argument(
            "--no-follow-links",
            action="store_true",
            help="Erase only the given identifiers, not the callers/visitors linked to them by calls.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Show what would be erased; change nothing.")
        parser.add_argument("--noinput", "--no-input", action="store_true", help="Do not ask for confirmation.")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the summary as JSON.")

    def handle(self, *args, visitor=(), phone=(), no_follow_links=False, dry_run=False, noinput=False,
               as_json=False, **options):
        if not visitor and not phone:
            raise CommandError("Give at least one --visitor VISITOR_ID or --phone NUMBER.")
        follow = not no_follow_links
        try:
            if not dry_run and not noinput and options.get("interactive", True):
                preview = erase_personal_data(visitor, phone, follow_links=follow, dry_run=True)
                for line in preview.lines():
                    self.stdout.write(line)
                answer = input("This cannot be undone. Type 'yes' to erase: ")
                if answer.strip().lower() != "yes":
                    raise CommandError("Erasure cancelled.")
            summary = erase_personal_data(visitor, phone, follow_links=follow, dry_run=dry_run)
        except ErasureError as error:
            raise CommandError(str(error))
        if as_json:
            data = summary.as_dict()
            data["recording_urls"] = summary.recording_urls
            data["spool_files"] = summary.spool_files
            self.stdout.write(json.dumps(data, indent=2))
            return
        for line in summary.lines():
            self.stdout.write(line)
        for url in summary.recording_urls:
            self.stdout.write(f"  recording to delete at the provider: {url}")
        for path in summary.spool_files:
            self.stdout.write(f"  spool file: {path}")
        if dry_run:
            self.stdout.write(self.style.WARNING("Dry run: nothing was erased."))
        else:
            self.stdout.write(self.style.SUCCESS("Erasure complete."))

