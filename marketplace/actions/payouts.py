"""Withdrawals to the user's own WeChat balance through WeChat Pay's merchant transfer (商家转账).

The withdrawal (created with its hold by `wallet.request_withdrawal`) carries a WechatTransfer
whose out_bill_no is derived from the withdrawal. A task creates it at WeChat once the request
commits; a lost task, a network error or a worker killed between WeChat accepting and us
recording are all resumed by the sweeper, which asks WeChat for that out_bill_no first and only
creates when WeChat has none - and WeChat itself answers the same bill for the same number.
WeChat's final word (the notification, or a query) settles the withdrawal exactly once: SUCCESS
→ paid, FAIL / CANCELLED → failed with the hold released; the ledger's shared
`withdrawal:<id>:settled` key makes a second settlement impossible.

Lock order, as in wallet.py: withdrawal row, then transfer row, then wallet row. WeChat is
called with no transaction open.
"""

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from marketplace.actions.notifications import (
    check_merchant,
    mapping,
    receive_notification,
    record_outcome,
    refusal,
)
from marketplace.actions.wallet import (
    Kind,
    _decide,
    _notify_withdrawal,
    payout_fernet,
    post_entry,
)
from marketplace.errors import Conflict, NotFound, UpstreamUnavailable
from marketplace.gateways import wechatpay
from marketplace.models import User
from marketplace.models.orders import PaymentNotification
from marketplace.models.wallet import WechatTransfer, WechatTransferEvent, Withdrawal
from marketplace.states import WITHDRAWAL

logger = logging.getLogger("marketplace.payouts")

State = WechatTransfer.State
MAX_ATTEMPTS = 8
SUBMIT_LEASE = timedelta(minutes=2)
# A created transfer not final after this long is queried (the notification may be lost).
QUERY_EVERY = timedelta(minutes=10)
TRANSFER_REMARK = "闲置交易提现"
FAILED_REASONS: dict[str, str] = {
    State.FAIL: "微信转账失败",
    State.CANCELLED: "转账已撤销（未在有效期内确认收款或已取消）",
}


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... capped at one hour."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def _lock(transfer_id: int) -> tuple[Withdrawal, WechatTransfer]:
    withdrawal_id = WechatTransfer.objects.values_list("withdrawal_id", flat=True).get(
        pk=transfer_id
    )
    withdrawal = (
        Withdrawal.objects.select_for_update(of=("self",))
        .select_related("account")
        .get(pk=withdrawal_id)
    )
    transfer = WechatTransfer.objects.select_for_update().get(pk=transfer_id)
    withdrawal.transfer = transfer
    return withdrawal, transfer


def _event(
    transfer: WechatTransfer, *, source: str, detail: str = "", actor: User | None = None
) -> None:
    WechatTransferEvent.objects.create(
        transfer=transfer, state=transfer.state, source=source, detail=detail[:300], actor=actor
    )


def _real_name(withdrawal: Withdrawal) -> str:
    if not withdrawal.real_name_encrypted:
        return ""
    return payout_fernet().decrypt(withdrawal.real_name_encrypted.encode()).decode()


# --- creating the transfer ---------------------------------------------------------------------


def _claim(transfer_id: int, now: datetime) -> tuple[Withdrawal, WechatTransfer] | None:
    with transaction.atomic(durable=True):
        withdrawal, transfer = _lock(transfer_id)
        if transfer.state != State.NOT_CREATED or withdrawal.status != Withdrawal.Status.PENDING:
            return None
        transfer.attempts += 1
        transfer.next_attempt_at = now + SUBMIT_LEASE
        transfer.save(update_fields=["attempts", "next_attempt_at"])
        return withdrawal, transfer


