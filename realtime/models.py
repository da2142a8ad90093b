"""The durable event log: one row per event per user, numbered per user without gaps."""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class EventCounter(models.Model):
    """The last sequence number handed out to a user.

    Emitting updates this row in the emitter's transaction, so the row lock orders concurrent
    emitters: the second waits until the first commits (or rolls back) and then takes the next
    number. Numbers therefore have no gaps and become visible in increasing order, which is what
    lets a client resume from "the last seq I saw" without missing a late commit.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    last_seq = models.PositiveBigIntegerField(default=0)

    class Meta:
        db_table = "realtime_event_counter"

    def __str__(self) -> str:
        return f"user {self.user_id} at seq {self.last_seq}"


class Event(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    seq = models.PositiveBigIntegerField()
    type = models.CharField(max_length=40)
    data = models.JSONField(encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(db_index=True)
    # Set when the offline fallback claimed this event, so a retried task never sends twice.
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "realtime_event"
        ordering = ["user_id", "seq"]
        constraints = [
            # Also the index every replay (user, seq > N order by seq) walks.
            models.UniqueConstraint(fields=["user", "seq"], name="realtime_event_user_seq"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type} for user {self.user_id}"


class RealtimeSettings(models.Model):
    """Staff-editable realtime knobs (one row, pk=1, created on first read)."""

    event_retention_days = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="Events older than this are deleted by the nightly prune; a client offline "
        "longer reloads its state through the REST API.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "realtime_settings"
        verbose_name = "realtime settings"
        verbose_name_plural = "realtime settings"

    def __str__(self) -> str:
        return "Realtime settings"

    @classmethod
    def load(cls) -> "RealtimeSettings":
        row, _ = cls.objects.get_or_create(
            pk=1, defaults={"event_retention_days": settings.REALTIME_EVENT_RETENTION_DAYS}
        )
        return row


class Notification(models.Model):
    """One entry of the notification centre (SPEC §4b): what happened, for one user.

    Stored as its type and parameters, never as text: the title and body are rendered when it
    is read, in the reader's language (realtime/notifications.py), so a wording fix reaches old
    entries too. Chat messages are not stored here: the conversations count their own unread."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    type = models.CharField(max_length=40)
    params = models.JSONField(encoder=DjangoJSONEncoder, default=dict)
    target_type = models.CharField(max_length=20, blank=True)
    target_id = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "realtime_notification"
        indexes = [
            # The list (newest first) and its `?unread=true` filter, and the badge count.
            models.Index(fields=["user", "-id"], name="notification_user_newest"),
            models.Index(
                fields=["user", "-id"],
                name="notification_user_unread",
                condition=models.Q(read_at__isnull=True),
            ),
            # The admin dashboard's volume per type over the last day.
            models.Index(fields=["created_at"], name="notification_created_at"),
            # The prune walks old read ones.
            models.Index(
                fields=["read_at"],
                name="notification_read_at",
                condition=models.Q(read_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} for user {self.user_id}"
