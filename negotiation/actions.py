"""Bargaining (SPEC §4): every write on offers. REST and socket handlers call these.

Lock order, everywhere: the listing row, then offer rows (by id), then the realtime counters of
everyone to be told (by user id, all at once: an action telling several people stores its
events in one statement, `realtime.push.batched`; a later event to someone new could deadlock
with a transaction locking in the other order, and the test settings refuse it). Every move on an offer, a direct purchase and a
price edit start with the listing lock, so on one listing they happen one at a time.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Subquery
from django.utils import timezone

from marketplace.actions.accounts import check_not_banned
from marketplace.actions.orders import (
    ADDRESS_SNAPSHOT_FIELDS,
    address_snapshot,
    check_can_buy,
    lock_listing,
    reserve_listing_for,
    snapshot_of,
)
from marketplace.errors import Conflict, Forbidden, NotFound, RateLimited, Unprocessable
from marketplace.models import Address, Listing, ListingStatus, User
from marketplace.models.orders import Order
from marketplace.selectors import platform_settings
from negotiation.conversations import (
    OfferMove,
    attach_threads,
    check_offer_allowed,
    close_other_threads,
    gathered,
    lock_threads,
    record_offer_moves,
    reopen_threads,
)
from negotiation.models import DeclineReason, Offer, OfferHistory
from negotiation.representations import offer_data
from negotiation.states import LIVE_STATUSES, OFFER, OfferStatus
from project import rows
from project.ratelimit import hit
from project.tasking import enqueue_on_commit
from project.transactions import retry_on_deadlock
from realtime.push import batched, emit

logger = logging.getLogger("negotiation")
Actor = OfferHistory.Actor
Action = OfferHistory.Action

# Hidden from everyone but the seller: an offer on one of these is a 404, as on the API.
UNPUBLISHED = (ListingStatus.PENDING_REVIEW, ListingStatus.REJECTED)
DAY = timedelta(hours=24)


# --- checks ------------------------------------------------------------------------------------


def check_offer_rate(*, buyer: User) -> None:
    """Flood guard across all listings: the shared sliding-window counter every limit uses
    (project.ratelimit), per user id, so every server process counts together and a minute's
    edge is no fresh allowance. The per-listing daily cap is enforced separately, exactly,
    under the listing lock."""
    limit = int(getattr(settings, "OFFER_RATE_PER_MINUTE", 20))
    if not hit(f"offer:user:{buyer.pk}", limit=limit, period=60).allowed:
        raise RateLimited(
            "At most %(limit)s offers a minute; wait a moment.",
            code="rate_limited",
            params={"limit": limit},
        )


def check_offer_price(*, price_fen: int, listing: Listing) -> None:
    if price_fen >= listing.price_fen:
        raise Unprocessable(
            "An offer must be below the listing price (%(price)s fen); buy it instead.",
            code="price_not_below_listing",
            params={"price": listing.price_fen},
        )


def buyer_address(*, buyer: User, address_id: int | None = None) -> dict:
    """The address the agreed order ships to: the one given, else the default, else the newest.
    No address at all is a 409 the client answers by asking for one."""
    if address_id is not None:
        return address_snapshot(buyer=buyer, address_id=address_id)
    address = Address.objects.filter(user=buyer).order_by("-is_default", "-id").first()
    if address is None:
        raise _address_required()
    return snapshot_of(address)


_OFFER_WITH_BUYER_SQL = (  # noqa: S608 - the models' own table and column names
    "SELECT {offer}, {buyer} FROM negotiation_offer o JOIN {users} b ON b.id = o.buyer_id"
    " WHERE o.id = %s FOR UPDATE OF o"
).format(offer=rows.columns(Offer, "o"), buyer=rows.columns(User, "b"), users=User._meta.db_table)


# The buyer's address an order would snapshot (the default one, else the newest), joined to a
# lock statement: `a.found` is null when they have none. `{buyer}` is the buyer's id expression.
_BUYER_ADDRESS_JOIN = (  # noqa: S608 - the models' own table and column names
    " LEFT JOIN LATERAL (SELECT true AS found, {columns} FROM {addresses}"
    " WHERE user_id = {{buyer}} ORDER BY is_default DESC, id DESC LIMIT 1) a ON true"
).format(columns=", ".join(ADDRESS_SNAPSHOT_FIELDS), addresses=Address._meta.db_table)
_ADDRESS_COLUMNS = ", ".join(f"a.{name}" for name in ADDRESS_SNAPSHOT_FIELDS)


_OFFER_WITH_ADDRESS_SQL = (  # noqa: S608 - the models' own table and column names
    "SELECT {offer}, {buyer}, a.found, {address} FROM negotiation_offer o"
    " JOIN {users} b ON b.id = o.buyer_id{buyer_address}"
    " WHERE o.id = %s FOR UPDATE OF o"
).format(
    offer=rows.columns(Offer, "o"),
    buyer=rows.columns(User, "b"),
    users=User._meta.db_table,
    address=_ADDRESS_COLUMNS,
    buyer_address=_BUYER_ADDRESS_JOIN.format(buyer="o.buyer_id"),
)


def lock_offer(*, user: User, offer_id: int) -> Offer:
    """`access_offer(lock=True)` for the moves on a live offer (whose order is none yet): the
    offer locked with its buyer, in one hand-written statement on PostgreSQL."""
    return _lock_offer(user=user, offer_id=offer_id)[0]


def lock_offer_with_address(*, user: User, offer_id: int) -> tuple[Offer, dict | None]:
    """`lock_offer` and the buyer's default address (`buyer_address` without an id; None when
    they have none) for an acceptance: one statement on PostgreSQL."""
    if connection.vendor != "postgresql":
        offer = access_offer(user=user, offer_id=offer_id, lock=True)
        address = Address.objects.filter(user_id=offer.buyer_id).order_by("-is_default", "-id")
        found = address.first()
        return offer, None if found is None else snapshot_of(found)
    return _lock_offer(user=user, offer_id=offer_id, with_address=True)


def _lock_offer(
    *, user: User, offer_id: int, with_address: bool = False
) -> tuple[Offer, dict | None]:
    if connection.vendor != "postgresql":
        return access_offer(user=user, offer_id=offer_id, lock=True), None
    with connection.cursor() as cursor:
        cursor.execute(_OFFER_WITH_ADDRESS_SQL if with_address else _OFFER_WITH_BUYER_SQL, [offer_id])
        row = cursor.fetchone()
    if row is not None:
        split, end = rows.width(Offer), rows.width(Offer) + rows.width(User)
        offer = rows.load(Offer, row[:split])
        if user.pk in (offer.buyer_id, offer.seller_id):
            # The socket's (or the request's) user is not read again: the row is only locked.
            offer.buyer = user if user.pk == offer.buyer_id else rows.load(User, row[split:end])
            address = None
            if with_address and row[end]:
                address = dict(zip(ADDRESS_SNAPSHOT_FIELDS, row[end + 1 :], strict=True))
            return offer, address
    raise NotFound("No such offer.", code="offer_not_found")


def access_offer(*, user: User, offer_id: int, lock: bool = False) -> Offer:
    """The offer if `user` is its buyer or seller; 404 otherwise (never reveal it exists)."""
    queryset = Offer.objects.filter(pk=offer_id).select_related("order", "buyer")
    if lock:
        queryset = queryset.select_for_update(of=("self",))
    offer = queryset.first()
    if offer is None or user.pk not in (offer.buyer_id, offer.seller_id):
        raise NotFound("No such offer.", code="offer_not_found")
    return offer


_LISTING_OF_OFFER_SQL = (  # noqa: S608 - the models' own table and column names
    "SELECT {listing}, {seller} FROM catalog_listing l JOIN {users} s ON s.id = l.seller_id"
    " WHERE l.id = (SELECT listing_id FROM negotiation_offer WHERE id = %s) FOR UPDATE OF l"
).format(
    listing=rows.columns(Listing, "l"), seller=rows.columns(User, "s"), users=User._meta.db_table
)


def _listing_with_seller(row) -> Listing:
    split = rows.width(Listing)
    listing = rows.load(Listing, row[:split])
    listing.seller = rows.load(User, row[split:])
    return listing


def lock_listing_of_offer(offer_id: int) -> Listing:
    """The listing lock every move on an offer starts with, found from the offer in the same
    statement (no read of the offer first); 404 when there is no such offer. Hand-written on
    PostgreSQL: the ORM's compilation of it was a large part of a move's Python."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_LISTING_OF_OFFER_SQL, [offer_id])
            row = cursor.fetchone()
        if row is None:
            raise NotFound("No such offer.", code="offer_not_found")
        return _listing_with_seller(row)
    listing = (
        Listing.objects.select_for_update(of=("self",))
        .select_related("seller")
        .filter(pk=Subquery(Offer.objects.filter(pk=offer_id).values("listing_id")[:1]))
        .first()
    )
    if listing is None:
        raise NotFound("No such offer.", code="offer_not_found")
    return listing


