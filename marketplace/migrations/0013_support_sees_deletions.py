"""Support answers questions about closed accounts: they read deletion requests, exports' state
and retention runs (docs/privacy.md)."""

from django.db import migrations

from marketplace.staff_roles import grant, revoke

GRANTS = {
    "support": [
        ("marketplace", "view_accountdeletion"),
        ("marketplace", "view_dataexport"),
        ("marketplace", "view_retentionrun"),
    ]
}


def grant_all(apps, schema_editor):
    for role, permissions in GRANTS.items():
        grant(apps, role, permissions)


def revoke_all(apps, schema_editor):
    for role, permissions in GRANTS.items():
        revoke(apps, role, permissions)


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0012_privacy_deletion_export")]

    operations = [migrations.RunPython(grant_all, revoke_all)]
