"""Daily reconciliation against the sandbox's bills, downloaded through wechatpayv3 with their
hash checked: a clean day, a day with a dropped line, an altered amount and an extra line on our
side (exactly those three items), a line only WeChat has, a re-run (nothing doubled), the books
that add up (and a double credit that does not), `manage.py reconcile`, and staff resolving."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.db.models import F
from django.test import override_settings
from django.utils import timezone

from marketplace import tasks
from marketplace.actions import payouts, reconciliation
from marketplace.actions import wallet as wallet_actions
from marketplace.actions.orders import Actor, set_status
from marketplace.actions.refunds import request_refund, submit_refund
from marketplace.models import Order, OrderHistory, Refund
from marketplace.models.wallet import (
    LedgerEntry,
    ReconciliationDay,
    ReconciliationItem,
    WechatTransfer,
)
from marketplace.states import OrderStatus
from sandbox import bills as sandbox_bills
from sandbox.models import (
    SandboxRefund,
    SandboxTransaction,
    SandboxTransferBill,
)
from sandbox.wechatpay import settle_refund
from tests.factories import StaffFactory
from tests.marketplace.order_helpers import (
    buyer_with_address,
    listing_on_sale,
    pay_in_wechat,
    place_order,
)
from tests.marketplace.payout_helpers import confirm_in_wechat, withdraw_to_wechat
from tests.marketplace.wallet_helpers import credit

pytestmark = pytest.mark.django_db(transaction=True)

DAY = timedelta(days=1)


def _paid_order(make_client, price_fen: int) -> Order:
    buyer, address_id = buyer_with_address(make_client)
    listing = listing_on_sale(price_fen=price_fen)
    response = place_order(buyer, listing, address_id)
    assert response.status_code == 201, response.content
    order_no = response.json()["order_no"]
    pay_in_wechat(buyer, order_no)
    order = Order.objects.get(order_no=order_no)
    assert order.transaction_id and order.status == OrderStatus.AWAITING_VIDEO
    return order


def _move_everything_to_yesterday() -> None:
    """WeChat serves bills for past days only: what happened today happened yesterday."""
    SandboxTransaction.objects.update(success_time=F("success_time") - DAY)
    SandboxRefund.objects.update(success_time=F("success_time") - DAY)
    SandboxTransferBill.objects.update(finished_at=F("finished_at") - DAY)
    Order.objects.update(paid_at=F("paid_at") - DAY, created_at=F("created_at") - DAY)
    OrderHistory.objects.update(at=F("at") - DAY)
    Refund.objects.update(created_at=F("created_at") - DAY, succeeded_at=F("succeeded_at") - DAY)
    WechatTransfer.objects.update(finished_at=F("finished_at") - DAY)
    LedgerEntry.objects.update(created_at=F("created_at") - DAY)


def _items(day: ReconciliationDay) -> set[tuple[str, str, str]]:
    return set(day.items.values_list("kind", "source", "reference"))


def test_a_clean_day_is_recorded_clean_and_a_rerun_changes_nothing(make_client):
    first, second = _paid_order(make_client, 12_345), _paid_order(make_client, 8_000)
    seller = make_client()
    credit(seller.user, 50_000)
    withdrawal_id = withdraw_to_wechat(seller, 30_000)["id"]
    confirm_in_wechat(seller, withdrawal_id)
    _move_everything_to_yesterday()
    day = reconciliation.yesterday()

    record = reconciliation.reconcile_day(day=day)
    assert record.status == ReconciliationDay.Status.CLEAN, list(record.items.values())
    assert record.items.count() == 0
    assert record.trade_rows == 2
    assert record.fundflow_rows == 5  # two payments and their fees, one transfer
    assert len(record.trade_bill_sha1) == 40 and len(record.fundflow_bill_sha1) == 40
    assert record.fees_fen == sandbox_bills.fee_of(12_345) + sandbox_bills.fee_of(8_000)
    assert record.books["received_fen"] == first.price_fen + second.price_fen

    again = reconciliation.reconcile_day(day=day)
    assert (again.pk, again.status, again.runs) == (record.pk, "clean", 2)
    assert ReconciliationItem.objects.count() == 0 and ReconciliationDay.objects.count() == 1


def test_a_dropped_line_an_altered_amount_and_an_extra_line_are_exactly_three_items(make_client):
    dropped, altered, fine = (_paid_order(make_client, p) for p in (10_000, 20_000, 30_000))
    # Ours only: we recorded a payment WeChat never saw (a bug, or a forged notification).
    extra = _paid_order(make_client, 5_000)
    SandboxTransaction.objects.filter(out_trade_no=extra.order_no).delete()
    _move_everything_to_yesterday()
    day = reconciliation.yesterday()
    with override_settings(
        SANDBOX_BILL_DROP=[dropped.order_no], SANDBOX_BILL_ALTER=[altered.order_no]
    ):
        record = reconciliation.reconcile_day(day=day)
        assert record.status == ReconciliationDay.Status.DIFFERENCES
        expected = {
            ("missing_theirs", "payment", dropped.order_no),
            ("amount_differs", "payment", altered.order_no),
            ("missing_theirs", "payment", extra.order_no),
        }
        assert _items(record) == expected
        amount_item = record.items.get(kind="amount_differs")
        assert amount_item.ours["price_fen"] == 20_000
        assert amount_item.theirs["amount_fen"] == 20_001
        assert amount_item.theirs["row"]["商户订单号"] == altered.order_no
        assert record.items.get(reference=extra.order_no).theirs is None
        # Staff resolve one; a re-run doubles nothing and keeps the resolution.
        staff = StaffFactory()
        item, changed = reconciliation.resolve_item(
            staff=staff, item_id=amount_item.pk, note="微信账单金额有误，已联系客服"
        )
        assert changed and item.resolved_by == staff
        assert reconciliation.resolve_item(staff=staff, item_id=item.pk, note="again")[1] is False
        again = reconciliation.reconcile_day(day=day)
        assert _items(again) == expected and again.items.count() == 3
        assert again.items.get(pk=amount_item.pk).is_resolved
    assert fine.order_no not in {ref for _, _, ref in _items(record)}
    # The bill is right again (WeChat corrected it): the open differences go, the resolved stays.
    fixed = reconciliation.reconcile_day(day=day)
    assert _items(fixed) == {
        ("amount_differs", "payment", altered.order_no),
        ("missing_theirs", "payment", extra.order_no),
    }


def test_a_line_only_wechat_has_and_a_status_that_differs(make_client):
    order = _paid_order(make_client, 9_900)
    unknown = SandboxTransaction.objects.get(out_trade_no=order.order_no)
    SandboxTransaction.objects.create(
        **{
            field.name: getattr(unknown, field.name)
            for field in SandboxTransaction._meta.fields
            if field.name not in ("id", "out_trade_no", "prepay_id", "transaction_id")
        },
        out_trade_no="NOTOURS0000001",
        prepay_id="wx-not-ours",
        transaction_id="4200000000000000000000000001",
    )
    # A notification we lost: WeChat has the payment, our order has not recorded it.
    Order.objects.filter(pk=order.pk).update(transaction_id="")
    _move_everything_to_yesterday()
    record = reconciliation.reconcile_day(day=reconciliation.yesterday())
    assert _items(record) == {
        ("missing_ours", "payment", "NOTOURS0000001"),
        ("status_differs", "payment", order.order_no),
    }
    assert record.items.get(kind="missing_ours").ours is None


def test_a_refund_and_a_transfer_that_differ(make_client):
    order = _paid_order(make_client, 15_000)
    seller = make_client()
    credit(seller.user, 40_000)
    withdrawal_id = withdraw_to_wechat(seller, 40_000)["id"]
    confirm_in_wechat(seller, withdrawal_id)
    transfer = WechatTransfer.objects.get()
    refund = request_refund(order=order, amount_fen=15_000, reason="test")
    submit_refund(refund_id=refund.pk)
    sandbox_refund = SandboxRefund.objects.get()
    settle_refund(refund_pk=sandbox_refund.pk, force=True)
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    _move_everything_to_yesterday()
    with override_settings(SANDBOX_BILL_ALTER=[refund.out_refund_no, transfer.out_bill_no]):
        record = reconciliation.reconcile_day(day=reconciliation.yesterday())
    assert _items(record) == {
        ("amount_differs", "refund", refund.out_refund_no),
        ("amount_differs", "transfer", transfer.out_bill_no),
    }


def test_a_bill_failing_its_hash_check_fails_the_day(make_client, monkeypatch):
    _paid_order(make_client, 12_000)
    _move_everything_to_yesterday()
    real = sandbox_bills.gzip.compress
    monkeypatch.setattr(sandbox_bills.gzip, "compress", lambda data: real(data + b"tampered"))
    record = reconciliation.reconcile_day(day=reconciliation.yesterday())
    assert record.status == ReconciliationDay.Status.FAILED
    assert "hash check" in record.last_error
    assert record.items.count() == 0
    monkeypatch.setattr(sandbox_bills.gzip, "compress", real)
    assert reconciliation.reconcile_day(day=reconciliation.yesterday()).status == "clean"


def test_the_books_add_up_and_a_credit_from_nowhere_shows(make_client):
    order = _paid_order(make_client, 10_000)
    other = _paid_order(make_client, 6_000)
    # One order completes and its seller is credited; the other is still held.
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        for status in ("awaiting_confirmation", "awaiting_shipment", "shipped", "completed"):
            set_status(locked, status, actor=Actor.SYSTEM, reason="test")
    wallet_actions.credit_sale(order_id=order.pk)
    _move_everything_to_yesterday()
    day = reconciliation.yesterday()
    books = reconciliation.reconcile_day(day=day).books
    assert books["received_fen"] == 16_000
    assert books["escrow_change_fen"] == other.price_fen
    assert books["credits_fen"] + books["commission_fen"] == order.price_fen
    assert books["money_balanced"] and books["balances_balanced"] and books["wallets_match_ledger"]
    assert ReconciliationDay.objects.get(date=day).is_books_balanced
    # A second credit for the same sale (a bug bypassing the ledger key): the books say so.
    entry = credit(order.seller, 9_000)
    LedgerEntry.objects.filter(pk=entry.pk).update(created_at=F("created_at") - DAY)
    record = reconciliation.reconcile_day(day=day)
    assert not record.books["money_balanced"] and not record.is_books_balanced


def test_manage_py_reconcile(make_client):
    _paid_order(make_client, 12_000)
    _move_everything_to_yesterday()
    out = StringIO()
    call_command("reconcile", "--date", reconciliation.yesterday().isoformat(), stdout=out)
    assert "clean; 0 open item(s); books add up" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("reconcile", "--date", "2026-13-40", stdout=StringIO())


def test_a_day_without_any_statement_is_clean():
    record = reconciliation.reconcile_day(day=timezone.now().date() - timedelta(days=30))
    assert record.status == "clean" and record.trade_rows == 0


def test_the_parser_reads_wechats_csv_with_backticks_and_summary():
    text = (
        "交易时间,商户订单号,交易状态,应结订单金额,商户退款单号,退款金额,退款状态\r\n"
        "`2026-12-01 10:00:00,`A123456,`SUCCESS,`123.45,`0,`0.00,`\r\n"
        "`2026-12-01 11:00:00,`A123456,`REFUND,`0.00,`A123456R,`23.40,`SUCCESS\r\n"
        "总交易单数,应结订单总金额,退款总金额\r\n"
        "`2,`123.45,`23.40\r\n"
    )
    rows, summary = reconciliation.parse_bill(text, summary_first="总交易单数")
    assert summary == {"总交易单数": "2", "应结订单总金额": "123.45", "退款总金额": "23.40"}
    lines = reconciliation.trade_lines(rows)
    assert lines[("payment", "A123456")].amount_fen == 12_345
    assert lines[("refund", "A123456R")].amount_fen == 2_340
    with pytest.raises(ValueError):
        reconciliation.to_fen("1.234")


def test_the_daily_task_is_registered():
    assert tasks.reconcile_yesterday and tasks.sweep_transfers and payouts.sweep_transfers
