"""Fake WeChat Pay API v3 (api.mch.weixin.qq.com), wire-compatible with `wechatpayv3`.

What it checks and signs, as WeChat Pay does:
- every request's `Authorization: WECHATPAY2-SHA256-RSA2048 ...` header, RSA-SHA256 over
  `METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n` with the merchant key (401 SIGN_ERROR);
- every response carries `Wechatpay-Timestamp/-Nonce/-Signature/-Serial`, RSA-SHA256 over
  `TIMESTAMP\\nNONCE\\nBODY\\n` with the platform private key, which the client verifies with the
  platform public key it is configured with (public-key mode);
- notifications are AES-256-GCM encrypted with the APIv3 key and signed the same way, and are
  retried on WeChat's schedule until the notify URL answers 200/204 (tasks.py).

Error codes follow WeChat's v3 conventions: 400 PARAM_ERROR (malformed), 400 INVALID_REQUEST
(well-formed but against the rules: reused out_trade_no with other parameters, refund above what
is left), 400 ORDERPAID / ORDER_CLOSED, 404 ORDER_NOT_EXIST / RESOURCE_NOT_EXISTS, 500
SYSTEM_ERROR. Fault injection (`inject_fault`) is described in docs/sandbox.md.
"""

import base64
import functools
import json
import logging
import re
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from project.tasking import enqueue
from sandbox.models import (
    SandboxFault,
    SandboxKeys,
    SandboxNotification,
    SandboxRefund,
    SandboxTransaction,
)
from sandbox.transport import SandboxRequest, SandboxResponse, route

logger = logging.getLogger("sandbox.wechatpay")

HOST = "api.mch.weixin.qq.com"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
PREPAY_TTL = timedelta(hours=2)
# WeChat refuses requests whose signed timestamp is this far from its clock.
CLOCK_SKEW = timedelta(minutes=5)
CHINA = ZoneInfo("Asia/Shanghai")
OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
_AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')


# --- keys ---------------------------------------------------------------------------------------

# Key material this process generated or read: re-inserted if the row disappears (the test
# database is emptied between tests), so clients built earlier in this process stay valid.
_material: dict[str, str] | None = None


def _pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def _fresh_material() -> dict[str, str]:
    merchant_private, merchant_public = _pem_pair()
    platform_private, platform_public = _pem_pair()
    return {
        "merchant_private_key": merchant_private,
        "merchant_public_key": merchant_public,
        "merchant_serial_no": secrets.token_hex(20).upper(),
        "platform_private_key": platform_private,
        "platform_public_key": platform_public,
        "platform_public_key_id": "PUB_KEY_ID_"
        + "".join(secrets.choice("0123456789") for _ in range(28)),
        # The APIv3 key is 32 ASCII characters: AES-256 uses its bytes as the key.
        "apiv3_key": secrets.token_hex(16),
    }


def current_keys() -> SandboxKeys:
    """The one SandboxKeys row, created race-safely on first use by whichever process wins."""
    global _material
    found = SandboxKeys.objects.filter(pk=SandboxKeys.SINGLETON_PK).first()
    if found is None:
        material = _material or _fresh_material()
        try:
            with transaction.atomic():
                found = SandboxKeys.objects.create(pk=SandboxKeys.SINGLETON_PK, **material)
        except IntegrityError:
            # Another process inserted its keys first: everyone uses the winner's.
            found = SandboxKeys.objects.get(pk=SandboxKeys.SINGLETON_PK)
    _material = {name: getattr(found, name) for name in _KEY_FIELDS}
    return found


_KEY_FIELDS = (
    "merchant_private_key",
    "merchant_public_key",
    "merchant_serial_no",
    "platform_private_key",
    "platform_public_key",
    "platform_public_key_id",
    "apiv3_key",
)


# Parsing (and validating) an RSA private key costs milliseconds; the sandbox signs every answer.
@functools.lru_cache(maxsize=8)
def _load_private(pem: str) -> rsa.RSAPrivateKey:
    return serialization.load_pem_private_key(pem.encode(), password=None)


@functools.lru_cache(maxsize=8)
def _load_public(pem: str) -> rsa.RSAPublicKey:
    return serialization.load_pem_public_key(pem.encode())


