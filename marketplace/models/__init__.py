"""Models, one module per area; import them from here."""

from marketplace.models.accounts import Address, ApiToken, User
from marketplace.models.catalog import (
    Banner,
    Category,
    ImageUpload,
    Listing,
    ListingReview,
    ListingStatus,
    ListingView,
)

__all__ = [
    "Address",
    "ApiToken",
    "Banner",
    "Category",
    "ImageUpload",
    "Listing",
    "ListingReview",
    "ListingStatus",
    "ListingView",
    "User",
]
