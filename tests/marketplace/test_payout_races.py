"""Races on PostgreSQL with real threads: 20 withdrawals of the whole balance to WeChat make one
transfer, and WeChat's notification racing the sweeper's query settles a withdrawal once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.actions import payouts
from marketplace.actions import wallet as wallet_actions
from marketplace.errors import Conflict
from marketplace.models.wallet import LedgerEntry, WechatTransfer, Withdrawal
from sandbox.mchtransfer import _create_notification, _notification_resource
from sandbox.models import SandboxTransferBill
from sandbox.wechatpay import signed_headers
from tests.factories import UserFactory
from tests.marketplace.payout_helpers import last_transfer_notification, post_notification
from tests.marketplace.wallet_helpers import assert_ledger_invariant, credit
from tests.races import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_twenty_withdrawals_of_the_whole_balance_to_wechat_make_one_transfer():
    user = UserFactory()
    credit(user, 80_000)

    def withdraw_all():
        return wallet_actions.request_withdrawal(
            user=user, amount_fen=80_000, to=Withdrawal.Destination.WECHAT_BALANCE
        )

    results = race(*[withdraw_all] * 20)
    succeeded = [r for r in results if isinstance(r, Withdrawal)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(succeeded) == 1, results
    assert len(refused) == 19 and {r.code for r in refused} == {"insufficient_balance"}
    assert WechatTransfer.objects.count() == 1
    assert SandboxTransferBill.objects.count() == 1
    assert SandboxTransferBill.objects.get().transfer_amount_fen == 80_000
    withdrawal = Withdrawal.objects.get()
    assert withdrawal.status == "awaiting_user_confirmation"
    wallet = assert_ledger_invariant(user)
    assert (wallet.available_fen, wallet.frozen_fen) == (0, 80_000)


def test_the_sweeper_and_many_submits_racing_create_one_bill():
    user = UserFactory()
    credit(user, 10_000)
    withdrawal = wallet_actions.request_withdrawal(
        user=user, amount_fen=10_000, to="wechat_balance"
    )
    # As if the task had been lost before WeChat saw it: the sweeper and stray retries race.
    WechatTransfer.objects.filter(pk=withdrawal.transfer.pk).update(
        state="", package_info="", attempts=0, next_attempt_at=timezone.now()
    )
    Withdrawal.objects.filter(pk=withdrawal.pk).update(status="pending")
    SandboxTransferBill.objects.all().delete()
    later = timezone.now() + timedelta(minutes=3)
    calls = [lambda: payouts.sweep_transfers(now=later)] * 4 + [
        lambda: payouts.submit_transfer(transfer_id=withdrawal.transfer.pk, now=later)
    ] * 4
    results = race(*calls)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert SandboxTransferBill.objects.count() == 1
    transfer = WechatTransfer.objects.get()
    # Claims that overlapped asked WeChat first or re-created the same bill: still one bill.
    assert transfer.state == "WAIT_USER_CONFIRM" and transfer.attempts >= 1
    assert Withdrawal.objects.get().status == "awaiting_user_confirmation"


def test_notification_and_query_racing_settle_once(make_client):
    client = make_client()
    credit(client.user, 20_000)
    withdrawal = wallet_actions.request_withdrawal(
        user=client.user, amount_fen=20_000, to="wechat_balance"
    )
    withdrawal.refresh_from_db()
    bill = SandboxTransferBill.objects.get()
    # WeChat's side settles; its first notification is lost on the way.
    SandboxTransferBill.objects.filter(pk=bill.pk).update(
        state="SUCCESS", finished_at=timezone.now()
    )
    bill.refresh_from_db()
    notification = _create_notification(
        kind="mch_payment",
        event_type="MCHTRANSFER.BILL.FINISHED",
        summary="商家转账单据终态通知",
        target_url="http://testserver/api/payments/wechat/transfer-notify",
        out_trade_no=bill.out_bill_no,
        resource=_notification_resource(bill),
    )
    body = last_transfer_notification().body
    assert body == notification.body
    calls = [lambda: post_notification(client, body, signed_headers(body)).status_code] * 4 + [
        lambda: payouts.settle_by_query(transfer_id=withdrawal.transfer.pk)
    ] * 4
    results = race(*calls)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert LedgerEntry.objects.filter(kind="withdrawal_paid").count() == 1
    assert Withdrawal.objects.get().status == "paid"
    assert_ledger_invariant(client.user)
