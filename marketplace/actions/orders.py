"""Orders: creation with the listing reserved, the one transition function, cancellation and
deadlines. Payments and refunds live in their own modules and call `set_status`."""

import logging
import secrets
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace import storefront
from marketplace.actions.accounts import check_not_banned
from marketplace.errors import Conflict, NotFound
from marketplace.models import Address, Listing, ListingStatus, User
from marketplace.models.orders import Order, OrderHistory, PlatformSettings
from marketplace.representations import order_data
from marketplace.states import PAID_BEFORE_SHIPMENT, OrderStatus, can_transition
from realtime.push import emit, emit_many

logger = logging.getLogger("marketplace.orders")
Actor = OrderHistory.Actor

ADDRESS_SNAPSHOT_FIELDS = ("name", "phone", "province", "city", "district", "detail")


def platform_settings() -> PlatformSettings:
    current = PlatformSettings.objects.filter(pk=1).first()
    if current is None:
        try:
            with transaction.atomic():
                current = PlatformSettings.objects.create(pk=1)
        except IntegrityError:  # created concurrently
            current = PlatformSettings.objects.get(pk=1)
    return current


def new_order_no(now: datetime | None = None) -> str:
    """22 characters of [0-9A-Z]: valid as WeChat Pay's out_trade_no, and sortable by time."""
    moment = (now or timezone.now()).astimezone(timezone.get_default_timezone())
    return f"M{moment:%y%m%d%H%M%S}{secrets.randbelow(10**9):09d}"


def deadline_after(status: str, *, now: datetime, settings: PlatformSettings) -> datetime | None:
    if status == OrderStatus.PENDING_PAYMENT:
        return now + timedelta(minutes=settings.payment_minutes)
    if status == OrderStatus.AWAITING_VIDEO:
        return now + timedelta(hours=settings.video_upload_hours)
    if status == OrderStatus.AWAITING_CONFIRMATION:
        return now + timedelta(hours=settings.video_confirm_hours)
    if status == OrderStatus.SHIPPED:
        return now + timedelta(days=settings.complete_after_shipped_days)
    return None


def notify_order_status_changed(order: Order) -> None:
    emit(
        user_ids=[order.buyer_id, order.seller_id],
        type="order.status_changed",
        data=order_data(order),
    )


def schedule_deadline(order: Order) -> None:
    """The task fires at the deadline; the sweeper catches it if the task is lost."""
    if order.deadline_at is None:
        return
    from marketplace.tasks import order_deadline_task

    order_id, eta = order.pk, order.deadline_at
    transaction.on_commit(lambda: order_deadline_task.schedule(args=(order_id,), eta=eta))


