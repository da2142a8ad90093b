"""Social: favourites ("想要"), follows, and the fan-outs that tell favouriters and followers.

The counts shown to everyone (Listing.favorite_count, User.follower_count) are counter columns
the actions keep exactly in step with these rows, so no page counts rows per request."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Favorite(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="favorites"
    )
    listing = models.ForeignKey(
        "marketplace.Listing", on_delete=models.CASCADE, related_name="favorites"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "social_favorite"
        constraints = [
            # Also the index a fan-out walks: a listing's favouriters in user-id order.
            models.UniqueConstraint(fields=["listing", "user"], name="favorite_once"),
        ]
        indexes = [models.Index(fields=["user", "-id"], name="favorite_user_newest")]

    def __str__(self) -> str:
        return f"{self.user_id} wants #{self.listing_id}"


class Follow(models.Model):
    follower = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="following"
    )
    seller = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="followers"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "social_follow"
        constraints = [
            models.UniqueConstraint(fields=["seller", "follower"], name="follow_once"),
            models.CheckConstraint(condition=~Q(seller=F("follower")), name="follow_not_self"),
        ]
        indexes = [models.Index(fields=["follower", "-id"], name="follow_follower_newest")]

    def __str__(self) -> str:
        return f"{self.follower_id} follows {self.seller_id}"


class BroadcastKind(models.TextChoices):
    PRICE_DROPPED = "listing.price_dropped", "降价"
    UNAVAILABLE = "listing.unavailable", "已售出或下架"
    NEW_FROM_FOLLOWED = "listing.new_from_followed", "关注的卖家上新"


class ListingBroadcast(models.Model):
    """One piece of news about a listing for its favouriters (or its seller's followers),
    written in the seller's (or staff's) transaction and fanned out by a task in batches.

    The row is the truth and the progress: each batch, under this row's lock, tells the next
    recipients by user id after `next_user_id` and moves it on in the same transaction, so a
    task that runs twice, or dies half way and is re-found by the sweep, tells nobody twice."""

    kind = models.CharField(max_length=40, choices=BroadcastKind.choices)
    listing = models.ForeignKey(
        "marketplace.Listing", on_delete=models.CASCADE, related_name="broadcasts"
    )
    # The event's data as sent to everyone (the listing summary and the kind's own fields).
    data = models.JSONField()
    next_user_id = models.BigIntegerField(default=0)
    # Recipients with a socket open when the fan-out began are told first, in one batch (the
    # people looking at their phones hear it within a second, however many want the listing);
    # the walk by user id then skips them.
    early_user_ids = models.JSONField(default=list)
    early_done = models.BooleanField(default=False)
    told = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "social_listing_broadcast"
        indexes = [models.Index(fields=["done_at", "id"], name="broadcast_pending")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.listing_id}"
