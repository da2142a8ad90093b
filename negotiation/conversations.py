"""Conversations (SPEC §4a): every write on conversations and messages. REST and socket
handlers call these; the offer actions call `record_offer_moves` inside their transactions so
the thread and the offer can never disagree.

Lock order (extends negotiation/actions.py): the listing, offers, then the conversation rows
(a transaction writing to several locks them all first, in id order: `lock_threads`), then the
unread inboxes (one statement, by user id), then the realtime counters (emit). A send locks one
conversation, one inbox and two event counters in that order, so it cannot deadlock with an
acceptance that closes every thread on the listing.
"""

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from marketplace.actions.accounts import ban_user, check_not_banned
from marketplace.actions.uploads import PrivateCopy, copy_to_private, delete_files
from marketplace.errors import Conflict, DomainError, InvalidInput, NotFound, RateLimited
from marketplace.gateways import wechat
from marketplace.media import private_url
from marketplace.models import Listing, ListingStatus, User
from marketplace.models.catalog import ImageUpload
from marketplace.states import LISTING
from negotiation import server_entries
from negotiation.models import (
    Conversation,
    ConversationAccess,
    Message,
    MessageKind,
    Offer,
    OfferHistory,
    Report,
    UserBlock,
    chat_image_folder,
)
from negotiation.representations import message_data
from project.ratelimit import hit
from project.tasking import enqueue_on_commit
from project.transactions import retry_on_deadlock
from realtime import notices, presence
from realtime.push import emit

logger = logging.getLogger("negotiation.conversations")

MAX_TEXT = 500
UNPUBLISHED = (ListingStatus.PENDING_REVIEW, ListingStatus.REJECTED)
# msg_sec_check scenes: 1 profile, 2 comment, 3 forum, 4 social log; a chat line is closest
# to a comment.
CHAT_SCENE = 2
# How long the private link WeChat's mediaCheckAsync is given stays valid: WeChat fetches the
# image on its own schedule (its verdict may take up to half an hour), not while we wait.
MEDIA_CHECK_LINK_TTL = 3600


class RiskyMessage(DomainError):
    status = 422
    code = "content_risky"
    message = "This message breaks the platform's content rules and was not sent."


# --- checks ------------------------------------------------------------------------------------


def blocked_between(a_id: int, b_id: int) -> bool:
    return UserBlock.objects.filter(
        Q(blocker_id=a_id, blocked_id=b_id) | Q(blocker_id=b_id, blocked_id=a_id)
    ).exists()


def _blocked() -> Conflict:
    # Never says who blocked whom.
    return Conflict("You cannot message or make offers to each other.", code="blocked")


def check_not_blocked(a_id: int, b_id: int) -> None:
    if blocked_between(a_id, b_id):
        raise _blocked()


def check_message_rate(*, user: User) -> None:
    limit = int(getattr(settings, "MESSAGE_RATE_PER_MINUTE", 30))
    if not hit(f"message:user:{user.pk}", limit=limit, period=60).allowed:
        raise RateLimited(
            "At most %(limit)s messages a minute; try again shortly.",
            code="rate_limited",
            params={"limit": limit},
        )


def check_new_conversation_rate(*, user: User) -> None:
    limit = int(getattr(settings, "NEW_CONVERSATIONS_PER_DAY", 50))
    if not hit(f"conversation:new:{user.pk}", limit=limit, period=86400).allowed:
        raise RateLimited(
            "At most %(limit)s new conversations a day.", code="rate_limited", params={"limit": limit}
        )


def clean_text(text: str | None) -> str:
    cleaned = (text or "").strip()
    if not cleaned:
        raise InvalidInput("A message cannot be empty.", code="empty_message")
    if len(cleaned) > MAX_TEXT:
        raise InvalidInput(
            "A message has at most %(limit)s characters.",
            code="message_too_long",
            params={"limit": MAX_TEXT},
        )
    return cleaned


def check_text(*, sender: User, text: str) -> bool:
    """WeChat's text check, before any transaction: refuses `risky`; True for `review`."""
    if not sender.openid:
        return True  # nothing to check against: let staff look
    verdict = wechat.text_check(openid=sender.openid, content=text, scene=CHAT_SCENE)
    if verdict == "risky":
        raise RiskyMessage()
    return verdict == "review"


def access_conversation(*, user: User, conversation_id: int, lock: bool = False) -> Conversation:
    """The conversation if `user` is one of its two users; 404 otherwise."""
    queryset = Conversation.objects.filter(pk=conversation_id)
    if lock:
        queryset = queryset.select_for_update(of=("self",)).select_related("buyer", "seller")
    conversation = queryset.first()
    if conversation is None or user.pk not in (conversation.buyer_id, conversation.seller_id):
        raise NotFound("No such conversation.", code="conversation_not_found")
    return conversation


_CONVERSATION_FIELDS = list(Conversation._meta.concrete_fields)
_LOCK_FOR_SEND_SQL = (  # noqa: S608 - the model's own table and column names
    "SELECT {columns}, b.is_banned, s.is_banned FROM negotiation_conversation c"
    " JOIN {users} b ON b.id = c.buyer_id JOIN {users} s ON s.id = c.seller_id"
    " WHERE c.id = %s FOR UPDATE OF c"
).format(
    columns=", ".join(f"c.{field.column}" for field in _CONVERSATION_FIELDS),
    users=User._meta.db_table,
)