_LISTING_FOR_OFFER_SQL = (  # noqa: S608 - the models' own table and column names
    "SELECT {listing}, {seller}, a.found, {address} FROM catalog_listing l"
    " JOIN {users} s ON s.id = l.seller_id{buyer_address}"
    " WHERE l.id = %s FOR UPDATE OF l"
).format(
    listing=rows.columns(Listing, "l"),
    seller=rows.columns(User, "s"),
    users=User._meta.db_table,
    address=_ADDRESS_COLUMNS,
    buyer_address=_BUYER_ADDRESS_JOIN.format(buyer="%s"),
)


def lock_listing_for_offer(*, listing_id: int, buyer: User) -> tuple[Listing, dict | None]:
    """`lock_listing` and the buyer's address for an offer's order (`buyer_address`, None when
    they have none), in one statement on PostgreSQL: the address is the buyer's own row, which
    the listing lock does not need to precede."""
    if connection.vendor != "postgresql":
        listing = lock_listing(listing_id)
        address = Address.objects.filter(user=buyer).order_by("-is_default", "-id").first()
        return listing, None if address is None else snapshot_of(address)
    with connection.cursor() as cursor:
        cursor.execute(_LISTING_FOR_OFFER_SQL, [buyer.pk, listing_id])
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such listing.", code="listing_not_found")
    split = rows.width(Listing) + rows.width(User)
    found, *address = row[split:]
    return _listing_with_seller(row[:split]), (
        dict(zip(ADDRESS_SNAPSHOT_FIELDS, address, strict=True)) if found else None
    )


