"""Fake WeChat Pay merchant transfer (商家转账, user-confirmation mode), wire-compatible with
`wechatpayv3`'s mch_transfer_bills / _query / _cancel and signed like the rest of the fake.

A bill is created WAIT_USER_CONFIRM with a `package_info` for `wx.requestMerchantTransfer`;
`confirm_transfer` plays the user confirming (SUCCESS, or FAIL when
settings.SANDBOX_TRANSFER_OUTCOME is "FAIL"); the merchant may cancel an unconfirmed bill; one
left unconfirmed past settings.SANDBOX_TRANSFER_CONFIRM_SECONDS is closed (CANCELLED). Every
final state is sent as the signed, encrypted MCHTRANSFER.BILL.FINISHED notification, retried
as WeChat retries (sandbox/tasks.py).
"""

import base64
import re
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from sandbox.models import SandboxNotification, SandboxTransferBill
from sandbox.transport import SandboxRequest
from sandbox.wechatpay import (
    ApiError,
    _api,
    _create_notification,
    _deliver_later,
    _deliver_now,
    _json_object,
    _load_private,
    _positive_int,
    current_keys,
    wx_time,
)

OUT_BILL_NO = re.compile(r"^[0-9A-Za-z]{5,32}$")
REAL_NAME_FROM_FEN = 200_000  # 2,000 yuan: WeChat requires user_name from here
# WeChat refuses a user_name on transfers below 0.3 yuan and checks it from 2,000 yuan up.
ENCRYPTED_NAME_FROM_FEN = 30


class TransferRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _decrypt_name(ciphertext: str) -> str:
    """user_name arrives RSA-OAEP(SHA-1) encrypted with the platform public key."""
    try:
        plain = _load_private(current_keys().platform_private_key).decrypt(
            base64.b64decode(ciphertext),
            # WeChat's scheme for sensitive fields: RSA-OAEP with SHA-1.
            padding.OAEP(
                mgf=padding.MGF1(algorithm=hashes.SHA1()),  # noqa: S303
                algorithm=hashes.SHA1(),  # noqa: S303
                label=None,
            ),
        )
        return plain.decode("utf-8")
    except (ValueError, TypeError):
        raise ApiError(400, "PARAM_ERROR", "user_name 解密失败，请使用平台公钥加密") from None


def bill_payload(bill: SandboxTransferBill) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "mch_id": bill.mchid,
        "out_bill_no": bill.out_bill_no,
        "transfer_bill_no": bill.transfer_bill_no,
        "appid": bill.appid,
        "state": bill.state,
        "transfer_amount": bill.transfer_amount_fen,
        "transfer_remark": bill.transfer_remark,
        "openid": bill.openid,
        "create_time": wx_time(bill.created_at),
        "update_time": wx_time(bill.updated_at),
    }
    if bill.fail_reason:
        payload["fail_reason"] = bill.fail_reason
    if bill.user_name:
        payload["user_name"] = "*" * len(bill.user_name)
    return payload


def _notification_resource(bill: SandboxTransferBill) -> dict[str, Any]:
    resource = {
        "mchid": bill.mchid,
        "out_bill_no": bill.out_bill_no,
        "transfer_bill_no": bill.transfer_bill_no,
        "state": bill.state,
        "transfer_amount": bill.transfer_amount_fen,
        "openid": bill.openid,
        "create_time": wx_time(bill.created_at),
        "update_time": wx_time(bill.updated_at),
    }
    if bill.fail_reason:
        resource["fail_reason"] = bill.fail_reason
    return resource


