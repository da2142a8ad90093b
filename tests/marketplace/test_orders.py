"""Orders and WeChat Pay through the sandbox, with real signatures and encryption."""

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from marketplace.actions.lifecycle import handle_order_deadline, sweep_overdue_orders
from marketplace.models import ListingStatus
from marketplace.models.orders import (
    IdempotencyRecord,
    Order,
    OrderHistory,
    PaymentNotification,
    Refund,
)
from marketplace.states import OrderStatus
from realtime.models import Event
from sandbox.models import (
    SandboxNotification,
    SandboxRefund,
    SandboxTransaction,
)
from tests.conftest import assert_error
from tests.marketplace.order_helpers import (
    buyer_with_address,
    listing_on_sale,
    pay_in_wechat,
    place_order,
)

# Real commits: events are sent, and tasks (refunds) enqueued, only after commit.
pytestmark = pytest.mark.django_db(transaction=True)


def test_order_reserves_the_listing_and_copies_the_address(make_client):
    buyer, address_id = buyer_with_address(make_client)
    listing = listing_on_sale(price_fen=9_900)

    response = place_order(buyer, listing, address_id)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending_payment" and body["price"] == 9_900
    assert body["address"]["detail"] == "科技园 1 号"
    assert len(body["order_no"]) <= 32 and body["order_no"].isalnum()
    assert body["deadline_at"] is not None
    assert body["history"] == [
        {
            "from": None,
            "to": "pending_payment",
            "actor": "buyer",
            "reason": "",
            "at": body["history"][0]["at"],
        }
    ]
    listing.refresh_from_db()
    assert listing.status == ListingStatus.RESERVED
    # Editing the address book later does not move the order.
    buyer.patch(f"/api/addresses/{address_id}", {"detail": "新地址"})
    assert buyer.get(f"/api/orders/{body['order_no']}").json()["address"]["detail"] == "科技园 1 号"
    # Both sides were told.
    events = Event.objects.filter(type="order.status_changed")
    assert {e.user_id for e in events} == {buyer.user.pk, listing.seller_id}


def test_cannot_order_own_reserved_or_missing_listing(make_client):
    buyer, address_id = buyer_with_address(make_client)
    own = listing_on_sale(seller=buyer.user)
    reserved = listing_on_sale(status=ListingStatus.RESERVED)
    pending = listing_on_sale(status=ListingStatus.PENDING_REVIEW)

    assert_error(place_order(buyer, own, address_id), 409, "own_listing")
    assert_error(place_order(buyer, reserved, address_id), 409, "listing_not_on_sale")
    assert_error(place_order(buyer, pending, address_id), 409, "listing_not_on_sale")
    response = buyer.post("/api/orders", {"listing_id": 999999, "address_id": address_id})
    assert_error(response, 404, "listing_not_found")
    assert not Order.objects.exists()


def test_someone_elses_address_is_404_and_nothing_is_reserved(make_client):
    buyer, _ = buyer_with_address(make_client)
    _, other_address = buyer_with_address(make_client)
    listing = listing_on_sale()

    assert_error(place_order(buyer, listing, other_address), 404, "address_not_found")
    listing.refresh_from_db()
    assert listing.status == ListingStatus.ON_SALE


@pytest.mark.parametrize(
    "body",
    [
        {"listing_id": "x", "address_id": 1},
        {"listing_id": 1},
        {"listing_id": 1, "address_id": 1, "price": 1},
    ],
)
def test_bad_order_bodies(make_client, body):
    buyer, _ = buyer_with_address(make_client)
    assert_error(buyer.post("/api/orders", body), 422, "validation_error")


