"""The one way events leave the server: `emit()` stores them and sends them after commit.

Every action that notifies someone calls `emit()` inside its transaction. Each recipient gets
one durable `Event` with their next sequence number; the frames go over the channel layer only
once the transaction commits, so a rollback stores nothing and sends nothing. Nothing else in
the codebase touches the channel layer.
"""

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from project import metrics
from project.tasking import enqueue_on_commit
from project.wire import WireJSONEncoder, wire_time
from realtime.models import Event, Notification
from realtime.notifications import NOTIFIED_TYPES, is_news_for, params_for

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
        "message.created",
        "message.read",
        "listing.price_dropped",
        "listing.unavailable",
        "listing.new_from_followed",
        "notification.created",
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
    # Compact and UTF-8 (Chinese titles stay one character, not six): frames are small. Times
    # as the REST API writes them (project/wire.py).
    return json.dumps(value, cls=WireJSONEncoder, ensure_ascii=False, separators=(",", ":"))


def format_at(moment: datetime) -> str:
    return wire_time(moment)


def frame_text(*, seq: int, type: str, data: dict, at: datetime) -> str:
    """The exact server frame, the same live and on replay."""
    return encode({"seq": seq, "type": type, "data": data, "at": at})


def event_frame_text(event: Event) -> str:
    return frame_text(seq=event.seq, type=event.type, data=event.data, at=event.created_at)


class _Normalised(dict):
    """An event payload as its JSON text reads back, with that text: the rows and the frames
    use the text instead of encoding the payload again."""

    __slots__ = ("text",)

    def __init__(self, value: dict, text: str) -> None:
        super().__init__(value)
        self.text = text


def _frame_from_text(*, seq: int, type: str, data_text: str, at_text: str) -> str:
    """`frame_text(...)` byte for byte, from the payload's and the time's JSON texts."""
    return f'{{"seq":{seq},"type":{encode(type)},"data":{data_text},"at":{at_text}}}'


def event_frame(event: Event) -> dict:
    return {
        "seq": event.seq,
        "type": event.type,
        "data": event.data,
        "at": format_at(event.created_at),
    }


_RESERVE_SEQS_SQL = (
    "INSERT INTO realtime_event_counter (user_id, last_seq) VALUES {values} "
    "ON CONFLICT (user_id) DO UPDATE "
    "SET last_seq = realtime_event_counter.last_seq + excluded.last_seq "
    "RETURNING user_id, last_seq"
)


class CounterLockOrderError(RuntimeError):
    """A transaction locked someone's event counter after it already held others' (see
    `batched`). Raised where settings.REALTIME_STRICT_LOCK_ORDER is on (the tests)."""


_HELD_ATTRIBUTE = "_realtime_held_counters"


def _held_counters() -> set[int]:
    """The counters this transaction holds, remembered on the connection with the savepoints
    open when they were taken and a marker among its commit hooks: a commit or a rollback drops
    the hooks, and inside a test's wrapping transaction (whose hooks pile up) each action's own
    block opens a savepoint of its own, so the memory never outlives the transaction."""
    savepoints = tuple(connection.savepoint_ids)
    state = getattr(connection, _HELD_ATTRIBUTE, None)
    if state is not None:
        held, marker, taken_under = state
        if savepoints[: len(taken_under)] == taken_under and any(
            hook[1] is marker for hook in connection.run_on_commit
        ):
            return held
    held = set()

    def forget() -> None:
        return None

    transaction.on_commit(forget)
    setattr(connection, _HELD_ATTRIBUTE, (held, forget, savepoints))
    return held


def _note_locked(user_ids: Iterable[int]) -> None:
    if not getattr(settings, "REALTIME_STRICT_LOCK_ORDER", False):
        return  # a check for the test suite: it costs production nothing
    held = _held_counters()
    new = set(user_ids) - held
    if held and new:
        raise CounterLockOrderError(
            f"event counters {sorted(new)} locked after {sorted(held)}: a transaction that tells "
            "several people must store their events together (realtime.push.batched)"
        )
    held |= new


