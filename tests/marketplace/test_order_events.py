"""The exact events order actions send, and one code path for every deadline: the task that
fires at an order's deadline and the sweep that backs it up write the same history, refunds and
events (type, recipients and data), not merely the same status."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.actions.lifecycle import handle_order_deadline, sweep_overdue_orders
from marketplace.models.orders import Order, Refund
from marketplace.states import OrderStatus
from realtime.models import Event
from tests.marketplace.fulfilment_helpers import paid_order, shipped, video_uploaded
from tests.marketplace.order_helpers import buyer_with_address, listing_on_sale, place_order

pytestmark = pytest.mark.django_db(transaction=True)

ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+([+-]\d\d:\d\d|Z)$")


def _unpaid(make_client):
    buyer, address_id = buyer_with_address(make_client)
    seller = make_client()
    listing = listing_on_sale(seller=seller.user)
    return buyer, seller, place_order(buyer, listing, address_id).json()["order_no"]


# Fields that name this order's own rows: equal orders differ in them and only in them.
IDENTITY_KEYS = {
    "order_no", "buyer_id", "seller_id", "listing_id", "id", "withdrawal_id",
    "nickname",  # the seller snapshot: a different seller per order
}


def _normalise(value):
    """An event's data with what differs between two equal orders (ids, numbers, times, files)
    replaced by placeholders; everything else must match exactly."""
    if isinstance(value, dict):
        return {
            key: f"<{key}>" if key in IDENTITY_KEYS or (key == "video_url" and item)
            else _normalise(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    if isinstance(value, str) and ISO_TIME.match(value):
        return "<time>"
    return value


def _trace(order_no: str, after_id: int) -> dict:
    order = Order.objects.get(order_no=order_no)
    events = Event.objects.filter(pk__gt=after_id, user__in=[order.buyer_id, order.seller_id])
    events = [event for event in events.order_by("pk") if event.data.get("order_no") == order_no]
    return {
        "status": order.status,
        "events": [
            (
                "buyer" if event.user_id == order.buyer_id else "seller",
                event.type,
                _normalise(event.data),
            )
            for event in events
        ],
        "history": list(
            order.history.order_by("pk").values_list("from_status", "to_status", "actor", "reason")
        ),
        "refunds": list(
            Refund.objects.filter(order=order).values_list("amount_fen", "reason", "status")
        ),
        "listing": order.listing.status,
    }


def _overdue(order_no: str) -> None:
    Order.objects.filter(order_no=order_no).update(
        deadline_at=timezone.now() - timedelta(minutes=1)
    )


def _last_event_id() -> int:
    return Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


@pytest.mark.parametrize(
    ("walk", "expected_status"),
    [
        (_unpaid, OrderStatus.CLOSED),
        (paid_order, OrderStatus.CANCELLED),
        (video_uploaded, OrderStatus.CANCELLED),
        (shipped, OrderStatus.COMPLETED),
    ],
    ids=["payment", "video_upload", "video_confirmation", "auto_complete"],
)
def test_the_deadline_task_and_the_sweep_write_the_same(make_client, walk, expected_status):
    _, _, by_task = walk(make_client)
    _, _, by_sweep = walk(make_client)
    _overdue(by_task)
    _overdue(by_sweep)
    mark = _last_event_id()

    handle_order_deadline(order_id=Order.objects.get(order_no=by_task).pk)
    sweep_overdue_orders()

    task_trace, sweep_trace = _trace(by_task, mark), _trace(by_sweep, mark)
    assert task_trace["status"] == expected_status
    assert task_trace["events"], "the deadline told nobody"
    assert task_trace == sweep_trace


def test_a_cancelled_order_is_announced_with_its_refund_pending(make_client):
    _, _, order_no = paid_order(make_client)
    _overdue(order_no)
    mark = _last_event_id()
    sweep_overdue_orders()
    trace = _trace(order_no, mark)
    assert [(who, type) for who, type, _ in trace["events"]] == [
        ("buyer", "order.status_changed"),
        ("seller", "order.status_changed"),
    ]
    data = trace["events"][0][2]
    assert data["status"] == "cancelled" and data["refund_status"] == "pending"
    # Submitted to the sandbox at once after commit (tasks run eagerly in tests).
    assert trace["refunds"] == [(10_000, "seller did not upload the video in time", "processing")]
    assert trace["history"][-1] == (
        "awaiting_video", "cancelled", "system", "seller did not upload the video in time",
    )


def test_each_step_of_an_order_sends_the_order_as_the_api_shows_it(make_client):
    """Creation, payment and the video: the exact events, to the exact people, each carrying
    the order exactly as GET /api/orders/{no} shows it at that moment."""
    mark = _last_event_id()
    buyer, seller, order_no = video_uploaded(make_client)
    order = Order.objects.get(order_no=order_no)
    events = list(Event.objects.filter(pk__gt=mark, data__order_no=order_no).order_by("pk"))
    assert [(event.user_id, event.type, event.data["status"]) for event in events] == [
        (order.buyer_id, "order.status_changed", "pending_payment"),
        (order.seller_id, "order.status_changed", "pending_payment"),
        (order.buyer_id, "order.status_changed", "awaiting_video"),
        (order.seller_id, "order.status_changed", "awaiting_video"),
        (order.buyer_id, "order.status_changed", "awaiting_confirmation"),
        (order.seller_id, "order.status_changed", "awaiting_confirmation"),
        (order.buyer_id, "order.video_ready", "awaiting_confirmation"),
    ]
    shown = buyer.get(f"/api/orders/{order_no}").json()
    seller_shown = seller.get(f"/api/orders/{order_no}").json()
    # Except the video's URL: each reader gets a fresh private one, events none (issue 18).
    assert shown.pop("video_url") and seller_shown.pop("video_url")
    assert shown["has_video"] is True
    assert {**events[-1].data, "video_url": None} == {**shown, "video_url": None}
    assert events[-1].data["video_url"] is None and events[-2].data["video_url"] is None
    assert {**events[-2].data, "video_url": None} == {**shown, "video_url": None}
    assert seller_shown == shown
    # Both sides of one step get the same document.
    assert all(events[i].data == events[i + 1].data for i in range(0, 6, 2))


def test_a_new_order_is_announced_exactly_as_the_api_shows_it(make_client):
    """Its event is built without reading the order back: it must still be the GET's body."""
    mark = _last_event_id()
    buyer, _, order_no = _unpaid(make_client)
    events = list(Event.objects.filter(pk__gt=mark, data__order_no=order_no).order_by("pk"))
    assert [event.type for event in events] == ["order.status_changed"] * 2
    assert events[0].data == buyer.get(f"/api/orders/{order_no}").json()


