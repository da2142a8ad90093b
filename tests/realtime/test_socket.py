"""The socket at /ws/: auth and close codes, isolation, ordering, resume, frames, actions."""

import asyncio

import pytest
from django.test import override_settings

from marketplace.errors import Conflict
from realtime import consumers, dispatch, selectors
from realtime.db import database_sync_to_async
from realtime.models import Event
from realtime.push import group_for
from tests.realtime.conftest import (
    aemit,
    connected,
    emit_now,
    receive,
    receive_close,
    send,
    socket,
)

pytestmark = pytest.mark.django_db(transaction=True)


# --- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ws/", "/ws/?token=", "/ws/?token=not-a-token"])
async def test_missing_or_bad_token_closes_4401(member, path):
    communicator = socket(path=path)
    ok, _ = await communicator.connect(timeout=5)
    assert ok  # accepted first, so the client sees the close code
    assert await receive_close(communicator) == 4401


async def test_banned_user_closes_4403(make_member):
    _, token = await make_member(is_banned=True)
    communicator = socket(token)
    await communicator.connect(timeout=5)
    assert await receive_close(communicator) == 4403


async def test_token_in_subprotocol_answered_with_fixed_protocol(member):
    user, token = member
    communicator = socket(subprotocols=["marketplace.v1", f"bearer.{token}"])
    ok, protocol = await communicator.connect(timeout=5)
    assert ok
    assert protocol == "marketplace.v1"  # never the token
    await aemit([user.pk])
    assert (await receive(communicator))["seq"] == 1
    await communicator.disconnect()


async def test_origin_check_allows_mini_programs_and_refuses_foreign_pages(member):
    _, token = member
    for origin in (b"https://servicewechat.com", None):
        headers = [(b"origin", origin)] if origin else []
        communicator = socket(token, headers=headers)
        ok, _ = await communicator.connect(timeout=5)
        assert ok, origin
        await communicator.disconnect()
    communicator = socket(token, headers=[(b"origin", b"https://evil.example")])
    ok, _ = await communicator.connect(timeout=5)
    assert not ok


# --- delivery ----------------------------------------------------------------------------------


async def test_live_frames_in_order_exact_shape_and_isolated(make_member):
    alice, alice_token = await make_member()
    bob, bob_token = await make_member()
    a = await connected(alice_token)
    b = await connected(bob_token)
    await aemit([bob.pk], type="message.created", data={"id": 1})
    for n in range(3):
        await aemit([alice.pk], type="message.read", data={"n": n})
    frames = [await receive(a) for _ in range(3)]
    assert [frame["seq"] for frame in frames] == [1, 2, 3]
    assert [frame["data"] for frame in frames] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert set(frames[0]) == {"seq", "type", "data", "at"}
    assert frames[0]["type"] == "message.read"
    bob_frame = await receive(b)
    assert bob_frame["type"] == "message.created" and bob_frame["seq"] == 1
    assert await a.receive_nothing(timeout=0.2)
    assert await b.receive_nothing(timeout=0.2)
    await a.disconnect()
    await b.disconnect()


async def test_rolled_back_emit_sends_nothing(member):
    user, token = member
    communicator = await connected(token)

    def failing():
        from django.db import transaction

        from realtime.push import emit

        try:
            with transaction.atomic():
                emit(user_ids=[user.pk], type="wallet.credited", data={"amount": 1})
                raise Conflict("the action failed")
        except Conflict:
            pass

    await database_sync_to_async(failing)()
    assert await communicator.receive_nothing(timeout=0.3)
    await aemit([user.pk])
    assert (await receive(communicator))["seq"] == 1
    await communicator.disconnect()


async def test_drop_and_resume_misses_nothing(member):
    user, token = member
    first = await connected(token)
    await aemit([user.pk], data={"n": 1})
    assert (await receive(first))["seq"] == 1
    await first.disconnect()
    for n in range(2, 6):
        await aemit([user.pk], data={"n": n})
    second = await connected(token)
    await send(second, {"action": "resume", "since": 1, "id": "r1"})
    frames = [await receive(second) for _ in range(4)]
    assert [frame["seq"] for frame in frames] == [2, 3, 4, 5]
    assert [frame["data"]["n"] for frame in frames] == [2, 3, 4, 5]
    ack = await receive(second)
    assert ack == {
        "type": "ack",
        "ref": "r1",
        "data": {"action": "resume", "replayed": 4, "seq": 5},
    }
    await aemit([user.pk], data={"n": 6})
    assert (await receive(second))["seq"] == 6
    assert await second.receive_nothing(timeout=0.2)
    await second.disconnect()


