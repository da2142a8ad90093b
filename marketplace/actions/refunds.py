"""Refunds: one per order, a deterministic out_refund_no, submitted by a task with retries,
resumed by the sweeper, settled by WeChat Pay's refund notification."""

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from marketplace.actions.notifications import (
    check_merchant,
    mapping,
    receive_notification,
    record_outcome,
    refusal,
)
from marketplace.gateways import wechatpay
from marketplace.models.orders import Order, PaymentNotification, Refund
from marketplace.states import REFUND
from project.tasking import enqueue_on_commit

logger = logging.getLogger("marketplace.refunds")

MAX_ATTEMPTS = 8
# A refund WeChat accepted but has not settled after this long is queried by the sweeper.
SETTLE_QUERY_AFTER = timedelta(minutes=10)
# While one submission is in flight, the sweeper leaves the refund alone for this long.
SUBMIT_LEASE = timedelta(minutes=2)


def refund_number(order: Order) -> str:
    return f"{order.order_no}R"


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... capped at one hour."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def request_refunds(
    *, orders: Sequence[Order], reasons: dict[int, str], amounts: dict[int, int] | None = None
) -> list[Refund]:
    """Records a refund for each order (the full total, price + shipping, unless `amounts` says otherwise) in the
    caller's transaction and submits them after commit, by one task. An order that already has a
    refund keeps it: never two refunds for one order. One order or a sweep's thousand take this
    same path."""
    amounts = amounts or {}
    have = set(Refund.objects.filter(order__any_of=orders).values_list("order_id", flat=True))
    now = timezone.now()
    new = []
    for order in orders:
        if order.pk in have:
            continue
        # A full refund returns what the buyer paid: the price and the shipping.
        amount = amounts.get(order.pk, order.total_fen)
        if not 0 < amount <= order.total_fen:
            raise ValueError(f"refund of {amount} fen on an order of {order.total_fen} fen")
        new.append(
            Refund(
                order=order,
                out_refund_no=refund_number(order),
                amount_fen=amount,
                reason=(reasons.get(order.pk) or "order cancelled")[:80],
                next_attempt_at=now + SUBMIT_LEASE,
            )
        )
    refunds = _store_refunds(new)
    if refunds:
        enqueue_on_commit("marketplace.tasks.submit_refunds_task", [r.pk for r in refunds])
        logger.info(
            "%d refund(s) requested: %s", len(refunds), ", ".join(r.out_refund_no for r in refunds[:5])
        )
    return refunds


_COPY_REFUNDS_SQL = (
    "COPY orders_refund (order_id, out_refund_no, amount_fen, reason, status, attempts,"
    " next_attempt_at, last_error, wechat_refund_id, wechat_status, created_at) FROM STDIN"
)
_REFUND_IDS_SQL = "SELECT order_id, id FROM orders_refund WHERE order_id = ANY(%s::bigint[])"


def _store_refunds(refunds: list[Refund]) -> list[Refund]:
    """Stores new refunds, ids set. A batch by COPY on PostgreSQL, the ids then read by order:
    measured, bulk_create's INSERT of a sweep's 2,000 rows (a placeholder per value, split and
    quoted by psycopg) was a tenth of the sweep. COPY names every column; a new one without a
    default fails here, loudly."""
    if len(refunds) <= 1 or connection.vendor != "postgresql":
        return Refund.objects.bulk_create(refunds, batch_size=500)
    now = timezone.now()  # what auto_now_add would have written
    with connection.cursor() as cursor:
        with cursor.cursor.copy(_COPY_REFUNDS_SQL) as copy:
            for refund in refunds:
                refund.created_at = now
                copy.write_row(
                    (
                        refund.order_id,
                        refund.out_refund_no,
                        refund.amount_fen,
                        refund.reason,
                        refund.status,
                        refund.attempts,
                        refund.next_attempt_at,
                        refund.last_error,
                        refund.wechat_refund_id,
                        refund.wechat_status,
                        now,
                    )
                )
        cursor.execute(_REFUND_IDS_SQL, [[refund.order_id for refund in refunds]])
        ids = dict(cursor.fetchall())
    for refund in refunds:
        refund.pk = ids[refund.order_id]
        refund._state.adding, refund._state.db = False, connection.alias  # as bulk_create does
    return refunds


