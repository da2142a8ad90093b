"""Bargaining over the socket (API.md "Realtime"): the same schemas and actions as REST.

Frames carry `action` and the client's `id` besides the fields; only the fields are validated,
so the REST schemas (which refuse unknown fields) apply unchanged.
"""

from pydantic import BaseModel

from marketplace.models import User
from negotiation import actions
from negotiation.api import AcceptIn, CounterIn, Id, OfferIn
from negotiation.representations import offer_data
from realtime.dispatch import socket_action


class OfferRef(BaseModel):
    offer_id: Id


class ListingRef(BaseModel):
    listing_id: Id


def _fields(frame: dict, *names: str) -> dict:
    return {name: frame[name] for name in names if name in frame}


def _offer_id(frame: dict) -> int:
    return OfferRef.model_validate(_fields(frame, "offer_id")).offer_id


@socket_action("offer.make")
def make_offer(*, user: User, frame: dict) -> dict:
    listing_id = ListingRef.model_validate(_fields(frame, "listing_id")).listing_id
    body = OfferIn.model_validate(_fields(frame, "price"))
    return offer_data(actions.make_offer(buyer=user, listing_id=listing_id, price_fen=body.price))


@socket_action("offer.accept")
def accept_offer(*, user: User, frame: dict) -> dict:
    offer_id = _offer_id(frame)
    body = AcceptIn.model_validate(_fields(frame, "address_id"))
    offer = actions.accept_offer(user=user, offer_id=offer_id, address_id=body.address_id)
    return offer_data(offer)


@socket_action("offer.decline")
def decline_offer(*, user: User, frame: dict) -> dict:
    return offer_data(actions.decline_offer(user=user, offer_id=_offer_id(frame)))


@socket_action("offer.counter")
def counter_offer(*, user: User, frame: dict) -> dict:
    offer_id = _offer_id(frame)
    body = CounterIn.model_validate(_fields(frame, "price"))
    return offer_data(actions.counter_offer(seller=user, offer_id=offer_id, price_fen=body.price))


@socket_action("offer.withdraw")
def withdraw_offer(*, user: User, frame: dict) -> dict:
    return offer_data(actions.withdraw_offer(buyer=user, offer_id=_offer_id(frame)))
