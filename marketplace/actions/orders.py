"""The order core: the one transition function, access, reservation and release of the listing,
and cancellation of paid orders with their refunds.

Everything here is called inside the caller's transaction, with the order (or listing) row
locked. The coordinator that starts, cancels and times out orders is `lifecycle`; payments,
fulfilment and bargaining build on this module and never on each other through it.
"""

import logging
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.db import connection
from django.db.models.sql import InsertQuery
from django.utils import timezone

from marketplace import storefront
from marketplace.actions import social  # noqa: F401  (follows every listing move: counters, news)
from marketplace.actions.refunds import request_refunds
from marketplace.errors import Conflict, NotFound
from marketplace.models import Address, Listing, ListingStatus, User
from marketplace.models.orders import Order, OrderHistory, PlatformSettings, Refund
from marketplace.representations import order_data
from marketplace.selectors import platform_settings
from marketplace.states import LISTING, ORDER, OrderStatus
from project.tasking import enqueue_on_commit
from realtime.push import emit, emit_many

logger = logging.getLogger("marketplace.orders")
Actor = OrderHistory.Actor

ADDRESS_SNAPSHOT_FIELDS = ("name", "phone", "province", "city", "district", "detail")
# Listings an order holds: reserved until paid, sold once paid.
HELD_LISTING_STATUSES = (ListingStatus.RESERVED, ListingStatus.SOLD)


def new_order_no(now: datetime | None = None) -> str:
    """22 characters of [0-9A-Z]: valid as WeChat Pay's out_trade_no, and sortable by time."""
    moment = (now or timezone.now()).astimezone(timezone.get_default_timezone())
    return f"M{moment:%y%m%d%H%M%S}{secrets.randbelow(10**9):09d}"


# --- deadlines: every rule in one place -------------------------------------------------------


def deadline_after(status: str, *, now: datetime, settings: PlatformSettings) -> datetime | None:
    """When an order entering `status` moves on by itself (states.WITH_DEADLINE)."""
    if status == OrderStatus.PENDING_PAYMENT:
        return now + timedelta(minutes=settings.payment_minutes)
    if status == OrderStatus.AWAITING_VIDEO:
        return now + timedelta(hours=settings.video_upload_hours)
    if status == OrderStatus.AWAITING_CONFIRMATION:
        return now + timedelta(hours=settings.video_confirm_hours)
    if status == OrderStatus.SHIPPED:
        return now + timedelta(days=settings.complete_after_shipped_days)
    return None


def deadline_after_delivery(order: Order, *, now: datetime) -> datetime:
    """The seller marked a shipped order delivered: it completes this soon, or at its shipping
    deadline if that comes first."""
    soon = now + timedelta(hours=platform_settings().complete_after_delivered_hours)
    return min(order.deadline_at, soon) if order.deadline_at else soon


def schedule_deadline(order: Order) -> None:
    """The task fires at the deadline; the sweeper catches it if the task is lost."""
    if order.deadline_at is not None:
        enqueue_on_commit("marketplace.tasks.order_deadline_task", order.pk, eta=order.deadline_at)


# --- events -----------------------------------------------------------------------------------


def notify_order_status_changed(order: Order) -> None:
    notify_orders_status_changed([order])


def notify_orders_status_changed(
    orders: Sequence[Order],
    *,
    history: dict[int, list[OrderHistory]] | None = None,
    refunds: dict[int, Refund] | None = None,
) -> None:
    """`order.status_changed` to both sides of each order, as the API shows it after every write
    of the transaction (refund and history included). Reloaded, so every path sends the same;
    unless the caller holds the rows it just wrote (`history`: each order's whole history,
    `refunds`: each order's refund, if any) on orders read under their lock: a cancellation, whose
    batch of thousands spent a sixth of a deadline sweep reading them all back as models
    (tests/marketplace/test_order_events.py proves the two give the same bytes)."""
    if history is None:
        fresh = list(
            Order.objects.filter(pk__in=[order.pk for order in orders])
            .select_related("refund")
            .prefetch_related("history")
            .order_by("pk")
        )
        data = [order_data(order) for order in fresh]
    else:
        refunds = refunds or {}
        fresh = sorted(orders, key=lambda order: order.pk)
        data = [
            order_data(order, history=history[order.pk], refund=refunds.get(order.pk))
            for order in fresh
        ]
    emit_many(
        [
            ([order.buyer_id, order.seller_id], "order.status_changed", shown)
            for order, shown in zip(fresh, data, strict=True)
        ]
    )


def history_of(orders: Sequence[Order]) -> dict[int, list[OrderHistory]]:
    """Each order's history rows in the order the API shows them (by id)."""
    entries: dict[int, list[OrderHistory]] = {order.pk: [] for order in orders}
    rows = OrderHistory.objects.filter(order_id__any_of=list(entries)).order_by("order_id", "id")
    for entry in rows:
        entries[entry.order_id].append(entry)
    return entries


# --- the transition ---------------------------------------------------------------------------


