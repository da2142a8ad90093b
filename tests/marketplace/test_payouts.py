"""Withdrawals to the WeChat balance: the whole merchant transfer through the sandbox with real
signatures and encryption, its notification replayed, forged and amount-mismatched, failure and
expiry, the task killed between WeChat accepting and us recording, the real-name rule, staff
cancellation and the sweeper."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from marketplace.actions import payouts
from marketplace.actions import wallet as wallet_actions
from marketplace.errors import Conflict
from marketplace.models.orders import PaymentNotification
from marketplace.models.wallet import LedgerEntry, WechatTransfer, Withdrawal
from project import tasking
from realtime.models import Event
from sandbox import tasks as sandbox_tasks
from sandbox.models import SandboxFault, SandboxTransferBill
from sandbox.wechatpay import _pem_pair, inject_fault, signed_headers
from tests.conftest import assert_error
from tests.factories import StaffFactory
from tests.marketplace.payout_helpers import (
    confirm_in_wechat,
    crafted_notification,
    last_transfer_notification,
    post_notification,
    withdraw_to_wechat,
)
from tests.marketplace.wallet_helpers import assert_ledger_invariant, credit, make_account

# Real commits: the transfer task runs on commit (Huey immediate), as in production.
pytestmark = pytest.mark.django_db(transaction=True)


def _kinds(user) -> list[str]:
    return list(
        LedgerEntry.objects.filter(wallet__user=user).order_by("id").values_list("kind", flat=True)
    )


def _withdrawal_events(user) -> list[dict]:
    return [
        e.data for e in Event.objects.filter(user=user, type="withdrawal.updated").order_by("seq")
    ]


@pytest.fixture
def seller(make_client):
    client = make_client()
    credit(client.user, 50_000)
    return client


def test_the_whole_payout_through_the_sandbox(seller):
    answer = withdraw_to_wechat(seller, 30_000)
    assert answer["status"] == "pending" and answer["to"] == "wechat_balance"
    assert answer["account"] is None
    withdrawal = Withdrawal.objects.get(pk=answer["id"])
    transfer = withdrawal.transfer
    assert transfer.out_bill_no == f"WD{withdrawal.pk:012d}"
    # The task ran at commit: WeChat holds one bill, waiting for the user.
    bill = SandboxTransferBill.objects.get()
    assert (bill.out_bill_no, bill.transfer_amount_fen, bill.openid) == (
        transfer.out_bill_no,
        30_000,
        seller.user.openid,
    )
    assert bill.transfer_scene_id == "1005" and bill.user_name == ""
    shown = seller.get(f"/api/wallet/withdrawals/{withdrawal.pk}").json()
    assert shown["status"] == "awaiting_user_confirmation"
    assert shown["transfer"]["package_info"] == bill.package_info
    assert shown["transfer"]["state"] == "WAIT_USER_CONFIRM"
    assert shown["transfer"]["mch_id"] == "1900000109" and shown["transfer"]["app_id"]
    assert seller.get("/api/wallet").json()["frozen"] == 30_000

    confirmed = confirm_in_wechat(seller, withdrawal.pk)
    assert confirmed["state"] == "SUCCESS"
    shown = seller.get(f"/api/wallet/withdrawals/{withdrawal.pk}").json()
    assert shown["status"] == "paid"
    assert shown["transfer_reference"] == bill.transfer_bill_no
    assert seller.get("/api/wallet").json() == {
        "available": 20_000,
        "frozen": 0,
        "total_earned": 50_000,
    }
    assert _kinds(seller.user) == ["sale_credit", "withdrawal_hold", "withdrawal_paid"]
    record = PaymentNotification.objects.get(kind="transfer")
    assert record.is_verified and record.outcome == "paid"
    assert record.out_trade_no == transfer.out_bill_no
    assert [e["status"] for e in _withdrawal_events(seller.user)] == [
        "pending",
        "awaiting_user_confirmation",
        "paid",
    ]
    assert _withdrawal_events(seller.user)[1]["transfer"]["package_info"] == bill.package_info
    transfer.refresh_from_db()
    assert [e.source for e in transfer.events.all()] == [
        "requested",
        "create",
        "notification",
    ]
    assert_ledger_invariant(seller.user)


def test_the_notification_replayed_changes_nothing_more(seller):
    withdrawal_id = withdraw_to_wechat(seller, 10_000)["id"]
    confirm_in_wechat(seller, withdrawal_id)
    sent = last_transfer_notification()
    # WeChat sends the same notification again (signed afresh): acknowledged, applied once.
    again = post_notification(seller, sent.body, signed_headers(sent.body))
    assert again.status_code == 204
    # The same signed bytes replayed later than WeChat's five minutes: refused.
    old = int((timezone.now() - timedelta(minutes=6)).timestamp())
    stale = post_notification(seller, sent.body, signed_headers(sent.body, timestamp=old))
    assert stale.status_code == 401
    outcomes = list(
        PaymentNotification.objects.filter(kind="transfer")
        .order_by("id")
        .values_list("outcome", flat=True)
    )
    assert outcomes[:2] == ["paid", "duplicate"] and outcomes[2].startswith("rejected: stale")
    assert _kinds(seller.user).count("withdrawal_paid") == 1
    assert_ledger_invariant(seller.user)


def test_a_forged_notification_is_refused_and_pays_nothing(seller):
    withdrawal = Withdrawal.objects.get(pk=withdraw_to_wechat(seller, 10_000)["id"])
    body = crafted_notification(withdrawal)
    forged = post_notification(seller, body, signed_headers(body, private_pem=_pem_pair()[0]))
    assert forged.status_code == 401
    withdrawal.refresh_from_db()
    assert withdrawal.status == "awaiting_user_confirmation"
    assert "withdrawal_paid" not in _kinds(seller.user)
    record = PaymentNotification.objects.get(kind="transfer")
    assert not record.is_verified and record.outcome.startswith("rejected: bad_signature")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"transfer_amount": 10_001}, "amount_mismatch"),
        ({"openid": "someone-else"}, "payer_mismatch"),
        ({"mchid": "1234567890"}, "mchid_mismatch"),
        ({"out_bill_no": "WD999999999999"}, "unknown_transfer"),
    ],
)
def test_a_signed_notification_that_is_not_exactly_ours_is_refused(seller, change, reason):
    withdrawal = Withdrawal.objects.get(pk=withdraw_to_wechat(seller, 10_000)["id"])
    body = crafted_notification(withdrawal, **change)
    response = post_notification(seller, body, signed_headers(body))
    assert response.status_code == 204  # acknowledged: the same bytes would be refused again
    record = PaymentNotification.objects.get(kind="transfer")
    assert record.is_verified and record.outcome == f"refused: {reason}"
    withdrawal.refresh_from_db()
    assert withdrawal.status == "awaiting_user_confirmation"
    assert _kinds(seller.user) == ["sale_credit", "withdrawal_hold"]


@override_settings(SANDBOX_TRANSFER_OUTCOME="FAIL")
def test_a_failed_transfer_releases_the_hold_once(seller):
    withdrawal_id = withdraw_to_wechat(seller, 20_000)["id"]
    assert confirm_in_wechat(seller, withdrawal_id)["state"] == "FAIL"
    shown = seller.get(f"/api/wallet/withdrawals/{withdrawal_id}").json()
    assert shown["status"] == "failed"
    assert "PAYEE_ACCOUNT_ABNORMAL" in shown["reject_reason"]
    assert seller.get("/api/wallet").json()["available"] == 50_000
    sent = last_transfer_notification()
    assert post_notification(seller, sent.body, signed_headers(sent.body)).status_code == 204
    assert payouts.settle_by_query(transfer_id=WechatTransfer.objects.get().pk) == "duplicate"
    assert _kinds(seller.user) == ["sale_credit", "withdrawal_hold", "withdrawal_release"]
    assert_ledger_invariant(seller.user)


@override_settings(SANDBOX_TRANSFER_CONFIRM_SECONDS=0)
def test_an_unconfirmed_transfer_closed_by_wechat_is_settled_by_the_sweeper(seller):
    withdrawal_id = withdraw_to_wechat(seller, 20_000)["id"]
    # The notification of WeChat's closing is lost; the sweeper's query finds it.
    later = timezone.now() + payouts.QUERY_EVERY + timedelta(seconds=1)
    assert payouts.sweep_transfers(now=later) == {"failed": 1}
    withdrawal = Withdrawal.objects.get(pk=withdrawal_id)
    assert withdrawal.status == "failed" and withdrawal.transfer.state == "CANCELLED"
    assert seller.get("/api/wallet").json()["available"] == 50_000
    assert payouts.sweep_transfers(now=later + timedelta(hours=1)) == {}


@override_settings(WECHATPAY_TRANSFER_CONFIRM_WINDOW_SECONDS=0)
def test_past_our_window_the_sweeper_cancels_and_releases(seller):
    withdrawal_id = withdraw_to_wechat(seller, 20_000)["id"]
    later = timezone.now() + payouts.QUERY_EVERY + timedelta(seconds=1)
    assert payouts.sweep_transfers(now=later) == {"failed": 1}
    assert SandboxTransferBill.objects.get().state == "CANCELLED"
    assert Withdrawal.objects.get(pk=withdrawal_id).status == "failed"
    refused = seller.client.post(
        "/sandbox/wechat/confirm-transfer",
        {"package_info": SandboxTransferBill.objects.get().package_info},
        content_type="application/json",
    )
    assert refused.status_code == 409  # too late for the user: never paid after the release
    assert_ledger_invariant(seller.user)


def test_the_task_killed_between_wechat_accepting_and_us_recording(seller, monkeypatch):
    queued = []
    real_enqueue_all = tasking.enqueue_all

    def losing_submissions(entries):  # the submit task is lost with its worker; others run
        queued.extend(e for e in entries if e[0] == "marketplace.tasks.submit_transfer_task")
        real_enqueue_all([e for e in entries if e[0] != "marketplace.tasks.submit_transfer_task"])

    monkeypatch.setattr(tasking, "enqueue_all", losing_submissions)
    withdrawal = wallet_actions.request_withdrawal(
        user=seller.user, amount_fen=30_000, to="wechat_balance"
    )
    assert len(queued) == 1  # the task that would have run (lost with its worker below)
    real_record = payouts.record_transfer

    def killed(**kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr(payouts, "record_transfer", killed)
    with pytest.raises(SystemExit):
        payouts.submit_transfer(transfer_id=withdrawal.transfer.pk)
    assert SandboxTransferBill.objects.count() == 1  # WeChat accepted it
    withdrawal.refresh_from_db()
    assert withdrawal.status == "pending" and withdrawal.transfer.state == ""
    monkeypatch.setattr(payouts, "record_transfer", real_record)
    # Too early for the sweeper: the lease of the killed attempt still runs.
    assert payouts.sweep_transfers() == {}
    later = timezone.now() + payouts.SUBMIT_LEASE + timedelta(seconds=1)
    assert payouts.sweep_transfers(now=later) == {"awaiting_user_confirmation": 1}
    assert SandboxTransferBill.objects.count() == 1  # found by out_bill_no, not created again
    withdrawal.refresh_from_db()
    assert withdrawal.status == "awaiting_user_confirmation"
    assert withdrawal.transfer.package_info == SandboxTransferBill.objects.get().package_info
    assert withdrawal.transfer.attempts == 2
    confirm_in_wechat(seller, withdrawal.pk)
    assert _kinds(seller.user).count("withdrawal_paid") == 1
    assert_ledger_invariant(seller.user)


def test_an_answer_lost_in_a_timeout_is_found_by_the_sweeper(seller):
    inject_fault(SandboxFault.TIMEOUT_AFTER, path_contains="/mch-transfer/transfer-bills")
    withdrawal_id = withdraw_to_wechat(seller, 30_000)["id"]
    transfer = WechatTransfer.objects.get()
    assert transfer.state == "" and "did not answer" in transfer.last_error
    assert SandboxTransferBill.objects.count() == 1
    later = timezone.now() + timedelta(minutes=5)
    assert payouts.sweep_transfers(now=later) == {"awaiting_user_confirmation": 1}
    assert SandboxTransferBill.objects.count() == 1
    confirm_in_wechat(seller, withdrawal_id)
    assert Withdrawal.objects.get(pk=withdrawal_id).status == "paid"


def test_a_5xx_is_retried_with_the_same_number(seller):
    inject_fault(SandboxFault.ERROR_500, count=2, path_contains="/mch-transfer/transfer-bills")
    withdraw_to_wechat(seller, 30_000)
    transfer = WechatTransfer.objects.get()
    assert transfer.state == "" and transfer.attempts == 1
    for minutes in (5, 10):
        payouts.sweep_transfers(now=timezone.now() + timedelta(minutes=minutes))
    transfer.refresh_from_db()
    assert transfer.state == "WAIT_USER_CONFIRM" and transfer.attempts == 3
    assert SandboxTransferBill.objects.get().out_bill_no == transfer.out_bill_no


def test_from_2000_yuan_the_real_name_is_required_and_sent_encrypted(make_client):
    client = make_client()
    credit(client.user, 300_000)
    refused = client.post("/api/wallet/withdrawals", {"amount": 200_000, "to": "wechat_balance"})
    assert_error(refused, 422, "real_name_required")
    assert not Withdrawal.objects.exists()
    withdraw_to_wechat(client, 199_999)  # below the rule: no name needed
    client.user.wallet.refresh_from_db()
    credit(client.user, 199_999)
    answer = withdraw_to_wechat(client, 200_000, real_name=" 张三 ")
    withdrawal = Withdrawal.objects.get(pk=answer["id"])
    assert "张三" not in withdrawal.real_name_encrypted
    assert "张三" not in str(answer)
    bill = SandboxTransferBill.objects.get(out_bill_no=withdrawal.transfer.out_bill_no)
    assert bill.user_name == "张三"  # the sandbox decrypted it with WeChat's platform key


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"amount": 1000, "to": "wechat_balance", "account_id": 1}, "account_not_allowed"),
        ({"amount": 1000}, "account_required"),
        ({"amount": 1000, "to": "alipay_balance"}, None),
        ({"amount": "1000", "to": "wechat_balance"}, None),
        ({"amount": 1000, "to": "wechat_balance", "real_name": "x" * 41}, None),
    ],
)
def test_bad_withdrawal_bodies_are_422(seller, body, code):
    assert_error(seller.post("/api/wallet/withdrawals", body), 422, code)
    assert not Withdrawal.objects.exists()


def test_real_name_on_a_manual_withdrawal_is_refused(seller):
    account = make_account(seller.user)
    body = {"amount": 1000, "account_id": account.pk, "real_name": "张三"}
    assert_error(seller.post("/api/wallet/withdrawals", body), 422, "real_name_not_allowed")


def test_others_see_404_on_a_transfer_withdrawal(seller, make_client):
    withdrawal_id = withdraw_to_wechat(seller, 1000)["id"]
    stranger = make_client()
    assert_error(stranger.get(f"/api/wallet/withdrawals/{withdrawal_id}"), 404)


def test_staff_cancel_an_unconfirmed_transfer(seller):
    withdrawal_id = withdraw_to_wechat(seller, 20_000)["id"]
    staff = StaffFactory()
    with pytest.raises(Conflict) as manual:
        wallet_actions.mark_withdrawal_paid(staff=staff, withdrawal_id=withdrawal_id, reference="X")
    assert manual.value.code == "withdrawal_is_transfer"
    assert payouts.cancel_transfer(staff=staff, withdrawal_id=withdrawal_id) == "failed"
    withdrawal = Withdrawal.objects.get(pk=withdrawal_id)
    assert withdrawal.status == "failed" and withdrawal.transfer.state == "CANCELLED"
    assert seller.get("/api/wallet").json()["available"] == 50_000
    cancel_event = withdrawal.transfer.events.get(source="staff_cancel", actor=staff)
    assert staff.username in cancel_event.detail
    with pytest.raises(Conflict) as again:
        payouts.cancel_transfer(staff=staff, withdrawal_id=withdrawal_id)
    assert again.value.code == "transfer_not_cancellable"
    # The cancellation's own notification arrives later: nothing more happens.
    sandbox_tasks.deliver_pending_notifications(force=True)
    assert _kinds(seller.user) == ["sale_credit", "withdrawal_hold", "withdrawal_release"]
    assert_ledger_invariant(seller.user)


def test_a_confirmed_transfer_cannot_be_cancelled(seller):
    withdrawal_id = withdraw_to_wechat(seller, 20_000)["id"]
    confirm_in_wechat(seller, withdrawal_id)
    with pytest.raises(Conflict):
        payouts.cancel_transfer(staff=StaffFactory(), withdrawal_id=withdrawal_id)
    assert Withdrawal.objects.get(pk=withdrawal_id).status == "paid"


def test_an_unacknowledged_transfer_notification_is_retried_on_wechats_transfer_schedule(
    seller, monkeypatch
):
    assert [sandbox_tasks.retry_delay(n, kind="mch_payment") for n in (1, 10, 11, 20, 21, 64)] == [
        pytest.approx(0.15), pytest.approx(0.15), pytest.approx(3), pytest.approx(3),
        pytest.approx(18), pytest.approx(18),
    ]  # fmt: skip
    assert sandbox_tasks.retry_delay(65, kind="mch_payment") is None
    withdrawal_id = withdraw_to_wechat(seller, 10_000)["id"]
    # Our endpoint is down for the first delivery: WeChat keeps the notification and retries.
    monkeypatch.setattr(payouts, "handle_transfer_notification", _raise_500)
    confirm_in_wechat(seller, withdrawal_id)
    sent = last_transfer_notification()
    assert sent.acknowledged_at is None and sent.attempts == 1
    monkeypatch.undo()
    assert sandbox_tasks.deliver_pending_notifications(force=True) == 1
    assert Withdrawal.objects.get(pk=withdrawal_id).status == "paid"


def _raise_500(**kwargs):
    raise RuntimeError("our server is down")


def test_a_query_answer_that_is_not_ours_is_refused_and_not_asked_every_minute(seller):
    withdrawal_id = withdraw_to_wechat(seller, 10_000)["id"]
    SandboxTransferBill.objects.update(transfer_amount_fen=99_999, state="SUCCESS")
    later = timezone.now() + payouts.QUERY_EVERY + timedelta(seconds=1)
    assert payouts.sweep_transfers(now=later) == {"refused: amount_mismatch": 1}
    assert Withdrawal.objects.get(pk=withdrawal_id).status == "awaiting_user_confirmation"
    assert payouts.sweep_transfers(now=later + timedelta(minutes=1)) == {}
    assert "withdrawal_paid" not in _kinds(seller.user)
