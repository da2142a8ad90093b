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

    class Destination(models.TextChoices):
        ACCOUNT = "account", "收款账户（人工打款）"
        WECHAT_BALANCE = "wechat_balance", "微信零钱（商家转账）"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="withdrawals"
    )
    # Where the money goes: a payout account staff pay by hand, or the user's own WeChat
    # balance through WeChat Pay's merchant transfer (then no account: `transfer` holds it).
    to = models.CharField(max_length=20, choices=Destination.choices, default=Destination.ACCOUNT)
    account = models.ForeignKey(
        PayoutAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    amount_fen = models.BigIntegerField()
    status = models.CharField(max_length=30, choices=Status.choices, default=Status.PENDING)
    transfer_reference = models.CharField(max_length=100, blank=True)
    # Why staff rejected it, or why WeChat's transfer failed.
    reject_reason = models.CharField(max_length=200, blank=True)
    # The payee's real name for a transfer from 2,000 yuan (WeChat checks it): personal data,
    # stored encrypted like payout account numbers, sent encrypted with WeChat's platform key.
    real_name_encrypted = models.TextField(blank=True)
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
                condition=Q(status__in=["pending", "awaiting_user_confirmation"])
                | Q(status="paid", transfer_reference__gt="")
                | Q(status__in=["rejected", "failed"], reject_reason__gt=""),
                name="withdrawal_decision_recorded_v2",
            ),
            # Manual payouts go to an account; transfers to the user's own WeChat have none.
            models.CheckConstraint(
                condition=Q(to="account", account__isnull=False)
                | Q(to="wechat_balance", account__isnull=True),
                name="withdrawal_destination_consistent",
            ),
        ]

    def __str__(self) -> str:
        return f"withdrawal #{self.pk} {self.amount_fen} fen ({self.status})"


class WechatTransfer(models.Model):
    """One WeChat Pay merchant transfer (商家转账) paying a withdrawal to the user's WeChat
    balance. `out_bill_no` is derived from the withdrawal, so however often the task, the
    sweeper or a retry creates it, WeChat holds one bill and pays at most once."""

    class State(models.TextChoices):
        # Ours: not yet accepted by WeChat (or WeChat's answer never reached us).
        NOT_CREATED = "", "未提交"
        ACCEPTED = "ACCEPTED", "已受理"
        PROCESSING = "PROCESSING", "处理中"
        WAIT_USER_CONFIRM = "WAIT_USER_CONFIRM", "待用户确认"
        TRANSFERING = "TRANSFERING", "转账中"
        SUCCESS = "SUCCESS", "转账成功"
        FAIL = "FAIL", "转账失败"
        CANCELING = "CANCELING", "撤销中"
        CANCELLED = "CANCELLED", "已撤销"

    FINAL_STATES = frozenset({"SUCCESS", "FAIL", "CANCELLED"})

    withdrawal = models.OneToOneField(
        Withdrawal, on_delete=models.PROTECT, related_name="transfer"
    )
    out_bill_no = models.CharField(max_length=32, unique=True)
    openid = models.CharField(max_length=64)
    amount_fen = models.BigIntegerField()
    state = models.CharField(max_length=20, choices=State.choices, blank=True, default="")
    transfer_bill_no = models.CharField(max_length=64, blank=True)
    package_info = models.TextField(blank=True)
    fail_reason = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # When the task or the sweeper should next create (or query) it.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    # After this the user can no longer confirm: WeChat closes the bill, we cancel and query.
    confirm_deadline_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "wallet_wechat_transfer"
        ordering = ["-id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="transfer_due")]
        constraints = [
            models.CheckConstraint(condition=Q(amount_fen__gt=0), name="transfer_amount_positive")
        ]

    def __str__(self) -> str:
        return f"{self.out_bill_no} {self.state or 'not created'}"


class WechatTransferEvent(models.Model):
    """The history of a transfer: every state we learned, from where (create answer, query,
    notification, staff cancel, sweeper), append-only."""

    transfer = models.ForeignKey(WechatTransfer, on_delete=models.CASCADE, related_name="events")
    state = models.CharField(max_length=20, blank=True)
    source = models.CharField(max_length=20)
    detail = models.CharField(max_length=300, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "wallet_wechat_transfer_event"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.source}: {self.state} {self.detail}"


class ReconciliationDay(models.Model):
    """One day (Asia/Shanghai) checked against WeChat Pay's trade and fund-flow bills, and our
    own books checked against themselves. Re-running a day replaces its open findings."""

    class Status(models.TextChoices):
        CLEAN = "clean", "无差异"
        DIFFERENCES = "differences", "有差异"
        FAILED = "failed", "下载或解析失败"

    date = models.DateField(unique=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    trade_bill_sha1 = models.CharField(max_length=40, blank=True)
    fundflow_bill_sha1 = models.CharField(max_length=40, blank=True)
    trade_rows = models.PositiveIntegerField(default=0)
    fundflow_rows = models.PositiveIntegerField(default=0)
    # WeChat's fees for the day from the fund-flow bill, shown apart from our books.
    fees_fen = models.BigIntegerField(default=0)
    # Our own books: {"received": ..., "refunded": ..., ...} and whether they add up.
    books = models.JSONField(default=dict)
    is_books_balanced = models.BooleanField(default=True)
    runs = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    checked_at = models.DateTimeField()

    class Meta:
        db_table = "wallet_reconciliation_day"
        ordering = ["-date"]

    def __str__(self) -> str:
        return f"{self.date} {self.status}"


class ReconciliationItem(models.Model):
    """One difference between WeChat's bill and our books, with both sides' evidence."""

    class Kind(models.TextChoices):
        MISSING_OURS = "missing_ours", "我方缺失"
        MISSING_THEIRS = "missing_theirs", "微信缺失"
        AMOUNT_DIFFERS = "amount_differs", "金额不一致"
        STATUS_DIFFERS = "status_differs", "状态不一致"

    class Source(models.TextChoices):
        PAYMENT = "payment", "支付"
        REFUND = "refund", "退款"
        TRANSFER = "transfer", "商家转账"

    day = models.ForeignKey(ReconciliationDay, on_delete=models.CASCADE, related_name="items")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    source = models.CharField(max_length=10, choices=Source.choices)
    reference = models.CharField(max_length=64)
    ours = models.JSONField(null=True, blank=True)
    theirs = models.JSONField(null=True, blank=True)
    is_resolved = models.BooleanField(default=False)
    resolution_note = models.CharField(max_length=300, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "wallet_reconciliation_item"
        ordering = ["day", "id"]
        constraints = [
            # A re-run of the day finds the same difference again, never a second row for it.
            models.UniqueConstraint(
                fields=["day", "source", "reference", "kind"], name="reconciliation_item_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day.date} {self.kind} {self.source} {self.reference}"
