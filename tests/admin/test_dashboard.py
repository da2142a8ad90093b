"""The admin index as the staff console: the figures, their links, the China business day,
what each role sees, and a constant number of queries."""

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from django.test import RequestFactory
from django.utils import translation

from marketplace.admin.dashboard import build_dashboard, business_day_bounds
from marketplace.models import Listing, ListingStatus
from marketplace.models.fulfilment import Dispute
from marketplace.models.orders import Order, PaymentNotification, Refund
from marketplace.states import OrderStatus
from realtime.models import Notification
from tests.admin.helpers import admin_client, staff_in
from tests.admin.test_roles import _pending_withdrawal
from tests.factories import StaffFactory, UserFactory
from tests.marketplace.order_helpers import listing_on_sale

pytestmark = pytest.mark.django_db

CHINA = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 3, 1, 20, 0, tzinfo=CHINA)
_numbers = iter(range(1, 10_000))


def make_order(status: str, *, price_fen: int = 10_000, paid_at=None, commission_fen=None):
    listing = listing_on_sale(status=ListingStatus.SOLD)
    return Order.objects.create(
        order_no=f"T{next(_numbers):08d}",
        buyer=UserFactory(),
        seller=listing.seller,
        listing=listing,
        title=listing.title,
        price_fen=price_fen,
        address={},
        status=status,
        paid_at=paid_at,
        commission_rate_bp=500 if paid_at else None,
        commission_fen=commission_fen,
    )


@pytest.fixture
def world():
    listing_on_sale(status=ListingStatus.PENDING_REVIEW)
    listing_on_sale(status=ListingStatus.PENDING_REVIEW)
    listing_on_sale(status=ListingStatus.ON_SALE)
    # Paid on 1 March, China time: the first just after midnight (still 28 Feb in UTC).
    early = make_order(
        OrderStatus.AWAITING_VIDEO,
        price_fen=10_000,
        paid_at=dt.datetime(2026, 3, 1, 0, 5, tzinfo=CHINA),
        commission_fen=500,
    )
    make_order(
        OrderStatus.COMPLETED,
        price_fen=20_050,
        paid_at=dt.datetime(2026, 3, 1, 19, 59, tzinfo=CHINA),
        commission_fen=1002,
    )
    # Not today: 23:59 China time on 28 Feb, and 00:00 on 2 March.
    make_order(
        OrderStatus.SHIPPED,
        paid_at=dt.datetime(2026, 2, 28, 23, 59, tzinfo=CHINA),
        commission_fen=500,
    )
    make_order(
        OrderStatus.DISPUTED,
        paid_at=dt.datetime(2026, 3, 2, 0, 0, tzinfo=CHINA),
        commission_fen=500,
    )
    make_order(OrderStatus.PENDING_PAYMENT)
    disputed = Order.objects.get(status=OrderStatus.DISPUTED)
    Dispute.objects.create(order=disputed, reason="坏了")
    settled = make_order(OrderStatus.CANCELLED)
    Dispute.objects.create(order=settled, reason="x", settled_at=NOW, resolution="refund")
    Refund.objects.create(
        order=early,
        out_refund_no="R-early",
        amount_fen=10_000,
        reason="x",
        status=Refund.Status.NEEDS_ATTENTION,
    )
    Refund.objects.create(
        order=settled, out_refund_no="R-ok", amount_fen=1, reason="x", status="succeeded"
    )
    _pending_withdrawal(3000)
    _pending_withdrawal(1234)
    # Payment notifications: two refused this week, one refused long ago, one rejected, one paid.
    for outcome, days_ago in [
        ("refused: mchid_mismatch", 1),
        ("refused: amount_mismatch", 6),
        ("refused: payer_mismatch", 8),
        ("rejected: stale", 1),
        ("paid", 1),
    ]:
        note = PaymentNotification.objects.create(kind="payment", body="{}", outcome=outcome)
        PaymentNotification.objects.filter(pk=note.pk).update(
            received_at=NOW - dt.timedelta(days=days_ago)
        )


@pytest.fixture(autouse=True)
def _english():
    """The tiles' English source text (the Chinese is tests/project/test_translations.py's)."""
    with translation.override("en"):
        yield


