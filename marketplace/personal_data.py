"""Everything stored about one user, as one JSON-ready document (GET /api/me/export).

Each section is the user's own rows in the shape the REST API shows them; numbers a leak would
hurt (phones, payout accounts) are masked, as the API shows them. Adding a model that holds a
user's data means adding its section here: tests/marketplace/test_privacy.py checks that every
model with a foreign key to the user appears in SECTIONS or in NOT_EXPORTED with a reason.
"""

from collections.abc import Callable
from typing import Any

from django.db.models import Q
from django.utils import timezone

from marketplace.models import (
    Address,
    Favorite,
    Follow,
    LedgerEntry,
    Listing,
    Order,
    PayoutAccount,
    Review,
    User,
    Withdrawal,
)
from marketplace.representations import (
    account_data,
    entry_data,
    listing_summary_data,
    order_data,
    withdrawal_data,
)
from negotiation.models import Conversation, Message, Offer, Report, UserBlock
from negotiation.representations import offer_data
from realtime.models import Notification
from realtime.notifications import notification_data


def mask_phone(phone: str) -> str:
    """138****8000: enough for the owner to recognise, useless to anyone else."""
    if len(phone) < 7:
        return "*" * len(phone)
    return f"{phone[:3]}{'*' * (len(phone) - 7)}{phone[-4:]}"


def _profile(user: User) -> dict[str, Any]:
    return {
        "id": user.pk,
        "nickname": user.nickname,
        "avatar_url": user.avatar_url or None,
        "phone": mask_phone(user.phone) if user.phone else None,
        "joined_at": user.date_joined,
        "last_login": user.last_login,
    }


def _addresses(user: User) -> list[dict[str, Any]]:
    return [
        {
            "id": address.pk,
            "name": address.name,
            "phone": mask_phone(address.phone),
            "province": address.province,
            "city": address.city,
            "district": address.district,
            "detail": address.detail,
            "is_default": address.is_default,
        }
        for address in Address.objects.filter(user=user).order_by("id")
    ]


def _listings(user: User) -> list[dict[str, Any]]:
    listings = Listing.objects.filter(seller=user).select_related("seller").order_by("id")
    return [
        {**listing_summary_data(listing=listing), "description": listing.description}
        for listing in listings
    ]


def _orders(user: User) -> list[dict[str, Any]]:
    orders = (
        Order.objects.filter(Q(buyer=user) | Q(seller=user))
        .select_related("refund")
        .prefetch_related("history")
        .order_by("id")
    )
    documents = []
    for order in orders:
        data = order_data(order)
        address = dict(order.address or {})
        if address.get("phone"):
            address["phone"] = mask_phone(address["phone"])
        documents.append({**data, "address": address})
    return documents


def _offers(user: User) -> list[dict[str, Any]]:
    offers = Offer.objects.filter(Q(buyer=user) | Q(seller=user)).order_by("id")
    return [offer_data(offer) for offer in offers]


def _ledger(user: User) -> list[dict[str, Any]]:
    entries = LedgerEntry.objects.filter(wallet__user=user).select_related("order").order_by("id")
    return [entry_data(entry) for entry in entries]


def _withdrawals(user: User) -> list[dict[str, Any]]:
    withdrawals = (
        Withdrawal.objects.filter(user=user).select_related("account", "transfer").order_by("id")
    )
    return [withdrawal_data(withdrawal) for withdrawal in withdrawals]


def _payout_accounts(user: User) -> list[dict[str, Any]]:
    return [account_data(account) for account in PayoutAccount.objects.filter(user=user)]


def _reviews(user: User) -> list[dict[str, Any]]:
    reviews = Review.objects.filter(Q(buyer=user) | Q(seller=user)).select_related("order")
    return [
        {
            "order_no": review.order.order_no,
            "role": "reviewer" if review.buyer_id == user.pk else "reviewed",
            "rating": review.rating,
            "comment": review.comment,
            "created_at": review.created_at,
        }
        for review in reviews.order_by("id")
    ]


