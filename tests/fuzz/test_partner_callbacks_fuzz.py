"""Fuzzing of the partner callbacks, through the HTTP stack: WeChat Pay's two notify endpoints
and Kuaidi100's push. The OpenAPI fuzzer cannot reach past their signatures (it knows neither
the platform key nor an order's salt); these tests sign what they generate, so the bodies
reach decryption, the schema and the actions. Every answer is the partner's documented reply
(204 / Kuaidi100's ack) or an API error body, never a 5xx.

Bounded by FUZZ_MAX_EXAMPLES like the OpenAPI fuzzer (here times 5: one operation each);
FUZZ_RANDOM=1 draws new cases instead of CI's fixed ones.
"""

import json
import os
import time
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.gateways import kuaidi100
from marketplace.models.fulfilment import TrackingEvent
from marketplace.models.orders import Order
from sandbox import wechatpay as sandbox
from tests.factories import AddressFactory
from tests.gateways.test_kuaidi100_push_schema import _json, _payloads
from tests.marketplace.fulfilment_helpers import TRACKING_NO, shipped
from tests.marketplace.order_helpers import listing_on_sale, place_order

EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "12")) * 5
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=os.environ.get("FUZZ_RANDOM") != "1",
)
NOTIFY_PATHS = ["/api/payments/wechat/notify", "/api/payments/wechat/refund-notify"]


def _assert_partner_answer(response, *, ack_status: int) -> dict | None:
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if response.status_code == ack_status:
        return json.loads(response.content) if response.content else None
    assert 400 <= response.status_code < 500, response.status_code
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert isinstance(body.get("code"), str) and isinstance(body.get("message"), str), body
    return body


# --- WeChat Pay ------------------------------------------------------------------------------

_text = st.text(max_size=30)


def _transaction(order_nos: list[str]):
    """A payment or refund resource as WeChat encrypts it, with any values in its fields."""
    return st.fixed_dictionaries(
        {},
        optional={
            "out_trade_no": st.sampled_from(order_nos) | _text,
            "out_refund_no": st.sampled_from([f"{no}R" for no in order_nos]) | _text,
            "transaction_id": _text | _json,
            "trade_state": st.sampled_from(["SUCCESS", "NOTPAY", "CLOSED"]) | _json,
            "refund_status": st.sampled_from(["SUCCESS", "ABNORMAL", "CLOSED"]) | _json,
            "amount": st.fixed_dictionaries(
                {},
                optional={
                    "total": st.integers() | _json,
                    "payer_total": st.integers() | _json,
                    "refund": st.integers() | _json,
                    "currency": st.sampled_from(["CNY", "USD"]) | _json,
                },
            )
            | _json,
            "payer": st.fixed_dictionaries({}, optional={"openid": _text | _json}) | _json,
            "mchid": _text | _json,
            "success_time": st.sampled_from(["2026-12-01T10:00:00+08:00", "soon"]) | _json,
        },
    )


def _signed_notification(order_nos: list[str]):
    return st.fixed_dictionaries(
        {
            "id": _text,
            "create_time": st.sampled_from(["2026-12-01T10:00:00+08:00"]) | _text,
            "event_type": st.sampled_from(["TRANSACTION.SUCCESS", "REFUND.SUCCESS", "REFUND.X"]),
            "resource_type": st.just("encrypt-resource"),
            "summary": _text,
            "resource": st.tuples(
                _transaction(order_nos) | _json, st.sampled_from(["transaction", "refund"])
            ).map(
                lambda pair: sandbox.encrypt_resource(json.dumps(pair[0]), associated_data=pair[1])
            ),
        }
    ).map(lambda value: json.dumps(value, ensure_ascii=False))


@pytest.fixture
def orders(db, make_client):
    buyer = make_client()
    address = AddressFactory(user=buyer.user, is_default=True)
    return [place_order(buyer, listing_on_sale(), address.pk).json()["order_no"] for _ in range(2)]


@pytest.mark.django_db
def test_wechat_notify_endpoints_answer_any_body_without_failing(anon, orders):
    @FUZZ
    @given(
        path=st.sampled_from(NOTIFY_PATHS),
        body=st.binary(max_size=300) | _json.map(lambda value: json.dumps(value).encode()),
        headers=st.dictionaries(
            st.sampled_from(["Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce",
                             "Wechatpay-Serial", "Wechatpay-Signature-Type"]),
            st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
        ),
        content_type=st.sampled_from(["application/json", "text/plain", "multipart/form-data"]),
    )  # fmt: skip
    def run(path, body, headers, content_type):
        response = anon.client.post(path, body, content_type=content_type, headers=headers)
        _assert_partner_answer(response, ack_status=204)
        assert response.status_code != 204  # nothing unsigned is acknowledged

    run()


