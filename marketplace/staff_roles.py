"""Granting a staff role more permissions from a migration (the roles: migration 0008).

Each later grant is its own migration calling `grant`, so a role's history reads in order."""

from django.contrib.auth.management import create_permissions


def _ensure_permissions(apps) -> None:
    # Permissions are normally created after all migrations (post_migrate); a fresh database
    # needs them now. The migration state's app configs have no models module, which
    # create_permissions takes for "no models": give them one for the call.
    for app_config in apps.get_app_configs():
        original = getattr(app_config, "models_module", None)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = original


def grant(apps, role: str, permissions: list[tuple[str, str]]) -> None:
    _ensure_permissions(apps)
    Permission = apps.get_model("auth", "Permission")
    group, _ = apps.get_model("auth", "Group").objects.get_or_create(name=role)
    group.permissions.add(
        *[
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
            for app_label, codename in permissions
        ]
    )


def revoke(apps, role: str, permissions: list[tuple[str, str]]) -> None:
    Permission = apps.get_model("auth", "Permission")
    group = apps.get_model("auth", "Group").objects.filter(name=role).first()
    if group is not None:
        group.permissions.remove(
            *Permission.objects.filter(
                content_type__app_label__in={app for app, _ in permissions},
                codename__in={codename for _, codename in permissions},
            )
        )
