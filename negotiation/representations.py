"""An offer as the REST API shows it; the realtime events carry the same dict (API.md). Times
stay datetimes: the schema and the event encoder write them (project/wire.py)."""

from typing import Any

from negotiation.models import Offer


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
