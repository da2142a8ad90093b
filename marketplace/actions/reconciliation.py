"""Daily reconciliation: our payments, refunds and transfers against WeChat Pay's trade and
fund-flow bills, and our own books against themselves (docs/payout.md).

A day (Asia/Shanghai) is matched both ways: every bill line against our records (by
out_trade_no / out_refund_no / out_bill_no, whatever day we recorded it), and every one of our
records of that day against the bill. Each difference is one ReconciliationItem with both
sides' evidence; a re-run updates the same rows (one per day, source, number and kind), drops
unresolved ones that are no longer found and never doubles one.
"""

import csv
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from marketplace.errors import Unprocessable
from marketplace.gateways import wechatpay
from marketplace.models import User
from marketplace.models.orders import Order, OrderHistory, Refund
from marketplace.models.wallet import (
    LedgerEntry,
    ReconciliationDay,
    ReconciliationItem,
    Wallet,
    WechatTransfer,
)
from marketplace.money import sale_split
from marketplace.states import OrderStatus

logger = logging.getLogger("marketplace.reconciliation")

CHINA = ZoneInfo("Asia/Shanghai")
Item = ReconciliationItem
TRADE_SUMMARY_FIRST = "总交易单数"
FUNDFLOW_SUMMARY_FIRST = "资金流水总笔数"
LEFT_ESCROW = (OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.CLOSED)


def yesterday() -> date:
    return timezone.now().astimezone(CHINA).date() - timedelta(days=1)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=CHINA)
    return start, start + timedelta(days=1)


# --- parsing WeChat's CSV -----------------------------------------------------------------------


def to_fen(value: str) -> int:
    """'12.34' yuan → 1234 fen, exactly (no float on the way)."""
    try:
        amount = Decimal(value.strip() or "0") * 100
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if amount != amount.to_integral_value():
        raise ValueError(f"more than two decimals: {value!r}")
    return int(amount)


def parse_bill(text: str, *, summary_first: str) -> tuple[list[dict[str, str]], dict[str, str]]:
    """WeChat's bill CSV → (rows as {header: value}, summary {header: value}). Every field of a
    data row is prefixed with a backtick so spreadsheets keep long numbers as text; it goes."""
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    summary: dict[str, str] = {}
    lines: Iterator[list[str]] = iter(reader)
    for cells in lines:
        cells = [cell.strip() for cell in cells]
        if not any(cells):
            continue
        if header is None:
            header = cells
            continue
        if cells[0] == summary_first:
            values = next(lines, [])
            summary = dict(zip(cells, (v.strip().lstrip("`") for v in values), strict=False))
            break
        rows.append(dict(zip(header, (cell.lstrip("`") for cell in cells), strict=False)))
    return rows, summary


@dataclass(frozen=True)
class Line:
    source: str
    reference: str
    amount_fen: int
    status: str
    evidence: dict[str, Any]


def trade_lines(rows: list[dict[str, str]]) -> dict[tuple[str, str], Line]:
    lines: dict[tuple[str, str], Line] = {}
    for row in rows:
        if row.get("交易状态") == "REFUND":
            reference = row.get("商户退款单号", "")
            line = Line(Item.Source.REFUND, reference, to_fen(row.get("退款金额", "0")),
                        row.get("退款状态", ""), row)  # fmt: skip
        else:
            reference = row.get("商户订单号", "")
            line = Line(Item.Source.PAYMENT, reference, to_fen(row.get("应结订单金额", "0")),
                        row.get("交易状态", ""), row)  # fmt: skip
        lines[(line.source, reference)] = line
    return lines


def fundflow_lines(rows: list[dict[str, str]]) -> tuple[dict[tuple[str, str], Line], int]:
    """Transfers out of the account, and WeChat's net fees for the day (fen)."""
    lines: dict[tuple[str, str], Line] = {}
    fees = 0
    for row in rows:
        fen = to_fen(row.get("收支金额（元）", "0"))
        if row.get("业务名称") == "手续费":
            fees += fen if row.get("收支类型") == "支出" else -fen
        elif row.get("业务名称") == "商家转账":
            reference = row.get("业务凭证号", "")
            lines[(Item.Source.TRANSFER, reference)] = Line(
                Item.Source.TRANSFER, reference, fen, "SUCCESS", row
            )
    return lines, fees


# --- our side -----------------------------------------------------------------------------------


