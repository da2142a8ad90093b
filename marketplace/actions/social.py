"""Favourites, follows, the seller page's counters, and the news told to favouriters and
followers (SPEC §4b, docs/social.md).

Counters: a favourite or follow is one row, inserted with ON CONFLICT DO NOTHING (a double tap
inserts once) and counted with an F() update in the same transaction only when the row really
was inserted or deleted, so the counter is always the number of rows. Neither bumps the
storefront's generation: cached pages show a count up to STOREFRONT_CACHE_SECONDS old.

News (price drop, sold or taken down, a followed seller's new listing): the writer's
transaction stores one ListingBroadcast row and queues its task after commit; the task tells
the recipients in batches, each batch one transaction under the broadcast's lock (events through
`realtime.push.fan_out`, by COPY on PostgreSQL, and the notification centre's entries with them), moving the
broadcast's cursor on as it goes. The seller's request never waits for the fan-out.
"""

import json
import logging
import time
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from marketplace.errors import Conflict, NotFound
from marketplace.models import (
    BroadcastKind,
    Favorite,
    Follow,
    Listing,
    ListingBroadcast,
    ListingStatus,
    User,
)
from marketplace.models.catalog import PUBLIC_DETAIL_STATUSES
from marketplace.representations import listing_summary_data
from marketplace.selectors import public_user
from marketplace.states import LISTING
from project.tasking import enqueue, enqueue_on_commit
from realtime import presence
from realtime.models import Notification
from realtime.push import drain_sends, encode, fan_out

logger = logging.getLogger("marketplace.social")

FAN_OUT_BATCH = 1000
# The online-first batch's bound (one transaction, one COPY).
EARLY_MAX = 5000
FAN_OUT_PAUSE_SECONDS = 0.1
# Batches a task run takes after its first (which, in the first run, is the people online);
# then the walk queues its continuation behind whatever came in, so a newer broadcast's
# people-online batch never waits for whole walks on a busy consumer.
WALK_BATCHES_PER_RUN = 2
FAN_OUT_TASK = "marketplace.tasks.fan_out_broadcast_task"

_INSERT_FAVORITE_SQL = (
    "INSERT INTO social_favorite (user_id, listing_id, created_at) VALUES (%s, %s, %s)"
    " ON CONFLICT (listing_id, user_id) DO NOTHING RETURNING id"
)
_INSERT_FOLLOW_SQL = (
    "INSERT INTO social_follow (follower_id, seller_id, created_at) VALUES (%s, %s, %s)"
    " ON CONFLICT (seller_id, follower_id) DO NOTHING RETURNING id"
)


def _insert_once(sql: str, params: list[Any]) -> bool:
    """True when this call inserted the row; False when it was there (or a concurrent insert
    of the same pair committed first: PostgreSQL waits for it, then does nothing)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is not None


# --- favourites ------------------------------------------------------------------------------


def access_favoritable_listing(*, user: User, listing_id: int) -> Listing:
    """A listing the user may favourite: one anyone may open, not their own."""
    listing = Listing.objects.select_related("seller").filter(pk=listing_id).first()
    if listing is None or (
        listing.seller_id != user.pk
        and (listing.status not in PUBLIC_DETAIL_STATUSES or listing.seller.is_banned)
    ):
        raise NotFound("No such listing.", code="listing_not_found")
    if listing.seller_id == user.pk:
        raise Conflict("You cannot favourite your own listing.", code="own_listing")
    return listing


def favorite_listing(*, user: User, listing_id: int) -> int:
    """Idempotent; returns the listing's favourite count after it."""
    access_favoritable_listing(user=user, listing_id=listing_id)
    with transaction.atomic(durable=True):
        if _insert_once(_INSERT_FAVORITE_SQL, [user.pk, listing_id, timezone.now()]):
            Listing.objects.filter(pk=listing_id).update(favorite_count=F("favorite_count") + 1)
        return _favorite_count(listing_id)