def request_refund(*, order: Order, amount_fen: int, reason: str) -> Refund:
    """One order's refund (see `request_refunds`); the existing one when it has one."""
    request_refunds(orders=[order], reasons={order.pk: reason}, amounts={order.pk: amount_fen})
    return Refund.objects.get(order=order)


def _claim(refund_id: int, now: datetime) -> Refund | None:
    with transaction.atomic(durable=True):
        refund = Refund.objects.select_for_update().select_related("order").get(pk=refund_id)
        if refund.status != Refund.Status.PENDING:
            return None
        refund.attempts += 1
        refund.next_attempt_at = now + SUBMIT_LEASE
        refund.save(update_fields=["attempts", "next_attempt_at"])
        return refund


def submit_refund(*, refund_id: int, now: datetime | None = None) -> str:
    """Sends the refund to WeChat Pay. Safe to run twice at once: WeChat refunds one
    out_refund_no once, and only a PENDING refund is sent."""
    now = now or timezone.now()
    refund = _claim(refund_id, now)
    if refund is None:
        return "not_pending"
    try:
        result = wechatpay.refund(
            out_refund_no=refund.out_refund_no,
            out_trade_no=refund.order.order_no,
            refund_fen=refund.amount_fen,
            total_fen=refund.order.total_fen,
            reason=refund.reason,
        )
    except wechatpay.PaymentGatewayError as exc:
        return _record_failure(refund_id, exc, now)
    with transaction.atomic(durable=True):
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        if refund.status == Refund.Status.PENDING:
            refund.submitted_at = now
            refund.wechat_refund_id = str(result.get("refund_id", ""))[:64]
            refund.wechat_status = str(result.get("status", ""))[:20]
            refund.last_error = ""
            REFUND.move(
                refund,
                Refund.Status.PROCESSING,
                fields=["submitted_at", "wechat_refund_id", "wechat_status", "last_error"],
            )
        if result.get("status") == "SUCCESS":
            _settle(refund, "SUCCESS")
    return "submitted"


def _record_failure(refund_id: int, exc: "wechatpay.PaymentGatewayError", now: datetime) -> str:
    with transaction.atomic(durable=True):
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        if refund.status != Refund.Status.PENDING:
            return "not_pending"  # settled meanwhile (a notification, or a concurrent submit)
        refund.last_error = str(exc)[:500]
        if exc.retryable and refund.attempts < MAX_ATTEMPTS:
            refund.next_attempt_at = now + backoff(refund.attempts)
            refund.save(update_fields=["last_error", "next_attempt_at"])
            outcome = "retry_later"
        else:
            REFUND.move(refund, Refund.Status.NEEDS_ATTENTION, fields=["last_error"])
            outcome = "needs_attention"
    logger.warning("refund %s: %s (%s)", refund.out_refund_no, exc, outcome)
    return outcome


def _settle(refund: Refund, wechat_status: str) -> None:
    """Applies WeChat's final word on a locked refund (once: a settled refund stays settled)."""
    if refund.status in {Refund.Status.SUCCEEDED, Refund.Status.NEEDS_ATTENTION}:
        return
    refund.wechat_status = wechat_status[:20]
    if wechat_status == "SUCCESS":
        refund.succeeded_at = refund.succeeded_at or timezone.now()
        REFUND.move(refund, Refund.Status.SUCCEEDED, fields=["wechat_status", "succeeded_at"])
    elif wechat_status in {"ABNORMAL", "CLOSED"}:
        REFUND.move(refund, Refund.Status.NEEDS_ATTENTION, fields=["wechat_status"])
    else:
        refund.save(update_fields=["wechat_status"])