def our_lines(day: date) -> dict[tuple[str, str], Line]:
    start, end = day_bounds(day)
    lines: dict[tuple[str, str], Line] = {}
    for order in Order.objects.filter(paid_at__gte=start, paid_at__lt=end).exclude(
        transaction_id=""
    ):
        lines[(Item.Source.PAYMENT, order.order_no)] = Line(
            Item.Source.PAYMENT, order.order_no, order.price_fen, "SUCCESS", _order_evidence(order)
        )
    for refund in Refund.objects.filter(succeeded_at__gte=start, succeeded_at__lt=end):
        lines[(Item.Source.REFUND, refund.out_refund_no)] = Line(
            Item.Source.REFUND, refund.out_refund_no, refund.amount_fen, "SUCCESS",
            _refund_evidence(refund),
        )  # fmt: skip
    for transfer in WechatTransfer.objects.filter(
        state=WechatTransfer.State.SUCCESS, finished_at__gte=start, finished_at__lt=end
    ):
        lines[(Item.Source.TRANSFER, transfer.out_bill_no)] = Line(
            Item.Source.TRANSFER, transfer.out_bill_no, transfer.amount_fen, "SUCCESS",
            _transfer_evidence(transfer),
        )  # fmt: skip
    return lines


def _order_evidence(order: Order) -> dict[str, Any]:
    return {
        "order_no": order.order_no,
        "price_fen": order.price_fen,
        "status": order.status,
        "transaction_id": order.transaction_id,
        "paid_at": order.paid_at.isoformat() if order.paid_at else None,
    }


def _refund_evidence(refund: Refund) -> dict[str, Any]:
    return {
        "out_refund_no": refund.out_refund_no,
        "amount_fen": refund.amount_fen,
        "status": refund.status,
        "succeeded_at": refund.succeeded_at.isoformat() if refund.succeeded_at else None,
    }


def _transfer_evidence(transfer: WechatTransfer) -> dict[str, Any]:
    return {
        "out_bill_no": transfer.out_bill_no,
        "amount_fen": transfer.amount_fen,
        "state": transfer.state,
        "withdrawal_id": transfer.withdrawal_id,
        "finished_at": transfer.finished_at.isoformat() if transfer.finished_at else None,
    }


Ours = dict[tuple[str, str], tuple[dict[str, Any], int, bool]]
# A day's bill can hold tens of thousands of lines; SQLite caps a query's parameters.
LOOKUP_CHUNK = 900


def _in_chunks(manager: Any, field: str, values: set[str]) -> Iterator[Any]:
    ordered = sorted(values)
    for index in range(0, len(ordered), LOOKUP_CHUNK):
        yield from manager.filter(**{f"{field}__in": ordered[index : index + LOOKUP_CHUNK]})


def _ours_for(lines: list[Line]) -> Ours:
    """Our records of these bill lines whatever day we recorded them, in one query per source:
    {(source, reference): (evidence, amount, is settled)}."""
    wanted: dict[str, set[str]] = {}
    for line in lines:
        wanted.setdefault(line.source, set()).add(line.reference)
    found: Ours = {}
    for order in _in_chunks(Order.objects, "order_no", wanted.get(Item.Source.PAYMENT, set())):
        found[(Item.Source.PAYMENT, order.order_no)] = (
            _order_evidence(order), order.price_fen, bool(order.transaction_id)
        )  # fmt: skip
    for refund in _in_chunks(
        Refund.objects, "out_refund_no", wanted.get(Item.Source.REFUND, set())
    ):
        found[(Item.Source.REFUND, refund.out_refund_no)] = (
            _refund_evidence(refund), refund.amount_fen, refund.status == Refund.Status.SUCCEEDED
        )  # fmt: skip
    for transfer in _in_chunks(
        WechatTransfer.objects, "out_bill_no", wanted.get(Item.Source.TRANSFER, set())
    ):
        found[(Item.Source.TRANSFER, transfer.out_bill_no)] = (
            _transfer_evidence(transfer),
            transfer.amount_fen,
            transfer.state == WechatTransfer.State.SUCCESS,
        )
    return found


