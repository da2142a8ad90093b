"""The one way events leave the server: `emit()` stores them and sends them after commit.

Every action that notifies someone calls `emit()` inside its transaction. Each recipient gets
one durable `Event` with their next sequence number; the frames go over the channel layer only
once the transaction commits, so a rollback stores nothing and sends nothing. Nothing else in
the codebase touches the channel layer.
"""

import asyncio
import json
import logging
from collections.abc import Iterable
from datetime import datetime

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from realtime.models import Event

logger = logging.getLogger("realtime.push")

EVENT_TYPES = frozenset(
    {
        "offer.created",
        "offer.countered",
        "offer.accepted",
        "offer.declined",
        "offer.withdrawn",
        "offer.expired",
        "order.status_changed",
        "order.video_ready",
        "order.shipping_update",
        "listing.reviewed",
        "wallet.credited",
        "withdrawal.updated",
    }
)
# A user with no open socket gets these as a WeChat subscribe message (when granted).
IMPORTANT_TYPES = frozenset(
    {
        "order.video_ready",
        "order.shipping_update",
        "offer.accepted",
        "offer.declined",
        "offer.countered",
    }
)
# The consumer handler the frames are addressed to (channels maps "." to "_").
MESSAGE_TYPE = "realtime.event"

_server_loop: asyncio.AbstractEventLoop | None = None


def bind_server_loop() -> None:
    """Called by `manage.py serve` once daphne listens: remembers the server's event loop so
    sends from worker threads of the same process reach the in-memory channel layer."""
    global _server_loop
    _server_loop = asyncio.get_event_loop()


def group_for(user_id: int) -> str:
    return f"user.{user_id}"


def encode(value) -> str:
    # Compact and UTF-8 (Chinese titles stay one character, not six): frames are small.
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":"))


def format_at(moment: datetime) -> str:
    return json.loads(encode(moment))


def frame_text(*, seq: int, type: str, data: dict, at: datetime) -> str:
    """The exact server frame, the same live and on replay."""
    return encode({"seq": seq, "type": type, "data": data, "at": at})


def event_frame_text(event: Event) -> str:
    return frame_text(seq=event.seq, type=event.type, data=event.data, at=event.created_at)


def event_frame(event: Event) -> dict:
    return {
        "seq": event.seq,
        "type": event.type,
        "data": event.data,
        "at": format_at(event.created_at),
    }


_NEXT_SEQ_SQL = (
    "INSERT INTO realtime_event_counter (user_id, last_seq) VALUES (%s, 1) "
    "ON CONFLICT (user_id) DO UPDATE SET last_seq = realtime_event_counter.last_seq + 1 "
    "RETURNING last_seq"
)


def _next_seq(user_id: int) -> int:
    # One statement that creates or increments the counter row and keeps it locked until the
    # caller's transaction ends: a concurrent emitter to the same user waits here, then numbers
    # after us. Works on PostgreSQL and SQLite (>= 3.35), where the whole database is locked.
    with connection.cursor() as cursor:
        cursor.execute(_NEXT_SEQ_SQL, [user_id])
        return int(cursor.fetchone()[0])


def emit(
    *,
    user_ids: Iterable[int],
    type: str,
    data: dict,
    notify: bool = True,
) -> list[Event]:
    """Store one event per distinct user in the caller's transaction; send after commit.

    `data` is the object as the REST API shows it (JSON-serialisable; datetimes are fine).
    `notify=False` opts this event out of the offline subscribe-message fallback.
    Emit after taking the action's own locks: counters are locked in user-id order, but two
    transactions that emit to the same two users in separate calls in opposite orders would
    deadlock (PostgreSQL then aborts one).
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    if not isinstance(data, dict):
        raise TypeError("event data must be a dict")
    if not connection.in_atomic_block:
        raise RuntimeError("emit() must run inside the caller's transaction.atomic block")
    # Normalise once (datetimes and decimals become strings): the live frame and every replay
    # then carry byte-identical data, and a non-serialisable payload fails inside the caller's
    # transaction instead of after commit.
    payload = json.loads(encode(data))
    now = timezone.now()
    events = [
        Event(user_id=user_id, seq=_next_seq(user_id), type=type, data=payload, created_at=now)
        for user_id in sorted({int(user_id) for user_id in user_ids})
    ]
    if not events:
        return []
    Event.objects.bulk_create(events)
    messages = [
        (event.user_id, {"type": MESSAGE_TYPE, "seq": event.seq, "text": event_frame_text(event)})
        for event in events
    ]
    transaction.on_commit(lambda: _send(messages))
    if notify and type in IMPORTANT_TYPES:
        transaction.on_commit(lambda: _enqueue_offline_notices(events))
    return events


def _send(messages: list[tuple[int, dict]]) -> None:
    # Runs after commit, in whatever thread committed. A failed send loses only the live copy:
    # the event is stored and the client gets it on resume, so never fail the caller here.
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        loop = _server_loop
        if loop is not None and loop.is_running() and not _on_loop(loop):
            # A Huey thread inside `manage.py serve`: the in-memory layer lives on the server's
            # loop, so the send must run there.
            future = asyncio.run_coroutine_threadsafe(_group_send_all(layer, messages), loop)
            future.add_done_callback(_log_failure)
        elif loop is not None and _on_loop(loop):
            loop.create_task(_group_send_all(layer, messages)).add_done_callback(_log_failure)
        else:
            async_to_sync(_group_send_all)(layer, messages)
    except Exception:
        logger.exception("live send of %d event(s) failed; clients will resume", len(messages))


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def _group_send_all(layer, messages: list[tuple[int, dict]]) -> None:
    for user_id, message in messages:
        await layer.group_send(group_for(user_id), message)


def _log_failure(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("live send failed; clients will resume", exc_info=future.exception())


def _enqueue_offline_notices(events: list[Event]) -> None:
    from realtime import tasks

    for event in events:
        try:
            tasks.send_offline_notice(event.pk)
        except Exception:
            logger.exception("could not enqueue the offline notice for event %s", event.pk)