async def test_resume_joins_live_stream_without_gap_or_duplicate(member, monkeypatch):
    """Events committed while the replay runs (before, between and after its queries) arrive
    exactly once and in order."""
    user, token = member
    for n in range(1, 8):
        await database_sync_to_async(emit_now)([user.pk], data={"n": n})
    monkeypatch.setattr(consumers, "REPLAY_BATCH", 3)
    original = selectors.frames_after
    calls = {"count": 0}

    def frames_after_while_emitting(user_id, after, limit):
        calls["count"] += 1
        if calls["count"] <= 2:
            emit_now([user.pk], data={"during": calls["count"], "when": "before query"})
        rows = original(user_id, after, limit)
        if calls["count"] <= 2:
            emit_now([user.pk], data={"during": calls["count"], "when": "after query"})
        return rows

    monkeypatch.setattr(selectors, "frames_after", frames_after_while_emitting)
    communicator = await connected(token)
    await send(communicator, {"action": "resume", "since": 2})
    total = 7 + 4
    seen = []
    while (frame := await receive(communicator)).get("type") != "ack":
        seen.append(frame["seq"])
    assert frame["data"]["seq"] == total
    # The four events emitted during the replay also came live: dropped as duplicates.
    assert seen == list(range(3, total + 1))
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_out_of_order_live_frames_are_filled_from_the_store(member, monkeypatch):
    """Two processes may publish out of commit order: the socket still delivers in seq order."""
    from channels.layers import get_channel_layer

    from realtime import push

    user, token = member
    communicator = await connected(token)
    held = []
    monkeypatch.setattr(push, "_send", held.extend)
    for n in range(1, 4):
        await aemit([user.pk], data={"n": n})
    monkeypatch.undo()
    layer = get_channel_layer()
    for _, message in [held[2], held[0], held[1]]:
        await layer.group_send(group_for(user.pk), message)
    frames = [await receive(communicator) for _ in range(3)]
    assert [frame["seq"] for frame in frames] == [1, 2, 3]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_resume_reports_pruned_events(member):
    user, token = member
    for n in range(4):
        await aemit([user.pk], data={"n": n})
    await database_sync_to_async(Event.objects.filter(user=user, seq__lte=2).delete)()
    communicator = await connected(token)
    await send(communicator, {"action": "resume", "since": 0, "id": 9})
    notice = await receive(communicator)
    assert notice["type"] == "error" and notice["data"]["code"] == "events_pruned"
    assert [(await receive(communicator))["seq"] for _ in range(2)] == [3, 4]
    await communicator.disconnect()


# --- frames from the client ------------------------------------------------------------------


async def test_ping_pong(member):
    _, token = member
    communicator = await connected(token)
    await send(communicator, {"action": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", "malformed_json"),
        ("[1, 2]", "bad_frame"),
        ('{"id": "x"}', "bad_frame"),
        ('{"action": "resume", "since": -1, "id": "x"}', "validation_error"),
        ('{"action": "resume", "since": "3", "id": "x"}', "validation_error"),
        ('{"action": "no.such.action", "id": "x"}', "unknown_action"),
        ('{"action": "ping", "pad": "' + "x" * 20000 + '"}', "frame_too_large"),
    ],
)
async def test_bad_frames_get_an_error_frame_and_the_socket_stays_up(member, text, code):
    _, token = member
    communicator = await connected(token)
    await communicator.send_to(text_data=text)
    reply = await receive(communicator)
    assert reply["type"] == "error"
    assert reply["data"]["code"] == code
    assert reply["ref"] == ("x" if '"id": "x"' in text else None)
    await send(communicator, {"action": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


async def test_binary_frames_are_refused(member):
    _, token = member
    communicator = await connected(token)
    await communicator.send_to(bytes_data=b"\x00\x01")
    assert (await receive(communicator))["data"]["code"] == "bad_frame"
    await communicator.disconnect()


@override_settings(REALTIME_RATE_PER_SECOND=1, REALTIME_RATE_BURST=3)
async def test_rate_limit_per_connection(member):
    _, token = member
    communicator = await connected(token)
    for _ in range(5):
        await send(communicator, {"action": "ping"})
    replies = [await receive(communicator) for _ in range(5)]
    assert replies[:3] == [{"type": "pong"}] * 3
    assert {reply["data"]["code"] for reply in replies[3:]} == {"rate_limited"}
    await communicator.disconnect()


@override_settings(REALTIME_IDLE_TIMEOUT_SECONDS=1)
async def test_idle_socket_is_closed(member):
    _, token = member
    communicator = await connected(token)
    message = await communicator.receive_output(timeout=10)
    assert message == {"type": "websocket.close", "code": 4408}


# --- client actions --------------------------------------------------------------------------


@pytest.fixture
def echo_action():
    from pydantic import BaseModel, ConfigDict, Field

    class EchoIn(BaseModel):
        model_config = ConfigDict(extra="ignore")
        price: int = Field(gt=0)

    def handler(*, user, frame):
        body = EchoIn.model_validate(frame)
        if body.price == 13:
            raise Conflict("Unlucky price.", code="offer_conflict")
        return {"user_id": user.pk, "price": body.price}

    dispatch.socket_action("test.echo")(handler)
    yield
    dispatch._registry.pop("test.echo", None)


async def test_socket_action_ack_and_errors(member, echo_action):
    user, token = member
    communicator = await connected(token)
    await send(communicator, {"action": "test.echo", "id": "a1", "price": 5})
    assert await receive(communicator) == {
        "type": "ack",
        "ref": "a1",
        "data": {"user_id": user.pk, "price": 5},
    }
    await send(communicator, {"action": "test.echo", "id": "a2", "price": 13})
    assert await receive(communicator) == {
        "type": "error",
        "ref": "a2",
        "data": {"code": "offer_conflict", "message": "Unlucky price."},
    }
    await send(communicator, {"action": "test.echo", "id": 3, "price": -1})
    reply = await receive(communicator)
    assert reply["ref"] == 3 and reply["data"]["code"] == "validation_error"
    assert "price" in reply["data"]["message"]
    await communicator.disconnect()


async def test_user_banned_while_connected_cannot_act(member, echo_action):
    user, token = member
    communicator = await connected(token)
    user.is_banned = True
    await database_sync_to_async(user.save)()
    await send(communicator, {"action": "test.echo", "id": "a", "price": 5})
    reply = await receive(communicator)
    assert reply["data"]["code"] == "user_banned"
    assert await receive_close(communicator) == 4403


async def test_presence_follows_the_socket(member):
    from realtime import presence

    user, token = member
    assert not presence.is_online(user.pk)
    communicator = await connected(token)
    assert await asyncio.to_thread(presence.is_online, user.pk)
    await communicator.disconnect()
    assert not await asyncio.to_thread(presence.is_online, user.pk)
