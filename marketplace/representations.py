"""Objects as the REST API shows them, as plain dicts: the API responds with these and the
realtime events carry the same (API.md: "`data` holds the object as the REST API shows it")."""

from typing import Any

from django.core.files.storage import storages

from marketplace.models.orders import Order, OrderHistory, Refund


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def history_data(entry: OrderHistory) -> dict[str, Any]:
    return {
        "from": entry.from_status or None,
        "to": entry.to_status,
        "actor": entry.actor,
        "reason": entry.reason,
        "at": _iso(entry.at),
    }


def order_video_url(order: Order) -> str | None:
    """Only the buyer and seller may watch it: on S3 a signed, expiring URL, never a CDN link
    (settings.STORAGES["private"])."""
    return storages["private"].url(order.video.name) if order.video else None


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
        "deadline_at": _iso(order.deadline_at),
        "paid_at": _iso(order.paid_at),
        "video_url": order_video_url(order),
        "carrier": order.carrier or None,
        "tracking_no": order.tracking_no or None,
        "shipped_at": _iso(order.shipped_at),
        "completed_at": _iso(order.completed_at),
        "refund_status": refund_status(order),
        "created_at": _iso(order.created_at),
    }
    if with_history:
        data["history"] = [history_data(entry) for entry in order.history.all()]
    return data
