"""Publishing, editing, staff review and view counting of listings (SPEC §2, docs/catalog.md)."""

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from marketplace.actions import social
from marketplace.actions.accounts import check_not_banned
from marketplace.errors import Conflict, DomainError, InvalidInput, NotFound
from marketplace.gateways import wechat
from marketplace.models import (
    Address,
    Category,
    ImageUpload,
    Listing,
    ListingReview,
    ListingStatus,
    ListingView,
    User,
)
from marketplace.models.catalog import LOCKED_STATUSES, MAX_IMAGES, ReviewDecision
from marketplace.representations import listing_detail_data
from marketplace.selectors import BANNER_CACHE_KEY, CATEGORY_CACHE_KEY
from marketplace.states import LISTING
from negotiation.actions import on_listing_price_changed
from project.transactions import retry_on_deadlock
from realtime.push import emit

logger = logging.getLogger("marketplace.catalog")

CONTENT_FIELDS = ("category_id", "title", "description", "features", "image_ids")
VIEW_DEDUPE_SECONDS = 3600
FLUSH_BATCH = 5000


class RiskyContent(DomainError):
    status = 422
    code = "content_risky"
    message = "The title or description breaks the content rules; please change it."


def invalidate_catalog_cache() -> None:
    """Staff changed categories or banners: drop the cached tree and carousel after commit."""
    transaction.on_commit(lambda: cache.delete_many([CATEGORY_CACHE_KEY, BANNER_CACHE_KEY]))


# --- checks ----------------------------------------------------------------------------------


def check_leaf_category(*, category_id: int) -> Category:
    category = Category.objects.filter(pk=category_id, is_active=True).first()
    if category is None:
        raise InvalidInput("No such category.", code="unknown_category")
    if category.parent_id is None or Category.objects.filter(parent_id=category.pk).exists():
        raise InvalidInput(
            "Pick a sub-category (e.g. 手机 / 苹果), not a top-level one.", code="category_not_leaf"
        )
    return category


def check_text(*, seller: User, title: str, description: str) -> bool:
    """WeChat's text security check. Returns True when staff should look closely ("review");
    refuses "risky" content outright."""
    if not seller.openid:
        return True  # no openid to check against: let staff read it
    verdict = wechat.text_check(openid=seller.openid, content=f"{title}\n{description}")
    if verdict == "risky":
        raise RiskyContent()
    return verdict == "review"


def _check_images(*, seller: User, image_ids: Sequence[int], listing: Listing | None) -> list:
    if not image_ids:
        raise InvalidInput("Add at least one image.", code="images_required")
    if len(image_ids) > MAX_IMAGES:
        raise InvalidInput(
            "At most %(limit)s images.", code="too_many_images", params={"limit": MAX_IMAGES}
        )
    if len(set(image_ids)) != len(image_ids):
        raise InvalidInput("An image appears twice.", code="duplicate_image")
    # Locked so two listings published at once cannot both consume the same upload.
    uploads = {
        u.pk: u
        for u in ImageUpload.objects.select_for_update().filter(pk__in=image_ids, owner=seller)
    }
    for image_id in image_ids:
        upload = uploads.get(image_id)
        attached_here = (
            upload is not None and listing is not None and upload.listing_id == listing.pk
        )
        if upload is None or (upload.consumed_at is not None and not attached_here):
            raise InvalidInput(
                "Image %(id)s is not one of your unused uploads.",
                code="invalid_image_id",
                params={"id": image_id},
            )
    return [uploads[i] for i in image_ids]


def _attach_images(*, listing: Listing, uploads: list[ImageUpload]) -> None:
    now = timezone.now()
    keep = [u.pk for u in uploads]
    # Removed images stay consumed: a file once shown on one listing never moves to another.
    ImageUpload.objects.filter(listing=listing).exclude(pk__in=keep).update(listing=None)
    for position, upload in enumerate(uploads):
        upload.listing = listing
        upload.position = position
        upload.consumed_at = upload.consumed_at or now
    ImageUpload.objects.bulk_update(uploads, ["listing", "position", "consumed_at"])
    listing.cover = uploads[0].thumbnail


# --- publishing ------------------------------------------------------------------------------


def default_city_code(seller: User) -> str:
    """The city of the seller's default address, when the address book records its code (the
    address book's region list); else none."""
    address = Address.objects.filter(user=seller, is_default=True).only("city_code").first()
    return address.city_code if address is not None else ""


