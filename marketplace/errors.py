"""Domain errors: a machine code and an HTTP status, mapped to the API's error body in one place.

Actions raise these; they never import ninja. The socket maps them to `error` frames.
"""

from typing import Any

from django.utils.translation import gettext


class Verbatim(str):
    """A message parameter shown as it is, never looked up in the catalogue: a parameter or
    field name the client sent ("seller" must not come back as 卖家)."""


def _translated(value: Any) -> Any:
    if isinstance(value, str) and value and not isinstance(value, Verbatim):
        return gettext(value)
    return value


class DomainError(Exception):
    """`message` is English source text, or a %-template filled from `params`; the client reads
    it in its language (Simplified Chinese unless it sends Accept-Language: en): translated when
    read, through the catalogue in locale/zh_Hans (docs/fixes.md). `code` never changes."""

    status = 400
    code = "bad_request"
    default_message = "The request cannot be processed."

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A subclass's `message = "..."` is its default text, not a shadow of the property.
        super().__init_subclass__(**kwargs)
        if isinstance(cls.__dict__.get("message"), str):
            cls.default_message = cls.__dict__["message"]
            delattr(cls, "message")

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.template = message or self.default_message
        self.params = params or {}
        self.code = code or self.code
        self.errors = errors
        super().__init__(self._fill(self.template))  # logs read English

    def _fill(self, text: str) -> str:
        return text % self.params if self.params else text

    @property
    def message(self) -> str:
        """In the active language (the request's, or the default one outside a request). Text
        parameters are looked up too: a phrase marked with gettext_noop comes out translated,
        anything else (a status, a name) as it is."""
        if not self.template:
            return ""
        params = {name: _translated(value) for name, value in self.params.items()}
        text = gettext(self.template)
        return text % params if params else text

    @message.setter
    def message(self, value: str) -> None:
        self.template, self.params = value, {}

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
