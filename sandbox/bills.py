"""Fake WeChat Pay bills (对账单) for the sandbox's own transactions, refunds and transfers.

`GET /v3/bill/tradebill` and `/v3/bill/fundflowbill` answer `{hash_type: "SHA1", hash_value,
download_url}` (signed); the download URL serves the file, GZIP when `tar_type=GZIP`, with no
response signature (as WeChat's) - the client checks the SHA-1 of the original file. The files
are WeChat's CSV: a header row, one row per line with every field prefixed by a backtick, then
a summary header and one summary row. Amounts are yuan with two decimals.

Tests make a bill differ from the truth: settings.SANDBOX_BILL_DROP lists numbers
(out_trade_no, out_refund_no or out_bill_no) whose line is left out, SANDBOX_BILL_ALTER numbers
whose amount is one fen more.
"""

import csv
import gzip
import hashlib
import io
import re
import secrets
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.utils import timezone

from sandbox.models import (
    SandboxBillDownload,
    SandboxRefund,
    SandboxTransaction,
    SandboxTransferBill,
)
from sandbox.transport import SandboxRequest, SandboxResponse, route
from sandbox.wechatpay import CHINA, HOST, ApiError, _api, _check_authorization, current_keys

DOWNLOAD_PATH = "/v3/billdownload/file"
DOWNLOAD_TTL = timedelta(minutes=5)
FEE_RATE_PER_MILLE = 6  # 0.6%, WeChat's usual rate for mini-programs
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

TRADE_HEADER = [
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号",
    "用户标识", "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额",
    "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态",
    "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额", "费率备注",
]  # fmt: skip
TRADE_SUMMARY_HEADER = [
    "总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额",
    "订单总金额", "申请退款总金额",
]  # fmt: skip
FUNDFLOW_HEADER = [
    "记账时间", "微信支付业务单号", "资金流水单号", "业务名称", "业务类型", "收支类型",
    "收支金额（元）", "账户结余（元）", "资金变更提交申请人", "备注", "业务凭证号",
]  # fmt: skip
FUNDFLOW_SUMMARY_HEADER = ["资金流水总笔数", "收入笔数", "收入金额", "支出笔数", "支出金额"]


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def fee_of(fen: int) -> int:
    return (fen * FEE_RATE_PER_MILLE + 500) // 1000


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=CHINA)
    return start, start + timedelta(days=1)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


def _amount(number: str, fen: int) -> int:
    return fen + 1 if number in settings.SANDBOX_BILL_ALTER else fen


def _kept(number: str) -> bool:
    return number not in settings.SANDBOX_BILL_DROP


