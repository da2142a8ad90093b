from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "sandbox"
    # The label it had as marketplace.gateways.sandbox: databases made by `make run` recorded
    # their sandbox migrations and tables under it, so the move needed no data migration.
    label = "sandbox"
    verbose_name = "Sandbox (fake WeChat / Kuaidi100)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing the handler modules registers their routes with the transport.
        from sandbox import bills, kuaidi100, mchtransfer, wechat, wechatpay  # noqa: F401