def submit_transfer(*, transfer_id: int, now: datetime | None = None) -> str:
    """Creates the transfer at WeChat, once. Safe to run twice at once and after a crash: a
    repeat first asks WeChat whether the bill exists, and WeChat answers the same bill for the
    same out_bill_no anyway."""
    now = now or timezone.now()
    claimed = _claim(transfer_id, now)
    if claimed is None:
        return "not_due"
    withdrawal, transfer = claimed
    try:
        answer = None
        if transfer.attempts > 1:
            # An earlier attempt may have been accepted with its answer lost (a timeout, or the
            # worker killed before it recorded): WeChat knows the bill by our number.
            answer = wechatpay.query_transfer(out_bill_no=transfer.out_bill_no)
        # A query does not carry package_info; creating again with the same number and
        # parameters answers the existing bill with it, and creates nothing new.
        if answer is None or (
            answer.get("state") == State.WAIT_USER_CONFIRM and not answer.get("package_info")
        ):
            answer = wechatpay.create_transfer(
                out_bill_no=transfer.out_bill_no,
                openid=transfer.openid,
                amount_fen=transfer.amount_fen,
                remark=TRANSFER_REMARK,
                user_name=_real_name(withdrawal),
            )
    except wechatpay.PaymentGatewayError as exc:
        return _record_failure(transfer_id, exc, now)
    return record_transfer(transfer_id=transfer_id, remote=answer, source="create")


def _record_failure(transfer_id: int, exc: wechatpay.PaymentGatewayError, now: datetime) -> str:
    with transaction.atomic(durable=True):
        withdrawal, transfer = _lock(transfer_id)
        if transfer.state != State.NOT_CREATED or withdrawal.status != Withdrawal.Status.PENDING:
            return "not_due"
        transfer.last_error = str(exc)[:500]
        if exc.retryable and transfer.attempts < MAX_ATTEMPTS:
            transfer.next_attempt_at = now + backoff(transfer.attempts)
            transfer.save(update_fields=["last_error", "next_attempt_at"])
            _event(transfer, source="create", detail=f"retry later: {exc.code or exc.status}")
            outcome = "retry_later"
        else:
            # WeChat refused the bill itself (or kept failing): it can never pay, release.
            transfer.next_attempt_at = None
            transfer.save(update_fields=["last_error", "next_attempt_at"])
            _event(transfer, source="create", detail=f"refused: {exc.code or exc.status}")
            _settle(withdrawal, transfer, State.FAIL, fail_reason=str(exc.code or "REFUSED"))
            outcome = "failed"
    logger.warning("transfer %s: %s (%s)", transfer.out_bill_no, exc, outcome)
    return outcome


def _remote_mismatch(transfer: WechatTransfer, remote: Mapping) -> str | None:
    if str(remote.get("out_bill_no", "")) != transfer.out_bill_no:
        return "out_bill_no_mismatch"
    amount = remote.get("transfer_amount")
    if amount is not None and (isinstance(amount, bool) or amount != transfer.amount_fen):
        return "amount_mismatch"
    openid = remote.get("openid")
    if openid is not None and openid != transfer.openid:
        return "payer_mismatch"
    return None


def record_transfer(*, transfer_id: int, remote: Mapping, source: str) -> str:
    """Applies what WeChat says about the bill (a create answer or a query), under the locks."""
    with transaction.atomic(durable=True):
        withdrawal, transfer = _lock(transfer_id)
        mismatch = _remote_mismatch(transfer, remote)
        if mismatch:
            return refusal(mismatch, kind="transfer", about=transfer.out_bill_no, detail=source)
        state = str(remote.get("state", ""))
        if state not in State.values or state == State.NOT_CREATED:
            return refusal(
                "unknown_state", kind="transfer", about=transfer.out_bill_no, detail=state
            )
        return _apply(withdrawal, transfer, remote, source=source)


def _apply(
    withdrawal: Withdrawal, transfer: WechatTransfer, remote: Mapping, *, source: str
) -> str:
    state = str(remote.get("state", ""))
    if transfer.state in WechatTransfer.FINAL_STATES:
        return "duplicate"
    now = timezone.now()
    fields = ["state", "next_attempt_at", "last_error"]
    transfer.state = state
    transfer.last_error = ""
    transfer.next_attempt_at = now + QUERY_EVERY
    if remote.get("transfer_bill_no") and not transfer.transfer_bill_no:
        transfer.transfer_bill_no = str(remote["transfer_bill_no"])[:64]
        fields.append("transfer_bill_no")
    if remote.get("package_info"):
        transfer.package_info = str(remote["package_info"])
        fields.append("package_info")
    if transfer.accepted_at is None:
        transfer.accepted_at = now
        transfer.confirm_deadline_at = now + timedelta(
            seconds=settings.WECHATPAY_TRANSFER_CONFIRM_WINDOW_SECONDS
        )
        fields += ["accepted_at", "confirm_deadline_at"]
    transfer.save(update_fields=fields)
    _event(transfer, source=source, detail=str(remote.get("fail_reason", "")))
    if state in WechatTransfer.FINAL_STATES:
        return _settle(withdrawal, transfer, state, fail_reason=str(remote.get("fail_reason", "")))
    if withdrawal.status == Withdrawal.Status.PENDING and transfer.package_info:
        WITHDRAWAL.move(withdrawal, Withdrawal.Status.AWAITING_USER_CONFIRMATION)
        _notify_withdrawal(withdrawal)
        return "awaiting_user_confirmation"
    return f"transfer_{state.lower()}"


