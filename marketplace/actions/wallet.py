"""The ledger's one writer, the sale credit, payout accounts and withdrawals (SPEC §5).

Every balance change goes through post_entry, under the wallet's row lock. Lock order, kept
by every action here so none can deadlock another: withdrawal row, then wallet row.
"""

import functools
import logging
import re
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from marketplace.actions.accounts import check_not_banned
from marketplace.errors import Conflict, NotFound, Unprocessable
from marketplace.models import User
from marketplace.models.orders import Order, Refund
from marketplace.models.wallet import (
    LedgerEntry,
    PayoutAccount,
    Wallet,
    WechatTransfer,
    WechatTransferEvent,
    Withdrawal,
)
from marketplace.money import sale_split
from marketplace.representations import entry_data, wallet_data, withdrawal_data
from marketplace.selectors import platform_settings
from marketplace.states import WITHDRAWAL, OrderStatus
from project.tasking import enqueue_on_commit
from realtime.push import emit

logger = logging.getLogger("marketplace.wallet")
Kind = LedgerEntry.Kind
# While one creation of a transfer is in flight, the sweeper leaves it alone this long.
TRANSFER_SUBMIT_LEASE = timedelta(minutes=2)


def lock_wallet(*, user_id: int) -> Wallet:
    """The user's wallet row, created on first use, locked for the caller's transaction."""
    wallet = Wallet.objects.select_for_update().filter(user_id=user_id).first()
    if wallet is None:
        try:
            with transaction.atomic():
                Wallet.objects.create(user_id=user_id)
        except IntegrityError:  # created concurrently
            pass
        wallet = Wallet.objects.select_for_update().get(user_id=user_id)
    return wallet


def post_entry(
    *,
    user_id: int,
    kind: str,
    available_delta_fen: int,
    frozen_delta_fen: int = 0,
    unique_key: str,
    order: Order | None = None,
    withdrawal: Withdrawal | None = None,
    note: str = "",
    created_by: User | None = None,
) -> LedgerEntry | None:
    """Appends one entry and moves the balance with it, under the wallet's row lock.
    Returns None when an entry with this unique_key exists (already posted: nothing to do).
    Raises Conflict when a bucket would go negative. Must run inside a transaction."""
    wallet = lock_wallet(user_id=user_id)
    if LedgerEntry.objects.filter(unique_key=unique_key).exists():
        return None
    available = wallet.available_fen + available_delta_fen
    frozen = wallet.frozen_fen + frozen_delta_fen
    if available < 0 or frozen < 0:
        raise Conflict("The balance is not enough for this.", code="insufficient_balance")
    entry = LedgerEntry.objects.create(
        wallet=wallet,
        kind=kind,
        available_delta_fen=available_delta_fen,
        frozen_delta_fen=frozen_delta_fen,
        available_after_fen=available,
        frozen_after_fen=frozen,
        order=order,
        withdrawal=withdrawal,
        unique_key=unique_key,
        note=note[:200],
        created_by=created_by,
    )
    wallet.available_fen, wallet.frozen_fen = available, frozen
    if kind == Kind.SALE_CREDIT:
        wallet.total_earned_fen += available_delta_fen
    wallet.save(update_fields=["available_fen", "frozen_fen", "total_earned_fen", "updated_at"])
    return entry


def credit_sale(*, order_id: int) -> LedgerEntry | None:
    """Credits the seller price − commission for a completed order, exactly once."""
    with transaction.atomic(durable=True):
        order = Order.objects.select_for_update().get(pk=order_id)
        if order.status != OrderStatus.COMPLETED:
            return None
        # A dispute settled with a partial refund leaves the seller the rest of the price.
        refunded = Refund.objects.filter(order=order).values_list("amount_fen", flat=True).first()
        commission, seller_share = sale_split(
            price_fen=order.price_fen,
            shipping_fee_fen=order.shipping_fee_fen,
            refunded_fen=refunded or 0,
            rate_bp=order.commission_rate_bp or 0,
        )
        entry = post_entry(
            user_id=order.seller_id,
            kind=Kind.SALE_CREDIT,
            available_delta_fen=seller_share,
            unique_key=f"order:{order.pk}:sale_credit",
            order=order,
            note=(
                f"{order.order_no}: {order.price_fen} + shipping {order.shipping_fee_fen}"
                f" - commission {commission}"
            ),
        )
        if entry is not None:
            entry.order = order
            emit(
                user_ids=[order.seller_id],
                type="wallet.credited",
                data={**entry_data(entry), "wallet": wallet_data(entry.wallet)},
            )
            logger.info(
                "credited %s fen to %s for %s", seller_share, order.seller_id, order.order_no
            )
    return entry


