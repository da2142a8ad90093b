"""The sellers' money: a balance per user backed by an append-only ledger.

Invariant (tested): a wallet's available and frozen amounts equal the sums of its entries'
deltas, and neither is ever negative. Only marketplace.actions.wallet.post_entry writes either.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from marketplace.states import WithdrawalStatus


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
    withdrawal = models.ForeignKey(
        "marketplace.Withdrawal",
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


class PayoutAccount(models.Model):
    """Where a seller wants withdrawals sent. The number is personal data: stored encrypted
    (marketplace.actions.wallet.encrypt_account_no), shown masked; only its last 4 characters
    are kept in clear for the mask."""

    class Type(models.TextChoices):
        ALIPAY = "alipay", "支付宝"
        WECHAT = "wechat", "微信"
        BANK = "bank", "银行卡"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payout_accounts"
    )
    type = models.CharField(max_length=10, choices=Type.choices)
    holder_name = models.CharField(max_length=40)
    bank_name = models.CharField(max_length=60, blank=True)
    account_no_encrypted = models.TextField()
    account_last4 = models.CharField(max_length=4)
    created_at = models.DateTimeField(auto_now_add=True)
    # Withdrawals keep pointing at an account the seller removed, so paid ones stay traceable:
    # such an account is hidden (deleted_at set) instead of dropped.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "wallet_payout_account"
        ordering = ["-id"]
        indexes = [models.Index(fields=["user", "deleted_at"], name="payout_account_user")]
        permissions = [
            ("view_full_account_number", "Can see full payout account numbers (to pay out)"),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} **** {self.account_last4} ({self.holder_name})"

    @property
    def masked_account_no(self) -> str:
        return f"**** {self.account_last4}"


class Withdrawal(models.Model):
    Status = WithdrawalStatus

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="withdrawals"
    )
    account = models.ForeignKey(PayoutAccount, on_delete=models.PROTECT, related_name="+")
    amount_fen = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    transfer_reference = models.CharField(max_length=100, blank=True)
    reject_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        db_table = "wallet_withdrawal"
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["user", "-id"], name="withdrawal_user"),
            models.Index(fields=["status", "created_at"], name="withdrawal_queue"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_fen__gt=0), name="withdrawal_amount_positive"
            ),
            # A decided withdrawal says how: paid ones carry the transfer, rejected ones why.
            models.CheckConstraint(
                condition=Q(status="pending")
                | Q(status="paid", transfer_reference__gt="")
                | Q(status="rejected", reject_reason__gt=""),
                name="withdrawal_decision_recorded",
            ),
        ]

    def __str__(self) -> str:
        return f"withdrawal #{self.pk} {self.amount_fen} fen ({self.status})"