def _address_required() -> Conflict:
    return Conflict(
        "Add a delivery address first: an accepted offer becomes an order.",
        code="address_required",
    )


def _role(user: User, offer: Offer) -> str:
    return Actor.SELLER if user.pk == offer.seller_id else Actor.BUYER


def _not_your_turn(offer: Offer) -> Conflict:
    if offer.status == OfferStatus.OPEN:
        message = "The seller has not answered this offer yet."
    elif offer.status == OfferStatus.COUNTERED:
        message = "The buyer must answer the counter first."
    else:
        return Conflict(
            "This offer is %(status)s.", code="offer_not_open", params={"status": offer.status}
        )
    return Conflict(message, code="not_your_turn")


def _check_not_expired(offer: Offer, now: datetime) -> None:
    if offer.expires_at <= now:
        raise Conflict("This offer has expired.", code="offer_expired")


# --- effects -----------------------------------------------------------------------------------


def _record(
    offer: Offer, action: str, *, actor: str, actor_user: User | None, price=None, reason: str = ""
) -> None:
    row = OfferHistory(
        offer=offer,
        action=action,
        actor=actor,
        actor_user_id=actor_user.pk if actor_user and actor != Actor.SYSTEM else None,
        price_fen=price,
        reason=reason,
    )
    if action == Action.ORDER_CLOSED:
        row.save()
        return
    # The same move as a message in the buyer's conversation, written with the history row (one
    # statement on PostgreSQL), in this transaction.
    record_offer_moves(
        [
            OfferMove(
                offer=offer,
                action=action,
                actor_user_id=row.actor_user_id,
                price_fen=price,
                reason=reason,
            )
        ],
        history=[row],
    )


