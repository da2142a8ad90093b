"""The storefront cache (marketplace/storefront.py): home and public listing pages are served
rendered from the cache, exactly as built, and every change a public list shows is visible on
the next read."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

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
