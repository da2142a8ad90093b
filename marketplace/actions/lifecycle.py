"""The order lifecycle: buying, cancelling, closing unpaid orders, and every deadline with the
sweep that backs it up.

The coordinator over the order core, payments, refunds, fulfilment and bargaining, which it
imports and none of which import it. The task path (one order at its deadline) and the sweep
(a batch) go through the same functions, so they write the same history, refunds and events.
"""

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from marketplace.actions.accounts import check_not_banned
from marketplace.actions.fulfilment import complete_order
from marketplace.actions.orders import (
    Actor,
    access_order,
    address_snapshot,
    cancel_paid_order,
    cancel_paid_orders,
    check_can_buy,
    lock_listing,
    lock_order,
    release_listing,
    reserve_listing_for,
    set_status,
)
from marketplace.actions.payments import apply_payment
from marketplace.errors import Conflict, UpstreamUnavailable
from marketplace.gateways import wechatpay
from marketplace.models import ListingStatus, User
from marketplace.models.orders import Order
from marketplace.states import PAID_BEFORE_SHIPMENT, OrderStatus
from negotiation.actions import decline_offers, lock_live_offers, on_order_closed
from negotiation.conversations import (
    attach_threads,
    close_other_threads,
    gathered,
    lock_threads,
)
from negotiation.models import DeclineReason
from project.transactions import retry_on_deadlock
from realtime.push import batched

logger = logging.getLogger("marketplace.orders")

# Overdue paid orders are cancelled with a full refund: (reason, where the listing goes).
OVERDUE_CANCELLATIONS: dict[str, tuple[str, str]] = {
    OrderStatus.AWAITING_VIDEO: (
        "seller did not upload the video in time",
        ListingStatus.OFF_SHELF,
    ),
    OrderStatus.AWAITING_CONFIRMATION: (
        "buyer did not confirm the video in time",
        ListingStatus.ON_SALE,
    ),
}
PAYMENT_DEADLINE_REASON = "payment deadline passed"
AUTO_COMPLETE_REASON = "auto-completed"


# --- buying -----------------------------------------------------------------------------------


@retry_on_deadlock
def create_order(*, buyer: User, listing_id: int, address_id: int) -> Order:
    """Direct purchase at the listing price. The listing row lock makes racing buyers queue:
    the first reserves it, the rest find it reserved (409). Every open offer on the listing is
    declined (SPEC §4)."""
    check_not_banned(buyer)
    # batched(): everyone this purchase tells (buyer, seller, each bargaining buyer) is told in
    # one statement at the end, which takes all their counters at once (one lock order).
    with transaction.atomic(durable=True), batched():
        address = address_snapshot(buyer=buyer, address_id=address_id)
        listing = lock_listing(listing_id)
        check_can_buy(buyer=buyer, listing=listing)
        offers = lock_live_offers(listing)
        # Every conversation on the listing, before any inbox row (negotiation/conversations.py).
        threads = lock_threads(listing_id=listing.pk)
        attach_threads(offers, threads)
        order = reserve_listing_for(
            buyer=buyer, listing=listing, price_fen=listing.price_fen, address=address
        )
        with gathered():  # the declines and the closings: their messages in one statement
            decline_offers(offers, reason=DeclineReason.LISTING_SOLD)
            close_other_threads(listing=listing, winner_id=buyer.pk, threads=threads)
    return order


# --- closing unpaid orders --------------------------------------------------------------------


def close_unpaid_order(
    *,
    order_id: int,
    actor: str,
    reason: str,
    actor_user: User | None = None,
    now: datetime | None = None,
) -> Order:
    """Closes an unpaid order (deadline or buyer). WeChat is asked first: a late notification
    may be on its way, in which case the payment is applied instead. Then WeChat's order is
    closed so it cannot be paid any more, and only then ours. An agreed price that went unpaid
    frees the listing for new offers (SPEC §4)."""
    order = Order.objects.get(pk=order_id)
    try:
        remote = wechatpay.query_order(out_trade_no=order.order_no)
        if remote and remote.get("trade_state") == "SUCCESS":
            apply_payment(out_trade_no=order.order_no, transaction_data=remote)
            return Order.objects.get(pk=order_id)
        if remote is not None:
            wechatpay.close_order(out_trade_no=order.order_no)
    except wechatpay.OrderAlreadyPaid:
        remote = wechatpay.query_order(out_trade_no=order.order_no) or {}
        apply_payment(out_trade_no=order.order_no, transaction_data=remote)
        return Order.objects.get(pk=order_id)
    except wechatpay.PaymentGatewayError as exc:
        # Leave it pending: the sweeper tries again next minute.
        logger.warning("could not close %s with WeChat Pay yet: %s", order.order_no, exc)
        raise UpstreamUnavailable("WeChat Pay is unavailable; try again.") from exc
    with transaction.atomic(durable=True):
        order = lock_order(order_id)
        if order.status != OrderStatus.PENDING_PAYMENT:
            return order
        set_status(
            order, OrderStatus.CLOSED, actor=actor, actor_user=actor_user, reason=reason, now=now
        )
        release_listing(order, to=ListingStatus.ON_SALE)
        on_order_closed(order=order)
    return order


# --- cancelling -------------------------------------------------------------------------------