def set_statuses(
    orders: Sequence[Order],
    to: str,
    *,
    actor: str,
    actor_user: User | None = None,
    reasons: dict[int, str] | None = None,
    now: datetime | None = None,
    fields: Iterable[str] = (),
) -> list[OrderHistory]:
    """The only code that changes orders' status: checks the table for each, saves the status,
    the new deadline and the `fields` the caller set (nothing else), and writes one history row
    each (returned, in the order of `orders`). One order is saved as a row; many (a sweep) in
    one UPDATE, which takes no `fields`. Sends nothing: the caller notifies once all its writes
    are done. Rows are locked by the caller."""
    if not orders:
        return []
    fields = list(fields)
    for order in orders:
        ORDER.check(order.status, to)
    now = now or timezone.now()
    reasons = reasons or {}
    deadline = deadline_after(to, now=now, settings=platform_settings())
    history = [
        OrderHistory(
            order=order,
            from_status=order.status,
            to_status=to,
            actor=actor,
            actor_user=actor_user,
            reason=reasons.get(order.pk, "")[:500],
        )
        for order in orders
    ]
    for order in orders:
        order.status, order.deadline_at, order.updated_at = to, deadline, now
    if len(orders) == 1:
        orders[0].save(update_fields=["status", "deadline_at", "updated_at", *fields])
    elif fields:
        raise ValueError("a batch transition saves only status and deadline")
    else:
        # Every row gets the same values: one plain UPDATE, not bulk_update's per-row CASE.
        Order.objects.filter(pk__any_of=[order.pk for order in orders]).update(
            status=to, deadline_at=deadline, updated_at=now
        )
    _store_history(history)
    for order in orders:
        schedule_deadline(order)
    logger.info("%d order(s) -> %s by %s", len(orders), to, actor)
    return history


_COPY_HISTORY_SQL = (
    "COPY orders_history (order_id, from_status, to_status, actor, actor_user_id, reason, at)"
    " FROM STDIN"
)


def _store_history(history: list[OrderHistory]) -> None:
    """A batch's rows by COPY on PostgreSQL: bulk_create's INSERT of a sweep's 2,000 rows
    spends most of its time on a placeholder per value (Django compiling, psycopg splitting and
    quoting). Their ids are not read back: nothing uses them. COPY names every column; a new
    one without a default fails here, loudly."""
    if len(history) == 1 or connection.vendor != "postgresql":
        OrderHistory.objects.bulk_create(history, batch_size=500)
        return
    at = timezone.now()  # what auto_now_add would have written
    with connection.cursor() as cursor, cursor.cursor.copy(_COPY_HISTORY_SQL) as copy:
        for entry in history:
            entry.at = at
            copy.write_row(
                (
                    entry.order_id,
                    entry.from_status,
                    entry.to_status,
                    entry.actor,
                    entry.actor_user_id,
                    entry.reason,
                    at,
                )
            )


def set_status(
    order: Order,
    to: str,
    *,
    actor: str,
    actor_user: User | None = None,
    reason: str = "",
    now: datetime | None = None,
    fields: Iterable[str] = (),
) -> Order:
    """One order's transition (see `set_statuses`), then its `order.status_changed` event."""
    set_statuses(
        [order], to, actor=actor, actor_user=actor_user, reasons={order.pk: reason}, now=now,
        fields=fields,
    )
    notify_order_status_changed(order)
    return order


# --- access -----------------------------------------------------------------------------------


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


def lock_order(order_id: int) -> Order:
    return Order.objects.select_for_update().get(pk=order_id)


def lock_listing(listing_id: int) -> Listing:
    """The listing row locked, with its seller (every buyer's check reads the seller's ban)."""
    listing = (
        Listing.objects.select_for_update(of=("self",))
        .select_related("seller")
        .filter(pk=listing_id)
        .first()
    )
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
    return snapshot_of(address)


def snapshot_of(address: Address) -> dict:
    return {name: getattr(address, name) for name in ADDRESS_SNAPSHOT_FIELDS}


# --- the listing an order holds ---------------------------------------------------------------


_RESERVE_SQL = (  # noqa: S608 - our own table and column names; values are parameters
    "WITH o AS ({order_insert}),"
    " l AS (UPDATE catalog_listing SET status = %s, updated_at = %s WHERE id = %s),"
    " h AS (INSERT INTO orders_history"
    " (order_id, from_status, to_status, actor, actor_user_id, reason, at)"
    " SELECT o.id, %s, %s, %s, %s, %s, %s FROM o RETURNING id)"
    " SELECT o.id, h.id FROM o, h"
)