def _lock_for_send(*, user: User, conversation_id: int) -> tuple[Conversation, bool]:
    """The conversation locked (404 unless `user` is in it) and whether the other user is
    banned: one statement, built once (a send's hottest query)."""
    if connection.vendor != "postgresql":
        conversation = access_conversation(user=user, conversation_id=conversation_id, lock=True)
        other = conversation.seller if user.pk == conversation.buyer_id else conversation.buyer
        return conversation, other.is_banned
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_FOR_SEND_SQL, [conversation_id])
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such conversation.", code="conversation_not_found")
    *values, buyer_banned, seller_banned = row
    conversation = Conversation.from_db(
        connection.alias, [field.attname for field in _CONVERSATION_FIELDS], values
    )
    if user.pk not in (conversation.buyer_id, conversation.seller_id):
        raise NotFound("No such conversation.", code="conversation_not_found")
    return conversation, bool(seller_banned if user.pk == conversation.buyer_id else buyer_banned)


# --- the inboxes (total unread per user) ------------------------------------------------------

_BUMP_SQL = (
    "INSERT INTO negotiation_message_inbox (user_id, unread) VALUES {values} "
    "ON CONFLICT (user_id) DO UPDATE "
    "SET unread = negotiation_message_inbox.unread + excluded.unread"
)


def _bump_inboxes(deltas: dict[int, int]) -> None:
    """One statement, rows in user-id order (one lock order for every writer)."""
    users = [user_id for user_id in sorted(deltas) if deltas[user_id]]
    if not users:
        return
    values = ", ".join(["(%s, %s)"] * len(users))
    params = [value for user_id in users for value in (user_id, deltas[user_id])]
    with connection.cursor() as cursor:
        cursor.execute(_BUMP_SQL.format(values=values), params)


# --- writing messages -------------------------------------------------------------------------


@dataclass
class Entry:
    """A message to write into a locked conversation."""

    conversation: Conversation
    kind: str
    sender_id: int | None
    text: str = ""
    notice: dict | None = None
    image: ImageUpload | None = None
    offer: Offer | None = None
    client_id: str = ""
    is_flagged: bool = False


_GATHER_ATTRIBUTE = "_conversation_entries"


@contextlib.contextmanager
def gathered() -> Iterator[None]:
    """Every entry (and offer history row) the block posts is written when it ends, in one
    statement on PostgreSQL: an acceptance writes the accepted move, each rival's decline and
    the closing of the other threads together. Use it inside `realtime.push.batched()` (the
    messages' events join the action's batch); nothing is written if the block raises. A
    nested block joins the outer one. Inside it `_post` returns no messages."""
    if getattr(connection, _GATHER_ATTRIBUTE, None) is not None:
        yield
        return
    gathering: tuple[list[Entry], list[OfferHistory]] = ([], [])
    setattr(connection, _GATHER_ATTRIBUTE, gathering)
    try:
        yield
    finally:
        setattr(connection, _GATHER_ATTRIBUTE, None)
    _post(*gathering)


def _post(entries: Sequence[Entry], history: Sequence[OfferHistory] = ()) -> list[Message]:
    """Writes the entries (their conversations locked by the caller): the messages, each
    conversation's counters, the inboxes, and one `message.created` per message to both users;
    and `history`, the offer history rows of the moves the entries tell. On PostgreSQL the
    writes are one statement; elsewhere four. Inside `gathered()` they wait for its end."""
    gathering = getattr(connection, _GATHER_ATTRIBUTE, None)
    if gathering is not None:
        gathering[0].extend(entries)
        gathering[1].extend(history)
        return []
    if not entries:
        if history:
            OfferHistory.objects.bulk_create(history)
        return []
    now = timezone.now()
    messages = [
        Message(
            conversation=entry.conversation,
            sender_id=entry.sender_id,
            kind=entry.kind,
            text=entry.text,
            notice=entry.notice,
            image=entry.image,
            offer=entry.offer,
            client_id=entry.client_id,
            is_flagged=entry.is_flagged,
            created_at=now,
        )
        for entry in entries
    ]
    deltas: dict[int, int] = {}
    touched: dict[int, Conversation] = {}
    for entry in entries:
        conversation = touched.setdefault(entry.conversation.pk, entry.conversation)
        for side, user_id in (("buyer", conversation.buyer_id), ("seller", conversation.seller_id)):
            if user_id == entry.sender_id:
                continue
            setattr(conversation, f"{side}_unread", getattr(conversation, f"{side}_unread") + 1)
            deltas[user_id] = deltas.get(user_id, 0) + 1
            if not getattr(conversation, f"{side}_noticed"):
                setattr(conversation, f"{side}_noticed", True)
                enqueue_on_commit(
                    "negotiation.tasks.conversation_notice_task", conversation.pk, user_id
                )
        conversation.updated_at = now
        conversation.message_count += 1
        conversation.flagged_count += int(entry.is_flagged)
    if connection.vendor == "postgresql":
        _write_in_one_statement(messages, list(touched.values()), deltas, history)
    else:
        OfferHistory.objects.bulk_create(history)
        # Ids in insertion order (returned by the bulk insert): the server order.
        Message.objects.bulk_create(messages)
        for message in messages:
            message.conversation.last_message = message
        Conversation.objects.bulk_update(list(touched.values()), _COUNTER_FIELDS)
        _bump_inboxes(deltas)
    for message in messages:
        message.conversation.last_message = message
        conversation = message.conversation
        # Not the generic offline fallback: the conversation's own notice (one until read).
        emit(
            user_ids=[conversation.buyer_id, conversation.seller_id],
            type="message.created",
            data=message_data(message),
            notify=False,
        )
    return messages