def _reserve_seqs(counts: dict[int, int]) -> dict[int, int]:
    """Reserves `counts[user]` numbers for each user; returns each user's last number.

    One statement creates or bumps the users' counter rows (in user-id order, one lock order
    for every emitter) and keeps them locked until the caller's transaction ends: a concurrent
    emitter to the same user waits, then numbers after us. Works on PostgreSQL and SQLite
    (>= 3.35), where the whole database is locked."""
    users = sorted(counts)
    _note_locked(users)
    last: dict[int, int] = {}
    with connection.cursor() as cursor:
        for start in range(0, len(users), 500):
            chunk = users[start : start + 500]
            values = ", ".join(["(%s, %s)"] * len(chunk))
            params = [value for user_id in chunk for value in (user_id, counts[user_id])]
            cursor.execute(_RESERVE_SEQS_SQL.format(values=values), params)
            last.update((int(user_id), int(seq)) for user_id, seq in cursor.fetchall())
    return last


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
    return emit_many([(user_ids, type, data)], notify=notify)


def emit_many(
    items: Iterable[tuple[Iterable[int], str, dict]], *, notify: bool = True
) -> list[Event]:
    """`emit` for many events at once (a sweeper cancelling thousands of orders): one counter
    statement per distinct user and one bulk insert, in the same order-preserving numbering.
    Inside `batched()` the events join the block's batch (and nothing is returned yet)."""
    if not connection.in_atomic_block:
        raise RuntimeError("emit() must run inside the caller's transaction.atomic block")
    checked = [(user_ids, type, _normalised(type, data), notify) for user_ids, type, data in items]
    batch = getattr(connection, _BATCH_ATTRIBUTE, None)
    if batch is not None:
        batch.extend(checked)
        return []
    return _emit(checked)


_FAN_OUT_SEQS_SQL = (
    "INSERT INTO realtime_event_counter (user_id, last_seq)"
    " SELECT u, 1 FROM unnest(%s::bigint[]) WITH ORDINALITY AS t(u, n) ORDER BY n"
    " ON CONFLICT (user_id) DO UPDATE SET last_seq = realtime_event_counter.last_seq + 1"
    " RETURNING user_id, last_seq"
)


