"""Offers on listings (SPEC §4) and their append-only history: one row per move."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from negotiation.states import LIVE_STATUSES, OfferStatus


class DeclineReason(models.TextChoices):
    SELLER = "seller_declined", "卖家拒绝"
    BUYER = "buyer_declined", "买家拒绝还价"
    BELOW_FLOOR = "below_floor", "低于卖家底价"
    LISTING_SOLD = "listing_sold", "商品已被买走"
    PRICE_CHANGED = "price_changed", "卖家已降价"


class Offer(models.Model):
    listing = models.ForeignKey(
        "marketplace.Listing", on_delete=models.PROTECT, related_name="offers"
    )
    buyer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="offers_made"
    )
    # Copied from the listing so the seller's inbox is one index range, not a join.
    seller = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="offers_received"
    )
    price_fen = models.BigIntegerField()
    counter_price_fen = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=OfferStatus.choices, default=OfferStatus.OPEN)
    # Stored so the sweeper finds due offers by index even if their task was lost.
    expires_at = models.DateTimeField()
    order = models.ForeignKey(
        "marketplace.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="offers"
    )
    decline_reason = models.CharField(
        max_length=20, choices=DeclineReason.choices, blank=True, default=""
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "negotiation_offer"
        constraints = [
            models.CheckConstraint(condition=Q(price_fen__gte=1), name="offer_price_positive"),
            models.CheckConstraint(
                condition=Q(counter_price_fen__isnull=True) | Q(counter_price_fen__gte=1),
                name="offer_counter_positive",
            ),
            models.CheckConstraint(
                condition=Q(status__in=OfferStatus.values), name="offer_status_valid"
            ),
            # The actions check this under the listing lock; the database is the backstop.
            models.UniqueConstraint(
                fields=["listing", "buyer"],
                condition=Q(status__in=LIVE_STATUSES),
                name="one_live_offer_per_buyer_listing",
            ),
        ]
        indexes = [
            models.Index(fields=["buyer", "-id"], name="offer_buyer"),
            models.Index(fields=["seller", "-id"], name="offer_seller"),
            models.Index(fields=["listing", "status"], name="offer_listing_status"),
            models.Index(fields=["listing", "buyer", "created_at"], name="offer_daily_cap"),
            models.Index(
                fields=["expires_at"], condition=Q(status__in=LIVE_STATUSES), name="offer_expiry"
            ),
        ]

    def __str__(self) -> str:
        return f"offer #{self.pk} {self.price_fen} fen on listing {self.listing_id} ({self.status})"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


class OfferHistory(models.Model):
    """Append-only: who did what to the offer, at which price, when."""

    class Actor(models.TextChoices):
        BUYER = "buyer"
        SELLER = "seller"
        SYSTEM = "system"

    class Action(models.TextChoices):
        MADE = "made"
        COUNTERED = "countered"
        ACCEPTED = "accepted"
        DECLINED = "declined"
        WITHDRAWN = "withdrawn"
        EXPIRED = "expired"
        ORDER_CLOSED = "order_closed"

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="history")
    actor = models.CharField(max_length=10, choices=Actor.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    price_fen = models.BigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=40, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "negotiation_offer_history"
        ordering = ["id"]
        verbose_name_plural = "offer history"

    def __str__(self) -> str:
        return f"offer {self.offer_id}: {self.action} by {self.actor}"