@_api("POST", "/v3/fund-app/mch-transfer/transfer-bills")
def create_transfer(request: SandboxRequest) -> tuple[int, dict]:
    body = _json_object(request)
    if body.get("appid") != settings.WECHAT_APPID:
        raise ApiError(400, "PARAM_ERROR", "appid 与 mchid 不匹配")
    out_bill_no = body.get("out_bill_no")
    if not isinstance(out_bill_no, str) or not OUT_BILL_NO.match(out_bill_no):
        raise ApiError(400, "PARAM_ERROR", "out_bill_no 为 5-32 位数字或大小写字母")
    scene = body.get("transfer_scene_id")
    if not isinstance(scene, str) or not scene.isdigit():
        raise ApiError(400, "PARAM_ERROR", "transfer_scene_id 必填")
    if scene != settings.WECHATPAY_TRANSFER_SCENE_ID:
        raise ApiError(403, "NO_AUTH", "商户未开通该转账场景")
    infos = body.get("transfer_scene_report_infos")
    if (
        not isinstance(infos, list)
        or not infos
        or not all(
            isinstance(i, dict) and i.get("info_type") and i.get("info_content") for i in infos
        )
    ):
        raise ApiError(400, "PARAM_ERROR", "transfer_scene_report_infos 须按场景报备")
    amount = body.get("transfer_amount")
    if not _positive_int(amount):
        raise ApiError(400, "PARAM_ERROR", "transfer_amount 必须是大于 0 的整数（分）")
    openid = body.get("openid")
    if not isinstance(openid, str) or not openid:
        raise ApiError(400, "PARAM_ERROR", "openid 必填")
    remark = body.get("transfer_remark")
    if not isinstance(remark, str) or not 0 < len(remark) <= 32:
        raise ApiError(400, "PARAM_ERROR", "transfer_remark 必填，不超过 32 个字符")
    notify_url = body.get("notify_url", "")
    if not isinstance(notify_url, str) or (
        notify_url and not re.match(r"^https?://\S{1,248}$", notify_url)
    ):
        raise ApiError(400, "PARAM_ERROR", "notify_url 必须是 http(s) 地址")
    user_name = ""
    if body.get("user_name"):
        if amount < ENCRYPTED_NAME_FROM_FEN:
            raise ApiError(400, "PARAM_ERROR", "转账金额小于 0.3 元时不支持传入收款用户姓名")
        if request.headers.get("Wechatpay-Serial") != current_keys().platform_public_key_id:
            raise ApiError(400, "PARAM_ERROR", "加密敏感信息须带 Wechatpay-Serial")
        user_name = _decrypt_name(str(body["user_name"]))
    if amount >= REAL_NAME_FROM_FEN and not user_name:
        raise ApiError(400, "PARAM_ERROR", "转账金额 >= 2000 元时，收款用户姓名必填")
    fingerprint = {
        key: body.get(key)
        for key in ("appid", "transfer_scene_id", "openid", "transfer_amount", "transfer_remark",
                    "notify_url")
    } | {"user_name": user_name}  # fmt: skip
    mchid = settings.WECHATPAY_MCHID
    try:
        with transaction.atomic():
            bill = SandboxTransferBill.objects.create(
                mchid=mchid,
                appid=body["appid"],
                out_bill_no=out_bill_no,
                transfer_bill_no="1330" + "".join(secrets.choice("0123456789") for _ in range(36)),
                transfer_scene_id=scene,
                openid=openid,
                user_name=user_name,
                transfer_amount_fen=amount,
                transfer_remark=remark,
                notify_url=notify_url,
                fingerprint=fingerprint,
                package_info="ABBQO+oYAAABAAAAAAAk" + secrets.token_urlsafe(36),
                expires_at=timezone.now()
                + timedelta(seconds=settings.SANDBOX_TRANSFER_CONFIRM_SECONDS),
            )
    except IntegrityError:
        bill = SandboxTransferBill.objects.get(mchid=mchid, out_bill_no=out_bill_no)
        if bill.fingerprint != fingerprint:
            raise ApiError(400, "INVALID_REQUEST", "商户单号重复，且请求参数与原单不一致") from None
    answer = {
        "out_bill_no": bill.out_bill_no,
        "transfer_bill_no": bill.transfer_bill_no,
        "create_time": wx_time(bill.created_at),
        "state": bill.state,
    }
    if bill.state == SandboxTransferBill.WAIT_USER_CONFIRM:
        answer["package_info"] = bill.package_info
    if bill.fail_reason:
        answer["fail_reason"] = bill.fail_reason
    return 200, answer


def _bill_or_404(**lookup: str) -> SandboxTransferBill:
    bill = SandboxTransferBill.objects.filter(mchid=settings.WECHATPAY_MCHID, **lookup).first()
    if bill is None:
        raise ApiError(404, "NOT_FOUND", "记录不存在")
    return bill


@_api("GET", "/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}")
def query_by_out_bill_no(request: SandboxRequest) -> tuple[int, dict]:
    bill = _bill_or_404(out_bill_no=unquote(request.path_params["out_bill_no"]))
    # An expired bill closes when looked at; its notification goes out later, never while the
    # caller's query is on the stack.
    expire_transfer(bill_pk=bill.pk, deliver_inline=False)
    bill.refresh_from_db()
    return 200, bill_payload(bill)


