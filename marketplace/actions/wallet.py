"""The ledger's one writer, and the sale credit. Withdrawals build on post_entry."""

import logging

from django.db import IntegrityError, transaction

from marketplace.errors import Conflict
from marketplace.models import User
from marketplace.models.orders import Order, Refund
from marketplace.models.wallet import LedgerEntry, Wallet
from marketplace.money import split_commission
from realtime.push import emit

logger = logging.getLogger("marketplace.wallet")
Kind = LedgerEntry.Kind


def lock_wallet(*, user_id: int) -> Wallet:
    """The user's wallet row, created on first use, locked for the caller's transaction."""
    wallet = Wallet.objects.select_for_update().filter(user_id=user_id).first()
    if wallet is None:
        try:
            with transaction.atomic():
                Wallet.objects.create(user_id=user_id)
        except IntegrityError:  # created concurrently
            pass
        wallet = Wallet.objects.select_for_update().get(user_id=user_id)
    return wallet


def post_entry(
    *,
    user_id: int,
    kind: str,
    available_delta_fen: int,
    frozen_delta_fen: int = 0,
    unique_key: str,
    order: Order | None = None,
    note: str = "",
    created_by: User | None = None,
) -> LedgerEntry | None:
    """Appends one entry and moves the balance with it, under the wallet's row lock.
    Returns None when an entry with this unique_key exists (already posted: nothing to do).
    Raises Conflict when a bucket would go negative. Must run inside a transaction."""
    wallet = lock_wallet(user_id=user_id)
    if LedgerEntry.objects.filter(unique_key=unique_key).exists():
        return None
    available = wallet.available_fen + available_delta_fen
    frozen = wallet.frozen_fen + frozen_delta_fen
    if available < 0 or frozen < 0:
        raise Conflict("The balance is not enough for this.", code="insufficient_balance")
    entry = LedgerEntry.objects.create(
        wallet=wallet,
        kind=kind,
        available_delta_fen=available_delta_fen,
        frozen_delta_fen=frozen_delta_fen,
        available_after_fen=available,
        frozen_after_fen=frozen,
        order=order,
        unique_key=unique_key,
        note=note[:200],
        created_by=created_by,
    )
    wallet.available_fen, wallet.frozen_fen = available, frozen
    if kind == Kind.SALE_CREDIT:
        wallet.total_earned_fen += available_delta_fen
    wallet.save(update_fields=["available_fen", "frozen_fen", "total_earned_fen", "updated_at"])
    return entry


def wallet_data(wallet: Wallet) -> dict:
    return {
        "available": wallet.available_fen,
        "frozen": wallet.frozen_fen,
        "total_earned": wallet.total_earned_fen,
    }


def entry_data(entry: LedgerEntry) -> dict:
    return {
        "id": entry.pk,
        "kind": entry.kind,
        "amount": entry.available_delta_fen,
        "balance_after": entry.available_after_fen,
        "frozen_after": entry.frozen_after_fen,
        "order_no": entry.order.order_no if entry.order_id else None,
        "withdrawal_id": getattr(entry, "withdrawal_id", None),
        "at": entry.created_at.isoformat(),
    }


def credit_sale(*, order_id: int) -> LedgerEntry | None:
    """Credits the seller price − commission for a completed order, exactly once."""
    with transaction.atomic(durable=True):
        order = Order.objects.select_for_update().get(pk=order_id)
        if order.status != "completed":
            return None
        # A dispute settled with a partial refund leaves the seller the rest of the price.
        refunded = Refund.objects.filter(order=order).values_list("amount_fen", flat=True).first()
        commission, seller_share = split_commission(
            price_fen=order.price_fen - (refunded or 0), rate_bp=order.commission_rate_bp or 0
        )
        entry = post_entry(
            user_id=order.seller_id,
            kind=Kind.SALE_CREDIT,
            available_delta_fen=seller_share,
            unique_key=f"order:{order.pk}:sale_credit",
            order=order,
            note=f"{order.order_no}: {order.price_fen} - commission {commission}",
        )
        if entry is not None:
            entry.order = order
            emit(
                user_ids=[order.seller_id],
                type="wallet.credited",
                data={**entry_data(entry), "wallet": wallet_data(entry.wallet)},
            )
            logger.info(
                "credited %s fen to %s for %s", seller_share, order.seller_id, order.order_no
            )
    return entry
