"""Every status machine of the marketplace app and its one transition table (SPEC §2, §3, §5).

Nothing else decides what may follow what. Each machine's `move` is the only code that assigns
a status: it refuses an illegal move with a 409 and saves only the status plus the fields the
caller names. Offers have their table in negotiation/states.py, built the same way.
"""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.db import models
from django.utils import timezone

from marketplace.errors import Conflict


class Machine:
    """A status field, its allowed moves, and the one way to perform them."""

    def __init__(
        self, name: str, transitions: Mapping[str, Iterable[str]], *, code: str
    ) -> None:
        self.name = name
        self.transitions: dict[str, frozenset[str]] = {
            str(source): frozenset(str(target) for target in targets)
            for source, targets in transitions.items()
        }
        self.code = code
        self.terminal = frozenset(s for s, targets in self.transitions.items() if not targets)
        # Called in the mover's transaction after each move, with the target status and the
        # moved objects (a list) or the queryset about to move (a set-based move). Registered
        # by the module that must follow the moves (marketplace.actions.social for listings),
        # so the machine stays the one place a status is assigned.
        self.observers: list[Callable[[str, Any], None]] = []

    def can(self, current: str, target: str) -> bool:
        return target in self.transitions.get(current, frozenset())

    def sources_of(self, target: str) -> frozenset[str]:
        """Every status from which `target` may be reached."""
        return frozenset(s for s, targets in self.transitions.items() if target in targets)

    def check(self, current: str, target: str) -> None:
        if not self.can(current, target):
            raise Conflict(
                "A %(machine)s that is %(current)s cannot become %(target)s.",
                code=self.code,
                params={"machine": self.name, "current": current, "target": target},
            )

    def move(self, obj: models.Model, to: str, *, fields: Iterable[str] = ()) -> str:
        """Checks and saves `obj.status = to` with `fields` (set by the caller just before);
        returns the status it left. The caller holds the row lock."""
        current: str = obj.status  # type: ignore[attr-defined]
        self.check(current, to)
        obj.status = to  # type: ignore[attr-defined]
        update = ["status", *fields]
        if _has_field(obj, "updated_at"):
            update.append("updated_at")
        obj.save(update_fields=list(dict.fromkeys(update)))
        for observer in self.observers:
            observer(to, [obj])
        return current

    def move_rows(
        self, queryset: models.QuerySet[Any], to: str, *, among: Iterable[str] | None = None, **values: Any
    ) -> int:
        """The set-based move: rows of `queryset` in a status that may become `to` (narrowed to
        `among` when given) move in one UPDATE; rows in any other status are left alone."""
        sources = self.sources_of(to)
        if among is not None:
            sources &= frozenset(among)
        if _has_field(queryset.model, "updated_at"):
            values.setdefault("updated_at", timezone.now())
        moving = queryset.filter(status__in=sorted(sources))
        for observer in self.observers:
            observer(to, moving)
        return moving.update(status=to, **values)


def _has_field(model: Any, name: str) -> bool:
    return any(field.name == name for field in model._meta.concrete_fields)


# --- orders (SPEC §3) ------------------------------------------------------------------------


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

ORDER = Machine(
    "order",
    {
        S.PENDING_PAYMENT: {S.AWAITING_VIDEO, S.CLOSED},
        S.AWAITING_VIDEO: {S.AWAITING_CONFIRMATION, S.CANCELLED},
        S.AWAITING_CONFIRMATION: {S.AWAITING_SHIPMENT, S.CANCELLED},
        S.AWAITING_SHIPMENT: {S.SHIPPED, S.CANCELLED},
        S.SHIPPED: {S.COMPLETED, S.DISPUTED},
        S.DISPUTED: {S.COMPLETED, S.CANCELLED},
        S.COMPLETED: set(),
        S.CANCELLED: set(),
        S.CLOSED: set(),
    },
    code="invalid_order_status",
)
TRANSITIONS = ORDER.transitions
TERMINAL = ORDER.terminal
# Paid and not yet in the buyer's hands: cancelling means a full refund.
PAID_BEFORE_SHIPMENT = frozenset({S.AWAITING_VIDEO, S.AWAITING_CONFIRMATION, S.AWAITING_SHIPMENT})
# Statuses whose deadline (Order.deadline_at) moves the order on by itself; the deadline rules
# themselves are `marketplace.actions.orders.deadline_after`.
WITH_DEADLINE = frozenset({S.PENDING_PAYMENT, S.AWAITING_VIDEO, S.AWAITING_CONFIRMATION, S.SHIPPED})