@retry_on_deadlock
def cancel_order(*, user: User, order_no: str, reason: str = "") -> Order:
    """SPEC §3: the buyer may cancel before paying or while awaiting the video; the seller may
    cancel any paid order before shipping. Paid cancellations refund in full."""
    order = access_order(user=user, order_no=order_no)
    is_buyer = order.buyer_id == user.pk
    if order.status == OrderStatus.PENDING_PAYMENT and is_buyer:
        return close_unpaid_order(
            order_id=order.pk,
            actor=Actor.BUYER,
            actor_user=user,
            reason=reason or "buyer cancelled",
        )
    with transaction.atomic(durable=True):
        order = access_order(user=user, order_no=order_no, lock=True)
        if is_buyer and order.status == OrderStatus.AWAITING_VIDEO:
            return cancel_paid_order(
                order,
                actor=Actor.BUYER,
                actor_user=user,
                reason=reason or "buyer cancelled",
                listing_to=ListingStatus.ON_SALE,
            )
        if not is_buyer and order.status in PAID_BEFORE_SHIPMENT:
            return cancel_paid_order(
                order,
                actor=Actor.SELLER,
                actor_user=user,
                reason=reason or "seller cancelled",
                listing_to=ListingStatus.OFF_SHELF,
            )
    raise Conflict("This order can no longer be cancelled by you.", code="cannot_cancel")


# --- deadlines: one order (the task) or a batch (the sweep), one code path ---------------------


def cancel_overdue_orders(*, order_ids: list[int], now: datetime) -> int:
    """Cancels those of `order_ids` whose video deadline has passed, with full refunds, in one
    transaction. Rows another transaction holds are skipped (the next sweep gets them)."""
    with transaction.atomic(durable=True):
        orders = list(
            Order.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__any_of=order_ids, status__in=list(OVERDUE_CANCELLATIONS), deadline_at__lte=now)
            .order_by("pk")
        )
        cancel_paid_orders(
            orders,
            actor=Actor.SYSTEM,
            actor_user=None,
            reasons={order.pk: OVERDUE_CANCELLATIONS[order.status][0] for order in orders},
            listings_to={order.pk: OVERDUE_CANCELLATIONS[order.status][1] for order in orders},
            now=now,
        )
    return len(orders)


def handle_order_deadline(*, order_id: int, now: datetime | None = None) -> str:
    """Moves an overdue order on; does nothing when it is not due (any more). Idempotent."""
    now = now or timezone.now()
    order = Order.objects.filter(pk=order_id).only("status", "deadline_at").first()
    if order is None or order.deadline_at is None or order.deadline_at > now:
        return "not_due"
    if order.status == OrderStatus.PENDING_PAYMENT:
        close_unpaid_order(order_id=order_id, actor=Actor.SYSTEM, reason=PAYMENT_DEADLINE_REASON, now=now)
        return "closed"
    if order.status in OVERDUE_CANCELLATIONS:
        return "cancelled" if cancel_overdue_orders(order_ids=[order_id], now=now) else "not_due"
    if order.status == OrderStatus.SHIPPED:
        with transaction.atomic(durable=True):
            order = lock_order(order_id)
            if order.status != OrderStatus.SHIPPED or not order.deadline_at or order.deadline_at > now:
                return "not_due"
            complete_order(order, actor=Actor.SYSTEM, actor_user=None, reason=AUTO_COMPLETE_REASON)
        return "completed"
    return "not_due"


def overdue_order_ids(
    *, now: datetime, statuses, after_id: int = 0, limit: int = 1000
) -> list[int]:
    """The next `limit` overdue orders by id after `after_id`. One status at a time, so each
    query walks the (status, id) index in order and stops at `limit`, instead of sorting every
    overdue row of several statuses for each batch."""
    ids: list[int] = []
    for status in statuses:
        ids += Order.objects.filter(status=status, deadline_at__lte=now, pk__gt=after_id).order_by(
            "pk"
        ).values_list("pk", flat=True)[:limit]
    return sorted(ids)[:limit]


def sweep_overdue_orders(*, now: datetime | None = None, batch: int = 2000) -> dict[str, int]:
    """The backstop for lost deadline tasks: handles every overdue order once per sweep
    (walking ids upwards, so an order that stays overdue after a failure cannot stall it).
    Cancellations go in batches through the task's own function; closing unpaid orders (a
    WeChat Pay call each) and completions (a credit each) go one by one."""
    now = now or timezone.now()
    outcomes: dict[str, int] = {}

    def count(outcome: str, number: int = 1) -> None:
        if number:
            outcomes[outcome] = outcomes.get(outcome, 0) + number

    last_id = 0
    while ids := overdue_order_ids(
        now=now, statuses=list(OVERDUE_CANCELLATIONS), after_id=last_id, limit=batch
    ):
        last_id = ids[-1]
        try:
            count("cancelled", cancel_overdue_orders(order_ids=ids, now=now))
        except Exception:  # a bad batch must not stop the sweep; the next sweep retries it
            logger.exception("cancelling overdue orders %s..%s failed", ids[0], ids[-1])
            count("failed", len(ids))
    last_id = 0
    one_by_one = [OrderStatus.PENDING_PAYMENT, OrderStatus.SHIPPED]
    while ids := overdue_order_ids(now=now, statuses=one_by_one, after_id=last_id, limit=batch):
        last_id = ids[-1]
        for order_id in ids:
            try:
                count(handle_order_deadline(order_id=order_id, now=now))
            except Exception:  # one bad order must not stop the sweep
                logger.exception("deadline of order %s failed; the next sweep retries", order_id)
                count("failed")
    return outcomes