def find_differences(
    theirs: dict[tuple[str, str], Line], ours: dict[tuple[str, str], Line]
) -> list[dict[str, Any]]:
    found = []
    ours_of_theirs = _ours_for(list(theirs.values()))
    for key, line in theirs.items():
        evidence, amount, settled = ours_of_theirs.get(key, (None, None, False))
        kind = None
        if evidence is None:
            kind = Item.Kind.MISSING_OURS
        elif not settled:
            kind = Item.Kind.STATUS_DIFFERS
        elif amount != line.amount_fen:
            kind = Item.Kind.AMOUNT_DIFFERS
        if kind:
            found.append(
                {"kind": kind, "source": line.source, "reference": line.reference,
                 "ours": evidence, "theirs": {"amount_fen": line.amount_fen, "status": line.status,
                                              "row": line.evidence}}
            )  # fmt: skip
    for key, line in ours.items():
        if key not in theirs:
            found.append(
                {"kind": Item.Kind.MISSING_THEIRS, "source": line.source,
                 "reference": line.reference, "ours": line.evidence, "theirs": None}
            )  # fmt: skip
    return found


# --- our own books ------------------------------------------------------------------------------


def _escrow_at(moment: datetime) -> int:
    """Money held at `moment`: paid orders not yet completed, cancelled or closed, plus refunds
    requested and not yet paid out."""
    left = OrderHistory.objects.filter(to_status__in=LEFT_ESCROW, at__lt=moment).values("order_id")
    held = (
        Order.objects.filter(paid_at__lt=moment)
        .exclude(transaction_id="")
        .exclude(pk__in=left)
        .aggregate(s=Coalesce(Sum("price_fen"), 0))["s"]
    )
    owed = (
        Refund.objects.filter(created_at__lt=moment)
        .filter(Q(succeeded_at__isnull=True) | Q(succeeded_at__gte=moment))
        .aggregate(s=Coalesce(Sum("amount_fen"), 0))["s"]
    )
    return held + owed


def _ledger_total_before(moment: datetime) -> int:
    sums = LedgerEntry.objects.filter(created_at__lt=moment).aggregate(
        a=Coalesce(Sum("available_delta_fen"), 0), f=Coalesce(Sum("frozen_delta_fen"), 0)
    )
    return sums["a"] + sums["f"]


def books_for(day: date) -> dict[str, Any]:
    """received = refunds paid out + change in escrow + credits to sellers + commission, and for
    sellers' balances opening + credits − payouts (+ adjustments) = closing."""
    start, end = day_bounds(day)
    received = (
        Order.objects.filter(paid_at__gte=start, paid_at__lt=end)
        .exclude(transaction_id="")
        .aggregate(s=Coalesce(Sum("price_fen"), 0))["s"]
    )
    refunded = Refund.objects.filter(succeeded_at__gte=start, succeeded_at__lt=end).aggregate(
        s=Coalesce(Sum("amount_fen"), 0)
    )["s"]
    escrow_change = _escrow_at(end) - _escrow_at(start)
    day_entries = LedgerEntry.objects.filter(created_at__gte=start, created_at__lt=end)
    credits = day_entries.filter(kind=LedgerEntry.Kind.SALE_CREDIT).aggregate(
        s=Coalesce(Sum("available_delta_fen"), 0)
    )["s"]
    # Commission from the orders themselves (not the ledger), so a credit posted twice or
    # never shows as books that do not add up.
    completed_ids = OrderHistory.objects.filter(
        to_status=OrderStatus.COMPLETED, at__gte=start, at__lt=end
    ).values("order_id")
    commission = 0
    for order in Order.objects.filter(pk__in=completed_ids).select_related("refund"):
        refund = getattr(order, "refund", None)
        part, _ = sale_split(
            price_fen=order.price_fen,
            refunded_fen=refund.amount_fen if refund else 0,
            rate_bp=order.commission_rate_bp or 0,
        )
        commission += part
    payouts = -day_entries.filter(kind=LedgerEntry.Kind.WITHDRAWAL_PAID).aggregate(
        s=Coalesce(Sum("frozen_delta_fen"), 0)
    )["s"]
    adjustments = day_entries.filter(kind=LedgerEntry.Kind.ADJUSTMENT).aggregate(
        s=Coalesce(Sum("available_delta_fen"), 0)
    )["s"]
    opening, closing = _ledger_total_before(start), _ledger_total_before(end)
    money_ok = received == refunded + escrow_change + credits + commission
    balances_ok = opening + credits - payouts + adjustments == closing
    wallets = Wallet.objects.aggregate(
        a=Coalesce(Sum("available_fen"), 0), f=Coalesce(Sum("frozen_fen"), 0)
    )
    ledger_now = _ledger_total_before(timezone.now() + timedelta(seconds=1))
    wallets_ok = wallets["a"] + wallets["f"] == ledger_now
    return {
        "received_fen": received,
        "refunded_fen": refunded,
        "escrow_change_fen": escrow_change,
        "credits_fen": credits,
        "commission_fen": commission,
        "money_balanced": money_ok,
        "balances_opening_fen": opening,
        "payouts_fen": payouts,
        "adjustments_fen": adjustments,
        "balances_closing_fen": closing,
        "balances_balanced": balances_ok,
        "wallets_match_ledger": wallets_ok,
    }