def notify(offer: Offer, type: str) -> None:
    emit(user_ids=[offer.buyer_id, offer.seller_id], type=type, data=offer_data(offer))


def schedule_expiry(offer: Offer) -> None:
    """The task fires at expires_at; the sweeper catches it if the task is lost."""
    enqueue_on_commit("negotiation.tasks.offer_expiry_task", offer.pk, eta=offer.expires_at)


def _expiry_from(now: datetime) -> datetime:
    return now + timedelta(hours=platform_settings().offer_expiry_hours)


def _finish(offer: Offer, status: str, *, reason: str = "") -> None:
    offer.decline_reason = reason
    OFFER.move(offer, status, fields=["decline_reason"])


_LIVE_OFFERS_SQL = (  # noqa: S608 - the model's own column names; values are parameters
    "SELECT {offer} FROM negotiation_offer o WHERE o.listing_id = %s"
    " AND o.status = ANY(%s) AND o.id <> %s ORDER BY o.id FOR UPDATE OF o"
).format(offer=rows.columns(Offer, "o"))
_RECENT_OFFERS_SQL = (  # noqa: S608 - the model's own column names; values are parameters
    "SELECT {offer} FROM negotiation_offer o WHERE o.listing_id = %s AND o.buyer_id = %s"
    " AND (o.status = ANY(%s) OR o.created_at > %s) FOR UPDATE OF o"
).format(offer=rows.columns(Offer, "o"))


def _offers(sql: str, params: list) -> list[Offer]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [rows.load(Offer, row) for row in cursor.fetchall()]


def lock_live_offers(listing: Listing, *, exclude_id: int | None = None) -> list[Offer]:
    """The listing's live offers locked, in id order (hand-written on PostgreSQL)."""
    if connection.vendor == "postgresql":
        return _offers(_LIVE_OFFERS_SQL, [listing.pk, list(LIVE_STATUSES), exclude_id or 0])
    queryset = Offer.objects.filter(listing=listing, status__in=LIVE_STATUSES)
    if exclude_id is not None:
        queryset = queryset.exclude(pk=exclude_id)
    return list(queryset.select_for_update(of=("self",)).order_by("pk"))


def _lock_recent_offers(*, listing: Listing, buyer: User, since: datetime) -> list[Offer]:
    """The buyer's live offer on the listing and those made after `since`, locked."""
    if connection.vendor == "postgresql":
        return _offers(_RECENT_OFFERS_SQL, [listing.pk, buyer.pk, list(LIVE_STATUSES), since])
    return list(
        Offer.objects.select_for_update(of=("self",)).filter(
            Q(status__in=LIVE_STATUSES) | Q(created_at__gt=since), listing=listing, buyer=buyer
        )
    )


def decline_offers(offers: list[Offer], *, reason: str) -> None:
    """The system declines these locked live offers (the listing sold, a new floor or price):
    one UPDATE and one history insert for all of them, then each one's event."""
    if not offers:
        return
    for offer in offers:
        OFFER.check(offer.status, OfferStatus.DECLINED)
    now = timezone.now()
    OFFER.move_rows(
        Offer.objects.filter(pk__in=[offer.pk for offer in offers]),
        OfferStatus.DECLINED,
        decline_reason=reason,
        updated_at=now,
    )
    # One event per offer, each to its buyer and the seller, and each thread's message: stored
    # together, in one statement that takes all their counters at once (joins the caller's
    # batch when there is one); the messages are written with the history rows.
    with batched():
        record_offer_moves(
            [
                OfferMove(offer=offer, action=Action.DECLINED, actor_user_id=None, reason=reason)
                for offer in offers
            ],
            history=[
                OfferHistory(offer=offer, action=Action.DECLINED, actor=Actor.SYSTEM, reason=reason)
                for offer in offers
            ],
        )
        for offer in offers:
            offer.status, offer.decline_reason, offer.updated_at = OfferStatus.DECLINED, reason, now
            notify(offer, "offer.declined")