_COUNTER_FIELDS = [
    "buyer_unread",
    "seller_unread",
    "buyer_noticed",
    "seller_noticed",
    "message_count",
    "flagged_count",
    "updated_at",
    "last_message",
    "is_read_only",
]
_MESSAGE_COLUMNS = (
    "conversation_id, sender_id, kind, text, notice, image_id, offer_id, client_id, is_flagged,"
    " is_hidden, media_trace_id, created_at"
)
# Each column travels as one array parameter, so the statement has one text per shape whatever
# the number of rows: psycopg converts it once and caches it (with more than 50 parameters it
# re-parsed the statement in Python on every call). Only our own column names are formatted in.
_WRITE_SQL = (  # noqa: S608
    "WITH m AS ("  # noqa: S608
    " INSERT INTO negotiation_message (" + _MESSAGE_COLUMNS + ")"
    " SELECT * FROM unnest(%(m_conversation)s::bigint[], %(m_sender)s::bigint[],"
    " %(m_kind)s::text[], %(m_text)s::text[], %(m_notice)s::jsonb[], %(m_image)s::bigint[],"
    " %(m_offer)s::bigint[],"
    " %(m_client)s::text[], %(m_flagged)s::boolean[], %(m_hidden)s::boolean[],"
    " %(m_trace)s::text[], %(m_at)s::timestamptz[])"
    " RETURNING id, conversation_id),"
    " c AS ("
    " UPDATE negotiation_conversation AS t SET buyer_unread = v.bu, seller_unread = v.su,"
    " buyer_noticed = v.bn, seller_noticed = v.sn, message_count = v.mc, flagged_count = v.fc,"
    " updated_at = v.ua, is_read_only = v.ro,"
    " last_message_id = (SELECT max(m.id) FROM m WHERE m.conversation_id = t.id)"
    " FROM unnest(%(c_id)s::bigint[], %(c_bu)s::integer[], %(c_su)s::integer[],"
    " %(c_bn)s::boolean[], %(c_sn)s::boolean[], %(c_mc)s::integer[], %(c_fc)s::integer[],"
    " %(c_ua)s::timestamptz[], %(c_ro)s::boolean[]) AS v (id, bu, su, bn, sn, mc, fc, ua, ro)"
    " WHERE t.id = v.id){inbox}{history}"
    " SELECT id FROM m ORDER BY id"
)
_INBOX_CTE = (
    ", i AS (INSERT INTO negotiation_message_inbox (user_id, unread)"
    " SELECT * FROM unnest(%(i_user)s::bigint[], %(i_unread)s::bigint[])"
    " ON CONFLICT (user_id) DO UPDATE"
    " SET unread = negotiation_message_inbox.unread + excluded.unread)"
)
_HISTORY_CTE = (
    ", h AS (INSERT INTO negotiation_offer_history"
    " (offer_id, actor, actor_user_id, action, price_fen, reason, at)"
    " SELECT * FROM unnest(%(h_offer)s::bigint[], %(h_actor)s::text[], %(h_user)s::bigint[],"
    " %(h_action)s::text[], %(h_price)s::bigint[], %(h_reason)s::text[],"
    " %(h_at)s::timestamptz[]))"
)
_WRITE_STATEMENTS = {
    (has_inbox, has_history): _WRITE_SQL.format(
        inbox=_INBOX_CTE if has_inbox else "", history=_HISTORY_CTE if has_history else ""
    )
    for has_inbox in (False, True)
    for has_history in (False, True)
}