def _settle(
    withdrawal: Withdrawal, transfer: WechatTransfer, state: str, *, fail_reason: str
) -> str:
    """WeChat's final word on a locked withdrawal and transfer, applied once."""
    if withdrawal.status in (Withdrawal.Status.PAID, Withdrawal.Status.FAILED):
        return "duplicate"
    transfer.state = state
    transfer.fail_reason = fail_reason[:100]
    transfer.finished_at = timezone.now()
    transfer.next_attempt_at = None
    transfer.save(update_fields=["state", "fail_reason", "finished_at", "next_attempt_at"])
    key = f"withdrawal:{withdrawal.pk}:settled"
    if state == State.SUCCESS:
        post_entry(
            user_id=withdrawal.user_id,
            kind=Kind.WITHDRAWAL_PAID,
            available_delta_fen=0,
            frozen_delta_fen=-withdrawal.amount_fen,
            unique_key=key,
            withdrawal=withdrawal,
            note=f"WeChat transfer {transfer.transfer_bill_no or transfer.out_bill_no}",
        )
        reference = transfer.transfer_bill_no or transfer.out_bill_no
        _decide(withdrawal, staff=None, status=Withdrawal.Status.PAID, transfer_reference=reference)
        outcome = "paid"
    else:
        reason = FAILED_REASONS.get(state, "微信转账失败")
        if fail_reason:
            reason = f"{reason}: {fail_reason}"
        post_entry(
            user_id=withdrawal.user_id,
            kind=Kind.WITHDRAWAL_RELEASE,
            available_delta_fen=withdrawal.amount_fen,
            frozen_delta_fen=-withdrawal.amount_fen,
            unique_key=key,
            withdrawal=withdrawal,
            note=reason,
        )
        _decide(withdrawal, staff=None, status=Withdrawal.Status.FAILED, reject_reason=reason[:200])
        outcome = "failed"
    _notify_withdrawal(withdrawal)
    logger.info("withdrawal %s %s by transfer %s", withdrawal.pk, outcome, transfer.out_bill_no)
    return outcome


# --- WeChat's notification ---------------------------------------------------------------------


def handle_transfer_notification(*, headers: Mapping[str, str], body: bytes) -> str:
    """Verifies, records and applies a MCHTRANSFER.BILL.FINISHED notification, once, when it is
    exactly one of our transfers (merchant, bill number, amount, payee); anything else is
    refused. Raises NotificationRejected for a forged or stale one."""
    record, notification = receive_notification(
        kind=PaymentNotification.Kind.TRANSFER, headers=headers, body=body
    )
    resource = notification.resource
    out_bill_no = str(resource.get("out_bill_no", ""))[:32]
    PaymentNotification.objects.filter(pk=record.pk).update(out_trade_no=out_bill_no)
    about = f"transfer {out_bill_no or '?'}"
    reason = check_merchant(resource, with_appid=False)
    if reason:
        detail = f"mchid {resource.get('mchid')!r}"
        return record_outcome(record, refusal(reason, kind="transfer", about=about, detail=detail))
    if notification.event_type != "MCHTRANSFER.BILL.FINISHED":
        return record_outcome(record, "ignored: not a transfer result")
    transfer_id = (
        WechatTransfer.objects.filter(out_bill_no=out_bill_no).values_list("pk", flat=True).first()
    )
    if transfer_id is None:
        return record_outcome(record, refusal("unknown_transfer", kind="transfer", about=about))
    with transaction.atomic(durable=True):
        withdrawal, transfer = _lock(transfer_id)
        mismatch = _remote_mismatch(transfer, mapping(resource))
        if mismatch or "transfer_amount" not in resource:
            outcome = refusal(mismatch or "amount_missing", kind="transfer", about=about)
        elif str(resource.get("state")) not in WechatTransfer.FINAL_STATES:
            outcome = "ignored: not final"
        else:
            outcome = _apply(withdrawal, transfer, resource, source="notification")
    return record_outcome(record, outcome)


