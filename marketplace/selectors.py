"""Reads, with their joins applied. Views call these; they never write."""

import time
import uuid
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from marketplace import catalog_pages
from marketplace.errors import NotFound
from marketplace.models import (
    Address,
    Banner,
    Category,
    Favorite,
    Follow,
    Listing,
    ListingStatus,
    Review,
    User,
)
from marketplace.models.catalog import PUBLIC_DETAIL_STATUSES
from marketplace.models.orders import Order, PlatformSettings
from marketplace.models.privacy import DataExport
from marketplace.models.wallet import LedgerEntry, Wallet, Withdrawal
from marketplace.pagination import MAX_LIMIT, Page, cursor_for, decode_cursor, paginate
from marketplace.representations import listing_summary_data, media_url
from negotiation.models import CHAT_IMAGES
from negotiation.selectors import may_read_chat_image

# Every live action reads the platform settings, which change a few times a year: each process
# keeps a copy, valid while the version in the shared cache is the one it was read under. A
# change bumps the version (`platform_settings_changed`), so every process reloads on its next
# read; a cache flush or outage also means a reload, never a stale value. The version itself is
# asked at most once per PLATFORM_CHECK_SECONDS per process (it was a Redis round trip on every
# offer, counter and acceptance): a change reaches the process that made it at once and every
# other process within that bound (docs/performance.md, "The live path in process").
PLATFORM_VERSION_KEY = "platform:settings:version"
PLATFORM_CHECK_SECONDS = 1.0
_platform_copy: tuple[str, PlatformSettings] | None = None
_platform_checked_at = 0.0


def _load_platform_settings() -> PlatformSettings:
    current = PlatformSettings.objects.filter(pk=1).first()
    if current is None:
        try:
            with transaction.atomic():
                current = PlatformSettings.objects.create(pk=1)
        except IntegrityError:  # created concurrently
            current = PlatformSettings.objects.get(pk=1)
    return current


def platform_settings(*, fresh: bool = False) -> PlatformSettings:
    """The staff-set platform parameters (one row, created with its defaults on first read).
    `fresh` reads the row itself: for what is frozen onto an order in the caller's transaction
    (the commission rate at payment). Callers must not modify the returned object."""
    global _platform_copy, _platform_checked_at
    if fresh:
        return _load_platform_settings()
    now = time.monotonic()
    if _platform_copy is not None and now - _platform_checked_at < PLATFORM_CHECK_SECONDS:
        return _platform_copy[1]
    version = cache.get(PLATFORM_VERSION_KEY)
    if version is None:
        cache.add(PLATFORM_VERSION_KEY, uuid.uuid4().hex, timeout=None)
        version = cache.get(PLATFORM_VERSION_KEY)
    if version is not None and _platform_copy is not None and _platform_copy[0] == version:
        _platform_checked_at = now
        return _platform_copy[1]
    current = _load_platform_settings()
    if version is not None:
        _platform_copy, _platform_checked_at = (version, current), now
    return current


def forget_platform_settings() -> None:
    """This process reads the settings (and their version) again on its next read."""
    global _platform_copy
    _platform_copy = None


def platform_settings_changed() -> None:
    """Every process reloads the platform settings on its next read: at once, and again after
    the change commits (a read between the two would otherwise keep the old row). This process
    at once; the others on their next version check (within PLATFORM_CHECK_SECONDS)."""

    def bump() -> None:
        forget_platform_settings()
        cache.set(PLATFORM_VERSION_KEY, uuid.uuid4().hex, timeout=None)

    bump()
    transaction.on_commit(bump)


def public_user(*, user_id: int) -> User | None:
    """A user as others may see them: not banned, not staff-only accounts."""
    return User.objects.filter(pk=user_id, is_banned=False, openid__isnull=False).first()


def addresses_of(*, user: User) -> QuerySet[Address]:
    return Address.objects.filter(user=user).order_by("-is_default", "-id")


# --- catalog ---------------------------------------------------------------------------------

CATALOG_CACHE_SECONDS = 60
CATEGORY_CACHE_KEY = "catalog:categories:v1"
BANNER_CACHE_KEY = "catalog:banners:v1"
HOME_SECTION_SIZE = 10
MAX_SEARCH_TERMS = 5
LISTING_SORTS = {
    "newest": ("-approved_at", "-id"),
    "hot": ("-views", "-id"),
    "price_asc": ("price_fen", "id"),
    "price_desc": ("-price_fen", "-id"),
}


def _summaries(rows: list[Listing]) -> list[dict[str, Any]]:
    return [listing_summary_data(listing=row) for row in rows]


