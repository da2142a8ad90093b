"""Finance works WeChat payouts and reconciliation: reads transfers and their history (and
cancels unconfirmed ones with change_withdrawal, which it has), reads reconciliation days and
resolves their items (docs/payout.md)."""

from django.db import migrations

from marketplace.staff_roles import grant, revoke

GRANTS = {
    "finance": [
        ("marketplace", "view_wechattransfer"),
        ("marketplace", "view_wechattransferevent"),
        ("marketplace", "view_reconciliationday"),
        ("marketplace", "view_reconciliationitem"),
        ("marketplace", "change_reconciliationitem"),
    ]
}


def grant_all(apps, schema_editor):
    for role, permissions in GRANTS.items():
        grant(apps, role, permissions)


def revoke_all(apps, schema_editor):
    for role, permissions in GRANTS.items():
        revoke(apps, role, permissions)


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0014_wallet_wechat_transfer_reconciliation")]

    operations = [migrations.RunPython(grant_all, revoke_all)]
