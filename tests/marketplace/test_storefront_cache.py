"""The storefront cache (marketplace/storefront.py): home and public listing pages are served
rendered from the cache, exactly as built, and every change a public list shows is visible on
the next read."""

import threading
import time

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marketplace import storefront
from marketplace.actions import catalog as catalog_actions
from marketplace.actions.accounts import ban_user, unban_user
from marketplace.actions.orders import release_listing
from marketplace.models import ListingStatus, ListingView
from tests.factories import StaffFactory, UserFactory
from tests.marketplace.catalog_factories import category_tree, make_listing

pytestmark = pytest.mark.django_db


@pytest.fixture
def cats(db):
    return category_tree()


def _get(client, path, params=None):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, params or {})
    assert response.status_code == 200, response.content
    return response, len(captured)


def _ids(body, section="items"):
    return [item["id"] for item in body[section]]


@pytest.mark.parametrize(
    ("path", "params"), [("/api/home", {}), ("/api/listings", {"sort": "newest", "limit": 5})]
)
def test_a_repeated_read_is_served_from_the_cache_byte_for_byte(anon, cats, path, params):
    for _ in range(3):
        make_listing(category=cats["apple"])
    first, first_queries = _get(anon, path, params)
    second, second_queries = _get(anon, path, params)
    assert first_queries > 0
    assert second_queries == 0
    assert second.content == first.content
    assert second["Content-Type"] == first["Content-Type"] == "application/json; charset=utf-8"
    cache.clear()  # built afresh, the response is the same: the cache changes no byte
    rebuilt, _ = _get(anon, path, params)
    assert rebuilt.content == first.content


def test_each_query_is_its_own_entry(anon, cats):
    apple = make_listing(category=cats["apple"])
    android = make_listing(category=cats["android"])
    apple_page, _ = _get(anon, "/api/listings", {"category": cats["apple"].pk})
    android_page, _ = _get(anon, "/api/listings", {"category": cats["android"].pk})
    assert _ids(apple_page.json()) == [apple.pk]
    assert _ids(android_page.json()) == [android.pk]


def test_an_approved_listing_shows_on_the_next_read(anon, cats):
    _get(anon, "/api/home")
    pending = make_listing(category=cats["apple"], status=ListingStatus.PENDING_REVIEW)
    _get(anon, "/api/listings")
    catalog_actions.approve_listing(staff=StaffFactory(), listing_id=pending.pk)
    home, _ = _get(anon, "/api/home")
    page, _ = _get(anon, "/api/listings")
    assert pending.pk in _ids(home.json(), "newest")
    assert _ids(page.json()) == [pending.pk]


def test_a_banned_sellers_listings_leave_the_cached_pages_at_once(anon, cats):
    seller = UserFactory()
    listing = make_listing(category=cats["apple"], seller=seller)
    before, _ = _get(anon, "/api/listings")
    assert _ids(before.json()) == [listing.pk]
    _get(anon, f"/api/listings/{listing.pk}")
    ban_user(user=seller, reason="fraud")
    after, _ = _get(anon, "/api/listings")
    home, _ = _get(anon, "/api/home")
    assert _ids(after.json()) == []
    assert _ids(home.json(), "newest") == []
    assert anon.get(f"/api/listings/{listing.pk}").status_code == 404
    unban_user(user=seller)
    again, _ = _get(anon, "/api/listings")
    assert _ids(again.json()) == [listing.pk]


def test_a_listing_an_order_releases_comes_back_on_the_next_read(anon, cats):
    listing = make_listing(category=cats["apple"], status=ListingStatus.RESERVED)
    before, _ = _get(anon, "/api/listings")
    assert _ids(before.json()) == []

    class HeldBy:  # release_listing needs only the order's listing
        listing_id = listing.pk

    release_listing(HeldBy(), to=ListingStatus.ON_SALE)
    after, _ = _get(anon, "/api/listings")
    assert _ids(after.json()) == [listing.pk]


# --- listing detail ------------------------------------------------------------------------


