"""Conversations over the socket: message.send and message.read with ack/error frames, the
live message.created / message.read both sides hear (WebsocketCommunicator on the ASGI app)."""

import pytest
from channels.db import database_sync_to_async

from negotiation import conversations
from negotiation.models import Conversation, Message, UserBlock
from tests.negotiation.test_socket import Peer, close, peers

pytestmark = pytest.mark.django_db(transaction=True)


def _open(buyer, listing) -> int:
    return conversations.open_conversation(buyer=buyer, listing_id=listing.pk).pk


async def test_send_and_read_over_the_socket_live_on_both_sides():
    seller, buyer, stranger, listing = await peers()
    cid = await database_sync_to_async(_open)(buyer.user, listing)

    await buyer.send(action="message.send", id="s1", conversation_id=cid, kind="text",
                     text="还在吗?", client_id="c1")
    ack = await buyer.reply("s1")
    assert ack["type"] == "ack", ack
    message = ack["data"]
    assert (message["text"], message["sender_id"], message["kind"]) == ("还在吗?", buyer.user.pk, "text")
    created = await seller.wait_for(lambda f: f.get("type") == "message.created")
    assert created["data"] == message
    await buyer.wait_for(lambda f: f.get("type") == "message.created")

    # A retry on the socket returns the first message.
    await buyer.send(action="message.send", id="s2", conversation_id=cid, kind="text",
                     text="还在吗?", client_id="c1")
    assert (await buyer.reply("s2"))["data"]["id"] == message["id"]

    await seller.send(action="message.read", id="r1", conversation_id=cid, up_to=message["id"])
    read = await seller.reply("r1")
    assert read["type"] == "ack" and read["data"]["unread_count"] == 0, read
    heard = await buyer.wait_for(lambda f: f.get("type") == "message.read")
    assert heard["data"] == {
        "conversation_id": cid, "user_id": seller.user.pk, "up_to": message["id"], "unread_count": 0
    }
    row = await database_sync_to_async(Conversation.objects.get)(pk=cid)
    assert (row.seller_unread, row.seller_read_up_to) == (0, message["id"])
    assert await stranger.communicator.receive_nothing(timeout=0.2)
    await close(seller, buyer, stranger)


async def test_an_outsider_gets_not_found_on_every_socket_action():
    seller, buyer, stranger, listing = await peers()
    cid = await database_sync_to_async(_open)(buyer.user, listing)
    await stranger.send(action="message.send", id=1, conversation_id=cid, kind="text",
                        text="hi", client_id="x")
    error = await stranger.reply(1)
    assert (error["type"], error["data"]["code"]) == ("error", "conversation_not_found"), error
    await stranger.send(action="message.read", id=2, conversation_id=cid, up_to=1)
    error = await stranger.reply(2)
    assert (error["type"], error["data"]["code"]) == ("error", "conversation_not_found"), error
    assert not await database_sync_to_async(Message.objects.exists)()
    await close(seller, buyer, stranger)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"action": "message.send", "kind": "text", "text": "hi", "client_id": "a"}, "validation_error"),
        ({"action": "message.send", "conversation_id": "1", "kind": "text", "text": "hi", "client_id": "a"}, "validation_error"),
        ({"action": "message.send", "conversation_id": 1, "kind": "text", "text": "hi"}, "validation_error"),
        ({"action": "message.read", "conversation_id": 1}, "validation_error"),
        ({"action": "message.read", "conversation_id": 1, "up_to": 0}, "validation_error"),
    ],
)
async def test_bad_message_frames_get_error_frames(frame, code):
    seller, buyer, stranger, listing = await peers()
    await buyer.send(id="bad", **frame)
    error = await buyer.reply("bad")
    assert (error["type"], error["data"]["code"]) == ("error", code), error
    await close(seller, buyer, stranger)


async def test_a_blocked_user_and_a_risky_text_are_refused_on_the_socket():
    seller, buyer, stranger, listing = await peers()
    cid = await database_sync_to_async(_open)(buyer.user, listing)
    await buyer.send(action="message.send", id=1, conversation_id=cid, kind="text",
                     text="出售毒品", client_id="r")
    error = await buyer.reply(1)
    assert error["data"]["code"] == "content_risky", error

    await database_sync_to_async(conversations.block_user)(user=seller.user, blocked_id=buyer.user.pk)
    for peer, ref in ((buyer, 2), (seller, 3)):
        await peer.send(action="message.send", id=ref, conversation_id=cid, kind="text",
                        text="在吗", client_id=f"b{ref}")
        error = await peer.reply(ref)
        assert error["data"]["code"] == "blocked", error
    await buyer.send(action="offer.make", id=4, listing_id=listing.pk, price=7_000)
    assert (await buyer.reply(4))["data"]["code"] == "blocked"
    assert not await database_sync_to_async(Message.objects.exists)()
    assert await database_sync_to_async(UserBlock.objects.count)() == 1
    await close(seller, buyer, stranger)


async def test_an_offer_on_the_socket_appears_in_the_thread_live():
    seller, buyer, stranger, listing = await peers()
    await buyer.send(action="offer.make", id=1, listing_id=listing.pk, price=7_000)
    offer = (await buyer.reply(1))["data"]
    created = await seller.wait_for(lambda f: f.get("type") == "message.created")
    assert created["data"]["kind"] == "offer" and created["data"]["offer"]["id"] == offer["id"]
    assert isinstance(seller, Peer)
    await close(seller, buyer, stranger)
