"""Cross-cutting HTTP concerns: request ids, body size limits, and the API error body for
responses Django produces before or around the API (404, 405, 413, 500)."""

import contextvars
import json
import logging
import re
import uuid
from urllib.parse import unquote_plus

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.handlers.asgi import ASGIRequest
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
}
_STATUS_MESSAGES = {
    404: "No such endpoint.",
    405: "Method not allowed on this endpoint.",
    413: "The request body is too large.",
    500: "Something went wrong on our side; it has been logged.",
}


def error_response(status: int, code: str, message: str, **extra) -> JsonResponse:
    """`message` is English source text: the reader gets it in their language."""
    return JsonResponse({"code": code, "message": gettext(message), **extra}, status=status)


def is_api_path(path: str) -> bool:
    return path.startswith("/api/")


class ReleaseConnectionsMiddleware:
    """Under ASGI, gives the request's database connections back to the pool when it ends.

    Django closes them on `request_finished`, but under ASGI that signal runs on the event loop,
    outside the context the sync view ran in (asgiref 3.10+ runs it in a copy), so it never saw
    the view's connection: each request kept a pool slot for good and daphne answered 503 once
    the pool was empty (tests/realtime/test_connection_pool.py). A sync middleware runs in the
    view's own context. Under WSGI the signal does the work; connections in an atomic block (a
    test's transaction, ATOMIC_REQUESTS) are left alone, as Django's own cleanup does."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            return self.get_response(request)
        finally:
            if isinstance(request, ASGIRequest):
                for connection in connections.all(initialized_only=True):
                    if not connection.in_atomic_block:
                        connection.close_if_unusable_or_obsolete()


class MethodOverrideMiddleware:
    """`POST` + `X-HTTP-Method-Override: PATCH` is a PATCH under /api/: the mini-program's
    `wx.request` has no PATCH method. Only that pair: a GET never becomes a write, and no other
    method can be reached this way."""

    HEADER = "HTTP_X_HTTP_METHOD_OVERRIDE"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.method == "POST"
            and request.META.get(self.HEADER, "").upper() == "PATCH"
            and is_api_path(request.path)
        ):
            request.method = "PATCH"
        return self.get_response(request)


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class RequestIdMiddleware:
    """Tags each request with an id (the client's X-Request-ID when sane), for logs and replies."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _CLIENT_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]  # ours, read by views
        # Not reset afterwards: Django logs the response (django.request) after the middleware
        # chain returns, and that line should carry the id too. The next request overwrites it.
        request_id_var.set(request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class BodySizeLimitMiddleware:
    """Refuses oversized bodies from their declared length, before anything reads them.

    JSON bodies are capped by DATA_UPLOAD_MAX_MEMORY_SIZE; multipart uploads by
    MAX_REQUEST_BODY_BYTES (each upload endpoint checks its own, smaller, limit).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(400, "bad_request", "Invalid Content-Length header.")
        is_multipart = request.content_type == "multipart/form-data"
        limit = (
            settings.MAX_REQUEST_BODY_BYTES
            if is_multipart
            else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        )
        if length > limit:
            return error_response(
                413,
                "payload_too_large",
                gettext("The request body exceeds %(limit)s bytes.") % {"limit": limit},
            )
        return self.get_response(request)


class NulCharacterMiddleware:
    """Refuses NUL characters in the path, query string and form fields with a 400.

    PostgreSQL text cannot hold NUL (0x00): a NUL that reached a query or an INSERT would be a
    500. No legitimate client sends one. JSON bodies are checked by the API's parser.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _has_nul(request.path) or _has_nul(unquote_plus(request.META.get("QUERY_STRING", ""))):
            return _nul_error()
        is_form = request.content_type in {
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        }
        if is_form and request.method == "POST":
            if request.content_type == "multipart/form-data":
                try:
                    length = int(request.META.get("CONTENT_LENGTH") or 0)
                except ValueError:
                    length = 0
                if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE or length == 0:
                    # An upload: its parts are files, streamed; reading it here would hold it
                    # in memory. Its text fields are too few to matter. Without a declared
                    # length (a chunked body under ASGI) Django parses no multipart fields at
                    # all, so there is nothing to check, and its size is unknown.
                    return self.get_response(request)
                # Parsing a multipart stream leaves request.body unreadable, and views that
                # verify signatures read the body: keep the (small) body so both work.
                try:
                    request.body  # noqa: B018
                except RequestDataTooBig:
                    return _too_large()
            try:
                form = request.POST
            except RequestDataTooBig:  # a chunked form body past the limit (ASGI)
                return _too_large()
            except Exception:  # noqa: BLE001 - a malformed form (e.g. multipart, no boundary)
                return error_response(400, "bad_request", "The form body cannot be parsed.")
            if any(
                _has_nul(key) or _has_nul(value) for key, values in form.lists() for value in values
            ):
                return _nul_error()
        return self.get_response(request)


def _has_nul(text: str) -> bool:
    return "\x00" in text


def _too_large() -> JsonResponse:
    return error_response(
        413,
        "payload_too_large",
        gettext("The request body exceeds %(limit)s bytes.")
        % {"limit": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
    )


def _nul_error() -> JsonResponse:
    return error_response(400, "invalid_characters", "NUL characters are not allowed.")


class ApiErrorEnvelopeMiddleware:
    """Gives every non-JSON error under /api/ the API error body (Django's own 404/405/500)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not is_api_path(request.path) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        status = response.status_code
        code = _STATUS_CODES.get(status, "error")
        message = _STATUS_MESSAGES.get(status) or _reason_from(response)
        wrapped = error_response(status, code, message)
        if status == 405 and response.has_header("Allow"):
            wrapped["Allow"] = response["Allow"]
        return wrapped


def _reason_from(response: HttpResponse) -> str:
    try:
        body = json.loads(response.content or b"{}")
        return str(body.get("message") or response.reason_phrase)
    except (ValueError, AttributeError):
        return response.reason_phrase


class EnvironmentLabelMiddleware:
    """Labels every response of a staging deployment, so nobody mistakes it for production:
    it runs production's settings on the sandbox, and screenshots and bug reports look alike."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.IS_STAGING:
            response["X-Environment"] = "staging"
        return response