def can_transition(current: str, target: str) -> bool:
    return ORDER.can(current, target)


# --- listings (SPEC §2) ----------------------------------------------------------------------


class ListingStatus(models.TextChoices):
    PENDING_REVIEW = "pending_review", "待审核"
    REJECTED = "rejected", "未通过"
    ON_SALE = "on_sale", "在售"
    RESERVED = "reserved", "已预订"
    SOLD = "sold", "已售出"
    OFF_SHELF = "off_shelf", "已下架"


L = ListingStatus

LISTING = Machine(
    "listing",
    {
        # A content edit while waiting for review submits it again (the review clock restarts).
        L.PENDING_REVIEW: {L.PENDING_REVIEW, L.ON_SALE, L.REJECTED, L.OFF_SHELF},
        L.REJECTED: {L.PENDING_REVIEW, L.OFF_SHELF},
        L.ON_SALE: {L.RESERVED, L.PENDING_REVIEW, L.OFF_SHELF},
        # Paid → sold; unpaid and closed → on sale again.
        L.RESERVED: {L.SOLD, L.ON_SALE},
        # A paid order cancelled: back on sale, or off the shelf when the seller was at fault.
        L.SOLD: {L.ON_SALE, L.OFF_SHELF},
        L.OFF_SHELF: {L.PENDING_REVIEW},
    },
    code="invalid_listing_status",
)


# --- refunds (SPEC §3, WeChat Pay refunds) ---------------------------------------------------


class RefundStatus(models.TextChoices):
    PENDING = "pending", "待提交"
    PROCESSING = "processing", "退款中"
    SUCCEEDED = "succeeded", "已退款"
    NEEDS_ATTENTION = "needs_attention", "需人工处理"


R = RefundStatus

REFUND = Machine(
    "refund",
    {
        # PENDING → SUCCEEDED when WeChat settles at once (its answer to the submission).
        R.PENDING: {R.PROCESSING, R.SUCCEEDED, R.NEEDS_ATTENTION},
        R.PROCESSING: {R.SUCCEEDED, R.NEEDS_ATTENTION},
        # Staff resubmit after fixing the cause.
        R.NEEDS_ATTENTION: {R.PENDING},
        R.SUCCEEDED: set(),
    },
    code="invalid_refund_status",
)


# --- withdrawals (SPEC §5) -------------------------------------------------------------------


class WithdrawalStatus(models.TextChoices):
    PENDING = "pending", "待打款"
    # To the user's WeChat balance: WeChat accepted the transfer, the user must confirm it in
    # the mini-program (wx.requestMerchantTransfer).
    AWAITING_USER_CONFIRMATION = "awaiting_user_confirmation", "待用户确认收款"
    PAID = "paid", "已打款"
    REJECTED = "rejected", "已驳回"
    # A WeChat transfer that failed, was cancelled or was not confirmed in time: hold released.
    FAILED = "failed", "转账失败"


W = WithdrawalStatus

WITHDRAWAL = Machine(
    "withdrawal",
    {
        W.PENDING: {W.PAID, W.REJECTED, W.AWAITING_USER_CONFIRMATION, W.FAILED},
        W.AWAITING_USER_CONFIRMATION: {W.PAID, W.FAILED},
        W.PAID: set(),
        W.REJECTED: set(),
        W.FAILED: set(),
    },
    code="invalid_withdrawal_status",
)

MACHINES = (ORDER, LISTING, REFUND, WITHDRAWAL)
