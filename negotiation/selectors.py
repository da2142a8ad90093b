"""Reads of offers, with what the representation needs already joined."""

from django.db.models import Q, QuerySet

from marketplace.models import User
from negotiation.models import Conversation, Message, MessageInbox, Offer


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


def unread_message_count(user: User) -> int:
    """The user's unread messages over every conversation (the tab badge): one primary-key
    read of the counter the sends and reads keep exact."""
    value = MessageInbox.objects.filter(user_id=user.pk).values_list("unread", flat=True).first()
    return int(value or 0)