def _csv(
    header: list[str], rows: Iterable[list[str]], summary_header: list[str], summary: list[str]
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([f"`{value}" for value in row])
    writer.writerow(summary_header)
    writer.writerow([f"`{value}" for value in summary])
    return out.getvalue().encode("utf-8")


def trade_bill(day: date) -> bytes | None:
    start, end = _day_bounds(day)
    mchid, appid = settings.WECHATPAY_MCHID, settings.WECHAT_APPID
    rows: list[tuple[datetime, list[str]]] = []
    settled = refunded = fees = 0
    for tx in SandboxTransaction.objects.filter(
        mchid=mchid, success_time__gte=start, success_time__lt=end
    ).exclude(transaction_id=""):
        if not _kept(tx.out_trade_no):
            continue
        total = _amount(tx.out_trade_no, tx.total_fen)
        fee = fee_of(total)
        settled, fees = settled + total, fees + fee
        rows.append((tx.success_time, [
            _stamp(tx.success_time), appid, mchid, "0", "", tx.transaction_id, tx.out_trade_no,
            tx.openid, "JSAPI", "SUCCESS", "OTHERS", "CNY", yuan(total), "0.00", "0", "0",
            "0.00", "0.00", "", "", tx.description, "", yuan(fee), "0.60%", yuan(total),
            "0.00", "",
        ]))  # fmt: skip
    for refund in SandboxRefund.objects.select_related("transaction").filter(
        mchid=mchid, status=SandboxRefund.SUCCESS, success_time__gte=start, success_time__lt=end
    ):
        if not _kept(refund.out_refund_no):
            continue
        tx = refund.transaction
        amount = _amount(refund.out_refund_no, refund.refund_fen)
        fee = -fee_of(amount)
        refunded, fees = refunded + amount, fees + fee
        rows.append((refund.success_time, [
            _stamp(refund.success_time), appid, mchid, "0", "", tx.transaction_id,
            tx.out_trade_no, tx.openid, "JSAPI", "REFUND", "OTHERS", "CNY", "0.00", "0.00",
            refund.refund_id, refund.out_refund_no, yuan(amount), "0.00", "ORIGINAL", "SUCCESS",
            tx.description, "", yuan(fee), "0.60%", yuan(tx.total_fen), yuan(amount), "",
        ]))  # fmt: skip
    if not rows:
        return None
    rows.sort(key=lambda item: item[0])
    summary = [str(len(rows)), yuan(settled), yuan(refunded), "0.00", yuan(fees), yuan(settled),
               yuan(refunded)]  # fmt: skip
    return _csv(TRADE_HEADER, (row for _, row in rows), TRADE_SUMMARY_HEADER, summary)


def fundflow_bill(day: date) -> bytes | None:
    start, end = _day_bounds(day)
    mchid = settings.WECHATPAY_MCHID
    lines: list[tuple[datetime, str, str, str, str, int, str]] = []
    for tx in SandboxTransaction.objects.filter(
        mchid=mchid, success_time__gte=start, success_time__lt=end
    ).exclude(transaction_id=""):
        if not _kept(tx.out_trade_no):
            continue
        total = _amount(tx.out_trade_no, tx.total_fen)
        lines.append(
            (tx.success_time, tx.transaction_id, "交易", "交易", "收入", total, tx.out_trade_no)
        )
        lines.append((tx.success_time, tx.transaction_id, "手续费", "扣除交易手续费", "支出",
                      fee_of(total), tx.out_trade_no))  # fmt: skip
    for refund in SandboxRefund.objects.select_related("transaction").filter(
        mchid=mchid, status=SandboxRefund.SUCCESS, success_time__gte=start, success_time__lt=end
    ):
        if not _kept(refund.out_refund_no):
            continue
        amount = _amount(refund.out_refund_no, refund.refund_fen)
        lines.append((refund.success_time, refund.refund_id, "退款", "退款", "支出", amount,
                      refund.out_refund_no))  # fmt: skip
        lines.append((refund.success_time, refund.refund_id, "手续费", "退还交易手续费", "收入",
                      fee_of(amount), refund.out_refund_no))  # fmt: skip
    for bill in SandboxTransferBill.objects.filter(
        mchid=mchid, state=SandboxTransferBill.SUCCESS, finished_at__gte=start, finished_at__lt=end
    ):
        if not _kept(bill.out_bill_no):
            continue
        amount = _amount(bill.out_bill_no, bill.transfer_amount_fen)
        lines.append((bill.finished_at, bill.transfer_bill_no, "商家转账", "商家转账", "支出",
                      amount, bill.out_bill_no))  # fmt: skip
    if not lines:
        return None
    lines.sort(key=lambda line: line[0])
    balance = income = expense = income_count = 0
    rows = []
    for index, (moment, wechat_no, name, kind, direction, fen, voucher) in enumerate(lines, 1):
        if direction == "收入":
            balance, income, income_count = balance + fen, income + fen, income_count + 1
        else:
            balance, expense = balance - fen, expense + fen
        rows.append([_stamp(moment), wechat_no, f"{moment:%Y%m%d}{index:010d}", name, kind,
                     direction, yuan(fen), yuan(balance), mchid, "", voucher])  # fmt: skip
    summary = [str(len(rows)), str(income_count), yuan(income), str(len(rows) - income_count),
               yuan(expense)]  # fmt: skip
    return _csv(FUNDFLOW_HEADER, rows, FUNDFLOW_SUMMARY_HEADER, summary)


def _bill_answer(request: SandboxRequest, build) -> tuple[int, dict]:
    bill_date = request.query.get("bill_date", "")
    if not _DATE.match(bill_date):
        raise ApiError(400, "PARAM_ERROR", "bill_date 格式为 yyyy-MM-dd")
    try:
        day = date.fromisoformat(bill_date)
    except ValueError:
        raise ApiError(400, "PARAM_ERROR", "bill_date 不是有效日期") from None
    # WeChat serves a day from about 10:00 the next day; the sandbox also serves today's bill
    # so far, so that a demo can reconcile the day it ran on.
    today = timezone.now().astimezone(CHINA).date()
    if day > today:
        raise ApiError(400, "INVALID_REQUEST", "账单尚未生成，请于次日 10 点后获取")
    tar_type = request.query.get("tar_type", "")
    if tar_type not in ("", "GZIP"):
        raise ApiError(400, "PARAM_ERROR", "tar_type 仅支持 GZIP")
    content = build(day)
    if content is None:
        raise ApiError(400, "NO_STATEMENT_EXIST", "当日无账单")
    token = secrets.token_urlsafe(24)
    SandboxBillDownload.objects.create(
        token=token,
        content=gzip.compress(content) if tar_type == "GZIP" else content,
        expires_at=timezone.now() + DOWNLOAD_TTL,
    )
    return 200, {
        "hash_type": "SHA1",
        "hash_value": hashlib.sha1(content).hexdigest(),  # noqa: S324 - WeChat's format
        "download_url": f"https://{HOST}{DOWNLOAD_PATH}?token={token}",
    }


@_api("GET", "/v3/bill/tradebill")
def apply_trade_bill(request: SandboxRequest) -> tuple[int, dict]:
    if request.query.get("bill_type", "ALL") not in ("ALL", "SUCCESS", "REFUND"):
        raise ApiError(400, "PARAM_ERROR", "bill_type 取值 ALL, SUCCESS, REFUND")
    return _bill_answer(request, trade_bill)


@_api("GET", "/v3/bill/fundflowbill")
def apply_fundflow_bill(request: SandboxRequest) -> tuple[int, dict]:
    if request.query.get("account_type", "BASIC") not in ("BASIC", "OPERATION", "FEES"):
        raise ApiError(400, "PARAM_ERROR", "account_type 取值 BASIC, OPERATION, FEES")
    return _bill_answer(request, fundflow_bill)


@route(HOST, "GET", DOWNLOAD_PATH)
def download(request: SandboxRequest) -> SandboxResponse:
    """The file itself: the request is authenticated, the answer is not signed."""
    try:
        _check_authorization(request, current_keys())
    except ApiError as exc:
        return SandboxResponse(exc.status, {"code": exc.code, "message": exc.message})
    found = SandboxBillDownload.objects.filter(token=request.query.get("token", "")).first()
    if found is None or found.expires_at <= timezone.now():
        return SandboxResponse(
            404, {"code": "RESOURCE_NOT_EXISTS", "message": "下载地址无效或已过期"}
        )
    return SandboxResponse(200, bytes(found.content), {"Content-Type": "application/octet-stream"})
