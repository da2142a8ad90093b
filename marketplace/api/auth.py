"""Bearer-token authentication for the API (and the WebSocket, through the same lookup)."""

from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from marketplace.actions.accounts import hash_token
from marketplace.errors import Forbidden
from marketplace.models import ApiToken, User

# Writing last_used_at on every request would serialise a user's requests on one row.
LAST_USED_RESOLUTION_SECONDS = 300


def user_for_token(raw: str) -> User | None:
    """The token's user, or None when the token is unknown, expired or revoked."""
    token = live_token(raw)
    return token.user if token is not None else None


def live_token(raw: str) -> ApiToken | None:
    """The token (with its user), or None when it is unknown, expired or revoked."""
    if not raw or len(raw) > 200:
        return None
    now = timezone.now()
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=hash_token(raw), revoked_at__isnull=True, expires_at__gt=now)
        .first()
    )
    if token is None:
        return None
    if (
        token.last_used_at is None
        or (now - token.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS
    ):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


class BearerTokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        user = user_for_token(token)
        if user is None:
            return None
        if user.is_banned:
            raise Forbidden("This account is suspended.", code="user_banned")
        request.user = user
        return user