def public_listings():
    """On sale, from sellers who are not banned: every public list starts here."""
    return Listing.objects.filter(
        status=ListingStatus.ON_SALE, seller__is_banned=False
    ).select_related("seller")


def listing_for_viewer(*, listing_id: int, viewer: User | None) -> Listing | None:
    """The detail a viewer may open: the seller sees their own in every status; others see
    on-sale, reserved and sold listings (so a buyer with an order still sees what they bought)
    of sellers who are not banned."""
    listing = (
        Listing.objects.select_related("seller", "category")
        .prefetch_related("images")
        .filter(pk=listing_id)
        .first()
    )
    if listing is None:
        return None
    if viewer is not None and listing.seller_id == viewer.pk:
        return listing
    if listing.status not in PUBLIC_DETAIL_STATUSES or listing.seller.is_banned:
        return None
    return listing


def category_tree() -> list[dict[str, Any]]:
    """Active categories as a two-level tree, cached (staff edits invalidate it)."""
    tree = cache.get(CATEGORY_CACHE_KEY)
    if tree is None:
        rows = list(Category.objects.filter(is_active=True).order_by("sort_order", "id"))
        active_roots = {c.pk for c in rows if c.parent_id is None}
        tree = [
            {
                "id": root.pk,
                "name": root.name,
                "icon": _media_or_url(root.icon.name),
                "children": [
                    {"id": c.pk, "name": c.name, "icon": _media_or_url(c.icon.name), "children": []}
                    for c in rows
                    if c.parent_id == root.pk
                ],
            }
            for root in rows
            if root.pk in active_roots
        ]
        cache.set(CATEGORY_CACHE_KEY, tree, CATALOG_CACHE_SECONDS)
    return tree


def _media_or_url(value: str) -> str:
    if not value or value.startswith(("http://", "https://", "/")):
        return value
    return media_url(value)


def category_ids_under(*, category_id: int) -> list[int] | None:
    """The category and its active children, or None when it is unknown or inactive."""
    for root in category_tree():
        if root["id"] == category_id:
            return [root["id"], *(child["id"] for child in root["children"])]
        for child in root["children"]:
            if child["id"] == category_id:
                return [child["id"]]
    return None


def active_banners() -> list[dict[str, Any]]:
    """Banners active now, in order; cached for a minute (so windows are minute-precise)."""
    banners = cache.get(BANNER_CACHE_KEY)
    if banners is None:
        now = timezone.now()
        rows = Banner.objects.filter(
            Q(is_active=True),
            Q(starts_at__isnull=True) | Q(starts_at__lte=now),
            Q(ends_at__isnull=True) | Q(ends_at__gt=now),
        ).order_by("sort_order", "id")
        banners = []
        for banner in rows:
            target = {
                "listing": banner.target_listing_id,
                "category": banner.target_category_id,
                "url": banner.target_url,
            }.get(banner.target_type)
            if target in (None, ""):
                continue  # its target was deleted: a dead banner is worse than none
            banners.append(
                {
                    "id": banner.pk,
                    "title": banner.title,
                    "image_url": media_url(banner.image.name),
                    "target_type": banner.target_type,
                    "target": target,
                }
            )
        cache.set(BANNER_CACHE_KEY, banners, CATALOG_CACHE_SECONDS)
    return banners


def home_data() -> dict[str, Any]:
    base = public_listings()
    return {
        "banners": active_banners(),
        "categories": category_tree(),
        "hot": _summaries(list(base.order_by("-views", "-id")[:HOME_SECTION_SIZE])),
        "newest": _summaries(list(base.order_by("-approved_at", "-id")[:HOME_SECTION_SIZE])),
    }


def _fts_quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _term_filter(term: str) -> Q:
    """One keyword over title and description on SQLite (docs/catalog.md): the FTS5 trigram
    table for words of 3+ characters, LIKE over the table for shorter ones."""
    if len(term) >= 3:
        return Q(
            id__in=RawSQL(
                "SELECT rowid FROM catalog_listing_fts WHERE catalog_listing_fts MATCH %s",
                [_fts_quote(term)],
            )
        )
    return Q(title__icontains=term) | Q(description__icontains=term)


# PostgreSQL (docs/catalog.md "Search"): a page is found in up to two steps, in one prepared
# statement (marketplace/catalog_pages.py):
# 1. walk the sort index from the cursor, reading at most SEARCH_WALK_ROWS entries of it, and
#    keep those whose signature may hold every word (from the index alone), then the rows that
#    really do (read from the table): a word on 1 % of the listings fills a page within ~2,000
#    entries, so common words and pairs stop at the page they need;
# 2. only when the walk found less than a page (rare words): the GIN gram index, all matches
#    after the cursor, sorted (few, since they were rare in the walk).
SEARCH_WALK_ROWS = 10_000