def _write_in_one_statement(
    messages: list[Message],
    conversations: list[Conversation],
    deltas: dict[int, int],
    history: Sequence[OfferHistory] = (),
) -> None:
    """The messages, their conversations' counters (computed here under the locks), the
    inboxes and the offer history rows, in one round trip."""
    params: dict[str, list] = {
        "m_conversation": [m.conversation_id for m in messages],
        "m_sender": [m.sender_id for m in messages],
        "m_kind": [m.kind for m in messages],
        "m_text": [m.text for m in messages],
        "m_notice": [None if m.notice is None else json.dumps(m.notice) for m in messages],
        "m_image": [m.image_id for m in messages],
        "m_offer": [m.offer_id for m in messages],
        "m_client": [m.client_id for m in messages],
        "m_flagged": [m.is_flagged for m in messages],
        "m_hidden": [m.is_hidden for m in messages],
        "m_trace": [m.media_trace_id for m in messages],
        "m_at": [m.created_at for m in messages],
        "c_id": [c.pk for c in conversations],
        "c_bu": [c.buyer_unread for c in conversations],
        "c_su": [c.seller_unread for c in conversations],
        "c_bn": [c.buyer_noticed for c in conversations],
        "c_sn": [c.seller_noticed for c in conversations],
        "c_mc": [c.message_count for c in conversations],
        "c_fc": [c.flagged_count for c in conversations],
        "c_ua": [c.updated_at for c in conversations],
        "c_ro": [c.is_read_only for c in conversations],
    }
    users = [user_id for user_id in sorted(deltas) if deltas[user_id]]
    if users:
        params["i_user"] = users
        params["i_unread"] = [deltas[user_id] for user_id in users]
    if history:
        now = timezone.now()
        for row in history:
            row.at = row.at or now  # auto_now_add, as the ORM's insert would set it
        params["h_offer"] = [row.offer_id for row in history]
        params["h_actor"] = [row.actor for row in history]
        params["h_user"] = [row.actor_user_id for row in history]
        params["h_action"] = [row.action for row in history]
        params["h_price"] = [row.price_fen for row in history]
        params["h_reason"] = [row.reason for row in history]
        params["h_at"] = [row.at for row in history]
    with connection.cursor() as cursor:
        cursor.execute(_WRITE_STATEMENTS[(bool(users), bool(history))], params)
        ids = [row[0] for row in cursor.fetchall()]
    # One sequence, one multi-row insert: the ids are handed out in the rows' order.
    for message, pk in zip(messages, ids, strict=True):
        message.pk = message.id = pk


_BY_CLIENT_ID_SQL = (
    "SELECT id FROM negotiation_message"
    " WHERE conversation_id = %s AND sender_id = %s AND client_id = %s LIMIT 1"
)


def _by_client_id(conversation_id: int, sender_id: int, client_id: str) -> Message | None:
    # On every send, by the unique index and without building an ORM query; the message itself
    # is loaded only for a retry.
    with connection.cursor() as cursor:
        cursor.execute(_BY_CLIENT_ID_SQL, [conversation_id, sender_id, client_id])
        row = cursor.fetchone()
    if row is None:
        return None
    return Message.objects.select_related("offer__order", "image").get(pk=row[0])


@dataclass
class Sent:
    message: Message
    created: bool


def send_message(
    *,
    sender: User,
    conversation_id: int,
    kind: str,
    client_id: str,
    text: str | None = None,
    image_id: int | None = None,
) -> Sent:
    """A text or image from one of the two users. The same `client_id` again returns the first
    message (racing retries meet at the conversation lock; the unique index is the backstop)."""
    check_not_banned(sender)
    # A retry returns the first without a second WeChat check (the sender's own rows only, so
    # this tells an outsider nothing; the lock below answers them 404).
    first = _by_client_id(conversation_id, sender.pk, client_id)
    if first is not None:
        return Sent(first, False)
    flagged = False
    if kind == MessageKind.TEXT:
        if image_id is not None:
            raise InvalidInput("A text message carries no image.", code="invalid_message")
        body = clean_text(text)
    elif kind == MessageKind.IMAGE:
        if image_id is None or (text or "").strip():
            raise InvalidInput("An image message carries image_id only.", code="invalid_message")
        body = ""
    else:
        raise InvalidInput("kind is text or image.", code="invalid_message")
    check_message_rate(user=sender)
    staged = None
    if kind == MessageKind.TEXT:
        # Outside the transaction: no lock is held while WeChat answers.
        flagged = check_text(sender=sender, text=body)
    else:
        # Outside the transaction too: no lock is held while the file is copied.
        staged = _stage_image(owner=sender, image_id=image_id)
    sent = None
    try:
        sent = _send_locked(
            sender=sender,
            conversation_id=conversation_id,
            kind=kind,
            body=body,
            image_id=image_id,
            staged=staged,
            client_id=client_id,
            flagged=flagged,
        )
    except IntegrityError:
        # A concurrent retry with the same client_id committed first (the unique index).
        first = _by_client_id(conversation_id, sender.pk, client_id)
        if first is None:
            raise
        sent = Sent(first, False)
    finally:
        if staged is not None and (sent is None or not sent.created):
            staged.discard()
    return sent


@retry_on_deadlock
def _send_locked(
    *,
    sender: User,
    conversation_id: int,
    kind: str,
    body: str,
    image_id: int | None,
    staged: PrivateCopy | None,
    client_id: str,
    flagged: bool,
) -> Sent:
    with transaction.atomic(durable=True):
        conversation, other_banned = _lock_for_send(user=sender, conversation_id=conversation_id)
        if conversation.is_blocked:
            raise _blocked()
        if conversation.is_read_only:
            raise Conflict(
                "The item went to someone else: this conversation is read-only.",
                code="conversation_read_only",
            )
        if other_banned:
            raise Conflict(
                "The other account is restricted and cannot receive messages.",
                code="recipient_unavailable",
            )
        image = None
        if kind == MessageKind.IMAGE:
            assert staged is not None  # send_message stages every image
            image = _take_image(owner=sender, image_id=image_id, staged=staged)
        (message,) = _post(
            [
                Entry(
                    conversation=conversation,
                    kind=kind,
                    sender_id=sender.pk,
                    text=body,
                    image=image,
                    client_id=client_id,
                    is_flagged=flagged,
                )
            ]
        )
        if image is not None:
            enqueue_on_commit("negotiation.tasks.message_media_check_task", message.pk)
    return Sent(message, True)


