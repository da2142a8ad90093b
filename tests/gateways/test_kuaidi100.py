"""Kuaidi100 client against the sandbox: signed query, subscription, pushes, detection, faults.

This module is also the URLconf of its tests (pytest.mark.urls): the sandbox's user-side
endpoints plus a small callback that records the pushes the sandbox delivers in-process
(SANDBOX_CALLBACK_TRANSPORT = "django" in the test settings).
"""

import hashlib
import http.server
import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from marketplace.errors import InvalidInput
from marketplace.gateways import kuaidi100
from marketplace.gateways.kuaidi100 import Kuaidi100Error, PushRejected
from sandbox import kuaidi100 as sandbox
from sandbox.models import (
    SandboxShipment,
    SandboxTrackingPush,
    SandboxTrackingSubscription,
)
from tests.conftest import assert_error

# --- the test callback ------------------------------------------------------------------------

received: list[dict] = []
callback_behaviour = {"fail": False}


@csrf_exempt
def capture_push(request: HttpRequest, ref: str) -> JsonResponse:
    form = {key: values[-1] for key, values in parse_qs(request.body.decode("utf-8")).items()}
    received.append({"ref": ref, "form": form, "content_type": request.content_type})
    if callback_behaviour["fail"]:
        return JsonResponse({"result": False, "returnCode": "500", "message": "busy"}, status=500)
    return JsonResponse(kuaidi100.PUSH_ACK)


urlpatterns = [
    path("sandbox/", include("sandbox.urls")),
    path("test-hooks/kuaidi100/<str:ref>", capture_push),
]

pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db]

SALT = "per-order-salt-3f9a"
CALLBACK = "http://testserver/test-hooks/kuaidi100/{ref}"


@pytest.fixture(autouse=True)
def _reset_callback():
    received.clear()
    callback_behaviour["fail"] = False
    yield
    received.clear()


def subscribe(number: str, *, carrier: str = "zhongtong", ref: str = "o1", **kw) -> None:
    kuaidi100.subscribe(
        carrier_code=carrier,
        tracking_no=number,
        callback_url=CALLBACK.format(ref=ref),
        salt=kw.pop("salt", SALT),
        **kw,
    )


def advance(anon, number: str, **extra):
    return anon.post("/sandbox/kuaidi100/advance", {"tracking_no": number, **extra})


# --- query ------------------------------------------------------------------------------------


def test_signed_query_round_trip(anon):
    subscribe("75312345678901")
    for _ in range(3):
        assert advance(anon, "75312345678901").status_code == 200

    result = kuaidi100.query(carrier_code="zhongtong", tracking_no="75312345678901")

    assert result.carrier == "zhongtong"
    assert result.tracking_no == "75312345678901"
    assert result.state == kuaidi100.STATE_IN_TRANSIT
    assert result.is_signed is False
    assert [event.text for event in result.events] == [text for _, _, text in sandbox.SCRIPT[2::-1]]
    assert result.events[-1].location == "深圳市"
    times = [event.time for event in result.events]
    assert times == sorted(times, reverse=True) and len(set(times)) == 3
    assert all(moment.utcoffset() == timedelta(0) for moment in times)
    # Kuaidi100 writes China time: 8 hours ahead of the UTC we store.
    shipment = SandboxShipment.objects.get(tracking_no="75312345678901")
    china = datetime.strptime(shipment.events[0]["time"], "%Y-%m-%d %H:%M:%S")
    assert result.events[0].time == china.replace(tzinfo=UTC) - timedelta(hours=8)


def test_query_sign_is_md5_of_param_key_customer_uppercase():
    sign = kuaidi100.query_sign(param='{"com":"yunda","num":"1"}', key="k", customer="C")
    expected = hashlib.md5(b'{"com":"yunda","num":"1"}kC', usedforsecurity=False).hexdigest()
    expected = expected.upper()
    assert sign == expected


def test_query_with_a_wrong_key_is_refused(monkeypatch, anon):
    subscribe("75312345678902")
    advance(anon, "75312345678902")
    monkeypatch.setattr(kuaidi100, "credentials", lambda: ("SANDBOXCUSTOMER0000000000000001", "x"))

    with pytest.raises(Kuaidi100Error) as caught:
        kuaidi100.query(carrier_code="zhongtong", tracking_no="75312345678902")

    assert caught.value.return_code == "503"
    assert caught.value.retryable is False


def test_query_with_an_unknown_customer_is_refused(monkeypatch, settings):
    monkeypatch.setattr(kuaidi100, "credentials", lambda: ("SOMEONEELSE", settings.KUAIDI100_KEY))
    with pytest.raises(Kuaidi100Error) as caught:
        kuaidi100.query(carrier_code="zhongtong", tracking_no="75312345678902")
    assert caught.value.return_code == "601"
    assert caught.value.retryable is False


