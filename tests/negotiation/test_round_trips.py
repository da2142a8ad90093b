"""Round trips to the database per live action, pinned so they cannot creep back (issue 14).

Counted inside the action's transaction (BEGIN, COMMIT and savepoints not counted), on the stack
the suite runs on: PostgreSQL stores an action's events in one statement, SQLite in two. Work
that runs after commit (tasks, offline notices) is not part of the action's round trips.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marketplace.models import User
from marketplace.selectors import platform_settings
from negotiation import actions, conversations
from tests.marketplace.order_helpers import buyer_with_address, listing_on_sale
from tests.negotiation.helpers import buyer, seller_and_listing

pytestmark = pytest.mark.django_db(transaction=True)

# (PostgreSQL, SQLite). The targets, on PostgreSQL, for the path before conversations
# (issue 15): ≤ 6 per offer, ≤ 10 + 1 per rival per acceptance. Each move now also writes its
# message into the buyer's thread in the same transaction; what that costs is counted apart:
#   THREAD: lock (or open) the buyer's thread: one upsert (SQLite reads the row back).
#   THREADS: an acceptance or a purchase locks every thread on the listing: one statement.
#   ENTRY: the messages, the threads' counters and the inboxes: one statement on PostgreSQL
#     whatever the number of messages (an acceptance writes its accepted move, its rivals'
#     declines and the closing of the other threads together); three on SQLite.
#   HISTORY: the offer history rows of the moves: in the ENTRY statement on PostgreSQL, one
#     more on SQLite.
#   NOTES: the notification centre's entries: in the events' own statement on PostgreSQL, one
#     more on SQLite (issue 16).
THREAD = (1, 2)
THREADS = (1, 1)
ENTRY = (1, 3)
HISTORY = (0, 1)
NOTES = (0, 1)


def _plus(*parts: tuple[int, int]) -> tuple[int, int]:
    return (sum(part[0] for part in parts), sum(part[1] for part in parts))


# Offer: the listing locked with the buyer's address (two on SQLite), the buyer's live and
# last-day offers, the offer, the events (SQLite: the counters apart).
OFFER = _plus((4, 6), THREAD, ENTRY, HISTORY, NOTES)
# Counter: the listing lock, the offer lock (with its buyer), the offer's update, the events.
COUNTER = _plus((4, 5), THREAD, ENTRY, HISTORY, NOTES)
# Acceptance: the listing lock, the offer lock with the buyer's address (two on SQLite), the
# rivals' lock, the reservation with its order and the order's first history row (three on
# SQLite), the offer's update, the events; with rivals, their declines in one UPDATE whatever
# their number.
ACCEPT_WITHOUT_RIVALS = _plus((6, 10), THREADS, ENTRY, HISTORY, NOTES)
ACCEPT_WITH_THREE_RIVALS = _plus(ACCEPT_WITHOUT_RIVALS, (1, 1))
# Purchase: the address, the listing lock, the live offers' lock, the reservation (three on
# SQLite), the declines' UPDATE, the events.
PURCHASE_WITH_TWO_BARGAINERS = _plus((6, 9), THREADS, ENTRY, HISTORY, NOTES)
# Message send: the retry lookup by client id (before the transaction), the conversation locked
# with both users' bans, the events; a message has no history row and no centre entry.
MESSAGE = _plus((3, 4), ENTRY)
# Before this second pass (PostgreSQL, SQLite): offer (8, 13), counter (7, 12),
# acceptance (12, 16) and with three rivals (16, 24), purchase (12, 18), message (4, 7).
NOT_ROUND_TRIPS = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK")


def _expected(pair: tuple[int, int]) -> int:
    return pair[0] if connection.vendor == "postgresql" else pair[1]


def _round_trips(call) -> tuple[object, list[str]]:
    """Runs `call` with tasks and notices that would run after commit left out of the count."""
    with CaptureQueriesContext(connection) as captured:
        result = call()
        upto = len(captured.captured_queries)
    statements = [q["sql"] for q in captured.captured_queries[:upto]]
    in_transaction = []
    for sql in statements:
        if sql.startswith("COMMIT"):
            break  # the action's own commit: what follows is after-commit work
        if not sql.startswith(NOT_ROUND_TRIPS):
            in_transaction.append(sql)
    return result, in_transaction


@pytest.fixture(autouse=True)
def platform_settings_read_once():
    # The first read of a new database creates the settings row; every later one is cached.
    platform_settings()


def _fresh(user) -> User:
    # The socket and the API hand the action a loaded user: loading it is not the action's cost.
    return User.objects.get(pk=user.pk)


def _bargain(make_client, rivals: int = 0):
    seller, listing = seller_and_listing(make_client)
    for _ in range(rivals):
        actions.make_offer(buyer=buyer(make_client).user, listing_id=listing.pk, price_fen=6_000)
    return seller, listing, buyer(make_client)


def test_an_offer(make_client):
    _, listing, bargainer = _bargain(make_client)
    user = _fresh(bargainer.user)
    offer, sql = _round_trips(
        lambda: actions.make_offer(buyer=user, listing_id=listing.pk, price_fen=7_000)
    )
    assert offer.status == "open"
    assert len(sql) == _expected(OFFER), sql


def test_a_counter(make_client):
    seller, listing, bargainer = _bargain(make_client)
    offer = actions.make_offer(buyer=bargainer.user, listing_id=listing.pk, price_fen=7_000)
    user = _fresh(seller.user)
    countered, sql = _round_trips(
        lambda: actions.counter_offer(seller=user, offer_id=offer.pk, price_fen=9_000)
    )
    assert countered.status == "countered"
    assert len(sql) == _expected(COUNTER), sql


@pytest.mark.parametrize(
    ("rivals", "expected"), [(0, ACCEPT_WITHOUT_RIVALS), (3, ACCEPT_WITH_THREE_RIVALS)]
)
def test_an_acceptance(make_client, rivals, expected):
    seller, listing, bargainer = _bargain(make_client, rivals=rivals)
    offer = actions.make_offer(buyer=bargainer.user, listing_id=listing.pk, price_fen=7_000)
    user = _fresh(seller.user)
    accepted, sql = _round_trips(lambda: actions.accept_offer(user=user, offer_id=offer.pk))
    assert accepted.status == "accepted"
    assert len(sql) == _expected(expected), sql


def test_a_purchase_declining_the_open_offers(make_client):
    from marketplace.actions.lifecycle import create_order

    listing = listing_on_sale()
    for _ in range(2):
        actions.make_offer(buyer=buyer(make_client).user, listing_id=listing.pk, price_fen=6_000)
    purchaser, address_id = buyer_with_address(make_client)
    user = _fresh(purchaser.user)
    order, sql = _round_trips(
        lambda: create_order(buyer=user, listing_id=listing.pk, address_id=address_id)
    )
    assert order.status == "pending_payment"
    assert len(sql) == _expected(PURCHASE_WITH_TWO_BARGAINERS), sql


def test_a_message_send(make_client, monkeypatch):
    seller, listing, bargainer = _bargain(make_client)
    actions.make_offer(buyer=bargainer.user, listing_id=listing.pk, price_fen=7_000)
    thread = conversations.Conversation.objects.get(listing=listing, buyer=bargainer.user)
    # WeChat's text check runs before the transaction and is no database round trip.
    monkeypatch.setattr(conversations, "check_text", lambda **_: False)
    user = _fresh(bargainer.user)
    sent, sql = _round_trips(
        lambda: conversations.send_message(
            sender=user, conversation_id=thread.pk, kind="text", text="什么时候发货？", client_id="c1"
        )
    )
    assert sent.created
    assert len(sql) == _expected(MESSAGE), sql
