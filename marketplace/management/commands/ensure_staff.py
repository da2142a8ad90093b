"""Creates (or resets) the demo staff logins and prints them: `make run` calls this. One
superuser, and one login per staff role (reviewers, support, finance: migration 0008's groups),
each landing on its own queue (marketplace/admin/landing.py)."""

import os

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from marketplace.models import User

# username, group, password: demo only (embedded mode), never on a deployment.
ROLE_LOGINS = [
    ("demo-reviewer", "reviewers", "reviewer-demo-2026"),
    ("demo-support", "support", "support-demo-2026"),
    ("demo-finance", "finance", "finance-demo-2026"),
]


class Command(BaseCommand):
    help = "Create the demo staff users (embedded mode only) and print their credentials."

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
        for role_username, group_name, role_password in ROLE_LOGINS:
            group = Group.objects.filter(name=group_name).first()
            if group is None:
                raise CommandError(f"The {group_name} group is missing: run `manage.py migrate`.")
            member, created = User.objects.get_or_create(username=role_username)
            member.is_staff = True
            member.is_superuser = False
            member.set_password(role_password)
            member.save()
            member.groups.set([group])
            verb = "created" if created else "ready"
            self.stdout.write(
                f"Staff login ({group_name}) {verb}: username={role_username} "
                f"password={role_password}"
            )