@_api("GET", "/v3/fund-app/mch-transfer/transfer-bills/transfer-bill-no/{transfer_bill_no}")
def query_by_transfer_bill_no(request: SandboxRequest) -> tuple[int, dict]:
    bill = _bill_or_404(transfer_bill_no=unquote(request.path_params["transfer_bill_no"]))
    expire_transfer(bill_pk=bill.pk, deliver_inline=False)
    bill.refresh_from_db()
    return 200, bill_payload(bill)


@_api("POST", "/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}/cancel")
def cancel(request: SandboxRequest) -> tuple[int, dict]:
    found = _bill_or_404(out_bill_no=unquote(request.path_params["out_bill_no"]))
    with transaction.atomic():
        bill = SandboxTransferBill.objects.select_for_update().get(pk=found.pk)
        if bill.state in (SandboxTransferBill.SUCCESS, SandboxTransferBill.FAIL):
            raise ApiError(400, "INVALID_REQUEST", "转账单已终结，不可撤销")
        notification = None
        if bill.state != SandboxTransferBill.CANCELLED:
            notification = _finish(bill, SandboxTransferBill.CANCELLED, fail_reason="")
    if notification is not None:
        _deliver_later(notification)
    # WeChat answers CANCELING; the final CANCELLED comes by notification and query.
    return 200, {
        "out_bill_no": bill.out_bill_no,
        "transfer_bill_no": bill.transfer_bill_no,
        "state": "CANCELING",
        "update_time": wx_time(bill.updated_at),
    }


def _finish(
    bill: SandboxTransferBill, state: str, *, fail_reason: str
) -> SandboxNotification | None:
    """A locked bill reaches its final state; returns the notification to send, if any."""
    bill.state = state
    bill.fail_reason = fail_reason
    bill.finished_at = timezone.now()
    bill.save(update_fields=["state", "fail_reason", "finished_at", "updated_at"])
    if not bill.notify_url:
        return None
    return _create_notification(
        kind=SandboxNotification.KIND_TRANSFER,
        event_type="MCHTRANSFER.BILL.FINISHED",
        summary="商家转账单据终态通知",
        target_url=bill.notify_url,
        out_trade_no=bill.out_bill_no,
        resource=_notification_resource(bill),
    )


def confirm_transfer(*, package_info: str) -> SandboxTransferBill:
    """The user confirms receipt in wx.requestMerchantTransfer: SUCCESS (or FAIL when
    settings.SANDBOX_TRANSFER_OUTCOME is "FAIL"), then the notification is sent."""
    with transaction.atomic():
        bill = (
            SandboxTransferBill.objects.select_for_update()
            .filter(package_info=package_info)
            .first()
        )
        if bill is None:
            raise TransferRefused("not_found", "No transfer has this package_info.")
        if bill.state != SandboxTransferBill.WAIT_USER_CONFIRM:
            raise TransferRefused("not_confirmable", f"The transfer is {bill.state}.")
        if bill.expires_at <= timezone.now():
            raise TransferRefused("expired", "The confirmation window has passed.")
        if settings.SANDBOX_TRANSFER_OUTCOME == "FAIL":
            notification = _finish(
                bill, SandboxTransferBill.FAIL, fail_reason="PAYEE_ACCOUNT_ABNORMAL"
            )
        else:
            notification = _finish(bill, SandboxTransferBill.SUCCESS, fail_reason="")
    if notification is not None:
        _deliver_now(notification)
    bill.refresh_from_db()
    return bill


def expire_transfer(*, bill_pk: int, deliver_inline: bool = True) -> bool:
    """Closes an unconfirmed bill whose window has passed (CANCELLED) and notifies; idempotent."""
    with transaction.atomic():
        bill = SandboxTransferBill.objects.select_for_update().filter(pk=bill_pk).first()
        if (
            bill is None
            or bill.state != SandboxTransferBill.WAIT_USER_CONFIRM
            or bill.expires_at > timezone.now()
        ):
            return False
        notification = _finish(bill, SandboxTransferBill.CANCELLED, fail_reason="")
    if notification is not None:
        (_deliver_now if deliver_inline else _deliver_later)(notification)
    return True


def expire_due_transfers() -> int:
    due = SandboxTransferBill.objects.filter(
        state=SandboxTransferBill.WAIT_USER_CONFIRM, expires_at__lte=timezone.now()
    )
    return sum(expire_transfer(bill_pk=pk) for pk in list(due.values_list("pk", flat=True)))