def _sendable_images(*, owner: User, image_id: int | None):
    """The sender's own upload, not yet used, never one attached to a listing."""
    if image_id is None:
        raise InvalidInput("An image message needs image_id.", code="image_required")
    return ImageUpload.objects.filter(
        pk=image_id, owner=owner, listing__isnull=True, consumed_at__isnull=True
    )


def _image_not_found() -> NotFound:
    return NotFound(
        "No such image (upload it first; each upload is sent once).", code="image_not_found"
    )


def _stage_image(*, owner: User, image_id: int | None) -> PrivateCopy:
    """A private copy of the upload about to be sent (a chat image is for the two users only:
    it leaves the public media). Checked again under the lock by `_take_image`."""
    upload = _sendable_images(owner=owner, image_id=image_id).first()
    if upload is None:
        raise _image_not_found()
    return copy_to_private(upload, folder=chat_image_folder(upload.pk))


def _take_image(*, owner: User, image_id: int | None, staged: PrivateCopy) -> ImageUpload:
    """The upload, used once (consumed), now naming its private copy; its public files are
    deleted once this commits."""
    upload = _sendable_images(owner=owner, image_id=image_id).select_for_update().first()
    if upload is None:
        raise _image_not_found()
    public = [upload.file, upload.thumbnail]
    upload.file, upload.thumbnail = staged.file, staged.thumbnail
    upload.consumed_at = timezone.now()
    upload.save(update_fields=["file", "thumbnail", "consumed_at"])
    transaction.on_commit(partial(delete_files, public))
    return upload


# --- opening ------------------------------------------------------------------------------------


def open_conversation(*, buyer: User, listing_id: int) -> Conversation:
    """The buyer's conversation about this listing, created the first time. Two devices at
    once get the same one: the unique (listing, buyer) index settles the race."""
    check_not_banned(buyer)
    listing = Listing.objects.select_related("seller").filter(pk=listing_id).first()
    if listing is None or (listing.status in UNPUBLISHED and listing.seller_id != buyer.pk):
        raise NotFound("No such listing.", code="listing_not_found")
    if listing.seller_id == buyer.pk:
        raise Conflict("You cannot start a conversation about your own listing.",
                       code="own_listing")
    existing = Conversation.objects.filter(listing=listing, buyer=buyer).first()
    if existing is not None:
        return existing
    if listing.seller.is_banned or listing.status not in (
        ListingStatus.ON_SALE,
        ListingStatus.RESERVED,
    ):
        raise Conflict("This listing is not on sale.", code="listing_not_on_sale")
    check_not_blocked(buyer.pk, listing.seller_id)
    check_new_conversation_rate(user=buyer)
    try:
        with transaction.atomic(durable=True):
            return Conversation.objects.create(
                listing=listing, buyer=buyer, seller_id=listing.seller_id
            )
    except IntegrityError:
        return Conversation.objects.get(listing=listing, buyer=buyer)


# --- reading ------------------------------------------------------------------------------------


@retry_on_deadlock
def mark_read(*, user: User, conversation_id: int, up_to: int) -> Conversation:
    """Reads up to message `up_to` (beyond the last one means the last one); unread drops
    exactly: what remains unread is counted from the messages after `up_to` only."""
    with transaction.atomic(durable=True):
        conversation = access_conversation(user=user, conversation_id=conversation_id, lock=True)
        side = conversation.side(user.pk)
        up_to = min(up_to, conversation.last_message_id or 0)
        if up_to <= getattr(conversation, f"{side}_read_up_to"):
            return conversation
        remaining = (
            Message.objects.filter(conversation=conversation, pk__gt=up_to)
            .exclude(sender_id=user.pk)
            .count()
        )
        dropped = getattr(conversation, f"{side}_unread") - remaining
        setattr(conversation, f"{side}_read_up_to", up_to)
        setattr(conversation, f"{side}_unread", remaining)
        setattr(conversation, f"{side}_noticed", False)
        conversation.save(
            update_fields=[f"{side}_read_up_to", f"{side}_unread", f"{side}_noticed"]
        )
        if dropped:
            _bump_inboxes({user.pk: -dropped})
        emit(
            user_ids=[conversation.buyer_id, conversation.seller_id],
            type="message.read",
            data={
                "conversation_id": conversation.pk,
                "user_id": user.pk,
                "up_to": up_to,
                "unread_count": remaining,
            },
            notify=False,
        )
    return conversation


# --- the bargain in the thread (called by negotiation/actions.py inside its transaction) -------

