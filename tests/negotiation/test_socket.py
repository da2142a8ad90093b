"""Bargaining over the socket: offer.make/counter/accept/decline/withdraw with ack and error
frames, and the live events both sides see (WebsocketCommunicator on the real ASGI app)."""

import json

import pytest

from marketplace.actions.accounts import issue_token
from marketplace.models.orders import Order
from negotiation.models import Offer
from realtime.db import database_sync_to_async
from tests.factories import AddressFactory, UserFactory
from tests.marketplace.order_helpers import listing_on_sale
from tests.realtime.conftest import connected, send

pytestmark = pytest.mark.django_db(transaction=True)
TIMEOUT = 5


class Peer:
    """One user's socket; frames that are not the one awaited are kept for later."""

    def __init__(self, user, communicator) -> None:
        self.user, self.communicator, self.backlog = user, communicator, []

    async def send(self, **frame) -> None:
        await send(self.communicator, frame)

    async def wait_for(self, predicate) -> dict:
        for index, frame in enumerate(self.backlog):
            if predicate(frame):
                return self.backlog.pop(index)
        while True:
            try:
                text = await self.communicator.receive_from(timeout=TIMEOUT)
            except TimeoutError:
                raise AssertionError(f"no matching frame; got {self.backlog}") from None
            frame = json.loads(text)
            if predicate(frame):
                return frame
            self.backlog.append(frame)

    async def reply(self, ref) -> dict:
        return await self.wait_for(lambda f: f.get("type") in ("ack", "error") and f["ref"] == ref)

    async def event(self, type: str, offer_id: int | None = None) -> dict:
        return await self.wait_for(
            lambda f: f.get("type") == type and (offer_id is None or f["data"]["id"] == offer_id)
        )


def _make_users(price_fen: int):
    seller, buyer, stranger = UserFactory(), UserFactory(), UserFactory()
    AddressFactory(user=buyer, is_default=True)
    listing = listing_on_sale(seller=seller, price_fen=price_fen)
    tokens = {user.pk: issue_token(user=user) for user in (seller, buyer, stranger)}
    return seller, buyer, stranger, listing, tokens


async def peers(price_fen: int = 10_000):
    seller, buyer, stranger, listing, tokens = await database_sync_to_async(_make_users)(price_fen)
    made = []
    for user in (seller, buyer, stranger):
        made.append(Peer(user, await connected(tokens[user.pk])))
    return (*made, listing)


async def close(*all_peers: Peer) -> None:
    for peer in all_peers:
        await peer.communicator.disconnect()


async def test_bargain_to_an_order_over_the_socket():
    seller, buyer, stranger, listing = await peers()

    await buyer.send(action="offer.make", id="m1", listing_id=listing.pk, price=7_000)
    ack = await buyer.reply("m1")
    assert ack["type"] == "ack", ack
    offer = ack["data"]
    assert (offer["status"], offer["price"], offer["listing_id"]) == ("open", 7_000, listing.pk)
    created = await seller.event("offer.created", offer["id"])
    assert created["data"] == offer  # the event carries the offer as the API shows it
    await buyer.event("offer.created", offer["id"])

    await seller.send(action="offer.counter", id=2, offer_id=offer["id"], price=9_000)
    assert (await seller.reply(2))["data"]["status"] == "countered"
    countered = await buyer.event("offer.countered", offer["id"])
    assert countered["data"]["counter_price"] == 9_000

    await buyer.send(action="offer.accept", id=3, offer_id=offer["id"])
    accepted = await buyer.reply(3)
    assert accepted["type"] == "ack", accepted
    order_no = accepted["data"]["order_no"]
    assert order_no and accepted["data"]["status"] == "accepted"
    seen = await seller.event("offer.accepted", offer["id"])
    assert seen["data"]["order_no"] == order_no
    status = await seller.wait_for(lambda f: f.get("type") == "order.status_changed")
    assert status["data"]["order_no"] == order_no

    order = await database_sync_to_async(Order.objects.get)(order_no=order_no)
    assert order.price_fen == 9_000 and order.buyer_id == buyer.user.pk
    # Nobody else hears about it.
    assert await stranger.communicator.receive_nothing(timeout=0.2)
    await close(seller, buyer, stranger)