# --- Payout account numbers: encrypted at rest -----------------------------------------------


@functools.lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def payout_fernet() -> MultiFernet:
    """The first key of PAYOUT_ENCRYPTION_KEYS encrypts; every one of them decrypts."""
    return _fernet(tuple(settings.PAYOUT_ENCRYPTION_KEYS))


def encrypt_account_no(account_no: str) -> str:
    return payout_fernet().encrypt(account_no.encode()).decode()


def reveal_account_no(account: PayoutAccount) -> str | None:
    """The full number, for staff allowed to pay out; None when no configured key opens it
    (a key was dropped from PAYOUT_ENCRYPTION_KEYS before rotation finished)."""
    try:
        return payout_fernet().decrypt(account.account_no_encrypted.encode()).decode()
    except InvalidToken:
        logger.error("payout account %s cannot be decrypted with the configured keys", account.pk)
        return None


def rotate_payout_keys(*, batch_size: int = 500) -> int:
    """Re-encrypts every account number with the first key, so older keys can be retired.
    Safe to run twice or while the API runs: each row is rewritten under its own lock."""
    fernet = payout_fernet()
    rotated = 0
    last_id = 0
    while True:
        ids = list(
            PayoutAccount.objects.filter(pk__gt=last_id)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return rotated
        for account_id in ids:
            with transaction.atomic(durable=True):
                account = PayoutAccount.objects.select_for_update().get(pk=account_id)
                account.account_no_encrypted = fernet.rotate(
                    account.account_no_encrypted.encode()
                ).decode()
                account.save(update_fields=["account_no_encrypted"])
                rotated += 1
        last_id = ids[-1]


# --- Payout accounts ------------------------------------------------------------------------

MAX_PAYOUT_ACCOUNTS = 10
_PHONE = re.compile(r"^1[3-9][0-9]{9}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_WECHAT_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{5,19}$")
_CARD = re.compile(r"^[0-9]{12,19}$")


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _invalid(field: str, message: str, code: str, **params: object) -> Unprocessable:
    english = message % params if params else message
    return Unprocessable(
        message,
        code=code,
        params=params,
        errors=[{"loc": ["body", "payload", field], "msg": english, "type": code}],
    )


def check_payout_account(*, type: str, account_no: str, bank_name: str) -> str:
    """The account number normalised for storage, or a 422 saying what is wrong with it."""
    if type == PayoutAccount.Type.ALIPAY:
        number = account_no.strip()
        if not (_PHONE.match(number) or (len(number) <= 100 and _EMAIL.match(number))):
            raise _invalid(
                "account_no",
                "An Alipay account is a mainland mobile number or an e-mail address.",
                "invalid_account_no",
            )
    elif type == PayoutAccount.Type.WECHAT:
        number = account_no.strip()
        if not (_WECHAT_ID.match(number) or _PHONE.match(number)):
            raise _invalid(
                "account_no",
                "A WeChat ID is 6-20 letters, digits, _ or -, starting with a letter "
                "(or the bound mobile number).",
                "invalid_account_no",
            )
    elif type == PayoutAccount.Type.BANK:
        # Cards are printed in groups of four; people type the spaces.
        number = re.sub(r"[\s-]", "", account_no)
        if not _CARD.match(number):
            raise _invalid("account_no", "A card number is 12-19 digits.", "invalid_account_no")
        if not luhn_ok(number):
            raise _invalid(
                "account_no",
                "This card number fails its check digit; check it for a typo.",
                "invalid_card_checksum",
            )
    else:
        raise _invalid("type", "type is alipay, wechat or bank.", "invalid_account_type")
    if type == PayoutAccount.Type.BANK and not bank_name:
        raise _invalid("bank_name", "A bank card needs bank_name.", "bank_name_required")
    if type != PayoutAccount.Type.BANK and bank_name:
        raise _invalid("bank_name", "bank_name is for bank cards only.", "bank_name_not_allowed")
    return number


def live_accounts(*, user: User) -> QuerySet[PayoutAccount]:
    return PayoutAccount.objects.filter(user=user, deleted_at__isnull=True)


def access_payout_account(*, user: User, account_id: int) -> PayoutAccount:
    """The user's own live account; anyone else's (or a removed one) is 404."""
    account = live_accounts(user=user).filter(pk=account_id).first()
    if account is None:
        raise NotFound("No such payout account.", code="account_not_found")
    return account


def create_payout_account(
    *, user: User, type: str, holder_name: str, account_no: str, bank_name: str = ""
) -> PayoutAccount:
    number = check_payout_account(type=type, account_no=account_no, bank_name=bank_name)
    with transaction.atomic(durable=True):
        # The wallet row serialises this user's account changes, so two concurrent adds cannot
        # both pass the limit check.
        lock_wallet(user_id=user.pk)
        if live_accounts(user=user).count() >= MAX_PAYOUT_ACCOUNTS:
            raise Conflict(
                "At most %(limit)s payout accounts; remove one first.",
                params={"limit": MAX_PAYOUT_ACCOUNTS},
                code="account_limit",
            )
        return PayoutAccount.objects.create(
            user=user,
            type=type,
            holder_name=holder_name,
            bank_name=bank_name,
            account_no_encrypted=encrypt_account_no(number),
            account_last4=number[-4:],
        )


def delete_payout_account(*, user: User, account_id: int) -> None:
    with transaction.atomic(durable=True):
        # Under the wallet lock a withdrawal to this account cannot be created meanwhile.
        lock_wallet(user_id=user.pk)
        account = access_payout_account(user=user, account_id=account_id)
        withdrawals = Withdrawal.objects.filter(account=account)
        if withdrawals.filter(status=Withdrawal.Status.PENDING).exists():
            raise Conflict(
                "A withdrawal to this account is waiting to be paid; remove it afterwards.",
                code="account_has_pending_withdrawal",
            )
        if withdrawals.exists():
            # Paid and rejected withdrawals keep naming where the money went.
            account.deleted_at = timezone.now()
            account.save(update_fields=["deleted_at"])
        else:
            account.delete()


# --- Withdrawals ----------------------------------------------------------------------------


def _notify_withdrawal(withdrawal: Withdrawal) -> None:
    emit(user_ids=[withdrawal.user_id], type="withdrawal.updated", data=withdrawal_data(withdrawal))


def access_withdrawal(*, user: User, withdrawal_id: int) -> Withdrawal:
    withdrawal = (
        Withdrawal.objects.select_related("account", "transfer")
        .filter(pk=withdrawal_id, user=user)
        .first()
    )
    if withdrawal is None:
        raise NotFound("No such withdrawal.", code="withdrawal_not_found")
    return withdrawal


def transfer_bill_number(withdrawal: Withdrawal) -> str:
    """WeChat's out_bill_no for a withdrawal (letters and digits): derived, never random, so a
    retried or resumed creation names the same bill and WeChat pays it at most once."""
    return f"WD{withdrawal.pk:012d}"


def check_withdrawal_destination(
    *, user: User, amount_fen: int, to: str, account_id: int | None, real_name: str
) -> str:
    """The real name to send (stripped), or a 422 saying what the body lacks."""
    real_name = real_name.strip()
    if to == Withdrawal.Destination.WECHAT_BALANCE:
        if account_id is not None:
            raise _invalid(
                "account_id",
                "A withdrawal to the WeChat balance has no account_id.",
                "account_not_allowed",
            )
        if not user.openid:
            raise Conflict("This account is not bound to WeChat.", code="wechat_not_bound")
        if amount_fen >= settings.WECHATPAY_TRANSFER_REAL_NAME_FROM_FEN and not real_name:
            raise _invalid(
                "real_name",
                "从 2000 元起，微信要求填写收款人真实姓名。",
                "real_name_required",
            )
        if len(real_name) > 40:
            raise _invalid("real_name", "The real name is at most 40 characters.", "invalid_real_name")
        return real_name
    if account_id is None:
        raise _invalid("account_id", "Choose the payout account.", "account_required")
    if real_name:
        raise _invalid(
            "real_name", "real_name is for withdrawals to the WeChat balance.", "real_name_not_allowed"
        )
    return ""


def request_withdrawal(
    *,
    user: User,
    amount_fen: int,
    account_id: int | None = None,
    to: str = Withdrawal.Destination.ACCOUNT,
    real_name: str = "",
) -> Withdrawal:
    """Creates a pending withdrawal and holds its amount (available → frozen) in the same
    transaction, under the wallet lock: concurrent requests queue on the lock and each sees the
    balance the previous one left, so together they can never overdraw. To the WeChat balance,
    the transfer row is created with it and a task creates it at WeChat after commit."""
    check_not_banned(user)
    minimum = platform_settings().min_withdrawal_fen
    if amount_fen < minimum:
        raise _invalid(
            "amount",
            "The smallest withdrawal is %(minimum)s fen.",
            "amount_below_minimum",
            minimum=minimum,
        )
    real_name = check_withdrawal_destination(
        user=user, amount_fen=amount_fen, to=to, account_id=account_id, real_name=real_name
    )
    with transaction.atomic(durable=True):
        wallet = lock_wallet(user_id=user.pk)
        account = None
        if account_id is not None:  # to an account (checked above)
            account = access_payout_account(user=user, account_id=account_id)
        if amount_fen > wallet.available_fen:
            raise Conflict(
                "The amount is more than the available balance.", code="insufficient_balance"
            )
        withdrawal = Withdrawal.objects.create(
            user=user,
            to=to,
            account=account,
            amount_fen=amount_fen,
            real_name_encrypted=encrypt_account_no(real_name) if real_name else "",
        )
        if to == Withdrawal.Destination.WECHAT_BALANCE:
            transfer = WechatTransfer.objects.create(
                withdrawal=withdrawal,
                out_bill_no=transfer_bill_number(withdrawal),
                openid=user.openid or "",
                amount_fen=amount_fen,
                # The sweeper resumes it after this if the task is lost.
                next_attempt_at=timezone.now() + TRANSFER_SUBMIT_LEASE,
            )
            WechatTransferEvent.objects.create(transfer=transfer, source="requested")
            enqueue_on_commit("marketplace.tasks.submit_transfer_task", transfer.pk)
        post_entry(
            user_id=user.pk,
            kind=Kind.WITHDRAWAL_HOLD,
            available_delta_fen=-amount_fen,
            frozen_delta_fen=amount_fen,
            unique_key=f"withdrawal:{withdrawal.pk}:hold",
            withdrawal=withdrawal,
            created_by=user,
        )
        _notify_withdrawal(withdrawal)
    logger.info("withdrawal %s of %s fen requested by %s", withdrawal.pk, amount_fen, user.pk)
    return withdrawal


def _lock_withdrawal(withdrawal_id: int) -> Withdrawal:
    withdrawal = (
        Withdrawal.objects.select_for_update(of=("self",))
        .select_related("account")
        .filter(pk=withdrawal_id)
        .first()
    )
    if withdrawal is None:
        raise NotFound("No such withdrawal.", code="withdrawal_not_found")
    return withdrawal


def _refuse_manual_decision(withdrawal: Withdrawal) -> None:
    # WeChat pays (or fails) a transfer; a hand decision on it could pay the seller twice.
    if withdrawal.to == Withdrawal.Destination.WECHAT_BALANCE:
        raise Conflict(
            "This withdrawal is paid by WeChat transfer; cancel the transfer instead.",
            code="withdrawal_is_transfer",
        )


def _decide(withdrawal: Withdrawal, *, staff: User | None, status: str, **fields) -> None:
    withdrawal.decided_at = timezone.now()
    withdrawal.decided_by = staff
    for name, value in fields.items():
        setattr(withdrawal, name, value)
    WITHDRAWAL.move(withdrawal, status, fields=["decided_at", "decided_by", *fields])


def mark_withdrawal_paid(
    *, staff: User, withdrawal_id: int, reference: str
) -> tuple[Withdrawal, bool]:
    """Staff transferred the money by hand: the hold leaves the wallet. Returns (withdrawal,
    changed); marking a paid one again changes nothing, paying a rejected one is refused."""
    reference = reference.strip()
    if not reference or len(reference) > 100:
        raise _invalid(
            "reference", "The transfer reference is 1-100 characters.", "invalid_reference"
        )
    with transaction.atomic(durable=True):
        withdrawal = _lock_withdrawal(withdrawal_id)
        if withdrawal.status == Withdrawal.Status.PAID:
            return withdrawal, False
        _refuse_manual_decision(withdrawal)
        if withdrawal.status == Withdrawal.Status.REJECTED:
            raise Conflict(
                "This withdrawal was rejected; its hold is released.", code="withdrawal_rejected"
            )
        post_entry(
            user_id=withdrawal.user_id,
            kind=Kind.WITHDRAWAL_PAID,
            available_delta_fen=0,
            frozen_delta_fen=-withdrawal.amount_fen,
            unique_key=f"withdrawal:{withdrawal.pk}:settled",
            withdrawal=withdrawal,
            note=f"transfer {reference}",
            created_by=staff,
        )
        _decide(
            withdrawal, staff=staff, status=Withdrawal.Status.PAID, transfer_reference=reference
        )
        _notify_withdrawal(withdrawal)
    logger.info("withdrawal %s paid by staff %s (%s)", withdrawal.pk, staff.pk, reference)
    return withdrawal, True


def reject_withdrawal(*, staff: User, withdrawal_id: int, reason: str) -> tuple[Withdrawal, bool]:
    """Staff refuse it: the held amount goes back to available. Returns (withdrawal, changed);
    rejecting a rejected one changes nothing, rejecting a paid one is refused."""
    reason = reason.strip()
    if not reason or len(reason) > 200:
        raise _invalid("reason", "The reason is 1-200 characters.", "invalid_reason")
    with transaction.atomic(durable=True):
        withdrawal = _lock_withdrawal(withdrawal_id)
        if withdrawal.status == Withdrawal.Status.REJECTED:
            return withdrawal, False
        _refuse_manual_decision(withdrawal)
        if withdrawal.status == Withdrawal.Status.PAID:
            raise Conflict("This withdrawal was already paid out.", code="withdrawal_paid")
        # The same unique key as a payout: one withdrawal is settled once, whichever way.
        post_entry(
            user_id=withdrawal.user_id,
            kind=Kind.WITHDRAWAL_RELEASE,
            available_delta_fen=withdrawal.amount_fen,
            frozen_delta_fen=-withdrawal.amount_fen,
            unique_key=f"withdrawal:{withdrawal.pk}:settled",
            withdrawal=withdrawal,
            note=reason,
            created_by=staff,
        )
        _decide(withdrawal, staff=staff, status=Withdrawal.Status.REJECTED, reject_reason=reason)
        _notify_withdrawal(withdrawal)
    logger.info("withdrawal %s rejected by staff %s", withdrawal.pk, staff.pk)
    return withdrawal, True


# --- Reconciliation (reads for staff and tests) ----------------------------------------------


def reconciled_wallets() -> QuerySet[Wallet]:
    """Every wallet with its ledger sums and `is_balanced`: balance == sum of its entries."""
    zero = 0
    return Wallet.objects.select_related("user").annotate(
        ledger_available=Coalesce(Sum("entries__available_delta_fen"), zero),
        ledger_frozen=Coalesce(Sum("entries__frozen_delta_fen"), zero),
        ledger_earned=Coalesce(
            Sum("entries__available_delta_fen", filter=Q(entries__kind=Kind.SALE_CREDIT)), zero
        ),
        entry_count=Count("entries"),
    )


def is_balanced(wallet: Wallet) -> bool:
    """For a wallet from `reconciled_wallets()` (its ledger sums annotated)."""
    sums = (getattr(wallet, name) for name in ("ledger_available", "ledger_frozen", "ledger_earned"))
    return (wallet.available_fen, wallet.frozen_fen, wallet.total_earned_fen) == tuple(sums)


def commission_summary(*, start: datetime, end: datetime) -> dict:
    """The platform's commission on orders completed in [start, end)."""
    totals = Order.objects.filter(
        status="completed", completed_at__gte=start, completed_at__lt=end
    ).aggregate(
        orders=Count("pk"),
        commission_fen=Coalesce(Sum("commission_fen"), 0),
        gross_fen=Coalesce(Sum("price_fen"), 0),
    )
    return totals
