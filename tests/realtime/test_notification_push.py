"""`notification.created`: each new notification-centre entry is pushed live, right after the
event it was made from, rendered in the socket's language; live only (no seq, never replayed)."""

import pytest
from django.db import transaction

from realtime.db import database_sync_to_async
from realtime.models import Event, Notification
from realtime.push import COPY_FROM, batched, emit, emit_many, fan_out
from tests.realtime.conftest import aemit, connected, receive, send

OFFER = {"id": 7, "listing_id": 3, "price": 7_000, "status": "open"}


def _offer_from(buyer_id: int, seller_id: int) -> dict:
    return {**OFFER, "buyer_id": buyer_id, "seller_id": seller_id}


def _note_ids(user_id: int) -> list[int]:
    return list(
        Notification.objects.filter(user_id=user_id).order_by("id").values_list("id", flat=True)
    )


note_ids = database_sync_to_async(_note_ids)


async def test_the_entry_follows_its_event_rendered_in_chinese(make_member):
    buyer, _ = await make_member()
    seller, seller_token = await make_member()
    socket = await connected(seller_token)
    await aemit([buyer.pk, seller.pk], type="offer.created", data=_offer_from(buyer.pk, seller.pk))
    event = await receive(socket)
    assert event["type"] == "offer.created" and event["seq"] == 1
    pushed = await receive(socket)
    assert set(pushed) == {"type", "data", "at"}  # no seq: not part of the resumable stream
    assert pushed["type"] == "notification.created"
    assert pushed["data"]["id"] == (await note_ids(seller.pk))[0]
    assert (pushed["data"]["title"], pushed["data"]["body"]) == ("收到新出价", "买家出价 ¥70.00")
    assert pushed["data"]["target"] == {"type": "offer", "id": 7}
    assert pushed["data"]["read_at"] is None
    assert pushed["at"] == pushed["data"]["created_at"]
    assert await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()


async def test_english_for_a_socket_that_asks_for_it(make_member):
    buyer, _ = await make_member()
    seller, seller_token = await make_member()
    socket = await connected(seller_token, headers=[(b"accept-language", b"en-US,en;q=0.9")])
    await aemit([seller.pk], type="offer.created", data=_offer_from(buyer.pk, seller.pk))
    await receive(socket)
    pushed = await receive(socket)
    assert (pushed["data"]["title"], pushed["data"]["body"]) == ("New offer", "A buyer offered ¥70.00")
    await socket.disconnect()


async def test_no_entry_no_push_for_the_actor_nor_for_chat(make_member):
    buyer, buyer_token = await make_member()
    seller, _ = await make_member()
    socket = await connected(buyer_token)
    # The buyer's own offer is not news for the buyer; a chat message is never an entry.
    await aemit([buyer.pk], type="offer.created", data=_offer_from(buyer.pk, seller.pk))
    await aemit([buyer.pk], type="message.created", data={"id": 1, "text": "hi"})
    assert [(await receive(socket))["type"] for _ in range(2)] == [
        "offer.created",
        "message.created",
    ]
    assert await socket.receive_nothing(timeout=0.3)
    await socket.disconnect()


async def test_resume_and_the_http_log_replay_events_only(make_member, client):
    user, token = await make_member()
    await aemit([user.pk], type="wallet.credited", data={"id": 1, "amount": 500})
    socket = await connected(token)
    await send(socket, {"action": "resume", "since": 0, "id": "resume"})
    replayed = await receive(socket)
    assert replayed["type"] == "wallet.credited" and replayed["seq"] == 1
    assert (await receive(socket))["type"] == "ack"
    assert await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()
    types = await database_sync_to_async(
        lambda: list(Event.objects.filter(user_id=user.pk).values_list("type", flat=True))
    )()
    assert types == ["wallet.credited"]


async def test_two_entries_for_one_user_in_one_batch_carry_their_own_ids(make_member):
    user, token = await make_member()
    socket = await connected(token)

    def two_at_once():
        with transaction.atomic(), batched():
            emit(user_ids=[user.pk], type="wallet.credited", data={"id": 1, "amount": 100})
            emit(user_ids=[user.pk], type="wallet.credited", data={"id": 2, "amount": 200})

    await database_sync_to_async(two_at_once)()
    frames = [await receive(socket) for _ in range(4)]
    # Each entry after its event (the pushes may trail both events: they wait for the loop).
    assert [frame["seq"] for frame in frames if "seq" in frame] == [1, 2]
    assert [frame["type"] for frame in frames].index("notification.created") > 0
    pushed = [frame["data"] for frame in frames if frame["type"] == "notification.created"]
    assert [entry["id"] for entry in pushed] == await note_ids(user.pk)
    assert [entry["params"]["amount"] for entry in pushed] == [100, 200]
    await socket.disconnect()


def _price_drop(listing_id: int) -> dict:
    listing = {"id": listing_id, "title": "旧相机", "price": 8_000, "status": "on_sale"}
    return {"listing": listing, "old_price": 9_000, "new_price": 8_000}


@pytest.mark.parametrize("recipients", [3, COPY_FROM + 5], ids=["few", "copy"])
async def test_a_fan_out_pushes_each_reader_their_own_entry(make_member, recipients):
    listener, token = await make_member()
    others = [(await make_member())[0].pk for _ in range(recipients - 1)]
    socket = await connected(token)

    def drop():
        with transaction.atomic():
            fan_out(user_ids=[listener.pk, *others], type="listing.price_dropped", data=_price_drop(5))

    await database_sync_to_async(drop)()
    assert (await receive(socket))["type"] == "listing.price_dropped"
    pushed = await receive(socket)
    assert pushed["type"] == "notification.created"
    assert [pushed["data"]["id"]] == await note_ids(listener.pk)
    assert pushed["data"]["title"] == "想要的宝贝降价了"
    assert await database_sync_to_async(Notification.objects.count)() == recipients
    await socket.disconnect()


@pytest.mark.postgres  # the COPY path of emit_many
async def test_a_large_emit_many_stores_entries_by_copy_with_the_pushed_ids(make_member):
    listener, token = await make_member()
    others = [(await make_member())[0].pk for _ in range(COPY_FROM)]
    socket = await connected(token)

    def sweep():
        with transaction.atomic():
            emit_many(
                [([user_id], "wallet.credited", {"id": user_id, "amount": 100}) for user_id in others]
                + [([listener.pk], "wallet.credited", {"id": 0, "amount": 300})]
            )

    await database_sync_to_async(sweep)()
    assert (await receive(socket))["type"] == "wallet.credited"
    pushed = await receive(socket)
    assert [pushed["data"]["id"]] == await note_ids(listener.pk)
    assert pushed["data"]["params"]["amount"] == 300
    await socket.disconnect()