def test_idempotency_key_returns_the_first_result(make_client):
    buyer, address_id = buyer_with_address(make_client)
    listing = listing_on_sale()
    headers = {"Idempotency-Key": "order-key-1"}

    first = place_order(buyer, listing, address_id, headers=headers)
    second = place_order(buyer, listing, address_id, headers=headers)

    assert first.status_code == second.status_code == 201
    assert first.json()["order_no"] == second.json()["order_no"]
    assert second["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1
    # Another key is another request: the listing is reserved now.
    assert_error(place_order(buyer, listing, address_id, headers={"Idempotency-Key": "k2"}), 409)
    # Keys are per user.
    other, other_address = buyer_with_address(make_client)
    assert_error(place_order(other, listing, other_address, headers=headers), 409)
    assert IdempotencyRecord.objects.count() == 3


def test_full_pay_flow_through_the_sandbox(make_client):
    buyer, address_id = buyer_with_address(make_client)
    listing = listing_on_sale(price_fen=12_345)
    order_no = place_order(buyer, listing, address_id).json()["order_no"]

    pay = buyer.post(f"/api/orders/{order_no}/pay").json()
    assert pay["order_no"] == order_no
    assert set(pay["pay_params"]) == {
        "appId",
        "timeStamp",
        "nonceStr",
        "package",
        "signType",
        "paySign",
    }
    assert pay["pay_params"]["signType"] == "RSA"
    # A repeated call while the prepay is valid reuses it.
    again = buyer.post(f"/api/orders/{order_no}/pay").json()
    assert again["pay_params"]["package"] == pay["pay_params"]["package"]

    result = pay_in_wechat(buyer, order_no)

    assert result["notification"]["acknowledged"] is True
    order = Order.objects.get(order_no=order_no)
    assert order.status == OrderStatus.AWAITING_VIDEO
    assert order.transaction_id and order.paid_at
    assert order.commission_rate_bp == 500 and order.commission_fen == 617  # 12345 * 5% = 617.25
    listing.refresh_from_db()
    assert listing.status == ListingStatus.SOLD
    notification = PaymentNotification.objects.get(kind="payment")
    assert notification.is_verified and notification.outcome == "paid"
    assert "resource" in json.loads(notification.body)  # the raw body is kept for audit
    statuses = [
        e.data["status"] for e in Event.objects.filter(user=buyer.user, type="order.status_changed")
    ]
    assert statuses == ["pending_payment", "awaiting_video"]


def _stored_notification(order_no: str):
    return SandboxNotification.objects.filter(out_trade_no=order_no, kind="transaction").latest(
        "id"
    )


def _post_notification(client, body: bytes, headers: dict):
    return client.post(
        "/api/payments/wechat/notify",
        body,
        content_type="application/json",
        headers=headers,
    )


def test_replayed_notification_is_acknowledged_and_changes_nothing(make_client, anon):
    buyer, address_id = buyer_with_address(make_client)
    order_no = place_order(buyer, listing_on_sale(), address_id).json()["order_no"]
    pay_in_wechat(buyer, order_no)
    note = _stored_notification(order_no)
    history_before = OrderHistory.objects.count()

    response = _post_notification(anon.client, note.body.encode(), note.last_headers)

    assert response.status_code == 204
    assert OrderHistory.objects.count() == history_before
    assert PaymentNotification.objects.filter(outcome="duplicate").count() == 1


def test_forged_and_tampered_notifications_are_refused(make_client, anon):
    buyer, address_id = buyer_with_address(make_client)
    order_no = place_order(buyer, listing_on_sale(), address_id).json()["order_no"]
    pay_in_wechat(buyer, order_no)
    note = _stored_notification(order_no)
    Order.objects.filter(order_no=order_no).update(
        status=OrderStatus.PENDING_PAYMENT, transaction_id=""
    )

    tampered = note.body.replace('"id":"', '"id":"x', 1).encode()
    forged_headers = {**note.last_headers, "Wechatpay-Signature": "Zm9yZ2Vk" * 40}

    assert _post_notification(anon.client, tampered, note.last_headers).status_code == 401
    assert _post_notification(anon.client, note.body.encode(), forged_headers).status_code == 401
    assert _post_notification(anon.client, b"{}", {}).status_code == 401
    assert Order.objects.get(order_no=order_no).status == OrderStatus.PENDING_PAYMENT
    rejected = PaymentNotification.objects.filter(is_verified=False)
    assert rejected.count() == 3 and all(r.outcome.startswith("rejected") for r in rejected)


def test_stale_notification_is_refused(make_client, anon, monkeypatch):
    buyer, address_id = buyer_with_address(make_client)
    order_no = place_order(buyer, listing_on_sale(), address_id).json()["order_no"]
    pay_in_wechat(buyer, order_no)
    note = _stored_notification(order_no)
    Order.objects.filter(order_no=order_no).update(
        status=OrderStatus.PENDING_PAYMENT, transaction_id=""
    )
    later = timezone.now() + timedelta(minutes=6)
    monkeypatch.setattr("marketplace.gateways.wechatpay.timezone.now", lambda: later)

    assert _post_notification(anon.client, note.body.encode(), note.last_headers).status_code == 401
    assert Order.objects.get(order_no=order_no).status == OrderStatus.PENDING_PAYMENT


def test_amount_mismatch_does_not_mark_the_order_paid(make_client):
    from marketplace.actions.payments import apply_payment

    buyer, address_id = buyer_with_address(make_client)
    order_no = place_order(buyer, listing_on_sale(price_fen=5_000), address_id).json()["order_no"]

    outcome = apply_payment(
        out_trade_no=order_no,
        transaction_data={
            "appid": settings.WECHAT_APPID,
            "mchid": settings.WECHATPAY_MCHID,
            "out_trade_no": order_no,
            "amount": {"total": 1, "currency": "CNY"},
            "payer": {"openid": buyer.user.openid},
            "transaction_id": "t",
        },
    )

    assert outcome == "refused: amount_mismatch"
    assert Order.objects.get(order_no=order_no).status == OrderStatus.PENDING_PAYMENT


def test_unpaid_order_closes_at_the_deadline_and_the_listing_is_back_on_sale(make_client):
    buyer, address_id = buyer_with_address(make_client)
    listing = listing_on_sale()
    order_no = place_order(buyer, listing, address_id).json()["order_no"]
    buyer.post(f"/api/orders/{order_no}/pay")
    order = Order.objects.get(order_no=order_no)

    assert handle_order_deadline(order_id=order.pk) == "not_due"
    outcome = handle_order_deadline(order_id=order.pk, now=order.deadline_at + timedelta(seconds=1))

    assert outcome == "closed"
    order.refresh_from_db()
    listing.refresh_from_db()
    assert order.status == OrderStatus.CLOSED and listing.status == ListingStatus.ON_SALE
    # WeChat's side is closed too: the prepay can no longer be paid.
    assert SandboxTransaction.objects.get(out_trade_no=order_no).trade_state == "CLOSED"
    # Running the deadline again changes nothing.
    assert (
        handle_order_deadline(order_id=order.pk, now=order.deadline_at or timezone.now())
        == "not_due"
    )


def test_payment_found_by_query_at_the_deadline_is_applied_not_closed(make_client):
    buyer, address_id = buyer_with_address(make_client)
    order_no = place_order(buyer, listing_on_sale(), address_id).json()["order_no"]
    buyer.post(f"/api/orders/{order_no}/pay")
    # WeChat took the money but its notification never reached us.
    SandboxTransaction.objects.filter(out_trade_no=order_no).update(
        trade_state="SUCCESS", transaction_id="4200000000000000001", success_time=timezone.now()
    )
    order = Order.objects.get(order_no=order_no)

    sweep_overdue_orders(now=order.deadline_at + timedelta(minutes=1))

    order.refresh_from_db()
    assert order.status == OrderStatus.AWAITING_VIDEO
    assert order.transaction_id == "4200000000000000001"


def test_late_payment_after_close_is_refunded_in_full(make_client, anon):
    buyer, address_id = buyer_with_address(make_client)
    order_no = place_order(buyer, listing_on_sale(price_fen=8_800), address_id).json()["order_no"]
    pay_in_wechat(buyer, order_no)
    note = _stored_notification(order_no)
    # Our side closed it (the race lost by the notification), then the notification arrives.
    Order.objects.filter(order_no=order_no).update(status=OrderStatus.CLOSED, transaction_id="")

    assert _post_notification(anon.client, note.body.encode(), note.last_headers).status_code == 204

    refund = Refund.objects.get(order__order_no=order_no)
    assert refund.amount_fen == 8_800 and refund.out_refund_no == f"{order_no}R"
    assert refund.status in {Refund.Status.PROCESSING, Refund.Status.SUCCEEDED}
    assert Order.objects.get(order_no=order_no).status == OrderStatus.CLOSED


def test_buyer_cancels_unpaid_order(make_client):
    buyer, address_id = buyer_with_address(make_client)
    listing = listing_on_sale()
    order_no = place_order(buyer, listing, address_id).json()["order_no"]

    response = buyer.post(f"/api/orders/{order_no}/cancel", {"reason": "不想要了"})

    assert response.status_code == 200 and response.json()["status"] == "closed"
    listing.refresh_from_db()
    assert listing.status == ListingStatus.ON_SALE
    assert not Refund.objects.exists()


def test_paid_order_cancelled_by_buyer_is_refunded_once(make_client):
    buyer, address_id = buyer_with_address(make_client)
    listing = listing_on_sale(price_fen=20_000)
    order_no = place_order(buyer, listing, address_id).json()["order_no"]
    pay_in_wechat(buyer, order_no)

    response = buyer.post(f"/api/orders/{order_no}/cancel")
    again = buyer.post(f"/api/orders/{order_no}/cancel")

    assert response.json()["status"] == "cancelled"
    assert_error(again, 409, "cannot_cancel")
    refund = Refund.objects.get()
    assert refund.amount_fen == 20_000
    assert SandboxRefund.objects.filter(out_refund_no=refund.out_refund_no).count() == 1
    listing.refresh_from_db()
    assert listing.status == ListingStatus.ON_SALE


def test_seller_cancels_a_paid_order_and_the_listing_goes_off_shelf(make_client):
    buyer, address_id = buyer_with_address(make_client)
    seller = make_client()
    listing = listing_on_sale(seller=seller.user)
    order_no = place_order(buyer, listing, address_id).json()["order_no"]
    pay_in_wechat(buyer, order_no)

    assert seller.post(f"/api/orders/{order_no}/cancel").json()["status"] == "cancelled"
    listing.refresh_from_db()
    assert listing.status == ListingStatus.OFF_SHELF
    # The seller cannot cancel before the buyer paid.
    other = listing_on_sale(seller=seller.user)
    unpaid = place_order(buyer, other, address_id).json()["order_no"]
    assert_error(seller.post(f"/api/orders/{unpaid}/cancel"), 409, "cannot_cancel")


def test_orders_are_private_to_buyer_and_seller(make_client):
    buyer, address_id = buyer_with_address(make_client)
    stranger = make_client()
    order_no = place_order(buyer, listing_on_sale(), address_id).json()["order_no"]

    assert_error(stranger.get(f"/api/orders/{order_no}"), 404, "order_not_found")
    assert_error(stranger.post(f"/api/orders/{order_no}/pay"), 404)
    assert_error(stranger.post(f"/api/orders/{order_no}/cancel"), 404)
    assert stranger.get("/api/orders").json()["items"] == []


def test_order_lists_filter_by_role_and_status_and_paginate(make_client):
    buyer, address_id = buyer_with_address(make_client)
    seller = make_client()
    numbers = [
        place_order(buyer, listing_on_sale(seller=seller.user), address_id).json()["order_no"]
        for _ in range(3)
    ]
    first = buyer.get("/api/orders", {"limit": 2}).json()
    second = buyer.get("/api/orders", {"limit": 2, "cursor": first["next_cursor"]}).json()

    assert [o["order_no"] for o in first["items"] + second["items"]] == numbers[::-1]
    assert second["next_cursor"] is None
    assert len(seller.get("/api/orders", {"role": "seller"}).json()["items"]) == 3
    assert seller.get("/api/orders", {"role": "seller", "status": "shipped"}).json()["items"] == []
    assert_error(buyer.get("/api/orders", {"status": "bogus"}), 422)
    assert_error(buyer.get("/api/orders", {"cursor": "garbage!"}), 400, "invalid_cursor")


def test_pay_after_the_deadline_is_409(make_client):
    buyer, address_id = buyer_with_address(make_client)
    order_no = place_order(buyer, listing_on_sale(), address_id).json()["order_no"]
    Order.objects.filter(order_no=order_no).update(
        deadline_at=timezone.now() - timedelta(seconds=1)
    )

    assert_error(buyer.post(f"/api/orders/{order_no}/pay"), 409, "payment_deadline_passed")
