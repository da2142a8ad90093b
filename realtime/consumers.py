"""The user's WebSocket at /ws/: authenticate, join the user's group, forward events in seq
order, replay on `resume`, and hand client actions to the registered socket actions."""

import asyncio
import json
import logging
import time
from urllib.parse import parse_qs, urlsplit

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext
from pydantic import ValidationError

from marketplace.errors import DomainError
from marketplace.models import ApiToken
from project import metrics
from project.client_address import scope_client_address
from realtime import dispatch, notifications, presence, selectors
from realtime.db import database_sync_to_async
from realtime.heap import heap
from realtime.push import CLOSE_BANNED, CLOSE_UNAUTHENTICATED, encode, group_for

logger = logging.getLogger("realtime.socket")

SUBPROTOCOL = "marketplace.v1"
BEARER_PREFIX = "bearer."
# Close codes the client can see (a close before the handshake would hide them behind a 403);
# 4401 and 4403 are shared with the actions that revoke tokens and ban (realtime/push.py).
CLOSE_IDLE = 4408
REPLAY_BATCH = 500
MAX_REF_LENGTH = 64
# Real frames nest two or three levels. Deeper is refused before anything walks it: the JSON
# decoder itself raises RecursionError at about a thousand levels (16 KB of brackets).
MAX_FRAME_DEPTH = 32
SWEEP_SLICE = 200
# Sockets' objects join the frozen heap after this many connects (realtime/heap.py).
FREEZE_EVERY_CONNECTS = 200


def origin_allowed(origin: str) -> bool:
    """Mini-programs send no Origin or https://servicewechat.com; browsers send their page's."""
    allowed = settings.REALTIME_ALLOWED_ORIGINS
    if "*" in allowed:
        return True
    parts = urlsplit(origin.strip().lower())
    normalised = f"{parts.scheme}://{parts.netloc}"
    return normalised in {item.strip().lower().rstrip("/") for item in allowed}


def credentials_from(scope: dict) -> tuple[str, list[str]]:
    """(raw token, offered subprotocols): `?token=` or the `bearer.<token>` subprotocol."""
    offered = [str(item) for item in scope.get("subprotocols") or []]
    for item in offered:
        if item.startswith(BEARER_PREFIX):
            return item[len(BEARER_PREFIX) :], offered
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("token") or [""]
    return tokens[0], offered