def _refund_mismatch(refund: Refund, resource: Mapping) -> tuple[str, str] | None:
    """Why a refund resource is not exactly this refund (reason, detail), or None."""
    if str(resource.get("out_trade_no", "")) != refund.order.order_no:
        return "out_trade_no_mismatch", f"out_trade_no {resource.get('out_trade_no')!r}"
    amount = mapping(resource.get("amount"))
    # WeChat's refund notification carries no currency; when one is there it must be ours.
    if "currency" in amount and amount["currency"] != "CNY":
        return "currency_mismatch", f"currency {amount['currency']!r}"
    refunded, total = amount.get("refund"), amount.get("total")
    if (
        isinstance(refunded, bool)
        or isinstance(total, bool)
        or refunded != refund.amount_fen
        or total != refund.order.total_fen
    ):
        return (
            "amount_mismatch",
            f"refund {refunded!r} of {total!r} fen, expected {refund.amount_fen} of "
            f"{refund.order.total_fen}",
        )
    return None


def handle_refund_notification(*, headers: Mapping[str, str], body: bytes) -> str:
    """Verifies, records and settles a refund notification, once, when it is exactly one of our
    refunds (merchant, refund and order numbers, amounts); anything else is refused."""
    record, notification = receive_notification(
        kind=PaymentNotification.Kind.REFUND, headers=headers, body=body
    )
    resource = notification.resource
    about = f"refund {str(resource.get('out_refund_no', '?'))[:64]}"
    reason = check_merchant(resource, with_appid=False)
    if reason:
        detail = f"mchid {resource.get('mchid')!r}"
        return record_outcome(record, refusal(reason, kind="refund", about=about, detail=detail))
    with transaction.atomic(durable=True):
        refund = (
            Refund.objects.select_for_update()
            .select_related("order")
            .filter(out_refund_no=str(resource.get("out_refund_no", "")))
            .first()
        )
        mismatch = _refund_mismatch(refund, resource) if refund is not None else None
        if refund is None:
            outcome = refusal("unknown_refund", kind="refund", about=about)
        elif mismatch:
            outcome = refusal(mismatch[0], kind="refund", about=about, detail=mismatch[1])
        elif refund.status in {Refund.Status.SUCCEEDED, Refund.Status.NEEDS_ATTENTION}:
            outcome = "duplicate"
        else:
            _settle(refund, str(resource.get("refund_status", "")))
            outcome = f"refund_{refund.status}"
    return record_outcome(record, outcome)


def sweep_refunds(*, now: datetime | None = None) -> dict[str, int]:
    """Resumes refunds whose task was lost or failed, and asks WeChat about stalled ones."""
    now = now or timezone.now()
    outcomes: dict[str, int] = {}
    due = Refund.objects.filter(status=Refund.Status.PENDING, next_attempt_at__lte=now)
    for refund_id in due.values_list("pk", flat=True)[:500]:
        outcome = submit_refund(refund_id=refund_id, now=now)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    stalled = Refund.objects.filter(
        status=Refund.Status.PROCESSING, submitted_at__lte=now - SETTLE_QUERY_AFTER
    )
    for refund in stalled[:500]:
        try:
            remote = wechatpay.query_refund(out_refund_no=refund.out_refund_no)
        except wechatpay.PaymentGatewayError as exc:
            logger.warning("query of refund %s failed: %s", refund.out_refund_no, exc)
            continue
        if remote and remote.get("status") in {"SUCCESS", "ABNORMAL", "CLOSED"}:
            with transaction.atomic(durable=True):
                locked = Refund.objects.select_for_update().get(pk=refund.pk)
                if locked.status == Refund.Status.PROCESSING:
                    _settle(locked, remote["status"])
            outcomes["settled_by_query"] = outcomes.get("settled_by_query", 0) + 1
    return outcomes


def retry_refund(*, refund_id: int, staff) -> bool:
    """Staff send a refund that needs attention once more (after fixing its cause)."""
    with transaction.atomic(durable=True):
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        if refund.status != Refund.Status.NEEDS_ATTENTION:
            return False
        refund.attempts = 0
        refund.next_attempt_at = timezone.now() + SUBMIT_LEASE
        refund.last_error = f"resubmitted by {staff.username}"
        REFUND.move(
            refund, Refund.Status.PENDING, fields=["attempts", "next_attempt_at", "last_error"]
        )
        enqueue_on_commit("marketplace.tasks.submit_refund_task", refund_id)
    logger.info("refund %s resubmitted by %s", refund.out_refund_no, staff.username)
    return True
