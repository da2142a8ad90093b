"""Writes of the staff console that are not another area's: the export audit row, and paying
withdrawals from the bank's result file (each row checked against the withdrawal, then paid
through the one wallet action, so the ledger entry and the seller's notice are the usual ones)."""

import logging
from dataclasses import dataclass

from marketplace.actions import wallet as wallet_actions
from marketplace.errors import DomainError
from marketplace.models import StaffExport, User, Withdrawal
from marketplace.money import parse_yuan, yuan_label

logger = logging.getLogger("marketplace.staff_console")


def record_export(
    *,
    staff: User,
    model: str,
    format: str,
    query: str,
    row_count: int,
    has_full_account_numbers: bool,
) -> StaffExport:
    export = StaffExport.objects.create(
        staff=staff,
        model=model,
        format=format,
        query=query[:1000],
        row_count=row_count,
        has_full_account_numbers=has_full_account_numbers,
    )
    logger.info(
        "staff %s exported %s rows of %s (%s, full numbers: %s)",
        staff.pk, row_count, model, format, has_full_account_numbers,
    )  # fmt: skip
    return export


@dataclass(frozen=True)
class BankRow:
    """One line of the bank's result file, as typed there (nothing parsed yet)."""

    line: int
    withdrawal_id: str
    amount: str
    reference: str


@dataclass(frozen=True)
class BankRowOutcome:
    row: BankRow
    is_paid: bool
    message: str


def _check_row(row: BankRow, seen: set[int]) -> tuple[Withdrawal | None, str]:
    raw_id = row.withdrawal_id.strip().lstrip("#")
    if not raw_id.isascii() or not raw_id.isdigit():
        return None, f"提现编号无效：{row.withdrawal_id!r}"
    withdrawal_id = int(raw_id)
    if withdrawal_id in seen:
        return None, f"提现 #{withdrawal_id} 在文件中重复出现"
    seen.add(withdrawal_id)
    withdrawal = Withdrawal.objects.filter(pk=withdrawal_id).first()
    if withdrawal is None:
        return None, f"找不到提现 #{withdrawal_id}"
    try:
        amount_fen = parse_yuan(row.amount)
    except ValueError:
        return None, f"金额格式错误：{row.amount!r}（以元为单位，最多两位小数）"
    if amount_fen != withdrawal.amount_fen:
        return None, (
            f"金额不符：文件为 {yuan_label(amount_fen)}，"
            f"提现 #{withdrawal_id} 为 {yuan_label(withdrawal.amount_fen)}"
        )
    if withdrawal.to != Withdrawal.Destination.ACCOUNT:
        return None, f"提现 #{withdrawal_id} 是微信零钱转账，由微信支付完成，不能手工标记"
    if withdrawal.status == Withdrawal.Status.REJECTED:
        return None, f"提现 #{withdrawal_id} 已被驳回"
    if not row.reference.strip():
        return None, f"提现 #{withdrawal_id} 缺少银行流水号"
    return withdrawal, ""


def mark_paid_from_bank_result(*, staff: User, rows: list[BankRow]) -> list[BankRowOutcome]:
    """Pays each row whose withdrawal id, amount and destination match; refuses every other row
    with its reason. Rows are independent (one transaction each, in the wallet action): a bad
    row never holds back a good one, and uploading the same file twice pays nothing twice."""
    outcomes = []
    seen: set[int] = set()
    for row in rows:
        withdrawal, refusal = _check_row(row, seen)
        if withdrawal is None:
            outcomes.append(BankRowOutcome(row, False, refusal))
            continue
        try:
            _, changed = wallet_actions.mark_withdrawal_paid(
                staff=staff, withdrawal_id=withdrawal.pk, reference=row.reference
            )
        except DomainError as exc:
            outcomes.append(BankRowOutcome(row, False, f"提现 #{withdrawal.pk}：{exc.message}"))
            continue
        message = (
            f"提现 #{withdrawal.pk} 已标记为已打款（{yuan_label(withdrawal.amount_fen)}）"
            if changed
            else f"提现 #{withdrawal.pk} 之前已打款，未做改动"
        )
        outcomes.append(BankRowOutcome(row, changed, message))
    return outcomes