def _accept_locked(
    offer: Offer,
    listing: Listing,
    *,
    price_fen: int,
    address: dict,
    actor: str,
    actor_user: User | None,
    others: list[Offer] | None = None,
) -> Offer:
    """The acceptance itself; the caller holds the listing and offer locks and checked the turn,
    the expiry and that the listing is on sale. Order, offer, declines and events commit as one.
    `others`: the rival live offers when the caller has locked them already."""
    if others is None:
        others = lock_live_offers(listing, exclude_id=offer.pk)
    # Every thread on the listing, before any inbox row (conversations.py, lock order).
    threads = lock_threads(listing_id=listing.pk)
    attach_threads([offer, *others], threads)
    order = reserve_listing_for(
        buyer=offer.buyer, listing=listing, price_fen=price_fen, address=address
    )
    offer.order = order
    OFFER.move(offer, OfferStatus.ACCEPTED, fields=["order"])
    # The accepted move, the rivals' declines and the closing of the other threads: their
    # messages and history rows in one statement, whatever the number of rivals.
    with gathered():
        _record(offer, Action.ACCEPTED, actor=actor, actor_user=actor_user, price=price_fen)
        notify(offer, "offer.accepted")
        decline_offers(others, reason=DeclineReason.LISTING_SOLD)
        close_other_threads(listing=listing, winner_id=offer.buyer_id, threads=threads)
    logger.info("offer %s accepted at %s fen: order %s", offer.pk, price_fen, order.order_no)
    return offer


# --- buyer -------------------------------------------------------------------------------------


@retry_on_deadlock
def make_offer(*, buyer: User, listing_id: int, price_fen: int) -> Offer:
    """A new offer. Below the seller's floor it is declined at once; at or above the auto-accept
    price it is accepted at once (the order is created); otherwise it waits for the seller."""
    check_not_banned(buyer)
    check_offer_rate(buyer=buyer)
    try:
        return _make_offer(buyer=buyer, listing_id=listing_id, price_fen=price_fen)
    except IntegrityError as exc:
        # The partial unique index, should the listing lock ever be bypassed: a twin won.
        raise Conflict(
            "You already have an open offer on this listing.", code="offer_already_open"
        ) from exc


