"""Reads of offers, with what the representation needs already joined."""

from django.db.models import Q, QuerySet

from marketplace.models import User
from negotiation.models import Offer


def offers_of(
    *, user: User, role: str | None = None, status: str | None = None, listing_id: int | None = None
) -> QuerySet[Offer]:
    """The user's offers as buyer, as seller, or both (role None)."""
    if role == "buyer":
        queryset = Offer.objects.filter(buyer=user)
    elif role == "seller":
        queryset = Offer.objects.filter(seller=user)
    else:
        queryset = Offer.objects.filter(Q(buyer=user) | Q(seller=user))
    if status:
        queryset = queryset.filter(status=status)
    if listing_id is not None:
        queryset = queryset.filter(listing_id=listing_id)
    return queryset.select_related("order")


def unread_message_count(user: User) -> int:
    """The user's unread chat messages, for the notification centre's badge.

    TODO(conversations): the conversations feature replaces this with its own exact unread
    counter; until it lands there are no messages, so nothing is unread.
    """
    return 0