def fan_out(*, user_ids: Iterable[int], type: str, data: dict) -> int:
    """One event (and its notification-centre entry) to each of many users: the fan-out of one
    piece of news to thousands (docs/social.md). In the caller's transaction, sent after commit,
    never to the offline fallback. Returns how many were told.

    On PostgreSQL from COPY_FROM recipients on, it is `emit_many`'s COPY path without its
    per-event objects: one counter statement per 500 users, the payload encoded once, the rows
    streamed by COPY, each frame assembled from the encoded parts (byte-identical to
    `frame_text`); measured, the objects and per-row encoding were most of a 1,000-user batch.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("fan_out() must run inside the caller's transaction.atomic block")
    payload = _normalised(type, data)
    users = sorted({int(user_id) for user_id in user_ids})
    if connection.vendor != "postgresql" or len(users) < COPY_FROM:
        return len(emit_many([(users, type, payload)], notify=False))
    now = timezone.now()
    _note_locked(users)
    with connection.cursor() as cursor:
        # One array parameter, not one per user: psycopg converting thousands of parameters
        # was a third of the statement. Sorted, so the counters lock in user-id order.
        cursor.execute(_FAN_OUT_SEQS_SQL, [users])
        last = {int(user_id): int(seq) for user_id, seq in cursor.fetchall()}
    payload_text = payload.text  # as normalised
    noted = type in NOTIFIED_TYPES and is_news_for(0, type, payload)
    note_of: dict[int, dict] = {}
    with connection.cursor() as cursor:
        with cursor.cursor.copy(_COPY_EVENTS_SQL) as copy:
            for user_id in users:
                copy.write_row((user_id, last[user_id], type, payload_text, now))
        if noted:
            params, target_type, target_id = params_for(type, payload)
            params_text = encode(params)
            ids = _allocate_notification_ids(cursor, len(users))
            with cursor.cursor.copy(_COPY_NOTIFICATIONS_WITH_IDS_SQL) as copy:
                for note_id, user_id in zip(ids, users, strict=True):
                    copy.write_row(
                        (note_id, user_id, type, params_text, target_type, target_id[:40], now)
                    )
            template = _Entry(
                user_id=0, type=type, params=params, params_text=params_text,
                target_type=target_type, target_id=target_id[:40], created_at=now,
            )
            for note_id, user_id in zip(ids, users, strict=True):
                template.pk = note_id
                note_of[user_id] = live_notification(template)
    head = '{"seq":'
    tail = f',"type":{encode(type)},"data":{payload_text},"at":{encode(now)}}}'
    messages = []
    for user_id in users:
        message = {"type": MESSAGE_TYPE, "seq": last[user_id], "text": f"{head}{last[user_id]}{tail}"}
        if user_id in note_of:
            message["notification"] = note_of[user_id]
        messages.append((user_id, message))
    transaction.on_commit(lambda: _send(messages))
    return len(users)


_BATCH_ATTRIBUTE = "_realtime_event_batch"


@contextlib.contextmanager
def batched() -> Iterator[None]:
    """Every event the block emits is stored when it ends, all in one round trip (one counter
    statement for everyone, so no lock order between them either), in the order emitted. Use it
    inside the action's transaction around a live action that tells several people; nothing is
    stored if the block raises. A nested block joins the outer one."""
    if getattr(connection, _BATCH_ATTRIBUTE, None) is not None:
        yield
        return
    batch: list[tuple[Iterable[int], str, _Normalised, bool]] = []
    setattr(connection, _BATCH_ATTRIBUTE, batch)
    try:
        yield
    finally:
        setattr(connection, _BATCH_ATTRIBUTE, None)
    if batch:
        _emit(batch)


def _normalised(type: str, data: dict) -> _Normalised:
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    if not isinstance(data, dict):
        raise TypeError("event data must be a dict")
    # Normalise once (datetimes and decimals become strings): the live frame and every replay
    # then carry byte-identical data, and a non-serialisable payload fails inside the caller's
    # transaction instead of after commit. The text is kept for the rows and frames.
    text = encode(data)
    return _Normalised(json.loads(text), text)


def _emit(items: list[tuple[Iterable[int], str, _Normalised, bool]]) -> list[Event]:
    now = timezone.now()
    pending: list[tuple[int, str, _Normalised]] = []
    quiet: set[int] = set()  # places in `pending` opted out of the offline fallback
    for user_ids, type, payload, notify in items:
        for user_id in sorted({int(u) for u in user_ids}):
            if not notify:
                quiet.add(len(pending))
            pending.append((user_id, type, payload))
    if not pending:
        return []
    counts: dict[int, int] = {}
    for user_id, _, _ in pending:
        counts[user_id] = counts.get(user_id, 0) + 1
    # The notification centre's entries, stored with the events (realtime/notifications.py);
    # `noted_at[i]` is the place in `pending` of the event `notes[i]` was made from.
    notes, noted_at = _notifications_for(pending, now)
    if connection.vendor == "postgresql" and len(pending) < COPY_FROM:
        events = _reserve_and_store(pending, counts, now, notes)
    else:
        _store_notifications(notes)
        last = _reserve_seqs(counts)
        next_seq = {user_id: last[user_id] - counts[user_id] + 1 for user_id in counts}
        events = []
        for user_id, type, payload in pending:
            events.append(
                Event(
                    user_id=user_id, seq=next_seq[user_id], type=type, data=payload, created_at=now
                )
            )
            next_seq[user_id] += 1
        _store(events)
    # The payloads' texts as normalised (one payload told to buyer and seller is encoded once).
    at_text = encode(now)
    messages = [
        (
            event.user_id,
            {
                "type": MESSAGE_TYPE,
                "seq": event.seq,
                "text": _frame_from_text(
                    seq=event.seq, type=event.type, data_text=event.data.text, at_text=at_text
                ),
            },
        )
        for event in events
    ]
    # The entry rides on its event's layer message: the socket sends `notification.created`
    # right after the event, rendered in the socket's language (realtime/consumers.py), with
    # no second channel-layer message and no second stored event.
    for note, place in zip(notes, noted_at, strict=True):
        messages[place][1]["notification"] = live_notification(note)
    transaction.on_commit(lambda: _send(messages))
    important = [
        event
        for place, event in enumerate(events)
        if event.type in IMPORTANT_TYPES and place not in quiet
    ]
    if important:
        # One task for the transaction's important events (an acceptance tells buyer, seller
        # and every rival), queued with the transaction's other tasks (project.tasking).
        enqueue_on_commit("realtime.tasks.send_offline_notices", [event.pk for event in important])
    return events


@dataclass(slots=True)
class _Entry:
    """A notification-centre entry on its way to its row (a model instance cost ten times more
    to build, and a sweep builds 20,000); `pk` is set once stored."""

    user_id: int
    type: str
    params: dict
    params_text: str  # its JSON, encoded once for everyone told the same news
    target_type: str
    target_id: str
    created_at: datetime
    pk: int | None = None


def _notifications_for(
    pending: list[tuple[int, str, _Normalised]], now: datetime
) -> tuple[list[_Entry], list[int]]:
    notes = []
    places = []
    params_of: dict[tuple[str, int], tuple[dict, str, str, str]] = {}
    for place, (user_id, type, payload) in enumerate(pending):
        if type not in NOTIFIED_TYPES or not is_news_for(user_id, type, payload):
            continue
        # One payload told to many (a fan-out) is read once.
        key = (type, id(payload))
        if key not in params_of:
            params, target_type, target_id = params_for(type, payload)
            params_of[key] = (params, encode(params), target_type, target_id)
        params, params_text, target_type, target_id = params_of[key]
        notes.append(
            _Entry(
                user_id=user_id,
                type=type,
                params=params,
                params_text=params_text,
                target_type=target_type,
                target_id=target_id[:40],
                created_at=now,
            )
        )
        places.append(place)
    return notes, places


def live_notification(note: Notification | _Entry) -> dict[str, Any]:
    """A stored entry as its event's layer message carries it to the socket, which renders the
    `notification.created` frame in its own language (`realtime.notifications.live_frame_text`).
    Plain JSON values: the channel layer serialises it."""
    return {
        "id": note.pk,
        "type": note.type,
        "params": note.params,
        "target_type": note.target_type,
        "target_id": note.target_id,
        "created_at": wire_time(note.created_at),
    }


_COPY_NOTIFICATIONS_WITH_IDS_SQL = (
    "COPY realtime_notification (id, user_id, type, params, target_type, target_id, created_at)"
    " FROM STDIN"
)
_ALLOCATE_NOTIFICATION_IDS_SQL = (
    "SELECT nextval(pg_get_serial_sequence('realtime_notification', 'id'))"
    " FROM generate_series(1, %s)"
)


def _allocate_notification_ids(cursor, count: int) -> list[int]:
    """Ids for rows COPY is about to store (COPY returns none, and the live push names each
    entry by its id): one statement for a whole batch."""
    cursor.execute(_ALLOCATE_NOTIFICATION_IDS_SQL, [count])
    return [int(row[0]) for row in cursor.fetchall()]


def _store_notifications(notes: list[_Entry]) -> None:
    """Stores the entries and sets their ids."""
    if not notes:
        return
    if connection.vendor != "postgresql" or len(notes) < COPY_FROM:
        rows = [
            Notification(
                user_id=note.user_id,
                type=note.type,
                params=note.params,
                target_type=note.target_type,
                target_id=note.target_id,
                created_at=note.created_at,
            )
            for note in notes
        ]
        Notification.objects.bulk_create(rows)  # sets the ids on PostgreSQL and SQLite
        for note, row in zip(notes, rows, strict=True):
            note.pk = row.pk
        return
    with connection.cursor() as cursor:
        for note, note_id in zip(notes, _allocate_notification_ids(cursor, len(notes)), strict=True):
            note.pk = note_id
        with cursor.cursor.copy(_COPY_NOTIFICATIONS_WITH_IDS_SQL) as copy:
            for note in notes:
                copy.write_row(
                    (
                        note.pk,
                        note.user_id,
                        note.type,
                        note.params_text,  # COPY's text form of jsonb is the JSON text
                        note.target_type,
                        note.target_id,
                        note.created_at,
                    )
                )


# One round trip for a live action's events on PostgreSQL: the counters are bumped (locked in
# user-id order, as `_reserve_seqs` does) and the events numbered from them and stored by the
# same statement, and the notification centre's entries with them (a CTE of their own).
# `n` is an event's place among its user's events here, `total` their number.
_EMIT_SQL = (
    "WITH c AS ("
    " INSERT INTO realtime_event_counter (user_id, last_seq)"
    " SELECT * FROM unnest(%(users)s::bigint[], %(counts)s::bigint[])"
    " ON CONFLICT (user_id) DO UPDATE"
    " SET last_seq = realtime_event_counter.last_seq + excluded.last_seq"
    " RETURNING user_id, last_seq),"
    " stored AS ("
    " INSERT INTO realtime_event (user_id, seq, type, data, created_at)"
    " SELECT e.user_id, c.last_seq - e.total + e.n, e.type, e.data::jsonb, %(now)s"
    " FROM unnest(%(event_users)s::bigint[], %(places)s::int[], %(totals)s::int[],"
    " %(types)s::text[], %(payloads)s::text[]) AS e (user_id, n, total, type, data)"
    " JOIN c ON c.user_id = e.user_id"
    " RETURNING id, user_id, seq){notifications}"
    " SELECT id, user_id, seq FROM stored{noted_ids}"
)
_EMIT_NOTIFICATIONS_SQL = (
    ", noted AS ("
    " INSERT INTO realtime_notification"
    " (user_id, type, params, target_type, target_id, created_at)"
    " SELECT v.user_id, v.type, v.params::jsonb, v.target_type, v.target_id, %(now)s"
    " FROM unnest(%(note_users)s::bigint[], %(note_types)s::text[], %(note_params)s::text[],"
    " %(target_types)s::text[], %(target_ids)s::text[])"
    " AS v (user_id, type, params, target_type, target_id)"
    " RETURNING id, user_id)"
)
# The entries' ids come back beside the events' with seq 0 (an event's seq is at least 1).
_EMIT_NOTIFICATION_IDS_SQL = " UNION ALL SELECT id, user_id, 0 FROM noted"
# One text per shape, whatever the number of rows: the rows travel as one array per column,
# so psycopg converts the statement once and caches it (a statement of more than 50
# parameters is re-parsed in Python on every call: measured ~1 ms a call).
_EMIT_STATEMENTS = {
    False: _EMIT_SQL.format(notifications="", noted_ids=""),
    True: _EMIT_SQL.format(
        notifications=_EMIT_NOTIFICATIONS_SQL, noted_ids=_EMIT_NOTIFICATION_IDS_SQL
    ),
}


def _reserve_and_store(
    pending: list[tuple[int, str, _Normalised]],
    counts: dict[int, int],
    now: datetime,
    notes: list[_Entry],
) -> list[Event]:
    users = sorted(counts)
    _note_locked(users)
    place: dict[int, int] = {}
    params: dict[str, Any] = {
        "users": users,
        "counts": [counts[user_id] for user_id in users],
        "now": now,
        "event_users": [],
        "places": [],
        "totals": [],
        "types": [],
        "payloads": [],
    }
    events = []
    for user_id, type, payload in pending:
        place[user_id] = place.get(user_id, 0) + 1
        params["event_users"].append(user_id)
        params["places"].append(place[user_id])
        params["totals"].append(counts[user_id])
        params["types"].append(type)
        params["payloads"].append(payload.text)
        events.append(Event(user_id=user_id, type=type, data=payload, created_at=now))
    if notes:
        params["note_users"] = [note.user_id for note in notes]
        params["note_types"] = [note.type for note in notes]
        params["note_params"] = [note.params_text for note in notes]
        params["target_types"] = [note.target_type for note in notes]
        params["target_ids"] = [note.target_id for note in notes]
    with connection.cursor() as cursor:
        cursor.execute(_EMIT_STATEMENTS[bool(notes)], params)
        returned = cursor.fetchall()
    stored = [row for row in returned if row[2] > 0]
    _set_note_ids(notes, [(pk, user_id) for pk, user_id, seq in returned if seq == 0])
    by_place = {}
    seen: dict[int, int] = {}
    for pk, user_id, seq in sorted(stored, key=lambda row: (row[1], row[2])):
        seen[user_id] = seen.get(user_id, 0) + 1
        by_place[(user_id, seen[user_id])] = (pk, seq)
    seen.clear()
    for event in events:
        seen[event.user_id] = seen.get(event.user_id, 0) + 1
        event.pk, event.seq = by_place[(event.user_id, seen[event.user_id])]
    return events


def _set_note_ids(notes: list[_Entry], returned: list[tuple[int, int]]) -> None:
    """Gives each entry its id from the insert's RETURNING rows. The rows are inserted in the
    order of the VALUES list, each taking the next identity value, so a user's ids in
    ascending order belong to that user's entries in the order they were listed."""
    ids_of: dict[int, list[int]] = {}
    for pk, user_id in sorted(returned):
        ids_of.setdefault(int(user_id), []).append(int(pk))
    taken: dict[int, int] = {}
    for note in notes:
        place = taken.get(note.user_id, 0)
        note.pk = ids_of[note.user_id][place]
        taken[note.user_id] = place + 1