def set_status(
    order: Order,
    to: str,
    *,
    actor: str,
    actor_user: User | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> Order:
    """The only code that changes an order's status. The caller holds the order's row lock
    inside a transaction; the change, its history row and its event commit together."""
    if not can_transition(order.status, to):
        raise Conflict(
            f"An order that is {order.status} cannot become {to}.", code="invalid_order_status"
        )
    now = now or timezone.now()
    from_status = order.status
    order.status = to
    order.deadline_at = deadline_after(to, now=now, settings=platform_settings())
    order.save()
    OrderHistory.objects.create(
        order=order,
        from_status=from_status,
        to_status=to,
        actor=actor,
        actor_user=actor_user,
        reason=reason[:500],
    )
    notify_order_status_changed(order)
    schedule_deadline(order)
    logger.info("order %s: %s -> %s by %s", order.order_no, from_status, to, actor)
    return order


def set_status_many(
    orders: list[Order], to: str, *, actor: str, reasons: dict[int, str], now: datetime
) -> None:
    """`set_status` for a batch the caller has locked (the sweeper): the same table check,
    one history row each, in a few statements. The caller emits the events once the batch's
    other writes are done, through `notify_orders_status_changed`."""
    for order in orders:
        if not can_transition(order.status, to):
            raise Conflict(
                f"An order that is {order.status} cannot become {to}.", code="invalid_order_status"
            )
    history = [
        OrderHistory(
            order=order,
            from_status=order.status,
            to_status=to,
            actor=actor,
            reason=reasons[order.pk][:500],
        )
        for order in orders
    ]
    deadline = deadline_after(to, now=now, settings=platform_settings())
    for order in orders:
        order.status, order.deadline_at, order.updated_at = to, deadline, now
    # Every row gets the same values: one plain UPDATE, not bulk_update's per-row CASE.
    Order.objects.filter(pk__in=[order.pk for order in orders]).update(
        status=to, deadline_at=deadline, updated_at=now
    )
    OrderHistory.objects.bulk_create(history, batch_size=500)
    logger.info("%d orders -> %s by %s", len(orders), to, actor)


def notify_orders_status_changed(order_ids: list[int]) -> None:
    orders = (
        Order.objects.filter(pk__in=order_ids).select_related("refund").prefetch_related("history")
    )
    emit_many(
        [
            ([order.buyer_id, order.seller_id], "order.status_changed", order_data(order))
            for order in orders
        ]
    )


def record_creation(order: Order, *, actor_user: User) -> None:
    OrderHistory.objects.create(
        order=order,
        from_status="",
        to_status=order.status,
        actor=Actor.BUYER,
        actor_user=actor_user,
    )
    notify_order_status_changed(order)
    schedule_deadline(order)


def access_order(
    *, user: User, order_no: str, role: str | None = None, lock: bool = False
) -> Order:
    """The order if `user` is its buyer or seller (or the given role); 404 otherwise."""
    queryset = Order.objects.filter(order_no=order_no)
    if role == "buyer":
        queryset = queryset.filter(buyer=user)
    elif role == "seller":
        queryset = queryset.filter(seller=user)
    else:
        queryset = queryset.filter(buyer=user) | queryset.filter(seller=user)
    if lock:
        queryset = queryset.select_for_update()
    order = queryset.first()
    if order is None:
        raise NotFound("No such order.", code="order_not_found")
    return order


def lock_listing(listing_id: int) -> Listing:
    listing = Listing.objects.select_for_update().filter(pk=listing_id).first()
    if listing is None:
        raise NotFound("No such listing.", code="listing_not_found")
    return listing


def check_can_buy(*, buyer: User, listing: Listing) -> None:
    if listing.seller_id == buyer.pk:
        raise Conflict("You cannot buy your own listing.", code="own_listing")
    if listing.status != ListingStatus.ON_SALE or listing.seller.is_banned:
        raise Conflict("This listing is not on sale.", code="listing_not_on_sale")


def address_snapshot(*, buyer: User, address_id: int) -> dict:
    address = Address.objects.filter(user=buyer, pk=address_id).first()
    if address is None:
        raise NotFound("No such address.", code="address_not_found")
    return {name: getattr(address, name) for name in ADDRESS_SNAPSHOT_FIELDS}


def reserve_listing_for(*, buyer: User, listing: Listing, price_fen: int, address: dict) -> Order:
    """Creates the pending order and reserves the listing. The caller has locked the listing
    and checked it may be bought; used by direct purchase and by bargain acceptance."""
    listing.status = ListingStatus.RESERVED
    listing.save(update_fields=["status", "updated_at"])
    now = timezone.now()
    order = Order.objects.create(
        order_no=new_order_no(now),
        buyer=buyer,
        seller_id=listing.seller_id,
        listing=listing,
        title=listing.title,
        price_fen=price_fen,
        address=address,
        status=OrderStatus.PENDING_PAYMENT,
        deadline_at=deadline_after(
            OrderStatus.PENDING_PAYMENT, now=now, settings=platform_settings()
        ),
    )
    record_creation(order, actor_user=buyer)
    return order


def create_order(*, buyer: User, listing_id: int, address_id: int) -> Order:
    """Direct purchase at the listing price. The listing row lock makes racing buyers queue:
    the first reserves it, the rest find it reserved (409)."""
    check_not_banned(buyer)
    with transaction.atomic(durable=True):
        address = address_snapshot(buyer=buyer, address_id=address_id)
        listing = lock_listing(listing_id)
        check_can_buy(buyer=buyer, listing=listing)
        order = reserve_listing_for(
            buyer=buyer, listing=listing, price_fen=listing.price_fen, address=address
        )
        decline_offers_for_purchase(listing=listing, order=order)
    return order


def decline_offers_for_purchase(*, listing: Listing, order: Order) -> None:
    """A direct purchase declines every open offer on the listing (SPEC §4)."""
    from negotiation.actions import decline_open_offers

    decline_open_offers(listing=listing, reason="listing_sold", except_offer_id=None)


def release_listing(order: Order, *, to: str) -> None:
    """Moves the listing this order holds (reserved, or sold once paid) to `to`: sold when
    paid, back on sale or off the shelf when the order ends without a sale."""
    Listing.objects.filter(
        pk=order.listing_id, status__in=[ListingStatus.RESERVED, ListingStatus.SOLD]
    ).update(status=to, updated_at=timezone.now())
    storefront.changed()


def cancel_paid_order(
    order: Order, *, actor: str, actor_user: User | None, reason: str, listing_to: str
) -> Order:
    """Paid, not shipped → cancelled with a full refund, in the caller's transaction."""
    from marketplace.actions.refunds import request_refund

    set_status(order, OrderStatus.CANCELLED, actor=actor, actor_user=actor_user, reason=reason)
    release_listing(order, to=listing_to)
    request_refund(order=order, amount_fen=order.price_fen, reason=reason or "order cancelled")
    return order


def cancel_order(*, user: User, order_no: str, reason: str = "") -> Order:
    """SPEC §3: the buyer may cancel before paying or while awaiting the video; the seller may
    cancel any paid order before shipping. Paid cancellations refund in full."""
    order = access_order(user=user, order_no=order_no)
    is_buyer = order.buyer_id == user.pk
    if order.status == OrderStatus.PENDING_PAYMENT and is_buyer:
        from marketplace.actions.payments import close_unpaid_order

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


# Overdue paid orders are cancelled with a full refund: (reason, where the listing goes).
OVERDUE_CANCELLATIONS = {
    OrderStatus.AWAITING_VIDEO: (
        "seller did not upload the video in time",
        ListingStatus.OFF_SHELF,
    ),
    OrderStatus.AWAITING_CONFIRMATION: (
        "buyer did not confirm the video in time",
        ListingStatus.ON_SALE,
    ),
}


def handle_order_deadline(*, order_id: int, now: datetime | None = None) -> str:
    """Moves an overdue order on; does nothing when it is not due (any more). Idempotent."""
    now = now or timezone.now()
    order = Order.objects.filter(pk=order_id).only("status", "deadline_at").first()
    if order is None or order.deadline_at is None or order.deadline_at > now:
        return "not_due"
    if order.status == OrderStatus.PENDING_PAYMENT:
        from marketplace.actions.payments import close_unpaid_order

        close_unpaid_order(
            order_id=order_id, actor=Actor.SYSTEM, reason="payment deadline passed", now=now
        )
        return "closed"
    with transaction.atomic(durable=True):
        order = Order.objects.select_for_update().get(pk=order_id)
        if order.deadline_at is None or order.deadline_at > now:
            return "not_due"
        if order.status in OVERDUE_CANCELLATIONS:
            reason, listing_to = OVERDUE_CANCELLATIONS[order.status]
            cancel_paid_order(
                order, actor=Actor.SYSTEM, actor_user=None, reason=reason, listing_to=listing_to
            )
            return "cancelled"
        if order.status == OrderStatus.SHIPPED:
            from marketplace.actions.fulfilment import complete_order

            complete_order(order, actor=Actor.SYSTEM, actor_user=None, reason="auto-completed")
            return "completed"
    return "not_due"


def cancel_overdue_batch(*, order_ids: list[int], now: datetime) -> int:
    """Cancels overdue paid orders with full refunds, many per transaction: the same outcome
    as `handle_order_deadline` order by order, at a fraction of the statements. Rows another
    transaction holds are skipped (the next sweep gets them)."""
    from marketplace.actions.refunds import request_refunds

    with transaction.atomic(durable=True):
        orders = list(
            Order.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=order_ids, status__in=list(OVERDUE_CANCELLATIONS), deadline_at__lte=now)
            .order_by("pk")
        )
        if not orders:
            return 0
        listings_to = {status: [] for status in OVERDUE_CANCELLATIONS}
        reasons = {}
        for order in orders:
            reason, listing_to = OVERDUE_CANCELLATIONS[order.status]
            reasons[order.pk] = reason
            listings_to[order.status].append(order.listing_id)
        set_status_many(orders, OrderStatus.CANCELLED, actor=Actor.SYSTEM, reasons=reasons, now=now)
        for status, listing_ids in listings_to.items():
            Listing.objects.filter(
                pk__in=listing_ids, status__in=[ListingStatus.RESERVED, ListingStatus.SOLD]
            ).update(status=OVERDUE_CANCELLATIONS[status][1], updated_at=now)
        storefront.changed()
        request_refunds(orders=orders, reason="order cancelled: deadline passed")
        notify_orders_status_changed([order.pk for order in orders])
    return len(orders)


def overdue_order_ids(
    *, now: datetime, statuses, after_id: int = 0, limit: int = 1000
) -> list[int]:
    return list(
        Order.objects.filter(status__in=statuses, deadline_at__lte=now, pk__gt=after_id)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def sweep_overdue_orders(*, now: datetime | None = None, batch: int = 500) -> dict[str, int]:
    """The backstop for lost deadline tasks: handles every overdue order once per sweep
    (walking ids upwards, so an order that stays overdue after a failure cannot stall it).
    Cancellations go in batches; closing unpaid orders (a WeChat Pay call each) and
    completions (a credit each) go one by one."""
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
            count("cancelled", cancel_overdue_batch(order_ids=ids, now=now))
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
