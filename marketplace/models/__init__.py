"""Models, one module per area; import them from here."""

from marketplace.models.accounts import Address, ApiToken, User

__all__ = ["Address", "ApiToken", "User"]