# From this many events on (a sweep cancelling hundreds of orders), PostgreSQL gets them by COPY.
COPY_FROM = 200
_COPY_EVENTS_SQL = "COPY realtime_event (user_id, seq, type, data, created_at) FROM STDIN"
_EVENT_IDS_SQL = (
    "SELECT e.id, e.user_id, e.seq FROM realtime_event e"
    " JOIN unnest(%s::bigint[], %s::bigint[]) AS k(user_id, seq)"
    " ON e.user_id = k.user_id AND e.seq = k.seq"
)


def _store(events: list[Event]) -> None:
    if connection.vendor != "postgresql" or len(events) < COPY_FROM:
        Event.objects.bulk_create(events)
        return
    # bulk_create sends one UNNEST array per column, and psycopg quotes every JSON document
    # into the jsonb[] literal in Python, character by character: measured, that quoting was
    # a quarter of a 10,000-order deadline sweep. COPY streams the rows as they are.
    with connection.cursor() as cursor:
        with cursor.cursor.copy(_COPY_EVENTS_SQL) as copy:
            for event in events:
                copy.write_row(
                    (event.user_id, event.seq, event.type, event.data.text, event.created_at)
                )
        # Callers get the events with their ids, as bulk_create gives them.
        cursor.execute(
            _EVENT_IDS_SQL, [[event.user_id for event in events], [event.seq for event in events]]
        )
        ids = {(user_id, seq): pk for pk, user_id, seq in cursor.fetchall()}
    for event in events:
        event.pk = ids[(event.user_id, event.seq)]