def _offer_entry(conversation: Conversation, move: "OfferMove") -> Entry:
    offer, action = move.offer, move.action
    Action = OfferHistory.Action
    if action == Action.MADE:
        kind, said = MessageKind.OFFER, server_entries.notice("offer_made", price=move.price_fen)
    elif action == Action.COUNTERED:
        kind, said = MessageKind.OFFER, server_entries.notice("offer_countered", price=move.price_fen)
    elif action == Action.ACCEPTED:
        kind, said = MessageKind.SYSTEM, server_entries.notice("offer_accepted", price=move.price_fen)
    elif action == Action.DECLINED:
        kind, said = MessageKind.SYSTEM, server_entries.notice("offer_declined", reason=move.reason)
    elif action == Action.WITHDRAWN:
        kind, said = MessageKind.SYSTEM, server_entries.notice("offer_withdrawn")
    elif action == Action.EXPIRED:
        kind, said = MessageKind.SYSTEM, server_entries.notice("offer_expired")
    else:
        kind, said = MessageKind.SYSTEM, server_entries.notice("offer_updated")
    return _notice_entry(conversation, kind, said, sender_id=move.actor_user_id, offer=offer)


def _notice_entry(
    conversation: Conversation,
    kind: str,
    said: dict,
    *,
    sender_id: int | None = None,
    offer: Offer | None = None,
) -> Entry:
    """A server entry: its notice, and its text in the default language (negotiation/server_entries.py)."""
    return Entry(
        conversation=conversation,
        kind=kind,
        sender_id=sender_id,
        text=server_entries.render_stored(said),
        notice=said,
        offer=offer,
    )


@dataclass
class OfferMove:
    offer: Offer
    action: str
    actor_user_id: int | None
    price_fen: int | None = None
    reason: str = ""


_THREAD_FIELDS = [field for field in Conversation._meta.concrete_fields if not field.primary_key]
_LOCK_THREAD_SQL = (  # noqa: S608 - the model's own column names and placeholders
    "INSERT INTO negotiation_conversation ({columns}) VALUES ({values})"
    " ON CONFLICT (listing_id, buyer_id) DO UPDATE SET listing_id = excluded.listing_id"
    " RETURNING id, {columns}"
).format(
    columns=", ".join(field.column for field in _THREAD_FIELDS),
    values=", ".join(
        "EXISTS (SELECT 1 FROM negotiation_user_block WHERE (blocker_id = %s AND blocked_id = %s)"
        " OR (blocker_id = %s AND blocked_id = %s))"
        if field.name == "is_blocked"
        else "%s"
        for field in _THREAD_FIELDS
    ),
)
_THREAD_ATTNAMES = ["id"] + [field.attname for field in _THREAD_FIELDS]


def lock_thread(*, listing_id: int, buyer_id: int, seller_id: int) -> Conversation:
    """The buyer's conversation on the listing, created if missing (knowing whether the two
    have blocked each other), locked by the upsert itself: one round trip on PostgreSQL."""
    now = timezone.now()
    given = {"listing_id": listing_id, "buyer_id": buyer_id, "seller_id": seller_id,
             "created_at": now, "updated_at": now}
    params: list = []
    for field in _THREAD_FIELDS:
        if field.name == "is_blocked":
            params += [buyer_id, seller_id, seller_id, buyer_id]
        elif field.attname in given:
            params.append(given[field.attname])
        else:
            params.append(field.get_default())
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_THREAD_SQL, params)
        row = cursor.fetchone()
    if connection.vendor != "postgresql":
        # SQLite hands back raw column values; the database is locked whole anyway.
        return Conversation.objects.get(pk=row[0])
    return Conversation.from_db(connection.alias, _THREAD_ATTNAMES, list(row))


_CONVERSATION_ATTNAMES = [field.attname for field in _CONVERSATION_FIELDS]
_LOCK_THREADS_SQL = (  # noqa: S608 - the model's own column names
    "SELECT {columns} FROM negotiation_conversation c WHERE c.listing_id = %s"
    " ORDER BY c.id FOR UPDATE OF c"
).format(columns=", ".join(f"c.{field.column}" for field in _CONVERSATION_FIELDS))


def lock_threads(*, listing_id: int) -> dict[int, Conversation]:
    """Locks every conversation on the listing, in id order: {buyer id: conversation}. A move
    that then writes to several of them (an acceptance, a purchase) holds them all before any
    inbox row, so it cannot deadlock with a send in one of them. Hand-written on PostgreSQL
    (an acceptance's hot path)."""
    if connection.vendor != "postgresql":
        locked = (
            Conversation.objects.filter(listing_id=listing_id)
            .select_for_update(of=("self",))
            .order_by("pk")
        )
        return {row.buyer_id: row for row in locked}
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_THREADS_SQL, [listing_id])
        threads = [
            Conversation.from_db(connection.alias, _CONVERSATION_ATTNAMES, list(row))
            for row in cursor.fetchall()
        ]
    return {row.buyer_id: row for row in threads}


def thread_of_offer(offer: Offer) -> Conversation:
    """The offer's conversation, locked: the one the action locked already (`offer._thread`,
    set by `lock_threads` callers and by the offer's creation), else locked (or opened) now."""
    thread = getattr(offer, "_thread", None)
    if thread is None:
        thread = lock_thread(
            listing_id=offer.listing_id, buyer_id=offer.buyer_id, seller_id=offer.seller_id
        )
        offer._thread = thread
    return thread


def attach_threads(offers: Iterable[Offer], threads: dict[int, Conversation]) -> None:
    for offer in offers:
        if offer.buyer_id in threads:
            offer._thread = threads[offer.buyer_id]