def _request(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def _tiles(board) -> dict[str, tuple[str, str, str]]:
    return {
        tile.label: (tile.value, tile.url, tile.detail)
        for tile in [*board.attention, *board.orders, *board.money]
    }


def test_business_day_is_the_china_calendar_day():
    start, end = business_day_bounds(dt.datetime(2026, 2, 28, 16, 30, tzinfo=dt.UTC))
    assert start == dt.datetime(2026, 3, 1, tzinfo=CHINA)
    assert end - start == dt.timedelta(days=1)


def test_superuser_sees_every_figure(world):
    tiles = _tiles(build_dashboard(_request(StaffFactory()), now=NOW))

    assert tiles["Listings awaiting review"][:2] == (
        "2",
        "/admin/marketplace/listing/?status__exact=pending_review",
    )
    assert tiles["Open disputes"][:2] == ("1", "/admin/marketplace/dispute/?open=yes")
    assert tiles["Withdrawals to pay out"] == (
        "2",
        "/admin/marketplace/withdrawal/?status__exact=pending&to__exact=account",
        "¥42.34",
    )
    assert tiles["Refunds needing attention"][:2] == (
        "1",
        "/admin/marketplace/refund/?status__exact=needs_attention",
    )
    refused_value, refused_url, _ = tiles["Refused notifications"]  # 通知被拒绝 in Chinese
    assert refused_value == "2"
    assert refused_url.startswith("/admin/marketplace/paymentnotification/?outcome_kind=refused&")
    by_status = {label.split(" ")[0]: value for label, (value, _, _) in tiles.items()}
    assert by_status["awaiting_video"] == "1" and by_status["completed"] == "1"
    assert by_status["disputed"] == "1" and by_status["closed"] == "0"
    turnover = next(value for label, value in tiles.items() if label.startswith("Turnover"))
    assert turnover[0] == "¥300.50" and turnover[2] == "2 order(s) paid"
    assert tiles["Commission on today's payments"][0] == "¥15.02"


def test_each_link_opens_the_list_of_exactly_what_it_counts(world):
    client = admin_client(StaffFactory())
    board = build_dashboard(_request(client.user), now=NOW)
    for tile in [*board.attention, *board.orders, *board.money[:1]]:
        response = client.get(tile.url)
        assert response.status_code == 200, tile.url
        expected = tile.detail.split(" ")[0] if tile.label.startswith("Turnover") else tile.value
        assert response.context["cl"].result_count == int(expected), tile.label


def test_index_page_renders_the_dashboard_in_few_queries(world, django_assert_max_num_queries):
    client = admin_client(StaffFactory())
    # 14 + the reconciliation tile's two + the notification volume (issue 16).
    with django_assert_max_num_queries(17):
        page = client.get("/admin/")
    html = page.content.decode()
    assert page.status_code == 200 and 'id="staff-dashboard"' in html
    assert re.search(r'status__exact=pending_review"[^>]*>\s*<span class="value">2<', html)
    # The usual model list is still there below it.
    assert "/admin/marketplace/withdrawal/" in html and "/admin/auth/group/" in html


def test_queries_do_not_grow_with_the_data(world, django_assert_num_queries):
    request = _request(StaffFactory())
    with django_assert_num_queries(10):
        build_dashboard(request, now=NOW)
    for _ in range(5):
        make_order(OrderStatus.CLOSED)
        listing_on_sale(status=ListingStatus.PENDING_REVIEW)
        PaymentNotification.objects.create(kind="payment", body="{}", outcome="refused: x")
        Notification.objects.create(user=StaffFactory(), type="wallet.credited", created_at=NOW)
    with django_assert_num_queries(10):
        build_dashboard(request, now=NOW)


def test_each_role_sees_only_its_own_figures(world):
    reviewer = build_dashboard(_request(staff_in("reviewers")), now=NOW)
    finance = build_dashboard(_request(staff_in("finance")), now=NOW)
    support = build_dashboard(_request(staff_in("support")), now=NOW)

    assert [tile.label for tile in reviewer.attention] == ["Listings awaiting review"]
    assert not reviewer.money and not reviewer.orders
    assert "Withdrawals to pay out" in [tile.label for tile in finance.attention]
    assert "Reconciliation differences" in [tile.label for tile in finance.attention]
    assert "Reconciliation differences" not in [tile.label for tile in support.attention]
    assert "Listings awaiting review" not in [tile.label for tile in finance.attention]
    assert finance.money
    assert "Withdrawals to pay out" not in [tile.label for tile in support.attention]
    assert "Open disputes" in [tile.label for tile in support.attention]
    page = admin_client(staff_in("reviewers")).get("/admin/").content.decode()
    assert "Turnover" not in page and "Listings awaiting review" in page
    assert Listing.objects.filter(status=ListingStatus.PENDING_REVIEW).count() == 2


def test_the_refused_notifications_filter_lists_exactly_the_refused_ones(world):
    client = admin_client(StaffFactory())
    base = "/admin/marketplace/paymentnotification/"
    refused = client.get(base, {"outcome_kind": "refused"}).context["cl"].result_list
    assert sorted(note.outcome for note in refused) == [
        "refused: amount_mismatch",
        "refused: mchid_mismatch",
        "refused: payer_mismatch",
    ]
    rejected = client.get(base, {"outcome_kind": "rejected"}).context["cl"].result_list
    assert [note.outcome for note in rejected] == ["rejected: stale"]
    assert client.get(base).context["cl"].result_count == 5


def test_notification_volume_per_type_links_to_its_list(db):
    Notification.objects.create(user=UserFactory(), type="listing.price_dropped", created_at=NOW)
    Notification.objects.create(user=UserFactory(), type="listing.price_dropped", created_at=NOW)
    old = NOW - dt.timedelta(days=2)
    Notification.objects.create(user=UserFactory(), type="offer.created", created_at=old)
    board = build_dashboard(_request(StaffFactory()), now=NOW)
    tiles = {tile.label: tile for tile in board.notifications}
    assert tiles["listing.price_dropped"].value == "2"
    assert tiles["offer.created"].value == "0"
    assert tiles["listing.price_dropped"].url.endswith("?type__exact=listing.price_dropped")
