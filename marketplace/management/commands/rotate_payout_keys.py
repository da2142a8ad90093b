"""Re-encrypts every payout account number with the first PAYOUT_ENCRYPTION_KEYS key.

Rotation (docs/wallet.md): prepend the new key, deploy, run this, then drop the old key.
"""

from django.core.management.base import BaseCommand

from marketplace.actions.wallet import rotate_payout_keys


class Command(BaseCommand):
    help = "Re-encrypt payout account numbers with the newest key (after prepending one)."

    def handle(self, *args, **options):
        count = rotate_payout_keys()
        self.stdout.write(f"re-encrypted {count} payout account number(s)")