def search_listings(
    *,
    q: str | None = None,
    category_ids: list[int] | None = None,
    min_price: int | None = None,
    max_price: int | None = None,
    city_code: str | None = None,
    condition: str | None = None,
    sort: str = "newest",
    limit: int = 20,
    cursor: str | None = None,
) -> Page:
    words = (q or "").split()[:MAX_SEARCH_TERMS]
    ordering = LISTING_SORTS[sort]
    if connection.vendor != "postgresql":
        queryset = public_listings()
        for word in words:
            queryset = queryset.filter(_term_filter(word))
        queryset = _listing_filters(
            queryset, category_ids, min_price, max_price, city_code=city_code, condition=condition
        )
        return paginate(
            queryset, ordering=ordering, limit=limit, cursor=cursor, transform=_summaries
        )
    # PostgreSQL: one prepared statement finds the page's keys from the covering sort indexes
    # and reads its rows with their sellers (marketplace/catalog_pages.py).
    limit = max(1, min(int(limit), MAX_LIMIT))
    after = decode_cursor(cursor, ",".join(ordering), _cursor_fields(ordering)) if cursor else None
    filters = {
        "category_ids": category_ids,
        "min_price": min_price,
        "max_price": max_price,
        "city_code": city_code,
        "condition": condition,
    }
    found = catalog_pages.page_rows(
        ordering=ordering,
        filters=filters,
        after=after,
        words=words,
        limit=limit + 1,
        walk_rows=SEARCH_WALK_ROWS,
    )
    page = found[:limit]
    next_cursor = cursor_for(ordering, page[-1][1]) if len(found) > limit else None
    return Page(items=[summary for summary, _ in page], next_cursor=next_cursor)


def _cursor_fields(ordering: tuple[str, ...]) -> list:
    return [Listing._meta.get_field(name.lstrip("-")) for name in ordering]


def _listing_filters(
    queryset: QuerySet,
    category_ids: list[int] | None,
    min_price: int | None,
    max_price: int | None,
    *,
    city_code: str | None = None,
    condition: str | None = None,
) -> QuerySet:
    if category_ids is not None:
        queryset = queryset.filter(category_id__in=category_ids)
    if min_price is not None:
        queryset = queryset.filter(price_fen__gte=min_price)
    if max_price is not None:
        queryset = queryset.filter(price_fen__lte=max_price)
    if city_code:
        queryset = queryset.filter(city_code=city_code)
    if condition:
        queryset = queryset.filter(condition=condition)
    return queryset


def listings_of_seller(
    *, seller: User, status: str | None = None, limit: int = 20, cursor: str | None = None
) -> Page:
    queryset = Listing.objects.filter(seller=seller).select_related("seller")
    if status:
        queryset = queryset.filter(status=status)
    return paginate(queryset, ordering=("-id",), limit=limit, cursor=cursor, transform=_summaries)


# --- social (favourites, follows, the seller page) -------------------------------------------


def is_favorite(*, user: User | None, listing_id: int) -> bool:
    if user is None:
        return False
    return Favorite.objects.filter(user=user, listing_id=listing_id).exists()


def is_following(*, user: User | None, seller_id: int) -> bool:
    if user is None or user.pk == seller_id:
        return False
    return Follow.objects.filter(follower=user, seller_id=seller_id).exists()


def favorites_of(*, user: User, limit: int = 20, cursor: str | None = None) -> Page:
    """My favourites, newest first, each with its listing as it is now (sold and off-shelf
    ones stay, their status says so)."""
    queryset = Favorite.objects.filter(user=user).select_related("listing__seller")

    def transform(rows: list[Favorite]) -> list[dict[str, Any]]:
        return [
            {
                **listing_summary_data(listing=row.listing),
                "is_available": row.listing.status == ListingStatus.ON_SALE
                and not row.listing.seller.is_banned,
                "favorited_at": row.created_at,
            }
            for row in rows
        ]

    return paginate(queryset, ordering=("-id",), limit=limit, cursor=cursor, transform=transform)