# --- the run ------------------------------------------------------------------------------------


def parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Unprocessable("The date is YYYY-MM-DD.", code="invalid_date") from None


def reconcile_day(*, day: date) -> ReconciliationDay:
    """Downloads and matches the day's bills, checks the books, records the findings. Safe to
    run again: the same findings update the same items."""
    bill_date = day.isoformat()
    now = timezone.now()
    try:
        trade = wechatpay.trade_bill(bill_date=bill_date)
        fundflow = wechatpay.fundflow_bill(bill_date=bill_date)
        trade_rows, _ = (
            parse_bill(trade.text, summary_first=TRADE_SUMMARY_FIRST) if trade else ([], {})
        )
        flow_rows, _ = (
            parse_bill(fundflow.text, summary_first=FUNDFLOW_SUMMARY_FIRST)
            if fundflow
            else ([], {})
        )
        theirs = trade_lines(trade_rows)
        transfers, fees = fundflow_lines(flow_rows)
        theirs.update(transfers)
    except (wechatpay.PaymentGatewayError, ValueError) as exc:
        logger.error("reconciliation of %s failed: %s", bill_date, exc)
        with transaction.atomic(durable=True):
            record, _ = ReconciliationDay.objects.get_or_create(
                date=day, defaults={"status": ReconciliationDay.Status.FAILED, "checked_at": now}
            )
            record.status = ReconciliationDay.Status.FAILED
            record.last_error = str(exc)[:500]
            record.runs += 1
            record.checked_at = now
            record.save()
        return record
    findings = find_differences(theirs, our_lines(day))
    books = books_for(day)
    with transaction.atomic(durable=True):
        record, _ = ReconciliationDay.objects.select_for_update().get_or_create(
            date=day, defaults={"status": ReconciliationDay.Status.CLEAN, "checked_at": now}
        )
        keep = []
        for finding in findings:
            item, _ = Item.objects.update_or_create(
                day=record,
                source=finding["source"],
                reference=finding["reference"][:64],
                kind=finding["kind"],
                defaults={"ours": finding["ours"], "theirs": finding["theirs"]},
            )
            keep.append(item.pk)
        # A difference no longer found (fixed since) goes, unless staff already resolved it.
        record.items.filter(is_resolved=False).exclude(pk__in=keep).delete()
        record.status = (
            ReconciliationDay.Status.DIFFERENCES if findings else ReconciliationDay.Status.CLEAN
        )
        record.trade_bill_sha1 = trade.sha1 if trade else ""
        record.fundflow_bill_sha1 = fundflow.sha1 if fundflow else ""
        record.trade_rows, record.fundflow_rows = len(trade_rows), len(flow_rows)
        record.fees_fen = fees
        record.books = books
        record.is_books_balanced = all(
            books[name] for name in ("money_balanced", "balances_balanced", "wallets_match_ledger")
        )
        record.runs += 1
        record.last_error = ""
        record.checked_at = now
        record.save()
    logger.info("reconciled %s: %s, %d item(s)", bill_date, record.status, len(findings))
    return record


def resolve_item(*, staff: User, item_id: int, note: str) -> tuple[ReconciliationItem, bool]:
    """Staff mark a difference resolved, saying how; resolving a resolved one changes nothing."""
    note = note.strip()
    if not note or len(note) > 300:
        raise Unprocessable("The note is 1-300 characters.", code="invalid_note")
    with transaction.atomic(durable=True):
        item = Item.objects.select_for_update().get(pk=item_id)
        if item.is_resolved:
            return item, False
        item.is_resolved = True
        item.resolution_note = note
        item.resolved_by = staff
        item.resolved_at = timezone.now()
        item.save(update_fields=["is_resolved", "resolution_note", "resolved_by", "resolved_at"])
    logger.info("reconciliation item %s resolved by %s", item_id, staff.username)
    return item, True