class TokenBucket:
    """Per-connection rate limit: `rate` frames a second, bursts of up to `burst`."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.updated = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class FrameError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class LocalSockets:
    """This process's open sockets, and ONE task that keeps them in check.

    A task per socket would cost memory per connection and, at 5,000 sockets, a burst of
    5,000 cache round trips every refresh that stalls the loop (measured: p99 latency > 1 s).
    One sweep instead: close idle sockets, refresh every presence entry in one batch.
    """

    def __init__(self) -> None:
        self.consumers: set[EventConsumer] = set()
        self.task: asyncio.Task | None = None
        self.added = 0

    def add(self, consumer: "EventConsumer") -> None:
        self.consumers.add(consumer)
        self.added += 1
        if self.added % FREEZE_EVERY_CONNECTS == 0:
            # A connect storm adds long-lived objects faster than the sweep comes round.
            heap.tend()
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self._sweep())

    def discard(self, consumer: "EventConsumer") -> None:
        self.consumers.discard(consumer)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        while True:
            idle = settings.REALTIME_IDLE_TIMEOUT_SECONDS
            await asyncio.sleep(max(0.2, min(settings.REALTIME_PRESENCE_TTL_SECONDS / 3, idle / 4)))
            # A cancellation that arrived while a thread-pool call was running can be absorbed
            # by asgiref; honour it here, or a shutting-down loop waits on this task forever.
            if me is not None and me.cancelling():
                return
            # Sockets whose loop is gone (a restarted server loop, or a finished test) are dead.
            self.consumers = {c for c in self.consumers if not c.socket_loop.is_closed()}
            on_this_loop = [c for c in self.consumers if c.socket_loop is loop]
            if not on_this_loop:
                heap.release()
                return
            mine = [c for c in on_this_loop if c.user_id is not None]
            if not mine:
                continue
            try:
                mine = await self._close_lapsed(mine)
                now = time.monotonic()
                connections: dict[int, list[str]] = {}
                for consumer in mine:
                    if now - consumer.last_activity > idle:
                        self.consumers.discard(consumer)
                        await consumer.close(code=CLOSE_IDLE)
                    else:
                        connections.setdefault(consumer.user_id, []).append(consumer.channel_name)  # type: ignore[arg-type]  # mine: signed in
                # In slices: one 5,000-entry refresh holds the GIL long enough to stall frames.
                users = list(connections)
                for start in range(0, len(users), SWEEP_SLICE):
                    part = {user: connections[user] for user in users[start : start + SWEEP_SLICE]}
                    await sync_to_async(presence.refresh_many, thread_sensitive=False)(part)
                    await asyncio.sleep(0.02)
                heap.tend()
            except Exception:
                logger.exception("socket sweep failed")

    async def _close_lapsed(self, consumers: list["EventConsumer"]) -> list["EventConsumer"]:
        """Closes sockets whose token was revoked, expired or deleted, or whose user was banned,
        in one query: the close message of a logout or ban may have been lost (Redis away)."""
        live = await _pooled(selectors.live_socket_tokens)({c.token_id for c in consumers})
        kept = []
        for consumer in consumers:
            if consumer.token_id in live:
                kept.append(consumer)
            else:
                self.consumers.discard(consumer)
                await consumer.shut(CLOSE_UNAUTHENTICATED)
        return kept


_local = LocalSockets()
# `notification.created` sends scheduled and not yet done (see EventConsumer.realtime_event).
_pushes: set[asyncio.Task] = set()


class EventConsumer(AsyncWebsocketConsumer):
    user_id: int | None = None
    token_id: int | None = None
    # Set once the server decided to close: nothing more is sent or acted on.
    is_shut = False
    language = "zh"

    async def connect(self) -> None:
        headers = dict(self.scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1")
        if origin and not origin_allowed(origin):
            # Refused during the handshake (HTTP 403): a foreign web page gets nothing.
            logger.info("socket refused: origin not allowed, client %s", self._client())
            await self.close()
            return
        raw, offered = credentials_from(self.scope)
        # Never echo the token back as the protocol: proxies log the handshake headers.
        subprotocol = SUBPROTOCOL if SUBPROTOCOL in offered else None
        user_id, is_banned, last_seq, token_id = await _pooled(selectors.socket_user)(raw)
        if user_id is None or is_banned:
            logger.info(
                "socket refused: %s, client %s",
                "user banned" if is_banned else "no valid token",
                self._client(),
            )
            await self.accept(subprotocol)
            await self.close(code=CLOSE_BANNED if is_banned else CLOSE_UNAUTHENTICATED)
            return
        self.user_id, self.token_id = user_id, token_id
        # The language `notification.created` frames are written in, as for REST reads.
        self.language = notifications.language_of(
            headers.get(b"accept-language", b"").decode("latin-1")
        )
        # Counted from here, as disconnect() uncounts every socket that has a user_id.
        metrics.OPEN_SOCKETS.inc()
        self.group = group_for(user_id)
        # Read before joining: an event committed in between is fetched by the gap fill when
        # the next one arrives (or by the client's resume), never dropped as a duplicate.
        self.last_sent = last_seq
        self.bucket = TokenBucket(settings.REALTIME_RATE_PER_SECOND, settings.REALTIME_RATE_BURST)
        self.last_activity = time.monotonic()
        self.socket_loop = asyncio.get_running_loop()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await sync_to_async(presence.mark_connected, thread_sensitive=False)(
            user_id, self.channel_name
        )
        await self.accept(subprotocol)
        _local.add(self)

    def _client(self) -> str:
        return scope_client_address(self.scope) or "-"

    async def disconnect(self, code: int) -> None:
        if self.user_id is None:
            return
        metrics.OPEN_SOCKETS.dec()
        _local.discard(self)
        await self.channel_layer.group_discard(self.group, self.channel_name)
        await sync_to_async(presence.mark_disconnected, thread_sensitive=False)(
            self.user_id, self.channel_name
        )
        self.user_id = None

    # --- frames from the client ------------------------------------------------------------

    async def shut(self, code: int) -> None:
        if self.is_shut:
            return
        self.is_shut = True
        await self.close(code=code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.user_id is None or self.is_shut:
            return
        self.last_activity = time.monotonic()
        ref = None
        try:
            if not self.bucket.take():
                raise FrameError("rate_limited", "Too many frames; slow down.")
            if text_data is None:
                raise FrameError("bad_frame", "Send JSON text frames, not binary.")
            limit = settings.REALTIME_MAX_FRAME_BYTES
            if len(text_data) > limit or len(text_data.encode("utf-8")) > limit:
                raise FrameError(
                    "frame_too_large",
                    gettext("Frames are limited to %(limit)s bytes.") % {"limit": limit},
                )
            try:
                frame = json.loads(text_data)
            except ValueError:
                raise FrameError("malformed_json", "The frame is not valid JSON.") from None
            except RecursionError:
                raise FrameError("bad_frame", _TOO_DEEP) from None
            if not isinstance(frame, dict):
                raise FrameError("bad_frame", "A frame is a JSON object with an action.")
            check_frame_content(frame)
            ref = _ref(frame.get("id"))
            action = frame.get("action")
            if not isinstance(action, str) or not action:
                raise FrameError("bad_frame", "The frame has no action.")
            if action == "ping":
                await self.send(text_data='{"type":"pong"}')
            elif action == "resume":
                await self._resume(frame, ref)
            else:
                await self._run_action(action, frame, ref)
        except FrameError as exc:
            await self._send_error(ref, exc.code, exc.message)
        except Exception:
            # A bug in handling one frame must not take the socket down (a 1011 close).
            logger.exception("socket frame failed for user %s", self.user_id)
            await self._send_error(
                ref, "internal_error", "Something went wrong on our side; it has been logged."
            )

    async def _send_error(self, ref, code: str, message: str) -> None:
        # The literals here are English source text; the reader gets them translated.
        message = gettext(message)
        await self.send(
            text_data=encode(
                {"type": "error", "ref": ref, "data": {"code": code, "message": message}}
            )
        )

    async def _resume(self, frame: dict, ref) -> None:
        since = frame.get("since")
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise FrameError("validation_error", "since: a sequence number (integer >= 0).")
        latest = await _pooled(selectors.latest_seq)(self.user_id)
        # A client claiming more than exists (a restored database, a bug) starts from now.
        since = min(since, latest)
        # Live frames wait in the channel layer while this runs (a consumer handles one
        # message at a time); afterwards anything at or below last_sent is dropped, so the
        # replay and the live stream join without a gap or a duplicate.
        self.last_sent = since
        first = True
        replayed = 0
        while True:
            batch = await _pooled(selectors.frames_after)(
                self.user_id, self.last_sent, REPLAY_BATCH
            )
            if first and since < latest and (not batch or batch[0][0] != since + 1):
                await self._send_error(
                    ref,
                    "events_pruned",
                    "Some events are older than the retention window; reload from the API.",
                )
            first = False
            for seq, text in batch:
                await self.send(text_data=text)
                self.last_sent = seq
            replayed += len(batch)
            if len(batch) < REPLAY_BATCH:
                break
        await self.send(
            text_data=encode(
                {
                    "type": "ack",
                    "ref": ref,
                    "data": {"action": "resume", "replayed": replayed, "seq": self.last_sent},
                }
            )
        )

    async def _run_action(self, action: str, frame: dict, ref) -> None:
        try:
            handler = await _pooled(dispatch.get_handler)(action)
        except Exception:
            logger.exception("socket action discovery failed")
            raise FrameError(
                "internal_error", "Something went wrong on our side; it has been logged."
            ) from None
        if handler is None:
            raise FrameError(
                "unknown_action", gettext("Unknown action %(action)r.") % {"action": action[:40]}
            )
        try:
            # Not on the one thread-sensitive thread, where every socket of the process queued
            # behind every other socket's action. A socket's own frames are still handled one
            # after another, so its actions keep their order.
            result = await _pooled(_call)(handler, self.user_id, self.token_id, frame)
        except BannedError:
            await self._send_error(ref, "user_banned", "This account is suspended.")
            await self.shut(CLOSE_BANNED)
            return
        except RevokedError:
            await self._send_error(ref, "unauthorized", "Signed out; sign in again.")
            await self.shut(CLOSE_UNAUTHENTICATED)
            return
        except DomainError as exc:
            raise FrameError(exc.code, exc.message) from None
        except ValidationError as exc:
            raise FrameError("validation_error", _validation_message(exc)) from None
        except (Http404, ObjectDoesNotExist):
            raise FrameError("not_found", "Not found.") from None
        except Exception:
            logger.exception("socket action %s failed for user %s", action, self.user_id)
            raise FrameError(
                "internal_error", "Something went wrong on our side; it has been logged."
            ) from None
        await self.send(text_data=encode({"type": "ack", "ref": ref, "data": result}))

    # --- events from the channel layer -----------------------------------------------------

    async def _push_notification(self, carried: dict) -> None:
        if self.user_id is None or self.is_shut:
            return
        try:
            await self.send(text_data=notification_frame_text(carried, self.language))
        except Exception:  # a socket gone meanwhile: the entry is in the centre
            logger.debug("notification frame not sent: the socket closed", exc_info=True)

    async def realtime_close(self, message: dict) -> None:
        """A logout (this socket's token) or a ban (every socket of the user) committed."""
        if self.user_id is None:
            return
        token_id = message.get("token_id")
        if token_id is None or token_id == self.token_id:
            _local.discard(self)
            await self.shut(int(message["code"]))

    async def realtime_event(self, message: dict) -> None:
        if self.user_id is None or self.is_shut:
            return
        seq = message["seq"]
        if seq <= self.last_sent:
            return
        if seq > self.last_sent + 1:
            # Emitters in different processes may publish out of commit order (or a frame was
            # dropped by a full channel): the missing events are committed, so read them.
            missing = await _pooled(selectors.frames_between)(self.user_id, self.last_sent, seq)
            for missing_seq, text in missing:
                await self.send(text_data=text)
                self.last_sent = missing_seq
        await self.send(text_data=message["text"])
        self.last_sent = seq
        carried = message.get("notification")
        if carried is not None:
            # Sent once the loop has let out the events already queued: in a fan-out to a
            # thousand sockets of this process, every socket hears the news before any gets the
            # second frame (sent in line, the last socket's event waited behind 999 of them).
            task = asyncio.get_running_loop().create_task(self._push_notification(carried))
            # The loop keeps only a weak reference to a task: hold it until it is done.
            _pushes.add(task)
            task.add_done_callback(_pushes.discard)
        if "emitted_at" in message:
            metrics.EVENT_SEND_LAG.observe(max(0.0, time.time() - message["emitted_at"]))


class BannedError(Exception):
    pass


class RevokedError(Exception):
    pass


def notification_frame_text(carried: dict, language: str) -> str:
    """A `notification.created` frame: live only, so it has no `seq` (the entry itself is kept
    in the notification centre, which is where a client that was away finds it)."""
    data = notifications.live_frame_data(carried, language)
    return encode({"type": "notification.created", "data": data, "at": carried["created_at"]})


def _call(handler, user_id: int, token_id: int, frame: dict) -> dict:
    # Fresh for every action, in the one query that loaded the user before: a logout, an
    # expiry or a ban since the socket opened applies even if its close message was lost.
    token = (
        ApiToken.objects.select_related("user")
        .filter(
            pk=token_id, user_id=user_id, revoked_at__isnull=True, expires_at__gt=timezone.now()
        )
        .first()
    )
    if token is None:
        raise RevokedError()
    user = token.user
    if user.is_banned:
        raise BannedError()
    result = handler(user=user, frame=frame)
    if result is None:
        return {}
    # Same normalisation as events: what the handler returns must survive JSON.
    return json.loads(encode(result))


def _pooled(function):
    # Database work of one socket needs no ordering with other sockets' work: run it on the
    # shared thread pool (ASGI_THREADS) instead of the one thread-sensitive thread, so a
    # reconnect storm authenticates in parallel and actions of many sockets run at once.
    return database_sync_to_async(function, thread_sensitive=False)


_TOO_DEEP = f"Frames nest at most {MAX_FRAME_DEPTH} levels."


def check_frame_content(frame: dict) -> None:
    """Refuses frames nested too deeply or holding a lone surrogate (reachable only through a
    JSON escape such as \\ud800): echoed back in a ref or an error message it cannot be
    encoded as UTF-8, and the server closed the socket with 1011. Iterative, so no frame can
    make it recurse."""
    pending: list[tuple[object, int]] = [(frame, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if not _is_utf8(value):
                raise FrameError("bad_frame", "The frame holds invalid Unicode (a lone surrogate).")
        elif isinstance(value, dict | list):
            if depth > MAX_FRAME_DEPTH:
                raise FrameError("bad_frame", _TOO_DEEP)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    pending.append((key, depth))
                pending.append((item, depth + 1))


def _is_utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _ref(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and len(value) <= MAX_REF_LENGTH):
        return value
    return None


def _validation_message(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid"))
