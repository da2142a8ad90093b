"""The exact events bargaining sends: type, recipients, and the offer as the API shows it."""

import pytest

from realtime.models import Event
from tests.negotiation.helpers import buyer, offer, seller_and_listing

pytestmark = pytest.mark.django_db(transaction=True)


def _since(mark: int) -> list[tuple[int, str, dict]]:
    """The offer and order events; each move's message in the thread (message.created) is
    checked in test_conversation_offers.py."""
    return [
        (event.user_id, event.type, event.data)
        for event in Event.objects.filter(pk__gt=mark).exclude(type="message.created")
        .order_by("pk")
    ]


def _mark() -> int:
    return Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def _shown(client, offer_id: int) -> dict:
    page = client.get("/api/offers").json()
    return next(item for item in page["items"] if item["id"] == offer_id)


def test_an_offer_tells_both_sides_with_the_offer_as_listed(make_client):
    seller, listing = seller_and_listing(make_client)
    alice = buyer(make_client)
    mark = _mark()
    made = offer(alice, listing, 7_000)
    events = _since(mark)
    # One event per recipient, numbered in user-id order.
    assert [(user, type) for user, type, _ in events] == [
        (user, "offer.created") for user in sorted([seller.user.pk, alice.user.pk])
    ]
    assert all(data == made == _shown(alice, made["id"]) for _, _, data in events)


def test_an_acceptance_sends_the_order_the_acceptance_and_each_rivals_decline(make_client):
    seller, listing = seller_and_listing(make_client)
    alice, bob, carol = buyer(make_client), buyer(make_client), buyer(make_client)
    accepted = offer(alice, listing, 8_000)
    rivals = [offer(bob, listing, 7_000), offer(carol, listing, 6_500)]
    mark = _mark()
    response = seller.post(f"/api/offers/{accepted['id']}/accept")
    assert response.status_code == 200, response.content
    events = _since(mark)
    by_type: dict[str, set[int]] = {}
    for user, type, _ in events:
        by_type.setdefault(type, set()).add(user)
    assert by_type == {
        "order.status_changed": {alice.user.pk, seller.user.pk},
        "offer.accepted": {alice.user.pk, seller.user.pk},
        "offer.declined": {seller.user.pk, bob.user.pk, carol.user.pk},
    }
    assert len(events) == 2 + 2 + 2 * len(rivals)
    order_no = response.json()["order_no"]
    order_events = [data for _, type, data in events if type == "order.status_changed"]
    assert all(data == alice.get(f"/api/orders/{order_no}").json() for data in order_events)
    accepted_now = _shown(alice, accepted["id"])
    assert all(data == accepted_now for _, type, data in events if type == "offer.accepted")
    for rival, client in zip(rivals, (bob, carol), strict=True):
        declined = [data for user, type, data in events if type == "offer.declined" and data["id"] == rival["id"]]
        assert len(declined) == 2
        assert all(data == _shown(client, rival["id"]) for data in declined)
        assert declined[0]["decline_reason"] == "listing_sold"