def _send(messages: list[tuple[int, dict]]) -> None:
    # Runs after commit, in whatever thread committed. A failed send loses only the live copy:
    # the event is stored and the client gets it on resume, so never fail the caller here.
    committed_at = time.time()
    for _, message in messages:
        # For the emit→send lag on /metrics: the consumer measures it when the frame leaves.
        message["emitted_at"] = committed_at
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
        elif not isinstance(layer, InMemoryChannelLayer) and not _has_running_loop():
            # A worker or WSGI thread on Redis: hand the send to this process's sender loop.
            # async_to_sync would build a new event loop (and new Redis connections) per call,
            # and would make the committing thread wait for Redis.
            future = asyncio.run_coroutine_threadsafe(
                _group_send_all(layer, messages), _sender_loop()
            )
            future.add_done_callback(_log_failure)
        else:
            async_to_sync(_group_send_all)(layer, messages)
    except Exception:
        metrics.LAYER_SEND_FAILURES.inc()
        logger.exception("live send of %d event(s) failed; clients will resume", len(messages))


SEND_CONCURRENCY = 32
_sender: asyncio.AbstractEventLoop | None = None
_sender_lock = threading.Lock()


def _sender_loop() -> asyncio.AbstractEventLoop:
    """One long-lived event loop per process for live sends from threads that have none."""
    global _sender
    with _sender_lock:
        if _sender is None or _sender.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="realtime-sender", daemon=True).start()
            _sender = loop
        return _sender