def test_a_swept_batch_is_announced_byte_for_byte_as_its_orders_read_back(make_client, monkeypatch):
    """The sweep builds a batch's events from the rows it locked and wrote instead of reading
    every order back (docs/orders.md, Benchmarks): each live frame must be the very bytes the
    order read back after the sweep gives (earlier history, the new row, the refund pending),
    and the document the API shows."""
    from marketplace.actions import refunds
    from marketplace.representations import order_data
    from realtime import push

    walks = [paid_order(make_client), paid_order(make_client), video_uploaded(make_client)]
    for _, _, order_no in walks:
        _overdue(order_no)
    # Held back, so the refunds read back as the sweep left them (pending), not as submitted.
    monkeypatch.setattr(refunds, "enqueue_on_commit", lambda *args, **kwargs: None)
    frames: list[tuple[int, dict]] = []
    send = push._send
    monkeypatch.setattr(push, "_send", lambda messages: (frames.extend(messages), send(messages)))

    assert sweep_overdue_orders() == {"cancelled": 3}

    for buyer, _, order_no in walks:
        order = Order.objects.get(order_no=order_no)
        expected = json.loads(push.encode(order_data(order)))  # as every other path sends it
        assert [entry["to"] for entry in expected["history"]][-1] == "cancelled"
        assert len(expected["history"]) >= 3 and expected["refund_status"] == "pending"
        sent = [(user, message) for user, message in frames if f'"{order_no}"' in message["text"]]
        assert [user for user, _ in sent] == [order.buyer_id, order.seller_id]
        for user, message in sent:
            event = Event.objects.get(user_id=user, seq=message["seq"])
            assert message["text"] == push.frame_text(
                seq=event.seq, type="order.status_changed", data=expected, at=event.created_at
            )
            assert event.data == expected
        shown = buyer.get(f"/api/orders/{order_no}").json()
        assert {**expected, "video_url": None} == {**shown, "video_url": None}