# --- the sweeper and staff ----------------------------------------------------------------------


def settle_by_query(*, transfer_id: int, now: datetime | None = None) -> str:
    """Asks WeChat about a created transfer; past the confirmation window an unconfirmed one is
    cancelled first (WeChat closes it too), so the hold never stays frozen."""
    now = now or timezone.now()
    transfer = WechatTransfer.objects.get(pk=transfer_id)
    # The next look is due in QUERY_EVERY whatever this one finds (an answer we refuse, or a bill
    # WeChat does not know, must not be asked about every minute).
    WechatTransfer.objects.filter(pk=transfer_id).exclude(
        state__in=WechatTransfer.FINAL_STATES
    ).update(next_attempt_at=now + QUERY_EVERY)
    try:
        remote = wechatpay.query_transfer(out_bill_no=transfer.out_bill_no)
        if (
            remote is not None
            and remote.get("state") == State.WAIT_USER_CONFIRM
            and transfer.confirm_deadline_at is not None
            and transfer.confirm_deadline_at <= now
        ):
            wechatpay.cancel_transfer(out_bill_no=transfer.out_bill_no)
            remote = wechatpay.query_transfer(out_bill_no=transfer.out_bill_no)
    except wechatpay.PaymentGatewayError as exc:
        logger.warning("query of transfer %s failed: %s", transfer.out_bill_no, exc)
        WechatTransfer.objects.filter(pk=transfer_id).update(
            next_attempt_at=now + QUERY_EVERY, last_error=str(exc)[:500]
        )
        return "query_failed"
    if remote is None:
        return "unknown_at_wechat"
    return record_transfer(transfer_id=transfer_id, remote=remote, source="query")


def sweep_transfers(*, now: datetime | None = None) -> dict[str, int]:
    """Resumes transfers whose creation task was lost or failed, and queries those WeChat has
    not finished (a lost notification, an expired confirmation window)."""
    now = now or timezone.now()
    outcomes: dict[str, int] = {}
    due = WechatTransfer.objects.filter(next_attempt_at__lte=now).exclude(
        state__in=WechatTransfer.FINAL_STATES
    )
    for transfer_id, state in list(due.values_list("pk", "state")[:500]):
        if state == State.NOT_CREATED:
            outcome = submit_transfer(transfer_id=transfer_id, now=now)
        else:
            outcome = settle_by_query(transfer_id=transfer_id, now=now)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def cancel_transfer(*, staff: User, withdrawal_id: int) -> str:
    """Staff cancel a transfer the user has not confirmed: WeChat closes the bill, the hold is
    released. A confirmed (or final) one is refused with 409."""
    transfer = (
        WechatTransfer.objects.select_related("withdrawal")
        .filter(withdrawal_id=withdrawal_id)
        .first()
    )
    if transfer is None:
        raise NotFound("No WeChat transfer for this withdrawal.", code="transfer_not_found")
    if transfer.withdrawal.status != Withdrawal.Status.AWAITING_USER_CONFIRMATION:
        # Not yet created at WeChat (a creation may be in flight) or already settled.
        raise Conflict(
            "Only a transfer waiting for the user's confirmation can be cancelled.",
            code="transfer_not_cancellable",
        )
    with transaction.atomic(durable=True):
        _, locked = _lock(transfer.pk)
        _event(locked, source="staff_cancel", detail=f"requested by {staff.username}", actor=staff)
    try:
        wechatpay.cancel_transfer(out_bill_no=transfer.out_bill_no)
        remote = wechatpay.query_transfer(out_bill_no=transfer.out_bill_no)
    except wechatpay.PaymentGatewayError as exc:
        if exc.code == "INVALID_REQUEST":
            raise Conflict(
                "WeChat refused to cancel: the user may have confirmed it.",
                code="transfer_not_cancellable",
            ) from exc
        raise UpstreamUnavailable("WeChat Pay is unavailable; try again.") from exc
    if remote is None:
        return "unknown_at_wechat"
    return record_transfer(transfer_id=transfer.pk, remote=remote, source="staff_cancel")