def create_listing(*, seller: User, data: dict[str, Any]) -> Listing:
    """A new listing, waiting for staff review. `data` is validated for shape by the API."""
    check_not_banned(seller)
    category = check_leaf_category(category_id=data["category_id"])
    # Outside the transaction: a network call must not hold locks.
    flagged = check_text(seller=seller, title=data["title"], description=data["description"])
    with transaction.atomic(durable=True):
        uploads = _check_images(seller=seller, image_ids=data["image_ids"], listing=None)
        listing = Listing.objects.create(
            seller=seller,
            category=category,
            title=data["title"],
            description=data["description"],
            features=data.get("features") or [],
            price_fen=data["price_fen"],
            original_price_fen=data.get("original_price_fen"),
            shipping_fee_fen=data.get("shipping_fee_fen", 0),
            city_code=data.get("city_code") or default_city_code(seller),
            condition=data.get("condition") or "",
            status=ListingStatus.PENDING_REVIEW,
            is_flagged=flagged,
        )
        _attach_images(listing=listing, uploads=uploads)
        listing.save(update_fields=["cover"])
    logger.info("listing created id=%s seller=%s flagged=%s", listing.pk, seller.pk, flagged)
    return listing


def access_own_listing(*, seller: User, listing_id: int, lock: bool = False) -> Listing:
    """The seller's listing, locked when asked; someone else's is a 404, not a 403."""
    queryset = Listing.objects.filter(pk=listing_id, seller=seller)
    if lock:
        queryset = queryset.select_for_update()
    listing = queryset.first()
    if listing is None:
        raise NotFound("No such listing.", code="listing_not_found")
    return listing


def _check_editable(listing: Listing) -> None:
    if listing.status in LOCKED_STATUSES:
        raise Conflict("A reserved or sold listing cannot be changed.", code="listing_not_editable")


@retry_on_deadlock
def update_listing(*, seller: User, listing_id: int, data: dict[str, Any]) -> Listing:
    """Seller edits. Content changes (text, category, features, images) go back to review;
    a price-only change keeps the status, except that a rejected listing is resubmitted."""
    check_not_banned(seller)
    current = access_own_listing(seller=seller, listing_id=listing_id)
    _check_editable(current)
    category = None
    if "category_id" in data and data["category_id"] != current.category_id:
        category = check_leaf_category(category_id=data["category_id"])
    title = data.get("title", current.title)
    description = data.get("description", current.description)
    text_changed = title != current.title or description != current.description
    flagged = (
        check_text(seller=seller, title=title, description=description) if text_changed else None
    )

    with transaction.atomic(durable=True):
        listing = access_own_listing(seller=seller, listing_id=listing_id, lock=True)
        # Re-checked under the lock: an order may have reserved it since the first read.
        _check_editable(listing)
        content_changed = text_changed
        if category is not None:
            listing.category = category
            content_changed = True
        listing.title, listing.description = title, description
        if "features" in data and data["features"] != listing.features:
            listing.features = data["features"]
            content_changed = True
        if "condition" in data and data["condition"] != listing.condition:
            listing.condition = data["condition"]
            content_changed = True
        # Shown next to the price, not reviewed: saved like a price change.
        details_changed = False
        for name in ("original_price_fen", "shipping_fee_fen", "city_code"):
            if name in data and data[name] != getattr(listing, name):
                setattr(listing, name, data[name])
                details_changed = True
        if "image_ids" in data:
            current_ids = list(listing.images.order_by("position").values_list("pk", flat=True))
            if list(data["image_ids"]) != current_ids:
                uploads = _check_images(seller=seller, image_ids=data["image_ids"], listing=listing)
                _attach_images(listing=listing, uploads=uploads)
                content_changed = True
        price_changed = "price_fen" in data and data["price_fen"] != listing.price_fen
        old_price_fen = listing.price_fen
        if price_changed:
            listing.price_fen = data["price_fen"]
            # Offers (or counters) at or above the new price are pointless now (SPEC §4).
            on_listing_price_changed(listing=listing, new_price_fen=listing.price_fen)
        if flagged is not None:
            listing.is_flagged = flagged
        if content_changed or (price_changed and listing.status == ListingStatus.REJECTED):
            # A content edit (or a new price for a rejected listing) goes back to review.
            listing.submitted_at = timezone.now()
            LISTING.move(listing, ListingStatus.PENDING_REVIEW, fields=EDITABLE_FIELDS)
        elif content_changed or price_changed or details_changed:
            listing.save(update_fields=[*EDITABLE_FIELDS, "updated_at"])
        if price_changed:
            social.notify_price_changed(listing=listing, old_price_fen=old_price_fen)
    return listing


# What a seller's edit may change (the images are rows of their own, attached above).
EDITABLE_FIELDS = (
    "category", "title", "description", "features", "price_fen", "cover", "is_flagged",
    "submitted_at", "original_price_fen", "shipping_fee_fen", "city_code", "condition",
)


def take_off_shelf(*, seller: User, listing_id: int) -> Listing:
    with transaction.atomic(durable=True):
        listing = access_own_listing(seller=seller, listing_id=listing_id, lock=True)
        if listing.status == ListingStatus.OFF_SHELF:
            return listing  # idempotent: a retried tap changes nothing
        _check_editable(listing)
        LISTING.move(listing, ListingStatus.OFF_SHELF)
    return listing