def _make_offer(*, buyer: User, listing_id: int, price_fen: int) -> Offer:
    now = timezone.now()
    with transaction.atomic(durable=True), batched():
        # The listing lock orders this offer against acceptance and purchase: an offer can
        # never stay open on a listing that was just reserved.
        listing, address = lock_listing_for_offer(listing_id=listing_id, buyer=buyer)
        if listing.status in UNPUBLISHED and listing.seller_id != buyer.pk:
            raise NotFound("No such listing.", code="listing_not_found")
        if listing.seller_id == buyer.pk:
            raise Conflict("You cannot bargain on your own listing.", code="own_listing")
        check_can_buy(buyer=buyer, listing=listing)
        thread = check_offer_allowed(listing=listing, buyer_id=buyer.pk)
        check_offer_price(price_fen=price_fen, listing=listing)
        if address is None:
            raise _address_required()
        # The buyer's live offer here and those of the last 24 hours (the daily cap), at once.
        recent = _lock_recent_offers(listing=listing, buyer=buyer, since=now - DAY)
        previous = next((o for o in recent if o.status in LIVE_STATUSES), None)
        if previous is not None:
            previous._thread = thread
        if previous is not None and previous.status == OfferStatus.OPEN:
            raise Conflict(
                "You already have an open offer on this listing; withdraw it first.",
                code="offer_already_open",
            )
        settings_row = platform_settings()
        cap = settings_row.offers_per_listing_per_day
        made_today = sum(1 for o in recent if o.created_at > now - DAY)
        if made_today >= cap:
            raise RateLimited(
                "At most %(cap)s offers per listing in 24 hours.",
                code="offer_rate_limited",
                params={"cap": cap},
            )
        floor, auto = listing.bargain_floor_fen, listing.auto_accept_fen
        below_floor = floor is not None and price_fen < floor
        accepting = not below_floor and auto is not None and price_fen >= auto
        rivals = (
            lock_live_offers(listing, exclude_id=previous.pk if previous else None)
            if accepting
            else []
        )
        if previous is not None:
            # Answering a counter with a new price (SPEC: "or make a new offer") replaces it.
            _finish(previous, OfferStatus.WITHDRAWN, reason="")
            _record(
                previous, Action.WITHDRAWN, actor=Actor.BUYER, actor_user=buyer, reason="superseded"
            )
            notify(previous, "offer.withdrawn")
        offer = Offer.objects.create(
            listing=listing,
            buyer=buyer,
            seller_id=listing.seller_id,
            price_fen=price_fen,
            expires_at=now + timedelta(hours=settings_row.offer_expiry_hours),
        )
        offer._thread = thread
        _record(offer, Action.MADE, actor=Actor.BUYER, actor_user=buyer, price=price_fen)
        if below_floor:
            _finish(offer, OfferStatus.DECLINED, reason=DeclineReason.BELOW_FLOOR)
            _record(
                offer,
                Action.DECLINED,
                actor=Actor.SYSTEM,
                actor_user=None,
                reason=DeclineReason.BELOW_FLOOR,
            )
            notify(offer, "offer.declined")
        elif accepting:
            _accept_locked(
                offer,
                listing,
                price_fen=price_fen,
                address=address,
                actor=Actor.SYSTEM,
                actor_user=None,
                others=rivals,
            )
        else:
            notify(offer, "offer.created")
            schedule_expiry(offer)
    return offer


@retry_on_deadlock
def withdraw_offer(*, buyer: User, offer_id: int) -> Offer:
    check_not_banned(buyer)
    with transaction.atomic(durable=True), batched():
        lock_listing_of_offer(offer_id)
        offer = lock_offer(user=buyer, offer_id=offer_id)
        if offer.buyer_id != buyer.pk:
            raise Forbidden("Only the buyer can withdraw an offer.", code="buyer_only")
        if not offer.is_live:
            raise Conflict(
                "This offer is %(status)s.", code="offer_not_open", params={"status": offer.status}
            )
        _finish(offer, OfferStatus.WITHDRAWN)
        _record(offer, Action.WITHDRAWN, actor=Actor.BUYER, actor_user=buyer)
        notify(offer, "offer.withdrawn")
    return offer


# --- either side -------------------------------------------------------------------------------


@retry_on_deadlock
def accept_offer(*, user: User, offer_id: int, address_id: int | None = None) -> Offer:
    """The seller accepts an open offer at its price, or the buyer accepts a counter at the
    counter price: one transaction creates the order, reserves the listing, accepts this offer
    and declines every other live one. Racing acceptances, purchases and expiries all meet at
    the listing lock (then the offer lock), so exactly one of them wins."""
    check_not_banned(user)
    with transaction.atomic(durable=True), batched():
        listing = lock_listing_of_offer(offer_id)
        offer, default_address = lock_offer_with_address(user=user, offer_id=offer_id)
        role = _role(user, offer)
        if address_id is not None and role != Actor.BUYER:
            raise Unprocessable(
                "Only the buyer chooses the delivery address.", code="address_not_allowed"
            )
        expected = OfferStatus.OPEN if role == Actor.SELLER else OfferStatus.COUNTERED
        if offer.status != expected:
            raise _not_your_turn(offer)
        _check_not_expired(offer, timezone.now())
        buyer = offer.buyer
        if buyer.is_banned:
            raise Conflict("The buyer can no longer order.", code="buyer_unavailable")
        check_can_buy(buyer=buyer, listing=listing)
        if address_id is not None:
            address = buyer_address(buyer=buyer, address_id=address_id)
        elif default_address is None:
            raise _address_required()
        else:
            address = default_address
        price = offer.price_fen if role == Actor.SELLER else offer.counter_price_fen
        assert price is not None  # a countered offer has its counter price (OFFER table)
        return _accept_locked(
            offer, listing, price_fen=price, address=address, actor=role, actor_user=user
        )


