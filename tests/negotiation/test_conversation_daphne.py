"""Conversations through real daphne processes on PostgreSQL + Redis: the buyer on one server,
the seller on another, every frame crossing processes through the channel layer."""

import json
import tempfile

import pytest
from channels.db import database_sync_to_async
from websockets.asyncio.client import connect as ws_connect

from marketplace.actions.accounts import issue_token
from negotiation import conversations
from tests.factories import UserFactory
from tests.marketplace.order_helpers import listing_on_sale
from tests.realtime.test_redis import _frame, _free_port, _start_server, _wait_listening

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


def _world():
    seller, buyer, stranger = UserFactory(), UserFactory(), UserFactory()
    listing = listing_on_sale(seller=seller)
    thread = conversations.open_conversation(buyer=buyer, listing_id=listing.pk)
    tokens = {u.pk: issue_token(user=u) for u in (seller, buyer, stranger)}
    return seller, buyer, stranger, thread.pk, tokens


async def _until(websocket, predicate) -> dict:
    while True:
        frame = await _frame(websocket)
        if predicate(frame):
            return frame


async def test_a_message_and_its_read_receipt_cross_two_daphne_processes():
    seller, buyer, stranger, cid, tokens = await database_sync_to_async(_world)()
    ports = [_free_port(), _free_port()]
    logs = [tempfile.TemporaryFile() for _ in ports]  # noqa: SIM115 - closed in finally
    servers = [_start_server(port, log) for port, log in zip(ports, logs, strict=True)]
    try:
        for port, server in zip(ports, servers, strict=True):
            await _wait_listening(port, server)
        a, b = (f"ws://127.0.0.1:{port}/ws/?token=" for port in ports)
        async with (
            ws_connect(a + tokens[buyer.pk]) as buyer_socket,
            ws_connect(b + tokens[seller.pk]) as seller_socket,
            ws_connect(b + tokens[stranger.pk]) as stranger_socket,
        ):
            await buyer_socket.send(json.dumps({
                "action": "message.send", "id": "q", "conversation_id": cid, "kind": "text",
                "text": "还在吗?", "client_id": "d1",
            }))
            ack = await _until(buyer_socket, lambda f: f.get("ref") == "q")
            assert ack["type"] == "ack", ack
            created = await _until(seller_socket, lambda f: f.get("type") == "message.created")
            assert created["data"] == ack["data"]

            await seller_socket.send(json.dumps({
                "action": "message.read", "id": "r", "conversation_id": cid,
                "up_to": ack["data"]["id"],
            }))
            assert (await _until(seller_socket, lambda f: f.get("ref") == "r"))["type"] == "ack"
            read = await _until(buyer_socket, lambda f: f.get("type") == "message.read")
            assert read["data"]["up_to"] == ack["data"]["id"]

            await stranger_socket.send(json.dumps({
                "action": "message.send", "id": "x", "conversation_id": cid, "kind": "text",
                "text": "hi", "client_id": "s1",
            }))
            refused = await _until(stranger_socket, lambda f: f.get("ref") == "x")
            assert refused["data"]["code"] == "conversation_not_found", refused

            await database_sync_to_async(conversations.block_user)(
                user=buyer, blocked_id=seller.pk
            )
            await seller_socket.send(json.dumps({
                "action": "message.send", "id": "bl", "conversation_id": cid, "kind": "text",
                "text": "在的", "client_id": "d2",
            }))
            blocked = await _until(seller_socket, lambda f: f.get("ref") == "bl")
            assert blocked["data"]["code"] == "blocked", blocked
    except BaseException:
        for log in logs:
            log.seek(0)
            print("--- server ---\n" + log.read().decode(errors="replace")[-3000:])
        raise
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
        for log in logs:
            log.close()