def test_sandbox_checks_the_sign_exactly(settings, anon):
    subscribe("75312345678903")
    advance(anon, "75312345678903")
    param = '{"com":"zhongtong","num":"75312345678903"}'
    good = kuaidi100.query_sign(
        param=param, key=settings.KUAIDI100_KEY, customer=settings.KUAIDI100_CUSTOMER
    )
    session = kuaidi100._session()

    def post(sign: str, body_param: str = param) -> dict:
        form = {"customer": settings.KUAIDI100_CUSTOMER, "param": body_param, "sign": sign}
        return session.post(kuaidi100.QUERY_URL, data=form, timeout=5).json()

    assert post(good)["message"] == "ok"
    assert post(good.lower())["returnCode"] == "503"  # Kuaidi100 wants it uppercase
    # The sign covers the exact string: the same JSON spaced differently is not the same param.
    assert post(good, '{"com": "zhongtong", "num": "75312345678903"}')["returnCode"] == "503"


def test_query_of_an_unknown_number_has_no_result_yet():
    with pytest.raises(Kuaidi100Error) as caught:
        kuaidi100.query(carrier_code="yunda", tracking_no="4312345678901")
    assert caught.value.return_code == "500"
    assert "查询无结果" in caught.value.message
    assert caught.value.retryable is True


def test_query_of_a_subscribed_number_before_pickup_has_no_result_yet():
    subscribe("75312345678904")
    with pytest.raises(Kuaidi100Error) as caught:
        kuaidi100.query(carrier_code="zhongtong", tracking_no="75312345678904")
    assert caught.value.return_code == "500"


def test_sf_express_needs_the_phone(anon):
    with pytest.raises(Kuaidi100Error) as caught:
        subscribe("SF1234567890123", carrier="shunfeng")
    assert caught.value.return_code == "700"
    subscribe("SF1234567890123", carrier="shunfeng", phone="13812345678")
    advance(anon, "SF1234567890123")

    with pytest.raises(Kuaidi100Error) as caught:
        kuaidi100.query(carrier_code="shunfeng", tracking_no="SF1234567890123")
    assert caught.value.return_code == "408"
    assert caught.value.retryable is False
    with pytest.raises(Kuaidi100Error) as caught:
        kuaidi100.query(carrier_code="shunfeng", tracking_no="SF1234567890123", phone="0000")
    assert caught.value.return_code == "408"

    # The last four digits are enough.
    result = kuaidi100.query(carrier_code="shunfeng", tracking_no="SF1234567890123", phone="5678")
    assert result.state == kuaidi100.STATE_PICKED_UP
    assert len(result.events) == 1


# --- subscribe and push -----------------------------------------------------------------------


def test_subscribe_then_advance_pushes_a_signed_update(anon):
    subscribe("YT1234567890123", carrier="yuantong", ref="order-42")

    response = advance(anon, "YT1234567890123")

    assert response.status_code == 200
    body = response.json()
    assert body["tracking_no"] == "YT1234567890123"
    assert body["state"] == 1 and body["events_count"] == 1
    assert body["pushed_to"] == [
        {
            "callback_url": CALLBACK.format(ref="order-42"),
            "status": "polling",
            "attempts": 1,
            "last_status": 200,
            "acknowledged": True,
        }
    ]
    assert len(received) == 1
    assert received[0]["ref"] == "order-42"
    assert received[0]["content_type"] == "application/x-www-form-urlencoded"
    form = received[0]["form"]
    assert set(form) == {"param", "sign"}

    push = kuaidi100.parse_push(form=form, salt=SALT)
    assert push.status == "polling"
    assert push.carrier == "yuantong" and push.tracking_no == "YT1234567890123"
    assert push.state == kuaidi100.STATE_PICKED_UP and push.is_signed is False
    assert [event.text for event in push.events] == [sandbox.SCRIPT[0][2]]
    assert push.events[0].time.tzinfo is not None
    # Compared case-insensitively, as Kuaidi100 documents.
    assert kuaidi100.parse_push(form={**form, "sign": form["sign"].lower()}, salt=SALT) == push


