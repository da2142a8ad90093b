"""The seller page, follows, and list endpoints refusing parameters they do not have."""

import pytest

from marketplace.actions.accounts import ban_user
from marketplace.actions.catalog import approve_listing
from marketplace.actions.social import recount_seller_listings
from marketplace.models import Follow, ListingStatus, Review, User
from tests.conftest import assert_error
from tests.factories import StaffFactory, UserFactory
from tests.marketplace.fulfilment_helpers import shipped
from tests.marketplace.order_helpers import (
    buyer_with_address,
    listing_on_sale,
    pay_in_wechat,
    place_order,
)

pytestmark = pytest.mark.django_db


def test_profile_shows_counters_and_the_readers_follow(
    make_client, anon, django_capture_on_commit_callbacks
):
    seller = make_client()
    kept = listing_on_sale(seller=seller.user, status=ListingStatus.PENDING_REVIEW)
    bought = listing_on_sale(seller=seller.user, status=ListingStatus.PENDING_REVIEW)
    staff = StaffFactory()
    # Moved through the machine (approval, an order): the counters follow once each commits.
    with django_capture_on_commit_callbacks(execute=True):
        approve_listing(staff=staff, listing_id=kept.pk)
        approve_listing(staff=staff, listing_id=bought.pk)
    assert User.objects.get(pk=seller.user.pk).on_sale_count == 2
    buyer, address_id = buyer_with_address(make_client)
    with django_capture_on_commit_callbacks(execute=True):
        order_no = place_order(buyer, bought, address_id).json()["order_no"]
    with django_capture_on_commit_callbacks(execute=True):
        pay_in_wechat(buyer, order_no)
    fan = make_client()
    assert fan.post(f"/api/users/{seller.user.pk}/follow").json() == {
        "seller_id": seller.user.pk, "is_following": True, "follower_count": 1,
    }
    body = fan.get(f"/api/users/{seller.user.pk}").json()
    assert (body["on_sale_count"], body["sold_count"], body["follower_count"]) == (1, 1, 1)
    assert body["is_following"] is True and body["joined_at"]
    assert anon.get(f"/api/users/{seller.user.pk}").json()["is_following"] is False


def test_counters_equal_the_rows_after_recount():
    seller = UserFactory()
    for status in ("on_sale", "on_sale", "sold", "off_shelf"):
        listing_on_sale(seller=seller, status=status)
    recount_seller_listings(seller_ids=[seller.pk])
    seller.refresh_from_db()
    assert (seller.on_sale_count, seller.sold_count) == (2, 1)


def test_follow_is_idempotent_and_refuses_self_unknown_and_staff(make_client, anon):
    seller, fan = make_client(), make_client()
    fan.post(f"/api/users/{seller.user.pk}/follow")
    assert fan.post(f"/api/users/{seller.user.pk}/follow").json()["follower_count"] == 1
    assert Follow.objects.filter(seller=seller.user).count() == 1
    assert_error(seller.post(f"/api/users/{seller.user.pk}/follow"), 409, "follow_self")
    assert_error(fan.post("/api/users/999999/follow"), 404, "user_not_found")
    assert_error(fan.post(f"/api/users/{StaffFactory().pk}/follow"), 404, "user_not_found")
    assert_error(anon.post(f"/api/users/{seller.user.pk}/follow"), 401)
    following = fan.get("/api/me/following").json()["items"]
    assert [(f["id"], f["follower_count"]) for f in following] == [(seller.user.pk, 1)]
    assert fan.delete(f"/api/users/{seller.user.pk}/follow").json()["follower_count"] == 0
    assert fan.delete(f"/api/users/{seller.user.pk}/follow").json()["follower_count"] == 0
    assert fan.get("/api/me/following").json()["items"] == []
    assert User.objects.get(pk=seller.user.pk).follower_count == 0
    # Each user's list is their own.
    assert make_client().get("/api/me/following").json()["items"] == []


def test_seller_listings_on_sale_or_sold_newest_first(anon):
    seller = UserFactory()
    first = listing_on_sale(seller=seller)
    second = listing_on_sale(seller=seller)
    sold = listing_on_sale(seller=seller, status="sold")
    listing_on_sale(seller=seller, status="pending_review")
    listing_on_sale()  # someone else's
    on_sale = anon.get(f"/api/users/{seller.pk}/listings").json()
    assert [item["id"] for item in on_sale["items"]] == [second.pk, first.pk]
    sold_page = anon.get(f"/api/users/{seller.pk}/listings", {"status": "sold"}).json()
    assert [item["id"] for item in sold_page["items"]] == [sold.pk]
    assert_error(
        anon.get(f"/api/users/{seller.pk}/listings", {"status": "pending_review"}), 422
    )
    assert_error(anon.get("/api/users/999999/listings"), 404, "user_not_found")


def test_a_banned_sellers_page_shows_nothing_for_sale(anon):
    seller = UserFactory()
    listing_on_sale(seller=seller)
    ban_user(user=seller, reason="欺诈")
    assert anon.get(f"/api/users/{seller.pk}/listings").json()["items"] == []
    assert_error(anon.get(f"/api/users/{seller.pk}"), 404)


def test_seller_reviews_show_buyer_and_listing_title(make_client, anon):
    buyer, seller, order_no = shipped(make_client)
    buyer.post(f"/api/orders/{order_no}/confirm-receipt")
    assert buyer.post(f"/api/orders/{order_no}/review", {"rating": 4, "comment": "很好"}).status_code == 201
    items = anon.get(f"/api/users/{seller.user.pk}/reviews").json()["items"]
    assert len(items) == 1
    review = items[0]
    assert (review["rating"], review["comment"]) == (4, "很好")
    assert review["buyer"]["id"] == buyer.user.pk
    assert review["listing_title"] == Review.objects.get().order.title
    assert anon.get(f"/api/users/{buyer.user.pk}/reviews").json()["items"] == []
    assert_error(anon.get("/api/users/999999/reviews"), 404, "user_not_found")


@pytest.mark.parametrize(
    "path",
    ["/api/listings", "/api/me/favorites", "/api/me/following", "/api/notifications",
     "/api/me/listings", "/api/orders", "/api/users/{id}/listings"],
)
def test_list_endpoints_refuse_unknown_query_parameters(make_client, path):
    client = make_client()
    url = path.replace("{id}", str(client.user.pk))
    body = assert_error(client.get(url, {"seller": 8}), 422, "unknown_query_parameter")
    assert "seller" in body["message"]
    assert client.get(url, {"limit": 5}).status_code == 200


def test_erasure_forgets_favourites_follows_and_notifications_with_their_counters(make_client):
    from marketplace.actions.social import forget_user
    from realtime.models import Notification

    leaving, seller, fan = make_client(), make_client(), make_client()
    listing = listing_on_sale(seller=seller.user)
    leaving.post(f"/api/listings/{listing.pk}/favorite")
    leaving.post(f"/api/users/{seller.user.pk}/follow")
    fan.post(f"/api/users/{leaving.user.pk}/follow")
    Notification.objects.create(user=leaving.user, type="wallet.credited", created_at=listing.created_at)
    forget_user(user=leaving.user)
    listing.refresh_from_db()
    assert listing.favorite_count == 0
    assert User.objects.get(pk=seller.user.pk).follower_count == 0
    assert User.objects.get(pk=leaving.user.pk).follower_count == 0
    assert not Follow.objects.exists()
    assert not Notification.objects.filter(user=leaving.user).exists()
