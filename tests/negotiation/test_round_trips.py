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
from negotiation import actions
from tests.marketplace.order_helpers import buyer_with_address, listing_on_sale
from tests.negotiation.helpers import buyer, seller_and_listing

pytestmark = pytest.mark.django_db(transaction=True)

# (PostgreSQL, SQLite): the targets are PostgreSQL's ≤ 6 / ≤ 5 / ≤ 10 + 1 per rival,
# before conversations (issue 15). Each move now also writes its message into the buyer's
# thread in the same transaction: on PostgreSQL +1 to lock (or open) the thread and +1 for
# the message, the thread's counters and the inbox in one statement; an acceptance or a
# purchase locks every thread on the listing (+1) and writes the accepted move, the rivals'
# declines and the closing of the other threads (+1 each, whatever the number of threads).
# SQLite stores the notification centre's entries in one more statement (issue 16); PostgreSQL
# stores them in the events' own statement.
OFFER = (8, 13)
COUNTER = (7, 12)
ACCEPT_WITHOUT_RIVALS = (12, 16)
ACCEPT_WITH_THREE_RIVALS = (16, 24)
PURCHASE_WITH_TWO_BARGAINERS = (12, 18)
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
