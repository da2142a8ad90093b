"""WeChat Pay v3 gateway against the sandbox: real request and response signatures, real
AES-256-GCM notifications, retries, refunds exactly once, fault injection."""

import base64
import json
import threading
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone

from marketplace.gateways import wechatpay
from sandbox import tasks
from sandbox import wechatpay as sandbox
from sandbox.models import (
    SandboxFault,
    SandboxKeys,
    SandboxNotification,
    SandboxRefund,
    SandboxTransaction,
)
from sandbox.transport import sandbox_session
from tests.conftest import assert_error
from tests.gateways import urls as receiver

pytestmark = pytest.mark.django_db

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
NOTIFY = "http://testserver/test/wechatpay/notify"
REFUND_NOTIFY = "http://testserver/test/wechatpay/refund-notify"


@pytest.fixture(autouse=True)
def _receiver(settings):
    settings.WECHATPAY_NOTIFY_URL = NOTIFY
    settings.WECHATPAY_REFUND_NOTIFY_URL = REFUND_NOTIFY
    receiver.received.clear()
    receiver.rejected.clear()
    receiver.answer["status"] = 204
    yield
    receiver.answer["status"] = 204


def _prepay(out_trade_no: str = "T20250101000001", total_fen: int = 12_345, **overrides) -> str:
    params = {
        "out_trade_no": out_trade_no,
        "description": "二手 iPhone 13",
        "total_fen": total_fen,
        "openid": OPENID,
        "time_expire": timezone.now() + timedelta(minutes=30),
        **overrides,
    }
    return wechatpay.prepay_jsapi(**params)


def _pay(anon, prepay_id: str):
    return anon.post("/sandbox/wechat/pay", {"prepay_id": prepay_id})


def _verify(public_pem: str, message: str, signature: str) -> None:
    load_pem_public_key(public_pem.encode()).verify(
        base64.b64decode(signature), message.encode(), padding.PKCS1v15(), hashes.SHA256()
    )


# --- prepay and the client's pay parameters ----------------------------------------------------


def test_pay_params_are_signed_with_the_merchant_key():
    prepay_id = _prepay()
    params = wechatpay.pay_params(prepay_id=prepay_id)

    assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["package"] == f"prepay_id={prepay_id}"
    assert params["signType"] == "RSA"
    message = "\n".join(
        [params["appId"], params["timeStamp"], params["nonceStr"], params["package"]]
    )
    keys = SandboxKeys.objects.get()
    _verify(keys.merchant_public_key, message + "\n", params["paySign"])
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidSignature
        _verify(keys.merchant_public_key, message.replace("prepay_id", "prepay_jd") + "\n",
                params["paySign"])  # fmt: skip


def test_same_prepay_twice_returns_the_same_prepay_id_and_other_parameters_are_refused():
    deadline = timezone.now() + timedelta(minutes=30)
    first = _prepay(time_expire=deadline)
    assert _prepay(time_expire=deadline) == first
    assert SandboxTransaction.objects.count() == 1

    with pytest.raises(wechatpay.PaymentGatewayError) as caught:
        _prepay(time_expire=deadline, total_fen=1)
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (
        400,
        "INVALID_REQUEST",
        False,
    )
    assert SandboxTransaction.objects.get().total_fen == 12_345


def test_prepay_checks_its_arguments_before_calling_wechat():
    with pytest.raises(ValueError):
        _prepay(total_fen=0)
    with pytest.raises(ValueError):
        _prepay(time_expire=timezone.now().replace(tzinfo=None) + timedelta(minutes=5))
    with pytest.raises(wechatpay.PaymentGatewayError) as caught:
        _prepay(time_expire=timezone.now() - timedelta(seconds=1))
    assert caught.value.code == "INVALID_REQUEST"
    assert not SandboxTransaction.objects.exists()


