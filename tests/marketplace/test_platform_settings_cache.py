"""Platform settings are read by every live action: a per-process copy, checked against a
version in the shared cache, so reads cost no database round trip and a staff change is seen
by the very next read (in every process: the version lives in the shared cache)."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marketplace.actions.platform import update_platform_settings
from marketplace.selectors import PLATFORM_VERSION_KEY, platform_settings
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_a_second_read_costs_no_query():
    platform_settings()
    with CaptureQueriesContext(connection) as queries:
        platform_settings()
    assert len(queries) == 0


def test_a_staff_change_is_seen_by_the_next_read():
    before = platform_settings().offer_expiry_hours
    update_platform_settings(staff=UserFactory(is_staff=True), values={"offer_expiry_hours": before + 1})
    assert platform_settings().offer_expiry_hours == before + 1


def test_another_process_changing_the_version_makes_this_one_reload():
    platform_settings()
    cache.set(PLATFORM_VERSION_KEY, "changed-elsewhere", timeout=None)
    with CaptureQueriesContext(connection) as queries:
        platform_settings()
    assert len(queries) == 1


def test_a_fresh_read_goes_to_the_database():
    platform_settings()
    with CaptureQueriesContext(connection) as queries:
        platform_settings(fresh=True)
    assert len(queries) == 1
