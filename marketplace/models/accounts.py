from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q


class User(AbstractUser):
    """A mini-program user (identified by openid) or a staff member (username + password)."""

    openid = models.CharField(max_length=64, unique=True, null=True, blank=True)
    unionid = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    nickname = models.CharField(max_length=64, blank=True)
    avatar_url = models.URLField(max_length=500, blank=True)
    # The storage name of the avatar uploaded through POST /api/me/avatar, when avatar_url is it
    # (each upload its own immutable file; replaced ones are deleted unless an order's snapshot
    # still shows them).
    avatar_file = models.CharField(max_length=300, blank=True)
    phone = models.CharField(max_length=20, blank=True)
    phone_country_code = models.CharField(max_length=6, blank=True)
    is_banned = models.BooleanField(default=False, db_index=True)
    banned_at = models.DateTimeField(null=True, blank=True)
    ban_reason = models.CharField(max_length=200, blank=True)
    # Kept up to date by the review action, so profiles never aggregate per request.
    rating_count = models.PositiveIntegerField(default=0)
    rating_total = models.PositiveIntegerField(default=0)
    # The seller page's counters (SPEC §4b): followers kept by the follow actions; listings on
    # sale and sold recounted from the listing rows whenever one of the seller's listings moves.
    follower_count = models.PositiveIntegerField(default=0)
    on_sale_count = models.PositiveIntegerField(default=0)
    sold_count = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "accounts_user"

    def __str__(self) -> str:
        return self.nickname or self.username

    @property
    def rating_avg(self) -> float | None:
        if not self.rating_count:
            return None
        return round(self.rating_total / self.rating_count, 2)


class ApiToken(models.Model):
    """A bearer token; only its SHA-256 is stored, so a database leak yields no usable token."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "accounts_api_token"
        indexes = [models.Index(fields=["user", "revoked_at"])]

    def __str__(self) -> str:
        return f"token #{self.pk} of {self.user_id}"


class Address(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="addresses")
    name = models.CharField(max_length=40)
    phone = models.CharField(max_length=20)
    province = models.CharField(max_length=40)
    city = models.CharField(max_length=40)
    district = models.CharField(max_length=40)
    # The city's 6-digit division code from WeChat's region picker (or chooseAddress's
    # nationalCode, district level, whose city is its first four digits + "00"); a listing's
    # city defaults to the seller's default address's.
    city_code = models.CharField(max_length=6, blank=True)
    detail = models.CharField(max_length=200)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "accounts_address"
        ordering = ["-is_default", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user"], condition=Q(is_default=True), name="one_default_address_per_user"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.province}{self.city}{self.district}{self.detail}"