@retry_on_deadlock
def decline_offer(*, user: User, offer_id: int) -> Offer:
    """The seller declines an open offer; the buyer may decline a counter (docs/negotiation.md)."""
    check_not_banned(user)
    with transaction.atomic(durable=True), batched():
        lock_listing_of_offer(offer_id)
        offer = lock_offer(user=user, offer_id=offer_id)
        role = _role(user, offer)
        expected = OfferStatus.OPEN if role == Actor.SELLER else OfferStatus.COUNTERED
        if offer.status != expected:
            raise _not_your_turn(offer)
        reason = DeclineReason.SELLER if role == Actor.SELLER else DeclineReason.BUYER
        _finish(offer, OfferStatus.DECLINED, reason=reason)
        _record(offer, Action.DECLINED, actor=role, actor_user=user, reason=reason)
        notify(offer, "offer.declined")
    return offer


# --- seller ------------------------------------------------------------------------------------


@retry_on_deadlock
def counter_offer(*, seller: User, offer_id: int, price_fen: int) -> Offer:
    """The seller names a price between the buyer's offer and the listing price; the buyer's
    clock restarts."""
    check_not_banned(seller)
    with transaction.atomic(durable=True), batched():
        # The listing lock reads a price no edit can change until we commit.
        listing = lock_listing_of_offer(offer_id)
        offer = lock_offer(user=seller, offer_id=offer_id)
        if offer.seller_id != seller.pk:
            raise Forbidden("Only the seller can counter an offer.", code="seller_only")
        if offer.status != OfferStatus.OPEN:
            raise _not_your_turn(offer)
        now = timezone.now()
        _check_not_expired(offer, now)
        if listing.status != ListingStatus.ON_SALE:
            raise Conflict("This listing is not on sale.", code="listing_not_on_sale")
        check_offer_price(price_fen=price_fen, listing=listing)
        if price_fen <= offer.price_fen:
            raise Unprocessable(
                "A counter must be above the buyer's offer; accept the offer instead.",
                code="counter_not_above_offer",
            )
        offer.counter_price_fen = price_fen
        offer.expires_at = _expiry_from(now)
        OFFER.move(offer, OfferStatus.COUNTERED, fields=["counter_price_fen", "expires_at"])
        _record(offer, Action.COUNTERED, actor=Actor.SELLER, actor_user=seller, price=price_fen)
        notify(offer, "offer.countered")
        schedule_expiry(offer)
    return offer


