"""Favourites ("想要"): the endpoints, their 404s, the counter and the cached pages' rule."""

import pytest

from marketplace.models import Favorite, Listing
from tests.conftest import assert_error
from tests.marketplace.order_helpers import listing_on_sale

pytestmark = pytest.mark.django_db


def test_favourite_is_idempotent_and_counted(make_client):
    buyer = make_client()
    listing = listing_on_sale()
    first = buyer.post(f"/api/listings/{listing.pk}/favorite")
    again = buyer.post(f"/api/listings/{listing.pk}/favorite")
    assert first.status_code == 200, first.content
    assert first.json() == {"listing_id": listing.pk, "is_favorite": True, "favorite_count": 1}
    assert again.json()["favorite_count"] == 1
    assert Favorite.objects.filter(listing=listing).count() == 1
    other = make_client()
    assert other.post(f"/api/listings/{listing.pk}/favorite").json()["favorite_count"] == 2
    gone = buyer.delete(f"/api/listings/{listing.pk}/favorite")
    assert gone.json() == {"listing_id": listing.pk, "is_favorite": False, "favorite_count": 1}
    assert buyer.delete(f"/api/listings/{listing.pk}/favorite").json()["favorite_count"] == 1
    listing.refresh_from_db()
    assert listing.favorite_count == Favorite.objects.filter(listing=listing).count() == 1


def test_favourite_refuses_own_unknown_and_hidden_listings(make_client, anon):
    seller = make_client()
    own = listing_on_sale(seller=seller.user)
    assert_error(seller.post(f"/api/listings/{own.pk}/favorite"), 409, "own_listing")
    buyer = make_client()
    assert_error(buyer.post("/api/listings/999999/favorite"), 404, "listing_not_found")
    assert_error(buyer.delete("/api/listings/999999/favorite"), 404, "listing_not_found")
    pending = listing_on_sale(status="pending_review")
    assert_error(buyer.post(f"/api/listings/{pending.pk}/favorite"), 404, "listing_not_found")
    assert_error(anon.post(f"/api/listings/{own.pk}/favorite"), 401)
    assert not Favorite.objects.exists()


def test_my_favourites_show_current_price_and_status_newest_first(make_client):
    buyer = make_client()
    old = listing_on_sale(price_fen=10_000, title="旧的")
    new = listing_on_sale(price_fen=20_000, title="新的")
    buyer.post(f"/api/listings/{old.pk}/favorite")
    buyer.post(f"/api/listings/{new.pk}/favorite")
    Listing.objects.filter(pk=old.pk).update(status="sold", price_fen=9_000)
    body = buyer.get("/api/me/favorites").json()
    assert [item["id"] for item in body["items"]] == [new.pk, old.pk]
    sold = body["items"][1]
    assert (sold["price"], sold["status"], sold["is_available"]) == (9_000, "sold", False)
    assert body["items"][0]["is_available"] is True
    assert body["items"][0]["favorite_count"] == 1
    page = buyer.get("/api/me/favorites", {"limit": 1}).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = buyer.get("/api/me/favorites", {"limit": 1, "cursor": page["next_cursor"]}).json()
    assert [item["id"] for item in rest["items"]] == [old.pk]
    # Someone else's list is their own: a stranger sees an empty one, never mine.
    assert make_client().get("/api/me/favorites").json()["items"] == []


def test_detail_merges_is_favorite_per_reader_into_the_cached_body(make_client, anon):
    listing = listing_on_sale(description='写着 "is_favorite": false 的描述')
    fan, stranger = make_client(), make_client()
    assert anon.get(f"/api/listings/{listing.pk}").json()["is_favorite"] is False  # now cached
    fan.post(f"/api/listings/{listing.pk}/favorite")
    mine = fan.get(f"/api/listings/{listing.pk}").json()
    assert mine["is_favorite"] is True
    assert mine["description"] == '写着 "is_favorite": false 的描述'
    assert stranger.get(f"/api/listings/{listing.pk}").json()["is_favorite"] is False
    assert anon.get(f"/api/listings/{listing.pk}").json()["is_favorite"] is False


def test_a_favourite_does_not_bump_the_storefront_and_counts_lag_at_most_the_cache(
    make_client, anon
):
    from marketplace import storefront

    listing = listing_on_sale()
    before = storefront.generation()
    assert anon.get("/api/listings").json()["items"][0]["favorite_count"] == 0
    make_client().post(f"/api/listings/{listing.pk}/favorite")
    assert storefront.generation() == before
    # The cached page may still say 0 (≤ STOREFRONT_CACHE_SECONDS); the row says 1.
    listing.refresh_from_db()
    assert listing.favorite_count == 1
