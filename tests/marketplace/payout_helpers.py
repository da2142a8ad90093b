"""Helpers for the payout tests: a withdrawal to the WeChat balance through the API, the user's
confirmation through the sandbox, and WeChat's notification re-sent or forged."""

from marketplace.models.wallet import Withdrawal
from sandbox.models import SandboxNotification
from sandbox.wechatpay import _create_notification, signed_headers
from tests.conftest import ApiClient

NOTIFY_PATH = "/api/payments/wechat/transfer-notify"


def withdraw_to_wechat(client: ApiClient, amount: int, **extra) -> dict:
    response = client.post(
        "/api/wallet/withdrawals", {"amount": amount, "to": "wechat_balance", **extra}
    )
    assert response.status_code == 201, response.content
    return response.json()


def confirm_in_wechat(client: ApiClient, withdrawal_id: int) -> dict:
    """The seller taps confirm in wx.requestMerchantTransfer (the sandbox plays WeChat)."""
    shown = client.get(f"/api/wallet/withdrawals/{withdrawal_id}").json()
    package_info = shown["transfer"]["package_info"]
    assert package_info, shown
    confirmed = client.client.post(
        "/sandbox/wechat/confirm-transfer",
        {"package_info": package_info},
        content_type="application/json",
    )
    assert confirmed.status_code == 200, confirmed.content
    return confirmed.json()


def last_transfer_notification() -> SandboxNotification:
    return SandboxNotification.objects.filter(kind=SandboxNotification.KIND_TRANSFER).latest("id")


def post_notification(client: ApiClient, body: str, headers: dict[str, str]):
    return client.client.post(
        NOTIFY_PATH, body.encode("utf-8"), content_type="application/json", headers=headers
    )


def crafted_notification(withdrawal: Withdrawal, **resource_changes) -> str:
    """A notification body WeChat could have sent for this withdrawal's transfer, with the
    resource fields changed as given (encrypted with the real APIv3 key)."""
    transfer = withdrawal.transfer
    resource = {
        "mchid": "1900000109",
        "out_bill_no": transfer.out_bill_no,
        "transfer_bill_no": transfer.transfer_bill_no,
        "state": "SUCCESS",
        "transfer_amount": transfer.amount_fen,
        "openid": transfer.openid,
        "create_time": "2026-12-01T10:00:00+08:00",
        "update_time": "2026-12-01T10:00:05+08:00",
    }
    resource.update(resource_changes)
    notification = _create_notification(
        kind=SandboxNotification.KIND_TRANSFER,
        event_type="MCHTRANSFER.BILL.FINISHED",
        summary="商家转账单据终态通知",
        target_url="http://testserver" + NOTIFY_PATH,
        out_trade_no=transfer.out_bill_no,
        resource=resource,
    )
    body = notification.body
    notification.delete()  # only its body is wanted; the sandbox must not deliver it
    return body


def fresh_headers(body: str) -> dict[str, str]:
    return signed_headers(body)
