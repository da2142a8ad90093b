"""Creates (or resets) the demo staff login and prints it: `make run` calls this."""

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from marketplace.models import User


class Command(BaseCommand):
    help = "Create the demo staff user (embedded mode only) and print its credentials."

    def handle(self, *args, **options):
        if settings.IS_DEPLOYED:
            raise CommandError(
                "Refusing: a known demo password has no place on a deployment; create its staff "
                "with `python manage.py createsuperuser`."
            )
        username = os.environ.get("DEMO_STAFF_USER", "admin")
        password = os.environ.get("DEMO_STAFF_PASSWORD", "admin-demo-2026")
        user, created = User.objects.get_or_create(username=username)
        user.is_staff = True
        user.is_superuser = True
        user.set_password(password)
        user.save()
        verb = "created" if created else "ready"
        self.stdout.write(f"Staff login {verb}: username={username} password={password}")
