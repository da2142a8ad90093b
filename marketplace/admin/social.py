"""Favourites, follows and their news, read-only: the actions write them (with their counters).

A popular listing has tens of thousands of favourites, so the user and listing pages show the
counters and link to these lists filtered to them, rather than an inline of every row."""

from django.contrib import admin

from marketplace.admin.base import ReadOnlyMixin
from marketplace.models import Favorite, Follow, ListingBroadcast


@admin.register(Favorite)
class FavoriteAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "user", "listing", "created_at")
    search_fields = ("=user__id", "=listing__id", "user__nickname", "listing__title")
    list_select_related = ("user", "listing")
    raw_id_fields = ("user", "listing")
    ordering = ("-id",)
    show_full_result_count = False


@admin.register(Follow)
class FollowAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "follower", "seller", "created_at")
    search_fields = ("=follower__id", "=seller__id", "follower__nickname", "seller__nickname")
    list_select_related = ("follower", "seller")
    raw_id_fields = ("follower", "seller")
    ordering = ("-id",)
    show_full_result_count = False


@admin.register(ListingBroadcast)
class ListingBroadcastAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The fan-outs: how far each got (a stuck one is re-queued by the minute sweep)."""

    list_display = ("id", "kind", "listing", "told", "created_at", "done_at")
    list_filter = ("kind", ("done_at", admin.EmptyFieldListFilter))
    search_fields = ("=listing__id",)
    list_select_related = ("listing",)
    ordering = ("-id",)
