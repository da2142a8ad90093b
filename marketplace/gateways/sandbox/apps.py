from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "marketplace.gateways.sandbox"
    label = "sandbox"
    verbose_name = "Sandbox (fake WeChat / Kuaidi100)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing the handler modules registers their routes with the transport.
        from marketplace.gateways.sandbox import kuaidi100, wechat, wechatpay  # noqa: F401
