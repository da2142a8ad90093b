"""A correctly signed WeChat Pay notification is applied only when it is about our merchant, our
mini-program and exactly our order or refund (issue 20, finding 8). Anything else is refused,
kept for audit with its reason, and logged at ERROR for staff.

The notifications are built as WeChat would send them: the resource encrypted with the APIv3
key and the body signed with the platform key (the sandbox's own helpers), so each one passes
verification and only the content check can stop it."""

import json
import logging
import uuid

import pytest
from django.utils import timezone

from marketplace.actions.payments import apply_payment
from marketplace.models.orders import Order, PaymentNotification, Refund
from marketplace.states import OrderStatus
from sandbox import wechatpay as sandbox
from sandbox.models import SandboxNotification, SandboxRefund, SandboxTransaction
from tests.marketplace.order_helpers import (
    buyer_with_address,
    listing_on_sale,
    pay_in_wechat,
    place_order,
)

pytestmark = pytest.mark.django_db(transaction=True)

ALERT_LOGGER = "marketplace.payments.refused"


def _signed_notification(*, kind: str, event_type: str, resource: dict) -> tuple[bytes, dict]:
    body = sandbox._dumps(
        {
            "id": str(uuid.uuid4()),
            "create_time": sandbox.wx_time(timezone.now()),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "test",
            "resource": sandbox.encrypt_resource(sandbox._dumps(resource), associated_data=kind),
        }
    )
    return body.encode(), sandbox.signed_headers(body)


def _unpaid_order(make_client, price_fen: int = 12_345) -> tuple[str, dict]:
    """An order with its prepay made, and the transaction WeChat would report once paid."""
    buyer, address_id = buyer_with_address(make_client)
    order_no = place_order(buyer, listing_on_sale(price_fen=price_fen), address_id).json()[
        "order_no"
    ]
    assert buyer.post(f"/api/orders/{order_no}/pay").status_code == 200
    tx = SandboxTransaction.objects.get(out_trade_no=order_no)
    tx.trade_state = SandboxTransaction.SUCCESS
    tx.transaction_id = "4200000000000000000000000001"
    tx.success_time = timezone.now()
    tx.payer_total_fen = tx.total_fen
    return order_no, sandbox.transaction_payload(tx)


def _post(anon, path: str, body: bytes, headers: dict):
    return anon.client.post(path, body, content_type="application/json", headers=headers)


def _tamper(resource: dict, change: str) -> dict:
    changed = json.loads(json.dumps(resource))
    if change == "mchid_mismatch":
        changed["mchid"] = "1230000109"
    elif change == "appid_mismatch":
        changed["appid"] = "wx0000000000000bad"
    elif change == "currency_mismatch":
        changed["amount"]["currency"] = "USD"
    elif change == "amount_mismatch":
        changed["amount"]["total"] -= 1
        changed["amount"]["payer_total"] -= 1
    elif change == "payer_mismatch":
        changed["payer"]["openid"] = "oSomeoneElse000000000000000"
    elif change == "missing_mchid":
        del changed["mchid"]
    return changed


def test_the_untampered_notification_is_applied(make_client, anon):
    """The control: the builder makes notifications the endpoint accepts and applies."""
    order_no, resource = _unpaid_order(make_client)
    body, headers = _signed_notification(
        kind="transaction", event_type="TRANSACTION.SUCCESS", resource=resource
    )
    assert _post(anon, "/api/payments/wechat/notify", body, headers).status_code == 204
    assert Order.objects.get(order_no=order_no).status == OrderStatus.AWAITING_VIDEO
    assert PaymentNotification.objects.get().outcome == "paid"


@pytest.mark.parametrize(
    "change",
    [
        "mchid_mismatch",
        "appid_mismatch",
        "currency_mismatch",
        "amount_mismatch",
        "payer_mismatch",
        "missing_mchid",
    ],
)
def test_a_signed_payment_notification_that_is_not_exactly_ours_is_refused(
    make_client, anon, caplog, change
):
    order_no, resource = _unpaid_order(make_client)
    body, headers = _signed_notification(
        kind="transaction", event_type="TRANSACTION.SUCCESS", resource=_tamper(resource, change)
    )

    with caplog.at_level(logging.ERROR, logger=ALERT_LOGGER):
        response = _post(anon, "/api/payments/wechat/notify", body, headers)

    # Acknowledged: the same signed bytes again would be refused again (docs/orders.md).
    assert response.status_code == 204
    order = Order.objects.get(order_no=order_no)
    assert order.status == OrderStatus.PENDING_PAYMENT and not order.transaction_id
    record = PaymentNotification.objects.get()
    reason = "mchid_mismatch" if change == "missing_mchid" else change
    assert record.is_verified and record.outcome == f"refused: {reason}"
    assert json.loads(record.body)["resource"]["ciphertext"]  # kept as received
    alerts = [r for r in caplog.records if r.name == ALERT_LOGGER]
    assert len(alerts) == 1 and alerts[0].levelno == logging.ERROR
    assert order_no in alerts[0].getMessage() and reason in alerts[0].getMessage()