def test_a_forged_or_tampered_push_is_refused(anon):
    subscribe("YT1234567890124", carrier="yuantong")
    advance(anon, "YT1234567890124")
    form = received[0]["form"]

    with pytest.raises(PushRejected):
        kuaidi100.parse_push(form=form, salt="another-orders-salt")
    with pytest.raises(PushRejected):
        kuaidi100.parse_push(form={**form, "sign": "0" * 32}, salt=SALT)
    tampered = form["param"].replace('"state":"1"', '"state":"3"')
    assert tampered != form["param"]
    with pytest.raises(PushRejected):
        kuaidi100.parse_push(form={**form, "param": tampered}, salt=SALT)
    with pytest.raises(PushRejected):
        kuaidi100.parse_push(form={"param": form["param"]}, salt=SALT)
    with pytest.raises(PushRejected):
        kuaidi100.parse_push(form=form, salt="")


@pytest.mark.parametrize(
    "param",
    [
        "not json",
        "[]",
        '{"status":"weird","lastResult":{}}',
        '{"status":"polling","lastResult":'
        '{"state":"0","data":[{"time":"yesterday","context":"x"}]}}',
    ],
)
def test_a_correctly_signed_but_malformed_push_is_refused(param):
    form = {"param": param, "sign": kuaidi100.push_sign(param=param, salt=SALT)}
    with pytest.raises(PushRejected):
        kuaidi100.parse_push(form=form, salt=SALT)


def test_a_duplicate_subscription_counts_as_success():
    subscribe("JT1234567890123", carrier="jtexpress")
    subscribe("JT1234567890123", carrier="jtexpress")  # Kuaidi100 answers 501: no error

    assert (
        SandboxTrackingSubscription.objects.filter(
            shipment__tracking_no="JT1234567890123", is_active=True
        ).count()
        == 1
    )


@pytest.mark.parametrize(
    ("change", "return_code"),
    [
        ({"carrier": "nosuchcarrier"}, "701"),
        ({"carrier": "Bad Code"}, "702"),
        ({"callback_url": "ftp://example.com/x"}, "700"),
    ],
)
def test_subscribe_refusals_are_errors(change, return_code):
    with pytest.raises(Kuaidi100Error) as caught:
        kuaidi100.subscribe(
            carrier_code=change.get("carrier", "zhongtong"),
            tracking_no="75312345678905",
            callback_url=change.get("callback_url", CALLBACK.format(ref="x")),
            salt=SALT,
        )
    assert caught.value.return_code == return_code
    assert caught.value.retryable is False
    assert not SandboxTrackingSubscription.objects.exists()


def test_subscribe_with_a_wrong_key_is_refused(monkeypatch):
    monkeypatch.setattr(kuaidi100, "credentials", lambda: ("C", "wrong-key"))
    with pytest.raises(Kuaidi100Error) as caught:
        subscribe("75312345678906")
    assert caught.value.return_code == "600"
    assert caught.value.retryable is False


def test_every_subscriber_gets_the_push_signed_with_its_own_salt(anon):
    subscribe("75312345678907", ref="a", salt="salt-a")
    subscribe("75312345678907", carrier="yunda", ref="b", salt="salt-b")

    advance(anon, "75312345678907")

    by_ref = {item["ref"]: item["form"] for item in received}
    assert set(by_ref) == {"a", "b"}
    assert kuaidi100.parse_push(form=by_ref["a"], salt="salt-a").carrier == "zhongtong"
    assert kuaidi100.parse_push(form=by_ref["b"], salt="salt-b").carrier == "yunda"
    with pytest.raises(PushRejected):
        kuaidi100.parse_push(form=by_ref["a"], salt="salt-b")


def test_the_parcel_is_finally_signed_for_and_tracking_ends(anon):
    subscribe("75312345678908")
    states = [advance(anon, "75312345678908").json()["state"] for _ in sandbox.SCRIPT]

    assert states == [1, 0, 0, 0, 5, 3]
    final = kuaidi100.parse_push(form=received[-1]["form"], salt=SALT)
    assert final.status == "shutdown"
    assert final.is_signed is True and final.state == kuaidi100.STATE_SIGNED
    assert len(final.events) == len(sandbox.SCRIPT)
    assert "签收" in final.events[0].text
    result = kuaidi100.query(carrier_code="zhongtong", tracking_no="75312345678908")
    assert result.is_signed is True and result.events == final.events

    assert_error(advance(anon, "75312345678908"), 409, "already_signed")
    assert len(received) == len(sandbox.SCRIPT)


