"""The worker killed mid-task (Huey has no acknowledgements): work whose task was lost is found
again by the periodic sweepers, and done once."""

import contextlib
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from marketplace import tasks
from marketplace.models import Order, Refund
from marketplace.models.wallet import LedgerEntry
from marketplace.states import OrderStatus
from project import tasking
from sandbox.models import SandboxRefund
from tests.marketplace.fulfilment_helpers import paid_order, shipped
from tests.marketplace.order_helpers import buyer_with_address, listing_on_sale, place_order

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def _lost(task_name: str):
    """The task is enqueued but never runs, as when the worker dies holding it."""
    real = tasking.enqueue_all
    lost = mock.Mock(name=f"lost {task_name}")
    name = f"marketplace.tasks.{task_name}"

    def enqueue_all(queued):
        for entry in queued:
            if entry[0] == name:
                lost(*entry[1])
        return real([entry for entry in queued if entry[0] != name])

    patcher = mock.patch.object(tasking, "enqueue_all", enqueue_all)
    patcher.start()
    try:
        yield lost
    finally:
        patcher.stop()


def test_a_refund_whose_task_was_lost_is_submitted_by_the_sweeper_once(make_client):
    buyer, _seller, order_no = paid_order(make_client)
    with _lost("submit_refunds_task") as lost:
        assert buyer.post(f"/api/orders/{order_no}/cancel").status_code == 200
    assert lost.called
    refund = Refund.objects.get(order__order_no=order_no)
    assert refund.status == Refund.Status.PENDING and refund.attempts == 0
    assert not SandboxRefund.objects.exists()

    later = timezone.now() + timedelta(minutes=3)  # past the submit lease
    from marketplace.actions.refunds import sweep_refunds

    assert sweep_refunds() == {}  # its lease has not run out yet: a live task may hold it
    assert sweep_refunds(now=later) == {"submitted": 1}
    assert sweep_refunds(now=later + timedelta(minutes=5)) == {}
    refund.refresh_from_db()
    assert refund.status in {Refund.Status.PROCESSING, Refund.Status.SUCCEEDED}
    assert SandboxRefund.objects.filter(out_refund_no=refund.out_refund_no).count() == 1


def test_a_credit_whose_task_was_lost_is_posted_by_the_sweeper_once(make_client):
    buyer, seller, order_no = shipped(make_client)
    with _lost("credit_sale_task") as lost:
        response = buyer.post(f"/api/orders/{order_no}/confirm-receipt")
    assert response.status_code == 200, response.content
    assert lost.called
    credits = LedgerEntry.objects.filter(kind="sale_credit", order__order_no=order_no)
    assert not credits.exists()
    assert seller.get("/api/wallet").json()["available"] == 0

    assert tasks.sweep_uncredited_sales.call_local() == 1
    assert tasks.sweep_uncredited_sales.call_local() == 0
    assert credits.count() == 1
    order = Order.objects.get(order_no=order_no)
    assert seller.get("/api/wallet").json()["available"] == order.price_fen - order.commission_fen


@pytest.mark.parametrize(
    ("paid", "expected"),
    [(False, OrderStatus.CLOSED), (True, OrderStatus.CANCELLED)],
)
def test_a_deadline_whose_task_was_lost_fires_from_the_sweeper(make_client, paid, expected):
    with _lost("order_deadline_task"):
        if paid:
            _buyer, _seller, order_no = paid_order(make_client)
        else:
            buyer, address_id = buyer_with_address(make_client)
            order_no = place_order(buyer, listing_on_sale(), address_id).json()["order_no"]
    order = Order.objects.get(order_no=order_no)
    assert order.deadline_at is not None
    from marketplace.actions.lifecycle import sweep_overdue_orders

    assert sum(sweep_overdue_orders(now=order.deadline_at - timedelta(seconds=1)).values()) == 0
    after_outage = order.deadline_at + timedelta(hours=6)  # the worker was down for hours
    assert sum(sweep_overdue_orders(now=after_outage).values()) == 1
    assert sum(sweep_overdue_orders(now=after_outage).values()) == 0
    order.refresh_from_db()
    assert order.status == expected
    assert Refund.objects.filter(order=order).count() == (1 if paid else 0)
