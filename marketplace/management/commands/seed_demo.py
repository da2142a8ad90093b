"""Loads the demo data; idempotent: a second run finds everything in place and adds nothing."""

from django.core.management.base import BaseCommand
from django.db import transaction

from marketplace.models import User

DEMO_USERS = [
    {"openid": "demo-seller-0001", "nickname": "小林的闲置"},
    {"openid": "demo-buyer-0001", "nickname": "爱淘宝的阿杰"},
]


class Command(BaseCommand):
    help = "Load demo users, categories and listings (safe to run again)."

    def handle(self, *args, **options):
        with transaction.atomic():
            for spec in DEMO_USERS:
                User.objects.get_or_create(
                    openid=spec["openid"],
                    defaults={"username": f"wx_{spec['openid']}", "nickname": spec["nickname"]},
                )
        self.stdout.write(
            f"Demo data ready: {User.objects.filter(openid__startswith='demo-').count()} demo users."
        )
