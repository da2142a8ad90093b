"""Catalog: the category tree, home banners, listings, their images and staff review decisions."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from marketplace.states import ListingStatus

MAX_PRICE_FEN = 1_000_000_000
MAX_TITLE_LENGTH = 60
MAX_DESCRIPTION_LENGTH = 2000
MAX_FEATURES = 20
MAX_IMAGES = 9  # a main image and up to 8 more (SPEC §2)
# Shipping a second-hand item costs tens of yuan; ¥1000 is a ceiling against typos.
MAX_SHIPPING_FEE_FEN = 100_000
# A city: the 6-digit administrative division code (GB/T 2260) of a prefecture-level city, as
# WeChat's region picker returns it (docs/fixes.md).
CITY_CODE_PATTERN = r"^[1-9][0-9]{3}00$"


class ListingCondition(models.TextChoices):
    # Chinese labels through the translation catalogue (locale/zh_Hans): 全新, 几乎全新, ...
    NEW = "new", _("New")
    LIKE_NEW = "like_new", _("Like new")
    LIGHT_WEAR = "light_wear", _("Light signs of use")
    HEAVY_WEAR = "heavy_wear", _("Clear signs of use")


# An unpaid order holds a reserved listing and a sold one is history: the seller may not edit them.
LOCKED_STATUSES = frozenset({ListingStatus.RESERVED, ListingStatus.SOLD})
# Anyone may open the detail of these; the rest are visible to their seller only.
PUBLIC_DETAIL_STATUSES = frozenset(
    {ListingStatus.ON_SALE, ListingStatus.RESERVED, ListingStatus.SOLD}
)


class Category(models.Model):
    """Two levels: a root (手机) and its leaves (苹果, 安卓). Listings go in leaves only."""

    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    name = models.CharField(max_length=30)
    # Uploaded in the admin through the storage API (older rows may hold a URL as text).
    icon = models.ImageField(
        upload_to="category-icons/",
        max_length=500,
        blank=True,
        help_text=_("A square PNG or JPEG, shown at 48 px in the mini-program."),
    )
    sort_order = models.IntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        db_table = "catalog_category"
        ordering = ["sort_order", "id"]
        verbose_name_plural = "categories"
        constraints = [
            models.UniqueConstraint(fields=["parent", "name"], name="category_name_per_parent"),
        ]

    def __str__(self) -> str:
        return f"{self.parent.name} / {self.name}" if self.parent is not None else self.name


class BannerTarget(models.TextChoices):
    LISTING = "listing", "Listing"
    CATEGORY = "category", "Category"
    URL = "url", "URL"


class Banner(models.Model):
    title = models.CharField(max_length=60, blank=True)
    image = models.ImageField(upload_to="banners/")
    target_type = models.CharField(max_length=10, choices=BannerTarget.choices)
    target_listing = models.ForeignKey(
        "Listing", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_url = models.CharField(max_length=500, blank=True)
    sort_order = models.IntegerField(default=0)
    is_active = models.BooleanField(default=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "catalog_banner"
        ordering = ["sort_order", "id"]

    def __str__(self) -> str:
        return self.title or f"banner #{self.pk}"


class Listing(models.Model):
    seller = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="listings"
    )
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="listings")
    title = models.CharField(max_length=MAX_TITLE_LENGTH)
    description = models.TextField(max_length=MAX_DESCRIPTION_LENGTH)
    # [{"name": "品牌", "value": "Apple"}, ...], at most MAX_FEATURES pairs.
    features = models.JSONField(default=list, blank=True)
    price_fen = models.BigIntegerField()
    # Shown only ("原价"): nothing is computed from it.
    original_price_fen = models.BigIntegerField(null=True, blank=True)
    # What the buyer pays on top of the price; 0 = 包邮. Commission is on the price only.
    shipping_fee_fen = models.BigIntegerField(default=0)
    city_code = models.CharField(max_length=6, blank=True)
    condition = models.CharField(max_length=12, choices=ListingCondition.choices, blank=True)
    status = models.CharField(
        max_length=20, choices=ListingStatus.choices, default=ListingStatus.PENDING_REVIEW
    )
    # Storage name of the first image's thumbnail, kept by the actions so lists need no join.
    cover = models.CharField(max_length=300, blank=True)
    # The click count behind "hot": flushed in batches from ListingView rows (docs/catalog.md).
    views = models.PositiveBigIntegerField(default=0)
    # How many people want it ("想要"): kept by the favourite actions, one row each (social).
    favorite_count = models.PositiveIntegerField(default=0)
    # WeChat's text check said "review": staff should read this one carefully.
    is_flagged = models.BooleanField(default=False)
    review_note = models.CharField(max_length=200, blank=True)
    # Negotiation (SPEC §4): offers below the floor are declined at once; at or above
    # auto_accept they may be accepted automatically.
    bargain_floor_fen = models.BigIntegerField(null=True, blank=True)
    auto_accept_fen = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "catalog_listing"
        constraints = [
            models.CheckConstraint(
                condition=Q(price_fen__gte=1, price_fen__lte=MAX_PRICE_FEN),
                name="listing_price_in_range",
            ),
            models.CheckConstraint(
                condition=Q(status__in=ListingStatus.values), name="listing_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(shipping_fee_fen__gte=0, shipping_fee_fen__lte=MAX_SHIPPING_FEE_FEN),
                name="listing_shipping_fee_in_range",
            ),
            models.CheckConstraint(
                condition=Q(original_price_fen__isnull=True)
                | Q(original_price_fen__gte=1, original_price_fen__lte=MAX_PRICE_FEN),
                name="listing_original_price_in_range",
            ),
        ]
        # Keyset pagination walks these in order; `id` breaks ties so the order is total.
        indexes = [
            models.Index(fields=["status", "-approved_at", "-id"], name="listing_newest"),
            models.Index(fields=["status", "-views", "-id"], name="listing_hot"),
            models.Index(fields=["status", "price_fen", "id"], name="listing_price"),
            models.Index(
                fields=["category", "status", "-approved_at", "-id"], name="listing_cat_newest"
            ),
            models.Index(fields=["seller", "status", "-id"], name="listing_seller"),
            # 同城: one city's listings on sale, newest first.
            models.Index(fields=["city_code", "status", "-approved_at", "-id"], name="listing_city"),
            models.Index(fields=["status", "submitted_at"], name="listing_review_queue"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def is_locked(self) -> bool:
        return self.status in LOCKED_STATUSES


class ImageUpload(models.Model):
    """An uploaded, re-encoded image. It belongs to its uploader until attached to a listing;
    attaching consumes it for good (consumed_at), so one upload never serves two listings."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="image_uploads"
    )
    file = models.CharField(max_length=300)
    thumbnail = models.CharField(max_length=300)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    listing = models.ForeignKey(
        Listing, null=True, blank=True, on_delete=models.SET_NULL, related_name="images"
    )
    position = models.PositiveSmallIntegerField(default=0)
    consumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "catalog_image_upload"
        ordering = ["position", "id"]
        indexes = [models.Index(fields=["listing", "position"], name="image_listing_position")]

    def __str__(self) -> str:
        return self.file


class ReviewDecision(models.TextChoices):
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class ListingReview(models.Model):
    """Every staff decision, kept forever: who decided what about which listing, and why."""

    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="reviews")
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="listing_reviews"
    )
    decision = models.CharField(max_length=10, choices=ReviewDecision.choices)
    reason = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "catalog_listing_review"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.decision} #{self.listing_id}"


class ListingView(models.Model):
    """One counted detail open, waiting for the periodic flush into Listing.views.

    Appending rows never contends on the listing row, so a popular listing's detail views
    do not serialise; the flush aggregates them in batches (marketplace.tasks)."""

    listing_id = models.BigIntegerField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "catalog_listing_view"

    def __str__(self) -> str:
        return f"view of #{self.listing_id}"
