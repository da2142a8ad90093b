"""Domain errors: a machine code and an HTTP status, mapped to the API's error body in one place.

Actions raise these; they never import ninja. The socket maps them to `error` frames.
"""

from typing import Any


class DomainError(Exception):
    status = 400
    code = "bad_request"
    message = "The request cannot be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.errors = errors
        super().__init__(self.message)

    def as_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors:
            body["errors"] = self.errors
        return body


class InvalidInput(DomainError):
    status = 400
    code = "invalid_input"


class Unauthenticated(DomainError):
    status = 401
    code = "unauthorized"
    message = "Sign in first."


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    message = "You may not do that."


class NotFound(DomainError):
    status = 404
    code = "not_found"
    message = "Not found."


class Conflict(DomainError):
    """A state conflict: wrong status, already sold, deadline passed."""

    status = 409
    code = "conflict"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"
    message = "The request body is too large."


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"
    message = "Send JSON with Content-Type: application/json."


class Unprocessable(DomainError):
    status = 422
    code = "validation_error"


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"
    message = "Too many requests; slow down."


class UpstreamUnavailable(DomainError):
    """An external service (WeChat, Kuaidi100) failed; the client may retry."""

    status = 503
    code = "upstream_unavailable"
    message = "A partner service is unavailable; try again shortly."