def following_of(*, user: User, limit: int = 20, cursor: str | None = None) -> Page:
    """The sellers I follow, latest followed first; banned ones are left out."""
    queryset = Follow.objects.filter(follower=user, seller__is_banned=False).select_related(
        "seller"
    )

    def transform(rows: list[Follow]) -> list[dict[str, Any]]:
        return [
            {**public_profile_data(seller=row.seller), "followed_at": row.created_at}
            for row in rows
        ]

    return paginate(queryset, ordering=("-id",), limit=limit, cursor=cursor, transform=transform)


def public_profile_data(*, seller: User, viewer: User | None = None) -> dict[str, Any]:
    """The seller page's header: every count a counter column, none counted here."""
    return {
        "id": seller.pk,
        "nickname": seller.nickname,
        "avatar_url": seller.avatar_url,
        "rating_avg": seller.rating_avg,
        "rating_count": seller.rating_count,
        "on_sale_count": seller.on_sale_count,
        "sold_count": seller.sold_count,
        "follower_count": seller.follower_count,
        "is_following": is_following(user=viewer, seller_id=seller.pk),
        "joined_at": seller.date_joined,
    }


def seller_listings(
    *, seller: User, status: str, limit: int = 20, cursor: str | None = None
) -> Page:
    """A seller's page: their listings on sale (or sold), newest first; nothing for sale while
    they are banned."""
    queryset = Listing.objects.filter(seller=seller, status=status).select_related("seller")
    if seller.is_banned and status == ListingStatus.ON_SALE:
        queryset = queryset.none()
    return paginate(queryset, ordering=("-id",), limit=limit, cursor=cursor, transform=_summaries)


def reviews_of_seller(*, seller: User, limit: int = 20, cursor: str | None = None) -> Page:
    queryset = Review.objects.filter(seller=seller).select_related("buyer", "order")

    def transform(rows: list[Review]) -> list[dict[str, Any]]:
        return [
            {
                "id": row.pk,
                "rating": row.rating,
                "comment": row.comment,
                "buyer": {
                    "id": row.buyer.pk,
                    "nickname": row.buyer.nickname,
                    "avatar_url": row.buyer.avatar_url,
                },
                "listing_title": row.order.title,
                "created_at": row.created_at,
            }
            for row in rows
        ]

    return paginate(queryset, ordering=("-id",), limit=limit, cursor=cursor, transform=transform)


# --- orders ----------------------------------------------------------------------------------


def order_of(*, user: User, order_no: str) -> Order:
    """The order as its buyer or seller reads it (refund and history joined); 404 otherwise."""
    order = (
        Order.objects.filter(Q(buyer=user) | Q(seller=user), order_no=order_no)
        .select_related("refund")
        .prefetch_related("history")
        .first()
    )
    if order is None:
        raise NotFound("No such order.", code="order_not_found")
    return order


def may_read_private_file(*, name: str, reader_id: int) -> bool:
    """Checked again when a private URL is used, not only when it was issued: an order's video
    for its buyer, its seller and staff; an export for its owner; a chat image for its
    conversation's two users, and staff once it is reported. Any other name: nobody."""
    reader = User.objects.filter(pk=reader_id, is_active=True).first()
    if reader is None or reader.is_banned:
        return False
    if name.startswith("order-videos/"):
        if reader.is_staff:
            return Order.objects.filter(video=name).exists()
        return Order.objects.filter(Q(buyer=reader) | Q(seller=reader), video=name).exists()
    if name.startswith("exports/"):
        return DataExport.objects.filter(user=reader, file=name).exists()
    if name.startswith(f"{CHAT_IMAGES}/"):
        return may_read_chat_image(name=name, reader=reader)
    return False


def order_for_display(*, order_id: int) -> Order:
    """An order just written, read back with what its representation needs."""
    return Order.objects.select_related("refund").prefetch_related("history").get(pk=order_id)


def orders_of(*, user: User, role: str, status: str | None = None) -> QuerySet[Order]:
    """The user's orders as buyer or as seller, with the refund joined (lists show no history)."""
    field = "buyer" if role == "buyer" else "seller"
    queryset = Order.objects.filter(**{field: user}).select_related("refund")
    return queryset.filter(status=status) if status else queryset


# --- wallet ----------------------------------------------------------------------------------


def wallet_of(*, user: User) -> Wallet:
    """The user's wallet, or an empty unsaved one before their first sale."""
    return Wallet.objects.filter(user=user).first() or Wallet(user=user)


def ledger_of(*, user: User) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(wallet__user=user).select_related("order")


def withdrawals_of(*, user: User, status: str | None = None) -> QuerySet[Withdrawal]:
    queryset = Withdrawal.objects.filter(user=user).select_related("account", "transfer")
    return queryset.filter(status=status) if status else queryset