def rsa_sign(private_pem: str, message: str) -> str:
    signature = _load_private(private_pem).sign(
        message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256()
    )
    return base64.b64encode(signature).decode()


def rsa_verify(public_pem: str, message: str, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        _load_public(public_pem).verify(
            signature, message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256()
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def signed_headers(
    body: str,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
    private_pem: str | None = None,
    serial: str | None = None,
) -> dict[str, str]:
    """WeChat Pay's response/notification headers for `body`, signed with the platform key.

    Tests pass another `private_pem` or `serial` to forge, or an old `timestamp` to replay.
    """
    keys = current_keys()
    timestamp = int(timezone.now().timestamp()) if timestamp is None else timestamp
    nonce = nonce or secrets.token_hex(16).upper()
    signature = rsa_sign(
        private_pem or keys.platform_private_key, f"{timestamp}\n{nonce}\n{body}\n"
    )
    return {
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": signature,
        "Wechatpay-Serial": serial or keys.platform_public_key_id,
        "Wechatpay-Signature-Type": SIGNATURE_TYPE,
    }


def encrypt_resource(plaintext: str, *, associated_data: str) -> dict[str, str]:
    keys = current_keys()
    nonce = secrets.token_hex(6)  # 12 ASCII characters: GCM's 96-bit nonce
    ciphertext = AESGCM(keys.apiv3_key.encode()).encrypt(
        nonce.encode(), plaintext.encode("utf-8"), associated_data.encode()
    )
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(ciphertext).decode(),
        "nonce": nonce,
        "associated_data": associated_data,
        "original_type": associated_data,
    }


def wx_time(moment: datetime) -> str:
    """RFC 3339 in China time, as WeChat Pay writes times (2018-06-08T10:34:56+08:00)."""
    return moment.astimezone(CHINA).isoformat(timespec="seconds")


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


# --- fault injection ----------------------------------------------------------------------------


def inject_fault(kind: str, *, count: int = 1, path_contains: str = "") -> SandboxFault:
    """Make the next `count` WeChat Pay calls (whose path contains `path_contains`) misbehave."""
    if kind not in dict(SandboxFault.KIND_CHOICES):
        raise ValueError(f"unknown sandbox fault {kind!r}")
    return SandboxFault.objects.create(kind=kind, remaining=count, path_contains=path_contains)


def clear_faults() -> None:
    SandboxFault.objects.all().delete()


def take_fault(*, path: str, kinds: tuple[str, ...]) -> str | None:
    """Consume one armed fault of these kinds matching `path`; None when there is none."""
    if not SandboxFault.objects.filter(kind__in=kinds, remaining__gt=0).exists():
        return None
    with transaction.atomic():
        for fault in (
            SandboxFault.objects.select_for_update()
            .filter(kind__in=kinds, remaining__gt=0)
            .order_by("id")
        ):
            if fault.path_contains in path:
                fault.remaining -= 1
                fault.save(update_fields=["remaining"])
                return fault.kind
    return None


# --- API plumbing -------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _signed_response(status: int, body: dict | None, *, forge: bool = False) -> SandboxResponse:
    text = "" if body is None else _dumps(body)
    forged_key = _pem_pair()[0] if forge else None
    headers = signed_headers(text, private_pem=forged_key)
    headers["Request-ID"] = secrets.token_hex(16)
    return SandboxResponse(status, text.encode("utf-8"), headers)


def _check_authorization(request: SandboxRequest, keys: SandboxKeys) -> None:
    scheme, _, params = request.headers.get("Authorization", "").partition(" ")
    if scheme != SIGNATURE_TYPE:
        raise ApiError(401, "SIGN_ERROR", "Authorization 认证类型错误")
    fields = dict(_AUTH_PARAM.findall(params))
    if fields.get("mchid") != settings.WECHATPAY_MCHID:
        raise ApiError(401, "SIGN_ERROR", "商户号与签名信息不匹配")
    if fields.get("serial_no") != keys.merchant_serial_no:
        raise ApiError(401, "SIGN_ERROR", "商户证书序列号有误")
    try:
        timestamp = int(fields.get("timestamp", ""))
    except ValueError:
        raise ApiError(401, "SIGN_ERROR", "时间戳格式错误") from None
    if abs(timezone.now().timestamp() - timestamp) > CLOCK_SKEW.total_seconds():
        raise ApiError(401, "SIGN_ERROR", "请求的时间戳已过期")
    path = urlsplit(request.url).path + (f"?{request.raw_query}" if request.raw_query else "")
    body = request.body.decode("utf-8", errors="replace")
    message = f"{request.method}\n{path}\n{timestamp}\n{fields.get('nonce_str', '')}\n{body}\n"
    if not rsa_verify(keys.merchant_public_key, message, fields.get("signature", "")):
        raise ApiError(401, "SIGN_ERROR", "签名错误")
    serial = request.headers.get("Wechatpay-Serial")
    if serial and serial != keys.platform_public_key_id:
        raise ApiError(400, "PARAM_ERROR", "Wechatpay-Serial 不是有效的平台公钥 ID")


ApiHandler = Callable[[SandboxRequest], tuple[int, dict | None]]
API_FAULTS = (
    SandboxFault.ERROR_500,
    SandboxFault.TIMEOUT,
    SandboxFault.TIMEOUT_AFTER,
    SandboxFault.BAD_SIGNATURE,
)


def _api(method: str, path: str) -> Callable[[ApiHandler], ApiHandler]:
    """Register a WeChat Pay route: faults, request authentication, signed response."""

    def register(handler: ApiHandler) -> ApiHandler:
        def serve(request: SandboxRequest) -> SandboxResponse:
            fault = take_fault(path=request.path, kinds=API_FAULTS)
            if fault == SandboxFault.TIMEOUT:
                raise requests.exceptions.ReadTimeout("sandbox: injected timeout")
            if fault == SandboxFault.ERROR_500:
                return _signed_response(500, {"code": "SYSTEM_ERROR", "message": "系统繁忙"})
            try:
                _check_authorization(request, current_keys())
                status, body = handler(request)
            except ApiError as exc:
                status, body = exc.status, {"code": exc.code, "message": exc.message}
            if fault == SandboxFault.TIMEOUT_AFTER:
                # The work is done and committed; only the answer is lost on the way back.
                raise requests.exceptions.ReadTimeout("sandbox: injected timeout after handling")
            return _signed_response(status, body, forge=fault == SandboxFault.BAD_SIGNATURE)

        route(HOST, method, path)(serve)
        return handler

    return register


def _json_object(request: SandboxRequest) -> dict:
    try:
        body = request.json()
    except ValueError:
        raise ApiError(400, "PARAM_ERROR", "请求体不是合法的 JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "PARAM_ERROR", "请求体必须是 JSON 对象")
    return body


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_mchid(value: Any) -> None:
    if value != settings.WECHATPAY_MCHID:
        raise ApiError(400, "PARAM_ERROR", "mchid 与请求商户不一致")


# --- transactions -------------------------------------------------------------------------------


def transaction_payload(tx: SandboxTransaction) -> dict:
    payload: dict[str, Any] = {
        "appid": tx.appid,
        "mchid": tx.mchid,
        "out_trade_no": tx.out_trade_no,
        "trade_type": "JSAPI",
        "trade_state": tx.trade_state,
        "trade_state_desc": {
            SandboxTransaction.NOTPAY: "订单未支付",
            SandboxTransaction.SUCCESS: "支付成功",
            SandboxTransaction.CLOSED: "订单已关闭",
            SandboxTransaction.REFUND: "转入退款",
        }[tx.trade_state],
        "attach": "",
        "amount": {"total": tx.total_fen, "currency": tx.currency, "payer_currency": "CNY"},
        "payer": {"openid": tx.openid},
    }
    if tx.transaction_id:
        payload.update(
            transaction_id=tx.transaction_id,
            bank_type="OTHERS",
            success_time=wx_time(tx.success_time),
        )
        payload["amount"]["payer_total"] = tx.payer_total_fen
    return payload


def _prepay_id() -> str:
    return "wx" + timezone.now().astimezone(CHINA).strftime("%d%H%M%S") + secrets.token_hex(13)


@_api("POST", "/v3/pay/transactions/jsapi")
def jsapi_prepay(request: SandboxRequest) -> tuple[int, dict]:
    body = _json_object(request)
    if body.get("appid") != settings.WECHAT_APPID:
        raise ApiError(400, "PARAM_ERROR", "appid 与 mchid 不匹配")
    _check_mchid(body.get("mchid"))
    description = body.get("description")
    if not isinstance(description, str) or not 0 < len(description) <= 127:
        raise ApiError(400, "PARAM_ERROR", "description 必填，不超过 127 个字符")
    out_trade_no = body.get("out_trade_no")
    if not isinstance(out_trade_no, str) or not OUT_TRADE_NO.match(out_trade_no):
        raise ApiError(400, "PARAM_ERROR", "out_trade_no 为 6-32 位数字、大小写字母或_-|*")
    amount = body.get("amount")
    if not isinstance(amount, dict) or not _positive_int(amount.get("total")):
        raise ApiError(400, "PARAM_ERROR", "amount.total 必须是大于 0 的整数（分）")
    if amount.get("currency", "CNY") != "CNY":
        raise ApiError(400, "PARAM_ERROR", "amount.currency 仅支持 CNY")
    payer = body.get("payer")
    openid = payer.get("openid") if isinstance(payer, dict) else None
    if not isinstance(openid, str) or not openid:
        raise ApiError(400, "PARAM_ERROR", "JSAPI 下单 payer.openid 必填")
    notify_url = body.get("notify_url")
    if not isinstance(notify_url, str) or not re.match(r"^https?://\S+$", notify_url):
        raise ApiError(400, "PARAM_ERROR", "notify_url 必须是 http(s) 地址")
    if len(notify_url) > 256:
        raise ApiError(400, "PARAM_ERROR", "notify_url 过长")
    try:
        time_expire = datetime.fromisoformat(str(body.get("time_expire")))
    except ValueError:
        raise ApiError(400, "PARAM_ERROR", "time_expire 须为 RFC3339 格式") from None
    if time_expire.tzinfo is None:
        raise ApiError(400, "PARAM_ERROR", "time_expire 须带时区")
    now = timezone.now()
    if time_expire <= now:
        raise ApiError(400, "INVALID_REQUEST", "time_expire 已过")
    fingerprint = {
        "appid": body["appid"],
        "description": description,
        "total": amount["total"],
        "openid": openid,
        "time_expire": time_expire.isoformat(),
        "notify_url": notify_url,
    }
    mchid = settings.WECHATPAY_MCHID
    try:
        with transaction.atomic():
            tx = SandboxTransaction.objects.create(
                mchid=mchid,
                appid=body["appid"],
                out_trade_no=out_trade_no,
                description=description,
                total_fen=amount["total"],
                openid=openid,
                time_expire=time_expire,
                notify_url=notify_url,
                fingerprint=fingerprint,
                prepay_id=_prepay_id(),
                prepay_expires_at=now + PREPAY_TTL,
            )
            return 200, {"prepay_id": tx.prepay_id}
    except IntegrityError:
        pass  # this out_trade_no exists (maybe created concurrently): the rules below apply
    with transaction.atomic():
        tx = SandboxTransaction.objects.select_for_update().get(
            mchid=mchid, out_trade_no=out_trade_no
        )
        if tx.trade_state in (SandboxTransaction.SUCCESS, SandboxTransaction.REFUND):
            raise ApiError(400, "ORDERPAID", "该订单已支付")
        if tx.trade_state == SandboxTransaction.CLOSED:
            raise ApiError(400, "ORDER_CLOSED", "该订单已关闭")
        if tx.fingerprint != fingerprint:
            raise ApiError(400, "INVALID_REQUEST", "商户订单号重复，且请求参数与原订单不一致")
        if tx.prepay_expires_at <= now:
            tx.prepay_id, tx.prepay_expires_at = _prepay_id(), now + PREPAY_TTL
            tx.save(update_fields=["prepay_id", "prepay_expires_at"])
    return 200, {"prepay_id": tx.prepay_id}


def _transaction_or_404(request: SandboxRequest, mchid: Any) -> SandboxTransaction:
    _check_mchid(mchid)
    out_trade_no = unquote(request.path_params["out_trade_no"])
    tx = SandboxTransaction.objects.filter(mchid=mchid, out_trade_no=out_trade_no).first()
    if tx is None:
        raise ApiError(404, "ORDER_NOT_EXIST", "订单不存在")
    return tx


@_api("GET", "/v3/pay/transactions/out-trade-no/{out_trade_no}")
def query_transaction(request: SandboxRequest) -> tuple[int, dict]:
    tx = _transaction_or_404(request, request.query.get("mchid"))
    return 200, transaction_payload(tx)


@_api("POST", "/v3/pay/transactions/out-trade-no/{out_trade_no}/close")
def close_transaction(request: SandboxRequest) -> tuple[int, None]:
    found = _transaction_or_404(request, _json_object(request).get("mchid"))
    with transaction.atomic():
        tx = SandboxTransaction.objects.select_for_update().get(pk=found.pk)
        if tx.trade_state in (SandboxTransaction.SUCCESS, SandboxTransaction.REFUND):
            raise ApiError(400, "ORDERPAID", "订单已支付，不能关闭")
        if tx.trade_state == SandboxTransaction.NOTPAY:
            tx.trade_state, tx.closed_at = SandboxTransaction.CLOSED, timezone.now()
            tx.save(update_fields=["trade_state", "closed_at"])
    return 204, None


class PayRefused(Exception):
    """The user-side payment cannot happen; `code` says why (views map it to 404/409)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def pay_transaction(*, prepay_id: str, force: bool = False) -> SandboxNotification:
    """The user pays: SUCCESS, then the payment notification is sent (and retried).

    `force` pays even a closed or expired transaction: tests use it to make a payment land
    after the merchant closed the order, the race WeChat Pay allows in real life.
    """
    now = timezone.now()
    with transaction.atomic():
        tx = SandboxTransaction.objects.select_for_update().filter(prepay_id=prepay_id).first()
        if tx is None:
            raise PayRefused("not_found", "No transaction has this prepay_id.")
        if tx.trade_state in (SandboxTransaction.SUCCESS, SandboxTransaction.REFUND):
            raise PayRefused("already_paid", "This transaction is already paid.")
        if not force:
            if tx.trade_state == SandboxTransaction.CLOSED:
                raise PayRefused("order_closed", "The merchant closed this transaction.")
            if tx.time_expire <= now:
                raise PayRefused("order_expired", "The transaction's time_expire has passed.")
            if tx.prepay_expires_at <= now:
                raise PayRefused("prepay_expired", "The prepay_id expired (2 hours).")
        tx.trade_state = SandboxTransaction.SUCCESS
        tx.transaction_id = "4200" + "".join(secrets.choice("0123456789") for _ in range(24))
        tx.success_time = now
        tx.payer_total_fen = tx.total_fen
        tx.save()
        notification = _create_notification(
            kind=SandboxNotification.KIND_TRANSACTION,
            event_type="TRANSACTION.SUCCESS",
            summary="支付成功",
            target_url=tx.notify_url,
            out_trade_no=tx.out_trade_no,
            resource=transaction_payload(tx),
        )
    _deliver_now(notification)
    notification.refresh_from_db()
    return notification


# --- refunds ------------------------------------------------------------------------------------


def refund_payload(refund: SandboxRefund) -> dict:
    tx = refund.transaction
    payload: dict[str, Any] = {
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": tx.transaction_id,
        "out_trade_no": tx.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": wx_time(refund.created_at),
        "status": refund.status,
        "funds_account": "AVAILABLE",
        "amount": {
            "total": tx.total_fen,
            "refund": refund.refund_fen,
            "payer_total": tx.payer_total_fen,
            "payer_refund": refund.refund_fen,
            "settlement_total": tx.total_fen,
            "settlement_refund": refund.refund_fen,
            "discount_refund": 0,
            "currency": "CNY",
            "refund_fee": 0,
        },
    }
    if refund.success_time:
        payload["success_time"] = wx_time(refund.success_time)
    return payload


def _refund_notification_resource(refund: SandboxRefund) -> dict:
    tx = refund.transaction
    resource = {
        "mchid": refund.mchid,
        "out_trade_no": tx.out_trade_no,
        "transaction_id": tx.transaction_id,
        "out_refund_no": refund.out_refund_no,
        "refund_id": refund.refund_id,
        "refund_status": refund.status,
        "user_received_account": "支付用户零钱",
        "amount": {
            "total": tx.total_fen,
            "refund": refund.refund_fen,
            "payer_total": tx.payer_total_fen,
            "payer_refund": refund.refund_fen,
        },
    }
    if refund.success_time:
        resource["success_time"] = wx_time(refund.success_time)
    return resource


@_api("POST", "/v3/refund/domestic/refunds")
def create_refund(request: SandboxRequest) -> tuple[int, dict]:
    body = _json_object(request)
    out_refund_no = body.get("out_refund_no")
    if not isinstance(out_refund_no, str) or not OUT_REFUND_NO.match(out_refund_no):
        raise ApiError(400, "PARAM_ERROR", "out_refund_no 为 1-64 位数字、大小写字母或_-|*@")
    amount = body.get("amount")
    if (
        not isinstance(amount, dict)
        or not _positive_int(amount.get("refund"))
        or not _positive_int(amount.get("total"))
    ):
        raise ApiError(400, "PARAM_ERROR", "amount.refund 与 amount.total 必须是大于 0 的整数")
    if amount.get("currency") != "CNY":
        raise ApiError(400, "PARAM_ERROR", "amount.currency 必填，仅支持 CNY")
    reason = body.get("reason", "")
    notify_url = body.get("notify_url", "")
    if not isinstance(reason, str) or len(reason) > 80:
        raise ApiError(400, "PARAM_ERROR", "reason 不超过 80 个字符")
    if not isinstance(notify_url, str) or (
        notify_url and not re.match(r"^https?://\S{1,248}$", notify_url)
    ):
        raise ApiError(400, "PARAM_ERROR", "notify_url 必须是 http(s) 地址")
    lookup: dict[str, Any] = {"mchid": settings.WECHATPAY_MCHID}
    if isinstance(body.get("transaction_id"), str) and body["transaction_id"]:
        lookup["transaction_id"] = body["transaction_id"]
    elif isinstance(body.get("out_trade_no"), str) and body["out_trade_no"]:
        lookup["out_trade_no"] = body["out_trade_no"]
    else:
        raise ApiError(400, "PARAM_ERROR", "transaction_id 与 out_trade_no 必填其一")
    fingerprint = {
        "trade": sorted(lookup.items()),
        "refund": amount["refund"],
        "total": amount["total"],
        "reason": reason,
        "notify_url": notify_url,
    }
    fingerprint = json.loads(json.dumps(fingerprint))  # as the JSONField will give it back
    with transaction.atomic():
        # The transaction row is the lock that serialises refunds of one payment: the sum of
        # refunds is read and then extended, so two concurrent refunds cannot both fit.
        tx = SandboxTransaction.objects.select_for_update().filter(**lookup).first()
        if tx is None:
            raise ApiError(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        existing = SandboxRefund.objects.filter(mchid=tx.mchid, out_refund_no=out_refund_no).first()
        if existing is not None:
            if existing.fingerprint != fingerprint or existing.transaction_id != tx.pk:
                raise ApiError(400, "INVALID_REQUEST", "退款单号重复，且请求参数与原退款不一致")
            return 200, refund_payload(existing)
        if tx.trade_state not in (SandboxTransaction.SUCCESS, SandboxTransaction.REFUND):
            raise ApiError(400, "INVALID_REQUEST", "订单未支付，不能退款")
        if amount["total"] != tx.total_fen:
            raise ApiError(400, "INVALID_REQUEST", "amount.total 与订单金额不一致")
        refunded = (
            tx.refunds.exclude(status=SandboxRefund.CLOSED).aggregate(s=Sum("refund_fen"))["s"] or 0
        )
        if refunded + amount["refund"] > tx.total_fen:
            raise ApiError(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        refund = SandboxRefund.objects.create(
            transaction=tx,
            mchid=tx.mchid,
            out_refund_no=out_refund_no,
            refund_id="50" + "".join(secrets.choice("0123456789") for _ in range(28)),
            refund_fen=amount["refund"],
            reason=reason,
            notify_url=notify_url,
            fingerprint=fingerprint,
            settle_after=timezone.now() + timedelta(seconds=settings.SANDBOX_REFUND_SETTLE_SECONDS),
        )
        tx.trade_state = SandboxTransaction.REFUND
        tx.save(update_fields=["trade_state"])
    _schedule_settlement(refund)
    return 200, refund_payload(refund)


@_api("GET", "/v3/refund/domestic/refunds/{out_refund_no}")
def query_refund(request: SandboxRequest) -> tuple[int, dict]:
    out_refund_no = unquote(request.path_params["out_refund_no"])
    refund = (
        SandboxRefund.objects.select_related("transaction")
        .filter(mchid=settings.WECHATPAY_MCHID, out_refund_no=out_refund_no)
        .first()
    )
    if refund is None:
        raise ApiError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
    # A refund whose time has come settles when it is looked at, even with no worker running;
    # its notification goes out later, never while the caller's query is on the stack.
    settle_refund(refund_pk=refund.pk, deliver_inline=False)
    refund.refresh_from_db()
    return 200, refund_payload(refund)


def _schedule_settlement(refund: SandboxRefund) -> None:
    # Always delayed, never inline: the refund notification must not reach the merchant while
    # the merchant's own refund call is still on the stack (in-process transport, test mode).
    delay = max(settings.SANDBOX_REFUND_SETTLE_SECONDS, 0.001)
    enqueue("sandbox.tasks.settle_refund_task", refund.pk, eta=timezone.now() + timedelta(seconds=delay))


def settle_refund(
    *, refund_pk: int, force: bool = False, deliver_inline: bool = True
) -> SandboxNotification | None:
    """PROCESSING → SUCCESS (or ABNORMAL when that fault is armed) and notify; idempotent."""
    with transaction.atomic():
        refund = (
            SandboxRefund.objects.select_for_update()
            .select_related("transaction")
            .filter(pk=refund_pk)
            .first()
        )
        if refund is None or refund.status != SandboxRefund.PROCESSING:
            return None
        if not force and refund.settle_after > timezone.now():
            return None
        fault = take_fault(path=refund.out_refund_no, kinds=(SandboxFault.REFUND_ABNORMAL,))
        if fault:
            refund.status, event, summary = SandboxRefund.ABNORMAL, "REFUND.ABNORMAL", "退款异常"
        else:
            refund.status, event, summary = SandboxRefund.SUCCESS, "REFUND.SUCCESS", "退款成功"
            refund.success_time = timezone.now()
        refund.save(update_fields=["status", "success_time"])
        notification = None
        if refund.notify_url:
            notification = _create_notification(
                kind=SandboxNotification.KIND_REFUND,
                event_type=event,
                summary=summary,
                target_url=refund.notify_url,
                out_trade_no=refund.transaction.out_trade_no,
                out_refund_no=refund.out_refund_no,
                resource=_refund_notification_resource(refund),
            )
    if notification is not None:
        if deliver_inline:
            _deliver_now(notification)
        else:
            _deliver_later(notification)
    return notification


def settle_due_refunds(*, force: bool = False) -> int:
    """Settle every PROCESSING refund whose time has come (all of them with `force`)."""
    pending = SandboxRefund.objects.filter(status=SandboxRefund.PROCESSING)
    if not force:
        pending = pending.filter(settle_after__lte=timezone.now())
    settled = 0
    for refund_pk in list(pending.values_list("pk", flat=True)):
        settle_refund(refund_pk=refund_pk, force=force)
        settled += 1
    return settled


# --- notifications ------------------------------------------------------------------------------


def _create_notification(
    *,
    kind: str,
    event_type: str,
    summary: str,
    target_url: str,
    out_trade_no: str,
    resource: dict,
    out_refund_no: str = "",
) -> SandboxNotification:
    notification_id = str(uuid.uuid4())
    body = {
        "id": notification_id,
        "create_time": wx_time(timezone.now()),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": encrypt_resource(_dumps(resource), associated_data=kind),
    }
    return SandboxNotification.objects.create(
        kind=kind,
        event_type=event_type,
        notification_id=notification_id,
        out_trade_no=out_trade_no,
        out_refund_no=out_refund_no,
        target_url=target_url,
        body=_dumps(body),
        next_attempt_at=timezone.now(),
    )


def _deliver_now(notification: SandboxNotification) -> None:
    # Enqueued after the state change is committed (the caller's atomic block has exited), so
    # the worker finds the row; in Huey's immediate mode the first attempt runs right here.
    enqueue("sandbox.tasks.deliver_notification", notification.pk)


def _deliver_later(notification: SandboxNotification) -> None:
    enqueue(
        "sandbox.tasks.deliver_notification",
        notification.pk,
        eta=timezone.now() + timedelta(seconds=0.01),
    )
