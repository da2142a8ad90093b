"""Reads of offers, with what the representation needs already joined."""

import datetime as dt
from typing import Any

from django.db import models
from django.db.models import Q, QuerySet

from marketplace.models import Order, User
from marketplace.pagination import MAX_LIMIT, Page, decode_cursor, encode_cursor
from marketplace.representations import media_url, order_data
from negotiation.models import CHAT_IMAGES, Conversation, Message, MessageInbox, Offer, Report
from negotiation.representations import offer_data
from negotiation.states import LIVE_STATUSES


def offers_of(
    *, user: User, role: str | None = None, status: str | None = None, listing_id: int | None = None
) -> QuerySet[Offer]:
    """The user's offers as buyer, as seller, or both (role None)."""
    if role == "buyer":
        queryset = Offer.objects.filter(buyer=user)
    elif role == "seller":
        queryset = Offer.objects.filter(seller=user)
    else:
        queryset = Offer.objects.filter(Q(buyer=user) | Q(seller=user))
    if status:
        queryset = queryset.filter(status=status)
    if listing_id is not None:
        queryset = queryset.filter(listing_id=listing_id)
    return queryset.select_related("order")


CONVERSATION_JOINS = (
    "listing__seller",
    "buyer",
    "seller",
    "last_message__offer__order",
    "last_message__image",
)


def conversations_of(*, user: User, unread: bool = False) -> QuerySet[Conversation]:
    """The user's conversations on either side, joined for `conversation_data`."""
    if unread:
        mine = Q(buyer=user, buyer_unread__gt=0) | Q(seller=user, seller_unread__gt=0)
    else:
        mine = Q(buyer=user) | Q(seller=user)
    return Conversation.objects.filter(mine).select_related(*CONVERSATION_JOINS)


def conversation_of(*, user: User, conversation_id: int) -> Conversation | None:
    return (
        Conversation.objects.filter(Q(buyer=user) | Q(seller=user), pk=conversation_id)
        .select_related(*CONVERSATION_JOINS)
        .first()
    )


def messages_before(
    *, conversation: Conversation, before: int | None, limit: int
) -> list[Message]:
    """Newest first, `limit` messages older than `before`: one index range on
    (conversation, -id), the same cost on page one and page one thousand."""
    queryset = Message.objects.filter(conversation=conversation)
    if before is not None:
        queryset = queryset.filter(pk__lt=before)
    return list(
        queryset.select_related("offer__order", "image").order_by("-id")[:limit]
    )


def message_in(*, conversation: Conversation, message_id: int) -> Message | None:
    return (
        Message.objects.filter(conversation=conversation, pk=message_id)
        .select_related("offer__order", "image")
        .first()
    )


def may_read_chat_image(*, name: str, reader: User) -> bool:
    """Checked when a chat image's private link is used (marketplace/api/media.py): the two
    users of its conversation while it is not hidden; staff while the conversation has a report
    (the only time staff see its messages). The folder names the upload, so the message is
    found by its indexed `image` key."""
    folder, _, upload_id = name.rpartition("/")[0].partition("/")
    if folder != CHAT_IMAGES or not upload_id.isdigit():
        return False
    message = (
        Message.objects.filter(image_id=int(upload_id))
        .select_related("conversation", "image")
        .first()
    )
    if message is None or message.image is None:
        return False
    if name not in (message.image.file, message.image.thumbnail):
        return False
    conversation = message.conversation
    if reader.pk in (conversation.buyer_id, conversation.seller_id) and not message.is_hidden:
        return True
    return reader.is_staff and Report.objects.filter(conversation_id=conversation.pk).exists()


def unread_message_count(user: User) -> int:
    """The user's unread messages over every conversation (the tab badge): one primary-key
    read of the counter the sends and reads keep exact."""
    value = MessageInbox.objects.filter(user_id=user.pk).values_list("unread", flat=True).first()
    return int(value or 0)


# --- my trades: the buyer's live offers and orders in one list --------------------------------

TRADES_CURSOR_TAG = "trades:-created_at,-kind,-id"
# Ties on created_at are broken by kind, then id: the order is total across the two tables.
KIND_RANK = {"offer": 0, "order": 1}
_CURSOR_FIELDS: "list[models.Field[Any, Any]]" = [
    models.DateTimeField(),
    models.CharField(),
    models.BigIntegerField(),
]


def _after_trade(kind: str, cursor: list[Any] | None) -> Q:
    """The rows of `kind` strictly after the cursor in (created_at, kind, id) descending."""
    if cursor is None:
        return Q()
    at, cursor_kind, cursor_id = cursor
    if cursor_kind not in KIND_RANK:
        return Q(pk__in=[])
    if KIND_RANK[kind] < KIND_RANK[cursor_kind]:
        return Q(created_at__lte=at)
    if KIND_RANK[kind] > KIND_RANK[cursor_kind]:
        return Q(created_at__lt=at)
    return Q(created_at__lt=at) | Q(created_at=at, pk__lt=cursor_id)


def trades_of(*, buyer: User, limit: int = 20, cursor: str | None = None) -> Page:
    """The buyer's live offers (open, countered: a bargain waiting for an answer) and orders, in
    one list newest first: the client need not merge two paginated lists. An accepted offer shows
    as its order. Two keyset queries of `limit + 1` rows each, merged."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    after = decode_cursor(cursor, TRADES_CURSOR_TAG, _CURSOR_FIELDS) if cursor else None
    offers = list(
        Offer.objects.filter(buyer=buyer, status__in=LIVE_STATUSES)
        .filter(_after_trade("offer", after))
        .select_related("order", "listing")
        .order_by("-created_at", "-id")[: limit + 1]
    )
    orders = list(
        Order.objects.filter(buyer=buyer)
        .filter(_after_trade("order", after))
        .select_related("refund")
        .order_by("-created_at", "-id")[: limit + 1]
    )
    rows: list[tuple[dt.datetime, int, int, str, Any]] = [
        (offer.created_at, KIND_RANK["offer"], offer.pk, "offer", offer) for offer in offers
    ] + [(order.created_at, KIND_RANK["order"], order.pk, "order", order) for order in orders]
    rows.sort(key=lambda row: (row[0], row[1], row[2]), reverse=True)
    page, has_more = rows[:limit], len(rows) > limit
    next_cursor = None
    if has_more and page:
        at, _, pk, kind, _ = page[-1]
        next_cursor = encode_cursor(TRADES_CURSOR_TAG, [at, kind, pk])
    return Page(items=[_trade(kind, row) for _, _, _, kind, row in page], next_cursor=next_cursor)


def _trade(kind: str, row: Any) -> dict[str, Any]:
    if kind == "offer":
        listing = row.listing
        return {
            "kind": "offer",
            "at": row.created_at,
            "offer": {
                **offer_data(row),
                "listing": {
                    "id": listing.pk,
                    "title": listing.title,
                    "cover_url": media_url(listing.cover),
                    "price": listing.price_fen,
                    "shipping_fee": listing.shipping_fee_fen,
                },
            },
            "order": None,
        }
    return {"kind": "order", "at": row.created_at, "offer": None,
            "order": order_data(row, with_history=False)}  # fmt: skip