def test_a_notification_for_an_order_number_we_do_not_have_is_refused(make_client, anon, caplog):
    _, resource = _unpaid_order(make_client)
    resource["out_trade_no"] = "T99999999999999999999"
    body, headers = _signed_notification(
        kind="transaction", event_type="TRANSACTION.SUCCESS", resource=resource
    )
    with caplog.at_level(logging.ERROR, logger=ALERT_LOGGER):
        assert _post(anon, "/api/payments/wechat/notify", body, headers).status_code == 204
    assert PaymentNotification.objects.get().outcome == "refused: unknown_order"
    assert [r.levelno for r in caplog.records if r.name == ALERT_LOGGER] == [logging.ERROR]


def test_a_payment_found_by_query_with_another_merchant_is_not_applied(make_client):
    """The deadline's query path goes through the same checks as a notification."""
    order_no, resource = _unpaid_order(make_client)
    outcome = apply_payment(
        out_trade_no=order_no, transaction_data=_tamper(resource, "mchid_mismatch")
    )
    assert outcome == "refused: mchid_mismatch"
    assert Order.objects.get(order_no=order_no).status == OrderStatus.PENDING_PAYMENT


# --- refunds ------------------------------------------------------------------------------------


def _refund_in_flight(make_client, price_fen: int = 20_000) -> tuple[Refund, dict]:
    """A paid order cancelled by its buyer: the refund is with WeChat, not yet settled. Returns
    it and the SUCCESS resource WeChat would send for it."""
    buyer, address_id = buyer_with_address(make_client)
    order_no = place_order(buyer, listing_on_sale(price_fen=price_fen), address_id).json()[
        "order_no"
    ]
    pay_in_wechat(buyer, order_no)
    assert buyer.post(f"/api/orders/{order_no}/cancel").json()["status"] == "cancelled"
    refund = Refund.objects.get(order__order_no=order_no)
    assert refund.status == Refund.Status.PROCESSING
    remote = SandboxRefund.objects.get(out_refund_no=refund.out_refund_no)
    remote.status = SandboxRefund.SUCCESS
    remote.success_time = timezone.now()
    PaymentNotification.objects.all().delete()
    SandboxNotification.objects.all().delete()
    return refund, sandbox._refund_notification_resource(remote)


def test_the_untampered_refund_notification_settles_the_refund(make_client, anon):
    refund, resource = _refund_in_flight(make_client)
    body, headers = _signed_notification(
        kind="refund", event_type="REFUND.SUCCESS", resource=resource
    )
    assert _post(anon, "/api/payments/wechat/refund-notify", body, headers).status_code == 204
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert PaymentNotification.objects.get().outcome == "refund_succeeded"


@pytest.mark.parametrize(
    "change, reason",
    [
        ("mchid", "mchid_mismatch"),
        ("refund_amount", "amount_mismatch"),
        ("total_amount", "amount_mismatch"),
        ("out_trade_no", "out_trade_no_mismatch"),
        ("out_refund_no", "unknown_refund"),
    ],
)
def test_a_signed_refund_notification_that_is_not_exactly_ours_is_refused(
    make_client, anon, caplog, change, reason
):
    refund, resource = _refund_in_flight(make_client)
    if change == "mchid":
        resource["mchid"] = "1230000109"
    elif change == "refund_amount":
        resource["amount"]["refund"] = refund.amount_fen - 1
    elif change == "total_amount":
        resource["amount"]["total"] += 1
    elif change == "out_trade_no":
        resource["out_trade_no"] = "T99999999999999999999"
    else:
        resource["out_refund_no"] = "T99999999999999999999R"
    body, headers = _signed_notification(
        kind="refund", event_type="REFUND.SUCCESS", resource=resource
    )

    with caplog.at_level(logging.ERROR, logger=ALERT_LOGGER):
        response = _post(anon, "/api/payments/wechat/refund-notify", body, headers)

    assert response.status_code == 204
    refund.refresh_from_db()
    assert refund.status == Refund.Status.PROCESSING and refund.succeeded_at is None
    record = PaymentNotification.objects.get()
    assert record.is_verified and record.outcome == f"refused: {reason}"
    alerts = [r for r in caplog.records if r.name == ALERT_LOGGER]
    assert len(alerts) == 1 and alerts[0].levelno == logging.ERROR
