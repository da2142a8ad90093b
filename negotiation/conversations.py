"""Conversations (SPEC §4a): every write on conversations and messages. REST and socket
handlers call these; the offer actions call `record_offer_moves` inside their transactions so
the thread and the offer can never disagree.

Lock order (extends negotiation/actions.py): the listing, offers, then the conversation rows
(a transaction writing to several locks them all first, in id order: `lock_threads`), then the
unread inboxes (one statement, by user id), then the realtime counters (emit). A send locks one
conversation, one inbox and two event counters in that order, so it cannot deadlock with an
acceptance that closes every thread on the listing.
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from marketplace.actions.accounts import check_not_banned
from marketplace.errors import Conflict, DomainError, InvalidInput, NotFound, RateLimited
from marketplace.gateways import wechat
from marketplace.models import Listing, ListingStatus, User
from marketplace.models.catalog import ImageUpload
from negotiation.models import (
    Conversation,
    Message,
    MessageKind,
    Offer,
    OfferHistory,
    Report,
    UserBlock,
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


class RiskyMessage(DomainError):
    status = 422
    code = "content_risky"
    message = "消息内容不符合平台规范，未发送。"


# --- checks ------------------------------------------------------------------------------------


def blocked_between(a_id: int, b_id: int) -> bool:
    return UserBlock.objects.filter(
        Q(blocker_id=a_id, blocked_id=b_id) | Q(blocker_id=b_id, blocked_id=a_id)
    ).exists()


def _blocked() -> Conflict:
    # Never says who blocked whom.
    return Conflict("你们之间无法互发消息或出价。", code="blocked")


def check_not_blocked(a_id: int, b_id: int) -> None:
    if blocked_between(a_id, b_id):
        raise _blocked()


def check_message_rate(*, user: User) -> None:
    limit = int(getattr(settings, "MESSAGE_RATE_PER_MINUTE", 30))
    if not hit(f"message:user:{user.pk}", limit=limit, period=60).allowed:
        raise RateLimited(f"每分钟最多发送 {limit} 条消息，请稍后再试。", code="rate_limited")


def check_new_conversation_rate(*, user: User) -> None:
    limit = int(getattr(settings, "NEW_CONVERSATIONS_PER_DAY", 50))
    if not hit(f"conversation:new:{user.pk}", limit=limit, period=86400).allowed:
        raise RateLimited(f"每天最多发起 {limit} 个新会话。", code="rate_limited")


def clean_text(text: str | None) -> str:
    cleaned = (text or "").strip()
    if not cleaned:
        raise InvalidInput("消息不能为空。", code="empty_message")
    if len(cleaned) > MAX_TEXT:
        raise InvalidInput(f"消息最多 {MAX_TEXT} 个字。", code="message_too_long")
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
    image: ImageUpload | None = None
    offer: Offer | None = None
    client_id: str = ""
    is_flagged: bool = False


def _post(entries: Sequence[Entry]) -> list[Message]:
    """Writes the entries (their conversations locked by the caller): the messages, each
    conversation's counters, the inboxes in one statement, and one `message.created` per
    message to both users."""
    if not entries:
        return []
    messages = []
    for entry in entries:
        # One by one: the ids are the server order, and a conversation's are taken under its
        # lock, so they increase in the order the messages were written.
        messages.append(
            Message.objects.create(
                conversation=entry.conversation,
                sender_id=entry.sender_id,
                kind=entry.kind,
                text=entry.text,
                image=entry.image,
                offer=entry.offer,
                client_id=entry.client_id,
                is_flagged=entry.is_flagged,
            )
        )
    deltas: dict[int, int] = {}
    touched: dict[int, tuple[Conversation, set[str]]] = {}
    for entry, message in zip(entries, messages, strict=True):
        conversation = entry.conversation
        _, fields = touched.setdefault(conversation.pk, (conversation, set()))
        for side, user_id in (("buyer", conversation.buyer_id), ("seller", conversation.seller_id)):
            if user_id == entry.sender_id:
                continue
            setattr(conversation, f"{side}_unread", getattr(conversation, f"{side}_unread") + 1)
            deltas[user_id] = deltas.get(user_id, 0) + 1
            fields.add(f"{side}_unread")
            if not getattr(conversation, f"{side}_noticed"):
                setattr(conversation, f"{side}_noticed", True)
                fields.add(f"{side}_noticed")
                enqueue_on_commit(
                    "negotiation.tasks.conversation_notice_task", conversation.pk, user_id
                )
        conversation.last_message = message
        conversation.updated_at = message.created_at
        conversation.message_count += 1
        conversation.flagged_count += int(entry.is_flagged)
        fields |= {"last_message", "updated_at", "message_count", "flagged_count"}
    for conversation, fields in touched.values():
        conversation.save(update_fields=sorted(fields))
    _bump_inboxes(deltas)
    for entry, message in zip(entries, messages, strict=True):
        conversation = entry.conversation
        # Not the generic offline fallback: the conversation's own notice (one until read).
        emit(
            user_ids=[conversation.buyer_id, conversation.seller_id],
            type="message.created",
            data=message_data(message),
            notify=False,
        )
    return messages


def _by_client_id(conversation_id: int, sender_id: int, client_id: str) -> Message | None:
    return (
        Message.objects.select_related("offer__order", "image")
        .filter(conversation_id=conversation_id, sender_id=sender_id, client_id=client_id)
        .first()
    )


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
    conversation = access_conversation(user=sender, conversation_id=conversation_id)
    first = _by_client_id(conversation.pk, sender.pk, client_id)
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
    if kind == MessageKind.TEXT:
        # Outside the transaction: no lock is held while WeChat answers.
        flagged = check_text(sender=sender, text=body)
    try:
        return _send_locked(
            sender=sender,
            conversation_id=conversation.pk,
            kind=kind,
            body=body,
            image_id=image_id,
            client_id=client_id,
            flagged=flagged,
        )
    except IntegrityError:
        first = _by_client_id(conversation.pk, sender.pk, client_id)
        if first is None:
            raise
        return Sent(first, False)


@retry_on_deadlock
def _send_locked(
    *,
    sender: User,
    conversation_id: int,
    kind: str,
    body: str,
    image_id: int | None,
    client_id: str,
    flagged: bool,
) -> Sent:
    with transaction.atomic(durable=True):
        conversation = access_conversation(user=sender, conversation_id=conversation_id, lock=True)
        first = _by_client_id(conversation.pk, sender.pk, client_id)
        if first is not None:
            return Sent(first, False)
        if conversation.is_blocked:
            raise _blocked()
        if conversation.is_read_only:
            raise Conflict("商品已售出，此会话只能查看。", code="conversation_read_only")
        other = conversation.seller if sender.pk == conversation.buyer_id else conversation.buyer
        if other.is_banned:
            raise Conflict("对方账号已被限制，无法接收消息。", code="recipient_unavailable")
        image = None
        if kind == MessageKind.IMAGE:
            image = _take_image(owner=sender, image_id=image_id)
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
    return Sent(message, True)


def _take_image(*, owner: User, image_id: int | None) -> ImageUpload:
    """The sender's own upload, used once (consumed), never one attached to a listing."""
    upload = (
        ImageUpload.objects.select_for_update()
        .filter(pk=image_id, owner=owner, listing__isnull=True, consumed_at__isnull=True)
        .first()
    )
    if upload is None:
        raise NotFound("No such image (upload it first; each upload is sent once).",
                       code="image_not_found")
    upload.consumed_at = timezone.now()
    upload.save(update_fields=["consumed_at"])
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

