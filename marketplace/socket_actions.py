"""The events marketplace actions emit, declared for the socket's AsyncAPI document
(realtime/dispatch.py): each `data` is the object as the REST API's own response schema shows
it, so the document and the REST API cannot drift. No client actions yet: orders, catalog and
wallet are driven over REST."""

from pydantic import BaseModel, Field

from marketplace.api.catalog import ListingDetailOut, ListingSummaryOut
from marketplace.api.orders import OrderOut, TrackingOut
from marketplace.api.wallet import EntryOut, WalletOut, WithdrawalOut
from realtime.dispatch import socket_event


class WalletCreditedOut(EntryOut):
    """The ledger entry (as GET /api/wallet/entries shows it) with the wallet after it."""

    wallet: WalletOut


socket_event(
    "order.status_changed",
    OrderOut,
    summary="An order moved (to the buyer and the seller); `data` is GET /api/orders/{no}.",
)
socket_event(
    "order.video_ready",
    OrderOut,
    summary="The seller uploaded the item's video (to the buyer): watch and confirm or reject.",
)
socket_event(
    "order.shipping_update",
    TrackingOut,
    summary="New tracking events (to both sides); `data` is GET /api/orders/{no}/tracking.",
)
socket_event(
    "listing.reviewed",
    ListingDetailOut,
    summary="Staff approved or rejected a listing (to the seller); `data` is the listing detail.",
)
socket_event(
    "wallet.credited",
    WalletCreditedOut,
    summary="A completed sale was credited (to the seller): the entry and the new balance.",
)
socket_event(
    "withdrawal.updated",
    WithdrawalOut,
    summary="Finance paid or rejected a withdrawal (to its owner).",
)



class ListingNewsOut(BaseModel):
    """News about a listing someone wants or a followed seller's new one (docs/social.md)."""

    listing: ListingSummaryOut
    old_price: int | None = Field(None, description="listing.price_dropped: the price before.")
    new_price: int | None = Field(None, description="listing.price_dropped: the price now.")
    reason: str | None = Field(None, description="listing.unavailable: `sold` or `off_shelf`.")


socket_event(
    "listing.price_dropped",
    ListingNewsOut,
    summary="A listing you favourited is cheaper now (to every favouriter, fanned out).",
)
socket_event(
    "listing.unavailable",
    ListingNewsOut,
    summary="A listing you favourited was sold or taken down (to every favouriter).",
)
socket_event(
    "listing.new_from_followed",
    ListingNewsOut,
    summary="A seller you follow has a newly approved listing (to every follower).",
)
