"""The finance role works WeChat payouts and reconciliation in the admin: transfers with their
history, cancelling an unconfirmed one, the withdrawal queue showing transfers, reconciliation
items filtered by kind and resolved with a recorded note; other roles are kept out."""

import pytest
from django.utils import timezone

from marketplace.actions import wallet as wallet_actions
from marketplace.models.wallet import (
    ReconciliationDay,
    ReconciliationItem,
    WechatTransfer,
    Withdrawal,
)
from tests.admin.helpers import admin_client, staff_in
from tests.factories import UserFactory
from tests.marketplace.wallet_helpers import credit

# Real commits: the transfer task runs on commit (Huey immediate).
pytestmark = pytest.mark.django_db(transaction=True)

TRANSFERS = "/admin/marketplace/wechattransfer/"
ITEMS = "/admin/marketplace/reconciliationitem/"
WITHDRAWALS = "/admin/marketplace/withdrawal/"


def _awaiting_transfer() -> Withdrawal:
    seller = UserFactory()
    credit(seller, 10_000)
    withdrawal = wallet_actions.request_withdrawal(
        user=seller, amount_fen=6_000, to=Withdrawal.Destination.WECHAT_BALANCE
    )
    withdrawal.refresh_from_db()
    assert withdrawal.status == Withdrawal.Status.AWAITING_USER_CONFIRMATION
    return withdrawal


def test_finance_sees_transfers_with_their_history_and_cancels_one():
    finance = admin_client(staff_in("finance"))
    withdrawal = _awaiting_transfer()
    transfer = WechatTransfer.objects.get()

    listing = finance.get(TRANSFERS)
    detail = finance.get(f"{TRANSFERS}{transfer.pk}/change/")
    queue = finance.get(WITHDRAWALS)
    cancelled = finance.post(
        TRANSFERS, {"action": "cancel_unconfirmed", "_selected_action": [transfer.pk]}
    )

    assert listing.status_code == 200 and transfer.out_bill_no in listing.content.decode()
    page = detail.content.decode()
    assert detail.status_code == 200 and "requested" in page and "WAIT_USER_CONFIRM" in page
    assert queue.status_code == 200 and "微信零钱" in queue.content.decode()
    assert cancelled.status_code == 302
    withdrawal.refresh_from_db()
    assert withdrawal.status == Withdrawal.Status.FAILED
    assert transfer.events.filter(source="staff_cancel", actor=finance.user).exists()
    # Paying a transfer withdrawal by hand is refused: WeChat pays it, or nobody.
    finance.post(
        WITHDRAWALS,
        {
            "action": "mark_paid",
            "_selected_action": [withdrawal.pk],
            "confirm": "1",
            f"reference_{withdrawal.pk}": "BANK-1",
        },
    )
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == Withdrawal.Status.FAILED


def test_finance_resolves_reconciliation_items_with_a_recorded_note():
    finance = admin_client(staff_in("finance"))
    day = ReconciliationDay.objects.create(
        date=timezone.now().date(), status="differences", checked_at=timezone.now()
    )
    missing = ReconciliationItem.objects.create(
        day=day, kind="missing_theirs", source="payment", reference="A1", ours={"price_fen": 1}
    )
    differs = ReconciliationItem.objects.create(
        day=day, kind="amount_differs", source="refund", reference="A2R", ours={}, theirs={}
    )

    filtered = finance.get(ITEMS, {"kind__exact": "amount_differs"})
    asked = finance.post(ITEMS, {"action": "mark_resolved", "_selected_action": [differs.pk]})
    done = finance.post(
        ITEMS,
        {
            "action": "mark_resolved",
            "_selected_action": [differs.pk],
            "confirm": "1",
            "note": "微信已更正账单",
        },
    )

    assert filtered.status_code == 200 and filtered.context["cl"].result_count == 1
    assert asked.status_code == 200 and "A2R" in asked.content.decode()
    assert done.status_code == 302
    differs.refresh_from_db()
    assert differs.is_resolved and differs.resolved_by == finance.user
    assert differs.resolution_note == "微信已更正账单" and differs.resolved_at
    assert not ReconciliationItem.objects.get(pk=missing.pk).is_resolved
    assert finance.get(f"/admin/marketplace/reconciliationday/{day.pk}/change/").status_code == 200


def test_other_roles_cannot_see_transfers_or_resolve_items():
    day = ReconciliationDay.objects.create(
        date=timezone.now().date(), status="differences", checked_at=timezone.now()
    )
    item = ReconciliationItem.objects.create(
        day=day, kind="missing_ours", source="payment", reference="X1"
    )
    for role in ("reviewers", "support"):
        client = admin_client(staff_in(role))
        assert client.get(TRANSFERS).status_code == 403
        resolve = client.post(
            ITEMS,
            {"action": "mark_resolved", "_selected_action": [item.pk], "confirm": "1", "note": "x"},
        )
        assert resolve.status_code == 403
    assert not ReconciliationItem.objects.get(pk=item.pk).is_resolved