_PRICE = "¥{:.2f}"


def _price(fen: int | None) -> str:
    return _PRICE.format((fen or 0) / 100)


_DECLINE_TEXTS = {
    "seller_declined": "卖家拒绝了出价",
    "buyer_declined": "买家拒绝了还价",
    "below_floor": "出价低于卖家底价，已自动拒绝",
    "listing_sold": "商品已被买走，出价已失效",
    "price_changed": "卖家已降价，出价已失效",
}


def _offer_entry(conversation: Conversation, move: "OfferMove") -> Entry:
    offer, action = move.offer, move.action
    Action = OfferHistory.Action
    if action == Action.MADE:
        kind, text = MessageKind.OFFER, f"出价 {_price(move.price_fen)}"
    elif action == Action.COUNTERED:
        kind, text = MessageKind.OFFER, f"卖家还价 {_price(move.price_fen)}"
    elif action == Action.ACCEPTED:
        kind, text = MessageKind.SYSTEM, f"已按 {_price(move.price_fen)} 成交，订单已生成"
    elif action == Action.DECLINED:
        kind, text = MessageKind.SYSTEM, _DECLINE_TEXTS.get(move.reason, "出价已被拒绝")
    elif action == Action.WITHDRAWN:
        kind, text = MessageKind.SYSTEM, "买家撤回了出价"
    elif action == Action.EXPIRED:
        kind, text = MessageKind.SYSTEM, "出价已过期"
    else:
        kind, text = MessageKind.SYSTEM, "出价状态已更新"
    return Entry(
        conversation=conversation, kind=kind, sender_id=move.actor_user_id, text=text, offer=offer
    )


