"""Objects as the REST API shows them, as plain dicts: the API responds with these and the
realtime events carry the same (API.md: "`data` holds the object as the REST API shows it").

Times stay datetimes here: the response schemas and the event encoder write them, both in the
one wire format (project/wire.py)."""

from typing import Any

from marketplace.models.orders import Order, OrderHistory, Refund


def history_data(entry: OrderHistory) -> dict[str, Any]:
    return {
        "from": entry.from_status or None,
        "to": entry.to_status,
        "actor": entry.actor,
        "reason": entry.reason,
        "at": entry.at,
    }


def refund_status(order: Order) -> str:
    try:
        return order.refund.status
    except Refund.DoesNotExist:
        return "none"


def order_data(order: Order, *, with_history: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "order_no": order.order_no,
        "listing_id": order.listing_id,
        "title": order.title,
        "buyer_id": order.buyer_id,
        "seller_id": order.seller_id,
        "status": order.status,
        "price": order.price_fen,
        "commission": order.commission_fen,
        "address": order.address,
        "deadline_at": order.deadline_at,
        "paid_at": order.paid_at,
        "video_url": order.video.url if order.video else None,
        "carrier": order.carrier or None,
        "tracking_no": order.tracking_no or None,
        "shipped_at": order.shipped_at,
        "completed_at": order.completed_at,
        "refund_status": refund_status(order),
        "created_at": order.created_at,
    }
    if with_history:
        data["history"] = [history_data(entry) for entry in order.history.all()]
    return data
