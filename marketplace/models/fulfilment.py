"""After payment: tracking events pushed by Kuaidi100, disputes settled by staff, reviews."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class TrackingEvent(models.Model):
    """One line of a parcel's journey; stored once however often Kuaidi100 pushes it."""

    order = models.ForeignKey(
        "marketplace.Order", on_delete=models.CASCADE, related_name="tracking_events"
    )
    occurred_at = models.DateTimeField()
    text = models.CharField(max_length=500)
    location = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "orders_tracking_event"
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "occurred_at", "text"], name="tracking_event_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.text[:40]}"


class Dispute(models.Model):
    class Resolution(models.TextChoices):
        REFUND = "refund", "退款给买家"
        RELEASE = "release", "放款给卖家"

    order = models.OneToOneField(
        "marketplace.Order", on_delete=models.PROTECT, related_name="dispute"
    )
    reason = models.CharField(max_length=500)
    opened_at = models.DateTimeField(auto_now_add=True)
    resolution = models.CharField(max_length=10, choices=Resolution.choices, blank=True)
    refund_fen = models.BigIntegerField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True)
    settled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "orders_dispute"
        indexes = [models.Index(fields=["settled_at", "opened_at"], name="dispute_open")]

    def __str__(self) -> str:
        return f"dispute on {self.order_id}"


class Review(models.Model):
    order = models.OneToOneField(
        "marketplace.Order", on_delete=models.PROTECT, related_name="review"
    )
    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    seller = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews_received"
    )
    rating = models.PositiveSmallIntegerField()
    comment = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "orders_review"
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(rating__gte=1, rating__lte=5), name="review_rating_1_to_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rating}★ on {self.order_id}"
