"""Helpers for the wallet tests: money in, valid card numbers, the ledger invariant."""

import uuid

from django.db import transaction
from django.db.models import Sum

from marketplace.actions import wallet as wallet_actions
from marketplace.models.wallet import LedgerEntry, PayoutAccount, Wallet


def credit(user, fen: int) -> LedgerEntry:
    """A sale credit, as fulfilment posts it (without building an order)."""
    with transaction.atomic():
        return wallet_actions.post_entry(
            user_id=user.pk,
            kind=LedgerEntry.Kind.SALE_CREDIT,
            available_delta_fen=fen,
            unique_key=f"test:{uuid.uuid4().hex}",
        )


def luhn_card(body: str) -> str:
    """`body` plus the check digit that makes it pass Luhn."""
    for digit in "0123456789":
        if wallet_actions.luhn_ok(body + digit):
            return body + digit
    raise AssertionError("unreachable")


VALID_CARD = luhn_card("622202100012345678")  # 19 digits


def make_account(user, **overrides) -> PayoutAccount:
    fields = {"type": "alipay", "holder_name": "张三", "account_no": "13800138000"}
    fields.update(overrides)
    return wallet_actions.create_payout_account(user=user, **fields)


def assert_ledger_invariant(user) -> Wallet:
    """Balance == sum of entries, never negative, and each entry's after-values are the running
    sums (the ledger replays to the balance)."""
    wallet = Wallet.objects.get(user=user)
    entries = list(LedgerEntry.objects.filter(wallet=wallet).order_by("id"))
    available = frozen = earned = 0
    for entry in entries:
        available += entry.available_delta_fen
        frozen += entry.frozen_delta_fen
        if entry.kind == LedgerEntry.Kind.SALE_CREDIT:
            earned += entry.available_delta_fen
        assert (entry.available_after_fen, entry.frozen_after_fen) == (available, frozen), entry
        assert available >= 0 and frozen >= 0
    sums = LedgerEntry.objects.filter(wallet=wallet).aggregate(
        a=Sum("available_delta_fen"), f=Sum("frozen_delta_fen")
    )
    assert (wallet.available_fen, wallet.frozen_fen) == (sums["a"] or 0, sums["f"] or 0)
    assert (wallet.available_fen, wallet.frozen_fen, wallet.total_earned_fen) == (
        available,
        frozen,
        earned,
    )
    assert wallet.available_fen >= 0 and wallet.frozen_fen >= 0
    return wallet
