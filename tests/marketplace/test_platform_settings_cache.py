"""Platform settings are read by every live action: a per-process copy, checked against a
version in the shared cache at most once per PLATFORM_CHECK_SECONDS, so reads cost no database
round trip (and mostly no cache round trip), a staff change is seen by the very next read in
the process that made it, and by every other process within the bound (the version lives in
the shared cache)."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marketplace import selectors
from marketplace.actions.platform import update_platform_settings
from marketplace.selectors import PLATFORM_CHECK_SECONDS, PLATFORM_VERSION_KEY, platform_settings
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


@pytest.fixture
def clock(monkeypatch):
    """The selectors' monotonic clock, moved by hand."""
    now = [1_000.0]
    monkeypatch.setattr(selectors.time, "monotonic", lambda: now[0])
    return now


def test_another_process_changing_the_version_makes_this_one_reload_within_the_bound(clock):
    platform_settings()
    cache.set(PLATFORM_VERSION_KEY, "changed-elsewhere", timeout=None)
    clock[0] += PLATFORM_CHECK_SECONDS / 2
    with CaptureQueriesContext(connection) as queries:
        platform_settings()
    assert len(queries) == 0  # not asked yet: the copy is younger than the bound
    clock[0] += PLATFORM_CHECK_SECONDS / 2
    with CaptureQueriesContext(connection) as queries:
        platform_settings()
    assert len(queries) == 1


def test_the_version_is_asked_at_most_once_per_bound(clock, monkeypatch):
    platform_settings()
    asked = []
    real_get = cache.get
    monkeypatch.setattr(cache, "get", lambda key, *a, **kw: asked.append(key) or real_get(key, *a, **kw))
    for _ in range(5):
        platform_settings()
    assert asked == []
    clock[0] += PLATFORM_CHECK_SECONDS
    platform_settings()
    assert asked == [PLATFORM_VERSION_KEY]


def test_a_fresh_read_goes_to_the_database():
    platform_settings()
    with CaptureQueriesContext(connection) as queries:
        platform_settings(fresh=True)
    assert len(queries) == 1
