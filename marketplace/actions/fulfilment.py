"""After payment: the seller's video, the buyer's confirmation, shipping and tracking through
Kuaidi100, completion with the seller's credit, disputes and reviews (SPEC §3, §5)."""

import logging
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.files import File
from django.core.files.storage import storages
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from marketplace.actions.orders import (
    Actor,
    access_order,
    cancel_paid_order,
    deadline_after_delivery,
    lock_order,
    notify_order_status_changed,
    schedule_deadline,
    set_status,
)
from marketplace.actions.refunds import request_refund
from marketplace.errors import Conflict, DomainError, InvalidInput, NotFound
from marketplace.gateways import kuaidi100, wechat
from marketplace.models import ListingStatus, User
from marketplace.models.fulfilment import Dispute, Review, TrackingEvent
from marketplace.models.orders import Order
from marketplace.money import sale_split
from marketplace.representations import order_data
from marketplace.states import OrderStatus
from project.tasking import enqueue_on_commit
from realtime.push import emit

logger = logging.getLogger("marketplace.fulfilment")

TRACKING_CACHE_SECONDS = 300
RESUBSCRIBE_AFTER_ABORT = timedelta(minutes=30)


def _require(order: Order, *statuses: str, code: str = "invalid_order_status") -> None:
    if order.status not in statuses:
        raise Conflict(
            "Not possible while the order is %(status)s.", code=code, params={"status": order.status}
        )


# --- video -------------------------------------------------------------------------------------


def check_video_upload(*, seller: User, order_no: str) -> Order:
    """The seller's order that awaits its video, read without a lock: the API asks before it
    reads an upload's body (up to 100 MB), `upload_video` asks again under the lock."""
    order = access_order(user=seller, order_no=order_no, role="seller")
    _require(order, OrderStatus.AWAITING_VIDEO)
    return order


def upload_video(*, seller: User, order_no: str, file: File, extension: str) -> Order:
    """Stores the seller's video of the item and asks the buyer to confirm it."""
    order = check_video_upload(seller=seller, order_no=order_no)
    # Saved before the transaction: storage writes can be slow (S3) and must not hold the lock.
    name = f"order-videos/{order.order_no}-{secrets.token_hex(6)}.{extension}"
    # Private storage: never under the public media prefix (marketplace/media.py).
    stored = storages["private"].save(name, file)
    with transaction.atomic(durable=True):
        order = access_order(user=seller, order_no=order_no, role="seller", lock=True)
        if order.status != OrderStatus.AWAITING_VIDEO:
            storages["private"].delete(stored)
            _require(order, OrderStatus.AWAITING_VIDEO)
        order.video.name = stored
        order.video_uploaded_at = timezone.now()
        set_status(
            order,
            OrderStatus.AWAITING_CONFIRMATION,
            actor=Actor.SELLER,
            actor_user=seller,
            fields=["video", "video_uploaded_at"],
        )
        emit(user_ids=[order.buyer_id], type="order.video_ready", data=order_data(order))
    return order


def confirm_video(*, buyer: User, order_no: str) -> Order:
    with transaction.atomic(durable=True):
        order = access_order(user=buyer, order_no=order_no, role="buyer", lock=True)
        _require(order, OrderStatus.AWAITING_CONFIRMATION)
        return set_status(order, OrderStatus.AWAITING_SHIPMENT, actor=Actor.BUYER, actor_user=buyer)


def reject_video(*, buyer: User, order_no: str, reason: str) -> Order:
    """The item is not as described: cancelled, refunded in full, the listing back on sale."""
    with transaction.atomic(durable=True):
        order = access_order(user=buyer, order_no=order_no, role="buyer", lock=True)
        _require(order, OrderStatus.AWAITING_CONFIRMATION)
        return cancel_paid_order(
            order,
            actor=Actor.BUYER,
            actor_user=buyer,
            reason=f"video rejected: {reason}",
            listing_to=ListingStatus.ON_SALE,
        )