def test_a_repeated_detail_read_is_served_from_the_cache(anon, cats):
    listing = make_listing(category=cats["apple"])
    first, first_queries = _get(anon, f"/api/listings/{listing.pk}")
    second, second_queries = _get(anon, f"/api/listings/{listing.pk}")
    assert first_queries > 0
    assert second_queries == 0  # same viewer within the hour: not even a view to count
    assert second.content == first.content
    cache.clear()
    rebuilt, _ = _get(anon, f"/api/listings/{listing.pk}")
    assert rebuilt.content == first.content


def test_views_are_still_counted_on_cached_reads(make_client, cats):
    listing = make_listing(category=cats["apple"])
    for _ in range(3):
        _get(make_client(UserFactory()), f"/api/listings/{listing.pk}")
    assert ListingView.objects.filter(listing_id=listing.pk).count() == 3


def test_a_listing_taken_off_the_shelf_is_gone_on_the_next_read(anon, make_client, cats):
    seller = UserFactory()
    listing = make_listing(category=cats["apple"], seller=seller)
    _get(anon, f"/api/listings/{listing.pk}")
    catalog_actions.take_off_shelf(seller=seller, listing_id=listing.pk)
    assert anon.get(f"/api/listings/{listing.pk}").status_code == 404
    # The seller still sees it (their reads never come from the cache).
    own, _ = _get(make_client(seller), f"/api/listings/{listing.pk}")
    assert own.json()["status"] == ListingStatus.OFF_SHELF


def test_the_seller_reads_their_listing_from_the_database(make_client, cats):
    seller = UserFactory()
    listing = make_listing(category=cats["apple"], seller=seller)
    client = make_client(seller)
    client.get("/api/me")  # the token's first use records last_used_at once
    _get(client, f"/api/listings/{listing.pk}")
    _, queries = _get(client, f"/api/listings/{listing.pk}")
    assert queries > 0


# --- single flight (marketplace/storefront.py `cached`) -------------------------------------
# Pure cache tests: on the real stack they run against Redis (threads sharing one cache across
# connections, as the server's processes do), embedded against the local-memory cache.


def _racing_reads(key, build, threads=16):
    barrier = threading.Barrier(threads)
    results, errors = [], []

    def read():
        barrier.wait()
        try:
            results.append(storefront.cached(key, build))
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=read) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    assert errors == []
    return results


def _slow_build(calls, content=b"built"):
    lock = threading.Lock()

    def build():
        with lock:
            calls.append(1)
        time.sleep(0.3)
        return content

    return build


def test_an_expired_entry_is_rebuilt_once_while_the_others_serve_the_stale_copy():
    key = f"storefront:test:{time.time_ns()}"
    cache.set(key, (time.time() - 1, b"stale"), 60)
    calls = []
    started = time.monotonic()
    results = _racing_reads(key, _slow_build(calls))
    assert len(calls) == 1
    assert sorted(set(results)) == [b"built", b"stale"]
    assert results.count(b"built") == 1
    assert time.monotonic() - started < 2
    assert storefront.cached(key, _slow_build(calls, b"again")) == b"built"  # fresh now
    assert len(calls) == 1


def test_a_missing_entry_is_built_once_and_the_others_wait_for_it():
    key = f"storefront:test:{time.time_ns()}"
    calls = []
    results = _racing_reads(key, _slow_build(calls))
    assert len(calls) == 1
    assert results == [b"built"] * 16


def test_a_failed_build_frees_the_lock_for_the_next_reader():
    key = f"storefront:test:{time.time_ns()}"

    def broken():
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError):
        storefront.cached(key, broken)
    calls = []
    assert storefront.cached(key, _slow_build(calls)) == b"built"
    assert len(calls) == 1


def test_a_reader_waits_only_briefly_for_a_stuck_builder(monkeypatch):
    key = f"storefront:test:{time.time_ns()}"
    monkeypatch.setattr(storefront, "BUILD_WAIT_SECONDS", 0.2)
    cache.add(f"{key}:building", 1, 60)  # a builder that never finishes
    started = time.monotonic()
    assert storefront.cached(key, lambda: b"mine") == b"mine"
    assert time.monotonic() - started < 1
