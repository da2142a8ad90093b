"""State of the fake partner services. Kept in the database so every process (server, worker)
sees the same single-use codes and tokens, as the real services would."""

from django.db import models


class SandboxCode(models.Model):
    """A wx.login code or a phone-number-button code: single use, valid five minutes."""

    KIND_LOGIN = "login"
    KIND_PHONE = "phone"
    KIND_CHOICES = [(KIND_LOGIN, "wx.login"), (KIND_PHONE, "phone number")]

    kind = models.CharField(max_length=10, choices=KIND_CHOICES)
    code = models.CharField(max_length=64, unique=True)
    openid = models.CharField(max_length=64, blank=True)
    unionid = models.CharField(max_length=64, blank=True)
    phone = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} code for {self.openid or self.phone}"


class SandboxAccessToken(models.Model):
    token = models.CharField(max_length=128, unique=True)
    appid = models.CharField(max_length=64)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"access token for {self.appid}"


class SandboxSubscribeGrant(models.Model):
    """The user tapped "allow" on a subscribe-message prompt: each grant allows one message."""

    openid = models.CharField(max_length=64)
    template_id = models.CharField(max_length=64)
    remaining = models.PositiveIntegerField(default=1)

    class Meta:
        unique_together = [("openid", "template_id")]

    def __str__(self) -> str:
        return f"{self.openid}/{self.template_id}: {self.remaining}"


class SandboxMessage(models.Model):
    """A subscribe message the sandbox accepted, for tests and the demo to inspect."""

    openid = models.CharField(max_length=64, db_index=True)
    template_id = models.CharField(max_length=64)
    page = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict)
    sent_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.template_id} to {self.openid}"


# --- WeChat Pay API v3 --------------------------------------------------------------------------


class SandboxKeys(models.Model):
    """The sandbox's key material: one row (pk=1), generated on first use.

    The merchant pair stands for the key the merchant uploads to WeChat Pay (the client signs
    with the private half, the sandbox verifies with the public half); the platform pair stands
    for WeChat Pay's own key (the sandbox signs responses and notifications with the private
    half, the client verifies with the public half, which is what public-key mode configures).
    """

    SINGLETON_PK = 1

    merchant_private_key = models.TextField()
    merchant_public_key = models.TextField()
    merchant_serial_no = models.CharField(max_length=64)
    platform_private_key = models.TextField()
    platform_public_key = models.TextField()
    platform_public_key_id = models.CharField(max_length=64)
    apiv3_key = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "sandbox keys"

    def __str__(self) -> str:
        return f"sandbox keys {self.platform_public_key_id}"


class SandboxTransaction(models.Model):
    """A JSAPI transaction as WeChat Pay keeps it, keyed by (mchid, out_trade_no)."""

    NOTPAY = "NOTPAY"
    SUCCESS = "SUCCESS"
    CLOSED = "CLOSED"
    REFUND = "REFUND"
    STATE_CHOICES = [(s, s) for s in (NOTPAY, SUCCESS, CLOSED, REFUND)]

    mchid = models.CharField(max_length=32)
    appid = models.CharField(max_length=32)
    out_trade_no = models.CharField(max_length=32)
    description = models.CharField(max_length=127)
    total_fen = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=8, default="CNY")
    openid = models.CharField(max_length=128)
    time_expire = models.DateTimeField()
    notify_url = models.CharField(max_length=256)
    # The exact prepay parameters: a repeat with the same ones returns the same prepay_id.
    fingerprint = models.JSONField()
    prepay_id = models.CharField(max_length=64, unique=True)
    prepay_expires_at = models.DateTimeField()
    trade_state = models.CharField(max_length=16, choices=STATE_CHOICES, default=NOTPAY)
    transaction_id = models.CharField(max_length=32, blank=True)
    payer_total_fen = models.PositiveBigIntegerField(null=True, blank=True)
    success_time = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mchid", "out_trade_no"], name="sandbox_tx_unique_out_trade_no"
            )
        ]

    def __str__(self) -> str:
        return f"{self.out_trade_no} {self.trade_state}"


