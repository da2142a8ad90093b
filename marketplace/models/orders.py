"""Orders, their append-only history, refunds, raw payment notifications and platform settings."""

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.db import models
from django.db.models import Q

from marketplace.states import OrderStatus, RefundStatus


def private_storage() -> Storage:
    """Order videos are private (marketplace/media.py); a callable keeps settings out of the
    migration."""
    return storages["private"]


class PlatformSettings(models.Model):
    """Staff-set business parameters: one row (pk=1), every change recorded."""

    commission_rate_bp = models.PositiveIntegerField(
        default=500, help_text="Commission in basis points (500 = 5%), 0..5000."
    )
    payment_minutes = models.PositiveIntegerField(default=30)
    video_upload_hours = models.PositiveIntegerField(default=24)
    video_confirm_hours = models.PositiveIntegerField(default=3)
    complete_after_delivered_hours = models.PositiveIntegerField(default=24)
    complete_after_shipped_days = models.PositiveIntegerField(default=10)
    offer_expiry_hours = models.PositiveIntegerField(default=24)
    offers_per_listing_per_day = models.PositiveIntegerField(default=5)
    min_withdrawal_fen = models.PositiveIntegerField(default=100)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "platform_settings"
        verbose_name = verbose_name_plural = "platform settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(commission_rate_bp__lte=5000), name="commission_at_most_half"
            ),
        ]

    def __str__(self) -> str:
        return "Platform settings"


class PlatformSettingsChange(models.Model):
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    field = models.CharField(max_length=60)
    old_value = models.CharField(max_length=60)
    new_value = models.CharField(max_length=60)
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "platform_settings_change"
        ordering = ["-changed_at"]

    def __str__(self) -> str:
        return f"{self.field}: {self.old_value} → {self.new_value}"