def relist(*, seller: User, listing_id: int) -> Listing:
    """An off-shelf listing goes back on the storefront through review again."""
    check_not_banned(seller)
    with transaction.atomic(durable=True):
        listing = access_own_listing(seller=seller, listing_id=listing_id, lock=True)
        if listing.status != ListingStatus.OFF_SHELF:
            raise Conflict("Only an off-shelf listing can be relisted.", code="not_off_shelf")
        listing.submitted_at = timezone.now()
        LISTING.move(listing, ListingStatus.PENDING_REVIEW, fields=["submitted_at"])
    return listing


# --- staff review ----------------------------------------------------------------------------


def notify_listing_reviewed(*, listing: Listing) -> None:
    """Records the seller's `listing.reviewed` event inside the caller's transaction; the push
    module delivers it after commit."""
    emit(
        user_ids=[listing.seller_id],
        type="listing.reviewed",
        data=listing_detail_data(listing=listing),
    )


def _review(*, staff: User, listing_id: int, decision: str, reason: str) -> Listing:
    with transaction.atomic(durable=True):
        listing = Listing.objects.select_for_update().filter(pk=listing_id).first()
        if listing is None:
            raise NotFound("No such listing.", code="listing_not_found")
        if listing.status != ListingStatus.PENDING_REVIEW:
            raise Conflict(
                "Listing #%(id)s is %(status)s, not waiting for review.",
                code="not_pending_review",
                params={"id": listing_id, "status": listing.status},
            )
        if decision == ReviewDecision.APPROVED:
            first_time = listing.approved_at is None
            listing.approved_at = timezone.now()
            listing.review_note = ""
            LISTING.move(listing, ListingStatus.ON_SALE, fields=["approved_at", "review_note"])
        else:
            listing.review_note = reason
            LISTING.move(listing, ListingStatus.REJECTED, fields=["review_note"])
        ListingReview.objects.create(listing=listing, staff=staff, decision=decision, reason=reason)
        notify_listing_reviewed(listing=listing)
        if decision == ReviewDecision.APPROVED:
            social.notify_listing_approved(listing=listing, first_time=first_time)
    logger.info("listing %s id=%s by staff=%s", decision, listing_id, staff.pk)
    return listing


def approve_listing(*, staff: User, listing_id: int) -> Listing:
    return _review(staff=staff, listing_id=listing_id, decision=ReviewDecision.APPROVED, reason="")


def reject_listing(*, staff: User, listing_id: int, reason: str) -> Listing:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(
            "A rejection needs a reason the seller can act on.", code="reason_required"
        )
    return _review(
        staff=staff, listing_id=listing_id, decision=ReviewDecision.REJECTED, reason=reason[:200]
    )


def review_many(
    *, staff: User, listing_ids: Iterable[int], approve: bool, reason: str = ""
) -> tuple[int, list[str]]:
    """Admin bulk action: one transaction per listing, so one stale row does not undo the rest.
    Returns (decided count, problems)."""
    done, problems = 0, []
    for listing_id in listing_ids:
        try:
            if approve:
                approve_listing(staff=staff, listing_id=listing_id)
            else:
                reject_listing(staff=staff, listing_id=listing_id, reason=reason)
            done += 1
        except DomainError as exc:
            problems.append(exc.message)
    return done, problems


# --- views (hot) -----------------------------------------------------------------------------


def record_view(*, listing_id: int, status: str, viewer_key: str) -> bool:
    """Counts one detail open per viewer per listing per hour, for listings on sale. The dedupe
    is a cache.add (atomic set-if-absent), and the count is an appended row, so popular listings
    never make requests queue on their row; the flush task folds rows into Listing.views."""
    if status != ListingStatus.ON_SALE:
        return False
    hour = int(timezone.now().timestamp()) // VIEW_DEDUPE_SECONDS
    if not cache.add(f"lv:{listing_id}:{viewer_key}:{hour}", 1, VIEW_DEDUPE_SECONDS):
        return False
    ListingView.objects.create(listing_id=listing_id)
    return True


def flush_listing_views(*, batch: int = FLUSH_BATCH) -> int:
    """Folds up to `batch` buffered views into the listings; returns how many were folded.
    Safe to run concurrently: rows are claimed with SKIP LOCKED and deleted in the same
    transaction, so each view counts exactly once."""
    with transaction.atomic(durable=True):
        claimed = list(
            ListingView.objects.select_for_update(skip_locked=True)
            .order_by("id")
            .values_list("id", "listing_id")[:batch]
        )
        if not claimed:
            return 0
        counts = Counter(listing_id for _, listing_id in claimed)
        ListingView.objects.filter(pk__in=[pk for pk, _ in claimed]).delete()
        # Ascending id order: two flushers lock listings in the same order, so no deadlock.
        for listing_id in sorted(counts):
            Listing.objects.filter(pk=listing_id).update(views=F("views") + counts[listing_id])
    return len(claimed)
