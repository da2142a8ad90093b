import sys
from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    verbose_name = "Marketplace"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from marketplace import storefront  # noqa: F401 - connects its signal receivers
        from project import checks  # noqa: F401 - registers the deployment checks

        post_migrate.connect(_tell_how_to_create_staff, sender=self)


def _tell_how_to_create_staff(*, verbosity: int = 1, **kwargs: Any) -> None:
    """A fresh production database has no staff login, and `make run`'s demo one is refused."""
    from project.checks import first_staff_user_hint

    hint = first_staff_user_hint()
    if hint and verbosity >= 1:
        (kwargs.get("stdout") or sys.stdout).write(hint + "\n")