def test_abort_ends_the_subscription_and_allows_resubscribing(anon):
    subscribe("75312345678909", ref="first")
    advance(anon, "75312345678909")

    response = advance(anon, "75312345678909", status="abort")

    assert response.status_code == 200
    assert response.json()["pushed_to"][0]["status"] == "abort"
    push = kuaidi100.parse_push(form=received[-1]["form"], salt=SALT)
    assert push.status == "abort"
    assert push.state == kuaidi100.STATE_PICKED_UP and len(push.events) == 1
    # Nothing is pushed to an ended subscription...
    advance(anon, "75312345678909")
    assert len(received) == 2
    # ...and subscribing again is a new subscription, not a 501 duplicate.
    subscribe("75312345678909", ref="second")
    advance(anon, "75312345678909")
    assert [item["ref"] for item in received] == ["first", "first", "second"]
    assert len(kuaidi100.parse_push(form=received[-1]["form"], salt=SALT).events) == 3


def test_an_unacknowledged_push_is_retried_until_acknowledged(anon):
    subscribe("75312345678910")
    callback_behaviour["fail"] = True

    body = advance(anon, "75312345678910").json()

    assert body["pushed_to"][0]["acknowledged"] is False
    assert body["pushed_to"][0]["last_status"] == 500
    push = SandboxTrackingPush.objects.get()
    assert push.attempts == 1 and push.next_attempt_at > timezone.now()
    assert sandbox.retry_due_pushes() == 0  # not due yet

    callback_behaviour["fail"] = False
    SandboxTrackingPush.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert sandbox.retry_due_pushes() == 1

    push.refresh_from_db()
    assert push.attempts == 2 and push.acknowledged_at is not None and push.next_attempt_at is None
    assert len(received) == 2 and received[0]["form"] == received[1]["form"]
    assert sandbox.retry_due_pushes() == 0  # acknowledged: never again


def test_a_push_is_given_up_after_the_last_retry(anon):
    subscribe("75312345678911")
    callback_behaviour["fail"] = True
    advance(anon, "75312345678911")
    for _ in sandbox.RETRY_DELAYS:
        SandboxTrackingPush.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        sandbox.retry_due_pushes()

    push = SandboxTrackingPush.objects.get()
    assert push.attempts == len(sandbox.RETRY_DELAYS) + 1
    assert push.gave_up_at is not None and push.next_attempt_at is None


def test_advance_endpoint_rejects_bad_input(anon):
    assert_error(advance(anon, "NOSUCHNUMBER1"), 404, "unknown_tracking_no")
    assert_error(anon.post("/sandbox/kuaidi100/advance", {"tracking_no": "x"}), 422)
    assert_error(anon.post("/sandbox/kuaidi100/advance", {"tracking_no": 12345678}), 422)
    subscribe("75312345678912")
    assert_error(advance(anon, "75312345678912", status="updateall"), 422)
    assert_error(anon.post("/sandbox/kuaidi100/advance", "[1,2"), 400, "malformed_json")
    assert anon.get("/sandbox/kuaidi100/advance").status_code == 405
    assert SandboxShipment.objects.get().step == 0


# --- carrier detection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "codes"),
    [
        ("SF1234567890123", ["shunfeng"]),
        ("YT1234567890123", ["yuantong"]),
        ("JT0001234567890", ["jtexpress"]),
        ("773012345678901", ["shentong"]),
        ("753123456789", ["zhongtong", "yunda"]),
        ("4312345678901", ["zhongtong", "yunda"]),
        ("QQQQQQQQ", []),
    ],
)
def test_detect_carrier(number, codes):
    carriers = kuaidi100.detect_carrier(tracking_no=number)
    assert [carrier.code for carrier in carriers] == codes
    assert all(carrier.name == kuaidi100.CARRIERS[carrier.code] for carrier in carriers)


def test_detect_carrier_knows_a_subscribed_number_first():
    subscribe("4312345678902", carrier="yunda")
    codes = [carrier.code for carrier in kuaidi100.detect_carrier(tracking_no="4312345678902")]
    assert codes == ["yunda", "zhongtong"]


def test_detect_carrier_with_a_wrong_key_is_an_error(monkeypatch):
    monkeypatch.setattr(kuaidi100, "credentials", lambda: ("C", "wrong-key"))
    with pytest.raises(Kuaidi100Error) as caught:
        kuaidi100.detect_carrier(tracking_no="SF1234567890123")
    assert caught.value.return_code == "600"


# --- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["error_500", "timeout"])
def test_sandbox_faults_are_retryable_errors(kind):
    sandbox.inject_fault(kind, count=3)

    calls = [
        lambda: kuaidi100.query(carrier_code="zhongtong", tracking_no="75312345678913"),
        lambda: subscribe("75312345678913"),
        lambda: kuaidi100.detect_carrier(tracking_no="75312345678913"),
    ]
    for call in calls:
        with pytest.raises(Kuaidi100Error) as caught:
            call()
        assert caught.value.retryable is True
        assert caught.value.return_code in {"http_502", "network"}
    assert not SandboxTrackingSubscription.objects.exists()

    # The fault is spent: the next call goes through.
    subscribe("75312345678913")
    assert SandboxTrackingSubscription.objects.count() == 1


