"""Bargaining over REST (API.md "Negotiation"). The socket actions parse with these schemas and
call the same actions (negotiation/socket_actions.py)."""

from typing import Annotated, Literal

from django.http import HttpRequest
from ninja import Path, Query, Router, Schema, Status
from pydantic import Field, Strict

from marketplace.api.accounts import StrictSchema
from marketplace.api.orders import OrderSummaryOut
from marketplace.models.catalog import MAX_PRICE_FEN
from marketplace.pagination import PageParams, page_schema, paginate
from negotiation import actions
from negotiation.models import OfferStatus
from negotiation.representations import offer_data
from negotiation.selectors import offers_of, trades_of
from project.wire import WireDateTime

router = Router(tags=["negotiation"])

MAX_ID = 2**63 - 1
# Strict: "100" and 100.5 (and 100.0) are refused, not coerced; money is integer fen.
Price = Annotated[
    int,
    Strict(),
    Field(ge=1, le=MAX_PRICE_FEN, description="Integer fen (1 yuan = 100)."),
]
Id = Annotated[int, Strict(), Field(ge=1, le=MAX_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
QueryId = Annotated[int, Field(ge=1, le=MAX_ID)]


class OfferIn(StrictSchema):
    price: Price


class CounterIn(StrictSchema):
    price: Price


class AcceptIn(StrictSchema):
    address_id: Id | None = Field(
        None, description="Buyer accepting a counter: ship here instead of the default address."
    )


class BargainTermsIn(StrictSchema):
    floor_price: Price | None = Field(
        ..., description="Offers below this are declined at once; null clears it."
    )
    auto_accept_price: Price | None = Field(
        None,
        description="The first offer at or above this is accepted at once (order created); "
        "omitted or null clears it.",
    )


class BargainTermsOut(Schema):
    listing_id: int
    floor_price: int | None
    auto_accept_price: int | None


class OfferOut(Schema):
    id: int
    listing_id: int
    buyer_id: int
    seller_id: int
    price: int
    counter_price: int | None
    status: OfferStatus
    expires_at: WireDateTime
    order_no: str | None
    decline_reason: str | None = Field(
        None,
        description="below_floor, seller_declined, buyer_declined, listing_sold, price_changed.",
    )
    created_at: WireDateTime


class OfferFilters(PageParams):
    role: Literal["buyer", "seller"] | None = None
    status: OfferStatus | None = None
    listing_id: QueryId | None = None


OfferPage = page_schema(OfferOut, "OfferPage")


class TradeListingOut(Schema):
    id: int
    title: str
    cover_url: str
    price: int
    shipping_fee: int


class TradeOfferOut(OfferOut):
    listing: TradeListingOut


class TradeOut(Schema):
    kind: Literal["offer", "order"]
    at: WireDateTime
    offer: TradeOfferOut | None = Field(description="A live bargain (open or countered).")
    order: OrderSummaryOut | None


TradePage = page_schema(TradeOut, "TradePage")


@router.post(
    "/listings/{listing_id}/offers",
    response={201: OfferOut},
    summary="Make an offer (declined at once below the floor, accepted at the auto-accept price)",
)
def make_offer(request: HttpRequest, listing_id: PathId, payload: OfferIn):
    offer = actions.make_offer(buyer=request.auth, listing_id=listing_id, price_fen=payload.price)
    return Status(201, offer_data(offer))


@router.get("/offers", response=OfferPage, summary="My offers as buyer, seller or both")
def list_offers(request: HttpRequest, filters: Query[OfferFilters]):
    page = paginate(
        offers_of(
            user=request.auth,
            role=filters.role,
            status=filters.status,
            listing_id=filters.listing_id,
        ),
        ordering=("-id",),
        limit=filters.limit,
        cursor=filters.cursor,
        transform=lambda rows: [offer_data(row) for row in rows],
    )
    return page.as_dict()


@router.post(
    "/offers/{offer_id}/accept",
    response=OfferOut,
    summary="Seller accepts an open offer, or buyer accepts a counter: creates the order",
)
def accept_offer(request: HttpRequest, offer_id: PathId, payload: AcceptIn | None = None):
    address_id = payload.address_id if payload else None
    offer = actions.accept_offer(user=request.auth, offer_id=offer_id, address_id=address_id)
    return offer_data(offer)


@router.post(
    "/offers/{offer_id}/decline",
    response=OfferOut,
    summary="Seller declines an open offer, or buyer declines a counter",
)
def decline_offer(request: HttpRequest, offer_id: PathId):
    return offer_data(actions.decline_offer(user=request.auth, offer_id=offer_id))


@router.post("/offers/{offer_id}/counter", response=OfferOut, summary="Seller counters")
def counter_offer(request: HttpRequest, offer_id: PathId, payload: CounterIn):
    offer = actions.counter_offer(seller=request.auth, offer_id=offer_id, price_fen=payload.price)
    return offer_data(offer)


@router.post("/offers/{offer_id}/withdraw", response=OfferOut, summary="Buyer withdraws")
def withdraw_offer(request: HttpRequest, offer_id: PathId):
    return offer_data(actions.withdraw_offer(buyer=request.auth, offer_id=offer_id))


@router.put(
    "/listings/{listing_id}/bargain-floor",
    response=BargainTermsOut,
    summary="Seller sets the auto-decline floor and the optional auto-accept price",
)
def set_bargain_floor(request: HttpRequest, listing_id: PathId, payload: BargainTermsIn):
    listing = actions.set_bargain_terms(
        seller=request.auth,
        listing_id=listing_id,
        floor_fen=payload.floor_price,
        auto_accept_fen=payload.auto_accept_price,
    )
    return {
        "listing_id": listing.pk,
        "floor_price": listing.bargain_floor_fen,
        "auto_accept_price": listing.auto_accept_fen,
    }


@router.get(
    "/me/trades",
    response=TradePage,
    summary="My trades as buyer: live offers and orders in one list, newest first",
)
def my_trades(request: HttpRequest, page: Query[PageParams]):
    return trades_of(buyer=request.auth, limit=page.limit, cursor=page.cursor).as_dict()