def drain_sends(timeout: float = 30) -> bool:
    """Waits until the sender loop has sent everything queued so far (benchmarks, shutdown)."""
    if _sender is None or _sender.is_closed():
        return True

    async def pending() -> int:
        current = asyncio.current_task()
        return len([task for task in asyncio.all_tasks() if task is not current])

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if asyncio.run_coroutine_threadsafe(pending(), _sender).result(timeout) == 0:
            return True
        time.sleep(0.05)
    return False


def _has_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def _group_send_all(layer, messages: list[tuple[int, dict]]) -> None:
    if len(messages) <= 2:
        for user_id, message in messages:
            await layer.group_send(group_for(user_id), message)
        return
    # Many at once (a sweep): send concurrently, per user in order, so Redis round trips
    # overlap instead of adding up; and only to users with a socket listening.
    by_user: dict[int, list[dict]] = {}
    for user_id, message in messages:
        by_user.setdefault(user_id, []).append(message)
    if isinstance(layer, RedisChannelLayer) and len(by_user) == len(messages):
        # One frame per user (a fan-out): every group in a few script calls.
        await _bulk_group_send(layer, {user_id: queue[0] for user_id, queue in by_user.items()})
        return
    listening = await _listening(layer, list(by_user))
    by_user = {user_id: queue for user_id, queue in by_user.items() if user_id in listening}

    # Bounded, so a sweep of thousands never opens thousands of Redis connections.
    limit = asyncio.Semaphore(SEND_CONCURRENCY)

    async def send_in_order(user_id: int, queue: list[dict]) -> None:
        async with limit:
            for message in queue:
                await layer.group_send(group_for(user_id), message)

    await asyncio.gather(*(send_in_order(u, q) for u, q in by_user.items()))


