"""WeChat Pay and Kuaidi100 answering 5xx or timing out, through the product's own flows:
retried, never doubled (the sandbox's fault injection, docs/sandbox.md)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.actions.refunds import sweep_refunds
from marketplace.models import Order, Refund
from sandbox import wechatpay as sandbox
from sandbox.models import SandboxRefund, SandboxTransaction
from tests.conftest import _clear_cache, assert_error
from tests.marketplace.fulfilment_helpers import advance_parcel, paid_order, shipped
from tests.marketplace.order_helpers import buyer_with_address, listing_on_sale, place_order

pytestmark = pytest.mark.django_db(transaction=True)


def test_refund_answer_lost_after_wechat_refunded_is_retried_with_the_same_number(make_client):
    buyer, _seller, order_no = paid_order(make_client)
    sandbox.inject_fault("timeout_after", path_contains="/refund/domestic/refunds")
    assert buyer.post(f"/api/orders/{order_no}/cancel").status_code == 200
    refund = Refund.objects.get(order__order_no=order_no)
    assert refund.status == Refund.Status.PENDING and refund.attempts == 1
    assert refund.last_error
    # WeChat did the work; we do not know it yet.
    assert SandboxRefund.objects.filter(out_refund_no=refund.out_refund_no).count() == 1

    assert sweep_refunds(now=timezone.now() + timedelta(minutes=5)) == {"submitted": 1}
    refund.refresh_from_db()
    assert refund.status in {Refund.Status.PROCESSING, Refund.Status.SUCCEEDED}
    assert SandboxRefund.objects.filter(out_refund_no=refund.out_refund_no).count() == 1
    assert SandboxRefund.objects.count() == 1


def test_refund_5xx_backs_off_and_completes_once(make_client):
    buyer, _seller, order_no = paid_order(make_client)
    sandbox.inject_fault("error_500", count=2, path_contains="/refund/domestic/refunds")
    assert buyer.post(f"/api/orders/{order_no}/cancel").status_code == 200
    refund = Refund.objects.get(order__order_no=order_no)
    assert refund.status == Refund.Status.PENDING and not SandboxRefund.objects.exists()
    now = timezone.now()
    for minutes in (5, 10, 20):
        sweep_refunds(now=now + timedelta(minutes=minutes))
    refund.refresh_from_db()
    assert refund.status in {Refund.Status.PROCESSING, Refund.Status.SUCCEEDED}
    assert refund.attempts == 3
    assert SandboxRefund.objects.count() == 1


@pytest.mark.parametrize("kind", ["error_500", "timeout", "timeout_after"])
def test_prepay_fault_is_503_and_the_retry_pays_one_transaction(make_client, kind):
    buyer, address_id = buyer_with_address(make_client)
    order_no = place_order(buyer, listing_on_sale(), address_id).json()["order_no"]
    sandbox.inject_fault(kind, path_contains="/jsapi")
    assert_error(buyer.post(f"/api/orders/{order_no}/pay"), 503, "upstream_unavailable")
    assert Order.objects.get(order_no=order_no).status == "pending_payment"
    again = buyer.post(f"/api/orders/{order_no}/pay")
    assert again.status_code == 200, again.content
    assert SandboxTransaction.objects.filter(out_trade_no=order_no).count() == 1


@pytest.mark.parametrize("kind", ["error_500", "timeout"])
def test_tracking_query_fault_falls_back_to_stored_events(make_client, kind):
    buyer, _seller, order_no = shipped(make_client)
    assert advance_parcel(buyer).status_code == 200
    stored = buyer.get(f"/api/orders/{order_no}/tracking").json()["events"]
    assert stored
    _clear_cache()  # this run's keys only: the next read asks Kuaidi100 afresh
    sandbox.inject_fault(kind, count=5, path_contains="kuaidi100")
    response = buyer.get(f"/api/orders/{order_no}/tracking")
    assert response.status_code == 200, response.content
    assert response.json()["events"] == stored
