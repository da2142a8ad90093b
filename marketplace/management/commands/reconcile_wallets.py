"""Checks that every wallet equals the sum of its ledger: the restore drill's verdict
(scripts/restore_drill, docs/operations.md "Backups"), and a check an operator can run any time.

Exits with status 1 and lists the first mismatched wallets when any balance differs from its
ledger; the admin's reconciliation page shows the same (Wallets → Reconciliation)."""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import F

from marketplace.actions.wallet import reconciled_wallets

SHOWN = 20


class Command(BaseCommand):
    help = "Check that every wallet's balances equal the sums of its ledger entries."

    def handle(self, *args, **options):
        wallets = reconciled_wallets()
        mismatched = list(
            wallets.exclude(
                available_fen=F("ledger_available"),
                frozen_fen=F("ledger_frozen"),
                total_earned_fen=F("ledger_earned"),
            ).order_by("id")[:SHOWN]
        )
        total = wallets.count()
        if mismatched:
            for wallet in mismatched:
                # Annotated by reconciled_wallets(), so not attributes the model declares.
                ledger = {n: getattr(wallet, f"ledger_{n}") for n in ("available", "frozen", "earned")}
                self.stderr.write(
                    f"wallet {wallet.pk} (user {wallet.user_id}): available {wallet.available_fen} "
                    f"vs ledger {ledger['available']}, frozen {wallet.frozen_fen} vs "
                    f"{ledger['frozen']}, earned {wallet.total_earned_fen} vs "
                    f"{ledger['earned']} (fen)"
                )
            raise CommandError(f"{len(mismatched)} of {total} wallet(s) differ from their ledger")
        self.stdout.write(f"{total} wallet(s) equal their ledger")
