"""Objects as the REST API shows them, as plain dicts, one serialiser per object: the API
responds with these and the realtime events carry the same (API.md: "`data` holds the object as
the REST API shows it"), so a pushed object is exactly what its GET shows. Offers have theirs in
negotiation/representations.py.

Times stay datetimes here: the response schemas and the event encoder write them, both in the
one wire format (project/wire.py)."""

from collections.abc import Sequence
from typing import Any

from django.conf import settings

from marketplace.media import private_url, storage_url
from marketplace.models import Listing, User
from marketplace.models.orders import Order, OrderHistory, Refund
from marketplace.models.wallet import LedgerEntry, PayoutAccount, Wallet, WechatTransfer, Withdrawal


def history_data(entry: OrderHistory) -> dict[str, Any]:
    return {
        "from": entry.from_status or None,
        "to": entry.to_status,
        "actor": entry.actor,
        "reason": entry.reason,
        "at": entry.at,
    }


def order_video_url(order: Order, *, reader: User | None) -> str | None:
    """A fresh short-lived URL for the reader who asked (its buyer, seller or staff: the caller
    checked); None without a reader, so no event or stored copy ever holds an expiring link."""
    if not order.video or reader is None:
        return None
    return private_url(order.video.name, reader_id=reader.pk)


def refund_status(order: Order) -> str:
    try:
        return order.refund.status
    except Refund.DoesNotExist:
        return "none"


_LOADED = object()


def order_data(
    order: Order,
    *,
    with_history: bool = True,
    history: Sequence[OrderHistory] | None = None,
    refund: Any = _LOADED,
    reader: User | None = None,
) -> dict[str, Any]:
    """`history` and `refund` (a Refund or None) when the caller knows them, so they are not
    read again (a just-created order); by default they are read from the order. `reader`: the
    user the REST API answers, who gets the video's private URL; events pass none.

    The item (title, cover, seller's nickname and avatar) comes from the order's own snapshot,
    taken when it was placed: never from the listing or the seller as they are now."""
    data: dict[str, Any] = {
        "order_no": order.order_no,
        "listing_id": order.listing_id,
        "title": order.title,
        "cover_url": media_url(order.cover),
        "seller": {
            "id": order.seller_id,
            "nickname": order.seller_nickname,
            "avatar_url": order.seller_avatar_url,
        },
        "buyer_id": order.buyer_id,
        "seller_id": order.seller_id,
        "status": order.status,
        "price": order.price_fen,
        "shipping_fee": order.shipping_fee_fen,
        "total": order.total_fen,
        "commission": order.commission_fen,
        "address": order.address,
        "deadline_at": order.deadline_at,
        "paid_at": order.paid_at,
        "has_video": bool(order.video),
        "video_url": order_video_url(order, reader=reader),
        "carrier": order.carrier or None,
        "tracking_no": order.tracking_no or None,
        "shipped_at": order.shipped_at,
        "completed_at": order.completed_at,
        "refund_status": refund_status(order) if refund is _LOADED else (
            refund.status if refund is not None else "none"
        ),
        "created_at": order.created_at,
    }
    if with_history:
        entries = order.history.all() if history is None else history
        data["history"] = [history_data(entry) for entry in entries]
    return data


# --- catalog ---------------------------------------------------------------------------------


def media_url(name: str) -> str:
    return storage_url(name)


def listing_summary_data(*, listing: Listing) -> dict[str, Any]:
    seller = listing.seller
    return {
        "id": listing.pk,
        "title": listing.title,
        "price": listing.price_fen,
        "original_price": listing.original_price_fen,
        "shipping_fee": listing.shipping_fee_fen,
        "city_code": listing.city_code,
        "condition": listing.condition,
        "cover_url": media_url(listing.cover),
        "status": listing.status,
        "views": listing.views,
        "favorite_count": listing.favorite_count,
        "seller": {"id": seller.pk, "nickname": seller.nickname, "avatar_url": seller.avatar_url},
        "created_at": listing.created_at,
    }


def listing_detail_data(*, listing: Listing) -> dict[str, Any]:
    """Needs seller, category and images loaded (or loads them: one query each)."""
    images = sorted(listing.images.all(), key=lambda image: (image.position, image.pk))
    return {
        **listing_summary_data(listing=listing),
        "description": listing.description,
        "features": listing.features,
        "images": [media_url(image.file) for image in images],
        "thumbnails": [media_url(image.thumbnail) for image in images],
        "category": {"id": listing.category_id, "name": listing.category.name},
        "approved_at": listing.approved_at,
        "review_note": listing.review_note,
        "updated_at": listing.updated_at,
        # Per reader: false in the shared (cached) body, set for the signed-in reader on the
        # way out (marketplace/api/catalog.py), never cached per user.
        "is_favorite": False,
    }


# --- wallet ----------------------------------------------------------------------------------


def wallet_data(wallet: Wallet) -> dict:
    return {
        "available": wallet.available_fen,
        "frozen": wallet.frozen_fen,
        "total_earned": wallet.total_earned_fen,
    }


def entry_data(entry: LedgerEntry) -> dict:
    return {
        "id": entry.pk,
        "kind": entry.kind,
        "amount": entry.available_delta_fen,
        "balance_after": entry.available_after_fen,
        "frozen_delta": entry.frozen_delta_fen,
        "frozen_after": entry.frozen_after_fen,
        "order_no": entry.order.order_no if entry.order is not None else None,
        "withdrawal_id": entry.withdrawal_id,
        "at": entry.created_at,
    }


def account_data(account: PayoutAccount) -> dict:
    return {
        "id": account.pk,
        "type": account.type,
        "holder_name": account.holder_name,
        "account_no": account.masked_account_no,
        "bank_name": account.bank_name or None,
        "created_at": account.created_at,
    }


def transfer_data(transfer: WechatTransfer | None) -> dict | None:
    """What the client needs for wx.requestMerchantTransfer, while the user can confirm."""
    if transfer is None:
        return None
    return {
        "state": transfer.state or None,
        "mch_id": settings.WECHATPAY_MCHID,
        "app_id": settings.WECHAT_APPID,
        "package_info": transfer.package_info or None,
        "confirm_before": transfer.confirm_deadline_at,
        "fail_reason": transfer.fail_reason or None,
    }


def withdrawal_data(withdrawal: Withdrawal) -> dict:
    return {
        "id": withdrawal.pk,
        "amount": withdrawal.amount_fen,
        "status": withdrawal.status,
        "to": withdrawal.to,
        "account": account_data(withdrawal.account) if withdrawal.account is not None else None,
        "transfer": transfer_data(getattr(withdrawal, "transfer", None)),
        "transfer_reference": withdrawal.transfer_reference or None,
        "reject_reason": withdrawal.reject_reason or None,
        "created_at": withdrawal.created_at,
        "decided_at": withdrawal.decided_at,
    }