def unfavorite_listing(*, user: User, listing_id: int) -> int:
    """Idempotent; a listing that went away (or off the storefront) can still be un-wanted."""
    with transaction.atomic(durable=True):
        deleted, _ = Favorite.objects.filter(user=user, listing_id=listing_id).delete()
        if deleted:
            Listing.objects.filter(pk=listing_id).update(favorite_count=F("favorite_count") - 1)
        elif not Listing.objects.filter(pk=listing_id).exists():
            raise NotFound("No such listing.", code="listing_not_found")
        return _favorite_count(listing_id)


def _favorite_count(listing_id: int) -> int:
    return Listing.objects.filter(pk=listing_id).values_list("favorite_count", flat=True).first() or 0


# --- follows ---------------------------------------------------------------------------------


def access_followable_seller(*, user: User, seller_id: int) -> User:
    seller = public_user(user_id=seller_id)
    if seller is None:
        raise NotFound("No such user.", code="user_not_found")
    if seller.pk == user.pk:
        raise Conflict("You cannot follow yourself.", code="follow_self")
    return seller


def follow_seller(*, user: User, seller_id: int) -> int:
    """Idempotent; returns the seller's follower count after it."""
    access_followable_seller(user=user, seller_id=seller_id)
    with transaction.atomic(durable=True):
        if _insert_once(_INSERT_FOLLOW_SQL, [user.pk, seller_id, timezone.now()]):
            User.objects.filter(pk=seller_id).update(follower_count=F("follower_count") + 1)
        return _follower_count(seller_id)


def unfollow_seller(*, user: User, seller_id: int) -> int:
    with transaction.atomic(durable=True):
        deleted, _ = Follow.objects.filter(follower=user, seller_id=seller_id).delete()
        if deleted:
            User.objects.filter(pk=seller_id).update(follower_count=F("follower_count") - 1)
        elif not User.objects.filter(pk=seller_id, openid__isnull=False).exists():
            raise NotFound("No such user.", code="user_not_found")
        return _follower_count(seller_id)


def _follower_count(seller_id: int) -> int:
    return User.objects.filter(pk=seller_id).values_list("follower_count", flat=True).first() or 0


# --- the seller page's listing counters --------------------------------------------------------

_RECOUNT_SQL = (
    "UPDATE accounts_user SET"
    " on_sale_count = (SELECT count(*) FROM catalog_listing l"
    "  WHERE l.seller_id = accounts_user.id AND l.status = %s),"
    " sold_count = (SELECT count(*) FROM catalog_listing l"
    "  WHERE l.seller_id = accounts_user.id AND l.status = %s)"
    " WHERE id {ids}"
)


def recount_seller_listings(*, seller_ids: list[int]) -> None:
    """Sets the sellers' on-sale and sold counters from their listing rows (one statement, on
    the seller index). Run after the move committed, so it counts what is committed; a later
    move's own recount follows it."""
    ids = sorted(set(seller_ids))
    if not ids:
        return
    with connection.cursor() as cursor:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            ids_params: list[Any]
            if connection.vendor == "postgresql":  # one array parameter (project/lookups.py)
                ids_sql, ids_params = "= ANY(%s::bigint[])", [chunk]
            else:
                ids_sql, ids_params = f"IN ({', '.join(['%s'] * len(chunk))})", chunk
            cursor.execute(
                _RECOUNT_SQL.format(ids=ids_sql),
                [ListingStatus.ON_SALE, ListingStatus.SOLD, *ids_params],
            )


_UNAVAILABLE: dict[str, str] = {ListingStatus.SOLD: "sold", ListingStatus.OFF_SHELF: "off_shelf"}