# channels_redis's group_send is four round trips per group (expire, members, expire, send).
# For one frame to each of thousands of groups: one call returns every group's channels, one
# call per thousand frames stores them, with the same expiry and capacity rules as group_send.
_GROUP_MEMBERS_LUA = (
    "local members = {} for i, key in ipairs(KEYS) do "
    "redis.call('ZREMRANGEBYSCORE', key, 0, ARGV[1]) "
    "members[i] = redis.call('ZRANGE', key, 0, -1) end return members"
)
_BULK_SEND_LUA = (
    "local n = #KEYS local now = ARGV[2 * n + 1] local expiry = ARGV[2 * n + 2] "
    "local over = 0 for i = 1, n do "
    "redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, now - expiry) "
    "if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[n + i]) then "
    "redis.call('ZADD', KEYS[i], now, ARGV[i]) redis.call('EXPIRE', KEYS[i], expiry) "
    "else over = over + 1 end end return over"
)


async def _bulk_group_send(layer: RedisChannelLayer, frames: dict[int, dict]) -> None:
    """`group_send(group_for(user), frame)` for every user of `frames`, in a few calls. Each
    user gets one frame here, so no two of one user's frames share a score (equal scores would
    order by content, not by seq)."""
    by_shard: dict[int, list[int]] = {}
    for user_id in frames:
        by_shard.setdefault(layer.consistent_hash(group_for(user_id)), []).append(user_id)
    stale = int(time.time()) - layer.group_expiry
    entries: dict[int, list[tuple[Any, bytes, int]]] = {}
    for shard, users in by_shard.items():
        connection = layer.connection(shard)
        for start in range(0, len(users), LISTENING_CHUNK):
            chunk = users[start : start + LISTENING_CHUNK]
            keys = [layer._group_key(group_for(user_id)) for user_id in chunk]
            members = await connection.eval(_GROUP_MEMBERS_LUA, len(keys), *keys, stale)
            for user_id, names in zip(chunk, members, strict=True):
                if not names:
                    continue  # no socket: it resumes from the log
                by_connection, message_of, capacity_of = layer._map_channel_keys_to_connection(
                    [name.decode("utf8") for name in names], frames[user_id]
                )
                for index, channel_keys in by_connection.items():
                    entries.setdefault(index, []).extend(
                        (key, message_of[key], capacity_of[key]) for key in channel_keys
                    )
    for index, pending in entries.items():
        connection = layer.connection(index)
        for start in range(0, len(pending), LISTENING_CHUNK):
            part = pending[start : start + LISTENING_CHUNK]
            over = await connection.eval(
                _BULK_SEND_LUA,
                len(part),
                *(key for key, _, _ in part),
                *(message for _, message, _ in part),
                *(capacity for _, _, capacity in part),
                time.time(),
                layer.expiry,
            )
            if over:
                logger.warning("%d frames over channel capacity were dropped; clients resume", over)