def test_sandbox_refuses_requests_with_a_bad_authorization_signature():
    sandbox.current_keys()
    body = json.dumps({"mchid": "1900000109"})
    timestamp = int(timezone.now().timestamp())
    serial = SandboxKeys.objects.get().merchant_serial_no
    response = sandbox_session().post(
        "https://api.mch.weixin.qq.com/v3/pay/transactions/out-trade-no/T1234567/close",
        data=body,
        headers={
            "Authorization": 'WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="N",'
            f'signature="Zm9yZ2Vk",timestamp="{timestamp}",serial_no="{serial}"',
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 401
    assert response.json()["code"] == "SIGN_ERROR"


# --- the payment notification round trip --------------------------------------------------------


@pytest.mark.urls("tests.gateways.urls")
def test_pay_delivers_a_signed_encrypted_notification_that_parses(anon):
    prepay_id = _prepay(out_trade_no="T20250101000002", total_fen=8_800)

    response = _pay(anon, prepay_id)

    assert response.status_code == 200, response.content
    assert response.json()["notification"]["acknowledged"] is True
    assert receiver.rejected == []
    [notification] = receiver.received
    assert notification.event_type == "TRANSACTION.SUCCESS"
    resource = notification.resource
    assert resource["out_trade_no"] == "T20250101000002"
    assert resource["trade_state"] == "SUCCESS"
    assert resource["amount"]["total"] == 8_800
    assert resource["amount"]["payer_total"] == 8_800
    assert resource["payer"]["openid"] == OPENID
    assert resource["transaction_id"].startswith("4200")
    # On the wire the resource is encrypted: neither the order number nor the openid shows.
    raw = json.loads(notification.raw)
    assert raw["resource"]["algorithm"] == "AEAD_AES_256_GCM"
    assert raw["resource"]["associated_data"] == "transaction"
    assert "T20250101000002" not in notification.raw and OPENID not in notification.raw

    row = SandboxNotification.objects.get()
    assert (row.attempts, row.last_status, row.target_url) == (1, 204, NOTIFY)
    assert row.acknowledged_at is not None

    queried = wechatpay.query_order(out_trade_no="T20250101000002")
    assert queried["trade_state"] == "SUCCESS"
    assert queried["transaction_id"] == resource["transaction_id"]


@pytest.mark.urls("tests.gateways.urls")
def test_unacknowledged_notification_is_retried_on_schedule_with_fresh_signatures(anon):
    receiver.answer["status"] = 500  # the merchant's endpoint is down
    prepay_id = _prepay(out_trade_no="T20250101000003")
    assert _pay(anon, prepay_id).json()["notification"]["acknowledged"] is False

    row = SandboxNotification.objects.get()
    assert (row.attempts, row.last_status, row.acknowledged_at) == (1, 500, None)
    waited = (row.next_attempt_at - timezone.now()).total_seconds()
    assert 0 < waited <= 15 * 0.01 + 1
    first_headers = row.last_headers

    # Not yet due: the pending sweep leaves it alone; forced, it retries.
    receiver.answer["status"] = 200
    row.next_attempt_at = timezone.now() + timedelta(hours=1)
    row.save()
    assert tasks.deliver_pending_notifications() == 0
    assert tasks.deliver_pending_notifications(force=True) == 1

    row.refresh_from_db()
    assert (row.attempts, row.last_status) == (2, 200)
    assert row.acknowledged_at is not None and row.next_attempt_at is None
    assert row.last_headers["Wechatpay-Nonce"] != first_headers["Wechatpay-Nonce"]
    assert len(receiver.received) == 2  # the same notification twice: receivers must dedupe
    assert receiver.received[0].id == receiver.received[1].id
    # Acknowledged notifications are never sent again.
    assert tasks.deliver_pending_notifications(force=True) == 0
    assert len(receiver.received) == 2


def test_retry_schedule_is_wechats_scaled_and_gives_up_after_fifteen_retries(settings):
    settings.SANDBOX_NOTIFY_SCHEDULE_SCALE = 1.0
    assert [tasks.retry_delay(n) for n in (1, 2, 3, 4, 15)] == [15, 15, 30, 180, 21600]
    assert sum(tasks.retry_delay(n) for n in range(1, 16)) == 86_640  # 24 h 4 min
    assert tasks.retry_delay(16) is None
    settings.SANDBOX_NOTIFY_SCHEDULE_SCALE = 0.01
    assert tasks.retry_delay(1) == pytest.approx(0.15)


def test_delivery_gives_up_after_the_last_retry():
    prepay_id = _prepay(out_trade_no="T20250101000004")
    # No receiver at this URL (the project's 404): every attempt fails.
    SandboxTransaction.objects.update(notify_url="http://testserver/nowhere")
    sandbox.pay_transaction(prepay_id=prepay_id)
    for _ in range(15):
        tasks.deliver_pending_notifications(force=True)
    row = SandboxNotification.objects.get()
    assert (row.attempts, row.last_status) == (16, 404)
    assert row.gave_up_at is not None and row.acknowledged_at is None
    assert tasks.deliver_pending_notifications(force=True) == 0
    assert SandboxNotification.objects.get().attempts == 16


# --- notification verification -----------------------------------------------------------------


@pytest.fixture
def stored_notification() -> SandboxNotification:
    """A real payment notification whose delivery failed, to replay by hand."""
    prepay_id = _prepay(out_trade_no="T20250101000005")
    SandboxTransaction.objects.update(notify_url="http://testserver/nowhere")
    sandbox.pay_transaction(prepay_id=prepay_id)
    return SandboxNotification.objects.get()


def test_stored_notification_parses_with_django_meta_headers(stored_notification):
    headers = sandbox.signed_headers(stored_notification.body)
    meta = {"HTTP_" + key.upper().replace("-", "_"): value for key, value in headers.items()}
    parsed = wechatpay.parse_notification(headers=meta, body=stored_notification.body.encode())
    assert parsed.resource["out_trade_no"] == "T20250101000005"
    assert parsed.id == json.loads(stored_notification.body)["id"]
    # The headers of the last delivery attempt verify too (within five minutes).
    again = wechatpay.parse_notification(
        headers=stored_notification.last_headers, body=stored_notification.body.encode()
    )
    assert again.resource == parsed.resource


def _tampered_amount(body: str) -> str:
    data = json.loads(body)
    data["summary"] = "支付成功!"
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _reencrypted_with_another_key(body: str) -> str:
    data = json.loads(body)
    data["resource"]["ciphertext"] = base64.b64encode(b"x" * 48).decode()
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize(
    "case, reason",
    [
        ("forged_signature", "bad_signature"),
        ("tampered_body", "bad_signature"),
        ("signed_but_undecryptable", "bad_signature"),
        ("stale", "stale"),
        ("future", "future_timestamp"),
        ("wrong_serial", "unknown_serial"),
        ("missing_signature", "missing_headers"),
        ("not_json", "malformed"),
        ("wrong_signature_type", "bad_signature"),
    ],
)
def test_bad_notifications_are_rejected(stored_notification, case, reason):
    body = stored_notification.body
    now = int(timezone.now().timestamp())
    if case == "forged_signature":
        headers = sandbox.signed_headers(body, private_pem=sandbox._pem_pair()[0])
    elif case == "tampered_body":
        headers = sandbox.signed_headers(body)
        body = _tampered_amount(body)
    elif case == "signed_but_undecryptable":
        body = _reencrypted_with_another_key(body)
        headers = sandbox.signed_headers(body)
    elif case == "stale":
        headers = sandbox.signed_headers(body, timestamp=now - 360)  # well past the 5 min skew
    elif case == "future":
        headers = sandbox.signed_headers(body, timestamp=now + 360)  # (1 s margins flaked)
    elif case == "wrong_serial":
        headers = sandbox.signed_headers(body, serial="PUB_KEY_ID_0000000000000000000000000000")
    elif case == "missing_signature":
        headers = sandbox.signed_headers(body)
        del headers["Wechatpay-Signature"]
    elif case == "not_json":
        body = "not json {"
        headers = sandbox.signed_headers(body)
    else:
        headers = {**sandbox.signed_headers(body), "Wechatpay-Signature-Type": "SM2"}

    with pytest.raises(wechatpay.NotificationRejected) as caught:
        wechatpay.parse_notification(headers=headers, body=body.encode())
    assert caught.value.reason == reason


def test_a_notification_just_inside_five_minutes_is_accepted(stored_notification):
    now = timezone.now()
    headers = sandbox.signed_headers(stored_notification.body, timestamp=int(now.timestamp()) - 299)
    parsed = wechatpay.parse_notification(
        headers=headers, body=stored_notification.body.encode(), now=now
    )
    assert parsed.event_type == "TRANSACTION.SUCCESS"


# --- query and close ----------------------------------------------------------------------------


def test_query_and_close_are_idempotent(anon):
    assert wechatpay.query_order(out_trade_no="T20250101000099") is None
    wechatpay.close_order(out_trade_no="T20250101000099")  # never created: nothing to close

    prepay_id = _prepay(out_trade_no="T20250101000006")
    assert wechatpay.query_order(out_trade_no="T20250101000006")["trade_state"] == "NOTPAY"
    wechatpay.close_order(out_trade_no="T20250101000006")
    wechatpay.close_order(out_trade_no="T20250101000006")
    assert wechatpay.query_order(out_trade_no="T20250101000006")["trade_state"] == "CLOSED"

    assert_error(_pay(anon, prepay_id), 409, "order_closed")
    with pytest.raises(wechatpay.PaymentGatewayError) as caught:
        _prepay(out_trade_no="T20250101000006")
    assert caught.value.code == "ORDER_CLOSED" and not caught.value.retryable


@pytest.mark.urls("tests.gateways.urls")
def test_closing_a_paid_order_raises_order_already_paid(anon):
    prepay_id = _prepay(out_trade_no="T20250101000007")
    assert _pay(anon, prepay_id).status_code == 200
    with pytest.raises(wechatpay.OrderAlreadyPaid) as caught:
        wechatpay.close_order(out_trade_no="T20250101000007")
    assert caught.value.retryable is False
    assert wechatpay.query_order(out_trade_no="T20250101000007")["trade_state"] == "SUCCESS"
    assert_error(_pay(anon, prepay_id), 409, "already_paid")


def test_user_side_pay_endpoint_validates_its_input(anon):
    assert_error(anon.post("/sandbox/wechat/pay", "{not json"), 400, "malformed_json")
    assert_error(anon.post("/sandbox/wechat/pay", {}), 422, "validation_error")
    assert_error(anon.post("/sandbox/wechat/pay", {"prepay_id": "wx-nope"}), 404, "not_found")


# --- refunds ------------------------------------------------------------------------------------


@pytest.fixture
def paid_order(anon) -> str:
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(receiver.answer, "status", 204)
        _pay(anon, _prepay(out_trade_no="T20250101000008", total_fen=10_000))
    return "T20250101000008"


@pytest.mark.urls("tests.gateways.urls")
def test_refund_with_the_same_out_refund_no_refunds_once_and_notifies(paid_order):
    args = {
        "out_refund_no": "R20250101000008",
        "out_trade_no": paid_order,
        "refund_fen": 10_000,
        "total_fen": 10_000,
        "reason": "卖家取消",
    }
    first = wechatpay.refund(**args)
    second = wechatpay.refund(**args)

    assert first["status"] == "PROCESSING"
    assert second["refund_id"] == first["refund_id"]
    assert SandboxRefund.objects.count() == 1
    assert wechatpay.query_refund(out_refund_no="R20250101000008")["status"] == "PROCESSING"
    assert wechatpay.query_order(out_trade_no=paid_order)["trade_state"] == "REFUND"

    receiver.received.clear()
    assert sandbox.settle_due_refunds(force=True) == 1
    [notification] = receiver.received
    assert notification.event_type == "REFUND.SUCCESS"
    resource = notification.resource
    assert resource["out_refund_no"] == "R20250101000008"
    assert resource["out_trade_no"] == paid_order
    assert resource["refund_status"] == "SUCCESS"
    assert resource["amount"] == {
        "total": 10_000,
        "refund": 10_000,
        "payer_total": 10_000,
        "payer_refund": 10_000,
    }
    assert json.loads(notification.raw)["resource"]["associated_data"] == "refund"
    assert SandboxNotification.objects.get(kind="refund").target_url == REFUND_NOTIFY

    assert wechatpay.query_refund(out_refund_no="R20250101000008")["status"] == "SUCCESS"
    assert sandbox.settle_due_refunds(force=True) == 0  # settled once
    assert wechatpay.refund(**args)["status"] == "SUCCESS"  # a late retry changes nothing
    assert SandboxRefund.objects.count() == 1


@pytest.mark.urls("tests.gateways.urls")
def test_refunds_never_exceed_what_was_paid(paid_order):
    wechatpay.refund(
        out_refund_no="R1", out_trade_no=paid_order, refund_fen=6_000, total_fen=10_000, reason=""
    )
    with pytest.raises(wechatpay.PaymentGatewayError) as caught:
        wechatpay.refund(
            out_refund_no="R2",
            out_trade_no=paid_order,
            refund_fen=5_000,
            total_fen=10_000,
            reason="",
        )
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (
        400,
        "INVALID_REQUEST",
        False,
    )
    with pytest.raises(wechatpay.PaymentGatewayError):
        wechatpay.refund(
            out_refund_no="R1",  # the same number with another amount
            out_trade_no=paid_order,
            refund_fen=4_000,
            total_fen=10_000,
            reason="",
        )
    assert list(SandboxRefund.objects.values_list("refund_fen", flat=True)) == [6_000]
    assert wechatpay.query_refund(out_refund_no="R-unknown") is None


def test_refund_of_an_unknown_or_unpaid_order_is_refused():
    _prepay(out_trade_no="T20250101000009")
    for out_trade_no, code in (
        ("T20250101000009", "INVALID_REQUEST"),
        ("T404", "RESOURCE_NOT_EXISTS"),
    ):
        with pytest.raises(wechatpay.PaymentGatewayError) as caught:
            wechatpay.refund(
                out_refund_no="R9", out_trade_no=out_trade_no, refund_fen=1, total_fen=12_345,
                reason="",
            )  # fmt: skip
        assert caught.value.code == code and not caught.value.retryable
    assert not SandboxRefund.objects.exists()


@pytest.mark.urls("tests.gateways.urls")
def test_refund_abnormal_fault_settles_abnormal(paid_order):
    sandbox.inject_fault(SandboxFault.REFUND_ABNORMAL)
    wechatpay.refund(
        out_refund_no="R3", out_trade_no=paid_order, refund_fen=100, total_fen=10_000, reason=""
    )
    receiver.received.clear()
    sandbox.settle_due_refunds(force=True)
    assert receiver.received[0].event_type == "REFUND.ABNORMAL"
    assert wechatpay.query_refund(out_refund_no="R3")["status"] == "ABNORMAL"


# --- faults and error mapping -------------------------------------------------------------------


def test_a_5xx_is_a_retryable_gateway_error_and_the_next_call_works():
    sandbox.inject_fault(SandboxFault.ERROR_500)
    with pytest.raises(wechatpay.PaymentGatewayError) as caught:
        _prepay(out_trade_no="T20250101000010")
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (
        500,
        "SYSTEM_ERROR",
        True,
    )
    assert not SandboxTransaction.objects.exists()
    assert _prepay(out_trade_no="T20250101000010").startswith("wx")


def test_a_timeout_is_retryable_and_a_lost_answer_is_recovered_by_repeating():
    sandbox.inject_fault(SandboxFault.TIMEOUT, path_contains="/jsapi")
    deadline = timezone.now() + timedelta(minutes=30)
    with pytest.raises(wechatpay.PaymentGatewayError) as caught:
        _prepay(out_trade_no="T20250101000011", time_expire=deadline)
    assert (caught.value.code, caught.value.retryable, caught.value.status) == (
        "TIMEOUT",
        True,
        None,
    )

    sandbox.inject_fault(SandboxFault.TIMEOUT_AFTER)
    with pytest.raises(wechatpay.PaymentGatewayError):
        _prepay(out_trade_no="T20250101000011", time_expire=deadline)
    created = SandboxTransaction.objects.get(out_trade_no="T20250101000011")
    assert _prepay(out_trade_no="T20250101000011", time_expire=deadline) == created.prepay_id


def test_a_response_with_a_bad_signature_is_refused():
    _prepay(out_trade_no="T20250101000012")
    sandbox.inject_fault(SandboxFault.BAD_SIGNATURE, path_contains="T20250101000012")
    with pytest.raises(wechatpay.PaymentGatewayError) as caught:
        wechatpay.query_order(out_trade_no="T20250101000012")
    assert caught.value.code == "INVALID_RESPONSE_SIGNATURE"
    assert caught.value.retryable is False
    assert wechatpay.query_order(out_trade_no="T20250101000012")["trade_state"] == "NOTPAY"


def test_faults_only_hit_matching_paths_and_can_be_cleared():
    sandbox.inject_fault(SandboxFault.ERROR_500, count=3, path_contains="/refund/")
    assert _prepay(out_trade_no="T20250101000013")
    assert SandboxFault.objects.get().remaining == 3
    sandbox.clear_faults()
    assert not SandboxFault.objects.exists()
    with pytest.raises(ValueError):
        sandbox.inject_fault("meteor_strike")


# --- keys and races (PostgreSQL) ----------------------------------------------------------------


def test_keys_are_created_once_and_survive_an_emptied_table():
    keys = sandbox.current_keys()
    assert sandbox.current_keys().pk == keys.pk == SandboxKeys.SINGLETON_PK
    SandboxKeys.objects.all().delete()
    # The process re-inserts the material it knows, so clients built before stay valid.
    assert sandbox.current_keys().platform_public_key == keys.platform_public_key
    assert _prepay(out_trade_no="T20250101000014")


def _in_threads(count: int, work) -> list:
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_use_creates_one_key_set():
    SandboxKeys.objects.all().delete()
    results = _in_threads(8, lambda _: sandbox.current_keys().platform_public_key_id)
    assert all(isinstance(value, str) for value in results), results
    assert len(set(results)) == 1
    assert SandboxKeys.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_refunds_never_exceed_the_total(anon):
    _pay(anon, _prepay(out_trade_no="T20250101000015", total_fen=10_000))

    def refund(index: int):
        return wechatpay.refund(
            out_refund_no=f"R15-{index}",
            out_trade_no="T20250101000015",
            refund_fen=6_000,
            total_fen=10_000,
            reason="",
        )

    results = _in_threads(6, refund)
    assert sum(isinstance(r, dict) for r in results) == 1, results
    assert all(
        isinstance(r, wechatpay.PaymentGatewayError) and r.code == "INVALID_REQUEST"
        for r in results
        if not isinstance(r, dict)
    )
    assert SandboxRefund.objects.count() == 1

    same = _in_threads(
        6,
        lambda _: wechatpay.refund(
            out_refund_no="R15-same",
            out_trade_no="T20250101000015",
            refund_fen=1_000,
            total_fen=10_000,
            reason="",
        )["refund_id"],
    )
    assert len(set(same)) == 1 and all(isinstance(r, str) for r in same), same
    assert SandboxRefund.objects.filter(out_refund_no="R15-same").count() == 1


# --- real HTTP delivery and production configuration --------------------------------------------


def test_http_transport_delivers_to_a_real_socket(settings, anon):
    """`make run` delivers over HTTP: a local server receives, verifies and acknowledges."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    got: list[tuple[dict, bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            # Verified in the test's thread: this one has no access to the test's database.
            got.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings.SANDBOX_CALLBACK_TRANSPORT = "http"
        settings.WECHATPAY_NOTIFY_URL = f"http://127.0.0.1:{server.server_port}/notify"
        prepay_id = _prepay(out_trade_no="T20250101000016")
        assert _pay(anon, prepay_id).json()["notification"]["acknowledged"] is True
    finally:
        server.shutdown()
        server.server_close()
    [(headers, body)] = got
    parsed = wechatpay.parse_notification(headers=headers, body=body)
    assert parsed.resource["out_trade_no"] == "T20250101000016"
    assert SandboxNotification.objects.get().last_status == 204


def test_unreachable_notify_url_counts_as_a_failed_attempt(settings):
    settings.SANDBOX_CALLBACK_TRANSPORT = "http"
    settings.WECHATPAY_NOTIFY_URL = "http://127.0.0.1:9/notify"  # discard port: refused
    sandbox.pay_transaction(prepay_id=_prepay(out_trade_no="T20250101000017"))
    row = SandboxNotification.objects.get()
    assert (row.attempts, row.last_status, row.acknowledged_at) == (1, None, None)
    assert row.last_error and row.next_attempt_at is not None


def test_production_credentials_come_from_settings(settings, tmp_path):
    settings.SANDBOX_ENABLED = False
    settings.WECHATPAY_PRIVATE_KEY = ""
    with pytest.raises(ImproperlyConfigured):
        wechatpay.client()

    keys = sandbox.current_keys()
    key_file = tmp_path / "apiclient_key.pem"
    key_file.write_text(keys.merchant_private_key)
    settings.WECHATPAY_MCHID = "1900000109"
    settings.WECHATPAY_PRIVATE_KEY = str(key_file)  # a path is read
    settings.WECHATPAY_CERT_SERIAL_NO = keys.merchant_serial_no
    settings.WECHATPAY_APIV3_KEY = keys.apiv3_key
    settings.WECHATPAY_PUBLIC_KEY = keys.platform_public_key  # PEM text is used as is
    settings.WECHATPAY_PUBLIC_KEY_ID = keys.platform_public_key_id
    params = wechatpay.pay_params(prepay_id="wx123")
    message = "\n".join([params[k] for k in ("appId", "timeStamp", "nonceStr", "package")])
    _verify(keys.merchant_public_key, message + "\n", params["paySign"])