# --- shipping and tracking ---------------------------------------------------------------------


def tracking_callback_url(order: Order) -> str:
    return f"{settings.PUBLIC_BASE_URL}/api/logistics/kuaidi100/notify?order={order.order_no}"


def _carrier_for(tracking_no: str, carrier_code: str | None) -> str:
    if carrier_code:
        return kuaidi100.validate_carrier_code(carrier_code)
    candidates = kuaidi100.detect_carrier(tracking_no=tracking_no)
    known = [c.code for c in candidates if c.code in kuaidi100.CARRIERS]
    if not known:
        raise InvalidInput(
            "The carrier could not be detected from this number; choose it.", code="carrier_unknown"
        )
    return known[0]


def _subscribe(order: Order) -> None:
    """Asks Kuaidi100 to push this parcel's events; on failure the sweeper tries again."""
    try:
        kuaidi100.subscribe(
            carrier_code=order.carrier,
            tracking_no=order.tracking_no,
            callback_url=tracking_callback_url(order),
            salt=order.tracking_salt,
            phone=order.address.get("phone", "")[-4:],
        )
    except kuaidi100.Kuaidi100Error as exc:
        logger.warning("subscribe %s failed (%s); retrying later", order.order_no, exc.return_code)
        Order.objects.filter(pk=order.pk).update(
            tracking_resubscribe_at=timezone.now() + timedelta(minutes=5)
        )
        return
    Order.objects.filter(pk=order.pk).update(
        tracking_subscribed_at=timezone.now(), tracking_resubscribe_at=None
    )


def ship_order(*, seller: User, order_no: str, tracking_no: str, carrier_code: str | None) -> Order:
    tracking_no = kuaidi100.validate_tracking_no(tracking_no)
    order = access_order(user=seller, order_no=order_no, role="seller")
    _require(order, OrderStatus.AWAITING_SHIPMENT)
    carrier = _carrier_for(tracking_no, carrier_code)  # remote call: before any lock
    with transaction.atomic(durable=True):
        order = access_order(user=seller, order_no=order_no, role="seller", lock=True)
        _require(order, OrderStatus.AWAITING_SHIPMENT)
        order.carrier, order.tracking_no = carrier, tracking_no
        order.tracking_salt = secrets.token_hex(16)
        order.shipped_at = timezone.now()
        set_status(
            order,
            OrderStatus.SHIPPED,
            actor=Actor.SELLER,
            actor_user=seller,
            fields=["carrier", "tracking_no", "tracking_salt", "shipped_at"],
        )
    _subscribe(order)
    return order


def resubscribe_due_tracking(*, now: datetime | None = None) -> int:
    """Subscriptions that failed or were aborted by Kuaidi100, once their wait is over."""
    now = now or timezone.now()
    due = Order.objects.filter(
        status=OrderStatus.SHIPPED, tracking_resubscribe_at__lte=now
    ).order_by("tracking_resubscribe_at")[:200]
    count = 0
    for order in due:
        _subscribe(order)
        count += 1
    return count


def handle_tracking_push(*, order_no: str, form: dict) -> dict:
    """Kuaidi100's push for one order: verified with the order's salt, each new event stored
    once and pushed live to both sides. Returns the reply Kuaidi100 expects."""
    order = Order.objects.filter(order_no=order_no).exclude(tracking_salt="").first()
    if order is None:
        raise NotFound("No such shipment.", code="shipment_not_found")
    push = kuaidi100.parse_push(form=form, salt=order.tracking_salt)
    if push.tracking_no.upper() != order.tracking_no.upper():
        raise kuaidi100.PushRejected("The push is for another tracking number.")
    with transaction.atomic(durable=True):
        order = Order.objects.select_for_update().get(pk=order.pk)
        new_events = _store_events(order, push.events)
        changed = []
        if push.state is not None and push.state != order.tracking_state:
            order.tracking_state = push.state
            changed.append("tracking_state")
        if push.new_carrier and push.new_carrier != order.carrier:
            order.carrier = push.new_carrier  # Kuaidi100 corrected the carrier
            changed.append("carrier")
        if push.status == "abort":
            order.tracking_resubscribe_at = timezone.now() + RESUBSCRIBE_AFTER_ABORT
            changed.append("tracking_resubscribe_at")
        if changed:
            order.save(update_fields=[*changed, "updated_at"])
        if new_events or changed:
            cache.delete(_tracking_cache_key(order))
            emit(
                user_ids=[order.buyer_id, order.seller_id],
                type="order.shipping_update",
                data=tracking_data(order, fresh=False),
            )
    return kuaidi100.PUSH_ACK