def _listing_moved(to: str, moved: Any) -> None:
    """LISTING's observer (registered below): in the mover's transaction. Recounts the sellers'
    counters once it commits, and tells favouriters when a listing left the market for good."""
    reason = _UNAVAILABLE.get(to)
    if isinstance(moved, QuerySet):
        # A set-based move (a sweep's 2,000 listings): their sellers and favourite counts as
        # values, and whole rows only for the few with favouriters to tell.
        values = list(moved.values_list("pk", "seller_id", "favorite_count"))
        seller_ids = [seller_id for _, seller_id, _ in values]
        wanted = [pk for pk, _, favorites in values if favorites > 0] if reason else []
        rows = list(moved.filter(pk__any_of=wanted).select_related("seller")) if wanted else []
    else:
        rows = list(moved)
        seller_ids = [row.seller_id for row in rows]
    transaction.on_commit(lambda: recount_seller_listings(seller_ids=seller_ids))
    if reason is None:
        return
    for listing in rows:
        if listing.favorite_count > 0:
            # The summary the news carries shows where it went (a set-based move's rows were
            # read just before their UPDATE, and are not used again).
            listing.status = to
            _broadcast(kind=BroadcastKind.UNAVAILABLE, listing=listing, extra={"reason": reason})


LISTING.observers.append(_listing_moved)


# --- news to favouriters and followers ----------------------------------------------------------


def _broadcast(*, kind: str, listing: Listing, extra: dict[str, Any]) -> ListingBroadcast:
    # Stored as the frames will carry it (times in the wire format), once for every batch.
    data = json.loads(encode({"listing": listing_summary_data(listing=listing), **extra}))
    broadcast = ListingBroadcast.objects.create(kind=kind, listing=listing, data=data)
    enqueue_on_commit(FAN_OUT_TASK, broadcast.pk)
    return broadcast


def notify_price_changed(*, listing: Listing, old_price_fen: int) -> None:
    """In the seller's edit transaction: a lower price on a public listing that people want is
    news for them (a rise is not)."""
    if (
        listing.price_fen < old_price_fen
        and listing.favorite_count > 0
        and listing.status == ListingStatus.ON_SALE
    ):
        _broadcast(
            kind=BroadcastKind.PRICE_DROPPED,
            listing=listing,
            extra={"old_price": old_price_fen, "new_price": listing.price_fen},
        )


def notify_listing_approved(*, listing: Listing, first_time: bool) -> None:
    """In staff's review transaction: a followed seller's newly approved listing is news for
    their followers (an edit approved again is not new)."""
    if first_time and listing.seller.follower_count > 0:
        _broadcast(kind=BroadcastKind.NEW_FROM_FOLLOWED, listing=listing, extra={})


def _audience(
    broadcast: ListingBroadcast, *, after: int, limit: int | None
) -> list[tuple[int, bool]]:
    """(user id, is banned) of the recipients after user id `after`, in id order (on the unique
    indexes): favouriters of the listing, or followers of its seller."""
    rows: QuerySet[Any, tuple[int, bool]]
    if broadcast.kind == BroadcastKind.NEW_FROM_FOLLOWED:
        rows = (
            Follow.objects.filter(seller_id=broadcast.listing.seller_id, follower_id__gt=after)
            .order_by("follower_id")
            .values_list("follower_id", "follower__is_banned")
        )
    else:
        rows = (
            Favorite.objects.filter(listing_id=broadcast.listing_id, user_id__gt=after)
            .order_by("user_id")
            .values_list("user_id", "user__is_banned")
        )
    return list(rows if limit is None else rows[:limit])