class SandboxRefund(models.Model):
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    ABNORMAL = "ABNORMAL"
    CLOSED = "CLOSED"
    STATUS_CHOICES = [(s, s) for s in (PROCESSING, SUCCESS, ABNORMAL, CLOSED)]

    transaction = models.ForeignKey(
        SandboxTransaction, on_delete=models.CASCADE, related_name="refunds"
    )
    out_refund_no = models.CharField(max_length=64)
    mchid = models.CharField(max_length=32)
    refund_id = models.CharField(max_length=32, unique=True)
    refund_fen = models.PositiveBigIntegerField()
    reason = models.CharField(max_length=80, blank=True)
    notify_url = models.CharField(max_length=256, blank=True)
    fingerprint = models.JSONField()
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=PROCESSING)
    settle_after = models.DateTimeField()
    success_time = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mchid", "out_refund_no"], name="sandbox_refund_unique_out_refund_no"
            )
        ]

    def __str__(self) -> str:
        return f"{self.out_refund_no} {self.status}"


class SandboxNotification(models.Model):
    """A WeChat Pay notification and its delivery: retried on WeChat's schedule until a 2xx."""

    KIND_TRANSACTION = "transaction"
    KIND_REFUND = "refund"
    KIND_TRANSFER = "mch_payment"  # the merchant transfer's original_type
    KIND_CHOICES = [
        (KIND_TRANSACTION, "payment"),
        (KIND_REFUND, "refund"),
        (KIND_TRANSFER, "merchant transfer"),
    ]

    kind = models.CharField(max_length=16, choices=KIND_CHOICES)
    event_type = models.CharField(max_length=32)
    notification_id = models.CharField(max_length=64, unique=True)
    out_trade_no = models.CharField(max_length=32, db_index=True)
    out_refund_no = models.CharField(max_length=64, blank=True)
    target_url = models.CharField(max_length=256)
    # The body never changes between attempts; each attempt is signed afresh (a new timestamp
    # and nonce), as WeChat's retries are, and the last headers are kept for tests to replay.
    body = models.TextField()
    last_headers = models.JSONField(default=dict)
    attempts = models.PositiveIntegerField(default=0)
    last_status = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    gave_up_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.event_type} {self.out_trade_no} x{self.attempts}"


class SandboxTransferBill(models.Model):
    """A merchant transfer bill (商家转账, user-confirmation mode), keyed by (mchid, out_bill_no).

    WAIT_USER_CONFIRM until the user confirms (`/sandbox/wechat/confirm-transfer`) → SUCCESS
    (or FAIL when settings.SANDBOX_TRANSFER_OUTCOME says so), the merchant cancels → CANCELLED,
    or the confirmation window passes → CANCELLED; each final state is notified.
    """

    WAIT_USER_CONFIRM = "WAIT_USER_CONFIRM"
    SUCCESS = "SUCCESS"
    FAIL = "FAIL"
    CANCELLED = "CANCELLED"
    STATE_CHOICES = [(s, s) for s in (WAIT_USER_CONFIRM, SUCCESS, FAIL, CANCELLED)]
    FINAL = (SUCCESS, FAIL, CANCELLED)

    mchid = models.CharField(max_length=32)
    appid = models.CharField(max_length=32)
    out_bill_no = models.CharField(max_length=32)
    transfer_bill_no = models.CharField(max_length=64, unique=True)
    transfer_scene_id = models.CharField(max_length=10)
    openid = models.CharField(max_length=128)
    # Decrypted with the platform private key, as WeChat would, to check it against the payee.
    user_name = models.CharField(max_length=64, blank=True)
    transfer_amount_fen = models.PositiveBigIntegerField()
    transfer_remark = models.CharField(max_length=32)
    notify_url = models.CharField(max_length=256, blank=True)
    # The request without the (randomly encrypted) name plus the decrypted name: a repeat with
    # the same parameters answers the same bill.
    fingerprint = models.JSONField()
    package_info = models.CharField(max_length=128, unique=True)
    state = models.CharField(max_length=20, choices=STATE_CHOICES, default=WAIT_USER_CONFIRM)
    fail_reason = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mchid", "out_bill_no"], name="sandbox_transfer_unique_out_bill_no"
            )
        ]

    def __str__(self) -> str:
        return f"{self.out_bill_no} {self.state}"


