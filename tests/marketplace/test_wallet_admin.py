"""Staff side of the wallet through the Django admin: the payout queue, the intermediate forms,
who sees full account numbers, the read-only ledger and the reconciliation page."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from marketplace.actions import wallet as wallet_actions
from marketplace.models import User
from marketplace.models.orders import Order
from marketplace.models.wallet import LedgerEntry, Wallet, Withdrawal
from realtime.models import Event
from tests.factories import StaffFactory, UserFactory
from tests.marketplace.wallet_helpers import (
    VALID_CARD,
    assert_ledger_invariant,
    credit,
    make_account,
)

pytestmark = pytest.mark.django_db

QUEUE = "/admin/marketplace/withdrawal/"
RECONCILIATION = "/admin/marketplace/wallet/reconciliation/"


@pytest.fixture
def staff_client():
    staff = StaffFactory()
    client = Client(HTTP_ACCEPT_LANGUAGE="en")  # the admin's English source text
    client.force_login(staff)
    client.staff = staff
    return client


@pytest.fixture
def seller():
    user = UserFactory()
    credit(user, 10_000)
    user.account = make_account(
        user, type="bank", holder_name="王五", account_no=VALID_CARD, bank_name="中国银行"
    )
    return user


def _withdraw(user, fen: int, *, minutes_ago: int = 0) -> Withdrawal:
    withdrawal = wallet_actions.request_withdrawal(
        user=user, amount_fen=fen, account_id=user.account.pk
    )
    created = timezone.now() - timedelta(minutes=minutes_ago)
    Withdrawal.objects.filter(pk=withdrawal.pk).update(created_at=created)
    return withdrawal


def _act(client, action: str, ids, **extra):
    return client.post(QUEUE, {"action": action, "_selected_action": ids, **extra})


def test_queue_is_pending_first_oldest_first(staff_client, seller):
    newer = _withdraw(seller, 1000, minutes_ago=1)
    older = _withdraw(seller, 1000, minutes_ago=60)
    decided = _withdraw(seller, 1000, minutes_ago=600)
    wallet_actions.reject_withdrawal(staff=staff_client.staff, withdrawal_id=decided.pk, reason="x")
    response = staff_client.get(QUEUE)
    assert response.status_code == 200
    ids = [row.pk for row in response.context["cl"].result_list]
    assert ids == [older.pk, newer.pk, decided.pk]
    assert staff_client.get(QUEUE, {"status__exact": "pending"}).context["cl"].result_count == 2
    assert staff_client.get(f"{QUEUE}{older.pk}/change/").status_code == 200
    assert staff_client.get(f"{QUEUE}add/").status_code == 403


def test_mark_paid_asks_for_a_reference_per_withdrawal(staff_client, seller):
    first, second = _withdraw(seller, 3000), _withdraw(seller, 2000)
    ids = [first.pk, second.pk]
    form = _act(staff_client, "mark_paid", ids)
    assert form.status_code == 200
    assert b"Mark paid with these references" in form.content
    assert VALID_CARD.encode() in form.content  # a superuser may see the full number to pay
    assert not Withdrawal.objects.exclude(status="pending").exists()

    blank = _act(staff_client, "mark_paid", ids, confirm="1", **{f"reference_{first.pk}": "T-1"})
    assert blank.status_code == 200 and blank.context["form"].errors  # the second is missing
    assert not Withdrawal.objects.exclude(status="pending").exists()

    done = _act(
        staff_client,
        "mark_paid",
        ids,
        confirm="1",
        **{f"reference_{first.pk}": "T-1", f"reference_{second.pk}": "T-2"},
    )
    assert done.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.transfer_reference) == ("paid", "T-1")
    assert (second.status, second.transfer_reference) == ("paid", "T-2")
    assert first.decided_by == staff_client.staff and first.decided_at
    wallet = assert_ledger_invariant(seller)
    assert (wallet.available_fen, wallet.frozen_fen) == (5000, 0)
    paid_events = Event.objects.filter(user=seller, type="withdrawal.updated", data__status="paid")
    assert paid_events.count() == 2

    # Again: nothing changes, no second ledger entry or event.
    again = _act(
        staff_client,
        "mark_paid",
        ids,
        confirm="1",
        **{f"reference_{first.pk}": "T-9", f"reference_{second.pk}": "T-9"},
    )
    assert again.status_code == 302
    assert LedgerEntry.objects.filter(kind="withdrawal_paid").count() == 2
    assert Withdrawal.objects.get(pk=first.pk).transfer_reference == "T-1"


def test_reject_asks_for_a_reason_and_releases_the_hold(staff_client, seller):
    withdrawal = _withdraw(seller, 4000)
    form = _act(staff_client, "reject", [withdrawal.pk])
    assert form.status_code == 200 and b"Reject with this reason" in form.content
    blank = _act(staff_client, "reject", [withdrawal.pk], confirm="1", reason="  ")
    assert blank.status_code == 200 and blank.context["form"].errors
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == "pending"

    done = _act(staff_client, "reject", [withdrawal.pk], confirm="1", reason="姓名与实名不符")
    assert done.status_code == 302
    withdrawal.refresh_from_db()
    assert (withdrawal.status, withdrawal.reject_reason) == ("rejected", "姓名与实名不符")
    wallet = assert_ledger_invariant(seller)
    assert (wallet.available_fen, wallet.frozen_fen) == (10_000, 0)
    event = Event.objects.filter(user=seller, type="withdrawal.updated").latest("seq")
    assert event.data["status"] == "rejected" and event.data["reject_reason"] == "姓名与实名不符"


def test_paying_a_rejected_withdrawal_is_refused(staff_client, seller):
    withdrawal = _withdraw(seller, 4000)
    _act(staff_client, "reject", [withdrawal.pk], confirm="1", reason="no")
    # The action form skips it; the action itself refuses it too.
    response = _act(staff_client, "mark_paid", [withdrawal.pk])
    assert response.status_code == 302
    with pytest.raises(Exception) as exc:
        wallet_actions.mark_withdrawal_paid(
            staff=staff_client.staff, withdrawal_id=withdrawal.pk, reference="T"
        )
    assert getattr(exc.value, "code", None) == "withdrawal_rejected"
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == "rejected"
    assert not LedgerEntry.objects.filter(kind="withdrawal_paid").exists()
    # Rejecting a paid one through the admin is refused with a message, nothing changes.
    other = _withdraw(seller, 1000)
    _act(staff_client, "mark_paid", [other.pk], confirm="1", **{f"reference_{other.pk}": "T"})
    followed = staff_client.post(
        QUEUE,
        {"action": "reject", "_selected_action": [other.pk], "confirm": "1", "reason": "late"},
        follow=True,
    )
    assert any("already paid" in str(m) for m in followed.context["messages"])
    assert Withdrawal.objects.get(pk=other.pk).status == "paid"
    assert_ledger_invariant(seller)


def test_full_numbers_need_the_permission(seller):
    _withdraw(seller, 1000)
    staff = User.objects.create(username="viewer", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_withdrawal", "change_withdrawal", "view_payoutaccount"]
        )
    )
    client = Client()
    client.force_login(staff)
    page = client.get(QUEUE)
    assert page.status_code == 200
    assert VALID_CARD.encode() not in page.content
    assert ("**** " + VALID_CARD[-4:]).encode() in page.content
    accounts = client.get("/admin/marketplace/payoutaccount/")
    assert accounts.status_code == 200 and VALID_CARD.encode() not in accounts.content

    staff.user_permissions.add(Permission.objects.get(codename="view_full_account_number"))
    staff = User.objects.get(pk=staff.pk)  # drop the permission cache
    client.force_login(staff)
    assert VALID_CARD.encode() in client.get(QUEUE).content
    assert VALID_CARD.encode() in client.get("/admin/marketplace/payoutaccount/").content


def test_staff_without_change_permission_cannot_pay(seller):
    withdrawal = _withdraw(seller, 1000)
    staff = User.objects.create(username="looker", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_withdrawal"))
    client = Client()
    client.force_login(staff)
    _act(client, "mark_paid", [withdrawal.pk], confirm="1", **{f"reference_{withdrawal.pk}": "T"})
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == "pending"


def test_ledger_and_wallets_are_read_only(staff_client, seller):
    entry = LedgerEntry.objects.filter(wallet__user=seller).first()
    assert staff_client.get("/admin/marketplace/ledgerentry/").status_code == 200
    assert staff_client.get("/admin/marketplace/ledgerentry/add/").status_code == 403
    assert staff_client.get(f"/admin/marketplace/ledgerentry/{entry.pk}/delete/").status_code == 403
    change = staff_client.post(
        f"/admin/marketplace/ledgerentry/{entry.pk}/change/", {"available_delta_fen": 1}
    )
    assert change.status_code == 403
    wallets = staff_client.get("/admin/marketplace/wallet/")
    assert wallets.status_code == 200 and RECONCILIATION.encode() in wallets.content
    wallet = Wallet.objects.get(user=seller)
    assert staff_client.get(f"/admin/marketplace/wallet/{wallet.pk}/delete/").status_code == 403
    assert LedgerEntry.objects.get(pk=entry.pk).available_delta_fen == 10_000


def test_reconciliation_flags_mismatches_and_sums_commission(staff_client, seller):
    _withdraw(seller, 1500)
    page = staff_client.get(RECONCILIATION)
    assert page.status_code == 200
    assert page.context["mismatched"] == []
    assert [ok for _, ok in page.context["rows"]] == [True]

    broken = UserFactory()
    credit(broken, 700)
    # Someone wrote the balance behind the ledger's back: the page must say so.
    Wallet.objects.filter(user=broken).update(available_fen=9999)
    page = staff_client.get(RECONCILIATION)
    assert [w.user_id for w in page.context["mismatched"]] == [broken.pk]
    assert b"do not match" in page.content

    seller_two = UserFactory()
    now = timezone.now()
    base = {
        "buyer": UserFactory(),
        "seller": seller_two,
        "address": {},
        "status": "completed",
    }
    from tests.marketplace.catalog_factories import category_tree, make_listing

    category = category_tree()["apple"]
    for no, (price, commission, completed) in enumerate(
        [
            (10_000, 500, now),
            (20_000, 1000, now - timedelta(days=1)),
            (50_000, 2500, now - timedelta(days=400)),  # outside the period
        ]
    ):
        Order.objects.create(
            order_no=f"MTEST{no:017d}",
            listing=make_listing(category=category),
            title="x",
            price_fen=price,
            commission_fen=commission,
            completed_at=completed,
            **base,
        )
    today = timezone.localdate()
    start = (today - timedelta(days=2)).isoformat()
    page = staff_client.get(RECONCILIATION, {"start": start, "end": today.isoformat()})
    commission = page.context["commission"]
    assert (commission["orders"], commission["commission_fen"], commission["gross_fen"]) == (
        2,
        1500,
        30_000,
    )
    bad = staff_client.get(RECONCILIATION, {"start": today.isoformat(), "end": start})
    assert bad.status_code == 200 and bad.context["commission"] is None


def test_rotate_payout_keys_command(seller, capsys):
    call_command("rotate_payout_keys")
    assert "re-encrypted 1" in capsys.readouterr().out
    seller.account.refresh_from_db()
    assert wallet_actions.reveal_account_no(seller.account) == VALID_CARD