def record_offer_moves(
    moves: Sequence[OfferMove], history: Sequence[OfferHistory] = ()
) -> list[Message]:
    """The offer moves as messages in their conversations (opened for a first offer), in this
    transaction, written with `history` (the moves' offer history rows); the offers' listing is
    locked by the caller. Every conversation is locked before anything is written."""
    entries = [_offer_entry(thread_of_offer(move.offer), move) for move in moves]
    return _post(entries, history)


def close_other_threads(
    *, listing: Listing, winner_id: int, threads: dict[int, Conversation]
) -> list[Message]:
    """The listing went to `winner_id`: every other buyer's thread on it gets a system message
    and becomes read-only; the winner's stays open for questions about the order. The caller
    holds the listing lock and `threads` (lock_threads)."""
    closing = [
        thread
        for buyer_id, thread in threads.items()
        if buyer_id != winner_id and not thread.is_read_only
    ]
    if not closing:
        return []
    for thread in closing:
        thread.is_read_only = True  # written with the counters, by _post
    return _post(
        [
            _notice_entry(thread, MessageKind.SYSTEM, server_entries.notice("thread_closed"))
            for thread in closing
        ]
    )


def reopen_threads(*, listing_id: int) -> None:
    """The order fell through and the listing is on sale again: the closed threads reopen."""
    Conversation.objects.filter(listing_id=listing_id, is_read_only=True).update(
        is_read_only=False
    )


def check_offer_allowed(*, listing: Listing, buyer_id: int) -> Conversation:
    """Opens (or locks) the buyer's thread for the offer being made and refuses the offer when
    either has blocked the other: 409 `blocked`, not saying who blocked whom."""
    thread = lock_thread(listing_id=listing.pk, buyer_id=buyer_id, seller_id=listing.seller_id)
    if thread.is_blocked:
        raise _blocked()
    return thread


# --- block and report ---------------------------------------------------------------------------


def block_user(*, user: User, blocked_id: int) -> None:
    if blocked_id == user.pk:
        raise InvalidInput("You cannot block yourself.", code="cannot_block_self")
    if not User.objects.filter(pk=blocked_id, is_active=True).exists():
        raise NotFound("No such user.", code="user_not_found")
    with transaction.atomic(durable=True):
        UserBlock.objects.bulk_create(
            [UserBlock(blocker=user, blocked_id=blocked_id)], ignore_conflicts=True
        )
        _set_blocked(user.pk, blocked_id, True)


def blocked_users(*, user: User):
    return (
        UserBlock.objects.filter(blocker=user).select_related("blocked").order_by("-created_at", "-id")
    )


def unblock_user(*, user: User, blocked_id: int) -> None:
    with transaction.atomic(durable=True):
        UserBlock.objects.filter(blocker=user, blocked_id=blocked_id).delete()
        still = blocked_between(user.pk, blocked_id)
        _set_blocked(user.pk, blocked_id, still)


def _set_blocked(a_id: int, b_id: int, value: bool) -> None:
    # Row by row in id order, as every writer locks conversations.
    pair = Q(buyer_id=a_id, seller_id=b_id) | Q(buyer_id=b_id, seller_id=a_id)
    ids = list(
        Conversation.objects.filter(pair).select_for_update().order_by("pk").values_list(
            "pk", flat=True
        )
    )
    if ids:
        Conversation.objects.filter(pk__in=ids).update(is_blocked=value)


def file_report(
    *, reporter: User, target_type: str, target_id: int, reason: str, detail: str = ""
) -> Report:
    """A report on a message (one the reporter can read), a user or a listing."""
    check_not_banned(reporter)
    if reason not in Report.Reason.values:
        raise InvalidInput("reason is fake, prohibited, fraud, abuse or other.",
                           code="invalid_reason")
    report = Report(
        reporter=reporter, target_type=target_type, reason=reason, detail=(detail or "").strip()
    )
    if target_type == Report.Target.MESSAGE:
        message = Message.objects.select_related("conversation").filter(pk=target_id).first()
        if message is None or reporter.pk not in (
            message.conversation.buyer_id,
            message.conversation.seller_id,
        ):
            raise NotFound("No such message.", code="message_not_found")
        report.message, report.conversation = message, message.conversation
        report.user_id = message.sender_id
    elif target_type == Report.Target.USER:
        if not User.objects.filter(pk=target_id).exists() or target_id == reporter.pk:
            raise NotFound("No such user.", code="user_not_found")
        report.user_id = target_id
    elif target_type == Report.Target.LISTING:
        listing = Listing.objects.filter(pk=target_id).first()
        if listing is None or listing.status in UNPUBLISHED:
            raise NotFound("No such listing.", code="listing_not_found")
        report.listing, report.user_id = listing, listing.seller_id
    else:
        raise InvalidInput("target_type is message, user or listing.", code="invalid_target")
    with transaction.atomic(durable=True):
        report.save()
    return report


# --- offline ------------------------------------------------------------------------------------


