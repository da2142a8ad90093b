
"""Property: any sequence of credits, withdrawals, payouts and rejections, refused ones included,
keeps every balance equal to its ledger sums and never negative, and matches a simple model."""

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.actions import wallet as wallet_actions
from marketplace.errors import DomainError
from marketplace.models import User
from marketplace.models.orders import PlatformSettings
from marketplace.models.wallet import LedgerEntry, Withdrawal
from marketplace.selectors import platform_settings, platform_settings_changed
from tests.factories import UserFactory
from tests.marketplace.wallet_helpers import assert_ledger_invariant, credit, make_account

MIN_WITHDRAWAL = 100

operation = st.one_of(
    st.tuples(st.just("credit"), st.integers(0, 1), st.integers(1, 50_000)),
    st.tuples(st.just("withdraw"), st.integers(0, 1), st.integers(0, 60_000)),
    st.tuples(st.just("pay"), st.integers(0, 1), st.integers(0, 20)),
    st.tuples(st.just("reject"), st.integers(0, 1), st.integers(0, 20)),
)


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(operation, max_size=25))
def test_any_sequence_keeps_the_ledger_invariant(operations):
    PlatformSettings.objects.filter(pk=platform_settings().pk).update(
        min_withdrawal_fen=MIN_WITHDRAWAL
    )
    platform_settings_changed()  # as staff changes do
    staff = User.objects.create(username=f"staff-{uuid.uuid4().hex[:12]}", is_staff=True)
    users = [UserFactory(), UserFactory()]
    accounts = [make_account(user) for user in users]
    model = [{"available": 0, "frozen": 0, "earned": 0, "withdrawals": []} for _ in users]

    for op, who, value in operations:
        user, state = users[who], model[who]
        before = LedgerEntry.objects.count()
        if op == "credit":
            credit(user, value)
            state["available"] += value
            state["earned"] += value
        elif op == "withdraw":
            ok = MIN_WITHDRAWAL <= value <= state["available"]
            try:
                withdrawal = wallet_actions.request_withdrawal(
                    user=user, amount_fen=value, account_id=accounts[who].pk
                )
            except DomainError:
                assert not ok
            else:
                assert ok
                state["available"] -= value
                state["frozen"] += value
                state["withdrawals"].append([withdrawal.pk, value, "pending"])
        elif state["withdrawals"]:
            record = state["withdrawals"][value % len(state["withdrawals"])]
            pk, amount, status = record
            decide = (
                wallet_actions.mark_withdrawal_paid
                if op == "pay"
                else wallet_actions.reject_withdrawal
            )
            kwargs = {"reference": "T"} if op == "pay" else {"reason": "R"}
            target = "paid" if op == "pay" else "rejected"
            try:
                _, changed = decide(staff=staff, withdrawal_id=pk, **kwargs)
            except DomainError:
                assert status not in ("pending", target)  # only the other decision refuses
            else:
                assert changed == (status == "pending")
                if changed:
                    state["frozen"] -= amount
                    if op == "reject":
                        state["available"] += amount
                    record[2] = target
        refused_or_noop = LedgerEntry.objects.count() == before
        if refused_or_noop:
            # Nothing half-done: no withdrawal row without its hold entry.
            assert Withdrawal.objects.filter(ledger_entries__isnull=True).count() == 0

        for index, other in enumerate(users):
            if not LedgerEntry.objects.filter(wallet__user=other).exists():
                continue
            wallet = assert_ledger_invariant(other)
            expected = model[index]
            assert (wallet.available_fen, wallet.frozen_fen, wallet.total_earned_fen) == (
                expected["available"],
                expected["frozen"],
                expected["earned"],
            )
            pending = sum(a for _, a, s in expected["withdrawals"] if s == "pending")
            assert wallet.frozen_fen == pending