class Order(models.Model):
    order_no = models.CharField(max_length=32, unique=True)
    buyer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="purchases"
    )
    seller = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sales"
    )
    listing = models.ForeignKey(
        "marketplace.Listing", on_delete=models.PROTECT, related_name="orders"
    )
    title = models.CharField(max_length=60, help_text="The listing's title when ordered.")
    # The item as it was bought (issue 18): the order renders from these whatever later happens
    # to the listing (edited, off the shelf) or its seller (renamed, banned, erased).
    cover = models.CharField(
        max_length=300, blank=True, help_text="The listing's cover (a storage name) when ordered."
    )
    seller_nickname = models.CharField(max_length=64, blank=True)
    seller_avatar_url = models.CharField(max_length=500, blank=True)
    # The item's price (agreed in a bargain, or the listing's); commission is on this alone.
    price_fen = models.BigIntegerField()
    # The listing's shipping fee when ordered, paid on top of the price (0 = 包邮).
    shipping_fee_fen = models.BigIntegerField(default=0)
    # A copy, not a reference: editing the address book never changes where an order ships.
    address = models.JSONField()
    status = models.CharField(
        max_length=30, choices=OrderStatus.choices, default=OrderStatus.PENDING_PAYMENT
    )
    # The current status's deadline; the sweeper finds overdue orders by it.
    deadline_at = models.DateTimeField(null=True, blank=True)
    # Frozen when paid (SPEC §3); the split is computed by marketplace.money.split_commission.
    commission_rate_bp = models.PositiveIntegerField(null=True, blank=True)
    commission_fen = models.BigIntegerField(null=True, blank=True)

    prepay_id = models.CharField(max_length=64, blank=True)
    prepay_expires_at = models.DateTimeField(null=True, blank=True)
    transaction_id = models.CharField(max_length=64, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    video = models.FileField(upload_to="order-videos/%Y/%m/", storage=private_storage, blank=True)
    video_uploaded_at = models.DateTimeField(null=True, blank=True)
    carrier = models.CharField(max_length=30, blank=True)
    tracking_no = models.CharField(max_length=32, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    # Kuaidi100 signs its pushes with this per-order salt; the callback URL names the order.
    tracking_salt = models.CharField(max_length=64, blank=True)
    tracking_state = models.SmallIntegerField(null=True, blank=True)
    tracking_subscribed_at = models.DateTimeField(null=True, blank=True)
    # After an `abort` push Kuaidi100 wants at least 30 minutes before a new subscription.
    tracking_resubscribe_at = models.DateTimeField(null=True, blank=True, db_index=True)
    delivered_marked_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "orders_order"
        constraints = [
            models.CheckConstraint(condition=Q(price_fen__gte=1), name="order_price_positive"),
            models.CheckConstraint(
                condition=Q(shipping_fee_fen__gte=0), name="order_shipping_fee_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(status__in=OrderStatus.values), name="order_status_valid"
            ),
            # The database itself refuses a second live order on one listing.
            models.UniqueConstraint(
                fields=["listing"],
                condition=Q(
                    status__in=[
                        OrderStatus.PENDING_PAYMENT,
                        OrderStatus.AWAITING_VIDEO,
                        OrderStatus.AWAITING_CONFIRMATION,
                        OrderStatus.AWAITING_SHIPMENT,
                        OrderStatus.SHIPPED,
                        OrderStatus.DISPUTED,
                        OrderStatus.COMPLETED,
                    ]
                ),
                name="one_live_order_per_listing",
            ),
        ]
        indexes = [
            models.Index(fields=["buyer", "-id"], name="order_buyer"),
            models.Index(fields=["seller", "-id"], name="order_seller"),
            models.Index(fields=["status", "deadline_at"], name="order_deadline"),
            # The sweep walks one status's orders by id (lifecycle.overdue_order_ids).
            models.Index(fields=["status", "id"], name="order_status_id"),
        ]

    def __str__(self) -> str:
        return self.order_no

    @property
    def total_fen(self) -> int:
        """What the buyer pays, and what a full refund returns: price + shipping."""
        return self.price_fen + self.shipping_fee_fen


class OrderHistory(models.Model):
    """Append-only: one row per status change (who, when, from, to, why)."""

    class Actor(models.TextChoices):
        BUYER = "buyer"
        SELLER = "seller"
        STAFF = "staff"
        SYSTEM = "system"
        WECHAT = "wechat"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="history")
    from_status = models.CharField(max_length=30, blank=True)
    to_status = models.CharField(max_length=30)
    actor = models.CharField(max_length=10, choices=Actor.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "orders_history"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.from_status or '∅'} → {self.to_status}"


class Refund(models.Model):
    """At most one per order; `out_refund_no` is derived from the order number, so WeChat Pay
    itself refuses to pay the same refund twice."""

    Status = RefundStatus

    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="refund")
    out_refund_no = models.CharField(max_length=64, unique=True)
    amount_fen = models.BigIntegerField()
    reason = models.CharField(max_length=80)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    wechat_refund_id = models.CharField(max_length=64, blank=True)
    wechat_status = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "orders_refund"
        constraints = [
            models.CheckConstraint(condition=Q(amount_fen__gte=1), name="refund_positive"),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="refund_due")]

    def __str__(self) -> str:
        return self.out_refund_no


class PaymentNotification(models.Model):
    """Every notification WeChat Pay sent us, verified or not, kept as received for audit."""

    class Kind(models.TextChoices):
        PAYMENT = "payment"
        REFUND = "refund"
        TRANSFER = "transfer"

    # The outcome of a verified notification that is not about us (marketplace/actions/
    # notifications.py): the admin filters on it and the staff dashboard counts it.
    REFUSED_PREFIX = "refused: "

    kind = models.CharField(max_length=10, choices=Kind.choices)
    notification_id = models.CharField(max_length=64, blank=True, db_index=True)
    event_type = models.CharField(max_length=40, blank=True)
    headers = models.JSONField(default=dict)
    body = models.TextField()
    is_verified = models.BooleanField(default=False)
    out_trade_no = models.CharField(max_length=32, blank=True, db_index=True)
    outcome = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "orders_payment_notification"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.notification_id or '?'} ({self.outcome})"


class IdempotencyRecord(models.Model):
    """The first answer to a request carrying an Idempotency-Key, replayed for repeats of that
    same request (marketplace/actions/idempotency.py)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=40)
    key = models.CharField(max_length=100)
    # SHA-256 of method, path and body: the request the key belongs to ("" on older records).
    fingerprint = models.CharField(max_length=64, blank=True, default="")
    # When the request now holding the key claimed it; the in-flight lease runs from here.
    claimed_at = models.DateTimeField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    # The answer as JSON text, not jsonb: PostgreSQL reorders jsonb keys, and a replay must be
    # the first answer byte for byte.
    body = models.TextField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "idempotency_record"
        constraints = [
            models.UniqueConstraint(fields=["user", "scope", "key"], name="idempotency_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key}"
