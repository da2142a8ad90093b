"""Every acceptance race settles exactly once: real threads on PostgreSQL, through the API."""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.models import Listing, ListingStatus
from marketplace.models.orders import Order
from negotiation.actions import handle_offer_expiry
from negotiation.models import LIVE_STATUSES, Offer
from tests.negotiation.helpers import buyer, offer, seller_and_listing
from tests.races import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def codes(responses) -> list:
    out = []
    for response in responses:
        assert not isinstance(response, BaseException), response
        out.append(response.status_code if response.status_code == 200 else response.json()["code"])
    return out


def assert_one_order(listing: Listing) -> Order:
    orders = list(Order.objects.filter(listing=listing))
    assert len(orders) == 1, orders
    assert Listing.objects.get(pk=listing.pk).status == ListingStatus.RESERVED
    # Nothing is left to bargain over on a reserved listing.
    assert not Offer.objects.filter(listing=listing, status__in=LIVE_STATUSES).exists()
    return orders[0]


def test_two_seller_devices_accepting_two_offers_make_one_order(make_client):
    seller, listing = seller_and_listing(make_client)
    phone, tablet = make_client(seller.user), make_client(seller.user)
    a = offer(buyer(make_client), listing, 7_000)
    b = offer(buyer(make_client), listing, 8_000)

    results = codes(
        race(
            lambda: phone.post(f"/api/offers/{a['id']}/accept"),
            lambda: tablet.post(f"/api/offers/{b['id']}/accept"),
        )
    )

    assert sorted(results, key=str) == sorted([200, "offer_not_open"], key=str), results
    order = assert_one_order(listing)
    winner = Offer.objects.get(status="accepted")
    assert winner.order_id == order.pk and order.price_fen == winner.price_fen
    loser = Offer.objects.exclude(pk=winner.pk).get()
    assert (loser.status, loser.decline_reason) == ("declined", "listing_sold")


def test_the_same_offer_accepted_on_two_devices_at_once_is_accepted_once(make_client):
    seller, listing = seller_and_listing(make_client)
    made = offer(buyer(make_client), listing, 7_000)
    devices = [make_client(seller.user) for _ in range(4)]
    results = codes(
        race(*(lambda d=d: d.post(f"/api/offers/{made['id']}/accept") for d in devices))
    )
    assert results.count(200) == 1 and results.count("offer_not_open") == 3, results
    assert_one_order(listing)


def test_acceptance_racing_a_direct_purchase_settles_once(make_client):
    for _ in range(5):
        seller, listing = seller_and_listing(make_client)
        made = offer(buyer(make_client), listing, 7_000)
        purchaser = buyer(make_client)
        body = {"listing_id": listing.pk, "address_id": purchaser.address.pk}

        accept, purchase = race(
            lambda: seller.post(f"/api/offers/{made['id']}/accept"),  # noqa: B023
            lambda: purchaser.post("/api/orders", body),  # noqa: B023
        )

        order = assert_one_order(listing)
        row = Offer.objects.get(pk=made["id"])
        if accept.status_code == 200:
            assert purchase.status_code == 409 and purchase.json()["code"] == "listing_not_on_sale"
            assert row.status == "accepted" and order.price_fen == 7_000
        else:
            assert purchase.status_code == 201, purchase.content
            assert accept.status_code == 409 and accept.json()["code"] == "offer_not_open"
            assert (row.status, row.decline_reason) == ("declined", "listing_sold")
            assert order.price_fen == listing.price_fen


def test_acceptance_racing_expiry_settles_once(make_client):
    for _ in range(5):
        seller, listing = seller_and_listing(make_client)
        made = offer(buyer(make_client), listing, 7_000)
        # Due for the expiry handler (which is told it is later), not yet for the acceptance.
        later = Offer.objects.get(pk=made["id"]).expires_at + timedelta(seconds=1)

        accept, expired = race(
            lambda: seller.post(f"/api/offers/{made['id']}/accept"),  # noqa: B023
            lambda: handle_offer_expiry(offer_id=made["id"], now=later),  # noqa: B023
        )

        row = Offer.objects.get(pk=made["id"])
        if accept.status_code == 200:
            assert expired == "not_live" and row.status == "accepted"
            assert_one_order(listing)
        else:
            assert expired == "expired" and row.status == "expired"
            assert accept.json()["code"] == "offer_not_open"
            assert not Order.objects.filter(listing=listing).exists()
            assert Listing.objects.get(pk=listing.pk).status == ListingStatus.ON_SALE


def test_offers_racing_an_acceptance_never_stay_open_on_a_reserved_listing(make_client):
    seller, listing = seller_and_listing(make_client)
    made = offer(buyer(make_client), listing, 7_000)
    late = [buyer(make_client) for _ in range(8)]

    results = race(
        lambda: seller.post(f"/api/offers/{made['id']}/accept"),
        *(lambda c=c: c.post(f"/api/listings/{listing.pk}/offers", {"price": 6_000}) for c in late),
    )

    assert results[0].status_code == 200, results[0].content
    assert_one_order(listing)  # includes: no live offer left
    for response in results[1:]:
        assert response.status_code in (201, 409), response.content
        if response.status_code == 409:
            assert response.json()["code"] == "listing_not_on_sale"


def test_one_buyer_racing_the_same_offer_twice_gets_one_live_offer(make_client):
    _, listing = seller_and_listing(make_client)
    alice = buyer(make_client)
    devices = [make_client(alice.user) for _ in range(4)]
    results = race(
        *(
            lambda d=d: d.post(f"/api/listings/{listing.pk}/offers", {"price": 6_000})
            for d in devices
        )
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201, 409, 409, 409], statuses
    assert Offer.objects.filter(listing=listing, status="open").count() == 1


def test_withdraw_racing_acceptance_settles_once(make_client):
    for _ in range(5):
        seller, listing = seller_and_listing(make_client)
        alice = buyer(make_client)
        made = offer(alice, listing, 7_000)
        accept, withdraw = race(
            lambda: seller.post(f"/api/offers/{made['id']}/accept"),  # noqa: B023
            lambda: alice.post(f"/api/offers/{made['id']}/withdraw"),  # noqa: B023
        )
        assert sorted([accept.status_code, withdraw.status_code]) == [200, 409]
        row = Offer.objects.get(pk=made["id"])
        assert row.status == ("accepted" if accept.status_code == 200 else "withdrawn")
        assert Order.objects.filter(listing=listing).count() == (
            1 if accept.status_code == 200 else 0
        )


def test_sweeper_racing_itself_expires_once(make_client):
    _, listing = seller_and_listing(make_client)
    made = offer(buyer(make_client), listing, 7_000)
    later = timezone.now() + timedelta(days=2)
    results = race(*(lambda: handle_offer_expiry(offer_id=made["id"], now=later) for _ in range(4)))
    assert sorted(results) == ["expired", "not_live", "not_live", "not_live"]
