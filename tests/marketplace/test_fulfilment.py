"""From paid to completed or cancelled, through the API and both sandboxes (SPEC §3, §5)."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.actions.fulfilment import settle_dispute
from marketplace.actions.lifecycle import handle_order_deadline, sweep_overdue_orders
from marketplace.gateways.kuaidi100 import push_sign
from marketplace.models import Listing, ListingStatus, User
from marketplace.models.fulfilment import Dispute, Review, TrackingEvent
from marketplace.models.orders import Order, Refund
from marketplace.models.wallet import LedgerEntry, Wallet
from marketplace.states import OrderStatus
from realtime.models import Event
from tests.conftest import assert_error
from tests.factories import StaffFactory
from tests.marketplace.fulfilment_helpers import (
    MOV_BYTES,
    TRACKING_NO,
    advance_parcel,
    awaiting_shipment,
    paid_order,
    post_video,
    shipped,
    video_uploaded,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _order(order_no: str) -> Order:
    return Order.objects.get(order_no=order_no)


def test_full_lifecycle_to_completion_credits_the_seller_once(make_client):
    buyer, seller, order_no = paid_order(make_client, price_fen=12_345)

    response = post_video(seller, order_no)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "awaiting_confirmation"
    assert response.json()["video_url"].endswith(".mp4")
    assert Event.objects.filter(user=buyer.user, type="order.video_ready").count() == 1

    assert (
        buyer.post(f"/api/orders/{order_no}/confirm-video").json()["status"] == "awaiting_shipment"
    )
    shipped_body = seller.post(f"/api/orders/{order_no}/ship", {"tracking_no": TRACKING_NO}).json()
    assert shipped_body["status"] == "shipped"
    assert shipped_body["carrier"] == "yuantong"  # detected through Kuaidi100's autonumber
    assert _order(order_no).tracking_subscribed_at is not None

    for _ in range(3):
        assert advance_parcel(buyer).status_code == 200
    assert TrackingEvent.objects.filter(order__order_no=order_no).count() == 3
    assert Event.objects.filter(user=buyer.user, type="order.shipping_update").count() == 3
    assert Event.objects.filter(user=seller.user, type="order.shipping_update").count() == 3
    tracking = buyer.get(f"/api/orders/{order_no}/tracking").json()
    assert tracking["tracking_no"] == TRACKING_NO and len(tracking["events"]) == 3

    completed = buyer.post(f"/api/orders/{order_no}/confirm-receipt").json()
    assert completed["status"] == "completed"

    wallet = Wallet.objects.get(user=seller.user)
    assert wallet.available_fen == 12_345 - 617 and wallet.total_earned_fen == 11_728
    assert LedgerEntry.objects.filter(order__order_no=order_no).count() == 1
    assert Event.objects.filter(user=seller.user, type="wallet.credited").count() == 1
    # The credit is posted once however often it is attempted.
    from marketplace.actions.wallet import credit_sale

    assert credit_sale(order_id=_order(order_no).pk) is None
    assert Wallet.objects.get(user=seller.user).available_fen == 11_728


def test_mov_videos_are_accepted_and_fakes_are_not(make_client):
    buyer, seller, order_no = paid_order(make_client)

    assert_error(
        post_video(seller, order_no, b"not a video at all" * 10, "fake.mp4"), 400, "invalid_video"
    )
    assert_error(
        post_video(seller, order_no, b"\x89PNG\r\n\x1a\n" + b"0" * 50, "x.mov"),
        400,
        "invalid_video",
    )
    assert _order(order_no).status == OrderStatus.AWAITING_VIDEO
    assert_error(post_video(buyer, order_no), 404)  # only the seller uploads

    response = post_video(seller, order_no, MOV_BYTES, "clip.MOV")
    assert response.status_code == 200 and response.json()["video_url"].endswith(".mov")


def test_rejected_video_cancels_refunds_and_puts_the_listing_back(make_client):
    buyer, seller, order_no = video_uploaded(make_client, price_fen=5_000)

    assert_error(buyer.post(f"/api/orders/{order_no}/reject-video", {"reason": ""}), 422)
    response = buyer.post(f"/api/orders/{order_no}/reject-video", {"reason": "成色与描述不符"})

    assert response.json()["status"] == "cancelled"
    assert Refund.objects.get(order__order_no=order_no).amount_fen == 5_000
    assert Listing.objects.get(pk=_order(order_no).listing_id).status == ListingStatus.ON_SALE


@pytest.mark.parametrize(
    ("setup", "expected_status", "listing_status"),
    [
        (paid_order, OrderStatus.CANCELLED, ListingStatus.OFF_SHELF),  # no video in 24 h
        (video_uploaded, OrderStatus.CANCELLED, ListingStatus.ON_SALE),  # not confirmed in 3 h
        (shipped, OrderStatus.COMPLETED, ListingStatus.SOLD),  # 10 days after shipping
    ],
)
@pytest.mark.parametrize("runner", ["task", "sweeper"])
def test_deadlines_by_their_task_and_by_the_sweeper(
    make_client, setup, expected_status, listing_status, runner
):
    buyer, seller, order_no = setup(make_client)
    order = _order(order_no)
    due = order.deadline_at + timedelta(seconds=1)
    assert handle_order_deadline(order_id=order.pk, now=due - timedelta(minutes=5)) == "not_due"

    if runner == "task":
        assert handle_order_deadline(order_id=order.pk, now=due) in {"cancelled", "completed"}
    else:
        # The worker was down: its scheduled task never ran; the sweeper finds the order.
        assert sum(sweep_overdue_orders(now=due).values()) == 1
    order.refresh_from_db()
    assert order.status == expected_status
    assert Listing.objects.get(pk=order.listing_id).status == listing_status
    if expected_status == OrderStatus.CANCELLED:
        assert Refund.objects.get(order=order).amount_fen == order.price_fen
    else:
        assert Wallet.objects.get(user=seller.user).available_fen > 0
    # A second sweep changes nothing.
    assert sweep_overdue_orders(now=due + timedelta(days=1)) == {}


def test_mark_delivered_completes_after_24_hours_unless_disputed(make_client):
    buyer, seller, order_no = shipped(make_client)

    seller.post(f"/api/orders/{order_no}/mark-delivered")
    order = _order(order_no)
    assert order.deadline_at <= timezone.now() + timedelta(hours=24, seconds=5)
    assert_error(buyer.post(f"/api/orders/{order_no}/mark-delivered"), 404)

    buyer.post(f"/api/orders/{order_no}/dispute", {"reason": "没收到货"})
    assert sweep_overdue_orders(now=order.deadline_at + timedelta(seconds=1)) == {}
    assert _order(order_no).status == OrderStatus.DISPUTED


def test_forged_kuaidi100_push_is_refused_and_stores_nothing(make_client, anon):
    buyer, seller, order_no = shipped(make_client)
    param = json.dumps(
        {
            "status": "polling",
            "message": "",
            "lastResult": {
                "state": "3",
                "ischeck": "1",
                "com": "yuantong",
                "nu": TRACKING_NO,
                "data": [
                    {"time": "2026-11-25 10:00:00", "ftime": "2026-11-25 10:00:00", "context": "已签收"}
                ],
            },
        },
        ensure_ascii=False,
    )
    url = f"/api/logistics/kuaidi100/notify?order={order_no}"

    forged = anon.client.post(url, {"param": param, "sign": push_sign(param=param, salt="guess")})
    unknown = anon.client.post(
        "/api/logistics/kuaidi100/notify?order=NOPE", {"param": param, "sign": "x"}
    )

    assert forged.status_code == 400 and forged.json()["code"] == "invalid_push"
    assert unknown.status_code == 404
    assert not TrackingEvent.objects.exists()
    # Signed with the order's salt it is accepted, once per event however often it is pushed.
    good = {"param": param, "sign": push_sign(param=param, salt=_order(order_no).tracking_salt)}
    assert anon.client.post(url, good).json()["returnCode"] == "200"
    assert anon.client.post(url, good).json()["returnCode"] == "200"
    assert TrackingEvent.objects.count() == 1


def test_abort_push_schedules_a_resubscription(make_client):
    buyer, seller, order_no = shipped(make_client)

    advance_parcel(buyer, status="abort")

    order = _order(order_no)
    assert order.tracking_resubscribe_at >= timezone.now() + timedelta(minutes=29)
    from marketplace.actions.fulfilment import resubscribe_due_tracking

    assert resubscribe_due_tracking() == 0
    assert resubscribe_due_tracking(now=order.tracking_resubscribe_at) == 1
    assert _order(order_no).tracking_resubscribe_at is None


@pytest.mark.parametrize(
    ("refund_fen", "status", "seller_credit"),
    [
        (10_000, OrderStatus.CANCELLED, 0),
        (3_000, OrderStatus.COMPLETED, 6_650),
        (0, OrderStatus.COMPLETED, 9_500),
    ],
)
def test_staff_settle_disputes(make_client, refund_fen, status, seller_credit):
    buyer, seller, order_no = shipped(make_client, price_fen=10_000)
    buyer.post(f"/api/orders/{order_no}/dispute", {"reason": "少了配件"})
    staff = StaffFactory()

    settle_dispute(
        staff=staff, order_id=_order(order_no).pk, refund_fen=refund_fen, note="协商结果"
    )

    order = _order(order_no)
    assert order.status == status
    dispute = Dispute.objects.get(order=order)
    assert dispute.settled_by == staff and dispute.refund_fen == refund_fen
    refunds = Refund.objects.filter(order=order)
    assert [r.amount_fen for r in refunds] == ([refund_fen] if refund_fen else [])
    wallet = Wallet.objects.filter(user=seller.user).first()
    assert (wallet.available_fen if wallet else 0) == seller_credit


def test_review_once_and_profile_average(make_client, anon):
    buyer, seller, order_no = shipped(make_client)
    assert_error(buyer.post(f"/api/orders/{order_no}/review", {"rating": 5}), 409, "not_completed")
    buyer.post(f"/api/orders/{order_no}/confirm-receipt")

    assert_error(buyer.post(f"/api/orders/{order_no}/review", {"rating": 6}), 422)
    assert_error(
        buyer.post(f"/api/orders/{order_no}/review", {"rating": 4, "comment": "违禁品"}), 400
    )
    assert (
        buyer.post(f"/api/orders/{order_no}/review", {"rating": 4, "comment": "很好"}).status_code
        == 201
    )
    assert_error(
        buyer.post(f"/api/orders/{order_no}/review", {"rating": 1}), 409, "already_reviewed"
    )
    assert_error(seller.post(f"/api/orders/{order_no}/review", {"rating": 1}), 404)

    profile = anon.get(f"/api/users/{seller.user.pk}").json()
    assert profile["rating_count"] == 1 and profile["rating_avg"] == 4.0
    assert Review.objects.count() == 1


def _completed(make_client):
    buyer, seller, order_no = shipped(make_client)
    buyer.post(f"/api/orders/{order_no}/confirm-receipt")
    return buyer, seller, order_no


def _disputed(make_client):
    buyer, seller, order_no = shipped(make_client)
    buyer.post(f"/api/orders/{order_no}/dispute", {"reason": "坏了"})
    return buyer, seller, order_no


def _cancelled(make_client):
    buyer, seller, order_no = paid_order(make_client)
    buyer.post(f"/api/orders/{order_no}/cancel")
    return buyer, seller, order_no


REACH = {
    OrderStatus.AWAITING_VIDEO: paid_order,
    OrderStatus.AWAITING_CONFIRMATION: video_uploaded,
    OrderStatus.AWAITING_SHIPMENT: awaiting_shipment,
    OrderStatus.SHIPPED: shipped,
    OrderStatus.COMPLETED: _completed,
    OrderStatus.DISPUTED: _disputed,
    OrderStatus.CANCELLED: _cancelled,
}


# Which side may do what in which status; every other combination must be 409.
ACTIONS = {
    "video": ("seller", {OrderStatus.AWAITING_VIDEO}),
    "confirm-video": ("buyer", {OrderStatus.AWAITING_CONFIRMATION}),
    "reject-video": ("buyer", {OrderStatus.AWAITING_CONFIRMATION}),
    "ship": ("seller", {OrderStatus.AWAITING_SHIPMENT}),
    "mark-delivered": ("seller", {OrderStatus.SHIPPED}),
    "confirm-receipt": ("buyer", {OrderStatus.SHIPPED}),
    "dispute": ("buyer", {OrderStatus.SHIPPED}),
}
BODIES = {
    "reject-video": {"reason": "x"},
    "ship": {"tracking_no": TRACKING_NO, "carrier_code": "yuantong"},
    "dispute": {"reason": "x"},
}


@pytest.mark.parametrize("status", list(REACH))
def test_disallowed_actions_in_each_status_are_409_and_change_nothing(make_client, status):
    buyer, seller, order_no = REACH[status](make_client)
    assert _order(order_no).status == status
    before = _order(order_no)
    history = before.history.count()
    for action, (side, allowed) in ACTIONS.items():
        if status in allowed:
            continue
        client = seller if side == "seller" else buyer
        if action == "video":
            response = post_video(client, order_no)
        else:
            response = client.post(f"/api/orders/{order_no}/{action}", BODIES.get(action))
        assert_error(response, 409)
        after = _order(order_no)
        assert (after.status, after.history.count()) == (before.status, history), action


def test_commission_rounding_adds_up():
    from marketplace.money import split_commission

    for price, rate, commission in [
        (1, 500, 0),
        (10, 500, 1),
        (19, 500, 1),
        (12_345, 500, 617),
        (99, 333, 3),
        (1_000_000_000, 5000, 500_000_000),
        (7, 0, 0),
    ]:
        got_commission, seller = split_commission(price_fen=price, rate_bp=rate)
        assert got_commission == commission and got_commission + seller == price
    with pytest.raises(ValueError):
        split_commission(price_fen=100, rate_bp=10_001)


def test_other_users_cannot_touch_the_order(make_client):
    buyer, seller, order_no = shipped(make_client)
    stranger = make_client()
    for action in ("confirm-receipt", "dispute", "mark-delivered"):
        assert_error(stranger.post(f"/api/orders/{order_no}/{action}", BODIES.get(action)), 404)
    assert_error(stranger.get(f"/api/orders/{order_no}/tracking"), 404)
    assert User.objects.count() == 3