@retry_on_deadlock
def set_bargain_terms(
    *, seller: User, listing_id: int, floor_fen: int | None, auto_accept_fen: int | None
) -> Listing:
    """PUT semantics: both values are replaced (null clears). Live open offers under a new
    floor are declined at once, as new ones would be."""
    check_not_banned(seller)
    with transaction.atomic(durable=True):
        listing = lock_listing(listing_id)
        if listing.seller_id != seller.pk:
            raise NotFound("No such listing.", code="listing_not_found")
        if listing.status == ListingStatus.SOLD:
            raise Conflict("This listing is sold.", code="listing_not_editable")
        for name, value in (("floor_price", floor_fen), ("auto_accept_price", auto_accept_fen)):
            if value is not None and value >= listing.price_fen:
                raise Unprocessable(
                    "%(name)s must be below the listing price (%(price)s fen).",
                    code="price_not_below_listing",
                    params={"name": name, "price": listing.price_fen},
                )
        if floor_fen is not None and auto_accept_fen is not None and auto_accept_fen < floor_fen:
            raise Unprocessable(
                "auto_accept_price cannot be below floor_price.", code="auto_accept_below_floor"
            )
        listing.bargain_floor_fen = floor_fen
        listing.auto_accept_fen = auto_accept_fen
        listing.save(update_fields=["bargain_floor_fen", "auto_accept_fen", "updated_at"])
        if floor_fen is not None:
            under = [
                offer
                for offer in lock_live_offers(listing)
                if offer.status == OfferStatus.OPEN and offer.price_fen < floor_fen
            ]
            decline_offers(under, reason=DeclineReason.BELOW_FLOOR)
    return listing


# --- hooks called by the marketplace app (inside its transaction, listing row locked) ---------


def on_listing_price_changed(*, listing: Listing, new_price_fen: int) -> list[Offer]:
    """A new price declines live offers it makes pointless: an offer (or a counter) at or above
    it. Called by the catalog's edit with the listing locked."""
    offers = [
        offer
        for offer in lock_live_offers(listing)
        if offer.price_fen >= new_price_fen
        or (offer.counter_price_fen is not None and offer.counter_price_fen >= new_price_fen)
    ]
    decline_offers(offers, reason=DeclineReason.PRICE_CHANGED)
    return offers


def on_order_closed(*, order: Order) -> None:
    """The agreed order went unpaid and closed: the listing is on sale again (the caller put it
    back), so buyers may offer again. The accepted offer stays accepted; its history says why
    nothing came of it. The threads closed when it was reserved open again."""
    reopen_threads(listing_id=order.listing_id)
    for offer in Offer.objects.filter(order=order, status=OfferStatus.ACCEPTED):
        _record(
            offer, Action.ORDER_CLOSED, actor=Actor.SYSTEM, actor_user=None, reason="order_unpaid"
        )


# --- expiry ------------------------------------------------------------------------------------


def handle_offer_expiry(*, offer_id: int, now: datetime | None = None) -> str:
    """Expires a live offer whose time is up; does nothing otherwise. Idempotent.

    Under the listing lock like every move: an acceptance that got there first leaves an
    accepted offer (this then finds it not live); one arriving after finds it expired (409)."""
    now = now or timezone.now()
    listing_id = Offer.objects.filter(pk=offer_id).values_list("listing_id", flat=True).first()
    if listing_id is None:
        return "not_live"
    with transaction.atomic(durable=True), batched():
        lock_listing(listing_id)
        offer = Offer.objects.select_for_update().filter(pk=offer_id).first()
        if offer is None or not offer.is_live:
            return "not_live"
        if offer.expires_at > now:
            return "not_due"
        _finish(offer, OfferStatus.EXPIRED)
        _record(offer, Action.EXPIRED, actor=Actor.SYSTEM, actor_user=None)
        notify(offer, "offer.expired")
    return "expired"


def sweep_expired_offers(*, now: datetime | None = None, batch: int = 1000) -> dict[str, int]:
    """The backstop for lost expiry tasks: expires every due live offer, walking ids upwards so
    one failure cannot stall the sweep."""
    now = now or timezone.now()
    outcomes: dict[str, int] = {}
    last_id = 0
    while True:
        ids = list(
            Offer.objects.filter(status__in=LIVE_STATUSES, expires_at__lte=now, pk__gt=last_id)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            break
        last_id = ids[-1]
        for offer_id in ids:
            try:
                outcome = handle_offer_expiry(offer_id=offer_id, now=now)
            except Exception:
                logger.exception("expiry of offer %s failed; the next sweep retries", offer_id)
                outcome = "failed"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes
