"""Staff members of each role, signed in to the admin, and the data they work on."""

import importlib

from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.test import Client

from tests.factories import UserFactory

ROLES_MIGRATION = "marketplace.migrations.0008_staff_groups"
# Later migrations that grant a role more (each has GRANTS and grant_all).
GRANT_MIGRATIONS = [
    "marketplace.migrations.0013_support_sees_deletions",
    "marketplace.migrations.0015_finance_sees_transfers_and_reconciliation",
    "marketplace.migrations.0018_staff_exports",
]


def ensure_staff_groups() -> dict[str, Group]:
    """The groups as migration 0008 creates them. Transactional tests flush the database after
    each test (losing migration data), so tests run the migration's own function again."""
    migration = importlib.import_module(ROLES_MIGRATION)
    migration.create_staff_groups(django_apps, None)
    for name in GRANT_MIGRATIONS:
        importlib.import_module(name).grant_all(django_apps, None)
    return {group.name: group for group in Group.objects.filter(name__in=migration.ROLES)}


def staff_in(group_name: str, **fields):
    groups = ensure_staff_groups()
    member = UserFactory(is_staff=True, openid=None, **fields)
    member.set_password("staff-pass-123")
    member.save()
    member.groups.add(groups[group_name])
    return member


def admin_client(user, *, language: str = "en") -> Client:
    """Staff read the admin in Chinese by default; these tests read its English source text
    (tests/project/test_translations.py reads the Chinese)."""
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(user)
    client.user = user
    return client
