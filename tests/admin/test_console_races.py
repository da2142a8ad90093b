"""Races on PostgreSQL with real threads: two finance staff upload the same bank result at the
same moment (a double click, two tabs): each withdrawal is paid once, with one ledger entry."""

import pytest

from marketplace.actions.staff_console import BankRow, mark_paid_from_bank_result
from marketplace.models import LedgerEntry, Withdrawal
from tests.admin.helpers import staff_in
from tests.admin.test_roles import _pending_withdrawal
from tests.marketplace.wallet_helpers import assert_ledger_invariant
from tests.races import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_the_same_bank_result_uploaded_twice_at_once_pays_each_withdrawal_once():
    withdrawals = [_pending_withdrawal(3000), _pending_withdrawal(4550)]
    clerks = [staff_in("finance"), staff_in("finance")]
    rows = [
        BankRow(
            line=n,
            withdrawal_id=str(w.pk),
            amount=f"{w.amount_fen / 100:.2f}",
            reference=f"B-{w.pk}",
        )
        for n, w in enumerate(withdrawals, start=2)
    ]

    results = race(
        *[
            lambda clerk=clerk: mark_paid_from_bank_result(staff=clerk, rows=rows)
            for clerk in clerks
        ]
    )

    assert not [r for r in results if isinstance(r, BaseException)], results
    paid_by_each = [[o.is_paid for o in outcomes] for outcomes in results]
    # Every row is paid by exactly one of the two uploads.
    assert [sum(column) for column in zip(*paid_by_each, strict=True)] == [1, 1]
    for withdrawal in withdrawals:
        withdrawal.refresh_from_db()
        assert withdrawal.status == Withdrawal.Status.PAID
        assert (
            LedgerEntry.objects.filter(withdrawal=withdrawal, kind="withdrawal_paid").count() == 1
        )
        assert_ledger_invariant(withdrawal.user)