def fan_out_batch(*, broadcast_id: int, batch: int = FAN_OUT_BATCH) -> bool:
    """Tells the next recipients of the broadcast; True when more remain. The first batch is
    everyone with a socket open (at most EARLY_MAX), then `batch` at a time by user id. One
    transaction under the broadcast row's lock: a concurrent run waits and then continues after
    this batch, a rolled-back batch tells nobody and leaves the cursor where it was."""
    started = time.perf_counter()
    with transaction.atomic(durable=True):
        broadcast = (
            ListingBroadcast.objects.select_for_update(of=("self",))
            .select_related("listing")
            .filter(pk=broadcast_id)
            .first()
        )
        if broadcast is None or broadcast.done_at is not None:
            return False
        if not broadcast.early_done:
            everyone = [
                user_id
                for user_id, banned in _audience(broadcast, after=0, limit=None)
                if not banned
            ]
            online = presence.online_among(everyone)[:EARLY_MAX]
            if online:
                fan_out(user_ids=online, type=broadcast.kind, data=broadcast.data)
            broadcast.early_user_ids = online
            broadcast.early_done = True
            broadcast.told = len(online)
            broadcast.save(update_fields=["early_user_ids", "early_done", "told"])
            more, told_now = True, len(online)
        else:
            recipients = _audience(broadcast, after=broadcast.next_user_id, limit=batch)
            told_now = 0
            if recipients:
                early = set(broadcast.early_user_ids)
                told = [u for u, banned in recipients if not banned and u not in early]
                if told:
                    fan_out(user_ids=told, type=broadcast.kind, data=broadcast.data)
                broadcast.next_user_id = recipients[-1][0]
                broadcast.told += len(told)
                told_now = len(told)
            more = len(recipients) == batch
            if not more:
                broadcast.done_at = timezone.now()
            broadcast.save(update_fields=["next_user_id", "told", "done_at"])
    logger.info(
        "broadcast %s: told %d in %.0f ms%s",
        broadcast_id, told_now, (time.perf_counter() - started) * 1000, "" if more else ", done",
    )  # fmt: skip
    return more


def fan_out_broadcast(*, broadcast_id: int, batch: int = FAN_OUT_BATCH) -> None:
    """The broadcast's next batches (the task). Safe to run twice.

    After the first batch (the people online) its frames are let out before the walk starts:
    the walk's COPYs would otherwise hold the GIL the sender loop needs. Between walk batches
    the task pauses a little: the recipients left are offline (they find it on resume and in
    the notification centre), so the walk yields the CPU to the requests of people who are
    not. After WALK_BATCHES_PER_RUN walk batches it queues its own continuation and gives the
    worker back: a walk of 50,000 takes seconds, and the people online of a newer broadcast
    queued meanwhile are told first."""
    first, walked = True, 0
    while fan_out_batch(broadcast_id=broadcast_id, batch=batch):
        if first:
            drain_sends(timeout=5)
            first = False
            continue
        walked += 1
        if walked >= WALK_BATCHES_PER_RUN:
            enqueue(FAN_OUT_TASK, broadcast_id)
            return
        if FAN_OUT_PAUSE_SECONDS:
            time.sleep(FAN_OUT_PAUSE_SECONDS)


def sweep_broadcasts(*, older_than_seconds: int = 60) -> int:
    """Re-queues broadcasts left unfinished (a worker died, the queue lost the task): Huey has
    no acknowledgements, the row is the truth. Returns how many were queued."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        ListingBroadcast.objects.filter(done_at__isnull=True, created_at__lt=cutoff)
        .order_by("id")
        .values_list("pk", flat=True)[:100]
    )
    for broadcast_id in ids:
        enqueue(FAN_OUT_TASK, broadcast_id)
    return len(ids)


def forget_user(*, user: User) -> None:
    """Erasure (注销 after the cooling-off period), in its transaction: the user's favourites
    and follows go, with the counters they held up; so do their notifications."""
    wanted = list(Favorite.objects.filter(user=user).values_list("listing_id", flat=True))
    Favorite.objects.filter(user=user).delete()
    for listing_id in sorted(wanted):  # one lock order for every eraser
        Listing.objects.filter(pk=listing_id).update(favorite_count=F("favorite_count") - 1)
    followed = list(Follow.objects.filter(follower=user).values_list("seller_id", flat=True))
    Follow.objects.filter(follower=user).delete()
    for seller_id in sorted(followed):
        User.objects.filter(pk=seller_id).update(follower_count=F("follower_count") - 1)
    Follow.objects.filter(seller=user).delete()
    User.objects.filter(pk=user.pk).update(follower_count=0)
    Notification.objects.filter(user=user).delete()
