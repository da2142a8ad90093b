"""Models, one module per area; import them from here."""

from marketplace.models.accounts import Address, ApiToken, User
from marketplace.models.catalog import (
    Banner,
    Category,
    ImageUpload,
    Listing,
    ListingCondition,
    ListingReview,
    ListingView,
)
from marketplace.models.fulfilment import Dispute, Review, TrackingEvent
from marketplace.models.orders import (
    IdempotencyRecord,
    Order,
    OrderHistory,
    PaymentNotification,
    PlatformSettings,
    PlatformSettingsChange,
    Refund,
)
from marketplace.models.privacy import AccountDeletion, DataExport, RetentionRun
from marketplace.models.social import BroadcastKind, Favorite, Follow, ListingBroadcast
from marketplace.models.staff import StaffExport
from marketplace.models.wallet import (
    LedgerEntry,
    PayoutAccount,
    ReconciliationDay,
    ReconciliationItem,
    Wallet,
    WechatTransfer,
    WechatTransferEvent,
    Withdrawal,
)
from marketplace.states import ListingStatus

__all__ = [
    "BroadcastKind",
    "Favorite",
    "Follow",
    "ListingBroadcast",
    "StaffExport",
    "AccountDeletion",
    "DataExport",
    "RetentionRun",
    "Dispute",
    "Review",
    "TrackingEvent",
    "LedgerEntry",
    "PayoutAccount",
    "Withdrawal",
    "WechatTransfer",
    "WechatTransferEvent",
    "ReconciliationDay",
    "ReconciliationItem",
    "Wallet",
    "IdempotencyRecord",
    "Order",
    "OrderHistory",
    "PaymentNotification",
    "PlatformSettings",
    "PlatformSettingsChange",
    "Refund",
    "Address",
    "ApiToken",
    "Banner",
    "Category",
    "ImageUpload",
    "Listing",
    "ListingReview",
    "ListingCondition",
    "ListingStatus",
    "ListingView",
    "User",
]
