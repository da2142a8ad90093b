"""Money and stock under concurrency, with real threads on PostgreSQL."""

from datetime import timedelta

import pytest
from django.test import Client

from marketplace.actions import lifecycle as order_actions
from marketplace.actions.lifecycle import handle_order_deadline
from marketplace.errors import Conflict
from marketplace.models import ListingStatus
from marketplace.models.orders import Order, Refund
from marketplace.states import OrderStatus
from sandbox.models import SandboxNotification, SandboxRefund
from tests.factories import AddressFactory, UserFactory
from tests.marketplace.order_helpers import (
    buyer_with_address,
    listing_on_sale,
    pay_in_wechat,
    place_order,
)
from tests.races import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_fifty_buyers_racing_for_one_listing_make_exactly_one_order():
    listing = listing_on_sale()
    buyers = [UserFactory() for _ in range(50)]
    addresses = [AddressFactory(user=buyer).pk for buyer in buyers]

    def buy(buyer, address_id):
        return lambda: order_actions.create_order(
            buyer=buyer, listing_id=listing.pk, address_id=address_id
        )

    results = race(*(buy(b, a) for b, a in zip(buyers, addresses, strict=True)))

    winners = [r for r in results if isinstance(r, Order)]
    losers = [r for r in results if isinstance(r, Conflict)]
    assert len(winners) == 1 and len(losers) == 49, [type(r) for r in results]
    assert {r.code for r in losers} == {"listing_not_on_sale"}
    assert Order.objects.filter(listing=listing).count() == 1
    listing.refresh_from_db()
    assert listing.status == ListingStatus.RESERVED


def test_notification_racing_the_payment_timeout_never_loses_money(make_client):
    buyer, address_id = buyer_with_address(make_client)
    order_no = place_order(buyer, listing_on_sale(price_fen=6_600), address_id).json()["order_no"]
    pay_in_wechat(buyer, order_no)
    note = SandboxNotification.objects.get(out_trade_no=order_no, kind="transaction")
    order = Order.objects.get(order_no=order_no)
    # Rewind: WeChat has the money, our order is still unpaid and its window just closed.
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.PENDING_PAYMENT, transaction_id="")
    overdue = order.deadline_at + timedelta(seconds=1)

    def notify():
        return (
            Client()
            .post(
                "/api/payments/wechat/notify",
                note.body,
                content_type="application/json",
                headers=note.last_headers,
            )
            .status_code
        )

    results = race(notify, lambda: handle_order_deadline(order_id=order.pk, now=overdue))

    assert not any(isinstance(r, Exception) for r in results), results
    order.refresh_from_db()
    refunds = list(Refund.objects.filter(order=order))
    if order.status == OrderStatus.AWAITING_VIDEO:
        assert refunds == []  # the payment won: the buyer keeps the item
    else:
        assert order.status == OrderStatus.CLOSED
        assert [r.amount_fen for r in refunds] == [6_600]  # the close won: all money goes back


def test_cancellation_triggered_twice_at_once_refunds_once(make_client):
    buyer, address_id = buyer_with_address(make_client)
    seller = make_client()
    order_no = place_order(buyer, listing_on_sale(seller=seller.user), address_id).json()[
        "order_no"
    ]
    pay_in_wechat(buyer, order_no)

    results = race(
        lambda: order_actions.cancel_order(user=buyer.user, order_no=order_no),
        lambda: order_actions.cancel_order(user=seller.user, order_no=order_no),
    )

    assert sum(isinstance(r, Order) for r in results) == 1, results
    assert sum(isinstance(r, Conflict) for r in results) == 1
    refund = Refund.objects.get(order__order_no=order_no)
    assert SandboxRefund.objects.filter(out_refund_no=refund.out_refund_no).count() == 1


def test_refund_notification_delivered_twice_settles_once(make_client, anon):
    buyer, address_id = buyer_with_address(make_client)
    order_no = place_order(buyer, listing_on_sale(), address_id).json()["order_no"]
    pay_in_wechat(buyer, order_no)
    buyer.post(f"/api/orders/{order_no}/cancel")
    from sandbox.wechatpay import settle_due_refunds

    settle_due_refunds(force=True)
    note = SandboxNotification.objects.filter(out_trade_no=order_no, kind="refund").latest("id")

    def deliver():
        return (
            Client()
            .post(
                "/api/payments/wechat/refund-notify",
                note.body,
                content_type="application/json",
                headers=note.last_headers,
            )
            .status_code
        )

    assert race(deliver, deliver) == [204, 204]
    refund = Refund.objects.get(order__order_no=order_no)
    assert refund.status == Refund.Status.SUCCEEDED
    assert SandboxRefund.objects.filter(out_refund_no=refund.out_refund_no).count() == 1


def test_receipt_confirmation_racing_auto_completion_credits_once(make_client):
    from marketplace.actions import fulfilment
    from marketplace.models.wallet import LedgerEntry, Wallet
    from tests.marketplace.fulfilment_helpers import shipped

    buyer, seller, order_no = shipped(make_client, price_fen=10_000)
    order = Order.objects.get(order_no=order_no)
    due = order.deadline_at + timedelta(seconds=1)

    results = race(
        lambda: fulfilment.confirm_receipt(buyer=buyer.user, order_no=order_no),
        lambda: handle_order_deadline(order_id=order.pk, now=due),
    )

    assert not any(isinstance(r, Exception) and not isinstance(r, Conflict) for r in results), results
    assert Order.objects.get(pk=order.pk).status == OrderStatus.COMPLETED
    assert LedgerEntry.objects.filter(order=order, kind="sale_credit").count() == 1
    assert Wallet.objects.get(user=seller.user).available_fen == 9_500
    assert order.history.filter(to_status=OrderStatus.COMPLETED).count() == 1


def test_two_sweepers_at_once_cancel_each_order_once(make_client):
    from marketplace.actions.lifecycle import sweep_overdue_orders
    from realtime.models import Event
    from tests.marketplace.fulfilment_helpers import paid_order

    order_nos = [paid_order(make_client)[2] for _ in range(6)]
    due = max(Order.objects.filter(order_no__in=order_nos).values_list("deadline_at", flat=True))
    later = due + timedelta(seconds=1)
    events_before = Event.objects.count()

    results = race(lambda: sweep_overdue_orders(now=later), lambda: sweep_overdue_orders(now=later))

    assert sum(r.get("cancelled", 0) for r in results) == 6, results
    assert Order.objects.filter(order_no__in=order_nos, status=OrderStatus.CANCELLED).count() == 6
    assert Refund.objects.filter(order__order_no__in=order_nos).count() == 6
    assert Event.objects.count() - events_before == 12  # buyer and seller, once per order