@pytest.mark.django_db
def test_signed_wechat_notifications_with_any_resource_never_fail(anon, orders):
    statuses = []

    @FUZZ
    @given(path=st.sampled_from(NOTIFY_PATHS), data=st.data())
    def run(path, data):
        body = data.draw(_signed_notification(orders))
        headers = sandbox.signed_headers(body, timestamp=int(time.time()))
        response = anon.client.post(
            path, body.encode(), content_type="application/json", headers=headers
        )
        _assert_partner_answer(response, ack_status=204)
        statuses.append(response.status_code)

    run()
    # Past the signature into the actions (204), not only refusals.
    assert 204 in statuses, statuses


# --- Kuaidi100 -------------------------------------------------------------------------------

# Pushes shaped like Kuaidi100's, with any text in them: most are accepted, so the fuzzing
# reaches the action (storing events, correcting the carrier), not only the schema's refusals.
_kuaidi100_times = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2099, 12, 31)
).map(lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S"))
_well_formed_pushes = st.fixed_dictionaries(
    {
        "status": st.sampled_from(sorted(kuaidi100.PUSH_STATUSES)),
        "message": st.text(max_size=20),
        "lastResult": st.fixed_dictionaries(
            {
                "state": st.sampled_from(["0", "1", "3", "5", "14"]),
                "ischeck": st.sampled_from(["0", "1"]),
                "com": st.sampled_from(sorted(kuaidi100.CARRIERS)),
                "nu": st.just(TRACKING_NO),
                "data": st.lists(
                    st.fixed_dictionaries(
                        {"time": _kuaidi100_times, "context": st.text(max_size=60)},
                        optional={"location": st.text(max_size=20)},
                    ),
                    max_size=3,
                ),
            }
        ),
    },
    optional={
        "autoCheck": st.sampled_from(["0", "1"]),
        "comNew": st.sampled_from(["", *sorted(kuaidi100.CARRIERS)]),
    },
)


@pytest.mark.django_db(transaction=True)
def test_kuaidi100_pushes_answer_any_form_without_failing(anon, make_client):
    buyer, seller, order_no = shipped(make_client)
    order = Order.objects.get(order_no=order_no)
    url = f"/api/logistics/kuaidi100/notify?order={order_no}"

    def with_our_number(payload: dict) -> dict:
        last = payload.get("lastResult")
        if isinstance(last, dict):
            return {**payload, "lastResult": {**last, "nu": TRACKING_NO}}
        return payload

    answers = {"acknowledged": 0, "refused": 0}

    @FUZZ
    @given(
        signed=st.booleans(),
        payload=_well_formed_pushes | _payloads.map(with_our_number),
        extra=st.dictionaries(st.text(max_size=10), st.text(max_size=30), max_size=3),
    )
    def run(signed, payload, extra):
        param = json.dumps(payload, ensure_ascii=False)
        sign = kuaidi100.push_sign(param=param, salt=order.tracking_salt) if signed else "0" * 32
        response = anon.client.post(url, {**extra, "param": param, "sign": sign})
        body = _assert_partner_answer(response, ack_status=200)
        answers["acknowledged" if response.status_code == 200 else "refused"] += 1
        if response.status_code != 200:
            answers.setdefault("why", set()).add(body["message"][:60])
        if response.status_code == 200:
            assert body == kuaidi100.PUSH_ACK and signed
        elif body["code"] == "invalid_push":
            assert body["result"] is False and body["returnCode"] != "200"
        else:  # a raw NUL in a form field, refused by the middleware before the view
            assert body["code"] == "invalid_characters", body

    run()
    # The generator reaches past the schema into the action, not only into refusals.
    assert answers["acknowledged"] and answers["refused"], answers
    # What was stored is what the schema allows.
    for event in TrackingEvent.objects.filter(order=order):
        assert "\x00" not in event.text + event.location
        assert 2000 <= event.occurred_at.year <= 2100
    assert Order.objects.get(pk=order.pk).carrier in kuaidi100.CARRIERS
