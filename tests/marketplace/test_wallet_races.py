"""Races on PostgreSQL with real threads: the balance can never be overdrawn, a withdrawal is
settled once, and one Idempotency-Key makes one withdrawal."""

import pytest

from marketplace.actions import wallet as wallet_actions
from marketplace.actions.accounts import issue_token
from marketplace.errors import Conflict
from marketplace.models.wallet import LedgerEntry, Withdrawal
from tests.conftest import ApiClient
from tests.factories import StaffFactory, UserFactory
from tests.marketplace.wallet_helpers import assert_ledger_invariant, credit, make_account
from tests.races import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_twenty_withdrawals_of_the_whole_balance_exactly_one_succeeds():
    user = UserFactory()
    credit(user, 50_000)
    account = make_account(user)

    def withdraw_all():
        return wallet_actions.request_withdrawal(
            user=user, amount_fen=50_000, account_id=account.pk
        )

    results = race(*[withdraw_all] * 20)
    succeeded = [r for r in results if isinstance(r, Withdrawal)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(succeeded) == 1, results
    assert len(refused) == 19 and {r.code for r in refused} == {"insufficient_balance"}
    assert Withdrawal.objects.count() == 1
    wallet = assert_ledger_invariant(user)
    assert (wallet.available_fen, wallet.frozen_fen) == (0, 50_000)


def test_mixed_withdrawals_never_overdraw():
    user = UserFactory()
    credit(user, 10_000)
    account = make_account(user)
    amounts = [3000, 3000, 3000, 3000, 2500, 1000, 500, 4000, 1500, 700]

    def withdraw(amount):
        return lambda: wallet_actions.request_withdrawal(
            user=user, amount_fen=amount, account_id=account.pk
        )

    results = race(*[withdraw(a) for a in amounts])
    assert all(isinstance(r, Withdrawal | Conflict) for r in results), results
    held = sum(r.amount_fen for r in results if isinstance(r, Withdrawal))
    assert 0 < held <= 10_000
    wallet = assert_ledger_invariant(user)
    assert (wallet.available_fen, wallet.frozen_fen) == (10_000 - held, held)


def test_pay_and_reject_racing_settle_once():
    user = UserFactory()
    credit(user, 5000)
    account = make_account(user)
    withdrawal = wallet_actions.request_withdrawal(
        user=user, amount_fen=5000, account_id=account.pk
    )
    staff_a, staff_b = StaffFactory(), StaffFactory()
    calls = []
    for _ in range(4):
        calls.append(
            lambda: wallet_actions.mark_withdrawal_paid(
                staff=staff_a, withdrawal_id=withdrawal.pk, reference="T-1"
            )
        )
        calls.append(
            lambda: wallet_actions.reject_withdrawal(
                staff=staff_b, withdrawal_id=withdrawal.pk, reason="dup"
            )
        )
    results = race(*calls)
    changed = [r for r in results if isinstance(r, tuple) and r[1]]
    assert len(changed) == 1, results
    assert all(isinstance(r, tuple | Conflict) for r in results), results
    withdrawal.refresh_from_db()
    settled = LedgerEntry.objects.filter(withdrawal=withdrawal).exclude(kind="withdrawal_hold")
    assert settled.count() == 1
    wallet = assert_ledger_invariant(user)
    if withdrawal.status == "paid":
        assert (wallet.available_fen, wallet.frozen_fen) == (0, 0)
    else:
        assert (wallet.available_fen, wallet.frozen_fen) == (5000, 0)


def test_one_idempotency_key_makes_one_withdrawal_over_http():
    user = UserFactory()
    credit(user, 5000)
    account = make_account(user)
    token = issue_token(user=user)

    def post():
        client = ApiClient(token)
        response = client.post(
            "/api/wallet/withdrawals",
            {"amount": 1000, "account_id": account.pk},
            headers={"Idempotency-Key": "same-key"},
        )
        return response.status_code, response.json()

    results = race(*[post] * 6)
    statuses = sorted(status for status, _ in results)
    assert set(statuses) <= {201, 409}, results
    created = {body["id"] for status, body in results if status == 201}
    assert len(created) == 1, results
    conflicts = [body["code"] for status, body in results if status == 409]
    assert set(conflicts) <= {"request_in_progress"}
    assert Withdrawal.objects.count() == 1
    assert assert_ledger_invariant(user).available_fen == 4000


def test_deleting_an_account_while_withdrawing_to_it():
    user = UserFactory()
    credit(user, 5000)
    account = make_account(user)
    results = race(
        lambda: wallet_actions.request_withdrawal(
            user=user, amount_fen=1000, account_id=account.pk
        ),
        lambda: wallet_actions.delete_payout_account(user=user, account_id=account.pk),
    )
    withdrawal, deleted = results
    if isinstance(withdrawal, Withdrawal):
        # The withdrawal came first: the delete saw it pending and refused.
        assert isinstance(deleted, Conflict) and deleted.code == "account_has_pending_withdrawal"
    else:
        # The delete came first: the withdrawal found no account.
        assert deleted is None and getattr(withdrawal, "code", "") == "account_not_found"
        assert not Withdrawal.objects.exists()
    assert_ledger_invariant(user)
