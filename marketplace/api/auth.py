"""Bearer-token authentication for the API (and the WebSocket, through the same lookup)."""

from django.http import HttpRequest
from ninja.security import HttpBearer

from marketplace.actions.accounts import user_for_token
from marketplace.errors import Forbidden
from marketplace.models import User


class BearerTokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        user = user_for_token(token)
        if user is None:
            return None
        if user.is_banned:
            raise Forbidden("This account is suspended.", code="user_banned")
        request.user = user
        return user
