"""Bargaining over the socket (API.md "Realtime"): the same schemas and actions as REST.

Frames carry `action` and the client's `id` besides the fields; only the fields are validated,
so the REST schemas (which refuse unknown fields) apply unchanged. Each action declares the
schemas its frame carries and its reply, and the offer events declare their `data`: the
AsyncAPI document (`GET /api/asyncapi.json`) is generated from these declarations.
"""

from pydantic import BaseModel

from marketplace.models import User
from negotiation import actions, conversations
from negotiation.api import AcceptIn, CounterIn, Id, OfferIn, OfferOut
from negotiation.conversations_api import (
    MessageEventOut,
    MessageIn,
    MessageOut,
    MessageReadIn,
    MessageReadOut,
)
from negotiation.representations import message_data, offer_data
from realtime.dispatch import socket_action, socket_event


class OfferRef(BaseModel):
    offer_id: Id


class ListingRef(BaseModel):
    listing_id: Id


def _fields(frame: dict, *names: str) -> dict:
    return {name: frame[name] for name in names if name in frame}


def _offer_id(frame: dict) -> int:
    return OfferRef.model_validate(_fields(frame, "offer_id")).offer_id


@socket_action("offer.make", payload=[ListingRef, OfferIn], reply=OfferOut)
def make_offer(*, user: User, frame: dict) -> dict:
    """The buyer offers a price for a listing (as POST /api/listings/{id}/offers)."""
    listing_id = ListingRef.model_validate(_fields(frame, "listing_id")).listing_id
    body = OfferIn.model_validate(_fields(frame, "price"))
    return offer_data(actions.make_offer(buyer=user, listing_id=listing_id, price_fen=body.price))


@socket_action("offer.accept", payload=[OfferRef, AcceptIn], reply=OfferOut)
def accept_offer(*, user: User, frame: dict) -> dict:
    """The seller accepts an offer, or the buyer a counter: the order is created."""
    offer_id = _offer_id(frame)
    body = AcceptIn.model_validate(_fields(frame, "address_id"))
    offer = actions.accept_offer(user=user, offer_id=offer_id, address_id=body.address_id)
    return offer_data(offer)


@socket_action("offer.decline", payload=[OfferRef], reply=OfferOut)
def decline_offer(*, user: User, frame: dict) -> dict:
    """The seller declines an offer, or the buyer a counter."""
    return offer_data(actions.decline_offer(user=user, offer_id=_offer_id(frame)))


@socket_action("offer.counter", payload=[OfferRef, CounterIn], reply=OfferOut)
def counter_offer(*, user: User, frame: dict) -> dict:
    """The seller answers an offer with a counter price."""
    offer_id = _offer_id(frame)
    body = CounterIn.model_validate(_fields(frame, "price"))
    return offer_data(actions.counter_offer(seller=user, offer_id=offer_id, price_fen=body.price))


@socket_action("offer.withdraw", payload=[OfferRef], reply=OfferOut)
def withdraw_offer(*, user: User, frame: dict) -> dict:
    """The buyer withdraws their open or countered offer."""
    return offer_data(actions.withdraw_offer(buyer=user, offer_id=_offer_id(frame)))


# Both sides get every offer event; `data` is the offer as GET /api/offers shows it.
for _type, _summary in (
    ("offer.created", "A buyer made an offer (to the seller and the buyer)."),
    ("offer.countered", "The seller countered."),
    ("offer.accepted", "The offer was accepted: `order_no` is the new order."),
    ("offer.declined", "The offer was declined (`decline_reason` says why)."),
    ("offer.withdrawn", "The buyer withdrew the offer."),
    ("offer.expired", "The offer expired unanswered."),
):
    socket_event(_type, OfferOut, summary=_summary)


class ConversationRef(BaseModel):
    conversation_id: Id


def _conversation_id(frame: dict) -> int:
    return ConversationRef.model_validate(_fields(frame, "conversation_id")).conversation_id


@socket_action("message.send", payload=[ConversationRef, MessageIn], reply=MessageOut)
def send_message(*, user: User, frame: dict) -> dict:
    """Send a text or image into a conversation (as POST /api/conversations/{id}/messages)."""
    conversation_id = _conversation_id(frame)
    body = MessageIn.model_validate(_fields(frame, "kind", "text", "image_id", "client_id"))
    sent = conversations.send_message(
        sender=user,
        conversation_id=conversation_id,
        kind=body.kind,
        text=body.text,
        image_id=body.image_id,
        client_id=body.client_id,
    )
    return message_data(sent.message, reader_id=user.pk)  # the ack: the sender's own link


@socket_action("message.read", payload=[ConversationRef, MessageReadIn], reply=MessageReadOut)
def read_messages(*, user: User, frame: dict) -> dict:
    """Mark a conversation read up to a message (as POST /api/conversations/{id}/read)."""
    conversation_id = _conversation_id(frame)
    body = MessageReadIn.model_validate(_fields(frame, "up_to"))
    row = conversations.mark_read(user=user, conversation_id=conversation_id, up_to=body.up_to)
    return {
        "conversation_id": row.pk,
        "user_id": user.pk,
        "up_to": getattr(row, f"{row.side(user.pk)}_read_up_to"),
        "unread_count": row.unread_for(user.pk),
    }


socket_event(
    "message.created",
    MessageEventOut,
    summary="A message in one of my conversations (to both users; move it to the top). An "
    "image's link is not in it: read the message over REST for one.",
)
socket_event("message.read", MessageReadOut, summary="One side read a conversation up to a message.")
