"""Huey tasks of the marketplace app: thin, idempotent, each calls one action."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from marketplace.actions import catalog as catalog_actions
from marketplace.actions import (
    fulfilment,
    lifecycle,
    payouts,
    privacy,
    reconciliation,
    refunds,
    social,
    wallet,
)

# Upper bound per run, so one run stays short even after the worker was down a while.
MAX_FLUSH_ROUNDS = 20


@db_periodic_task(crontab(minute="*"))
def flush_listing_views() -> int:
    """Folds buffered detail views into Listing.views (the "hot" order) once a minute."""
    total = 0
    for _ in range(MAX_FLUSH_ROUNDS):
        folded = catalog_actions.flush_listing_views()
        total += folded
        if folded < catalog_actions.FLUSH_BATCH:
            break
    return total


# --- Orders, payments and refunds: deadlines fire by task, the sweepers are the backstop ------


@db_task(retries=3, retry_delay=30)
def order_deadline_task(order_id: int) -> str:
    return lifecycle.handle_order_deadline(order_id=order_id)


@db_periodic_task(crontab(minute="*"))
def sweep_overdue_orders() -> dict:
    """Handles every overdue order, so a deadline fires even if its task was lost or the worker
    was down when it fell due (Huey has no acknowledgements)."""
    return lifecycle.sweep_overdue_orders()


@db_task()
def submit_refund_task(refund_id: int) -> str:
    return refunds.submit_refund(refund_id=refund_id)


@db_periodic_task(crontab(minute="*"))
def sweep_refunds() -> dict:
    """Resubmits refunds whose task was lost or failed, and settles stalled ones by query."""
    return refunds.sweep_refunds()


# --- Fulfilment: the seller's credit, tracking subscriptions -------------------------------------


@db_task(retries=3, retry_delay=30)
def credit_sale_task(order_id: int) -> bool:
    return wallet.credit_sale(order_id=order_id) is not None


@db_periodic_task(crontab(minute="*"))
def sweep_uncredited_sales() -> int:
    """Credits completed orders whose credit task was lost (the ledger key makes it once)."""
    order_ids = fulfilment.uncredited_completed_order_ids()
    for order_id in order_ids:
        wallet.credit_sale(order_id=order_id)
    return len(order_ids)


@db_periodic_task(crontab(minute="*/5"))
def resubscribe_tracking() -> int:
    return fulfilment.resubscribe_due_tracking()


@db_task()
def submit_refunds_task(refund_ids: list[int]) -> int:
    """Refunds requested together, submitted by one task (the sweeper resumes any that stall)."""
    return sum(refunds.submit_refund(refund_id=refund_id) == "submitted" for refund_id in refund_ids)


@db_task(retries=2, retry_delay=60)
def build_data_export(export_id: int) -> None:
    privacy.build_export(export_id=export_id)


@db_periodic_task(crontab(minute="17"))
def erase_closed_accounts() -> int:
    """Hourly: accounts whose cooling-off period ended lose their personal data."""
    return privacy.erase_due_accounts()


@db_periodic_task(crontab(hour="4", minute="30"))
def retention_sweep() -> dict:
    """Daily, at a quiet hour: what is past its retention period (docs/privacy.md)."""
    return privacy.sweep_retention().counts



# --- Payouts to WeChat and reconciliation (docs/payout.md) ---------------------------------------


@db_task()
def submit_transfer_task(transfer_id: int) -> str:
    return payouts.submit_transfer(transfer_id=transfer_id)


@db_periodic_task(crontab(minute="*"))
def sweep_transfers() -> dict:
    """Creates transfers whose task was lost or failed, settles stalled ones by query, cancels
    those past WeChat's confirmation window."""
    return payouts.sweep_transfers()


@db_periodic_task(crontab(hour="3", minute="0"))  # UTC: 11:00 in China
def reconcile_yesterday() -> str:
    """Daily, after WeChat has generated yesterday's bills (from about 10:00)."""
    return reconciliation.reconcile_day(day=reconciliation.yesterday()).status
# --- Social: news for favouriters and followers (docs/social.md) ------------------------------


@db_task(retries=3, retry_delay=10)
def fan_out_broadcast_task(broadcast_id: int) -> None:
    """Tells a broadcast's recipients, batch by batch; a second run continues or does nothing."""
    social.fan_out_broadcast(broadcast_id=broadcast_id)


@db_periodic_task(crontab(minute="*"))
def sweep_broadcasts() -> int:
    """Re-queues broadcasts a lost task left unfinished."""
    return social.sweep_broadcasts()
