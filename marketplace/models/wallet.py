"""The sellers' money: a balance per user backed by an append-only ledger.

Invariant (tested): a wallet's available and frozen amounts equal the sums of its entries'
deltas, and neither is ever negative. Only marketplace.actions.wallet.post_entry writes either.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Wallet(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="wallet"
    )
    available_fen = models.BigIntegerField(default=0)
    frozen_fen = models.BigIntegerField(default=0)
    total_earned_fen = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "wallet_wallet"
        constraints = [
            models.CheckConstraint(
                condition=Q(available_fen__gte=0), name="wallet_available_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(frozen_fen__gte=0), name="wallet_frozen_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"wallet of {self.user_id}"


class LedgerEntry(models.Model):
    class Kind(models.TextChoices):
        SALE_CREDIT = "sale_credit", "订单收入"
        WITHDRAWAL_HOLD = "withdrawal_hold", "提现冻结"
        WITHDRAWAL_PAID = "withdrawal_paid", "提现到账"
        WITHDRAWAL_RELEASE = "withdrawal_release", "提现退回"
        ADJUSTMENT = "adjustment", "人工调整"

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    # Signed changes to the two buckets; a hold moves money from available to frozen.
    available_delta_fen = models.BigIntegerField()
    frozen_delta_fen = models.BigIntegerField(default=0)
    available_after_fen = models.BigIntegerField()
    frozen_after_fen = models.BigIntegerField()
    order = models.ForeignKey(
        "marketplace.Order",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
    )
    # What this entry is, uniquely ("order:42:sale_credit"): posting it twice is refused by the
    # database, so a task and the sweeper racing on one credit pay it once.
    unique_key = models.CharField(max_length=80, unique=True)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "wallet_ledger_entry"
        ordering = ["-id"]
        indexes = [models.Index(fields=["wallet", "-id"], name="ledger_wallet")]

    def __str__(self) -> str:
        return f"{self.kind} {self.available_delta_fen:+d}/{self.frozen_delta_fen:+d}"