def _reserve_in_one_statement(listing: Listing, order: Order, created: OrderHistory) -> None:
    """The listing's reservation, the order and its first history row: one round trip (three
    with the ORM). The order's insert is the ORM's own, compiled (defaults, auto_now)."""
    query = InsertQuery(Order)
    query.insert_values([f for f in Order._meta.concrete_fields if not f.primary_key], [order])
    compiler = query.get_compiler(connection=connection)
    compiler.returning_fields = [Order._meta.pk]
    ((insert, insert_params),) = compiler.as_sql()
    created.at = order.created_at
    params = [
        *insert_params,
        listing.status, listing.updated_at, listing.pk,
        created.from_status, created.to_status, created.actor, created.actor_user_id,
        created.reason, created.at,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_RESERVE_SQL.format(order_insert=insert), params)
        order.pk, created.pk = cursor.fetchone()
    order._state.adding = created._state.adding = False
    order._state.db = created._state.db = connection.alias


def reserve_listing_for(*, buyer: User, listing: Listing, price_fen: int, address: dict) -> Order:
    """Creates the pending order and reserves the listing. The caller has locked the listing
    and checked it may be bought; used by direct purchase and by bargain acceptance."""
    now = timezone.now()
    order = Order(
        order_no=new_order_no(now),
        buyer=buyer,
        seller_id=listing.seller_id,
        listing=listing,
        title=listing.title,
        cover=listing.cover,
        seller_nickname=listing.seller.nickname,
        seller_avatar_url=listing.seller.avatar_url,
        price_fen=price_fen,
        # Offers and counters are on the item price; the shipping is added on top.
        shipping_fee_fen=listing.shipping_fee_fen,
        address=address,
        status=OrderStatus.PENDING_PAYMENT,
        deadline_at=deadline_after(
            OrderStatus.PENDING_PAYMENT, now=now, settings=platform_settings()
        ),
    )
    created = OrderHistory(
        order=order, from_status="", to_status=order.status, actor=Actor.BUYER, actor_user=buyer
    )
    if connection.vendor == "postgresql":
        LISTING.check(listing.status, ListingStatus.RESERVED)
        listing.status, listing.updated_at = ListingStatus.RESERVED, now
        _reserve_in_one_statement(listing, order, created)
        for observer in LISTING.observers:  # as LISTING.move tells them, after the write
            observer(ListingStatus.RESERVED, [listing])
    else:
        LISTING.move(listing, ListingStatus.RESERVED)
        order.save()
        created.order = order
        created.save()
    # A new order has this one history row and no refund: no need to read them back.
    emit(
        user_ids=[order.buyer_id, order.seller_id],
        type="order.status_changed",
        data=order_data(order, history=[created], refund=None),
    )
    schedule_deadline(order)
    return order


def release_listings(orders: Sequence[Order], *, to: dict[int, str] | str) -> None:
    """Moves the listings these orders hold (reserved, or sold once paid) to `to` (one status,
    or one per order id): sold when paid, back on sale or off the shelf when the order ends
    without a sale. Set-based; the storefront shows it on its next read."""
    by_status: dict[str, list[int]] = {}
    for order in orders:
        target = to if isinstance(to, str) else to[order.pk]
        by_status.setdefault(target, []).append(order.listing_id)
    for target, listing_ids in by_status.items():
        LISTING.move_rows(
            Listing.objects.filter(pk__any_of=listing_ids), target, among=HELD_LISTING_STATUSES
        )
    storefront.changed()


def release_listing(order: Order, *, to: str) -> None:
    release_listings([order], to=to)


# --- cancelling paid orders: one path for one order and for a sweep's batch --------------------


def cancel_paid_orders(
    orders: Sequence[Order],
    *,
    actor: str,
    actor_user: User | None,
    reasons: dict[int, str],
    listings_to: dict[int, str],
    now: datetime | None = None,
) -> None:
    """Paid, not shipped → cancelled with a full refund each, in the caller's transaction (the
    rows locked, read fresh): history, listing moves, refunds (the WeChat reason is the
    cancellation reason), then each order's `order.status_changed` with its refund pending,
    built from the rows in hand instead of read back."""
    if not orders:
        return
    history = history_of(orders)  # before the transition adds its own row
    added = set_statuses(
        orders, OrderStatus.CANCELLED, actor=actor, actor_user=actor_user, reasons=reasons, now=now
    )
    for entry in added:
        history[entry.order_id].append(entry)
    release_listings(orders, to=listings_to)
    refunds = {
        refund.order_id: refund
        for refund in request_refunds(
            orders=orders, reasons={order.pk: reasons[order.pk] for order in orders}
        )
    }
    if kept := [order.pk for order in orders if order.pk not in refunds]:
        # An order that already had a refund keeps it (request_refunds): shown as it is.
        refunds.update(
            (refund.order_id, refund) for refund in Refund.objects.filter(order_id__any_of=kept)
        )
    notify_orders_status_changed(orders, history=history, refunds=refunds)


def cancel_paid_order(
    order: Order, *, actor: str, actor_user: User | None, reason: str, listing_to: str
) -> Order:
    cancel_paid_orders(
        [order],
        actor=actor,
        actor_user=actor_user,
        reasons={order.pk: reason},
        listings_to={order.pk: listing_to},
    )
    return order
