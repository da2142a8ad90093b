"""Staff roles as groups with least privilege (docs/operations.md, "Staff roles").

- reviewers: read the catalog, decide listings (the review actions check change_listing; the
  listing form itself is read-only, so "change" means approve/reject and nothing else).
- support: read users, orders and their trail, ban/unban (ban_user), settle disputes
  (change_dispute, checked by OrderAdmin.has_settle_permission).
- finance: read orders and money, pay out or reject withdrawals (change_withdrawal), see full
  payout account numbers, resubmit stuck refunds (change_refund).

Nobody but a superuser changes platform settings, categories, banners or realtime settings.
The permission lists are frozen here on purpose: a later change of a role is a new migration.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = {
    "reviewers": [
        ("marketplace", "view_listing"),
        ("marketplace", "change_listing"),
        ("marketplace", "view_listingreview"),
        ("marketplace", "view_imageupload"),
        ("marketplace", "view_category"),
        ("marketplace", "view_banner"),
    ],
    "support": [
        ("marketplace", "view_user"),
        ("marketplace", "ban_user"),
        ("marketplace", "view_address"),
        ("marketplace", "view_listing"),
        ("marketplace", "view_listingreview"),
        ("marketplace", "view_order"),
        ("marketplace", "view_orderhistory"),
        ("marketplace", "view_refund"),
        ("marketplace", "view_trackingevent"),
        ("marketplace", "view_dispute"),
        ("marketplace", "change_dispute"),
        ("marketplace", "view_review"),
        ("marketplace", "view_paymentnotification"),
        ("negotiation", "view_offer"),
        ("negotiation", "view_offerhistory"),
        ("realtime", "view_event"),
    ],
    "finance": [
        ("marketplace", "view_order"),
        ("marketplace", "view_orderhistory"),
        ("marketplace", "view_refund"),
        ("marketplace", "change_refund"),
        ("marketplace", "view_trackingevent"),
        ("marketplace", "view_dispute"),
        ("marketplace", "view_paymentnotification"),
        ("marketplace", "view_wallet"),
        ("marketplace", "view_ledgerentry"),
        ("marketplace", "view_payoutaccount"),
        ("marketplace", "view_full_account_number"),
        ("marketplace", "view_withdrawal"),
        ("marketplace", "change_withdrawal"),
        ("marketplace", "view_platformsettings"),
        ("marketplace", "view_platformsettingschange"),
    ],
}

# Not a model permission Django generates: banning is its own right, separate from editing a
# user (change_user would let support edit is_staff, groups and passwords).
BAN_PERMISSION = ("ban_user", "Can ban and unban users")


def create_staff_groups(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate); make sure they exist
    # now, on a fresh database, so the groups can point at them.
    for app_config in apps.get_app_configs():
        # create_permissions skips app configs without a models module, which is what the
        # migration state's stand-ins look like; restore it after (tests pass the real registry).
        original = getattr(app_config, "models_module", None)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = original

    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")

    user_type, _ = ContentType.objects.get_or_create(app_label="marketplace", model="user")
    Permission.objects.get_or_create(
        content_type=user_type, codename=BAN_PERMISSION[0], defaults={"name": BAN_PERMISSION[1]}
    )
    for name, wanted in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = []
        for app_label, codename in wanted:
            permissions.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(permissions)


def remove_staff_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()
    apps.get_model("auth", "Permission").objects.filter(
        content_type__app_label="marketplace", codename=BAN_PERMISSION[0]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("marketplace", "0007_wallet_withdrawals"),
        ("negotiation", "0001_initial"),
        ("realtime", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_staff_groups, remove_staff_groups)]
