"""An offer as the REST API shows it; the realtime events carry the same dict (API.md). Times
stay datetimes: the schema and the event encoder write them (project/wire.py)."""

from typing import Any

from marketplace.media import private_url
from marketplace.models import User
from marketplace.representations import listing_summary_data
from negotiation import server_entries
from negotiation.models import Conversation, Message, Offer


def offer_data(offer: Offer) -> dict[str, Any]:
    return {
        "id": offer.pk,
        "listing_id": offer.listing_id,
        "buyer_id": offer.buyer_id,
        "seller_id": offer.seller_id,
        "price": offer.price_fen,
        "counter_price": offer.counter_price_fen,
        "status": offer.status,
        "expires_at": offer.expires_at,
        # The caller loaded the order with the offer (select_related) or just created it.
        "order_no": offer.order.order_no if offer.order is not None else None,
        "decline_reason": offer.decline_reason or None,
        "created_at": offer.created_at,
    }


def message_data(message: Message, *, reader_id: int | None = None) -> dict[str, Any]:
    """A message as the REST API shows it to `reader_id` (one of the conversation's two users:
    the caller checked), with a fresh private link to its image for that reader. Without a
    reader (`message.created` and its replay) `image` says an image is there and `image_url` is
    null: no event or stored copy holds an expiring link. A hidden (risky) image shows to
    neither side. A server entry (an offer move, the listing sold) reads in the reader's
    language; without a reader it is the stored default-language text (negotiation/server_entries.py)."""
    hidden = message.is_hidden
    image = message.image if message.image_id and not hidden else None
    return {
        "id": message.pk,
        "conversation_id": message.conversation_id,
        "sender_id": message.sender_id,
        "kind": message.kind,
        "text": "" if hidden else _text(message, reader_id),
        "image": {"width": image.width, "height": image.height} if image is not None else None,
        "image_url": (
            private_url(image.file, reader_id=reader_id)
            if image is not None and reader_id is not None
            else None
        ),
        "is_hidden": hidden,
        "offer": offer_data(message.offer) if message.offer is not None else None,
        "client_id": message.client_id or None,
        "created_at": message.created_at,
    }


def _text(message: Message, reader_id: int | None) -> str:
    if message.notice is not None and reader_id is not None:
        return server_entries.render(message.notice)
    return message.text


def _person(user: User) -> dict[str, Any]:
    return {"id": user.pk, "nickname": user.nickname, "avatar_url": user.avatar_url}


def conversation_data(conversation: Conversation, *, viewer_id: int) -> dict[str, Any]:
    """The conversation as its `viewer` sees it (their own unread count). The caller joined the
    listing and its seller, both users and the last message (selectors.conversations_of)."""
    last = conversation.last_message
    return {
        "id": conversation.pk,
        "listing": listing_summary_data(listing=conversation.listing),
        "buyer": _person(conversation.buyer),
        "seller": _person(conversation.seller),
        "last_message": message_data(last, reader_id=viewer_id) if last is not None else None,
        "unread_count": conversation.unread_for(viewer_id),
        "is_read_only": conversation.is_read_only,
        "updated_at": conversation.updated_at,
    }