# Every group's member count in one reply: a pipeline of ZCARDs costs a parsed reply per user,
# which for a fan-out's thousand users was most of its send.
_GROUP_SIZES_LUA = (
    "local sizes = {} for i, key in ipairs(KEYS) do sizes[i] = redis.call('ZCARD', key) end "
    "return sizes"
)
LISTENING_CHUNK = 1000


async def _listening(layer, user_ids: list[int]) -> set[int]:
    """The users whose group has a member (a socket joined it), one script call per Redis shard
    and thousand users: a sweep telling thousands of users, most of them offline, would
    otherwise spend two round trips per user finding an empty group. A socket that joins after
    this check resumes from the event log (the events are committed before any send), so
    skipping is safe."""
    if not isinstance(layer, RedisChannelLayer):
        return set(user_ids)
    by_shard: dict[int, list[int]] = {}
    for user_id in user_ids:
        by_shard.setdefault(layer.consistent_hash(group_for(user_id)), []).append(user_id)
    listening: set[int] = set()
    for shard, users in by_shard.items():
        connection = layer.connection(shard)
        for start in range(0, len(users), LISTENING_CHUNK):
            chunk = users[start : start + LISTENING_CHUNK]
            keys = [layer._group_key(group_for(user_id)) for user_id in chunk]
            sizes = await connection.eval(_GROUP_SIZES_LUA, len(keys), *keys)
            listening.update(user for user, size in zip(chunk, sizes, strict=True) if size)
    return listening


def _log_failure(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        metrics.LAYER_SEND_FAILURES.inc()
        logger.error("live send failed; clients will resume", exc_info=future.exception())


# Close codes of the user's sockets (the client tells "sign in again" from "suspended").
CLOSE_UNAUTHENTICATED = 4401
CLOSE_BANNED = 4403
CLOSE_MESSAGE_TYPE = "realtime.close"


def close_sockets_on_commit(*, user_id: int, code: int, token_id: int | None = None) -> None:
    """After commit, closes the user's open sockets in every server process: those signed in
    with `token_id`, or all of them. Through the user's group, the same way as events, so the
    close cannot overtake an event committed before it. A lost message (Redis away) is made
    up by the socket sweep, which re-checks every socket's token (realtime/consumers.py)."""
    message = {"type": CLOSE_MESSAGE_TYPE, "code": code, "token_id": token_id}
    transaction.on_commit(lambda: _send([(user_id, message)]))