@dataclass
class OfferMove:
    offer: Offer
    action: str
    actor_user_id: int | None
    price_fen: int | None = None
    reason: str = ""


def lock_threads(*, listing_id: int, buyer_ids: Iterable[int] = ()) -> dict:
    """Creates the missing conversations of these buyers on the listing, then locks every
    conversation on it, in id order: {buyer id: conversation}. All of them, always: a move that
    then closes or writes to the others (an acceptance) holds them before any inbox row, so it
    cannot deadlock with a send in one of them."""
    wanted = sorted(set(buyer_ids))
    if wanted:
        seller_id = Listing.objects.filter(pk=listing_id).values_list("seller_id", flat=True)[0]
        Conversation.objects.bulk_create(
            [
                Conversation(listing_id=listing_id, buyer_id=buyer_id, seller_id=seller_id)
                for buyer_id in wanted
            ],
            ignore_conflicts=True,
        )
    rows = (
        Conversation.objects.filter(listing_id=listing_id)
        .select_for_update(of=("self",))
        .order_by("pk")
    )
    return {row.buyer_id: row for row in rows}


def record_offer_moves(moves: Sequence[OfferMove]) -> list[Message]:
    """The offer moves as messages in their conversations (opened for a first offer), in this
    transaction. The offers' listing is locked by the caller."""
    if not moves:
        return []
    by_listing: dict[int, list[OfferMove]] = {}
    for move in moves:
        by_listing.setdefault(move.offer.listing_id, []).append(move)
    entries = []
    for listing_id, group in by_listing.items():
        threads = lock_threads(
            listing_id=listing_id, buyer_ids=[move.offer.buyer_id for move in group]
        )
        entries += [_offer_entry(threads[move.offer.buyer_id], move) for move in group]
    return _post(entries)


def close_other_threads(*, listing: Listing, winner_id: int) -> list[Message]:
    """The listing went to `winner_id`: every other buyer's thread on it gets a system message
    and becomes read-only; the winner's stays open for questions about the order. The caller
    holds the listing lock."""
    threads = lock_threads(listing_id=listing.pk)
    closing = [
        thread
        for buyer_id, thread in threads.items()
        if buyer_id != winner_id and not thread.is_read_only
    ]
    for thread in closing:
        thread.is_read_only = True
    Conversation.objects.filter(pk__in=[thread.pk for thread in closing]).update(
        is_read_only=True
    )
    return _post(
        [
            Entry(conversation=thread, kind=MessageKind.SYSTEM, sender_id=None,
                  text="商品已售出，此会话已关闭")
            for thread in closing
        ]
    )


def reopen_threads(*, listing_id: int) -> None:
    """The order fell through and the listing is on sale again: the closed threads reopen."""
    Conversation.objects.filter(listing_id=listing_id, is_read_only=True).update(
        is_read_only=False
    )


def check_offer_allowed(*, buyer_id: int, seller_id: int) -> None:
    """A blocked buyer makes no offers on the blocker's listings (nor may a blocker bargain
    with the user they blocked): 409 `blocked`, not saying who blocked whom."""
    check_not_blocked(buyer_id, seller_id)


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
    *, reporter: User, target_type: str, target_id: int, reason: str
) -> Report:
    """A report on a message (one the reporter can read), a user or a listing."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("请填写举报原因。", code="reason_required")
    report = Report(reporter=reporter, target_type=target_type, reason=reason[:200])
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
