"""Staff view of bargaining: offers read-only, filterable, with their history, and shown inline
on the listing's page. Offers change only through the actions (events, orders, locks)."""

from django.contrib import admin

from marketplace.admin.base import ReadOnlyInline, ReadOnlyMixin, YuanDisplayMixin
from marketplace.models import Listing
from negotiation import conversations_admin  # noqa: F401  (registers the conversation pages)
from negotiation.models import Offer, OfferHistory


class OfferHistoryInline(YuanDisplayMixin, ReadOnlyInline):
    model = OfferHistory
    fields = ("at", "action", "actor", "actor_user", "price_fen", "reason")
    readonly_fields = fields


@admin.register(Offer)
class OfferAdmin(YuanDisplayMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "listing",
        "buyer",
        "seller",
        "price_fen",
        "counter_price_fen",
        "status",
        "decline_reason",
        "expires_at",
        "order",
        "created_at",
    )
    list_filter = ("status", "decline_reason", "created_at")
    search_fields = (
        "=id",
        "=listing__id",
        "listing__title",
        "buyer__nickname",
        "seller__nickname",
        "order__order_no",
    )
    list_select_related = ("listing", "buyer", "seller", "order")
    date_hierarchy = "created_at"
    inlines = [OfferHistoryInline]


class ListingOfferInline(YuanDisplayMixin, ReadOnlyInline):
    model = Offer
    fk_name = "listing"
    fields = (
        "id",
        "buyer",
        "price_fen",
        "counter_price_fen",
        "status",
        "decline_reason",
        "expires_at",
        "order",
        "created_at",
    )
    readonly_fields = fields
    ordering = ("-id",)
    show_change_link = True


def _attach_to_listing_admin() -> None:
    """Adds the offers to the catalog's listing page without editing the catalog's admin."""
    if not admin.site.is_registered(Listing):
        return
    listing_admin = admin.site.get_model_admin(Listing)
    if ListingOfferInline not in listing_admin.inlines:
        listing_admin.inlines = [*listing_admin.inlines, ListingOfferInline]  # type: ignore[misc]


_attach_to_listing_admin()
