from django.apps import AppConfig


class NegotiationConfig(AppConfig):
    name = "negotiation"
    verbose_name = "Bargaining"
    default_auto_field = "django.db.models.BigAutoField"
