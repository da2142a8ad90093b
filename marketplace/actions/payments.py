"""WeChat Pay: prepay and payment notifications (closing unpaid orders is `lifecycle`'s).

The money rule: lock the order, look at its state, act once. A payment that lands on an order
already closed for non-payment is refunded in full, whichever of the two got there first.
"""

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from marketplace.actions.notifications import (
    check_merchant,
    mapping,
    receive_notification,
    record_outcome,
    refusal,
)
from marketplace.actions.orders import Actor, access_order, release_listing, set_status
from marketplace.actions.refunds import request_refund
from marketplace.errors import Conflict, UpstreamUnavailable
from marketplace.gateways import wechatpay
from marketplace.models import ListingStatus, User
from marketplace.models.orders import Order, PaymentNotification
from marketplace.money import sale_split
from marketplace.selectors import platform_settings
from marketplace.states import OrderStatus

logger = logging.getLogger("marketplace.payments")

# A prepay_id lives two hours; renew it a little early so the client never gets a dead one.
PREPAY_LIFETIME = timedelta(hours=2)
PREPAY_RENEW_MARGIN = timedelta(minutes=5)
LATE_PAYMENT_REASON = "paid after the order was closed"
# Every prepay asks for CNY (gateways.wechatpay.prepay_jsapi); a payment in anything else is not
# the one we asked for.
CURRENCY = "CNY"


def _payment_description(order: Order) -> str:
    return f"闲置-{order.title}"[:127]


def start_payment(*, buyer: User, order_no: str, now: datetime | None = None) -> dict:
    """Returns wx.requestPayment parameters. A repeated call while the prepay is valid reuses
    it; WeChat answers the same prepay_id for the same out_trade_no and parameters anyway."""
    now = now or timezone.now()
    order = access_order(user=buyer, order_no=order_no, role="buyer")
    if order.status != OrderStatus.PENDING_PAYMENT:
        raise Conflict("This order is not awaiting payment.", code="order_not_payable")
    if order.deadline_at is None or order.deadline_at <= now:
        raise Conflict("The payment window has closed.", code="payment_deadline_passed")
    if (
        order.prepay_id
        and order.prepay_expires_at
        and order.prepay_expires_at > now + PREPAY_RENEW_MARGIN
    ):
        prepay_id = order.prepay_id
    else:
        # Called without any lock held: the remote call may take seconds.
        try:
            prepay_id = wechatpay.prepay_jsapi(
                out_trade_no=order.order_no,
                description=_payment_description(order),
                total_fen=order.total_fen,
                openid=buyer.openid or "",
                time_expire=order.deadline_at,
            )
        except wechatpay.PaymentGatewayError as exc:
            logger.warning("prepay for %s failed: %s", order.order_no, exc)
            if isinstance(exc, wechatpay.OrderAlreadyPaid):
                raise Conflict("This order is already paid.", code="order_already_paid") from exc
            if exc.code == "ORDER_CLOSED":
                raise Conflict(
                    "The payment window has closed.", code="payment_deadline_passed"
                ) from exc
            raise UpstreamUnavailable("WeChat Pay is unavailable; try again.") from exc
        Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING_PAYMENT).update(
            prepay_id=prepay_id, prepay_expires_at=now + PREPAY_LIFETIME
        )
    return {"order_no": order.order_no, "pay_params": wechatpay.pay_params(prepay_id=prepay_id)}


def _payment_mismatch(order: Order, transaction_data: Mapping) -> tuple[str, str] | None:
    """Why a transaction is not exactly this order's payment (reason, detail), or None."""
    if str(transaction_data.get("out_trade_no", "")) != order.order_no:
        return "out_trade_no_mismatch", f"out_trade_no {transaction_data.get('out_trade_no')!r}"
    amount = mapping(transaction_data.get("amount"))
    if amount.get("currency") != CURRENCY:
        return "currency_mismatch", f"currency {amount.get('currency')!r}"
    total = amount.get("total")
    if isinstance(total, bool) or total != order.total_fen:
        return "amount_mismatch", f"paid {total!r} fen, expected {order.total_fen}"
    payer = mapping(transaction_data.get("payer")).get("openid")
    if not order.buyer.openid or payer != order.buyer.openid:
        return "payer_mismatch", "paid by another openid"
    return None


def apply_payment(*, out_trade_no: str, transaction_data: Mapping) -> str:
    """Applies a SUCCESS transaction (from a notification or a query) exactly once, when it is
    exactly ours (merchant, mini-program, order, amount, currency, payer); anything else is
    refused (`refused: <reason>`) and alerts staff."""
    reason = check_merchant(transaction_data, with_appid=True)
    if reason:
        detail = f"mchid {transaction_data.get('mchid')!r}, appid {transaction_data.get('appid')!r}"
        return refusal(reason, kind="payment", about=f"order {out_trade_no}", detail=detail)
    with transaction.atomic(durable=True):
        order = (
            Order.objects.select_for_update()
            .select_related("buyer")
            .filter(order_no=out_trade_no)
            .first()
        )
        if order is None:
            return refusal("unknown_order", kind="payment", about=f"order {out_trade_no}")
        mismatch = _payment_mismatch(order, transaction_data)
        if mismatch:
            reason, detail = mismatch
            return refusal(reason, kind="payment", about=f"order {order.order_no}", detail=detail)
        if order.transaction_id:
            return "duplicate"
        order.transaction_id = str(transaction_data.get("transaction_id", ""))[:64]
        order.paid_at = timezone.now()
        if order.status == OrderStatus.PENDING_PAYMENT:
            # The rate in force at payment is frozen onto the order, read inside this transaction.
            rate = platform_settings(fresh=True).commission_rate_bp
            order.commission_rate_bp = rate
            order.commission_fen, _ = sale_split(
                price_fen=order.price_fen,
                shipping_fee_fen=order.shipping_fee_fen,
                refunded_fen=0,
                rate_bp=rate,
            )
            set_status(
                order,
                OrderStatus.AWAITING_VIDEO,
                actor=Actor.WECHAT,
                reason="paid",
                fields=["transaction_id", "paid_at", "commission_rate_bp", "commission_fen"],
            )
            release_listing(order, to=ListingStatus.SOLD)
            return "paid"
        # Closed for non-payment before the money arrived: the buyer gets it all back.
        order.save(update_fields=["transaction_id", "paid_at", "updated_at"])
        request_refund(order=order, amount_fen=order.total_fen, reason=LATE_PAYMENT_REASON)
        logger.warning("order %s was paid while %s: refunding", order.order_no, order.status)
        return "refunding_late_payment"


def handle_payment_notification(*, headers: Mapping[str, str], body: bytes) -> str:
    """Verifies, records and applies a payment notification. Raises NotificationRejected for a
    forged or stale one (the caller answers non-2xx and nothing changes)."""
    record, notification = receive_notification(
        kind=PaymentNotification.Kind.PAYMENT, headers=headers, body=body
    )
    resource = notification.resource
    reason = check_merchant(resource, with_appid=True)
    if reason:
        detail = f"mchid {resource.get('mchid')!r}, appid {resource.get('appid')!r}"
        about = f"order {record.out_trade_no or '?'}"
        return record_outcome(record, refusal(reason, kind="payment", about=about, detail=detail))
    if notification.event_type != "TRANSACTION.SUCCESS" or resource.get("trade_state") != "SUCCESS":
        return record_outcome(record, "ignored: not a successful payment")
    outcome = apply_payment(out_trade_no=record.out_trade_no, transaction_data=resource)
    return record_outcome(record, outcome)
