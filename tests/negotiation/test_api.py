
"""Bargaining over REST: the flows, every rule and every bad input (API.md "Negotiation")."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from marketplace.actions.lifecycle import close_unpaid_order
from marketplace.models import Listing, ListingStatus
from marketplace.models.orders import Order, PlatformSettings
from marketplace.selectors import platform_settings_changed
from marketplace.states import OrderStatus
from negotiation.models import Offer, OfferHistory
from tests.conftest import assert_error
from tests.factories import AddressFactory
from tests.negotiation.helpers import PRICE, buyer, events, offer, seller_and_listing, status_of

pytestmark = pytest.mark.django_db


def listing_status(listing: Listing) -> str:
    return Listing.objects.get(pk=listing.pk).status


# --- flows -------------------------------------------------------------------------------------


def test_offer_counter_accept_counter_makes_the_order_at_the_counter_price(make_client):
    seller, listing = seller_and_listing(make_client)
    alice = buyer(make_client)
    made = offer(alice, listing, 7_000)
    assert made["status"] == "open"
    assert made["listing_id"] == listing.pk
    assert (made["buyer_id"], made["seller_id"]) == (alice.user.pk, seller.user.pk)
    assert made["price"] == 7_000 and made["counter_price"] is None and made["order_no"] is None

    inbox = seller.get("/api/offers", {"role": "seller"}).json()
    assert [item["id"] for item in inbox["items"]] == [made["id"]]

    countered = seller.post(f"/api/offers/{made['id']}/counter", {"price": 9_000})
    assert countered.status_code == 200, countered.content
    assert countered.json()["status"] == "countered"
    assert countered.json()["counter_price"] == 9_000

    accepted = alice.post(f"/api/offers/{made['id']}/accept")
    assert accepted.status_code == 200, accepted.content
    body = accepted.json()
    assert body["status"] == "accepted" and body["order_no"]
    order = Order.objects.get(order_no=body["order_no"])
    assert (order.price_fen, order.status, order.buyer_id) == (
        9_000,
        OrderStatus.PENDING_PAYMENT,
        alice.user.pk,
    )
    assert order.address["detail"] == alice.address.detail
    assert listing_status(listing) == ListingStatus.RESERVED
    expected = [
        ("offer.created", made["id"], "open"),
        ("offer.countered", made["id"], "countered"),
        ("offer.accepted", made["id"], "accepted"),
    ]
    assert events(alice.user) == expected
    assert events(seller.user) == expected
    actions = list(
        OfferHistory.objects.filter(offer_id=made["id"]).values_list("action", "actor", "price_fen")
    )
    assert actions == [("made", "buyer", 7_000), ("countered", "seller", 9_000),
                       ("accepted", "buyer", 9_000)]  # fmt: skip


def test_seller_accepts_and_every_other_live_offer_is_declined_listing_sold(make_client):
    seller, listing = seller_and_listing(make_client)
    alice, bob, carol = buyer(make_client), buyer(make_client), buyer(make_client)
    a = offer(alice, listing, 8_000)
    b = offer(bob, listing, 7_000)
    c = offer(carol, listing, 6_000)
    assert seller.post(f"/api/offers/{c['id']}/counter", {"price": 9_500}).status_code == 200

    accepted = seller.post(f"/api/offers/{a['id']}/accept")
    assert accepted.status_code == 200, accepted.content
    assert Order.objects.get(order_no=accepted.json()["order_no"]).price_fen == 8_000
    for other in (b, c):
        row = Offer.objects.get(pk=other["id"])
        assert (row.status, row.decline_reason) == ("declined", "listing_sold")
    assert events(bob.user)[-1] == ("offer.declined", b["id"], "declined")
    assert events(carol.user)[-1] == ("offer.declined", c["id"], "declined")
    assert ("offer.declined", b["id"], "declined") in events(seller.user)
    # The declined buyers cannot slip in now: the listing is reserved.
    assert_error(bob.post(f"/api/listings/{listing.pk}/offers", {"price": 7_500}), 409,
                 "listing_not_on_sale")  # fmt: skip


def test_seller_declines_and_buyer_withdraws_and_buyer_declines_a_counter(make_client):
    seller, listing = seller_and_listing(make_client)
    alice, bob, carol = buyer(make_client), buyer(make_client), buyer(make_client)
    a, b, c = offer(alice, listing, 5_000), offer(bob, listing, 6_000), offer(carol, listing, 7_000)

    declined = seller.post(f"/api/offers/{a['id']}/decline")
    assert declined.json()["status"] == "declined"
    assert declined.json()["decline_reason"] == "seller_declined"
    withdrawn = bob.post(f"/api/offers/{b['id']}/withdraw")
    assert withdrawn.json()["status"] == "withdrawn"
    seller.post(f"/api/offers/{c['id']}/counter", {"price": 9_000})
    refused = carol.post(f"/api/offers/{c['id']}/decline")
    assert refused.json()["status"] == "declined"
    assert refused.json()["decline_reason"] == "buyer_declined"
    assert events(seller.user)[3:] == [
        ("offer.declined", a["id"], "declined"),
        ("offer.withdrawn", b["id"], "withdrawn"),
        ("offer.countered", c["id"], "countered"),
        ("offer.declined", c["id"], "declined"),
    ]
    assert [e[0] for e in events(bob.user)] == ["offer.created", "offer.withdrawn"]
    assert Order.objects.count() == 0
    assert listing_status(listing) == ListingStatus.ON_SALE


def test_a_new_offer_answers_a_counter_and_replaces_it(make_client):
    seller, listing = seller_and_listing(make_client)
    alice = buyer(make_client)
    first = offer(alice, listing, 5_000)
    seller.post(f"/api/offers/{first['id']}/counter", {"price": 9_000})
    second = offer(alice, listing, 7_000)
    assert status_of(first["id"]) == "withdrawn"
    assert second["status"] == "open"
    assert [e[0] for e in events(seller.user)] == [
        "offer.created",
        "offer.countered",
        "offer.withdrawn",
        "offer.created",
    ]


# --- the offer's rules -------------------------------------------------------------------------


@pytest.mark.parametrize("price", [0, -1, 1.5, 100.0, "100", True, None, [100], {"v": 1}])
def test_bad_prices_are_422_and_change_nothing(make_client, price):
    _, listing = seller_and_listing(make_client)
    alice = buyer(make_client)
    response = alice.post(f"/api/listings/{listing.pk}/offers", {"price": price})
    assert_error(response, 422, "validation_error")
    assert Offer.objects.count() == 0


@pytest.mark.parametrize("body", [{}, {"price": 100, "extra": 1}, {"amount": 100}])
def test_bad_bodies_are_422(make_client, body):
    _, listing = seller_and_listing(make_client)
    assert_error(
        buyer(make_client).post(f"/api/listings/{listing.pk}/offers", body), 422, "validation_error"
    )


def test_non_json_and_missing_body_are_client_errors(make_client):
    _, listing = seller_and_listing(make_client)
    alice = buyer(make_client)
    response = alice.post(f"/api/listings/{listing.pk}/offers", "price=1")
    assert 400 <= response.status_code < 500
    assert 400 <= alice.post(f"/api/listings/{listing.pk}/offers").status_code < 500
    assert Offer.objects.count() == 0


@pytest.mark.parametrize("price", [PRICE, PRICE + 1])
def test_price_at_or_above_the_listing_price_is_refused(make_client, price):
    _, listing = seller_and_listing(make_client)
    response = buyer(make_client).post(f"/api/listings/{listing.pk}/offers", {"price": price})
    assert_error(response, 422, "price_not_below_listing")
    assert Offer.objects.count() == 0


def test_lowest_and_highest_valid_prices(make_client):
    _, listing = seller_and_listing(make_client)
    assert offer(buyer(make_client), listing, 1)["price"] == 1
    assert offer(buyer(make_client), listing, PRICE - 1)["price"] == PRICE - 1


def test_missing_own_hidden_and_not_on_sale_listings(make_client):
    seller, listing = seller_and_listing(make_client)
    alice = buyer(make_client)
    assert_error(alice.post("/api/listings/999999/offers", {"price": 10}), 404, "listing_not_found")
    assert_error(alice.post("/api/listings/0/offers", {"price": 10}), 422)
    assert_error(alice.post(f"/api/listings/{2**70}/offers", {"price": 10}), 422)
    AddressFactory(user=seller.user)
    assert_error(
        seller.post(f"/api/listings/{listing.pk}/offers", {"price": 10}), 409, "own_listing"
    )
    for status in (ListingStatus.RESERVED, ListingStatus.SOLD, ListingStatus.OFF_SHELF):
        Listing.objects.filter(pk=listing.pk).update(status=status)
        assert_error(
            alice.post(f"/api/listings/{listing.pk}/offers", {"price": 10}),
            409,
            "listing_not_on_sale",
        )
    for status in (ListingStatus.PENDING_REVIEW, ListingStatus.REJECTED):
        Listing.objects.filter(pk=listing.pk).update(status=status)
        assert_error(
            alice.post(f"/api/listings/{listing.pk}/offers", {"price": 10}),
            404,
            "listing_not_found",
        )
    assert Offer.objects.count() == 0


def test_one_live_offer_per_buyer_per_listing(make_client):
    _, listing = seller_and_listing(make_client)
    alice = buyer(make_client)
    offer(alice, listing, 5_000)
    assert_error(
        alice.post(f"/api/listings/{listing.pk}/offers", {"price": 6_000}),
        409,
        "offer_already_open",
    )
    assert Offer.objects.count() == 1


def test_daily_cap_per_buyer_per_listing_is_429_and_staff_settable(make_client):
    PlatformSettings.objects.update_or_create(pk=1, defaults={"offers_per_listing_per_day": 2})
    platform_settings_changed()  # as staff changes do
    _, listing = seller_and_listing(make_client)
    _, other_listing = seller_and_listing(make_client)
    alice = buyer(make_client)
    for price in (5_000, 5_500):
        made = offer(alice, listing, price)
        alice.post(f"/api/offers/{made['id']}/withdraw")
    response = alice.post(f"/api/listings/{listing.pk}/offers", {"price": 6_000})
    assert_error(response, 429, "offer_rate_limited")
    assert Offer.objects.filter(listing=listing).count() == 2
    offer(alice, other_listing, 6_000)  # per listing, not global
    # A day later the window has moved on.
    Offer.objects.filter(listing=listing).update(created_at=timezone.now() - timedelta(hours=25))
    offer(alice, listing, 6_000)


@override_settings(OFFER_RATE_PER_MINUTE=3)
def test_flooding_offers_across_listings_is_429(make_client):
    alice = buyer(make_client)
    listings = [seller_and_listing(make_client)[1] for _ in range(4)]
    for listing in listings[:3]:
        offer(alice, listing, 5_000)
    response = alice.post(f"/api/listings/{listings[3].pk}/offers", {"price": 5_000})
    assert_error(response, 429, "rate_limited")
    assert Offer.objects.count() == 3


def test_an_offer_needs_a_delivery_address(make_client):
    _, listing = seller_and_listing(make_client)
    nomad = buyer(make_client, with_address=False)
    response = nomad.post(f"/api/listings/{listing.pk}/offers", {"price": 5_000})
    assert_error(response, 409, "address_required")
    assert Offer.objects.count() == 0


def test_banned_and_anonymous_users(make_client, anon):
    _, listing = seller_and_listing(make_client)
    assert_error(anon.post(f"/api/listings/{listing.pk}/offers", {"price": 10}), 401)
    assert_error(anon.get("/api/offers"), 401)
    alice = buyer(make_client)
    alice.user.is_banned = True
    alice.user.save()
    assert_error(
        alice.post(f"/api/listings/{listing.pk}/offers", {"price": 10}), 403, "user_banned"
    )


# --- answering ---------------------------------------------------------------------------------


def test_another_users_offer_is_404_on_every_move(make_client):
    _, listing = seller_and_listing(make_client)
    made = offer(buyer(make_client), listing, 5_000)
    stranger = buyer(make_client)
    for move, body in (("accept", None), ("decline", None), ("withdraw", None),
                       ("counter", {"price": 6_000})):  # fmt: skip
        assert_error(
            stranger.post(f"/api/offers/{made['id']}/{move}", body), 404, "offer_not_found"
        )
    assert_error(stranger.post("/api/offers/999999/accept"), 404, "offer_not_found")
    assert stranger.get("/api/offers").json()["items"] == []
    assert status_of(made["id"]) == "open"


def test_wrong_side_and_wrong_turn(make_client):
    seller, listing = seller_and_listing(make_client)
    alice = buyer(make_client)
    made = offer(alice, listing, 5_000)
    oid = made["id"]
    assert_error(alice.post(f"/api/offers/{oid}/accept"), 409, "not_your_turn")
    assert_error(alice.post(f"/api/offers/{oid}/decline"), 409, "not_your_turn")
    assert_error(alice.post(f"/api/offers/{oid}/counter", {"price": 6_000}), 403, "seller_only")
    assert_error(seller.post(f"/api/offers/{oid}/withdraw"), 403, "buyer_only")
    seller.post(f"/api/offers/{oid}/counter", {"price": 9_000})
    assert_error(seller.post(f"/api/offers/{oid}/accept"), 409, "not_your_turn")
    assert_error(seller.post(f"/api/offers/{oid}/decline"), 409, "not_your_turn")
    assert_error(seller.post(f"/api/offers/{oid}/counter", {"price": 9_500}), 409, "not_your_turn")
    alice.post(f"/api/offers/{oid}/withdraw")
    for client, move in ((alice, "accept"), (alice, "withdraw"), (seller, "decline")):
        assert_error(client.post(f"/api/offers/{oid}/{move}"), 409, "offer_not_open")
    assert Order.objects.count() == 0


@pytest.mark.parametrize(
    ("price", "status", "code"),
    [
        (5_000, 422, "counter_not_above_offer"),
        (4_000, 422, "counter_not_above_offer"),
        (PRICE, 422, "price_not_below_listing"),
        (0, 422, "validation_error"),
        (9_000.5, 422, "validation_error"),
        ("9000", 422, "validation_error"),
    ],
)
def test_bad_counters(make_client, price, status, code):
    seller, listing = seller_and_listing(make_client)
    made = offer(buyer(make_client), listing, 5_000)
    assert_error(seller.post(f"/api/offers/{made['id']}/counter", {"price": price}), status, code)
    assert status_of(made["id"]) == "open"


def test_accepting_an_expired_offer_is_409(make_client):
    seller, listing = seller_and_listing(make_client)
    made = offer(buyer(make_client), listing, 5_000)
    Offer.objects.filter(pk=made["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(seller.post(f"/api/offers/{made['id']}/accept"), 409, "offer_expired")
    assert_error(
        seller.post(f"/api/offers/{made['id']}/counter", {"price": 6_000}), 409, "offer_expired"
    )
    assert Order.objects.count() == 0


def test_buyer_accepting_a_counter_may_choose_the_address(make_client):
    seller, listing = seller_and_listing(make_client)
    alice = buyer(make_client)
    other = AddressFactory(user=alice.user, detail="公司前台")
    strangers = AddressFactory()
    made = offer(alice, listing, 5_000)
    seller.post(f"/api/offers/{made['id']}/counter", {"price": 8_000})
    url = f"/api/offers/{made['id']}/accept"
    assert_error(alice.post(url, {"address_id": strangers.pk}), 404, "address_not_found")
    assert_error(alice.post(url, {"address_id": "x"}), 422)
    assert_error(alice.post(url, {"address": 1}), 422)
    accepted = alice.post(url, {"address_id": other.pk})
    assert accepted.status_code == 200, accepted.content
    assert Order.objects.get(order_no=accepted.json()["order_no"]).address["detail"] == "公司前台"


def test_seller_cannot_choose_the_address_and_needs_the_buyer_to_have_one(make_client):
    seller, listing = seller_and_listing(make_client)
    alice = buyer(make_client)
    made = offer(alice, listing, 5_000)
    url = f"/api/offers/{made['id']}/accept"
    assert_error(seller.post(url, {"address_id": alice.address.pk}), 422, "address_not_allowed")
    alice.address.delete()
    assert_error(seller.post(url), 409, "address_required")
    assert status_of(made["id"]) == "open"
    assert listing_status(listing) == ListingStatus.ON_SALE


def test_seller_cannot_accept_when_the_listing_left_the_storefront(make_client):
    seller, listing = seller_and_listing(make_client)
    made = offer(buyer(make_client), listing, 5_000)
    Listing.objects.filter(pk=listing.pk).update(status=ListingStatus.OFF_SHELF)
    assert_error(seller.post(f"/api/offers/{made['id']}/accept"), 409, "listing_not_on_sale")
    assert Order.objects.count() == 0


# --- floor and auto-accept ---------------------------------------------------------------------


def test_offer_below_the_floor_is_created_declined_and_both_are_told(make_client):
    seller, listing = seller_and_listing(make_client)
    response = seller.put(f"/api/listings/{listing.pk}/bargain-floor", {"floor_price": 6_000})
    assert response.json() == {
        "listing_id": listing.pk,
        "floor_price": 6_000,
        "auto_accept_price": None,
    }
    alice = buyer(make_client)
    low = offer(alice, listing, 5_999)
    assert (low["status"], low["decline_reason"]) == ("declined", "below_floor")
    assert events(alice.user) == [("offer.declined", low["id"], "declined")]
    assert events(seller.user) == [("offer.declined", low["id"], "declined")]
    at_floor = offer(alice, listing, 6_000)
    assert at_floor["status"] == "open"


def test_auto_accept_price_accepts_the_first_offer_at_once(make_client):
    seller, listing = seller_and_listing(make_client)
    seller.put(
        f"/api/listings/{listing.pk}/bargain-floor",
        {"floor_price": 5_000, "auto_accept_price": 9_000},
    )
    bob = buyer(make_client)
    waiting = offer(bob, listing, 8_999)
    assert waiting["status"] == "open"
    alice = buyer(make_client)
    made = offer(alice, listing, 9_000)
    assert made["status"] == "accepted" and made["order_no"]
    order = Order.objects.get(order_no=made["order_no"])
    assert (order.price_fen, order.buyer_id) == (9_000, alice.user.pk)
    assert listing_status(listing) == ListingStatus.RESERVED
    assert status_of(waiting["id"]) == "declined"
    assert events(alice.user) == [("offer.accepted", made["id"], "accepted")]


def test_bargain_floor_rules(make_client):
    seller, listing = seller_and_listing(make_client)
    url = f"/api/listings/{listing.pk}/bargain-floor"
    stranger = make_client()
    assert_error(stranger.put(url, {"floor_price": 10}), 404, "listing_not_found")
    assert_error(seller.put("/api/listings/999999/bargain-floor", {"floor_price": 1}), 404)
    assert_error(seller.put(url, {"floor_price": PRICE}), 422, "price_not_below_listing")
    assert_error(
        seller.put(url, {"floor_price": 10, "auto_accept_price": PRICE}),
        422,
        "price_not_below_listing",
    )
    assert_error(
        seller.put(url, {"floor_price": 5_000, "auto_accept_price": 4_000}),
        422,
        "auto_accept_below_floor",
    )
    for bad in ({}, {"floor_price": 0}, {"floor_price": 1.5}, {"floor_price": "1"},
                {"floor_price": 1, "x": 1}):  # fmt: skip
        assert_error(seller.put(url, bad), 422, "validation_error")
    listing.refresh_from_db()
    assert (listing.bargain_floor_fen, listing.auto_accept_fen) == (None, None)
    seller.put(url, {"floor_price": 3_000, "auto_accept_price": 9_000})
    cleared = seller.put(url, {"floor_price": None})
    assert cleared.json() == {
        "listing_id": listing.pk,
        "floor_price": None,
        "auto_accept_price": None,
    }


def test_raising_the_floor_declines_open_offers_under_it(make_client):
    seller, listing = seller_and_listing(make_client)
    low, high, countered = (offer(buyer(make_client), listing, p) for p in (4_000, 7_000, 3_000))
    seller.post(f"/api/offers/{countered['id']}/counter", {"price": 9_000})
    seller.put(f"/api/listings/{listing.pk}/bargain-floor", {"floor_price": 5_000})
    assert status_of(low["id"]) == "declined"
    assert Offer.objects.get(pk=low["id"]).decline_reason == "below_floor"
    assert status_of(high["id"]) == "open"
    assert status_of(countered["id"]) == "countered"  # the seller already answered that one


# --- the rest of the marketplace ---------------------------------------------------------------


def test_direct_purchase_declines_the_open_offers(make_client):
    _, listing = seller_and_listing(make_client)
    alice = buyer(make_client)
    made = offer(alice, listing, 5_000)
    bob = buyer(make_client)
    response = bob.post("/api/orders", {"listing_id": listing.pk, "address_id": bob.address.pk})
    assert response.status_code == 201, response.content
    row = Offer.objects.get(pk=made["id"])
    assert (row.status, row.decline_reason) == ("declined", "listing_sold")
    assert events(alice.user)[-1] == ("offer.declined", made["id"], "declined")


def test_a_price_edit_declines_offers_at_or_above_the_new_price(make_client):
    seller, listing = seller_and_listing(make_client)
    below = offer(buyer(make_client), listing, 7_000)
    at = offer(buyer(make_client), listing, 8_000)
    above = offer(buyer(make_client), listing, 9_000)
    countered = offer(buyer(make_client), listing, 6_000)
    seller.post(f"/api/offers/{countered['id']}/counter", {"price": 8_500})
    response = seller.patch(f"/api/listings/{listing.pk}", {"price": 8_000})
    assert response.status_code == 200, response.content
    assert status_of(below["id"]) == "open"
    for gone in (at, above, countered):
        row = Offer.objects.get(pk=gone["id"])
        assert (row.status, row.decline_reason) == ("declined", "price_changed")


def test_unpaid_agreed_order_closes_and_bargaining_reopens(make_client):
    seller, listing = seller_and_listing(make_client)
    alice = buyer(make_client)
    made = offer(alice, listing, 5_000)
    order_no = seller.post(f"/api/offers/{made['id']}/accept").json()["order_no"]
    order = Order.objects.get(order_no=order_no)
    close_unpaid_order(order_id=order.pk, actor="system", reason="payment deadline passed")
    assert listing_status(listing) == ListingStatus.ON_SALE
    assert status_of(made["id"]) == "accepted"
    assert list(
        OfferHistory.objects.filter(offer_id=made["id"]).values_list("action", flat=True)
    ) == ["made", "accepted", "order_closed"]
    again = offer(alice, listing, 6_000)
    assert again["status"] == "open"
    assert offer(buyer(make_client), listing, 6_500)["status"] == "open"


# --- listing -----------------------------------------------------------------------------------


def test_list_offers_filters_and_pages(make_client):
    seller, listing = seller_and_listing(make_client)
    _, other_listing = seller_and_listing(make_client, price_fen=50_000)
    alice = buyer(make_client)
    mine = [offer(alice, listing, 5_000), offer(alice, other_listing, 6_000)]
    theirs = offer(buyer(make_client), listing, 7_000)
    seller.post(f"/api/offers/{theirs['id']}/decline")

    as_buyer = alice.get("/api/offers", {"role": "buyer"}).json()
    assert [o["id"] for o in as_buyer["items"]] == [mine[1]["id"], mine[0]["id"]]
    assert alice.get("/api/offers", {"role": "seller"}).json()["items"] == []
    both = seller.get("/api/offers").json()["items"]
    assert [o["id"] for o in both] == [theirs["id"], mine[0]["id"]]
    declined = seller.get("/api/offers", {"status": "declined"}).json()["items"]
    assert [o["id"] for o in declined] == [theirs["id"]]
    by_listing = alice.get("/api/offers", {"listing_id": other_listing.pk}).json()["items"]
    assert [o["id"] for o in by_listing] == [mine[1]["id"]]

    first = alice.get("/api/offers", {"limit": 1}).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = alice.get("/api/offers", {"limit": 1, "cursor": first["next_cursor"]}).json()
    assert [o["id"] for o in second["items"]] == [mine[0]["id"]]
    assert second["next_cursor"] is None

    assert_error(alice.get("/api/offers", {"cursor": "garbage"}), 400, "invalid_cursor")
    for bad in ({"role": "admin"}, {"status": "won"}, {"limit": 0}, {"listing_id": "x"}):
        assert_error(alice.get("/api/offers", bad), 422, "validation_error")


def test_openapi_documents_the_negotiation_endpoints(anon):
    paths = anon.get("/api/openapi.json").json()["paths"]
    for path in (
        "/api/listings/{listing_id}/offers",
        "/api/offers",
        "/api/offers/{offer_id}/accept",
        "/api/offers/{offer_id}/decline",
        "/api/offers/{offer_id}/counter",
        "/api/offers/{offer_id}/withdraw",
        "/api/listings/{listing_id}/bargain-floor",
    ):
        assert path in paths, path
