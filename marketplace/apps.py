from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    verbose_name = "Marketplace"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Django's way to connect signal receivers: the module can only load once models have.
        from marketplace import storefront  # noqa: F401

        # Every app's tasks register with Huey in every process (web ones too), so that
        # project.tasking can queue a task by name without the action importing its module.
        autodiscover_modules("tasks")