class SandboxBillDownload(models.Model):
    """A bill file the sandbox prepared for a download URL (valid five minutes, as WeChat's)."""

    token = models.CharField(max_length=64, unique=True)
    content = models.BinaryField()
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"bill {self.token[:8]}"


class SandboxFault(models.Model):
    """Fault injection for the fake WeChat Pay: the next `remaining` matching calls misbehave.

    Kept in the database so a fault armed by a test or the admin reaches every process.
    """

    ERROR_500 = "error_500"
    TIMEOUT = "timeout"  # the request never reaches the handler
    TIMEOUT_AFTER = "timeout_after"  # the handler runs, the response is lost
    BAD_SIGNATURE = "bad_signature"  # the response is signed with the wrong key
    REFUND_ABNORMAL = "refund_abnormal"  # the next refund to settle ends ABNORMAL
    KIND_CHOICES = [
        (k, k) for k in (ERROR_500, TIMEOUT, TIMEOUT_AFTER, BAD_SIGNATURE, REFUND_ABNORMAL)
    ]

    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    path_contains = models.CharField(max_length=200, blank=True)
    remaining = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.kind} x{self.remaining} {self.path_contains}"


# --- Kuaidi100 ----------------------------------------------------------------------------------


class SandboxShipment(models.Model):
    """A parcel as Kuaidi100 knows it: created when first subscribed, moved on by `advance`."""

    tracking_no = models.CharField(max_length=32, unique=True)
    company = models.CharField(max_length=30)
    phone = models.CharField(max_length=20, blank=True)
    # How many scripted events have happened (sandbox/kuaidi100.py SCRIPT).
    step = models.PositiveSmallIntegerField(default=0)
    state = models.PositiveSmallIntegerField(default=0)
    # Kuaidi100's `data` items, newest first: {time, ftime, context, location}.
    events = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.company} {self.tracking_no} step {self.step}"


class SandboxTrackingSubscription(models.Model):
    """A `poll` subscription: pushes go to callback_url signed with salt until it ends."""

    shipment = models.ForeignKey(
        SandboxShipment, on_delete=models.CASCADE, related_name="subscriptions"
    )
    company = models.CharField(max_length=30)
    callback_url = models.CharField(max_length=500)
    salt = models.CharField(max_length=128)
    phone = models.CharField(max_length=20, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Kuaidi100 answers 501 to a second subscription of the same number and company;
            # after abort/shutdown the number may be subscribed again.
            models.UniqueConstraint(
                fields=["shipment", "company"],
                condition=models.Q(is_active=True),
                name="sandbox_kd100_one_active_subscription",
            )
        ]

    def __str__(self) -> str:
        return f"{self.company} {self.shipment_id} -> {self.callback_url}"


class SandboxTrackingPush(models.Model):
    """One push to a subscriber and its delivery, retried until acknowledged or given up."""

    subscription = models.ForeignKey(
        SandboxTrackingSubscription, on_delete=models.CASCADE, related_name="pushes"
    )
    status = models.CharField(max_length=10)  # polling | shutdown | abort
    param = models.TextField()
    sign = models.CharField(max_length=32)
    attempts = models.PositiveIntegerField(default=0)
    last_status = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    gave_up_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.status} push {self.subscription_id} x{self.attempts}"
