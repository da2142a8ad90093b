"""State of the fake partner services. Kept in the database so every process (server, worker)
sees the same single-use codes and tokens, as the real services would."""

from django.db import models


class SandboxCode(models.Model):
    """A wx.login code or a phone-number-button code: single use, valid five minutes."""

    KIND_LOGIN = "login"
    KIND_PHONE = "phone"
    KIND_CHOICES = [(KIND_LOGIN, "wx.login"), (KIND_PHONE, "phone number")]

    kind = models.CharField(max_length=10, choices=KIND_CHOICES)
    code = models.CharField(max_length=64, unique=True)
    openid = models.CharField(max_length=64, blank=True)
    unionid = models.CharField(max_length=64, blank=True)
    phone = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} code for {self.openid or self.phone}"


class SandboxAccessToken(models.Model):
    token = models.CharField(max_length=128, unique=True)
    appid = models.CharField(max_length=64)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"access token for {self.appid}"


class SandboxSubscribeGrant(models.Model):
    """The user tapped "allow" on a subscribe-message prompt: each grant allows one message."""

    openid = models.CharField(max_length=64)
    template_id = models.CharField(max_length=64)
    remaining = models.PositiveIntegerField(default=1)

    class Meta:
        unique_together = [("openid", "template_id")]

    def __str__(self) -> str:
        return f"{self.openid}/{self.template_id}: {self.remaining}"


class SandboxMessage(models.Model):
    """A subscribe message the sandbox accepted, for tests and the demo to inspect."""

    openid = models.CharField(max_length=64, db_index=True)
    template_id = models.CharField(max_length=64)
    page = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict)
    sent_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.template_id} to {self.openid}"
