"""Create the demo's admin/admin superuser. Demo only: never part of the package."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create (or reset) the demo superuser admin/admin."

    def handle(self, *args, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username="admin", defaults={"email": "admin@example.com"}
        )
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password("admin")
        user.save()
        self.stdout.write(f"Demo superuser admin/admin {'created' if created else 'reset'}.")
