"""Account deletion (注销), personal-data exports and retention runs (docs/privacy.md)."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class AccountDeletion(models.Model):
    """A closed account waiting out its cooling-off period, then erased.

    The user's openid moves here when the account closes, so a new sign-in with it starts a
    fresh account, and `restore_account` can find the closed one again until it is erased.
    """

    class Status(models.TextChoices):
        CLOSED = "closed", "已关闭，冷静期中"
        ERASED = "erased", "个人信息已清除"
        RESTORED = "restored", "已撤销注销"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deletion"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CLOSED)
    openid = models.CharField(max_length=64, blank=True, db_index=True)
    closed_at = models.DateTimeField(auto_now_add=True)
    erase_after = models.DateTimeField()
    erased_at = models.DateTimeField(null=True, blank=True)
    restored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "accounts_deletion"
        ordering = ["-id"]
        verbose_name = "account deletion"
        indexes = [
            models.Index(
                fields=["erase_after"], condition=Q(status="closed"), name="deletion_due"
            )
        ]

    def __str__(self) -> str:
        return f"deletion of user {self.user_id} ({self.status})"


class DataExport(models.Model):
    """A JSON document of everything stored about a user, built by a task (GET /api/me/export)."""

    class Status(models.TextChoices):
        PENDING = "pending", "生成中"
        READY = "ready", "可下载"
        FAILED = "failed", "失败"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="data_exports"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    file = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "accounts_data_export"
        ordering = ["-id"]
        indexes = [models.Index(fields=["user", "-id"], name="data_export_user")]

    def __str__(self) -> str:
        return f"export #{self.pk} of user {self.user_id} ({self.status})"


class RetentionRun(models.Model):
    """One pass of the retention sweep: what it deleted, per kind (shown in the admin)."""

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict)

    class Meta:
        db_table = "privacy_retention_run"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"retention run {self.started_at:%Y-%m-%d %H:%M}"