def _store_events(order: Order, events: list) -> int:
    stored = 0
    for event in events:
        try:
            with transaction.atomic():
                TrackingEvent.objects.create(
                    order=order,
                    occurred_at=event.time,
                    text=event.text[:500],
                    location=event.location[:100],
                )
            stored += 1
        except IntegrityError:  # already stored from an earlier push
            continue
    return stored


def _tracking_cache_key(order: Order) -> str:
    return f"tracking:{order.pk}:{order.carrier}:{order.tracking_no}"


def tracking_data(order: Order, *, fresh: bool = True) -> dict:
    """`{carrier, tracking_no, state, events}`: a cached real-time query when `fresh`, falling
    back to the events Kuaidi100 pushed."""
    if not order.tracking_no:
        raise Conflict("This order has not shipped yet.", code="not_shipped")
    if fresh:
        cached = cache.get(_tracking_cache_key(order))
        if cached is not None:
            return cached
        try:
            result = kuaidi100.query(
                carrier_code=order.carrier,
                tracking_no=order.tracking_no,
                phone=order.address.get("phone", "")[-4:],
            )
        except DomainError as exc:
            logger.info(
                "tracking query for %s failed (%s); using stored events", order.order_no, exc
            )
        else:
            data = {
                "carrier": result.carrier or order.carrier,
                "tracking_no": order.tracking_no,
                "state": result.state,
                "events": [{"time": e.time, "text": e.text} for e in result.events],
            }
            cache.set(_tracking_cache_key(order), data, TRACKING_CACHE_SECONDS)
            return data
    return {
        "carrier": order.carrier,
        "tracking_no": order.tracking_no,
        "state": order.tracking_state,
        "events": [
            {"time": e.occurred_at, "text": e.text}
            for e in TrackingEvent.objects.filter(order=order).order_by("-occurred_at", "-id")
        ],
    }


# --- completion --------------------------------------------------------------------------------


def mark_delivered(*, seller: User, order_no: str) -> Order:
    """The seller says it arrived: the order completes 24 h later unless the buyer disputes."""
    with transaction.atomic(durable=True):
        order = access_order(user=seller, order_no=order_no, role="seller", lock=True)
        _require(order, OrderStatus.SHIPPED)
        if order.delivered_marked_at:
            return order
        now = timezone.now()
        order.delivered_marked_at = now
        order.deadline_at = deadline_after_delivery(order, now=now)
        order.save(update_fields=["delivered_marked_at", "deadline_at", "updated_at"])
        schedule_deadline(order)
        notify_order_status_changed(order)
    return order


def complete_order(
    order: Order,
    *,
    actor: str,
    actor_user: User | None,
    reason: str = "",
    fields: tuple[str, ...] = (),
) -> Order:
    """Completed, and the seller's credit scheduled: the task posts it once (a unique ledger
    key), the sweeper is the backstop. The caller holds the order lock."""
    order.completed_at = timezone.now()
    set_status(
        order,
        OrderStatus.COMPLETED,
        actor=actor,
        actor_user=actor_user,
        reason=reason,
        fields=["completed_at", *fields],
    )
    enqueue_on_commit("marketplace.tasks.credit_sale_task", order.pk)
    return order