def test_a_fault_can_target_one_path():
    sandbox.inject_fault("error_500", path_contains="/autonumber/auto")
    subscribe("75312345678914")  # unaffected
    with pytest.raises(Kuaidi100Error):
        kuaidi100.detect_carrier(tracking_no="75312345678914")
    assert kuaidi100.detect_carrier(tracking_no="75312345678914")


def test_a_lost_subscribe_answer_is_safe_to_retry():
    sandbox.inject_fault("timeout_after", path_contains="poll.kuaidi100.com/poll")
    with pytest.raises(Kuaidi100Error) as caught:
        subscribe("75312345678915")
    assert caught.value.retryable is True
    # The subscription was made; retrying meets 501, which the client treats as success.
    subscribe("75312345678915")
    assert SandboxTrackingSubscription.objects.count() == 1


def test_a_fault_needs_a_kuaidi100_target():
    with pytest.raises(ValueError):
        sandbox.inject_fault("error_500", path_contains="")
    with pytest.raises(ValueError):
        sandbox.inject_fault("bad_signature")


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("sf1234567890", "SF1234567890"), (" 753123456789 ", "753123456789"), ("ABC123", "ABC123")],
)
def test_validate_tracking_no_accepts(value, expected):
    assert kuaidi100.validate_tracking_no(value) == expected


@pytest.mark.parametrize(
    "value", ["", "12345", "x" * 33, "SF-123456", "单号123456", None, 123456789, "SF 1234567"]
)
def test_validate_tracking_no_refuses(value):
    with pytest.raises(InvalidInput) as caught:
        kuaidi100.validate_tracking_no(value)
    assert caught.value.code == "invalid_tracking_no"


@pytest.mark.parametrize(("value", "expected"), [("shunfeng", "shunfeng"), ("JD", "jd")])
def test_validate_carrier_code_accepts(value, expected):
    assert kuaidi100.validate_carrier_code(value) == expected


@pytest.mark.parametrize("value", ["", "nosuchcarrier", "shun feng", "a" * 31, None, 7, "顺丰"])
def test_validate_carrier_code_refuses(value):
    with pytest.raises(InvalidInput) as caught:
        kuaidi100.validate_carrier_code(value)
    assert caught.value.code == "unknown_carrier"


def test_push_ack_is_what_kuaidi100_expects():
    assert json.loads(json.dumps(kuaidi100.PUSH_ACK)) == {
        "result": True,
        "returnCode": "200",
        "message": "成功",
    }


# --- the real HTTP transport ------------------------------------------------------------------


class _PushReceiver(http.server.BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", "0"))
        type(self).bodies.append(self.rfile.read(length))
        reply = json.dumps(kuaidi100.PUSH_ACK).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def push_server():
    _PushReceiver.bodies = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PushReceiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_pushes_go_over_real_http_when_so_configured(settings, anon, push_server):
    settings.SANDBOX_CALLBACK_TRANSPORT = "http"
    kuaidi100.subscribe(
        carrier_code="zhongtong",
        tracking_no="75312345678916",
        callback_url=f"{push_server}/notify?order=7",
        salt=SALT,
    )

    body = advance(anon, "75312345678916").json()

    assert body["pushed_to"][0]["acknowledged"] is True
    assert len(_PushReceiver.bodies) == 1
    form = {k: v[-1] for k, v in parse_qs(_PushReceiver.bodies[0].decode("utf-8")).items()}
    assert kuaidi100.parse_push(form=form, salt=SALT).state == kuaidi100.STATE_PICKED_UP


def test_an_unreachable_callback_is_an_unacknowledged_attempt(settings, anon):
    settings.SANDBOX_CALLBACK_TRANSPORT = "http"
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kuaidi100.subscribe(
        carrier_code="zhongtong",
        tracking_no="75312345678917",
        callback_url=f"http://127.0.0.1:{port}/notify",
        salt=SALT,
    )

    delivery = advance(anon, "75312345678917").json()["pushed_to"][0]

    assert delivery["acknowledged"] is False and delivery["last_status"] == 0
    assert SandboxTrackingPush.objects.get().next_attempt_at is not None


# --- races ------------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_subscriptions_make_one(settings):
    from django.db import connection

    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            subscribe("75312345678918")
        except BaseException as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert SandboxShipment.objects.count() == 1
    assert SandboxTrackingSubscription.objects.filter(is_active=True).count() == 1