def _favorites(user: User) -> list[dict[str, Any]]:
    rows = Favorite.objects.filter(user=user).select_related("listing").order_by("id")
    return [
        {"listing_id": row.listing_id, "title": row.listing.title, "created_at": row.created_at}
        for row in rows
    ]


def _following(user: User) -> list[dict[str, Any]]:
    rows = Follow.objects.filter(follower=user).select_related("seller").order_by("id")
    return [
        {"seller_id": row.seller_id, "nickname": row.seller.nickname, "created_at": row.created_at}
        for row in rows
    ]


def _notifications(user: User) -> list[dict[str, Any]]:
    rows = Notification.objects.filter(user=user).order_by("id")
    return [notification_data(row) for row in rows]


def _conversations(user: User) -> list[dict[str, Any]]:
    """The user's threads and what the user wrote in them (the other side's messages are theirs)."""
    threads = Conversation.objects.filter(Q(buyer=user) | Q(seller=user)).order_by("id")
    written: dict[int, list[dict[str, Any]]] = {}
    for message in Message.objects.filter(sender=user).order_by("id"):
        written.setdefault(message.conversation_id, []).append(
            {"id": message.pk, "kind": message.kind, "text": message.text,
             "image_id": message.image_id, "created_at": message.created_at}
        )  # fmt: skip
    return [
        {
            "id": thread.pk,
            "listing_id": thread.listing_id,
            "role": "buyer" if thread.buyer_id == user.pk else "seller",
            "messages_written": written.get(thread.pk, []),
        }
        for thread in threads
    ]


def _blocks(user: User) -> list[dict[str, Any]]:
    rows = UserBlock.objects.filter(blocker=user).order_by("id")
    return [{"user_id": row.blocked_id, "created_at": row.created_at} for row in rows]


def _reports(user: User) -> list[dict[str, Any]]:
    rows = Report.objects.filter(reporter=user).order_by("id")
    return [
        {"id": row.pk, "target_type": row.target_type, "reason": row.reason,
         "detail": row.detail, "status": row.status, "created_at": row.created_at}
        for row in rows
    ]  # fmt: skip


SECTIONS: dict[str, Callable[[User], Any]] = {
    "profile": _profile,
    "addresses": _addresses,
    "listings": _listings,
    "orders": _orders,
    "offers": _offers,
    "ledger": _ledger,
    "withdrawals": _withdrawals,
    "payout_accounts": _payout_accounts,
    "reviews": _reviews,
    "favorites": _favorites,
    # Who follows the user is the followers' data; the count is in the profile.
    "following": _following,
    "notifications": _notifications,
    "conversations": _conversations,
    # Who blocked the user, and reports about the user, are other people's data.
    "blocks": _blocks,
    "reports": _reports,
}

# Models that point at a user but are not part of the export, and why.
NOT_EXPORTED = {
    "marketplace.ApiToken": "sign-in secrets: never handed out again",
    "marketplace.IdempotencyRecord": "copies of answers the user already received",
    "marketplace.DataExport": "the exports themselves",
    "marketplace.AccountDeletion": "the deletion request (shown by POST /api/me/deletion)",
    "marketplace.Wallet": "its balance is in the ledger section",
    "marketplace.ImageUpload": "the images are in the listings section",
    "realtime.Event": "delivery copies of the objects in the other sections",
    "realtime.EventCounter": "a sequence number",
    "negotiation.MessageInbox": "an unread counter (in the conversations' unread counts)",
}


# Foreign keys to a user that name the staff member who acted, not the owner of the row.
STAFF_FIELDS = {
    "decided_by", "settled_by", "staff", "actor_user", "changed_by", "reviewer", "actor",
    "resolved_by", "staff_user",
}  # fmt: skip


def personal_data(user: User) -> dict[str, Any]:
    return {
        "generated_at": timezone.now(),
        **{name: section(user) for name, section in SECTIONS.items()},
    }
