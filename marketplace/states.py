"""Order statuses and the one transition table (SPEC §3). Nothing else decides what may follow what."""

from django.db import models


class OrderStatus(models.TextChoices):
    PENDING_PAYMENT = "pending_payment", "待付款"
    AWAITING_VIDEO = "awaiting_video", "待卖家拍视频"
    AWAITING_CONFIRMATION = "awaiting_confirmation", "待买家确认视频"
    AWAITING_SHIPMENT = "awaiting_shipment", "待发货"
    SHIPPED = "shipped", "已发货"
    COMPLETED = "completed", "已完成"
    DISPUTED = "disputed", "纠纷中"
    CANCELLED = "cancelled", "已取消（退款）"
    CLOSED = "closed", "已关闭（未付款）"


S = OrderStatus

TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING_PAYMENT: frozenset({S.AWAITING_VIDEO, S.CLOSED}),
    S.AWAITING_VIDEO: frozenset({S.AWAITING_CONFIRMATION, S.CANCELLED}),
    S.AWAITING_CONFIRMATION: frozenset({S.AWAITING_SHIPMENT, S.CANCELLED}),
    S.AWAITING_SHIPMENT: frozenset({S.SHIPPED, S.CANCELLED}),
    S.SHIPPED: frozenset({S.COMPLETED, S.DISPUTED}),
    S.DISPUTED: frozenset({S.COMPLETED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
    S.CLOSED: frozenset(),
}

TERMINAL = frozenset(status for status, targets in TRANSITIONS.items() if not targets)
# Paid and not yet in the buyer's hands: cancelling means a full refund.
PAID_BEFORE_SHIPMENT = frozenset({S.AWAITING_VIDEO, S.AWAITING_CONFIRMATION, S.AWAITING_SHIPMENT})
# Statuses whose deadline (Order.deadline_at) moves the order on by itself.
WITH_DEADLINE = frozenset({S.PENDING_PAYMENT, S.AWAITING_VIDEO, S.AWAITING_CONFIRMATION, S.SHIPPED})


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())
