"""WeChat Pay API v3 through `wechatpayv3` in public-key mode: JSAPI prepay, the client's pay
parameters, query, close, refund, refund query, and notification verification.

Every call checks the status code itself (wechatpayv3 returns `(status, text)` and never raises
on 4xx/5xx) and raises `PaymentGatewayError`, whose `retryable` tells a task whether trying
again can help (network errors, timeouts, 5xx, rate limits) or not (WeChat's 4xx business
codes). wechatpayv3 verifies the `Wechatpay-*` signature of every 2xx response with the
platform public key; a response that fails it raises (code INVALID_RESPONSE_SIGNATURE).

Call these outside database transactions: they are network I/O, and in the sandbox the fake
WeChat Pay writes its own rows on the same connection.
"""

import functools
import gzip
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests
import wechatpayv3.core
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from wechatpayv3 import WeChatPay, WeChatPayType

from marketplace.gateways import partner_session, sandbox_seam

logger = logging.getLogger("marketplace.wechatpay")

CHINA = ZoneInfo("Asia/Shanghai")
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
# WeChat signs each delivery afresh; an older (or future) timestamp is a replay or a forgery.
NOTIFICATION_MAX_SKEW = timedelta(minutes=5)
# 4xx codes that WeChat documents as "try again later" rather than "this request is wrong".
RETRYABLE_CODES = {"SYSTEM_ERROR", "SYSTEMERROR", "FREQUENCY_LIMITED", "BANKERROR"}
PAID_CODES = {"ORDERPAID", "ORDER_PAID"}
NOT_FOUND_CODES = {"ORDER_NOT_EXIST", "ORDERNOTEXIST", "RESOURCE_NOT_EXISTS", "NOT_FOUND"}
NO_STATEMENT = "NO_STATEMENT_EXIST"


class PaymentGatewayError(Exception):
    """A WeChat Pay call failed. `status`/`code` are WeChat's (None when no answer came)."""

    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.code = code


class OrderAlreadyPaid(PaymentGatewayError):
    """Closing (or prepaying) a transaction the user has already paid: settle it, do not close."""