async def test_decline_and_withdraw_over_the_socket():
    seller, buyer, stranger, listing = await peers()
    await buyer.send(action="offer.make", id=1, listing_id=listing.pk, price=5_000)
    first = (await buyer.reply(1))["data"]
    await seller.send(action="offer.decline", id=2, offer_id=first["id"])
    assert (await seller.reply(2))["data"]["status"] == "declined"
    assert (await buyer.event("offer.declined", first["id"]))["data"]["decline_reason"] == (
        "seller_declined"
    )

    await buyer.send(action="offer.make", id=3, listing_id=listing.pk, price=6_000)
    second = (await buyer.reply(3))["data"]
    await buyer.send(action="offer.withdraw", id=4, offer_id=second["id"])
    assert (await buyer.reply(4))["data"]["status"] == "withdrawn"
    await seller.event("offer.withdrawn", second["id"])
    await close(seller, buyer, stranger)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"action": "offer.make", "price": 100}, "validation_error"),
        ({"action": "offer.make", "listing_id": "1", "price": 100}, "validation_error"),
        ({"action": "offer.make", "listing_id": 1, "price": 1.5}, "validation_error"),
        ({"action": "offer.make", "listing_id": 1, "price": "100"}, "validation_error"),
        ({"action": "offer.make", "listing_id": 1, "price": 0}, "validation_error"),
        ({"action": "offer.make", "listing_id": 999999, "price": 100}, "listing_not_found"),
        ({"action": "offer.accept"}, "validation_error"),
        ({"action": "offer.accept", "offer_id": True}, "validation_error"),
        ({"action": "offer.counter", "offer_id": 999999, "price": 100}, "offer_not_found"),
        ({"action": "offer.withdraw", "offer_id": 999999}, "offer_not_found"),
        ({"action": "offer.decline", "offer_id": -1}, "validation_error"),
    ],
)
async def test_bad_frames_get_error_frames(frame, code):
    seller, buyer, stranger, listing = await peers()
    await buyer.send(**frame, id="x")
    reply = await buyer.reply("x")
    assert reply["type"] == "error" and reply["data"]["code"] == code, reply
    assert await database_sync_to_async(Offer.objects.count)() == 0
    await close(seller, buyer, stranger)


async def test_state_errors_over_the_socket_and_another_users_offer_is_not_found():
    seller, buyer, stranger, listing = await peers(price_fen=10_000)
    await buyer.send(action="offer.make", id=1, listing_id=listing.pk, price=10_000)
    assert (await buyer.reply(1))["data"]["code"] == "price_not_below_listing"
    await seller.send(action="offer.make", id=2, listing_id=listing.pk, price=100)
    assert (await seller.reply(2))["data"]["code"] in ("own_listing", "address_required")
    await buyer.send(action="offer.make", id=3, listing_id=listing.pk, price=5_000)
    offer = (await buyer.reply(3))["data"]
    for n, action in enumerate(("offer.accept", "offer.decline", "offer.withdraw"), start=10):
        await stranger.send(action=action, id=n, offer_id=offer["id"])
        reply = await stranger.reply(n)
        assert (reply["type"], reply["data"]["code"]) == ("error", "offer_not_found")
    await buyer.send(action="offer.accept", id=20, offer_id=offer["id"])
    assert (await buyer.reply(20))["data"]["code"] == "not_your_turn"
    await buyer.send(action="offer.make", id=21, listing_id=listing.pk, price=5_500)
    assert (await buyer.reply(21))["data"]["code"] == "offer_already_open"
    assert stranger.backlog == []
    await close(seller, buyer, stranger)
