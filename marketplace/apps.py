import sys
from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.module_loading import autodiscover_modules

# Importing it registers the deployment checks (project/checks.py).
from project import checks, i18n, jsonlog, lookups, metrics


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    verbose_name = "Marketplace"  # in Chinese through project/i18n.py
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        lookups.register()  # field__any_of: one array parameter for a batch's ids
        # Django's way to connect signal receivers: the module can only load once models have.
        from marketplace import storefront  # noqa: F401

        # Every app's tasks register with Huey in every process (web ones too), so that
        # project.tasking can queue a task by name without the action importing its module.
        autodiscover_modules("tasks")
        post_migrate.connect(_tell_how_to_create_staff, sender=self)
        # Every app's models are loaded by now: their labels become translations.
        i18n.translate_model_labels()
        # Task outcomes for /metrics; only consumers run tasks, so only they count.
        from huey.contrib.djhuey import HUEY  # built from settings.HUEY on first import

        metrics.watch_tasks(HUEY)
        # Multi-process metrics: a process's live gauges (open sockets) go when it exits, be it
        # daphne, a Huey consumer or a one-off `manage.py` command with the deployment's env.
        metrics.mark_process_dead_at_exit()
        jsonlog.watch_tasks(HUEY)


def _tell_how_to_create_staff(*, verbosity: int = 1, **kwargs: Any) -> None:
    """A fresh production database has no staff login, and `make run`'s demo one is refused."""
    hint = checks.first_staff_user_hint()
    if hint and verbosity >= 1:
        (kwargs.get("stdout") or sys.stdout).write(hint + "\n")