class NotificationRejected(Exception):
    """A notification that must not be acted on; `reason` is a short machine word."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Notification:
    id: str
    event_type: str
    create_time: datetime | None
    summary: str
    resource: dict[str, Any]
    raw: str


# --- the client ---------------------------------------------------------------------------------


class _SessionRequests:
    """Stands in for the `requests` module inside `wechatpayv3.core`.

    wechatpayv3's Core calls the module-level `requests.get/post/...`, which offers no way to
    mount a transport adapter. Rebinding the name `requests` in that one module to this object
    routes those calls through a Session: the sandbox adapter for its hosts in the sandbox, a
    plain pooled session (keep-alive) otherwise. Everything else in the library - URL building,
    request signing, response signature verification - runs unchanged.
    """

    def __init__(self, session: requests.Session) -> None:
        self.session = session

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.post(url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.put(url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.patch(url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.delete(url, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(requests, name)


@functools.cache
def _install_session() -> None:
    wechatpayv3.core.requests = _SessionRequests(partner_session())


@dataclass(frozen=True)
class _Credentials:
    mchid: str
    private_key: str
    cert_serial_no: str
    apiv3_key: str
    public_key: str
    public_key_id: str


def _pem(value: str) -> str:
    """PEM text as given, or read from the path given."""
    if value and not value.lstrip().startswith("-----BEGIN") and Path(value).is_file():
        return Path(value).read_text()
    return value


def _credentials() -> _Credentials:
    if settings.SANDBOX_ENABLED:
        keys = sandbox_seam().wechatpay_keys()
        return _Credentials(
            mchid=settings.WECHATPAY_MCHID,
            private_key=keys.merchant_private_key,
            cert_serial_no=keys.merchant_serial_no,
            apiv3_key=keys.apiv3_key,
            public_key=keys.platform_public_key,
            public_key_id=keys.platform_public_key_id,
        )
    credentials = _Credentials(
        mchid=settings.WECHATPAY_MCHID,
        private_key=_pem(settings.WECHATPAY_PRIVATE_KEY),
        cert_serial_no=settings.WECHATPAY_CERT_SERIAL_NO,
        apiv3_key=settings.WECHATPAY_APIV3_KEY,
        public_key=_pem(settings.WECHATPAY_PUBLIC_KEY),
        public_key_id=settings.WECHATPAY_PUBLIC_KEY_ID,
    )
    missing = [name for name, value in vars(credentials).items() if not value]
    if missing:
        raise ImproperlyConfigured(f"WeChat Pay is not configured: set WECHATPAY_* ({missing}).")
    return credentials


@functools.lru_cache(maxsize=4)
def _client_for(credentials: _Credentials) -> WeChatPay:
    _install_session()
    return WeChatPay(
        wechatpay_type=WeChatPayType.MINIPROG,
        mchid=credentials.mchid,
        private_key=credentials.private_key,
        cert_serial_no=credentials.cert_serial_no,
        appid=settings.WECHAT_APPID,
        apiv3_key=credentials.apiv3_key,
        notify_url=settings.WECHATPAY_NOTIFY_URL,
        timeout=settings.WECHATPAY_TIMEOUT,
        # Public-key mode: without these the constructor downloads platform certificates.
        public_key=credentials.public_key,
        public_key_id=credentials.public_key_id,
    )


def client() -> WeChatPay:
    """The configured client; cached per key set (the sandbox's keys live in the database)."""
    return _client_for(_credentials())


# --- calls --------------------------------------------------------------------------------------


def _decode(text: Any) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return None


def _request(what: str, call: Any, /, **kwargs: Any) -> tuple[int, Any]:
    """Run one wechatpayv3 call, turning every failure into PaymentGatewayError."""
    try:
        status, text = call(**kwargs)
    except requests.Timeout as exc:
        logger.warning("wechatpay %s timed out: %s", what, exc)
        raise PaymentGatewayError(
            f"WeChat Pay did not answer in time ({what}).", retryable=True, code="TIMEOUT"
        ) from exc
    except requests.RequestException as exc:
        logger.warning("wechatpay %s network error: %s", what, exc)
        raise PaymentGatewayError(
            f"WeChat Pay is unreachable ({what}).", retryable=True, code="NETWORK_ERROR"
        ) from exc
    except Exception as exc:
        # wechatpayv3 raises a bare Exception when a 2xx response's signature does not verify
        # (or its signature type is unknown): the answer cannot be trusted, whatever it says.
        if "signature" not in str(exc) and "algorithm" not in str(exc):
            raise
        logger.error("wechatpay %s: response signature rejected: %s", what, exc)
        raise PaymentGatewayError(
            f"WeChat Pay's answer failed signature verification ({what}).",
            retryable=False,
            code="INVALID_RESPONSE_SIGNATURE",
        ) from exc
    body = _decode(text)
    if 200 <= status < 300:
        if not isinstance(body, dict):
            raise PaymentGatewayError(
                f"WeChat Pay answered {status} with a malformed body ({what}).",
                retryable=True,
                status=status,
                code="MALFORMED_RESPONSE",
            )
        return status, body
    body = body if isinstance(body, dict) else {}
    code = body.get("code") or None
    message = body.get("message") or ""
    retryable = status >= 500 or status == 429 or code in RETRYABLE_CODES
    error_class = OrderAlreadyPaid if code in PAID_CODES else PaymentGatewayError
    error = error_class(
        f"WeChat Pay {what} failed: {status} {code or ''} {message}".strip(),
        retryable=retryable,
        status=status,
        code=code,
    )
    if code in NOT_FOUND_CODES:
        raise error  # callers that expect "not found" catch it; nothing to log
    logger.warning("%s", error.message)
    raise error


def wx_time(moment: datetime) -> str:
    """RFC 3339 in China time, the form WeChat Pay expects (2018-06-08T10:34:56+08:00)."""
    if timezone.is_naive(moment):
        raise ValueError("WeChat Pay needs an aware datetime")
    return moment.astimezone(CHINA).isoformat(timespec="seconds")


def prepay_jsapi(
    *, out_trade_no: str, description: str, total_fen: int, openid: str, time_expire: datetime
) -> str:
    """JSAPI prepay; returns the prepay_id. The same parameters again give the same prepay_id."""
    if isinstance(total_fen, bool) or not isinstance(total_fen, int) or total_fen <= 0:
        raise ValueError("total_fen must be a positive integer")
    wechat = client()
    _, body = _request(
        "prepay",
        wechat.pay,
        description=description[:127],
        out_trade_no=out_trade_no,
        amount={"total": total_fen, "currency": "CNY"},
        payer={"openid": openid},
        time_expire=wx_time(time_expire),
        notify_url=settings.WECHATPAY_NOTIFY_URL,
        pay_type=WeChatPayType.MINIPROG,
    )
    prepay_id = body.get("prepay_id")
    if not isinstance(prepay_id, str) or not prepay_id:
        raise PaymentGatewayError(
            "WeChat Pay's prepay answer has no prepay_id.",
            retryable=True,
            code="MALFORMED_RESPONSE",
        )
    return prepay_id


def pay_params(*, prepay_id: str) -> dict[str, str]:
    """The parameters of `wx.requestPayment`, signed with the merchant key (RSA-SHA256)."""
    app_id = settings.WECHAT_APPID
    timestamp = str(int(time.time()))
    nonce = secrets.token_hex(16)
    package = f"prepay_id={prepay_id}"
    return {
        "appId": app_id,
        "timeStamp": timestamp,
        "nonceStr": nonce,
        "package": package,
        "signType": "RSA",
        # sign() joins with "\n" and appends one: appId\ntimeStamp\nnonceStr\npackage\n
        "paySign": client().sign([app_id, timestamp, nonce, package]),
    }


def _lookup(what: str, call: Any, /, **kwargs: Any) -> dict | None:
    """A query whose "not found" is an answer (None), not a failure."""
    try:
        _, body = _request(what, call, **kwargs)
    except PaymentGatewayError as exc:
        if exc.code in NOT_FOUND_CODES:
            return None
        raise
    return body


def query_order(*, out_trade_no: str) -> dict | None:
    """The transaction as WeChat Pay has it (trade_state, amount, payer...); None if unknown."""
    return _lookup("query", client().query, out_trade_no=out_trade_no)


def close_order(*, out_trade_no: str) -> None:
    """Close an unpaid transaction. Closing a closed or never-created one is fine (idempotent);
    a paid one raises OrderAlreadyPaid: the payment must be settled, not lost."""
    try:
        _request("close", client().close, out_trade_no=out_trade_no)
    except OrderAlreadyPaid:
        raise
    except PaymentGatewayError as exc:
        if exc.code in NOT_FOUND_CODES or exc.code == "ORDER_CLOSED":
            return
        raise


def refund(
    *, out_refund_no: str, out_trade_no: str, refund_fen: int, total_fen: int, reason: str
) -> dict:
    """Submit a refund; the same out_refund_no refunds once however often it is submitted.

    Returns WeChat's refund (status PROCESSING or SUCCESS...); the refund notification follows.
    """
    for value in (refund_fen, total_fen):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError("refund_fen and total_fen must be positive integers")
    _, body = _request(
        "refund",
        client().refund,
        out_refund_no=out_refund_no,
        out_trade_no=out_trade_no,
        amount={"refund": refund_fen, "total": total_fen, "currency": "CNY"},
        reason=reason[:80] or None,
        # Explicit, or wechatpayv3 falls back to the payment notify URL.
        notify_url=settings.WECHATPAY_REFUND_NOTIFY_URL,
    )
    return body


def query_refund(*, out_refund_no: str) -> dict | None:
    return _lookup("refund query", client().query_refund, out_refund_no=out_refund_no)


# --- merchant transfer (商家转账, user-confirmation mode) ---------------------------------------


def create_transfer(
    *, out_bill_no: str, openid: str, amount_fen: int, remark: str, user_name: str = ""
) -> dict:
    """Creates the transfer bill; the same out_bill_no and parameters answer the same bill.
    Returns WeChat's `{out_bill_no, transfer_bill_no, create_time, state, package_info?}`."""
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0:
        raise ValueError("amount_fen must be a positive integer")
    if amount_fen >= settings.WECHATPAY_TRANSFER_REAL_NAME_FROM_FEN and not user_name:
        raise ValueError("WeChat needs the payee's real name from 2,000 yuan")
    _, body = _request(
        "transfer",
        client().mch_transfer_bills,
        out_bill_no=out_bill_no,
        transfer_scene_id=settings.WECHATPAY_TRANSFER_SCENE_ID,
        openid=openid,
        transfer_amount=amount_fen,
        transfer_remark=remark[:32],
        # wechatpayv3 encrypts it with the platform public key (and sends Wechatpay-Serial).
        user_name=user_name or None,
        user_recv_perception=settings.WECHATPAY_TRANSFER_RECV_PERCEPTION,
        transfer_scene_report_infos=settings.WECHATPAY_TRANSFER_REPORT_INFOS,
        notify_url=settings.WECHATPAY_TRANSFER_NOTIFY_URL,
    )
    if not body.get("out_bill_no") or not body.get("state"):
        raise PaymentGatewayError(
            "WeChat Pay's transfer answer has no bill.", retryable=True, code="MALFORMED_RESPONSE"
        )
    return body


def query_transfer(*, out_bill_no: str) -> dict | None:
    """The bill as WeChat has it (state, transfer_amount, openid, fail_reason...); None if
    WeChat never created it."""
    return _lookup("transfer query", client().mch_transfer_bills_query, out_bill_no=out_bill_no)


def cancel_transfer(*, out_bill_no: str) -> dict:
    """Cancels a bill the user has not confirmed (answer state CANCELING or CANCELLED); one
    already final raises PaymentGatewayError with WeChat's code."""
    _, body = _request("transfer cancel", client().mch_transfer_bills_cancel, out_bill_no=out_bill_no)
    return body


# --- bills (对账单) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bill:
    sha1: str
    text: str  # the CSV, decompressed and decoded


def _download_bill(what: str, answer: dict) -> Bill:
    url = answer.get("download_url")
    expected = str(answer.get("hash_value", "")).lower()
    if not isinstance(url, str) or not url or not expected:
        raise PaymentGatewayError(
            f"WeChat Pay's {what} answer has no download_url/hash.",
            retryable=True,
            code="MALFORMED_RESPONSE",
        )
    # Signed like every request; the file's answer itself carries no signature (skip_verify),
    # which is why its hash is checked.
    try:
        status, content = client().download_bill(url)
    except requests.RequestException as exc:
        raise PaymentGatewayError(
            f"WeChat Pay's {what} download failed.", retryable=True, code="NETWORK_ERROR"
        ) from exc
    if not 200 <= status < 300:
        raise PaymentGatewayError(
            f"WeChat Pay's {what} download answered {status}.",
            retryable=status >= 500,
            status=status,
            code="DOWNLOAD_FAILED",
        )
    raw = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise PaymentGatewayError(
                f"WeChat Pay's {what} is not valid gzip.", retryable=True, code="BAD_BILL"
            ) from exc
    # The hash is of the original bill (after gzip is undone).
    actual = hashlib.sha1(raw).hexdigest()  # noqa: S324 - WeChat's choice, an integrity check
    if actual != expected:
        raise PaymentGatewayError(
            f"WeChat Pay's {what} failed its hash check ({actual} != {expected}).",
            retryable=True,
            code="BILL_HASH_MISMATCH",
        )
    return Bill(sha1=actual, text=raw.decode("utf-8-sig"))


def trade_bill(*, bill_date: str) -> Bill | None:
    """The day's trade bill (every transaction and refund), gzip, hash checked; None when
    WeChat has no statement for the day (NO_STATEMENT_EXIST)."""
    try:
        _, answer = _request(
            "trade bill", client().trade_bill, bill_date=bill_date, bill_type="ALL", tar_type="GZIP"
        )
    except PaymentGatewayError as exc:
        if exc.code == NO_STATEMENT:
            return None
        raise
    return _download_bill("trade bill", answer)


def fundflow_bill(*, bill_date: str) -> Bill | None:
    """The day's fund-flow bill of the basic account (income, refunds, transfers, fees)."""
    try:
        _, answer = _request(
            "fund-flow bill",
            client().fundflow_bill,
            bill_date=bill_date,
            account_type="BASIC",
            tar_type="GZIP",
        )
    except PaymentGatewayError as exc:
        if exc.code == NO_STATEMENT:
            return None
        raise
    return _download_bill("fund-flow bill", answer)


# --- notifications ------------------------------------------------------------------------------

_HEADER_NAMES = ("Signature", "Timestamp", "Nonce", "Serial", "Signature-Type")


def _wechatpay_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """`Wechatpay-*` headers from request.META (HTTP_WECHATPAY_*), request.headers or a dict."""
    found: dict[str, str] = {}
    lowered = {str(key).lower(): value for key, value in headers.items()}
    for name in _HEADER_NAMES:
        full = f"Wechatpay-{name}"
        meta = "http_" + full.lower().replace("-", "_")
        value = lowered.get(full.lower(), lowered.get(meta))
        if value is not None:
            found[full] = str(value)
    return found


def parse_notification(
    *, headers: Mapping[str, str], body: bytes, now: datetime | None = None
) -> Notification:
    """Verify (platform key signature, serial, timestamp within 5 minutes) and decrypt a WeChat
    Pay notification. Raises NotificationRejected; only then is nothing to be acted on."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else str(body)
    except UnicodeDecodeError:
        raise NotificationRejected("malformed", "body is not UTF-8") from None
    wanted = _wechatpay_headers(headers)
    for name in ("Signature", "Timestamp", "Nonce", "Serial"):
        if not wanted.get(f"Wechatpay-{name}"):
            raise NotificationRejected("missing_headers", f"Wechatpay-{name} is missing")
    signature_type = wanted.setdefault("Wechatpay-Signature-Type", SIGNATURE_TYPE)
    if signature_type != SIGNATURE_TYPE:
        raise NotificationRejected("bad_signature", f"unsupported type {signature_type}")
    credentials = _credentials()
    # Checked here, not left to wechatpayv3: for an unknown serial it would download platform
    # certificates from WeChat on every forged request.
    if wanted["Wechatpay-Serial"] != credentials.public_key_id:
        raise NotificationRejected("unknown_serial", wanted["Wechatpay-Serial"][:64])
    try:
        sent_at = datetime.fromtimestamp(int(wanted["Wechatpay-Timestamp"]), tz=CHINA)
    except (ValueError, OverflowError, OSError):
        raise NotificationRejected("bad_timestamp") from None
    now = now or timezone.now()
    if sent_at < now - NOTIFICATION_MAX_SKEW:
        raise NotificationRejected("stale", f"signed at {sent_at.isoformat()}")
    if sent_at > now + NOTIFICATION_MAX_SKEW:
        raise NotificationRejected("future_timestamp", f"signed at {sent_at.isoformat()}")
    try:
        data = _client_for(credentials).callback(wanted, text)
    except Exception as exc:  # wechatpayv3 raises bare Exceptions (bad JSON, unknown algorithm)
        raise NotificationRejected("malformed", str(exc)[:200]) from exc
    # callback() returns None when the signature fails or the resource does not decrypt.
    if not isinstance(data, dict) or not isinstance(data.get("resource"), dict):
        raise NotificationRejected("bad_signature", "signature or decryption failed")
    create_time = None
    if isinstance(data.get("create_time"), str):
        try:
            create_time = datetime.fromisoformat(data["create_time"])
        except ValueError:
            create_time = None
    return Notification(
        id=str(data.get("id", "")),
        event_type=str(data.get("event_type", "")),
        create_time=create_time,
        summary=str(data.get("summary", "")),
        resource=data["resource"],
        raw=text,
    )