def send_conversation_notice(*, conversation_id: int, user_id: int) -> str:
    """The subscribe message for a conversation with unread messages, once until the user reads
    it (`*_noticed`, set by the send that queued this, cleared by a read). Idempotent: a user
    who is online, or has read meanwhile, gets nothing."""
    conversation = (
        Conversation.objects.select_related("listing", "buyer", "seller", "last_message")
        .filter(pk=conversation_id)
        .first()
    )
    if conversation is None or user_id not in (conversation.buyer_id, conversation.seller_id):
        return "gone"
    side = conversation.side(user_id)
    if not getattr(conversation, f"{side}_noticed") or conversation.unread_for(user_id) == 0:
        return "read"
    if presence.is_online(user_id):
        # Seen live; a later message while they are away may notify again.
        Conversation.objects.filter(pk=conversation.pk).update(**{f"{side}_noticed": False})
        return "online"
    user = conversation.buyer if side == "buyer" else conversation.seller
    message = notices.conversation_message(conversation)
    if message is None or not user.openid:
        return "no_template"
    sent = wechat.send_subscribe_message(openid=user.openid, **message)
    return "sent" if sent else "not_granted"


# --- staff ----------------------------------------------------------------------------------------

REPORT_DECISIONS = (
    Report.Status.DISMISSED,
    Report.Status.LISTING_REMOVED,
    Report.Status.USER_BANNED,
)


def decide_report(*, staff: User, report_id: int, decision: str) -> Report:
    """Staff settle an open report: dismiss it, take the listing down, or ban the user; the
    decision is recorded with the staff user. Deciding a decided report is a 409."""
    if decision not in REPORT_DECISIONS:
        raise InvalidInput("Unknown decision.", code="invalid_decision")
    report = Report.objects.filter(pk=report_id).first()
    if report is None:
        raise NotFound("No such report.", code="report_not_found")
    if report.status != Report.Status.OPEN:
        raise Conflict("This report is decided already.", code="report_decided")
    if decision == Report.Status.USER_BANNED:
        if report.user_id is None:
            raise Conflict("This report names no user.", code="no_user")
        # Its own transaction (tokens revoked, sockets closed after commit).
        ban_user(user=User.objects.get(pk=report.user_id), reason=f"report #{report.pk}")
    with transaction.atomic(durable=True):
        report = Report.objects.select_for_update().get(pk=report_id)
        if report.status != Report.Status.OPEN:
            raise Conflict("This report is decided already.", code="report_decided")
        if decision == Report.Status.LISTING_REMOVED:
            listing_id = report.listing_id or (
                report.conversation.listing_id if report.conversation is not None else None
            )
            if listing_id is None:
                raise Conflict("This report names no listing.", code="no_listing")
            listing = Listing.objects.select_for_update().get(pk=listing_id)
            if listing.status != ListingStatus.OFF_SHELF:
                LISTING.move(listing, ListingStatus.OFF_SHELF)
        report.status = decision
        report.decided_by = staff
        report.decided_at = timezone.now()
        report.save(update_fields=["status", "decided_by", "decided_at"])
    logger.info("report %s decided %s by staff %s", report.pk, decision, staff.pk)
    return report


def has_report(conversation_id: int) -> bool:
    return Report.objects.filter(conversation_id=conversation_id).exists()


def record_staff_read(*, staff: User, conversation_id: int) -> None:
    """Every staff read of a reported conversation's messages is recorded."""
    with transaction.atomic():
        ConversationAccess.objects.create(conversation_id=conversation_id, staff_user=staff)


# --- image check (mediaCheckAsync) -----------------------------------------------------------------


def request_media_check(*, message_id: int) -> str:
    """Asks WeChat to check a message's image; the verdict arrives by message push
    (`apply_media_verdict`). Idempotent: a message with a trace id is not asked again."""
    message = (
        Message.objects.select_related("image", "sender")
        .filter(pk=message_id, kind=MessageKind.IMAGE)
        .first()
    )
    if message is None or message.image is None or message.media_trace_id:
        return "skipped"
    # The image is private: WeChat fetches it through a link signed for its sender.
    assert message.sender is not None  # users send images, the server never does
    media = private_url(message.image.file, reader_id=message.sender.pk, ttl=MEDIA_CHECK_LINK_TTL)
    trace_id = wechat.media_check_async(
        openid=message.sender.openid or "", media_url=media, scene=CHAT_SCENE
    )
    Message.objects.filter(pk=message.pk, media_trace_id="").update(media_trace_id=trace_id)
    return "requested"


def apply_media_verdict(*, trace_id: str, suggest: str) -> str:
    """A risky image is hidden for both sides and flagged for staff; `review` is flagged.
    Idempotent: a second push of the same verdict changes nothing."""
    if suggest not in ("risky", "review"):
        return "pass"
    with transaction.atomic(durable=True):
        message = Message.objects.filter(media_trace_id=trace_id).first()
        if message is None:
            return "unknown"
        conversation = Conversation.objects.select_for_update().get(pk=message.conversation_id)
        message = Message.objects.select_for_update().get(pk=message.pk)
        hide = suggest == "risky"
        if message.is_flagged and (message.is_hidden or not hide):
            return "already"
        newly_flagged = not message.is_flagged
        message.is_flagged = True
        message.is_hidden = message.is_hidden or hide
        message.save(update_fields=["is_flagged", "is_hidden"])
        if newly_flagged:
            Conversation.objects.filter(pk=conversation.pk).update(
                flagged_count=conversation.flagged_count + 1
            )
    logger.info("image message %s: %s", message.pk, suggest)
    return "hidden" if hide else "flagged"
