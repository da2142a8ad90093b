"""Wallet: balance, ledger, payout accounts and withdrawals (API.md "Wallet", docs/wallet.md)."""

from typing import Annotated

from django.conf import settings
from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field, StrictInt, StringConstraints

from marketplace import selectors
from marketplace.actions import wallet as wallet_actions
from marketplace.api.accounts import StrictSchema
from marketplace.api.idempotency import idempotent
from marketplace.models.wallet import LedgerEntry, PayoutAccount, Withdrawal
from marketplace.pagination import PageParams, page_schema, paginate
from marketplace.representations import account_data, entry_data, wallet_data, withdrawal_data
from marketplace.states import WithdrawalStatus
from project.ratelimit import RateLimit
from project.wire import WireDateTime

router = Router(tags=["wallet"])

HolderName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
BankName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=60)]
# Long enough for an e-mail address or a card typed with spaces; each type checks its own form.
AccountNo = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class WalletOut(Schema):
    available: int = Field(description="Fen that can be withdrawn now.")
    frozen: int = Field(description="Fen held by pending withdrawals.")
    total_earned: int = Field(description="Fen credited from completed sales, ever.")


class EntryOut(Schema):
    id: int
    kind: LedgerEntry.Kind
    amount: int = Field(description="Change to the available balance, signed fen.")
    balance_after: int = Field(description="Available balance after this entry.")
    frozen_delta: int = Field(description="Change to the frozen balance, signed fen.")
    frozen_after: int
    order_no: str | None
    withdrawal_id: int | None
    at: WireDateTime


EntryPage = page_schema(EntryOut, "WalletEntryPage")


class AccountIn(StrictSchema):
    type: PayoutAccount.Type
    holder_name: HolderName
    account_no: AccountNo
    bank_name: BankName = ""


class AccountOut(Schema):
    id: int
    type: PayoutAccount.Type
    holder_name: str
    account_no: str = Field(description='Masked: "**** " and the last 4 characters.')
    bank_name: str | None
    created_at: WireDateTime


RealName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)]


class WithdrawalIn(StrictSchema):
    # Strict: money is an integer in JSON, never "100" or 100.0 coerced.
    amount: StrictInt = Field(gt=0, le=10**12, description="Fen.")
    account_id: StrictInt | None = Field(None, gt=0, description="For `to: account` only.")
    to: Withdrawal.Destination = Field(
        Withdrawal.Destination.ACCOUNT,
        description="`account` (staff pay by hand) or `wechat_balance` (WeChat merchant transfer).",
    )
    real_name: RealName = Field(
        "", description="The payee's real name; required to the WeChat balance from 200000 fen."
    )


class TransferOut(Schema):
    state: str | None = Field(description="WeChat's bill state (WAIT_USER_CONFIRM, SUCCESS...).")
    mch_id: str
    app_id: str
    package_info: str | None = Field(description="For wx.requestMerchantTransfer's `package`.")
    confirm_before: WireDateTime | None
    fail_reason: str | None


class WithdrawalOut(Schema):
    id: int
    amount: int
    status: WithdrawalStatus
    to: Withdrawal.Destination
    account: AccountOut | None
    transfer: TransferOut | None
    transfer_reference: str | None
    reject_reason: str | None
    created_at: WireDateTime
    decided_at: WireDateTime | None


WithdrawalPage = page_schema(WithdrawalOut, "WithdrawalPage")


class WithdrawalFilters(PageParams):
    status: WithdrawalStatus | None = None


@router.get("/wallet", response=WalletOut, summary="My balance")
def get_wallet(request: HttpRequest):
    return wallet_data(selectors.wallet_of(user=request.auth))


@router.get("/wallet/entries", response=EntryPage, summary="My ledger, newest first")
def list_entries(request: HttpRequest, page: Query[PageParams]):
    return paginate(
        selectors.ledger_of(user=request.auth),
        ordering=("-id",),
        limit=page.limit,
        cursor=page.cursor,
        transform=lambda rows: [entry_data(row) for row in rows],
    ).as_dict()


@router.get("/wallet/accounts", response=list[AccountOut], summary="My payout accounts (≤ 10)")
def list_accounts(request: HttpRequest):
    accounts = wallet_actions.live_accounts(user=request.auth).order_by("id")
    return [account_data(account) for account in accounts]


@router.post("/wallet/accounts", response={201: AccountOut}, summary="Add a payout account")
def create_account(request: HttpRequest, payload: AccountIn):
    account = wallet_actions.create_payout_account(
        user=request.auth,
        type=payload.type,
        holder_name=payload.holder_name,
        account_no=payload.account_no,
        bank_name=payload.bank_name,
    )
    return Status(201, account_data(account))


@router.delete("/wallet/accounts/{account_id}", response={204: None})
def delete_account(request: HttpRequest, account_id: int):
    wallet_actions.delete_payout_account(user=request.auth, account_id=account_id)
    return Status(204, None)


@router.get("/wallet/withdrawals", response=WithdrawalPage, summary="My withdrawals")
def list_withdrawals(request: HttpRequest, filters: Query[WithdrawalFilters]):
    return paginate(
        selectors.withdrawals_of(user=request.auth, status=filters.status),
        ordering=("-id",),
        limit=filters.limit,
        cursor=filters.cursor,
        transform=lambda rows: [withdrawal_data(row) for row in rows],
    ).as_dict()


@router.post(
    "/wallet/withdrawals",
    response={201: WithdrawalOut},
    throttle=[RateLimit("withdrawal", settings.RATE_LIMITS["withdrawal"])],
    summary="Withdraw: the amount is held at once; staff pay it out, or WeChat transfers it",
)
@idempotent("wallet.withdraw", response=WithdrawalOut)
def create_withdrawal(request: HttpRequest, payload: WithdrawalIn):
    withdrawal = wallet_actions.request_withdrawal(
        user=request.auth,
        amount_fen=payload.amount,
        account_id=payload.account_id,
        to=payload.to,
        real_name=payload.real_name,
    )
    return Status(201, withdrawal_data(withdrawal))


@router.get("/wallet/withdrawals/{withdrawal_id}", response=WithdrawalOut)
def get_withdrawal(request: HttpRequest, withdrawal_id: int):
    withdrawal = wallet_actions.access_withdrawal(user=request.auth, withdrawal_id=withdrawal_id)
    return withdrawal_data(withdrawal)
