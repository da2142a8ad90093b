"""Signed Kuaidi100 pushes that do not fit the schema, through the callback endpoint: refused
with Kuaidi100's failure reply, nothing stored, never a 500 (issue 20, finding 9)."""

import json

import pytest

from marketplace.gateways.kuaidi100 import push_sign
from marketplace.models.fulfilment import TrackingEvent
from marketplace.models.orders import Order
from tests.marketplace.fulfilment_helpers import TRACKING_NO, shipped

pytestmark = pytest.mark.django_db(transaction=True)


def _push(event: dict, **extra) -> dict:
    return {
        "status": "polling",
        "message": "",
        "lastResult": {
            "state": "0",
            "ischeck": "0",
            "com": "yuantong",
            "nu": TRACKING_NO,
            "data": [{"time": "2026-11-25 10:00:00", "context": "运输中", **event}],
        },
        **extra,
    }


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(_push({"context": "运\x00输"}), id="nul-in-text"),
        pytest.param(_push({"location": "上\x00海"}), id="nul-in-location"),
        pytest.param(_push({"time": "0001-01-01 00:00:00"}), id="year-0001"),
        pytest.param(_push({}, autoCheck="1", comNew="x" * 31), id="comNew-too-long"),
        pytest.param(_push({}, autoCheck="1", comNew="evilcarrier"), id="comNew-unknown"),
        pytest.param(_push({}, extra=json.loads("[" * 300 + "]" * 300)), id="deeply-nested"),
    ],
)
def test_a_signed_push_that_does_not_fit_is_refused_and_changes_nothing(make_client, anon, payload):
    buyer, seller, order_no = shipped(make_client)
    order = Order.objects.get(order_no=order_no)
    param = json.dumps(payload, ensure_ascii=False)

    response = anon.client.post(
        f"/api/logistics/kuaidi100/notify?order={order_no}",
        {"param": param, "sign": push_sign(param=param, salt=order.tracking_salt)},
    )

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_push" and body["message"]
    assert body["result"] is False and body["returnCode"] != "200"
    assert not TrackingEvent.objects.filter(order=order).exists()
    after = Order.objects.get(pk=order.pk)
    assert (after.carrier, after.tracking_state) == (order.carrier, order.tracking_state)


def test_a_correction_to_a_listed_carrier_is_still_applied(make_client, anon):
    buyer, seller, order_no = shipped(make_client)
    order = Order.objects.get(order_no=order_no)
    param = json.dumps(_push({}, autoCheck="1", comNew="zhongtong"), ensure_ascii=False)

    response = anon.client.post(
        f"/api/logistics/kuaidi100/notify?order={order_no}",
        {"param": param, "sign": push_sign(param=param, salt=order.tracking_salt)},
    )

    assert response.json()["returnCode"] == "200"
    assert Order.objects.get(pk=order.pk).carrier == "zhongtong"
