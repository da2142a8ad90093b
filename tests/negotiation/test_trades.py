"""Issue 18: "my trades" in one list. The buyer's live bargains (the seller has yet to answer)
and orders together, newest first, paginated as one list."""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.models import Order
from negotiation.models import Offer
from tests.conftest import assert_error
from tests.marketplace.order_helpers import listing_on_sale, place_order
from tests.negotiation.helpers import buyer, offer, seller_and_listing

pytestmark = pytest.mark.django_db


def _trades(client, **query):
    response = client.get("/api/me/trades", query)
    assert response.status_code == 200, response.content
    return response.json()


def _keys(body):
    return [
        (
            item["kind"],
            item["offer"]["id"] if item["kind"] == "offer" else item["order"]["order_no"],
        )
        for item in body["items"]
    ]


def test_live_offers_and_orders_come_in_one_list_newest_first(make_client):
    alice = buyer(make_client)
    _, waiting = seller_and_listing(make_client, shipping_fee_fen=600)
    _, bought = seller_and_listing(make_client)
    made = offer(alice, waiting, 7_000)
    order_no = place_order(alice, bought, alice.address.pk).json()["order_no"]
    now = timezone.now()
    Offer.objects.filter(pk=made["id"]).update(created_at=now - timedelta(minutes=5))
    Order.objects.filter(order_no=order_no).update(created_at=now - timedelta(minutes=1))

    body = _trades(alice)

    assert _keys(body) == [("order", order_no), ("offer", made["id"])]
    shown_offer = body["items"][1]["offer"]
    assert shown_offer["status"] == "open" and shown_offer["price"] == 7_000
    assert shown_offer["listing"]["title"] == waiting.title
    assert shown_offer["listing"]["shipping_fee"] == 600
    assert body["items"][0]["order"]["status"] == "pending_payment"
    assert body["items"][0]["offer"] is None and body["items"][1]["order"] is None


def test_an_accepted_offer_shows_once_as_its_order_and_ended_offers_not_at_all(make_client):
    alice = buyer(make_client)
    seller, listing = seller_and_listing(make_client)
    accepted = offer(alice, listing, 8_000)
    order_no = seller.post(f"/api/offers/{accepted['id']}/accept").json()["order_no"]
    seller2, other = seller_and_listing(make_client)
    declined = offer(alice, other, 5_000)
    assert seller2.post(f"/api/offers/{declined['id']}/decline").status_code == 200

    assert _keys(_trades(alice)) == [("order", order_no)]


def test_only_my_own_trades_as_buyer(make_client):
    alice, bob = buyer(make_client), buyer(make_client)
    _, listing = seller_and_listing(make_client)
    offer(alice, listing, 6_000)
    # Bob's offers and the sales of a seller are not in their "my trades" as buyer.
    assert _trades(bob)["items"] == []
    seller = make_client()
    place_order(alice, listing_on_sale(seller=seller.user), alice.address.pk)
    assert _trades(seller)["items"] == []


def test_pages_walk_both_kinds_without_gaps_or_repeats(make_client):
    alice = buyer(make_client)
    expected = []
    same_moment = timezone.now() - timedelta(hours=1)
    for n in range(7):
        _, listing = seller_and_listing(make_client)
        if n % 2:
            made = offer(alice, listing, 5_000)
            Offer.objects.filter(pk=made["id"]).update(created_at=same_moment)
            expected.append(("offer", made["id"]))
        else:
            order_no = place_order(alice, listing, alice.address.pk).json()["order_no"]
            Order.objects.filter(order_no=order_no).update(created_at=same_moment)
            expected.append(("order", order_no))
    seen, cursor = [], None
    while True:
        body = _trades(alice, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += _keys(body)
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen, key=str) == sorted(expected, key=str)
    assert len(seen) == len(set(seen)) == 7
    # All created at one moment: orders (kind "order") before offers, each newest id first.
    assert [kind for kind, _ in seen] == ["order"] * 4 + ["offer"] * 3


def test_a_bad_cursor_is_400_not_500(make_client):
    assert_error(
        buyer(make_client).get("/api/me/trades", {"cursor": "junk"}), 400, "invalid_cursor"
    )
