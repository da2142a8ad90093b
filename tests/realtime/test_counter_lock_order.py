"""One lock order for the event counters (issue 20, finding 1).

An action that tells several people takes all their counters at once, sorted, before its first
event; a transaction that already holds counters and then locks someone else's can deadlock
with another doing the opposite (a purchase declining an offer while that offer's buyer bargains
with the same seller elsewhere: `DeadlockDetected`, then a 500). The test settings make such a
late lock an error, so every path the suite walks is checked, and a thread race reproduces the
deadlock itself on PostgreSQL.
"""

import pytest
from django.db import transaction

from realtime.push import CounterLockOrderError, batched, emit
from tests.factories import UserFactory
from tests.marketplace.order_helpers import buyer_with_address, place_order
from tests.negotiation.helpers import buyer, offer, seller_and_listing
from tests.races import race

pytestmark = pytest.mark.django_db(transaction=True)


def test_locking_someone_new_after_the_first_event_is_refused():
    a, b, c = UserFactory(), UserFactory(), UserFactory()
    with pytest.raises(CounterLockOrderError), transaction.atomic():
        emit(user_ids=[a.pk, b.pk], type="offer.created", data={})
        emit(user_ids=[c.pk], type="offer.declined", data={})


def test_everyone_told_in_one_batch_may_be_told_in_any_order():
    a, b, c = UserFactory(), UserFactory(), UserFactory()
    with transaction.atomic(), batched():
        emit(user_ids=[c.pk], type="offer.declined", data={})
        emit(user_ids=[a.pk, b.pk], type="offer.created", data={})
    with transaction.atomic():  # a new transaction starts with nothing held
        emit(user_ids=[c.pk], type="offer.declined", data={})


def test_a_purchase_declining_open_offers_takes_every_counter_up_front(make_client):
    seller, listing = seller_and_listing(make_client)
    bargainer = buyer(make_client)
    offer(bargainer, listing, 7_000)
    purchaser, address_id = buyer_with_address(make_client)
    response = place_order(purchaser, listing, address_id)
    assert response.status_code == 201, response.content


def test_an_offer_accepted_at_once_after_replacing_a_counter_takes_every_counter_up_front(
    make_client,
):
    seller, listing = seller_and_listing(make_client, auto_accept_fen=9_000)
    rival = buyer(make_client)
    offer(rival, listing, 7_000)
    bargainer = buyer(make_client)
    first = offer(bargainer, listing, 7_500)
    assert seller.post(f"/api/offers/{first['id']}/counter", {"price": 9_500}).status_code == 200
    response = bargainer.post(f"/api/listings/{listing.pk}/offers", {"price": 9_200})
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "accepted"


def _purchase_racing_an_offer(make_client) -> list:
    bargainer = buyer(make_client)  # created first: a lower id than the seller
    seller, listing = seller_and_listing(make_client)
    _, other_listing = seller_and_listing(make_client)
    other_listing.seller = seller.user
    other_listing.save(update_fields=["seller"])
    offer(bargainer, listing, 7_000)
    purchaser, address_id = buyer_with_address(make_client)
    return race(
        lambda: place_order(purchaser, listing, address_id),
        lambda: bargainer.post(f"/api/listings/{other_listing.pk}/offers", {"price": 7_000}),
    )


@pytest.mark.postgres
def test_a_purchase_racing_an_offer_to_the_same_seller_never_deadlocks(make_client, settings):
    """The attack run's case: buyer Z buys L while X, who has an open offer on L, offers on
    another listing M of the same seller. X's id is below the seller's, so the offer locks X's
    counter then the seller's while the purchase holds the seller's and wants X's."""
    settings.REALTIME_STRICT_LOCK_ORDER = False  # the database itself is the judge here
    for _ in range(15):
        for result in _purchase_racing_an_offer(make_client):
            assert not isinstance(result, BaseException), result
            assert result.status_code == 201, result.content