def confirm_receipt(*, buyer: User, order_no: str) -> Order:
    with transaction.atomic(durable=True):
        order = access_order(user=buyer, order_no=order_no, role="buyer", lock=True)
        _require(order, OrderStatus.SHIPPED)
        return complete_order(
            order, actor=Actor.BUYER, actor_user=buyer, reason="receipt confirmed"
        )


def open_dispute(*, buyer: User, order_no: str, reason: str) -> Order:
    """Stops auto-completion; staff settle it."""
    with transaction.atomic(durable=True):
        order = access_order(user=buyer, order_no=order_no, role="buyer", lock=True)
        _require(order, OrderStatus.SHIPPED)
        Dispute.objects.create(order=order, reason=reason[:500])
        return set_status(
            order, OrderStatus.DISPUTED, actor=Actor.BUYER, actor_user=buyer, reason=reason
        )


def settle_dispute(*, staff: User, order_id: int, refund_fen: int, note: str) -> Order:
    """Staff decision: refund_fen == price + shipping → cancelled with a full refund; 0 → released to
    the seller (completed and credited); in between → the buyer gets refund_fen back and the
    seller is credited for the rest (completed)."""
    with transaction.atomic(durable=True):
        order = lock_order(order_id)
        _require(order, OrderStatus.DISPUTED, code="dispute_not_open")
        if not 0 <= refund_fen <= order.total_fen:
            raise InvalidInput(
                "The refund must be between 0 and the price plus shipping.", code="invalid_refund"
            )
        dispute = Dispute.objects.select_for_update().get(order=order)
        dispute.resolution = Dispute.Resolution.REFUND if refund_fen else Dispute.Resolution.RELEASE
        dispute.refund_fen, dispute.note = refund_fen, note[:500]
        dispute.settled_by, dispute.settled_at = staff, timezone.now()
        dispute.save()
        reason = f"dispute settled by staff: {note}"[:500]
        if refund_fen == order.total_fen:
            return cancel_paid_order(
                order,
                actor=Actor.STAFF,
                actor_user=staff,
                reason=reason,
                listing_to=ListingStatus.OFF_SHELF,
            )
        if refund_fen:
            request_refund(order=order, amount_fen=refund_fen, reason="partial refund (dispute)")
        order.commission_fen, _ = sale_split(
            price_fen=order.price_fen,
            shipping_fee_fen=order.shipping_fee_fen,
            refunded_fen=refund_fen,
            rate_bp=order.commission_rate_bp or 0,
        )
        return complete_order(
            order, actor=Actor.STAFF, actor_user=staff, reason=reason, fields=("commission_fen",)
        )


def uncredited_completed_order_ids(limit: int = 500) -> list[int]:
    return list(
        Order.objects.filter(status=OrderStatus.COMPLETED)
        .exclude(ledger_entries__kind="sale_credit")
        .values_list("pk", flat=True)[:limit]
    )


# --- reviews -----------------------------------------------------------------------------------


def review_order(*, buyer: User, order_no: str, rating: int, comment: str) -> Review:
    """Once per completed order. The seller's count and total move with it, so profiles never
    aggregate per request."""
    order = access_order(user=buyer, order_no=order_no, role="buyer")
    _require(order, OrderStatus.COMPLETED, code="not_completed")
    if Review.objects.filter(order=order).exists():
        raise Conflict("You already reviewed this order.", code="already_reviewed")
    if (
        comment
        and wechat.text_check(openid=buyer.openid or "", content=comment, scene=2) == "risky"
    ):
        raise InvalidInput("The comment did not pass the content check.", code="content_rejected")
    try:
        with transaction.atomic(durable=True):
            review = Review.objects.create(
                order=order, buyer=buyer, seller_id=order.seller_id, rating=rating, comment=comment
            )
            User.objects.filter(pk=order.seller_id).update(
                rating_count=F("rating_count") + 1, rating_total=F("rating_total") + rating
            )
    except IntegrityError as exc:  # a concurrent second review of the same order
        raise Conflict("You already reviewed this order.", code="already_reviewed") from exc
    return review
