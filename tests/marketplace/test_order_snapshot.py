"""Issue 18: an order shows the item as it was bought (title, cover, seller's nickname and
avatar), from the snapshot taken when it was placed, whatever later happens to the listing or
its seller."""

import pytest
from django.conf import settings

from marketplace.actions.accounts import ban_user
from marketplace.models import Listing, ListingStatus, Order
from realtime.models import Event
from tests.marketplace.order_helpers import buyer_with_address, listing_on_sale, place_order

pytestmark = pytest.mark.django_db(transaction=True)

AVATAR = "https://thirdwx.qlogo.cn/mmopen/vi_32/seller-face/132"


def _order(make_client):
    buyer, address_id = buyer_with_address(make_client)
    seller = make_client()
    seller.user.nickname, seller.user.avatar_url = "小王的闲置", AVATAR
    seller.user.save(update_fields=["nickname", "avatar_url"])
    listing = listing_on_sale(seller=seller.user, title="九成新 iPhone 13", price_fen=300_000)
    response = place_order(buyer, listing, address_id)
    assert response.status_code == 201, response.content
    return buyer, seller, listing, response.json()


def _item(body: dict) -> dict:
    return {key: body[key] for key in ("title", "cover_url", "seller")}


def test_the_order_carries_the_item_as_bought(make_client):
    buyer, seller, listing, created = _order(make_client)
    cover_url = f"{settings.MEDIA_BASE_URL}{settings.MEDIA_URL}{listing.cover}"
    expected = {
        "title": "九成新 iPhone 13",
        "cover_url": cover_url,
        "seller": {"id": seller.user.pk, "nickname": "小王的闲置", "avatar_url": AVATAR},
    }
    assert listing.cover and _item(created) == expected
    order = Order.objects.get(order_no=created["order_no"])
    assert (order.cover, order.seller_nickname, order.seller_avatar_url) == (
        listing.cover,
        "小王的闲置",
        AVATAR,
    )
    # The event the order's creation sent shows the same item.
    event = Event.objects.filter(user=buyer.user, type="order.status_changed").latest("seq")
    assert _item(event.data) == expected


def test_the_order_renders_the_bought_item_after_the_listing_changed_and_the_seller_was_banned(
    make_client,
):
    buyer, seller, listing, created = _order(make_client)
    order_no = created["order_no"]
    assert buyer.post(f"/api/orders/{order_no}/cancel").status_code == 200
    # The seller edits the listing, renames themself, takes it off the shelf; staff ban them.
    Listing.objects.filter(pk=listing.pk).update(title="改过的标题", cover="listings/other.jpg")
    seller.user.nickname, seller.user.avatar_url = "新名字", ""
    seller.user.save(update_fields=["nickname", "avatar_url"])
    assert seller.post(f"/api/listings/{listing.pk}/off-shelf").status_code == 200
    ban_user(user=seller.user, reason="违规")
    assert Listing.objects.get(pk=listing.pk).status == ListingStatus.OFF_SHELF
    assert buyer.get(f"/api/listings/{listing.pk}").status_code == 404

    detail = buyer.get(f"/api/orders/{order_no}")
    page = buyer.get("/api/orders")

    assert detail.status_code == 200, detail.content
    assert _item(detail.json()) == _item(created)
    assert detail.json()["status"] == "closed"
    listed = [row for row in page.json()["items"] if row["order_no"] == order_no]
    assert [_item(row) for row in listed] == [_item(created)]


def test_an_outsider_still_gets_404_on_the_order(make_client):
    _, _, _, created = _order(make_client)
    stranger = make_client()
    response = stranger.get(f"/api/orders/{created['order_no']}")
    assert response.status_code == 404 and response.json()["code"] == "order_not_found"
