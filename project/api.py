"""The one NinjaAPI: routers joined here, every error rendered as `{code, message, errors?}`."""

import json
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.translation import gettext
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, Throttled
from ninja.errors import ValidationError as NinjaValidationError
from ninja.params.models import QueryModel
from ninja.parser import Parser
from psycopg_pool import PoolTimeout

from marketplace.api import accounts, catalog, media, orders, privacy, social, wallet
from marketplace.api.auth import BearerTokenAuth
from marketplace.errors import (
    DomainError,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
    Verbatim,
)
from negotiation.api import router as negotiation_router
from negotiation.conversations_api import push_router as wechat_push_router
from negotiation.conversations_api import router as conversations_router
from project.transactions import caused_by
from project.wire import API_RENDERER
from realtime.api import router as events_router

logger = logging.getLogger("marketplace.api")


class StrictJsonParser(Parser):
    """JSON bodies only: a form or text body sent to a JSON endpoint is a client error, not 500."""

    def parse_body(self, request: HttpRequest):
        content_type = request.content_type or ""
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise UnsupportedMediaType()
        try:
            body = request.body
            data = json.loads(body)
        except RequestDataTooBig as exc:
            raise PayloadTooLarge() from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise DomainError("The body is not valid JSON.", code="malformed_json") from exc
        # PostgreSQL text cannot hold NUL: refuse it here rather than fail at the INSERT.
        if b"\\u0000" in body or b"\x00" in body:
            raise DomainError("NUL characters are not allowed.", code="invalid_characters")
        return data


# The body every error handler below renders; documented on every operation as its 4XX answer so
# clients (and the fuzzer in tests/fuzz) can rely on it.
API_ERROR_SCHEMA = {
    "title": "ApiError",
    "type": "object",
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["code", "message"],
}


class MarketplaceAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["ApiError"] = API_ERROR_SCHEMA
        error = {
            "description": "Client error: `{code, message, errors?}`",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}},
        }
        for operations in schema["paths"].values():
            for operation in operations.values():
                operation.setdefault("responses", {}).setdefault("4XX", error)
        return schema


api = MarketplaceAPI(
    title="Second-hand marketplace API",
    version="1.0.0",
    description="REST API for the WeChat mini-program. Errors: `{code, message, errors?}`.",
    auth=BearerTokenAuth(),
    parser=StrictJsonParser(),
    renderer=API_RENDERER,
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
)


def _error(request: HttpRequest, status: int, code: str, message: str, **extra) -> HttpResponse:
    """`message` is English source text: the reader gets it in their language."""
    return api.create_response(
        request, {"code": code, "message": gettext(message), **extra}, status=status
    )


@api.exception_handler(DomainError)
def on_domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    return api.create_response(request, exc.as_body(), status=exc.status)


@api.exception_handler(NinjaValidationError)
def on_validation_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    errors: list[dict[str, Any]] = [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in exc.errors
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid"}
    where = ".".join(first["loc"][1:] or first["loc"])
    # Pydantic's own wording stays English (it is also in `errors`); the frame is translated.
    message = (
        gettext("%(field)s: %(problem)s") % {"field": where, "problem": first["msg"]}
        if where
        else first["msg"]
    )
    return _error(request, 422, "validation_error", message, errors=errors)


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    # ninja wraps body-parsing failures in HttpError(400); the parser's own error says why.
    if isinstance(exc.__cause__, DomainError):
        return on_domain_error(request, exc.__cause__)
    if isinstance(exc, Throttled):
        response = _error(request, 429, "rate_limited", "Too many requests; slow down.")
        if exc.wait:
            response["Retry-After"] = str(int(exc.wait) + 1)
        return response
    if isinstance(exc, AuthenticationError):
        return _error(request, 401, "unauthorized", "Sign in first: send Authorization: Bearer.")
    if isinstance(exc, AuthorizationError):
        return _error(request, 403, "forbidden", "You may not do that.")
    return _error(request, exc.status_code, "http_error", str(exc))


@api.exception_handler(RequestDataTooBig)
def on_body_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    # A body without a declared length (chunked, under ASGI) past the limit, found on reading.
    return on_domain_error(request, PayloadTooLarge())


@api.exception_handler(MultiPartParserError)
@api.exception_handler(SuspiciousOperation)
def on_unparsable_body(request: HttpRequest, exc: Exception) -> HttpResponse:
    # A multipart body too big for the form middleware to pre-read (an upload) is parsed when
    # the view reads request.FILES: a malformed one (no boundary, endless part headers, too many
    # fields) is the client's error.
    return _error(request, 400, "bad_request", "The form body cannot be parsed.")


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "not_found", "Not found.")


@api.exception_handler(Exception)
def on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    if _is_pool_timeout(exc):
        # Every connection of this process's pool stayed busy for DB_POOL_TIMEOUT: overload,
        # not a bug. The client may retry; the log says which pool ran dry.
        logger.warning("No database connection for %s %s: %s", request.method, request.path, exc)
        response = _error(
            request, 503, "database_busy", "The service is busy; retry in a moment."
        )
        response["Retry-After"] = "1"
        return response
    logger.exception("Unhandled error on %s %s", request.method, request.path)
    if settings.DEBUG:
        message = f"{type(exc).__name__}: {exc}"
    else:
        message = "Something went wrong on our side; it has been logged."
    return _error(request, 500, "internal_error", message)


def _is_pool_timeout(exc: BaseException) -> bool:
    return caused_by(exc, PoolTimeout)


for router in (
    accounts.router,
    catalog.router,
    orders.router,
    orders.notify_router,
    wallet.router,
    privacy.router,
    media.router,
    social.router,
    negotiation_router,
    conversations_router,
    wechat_push_router,
    events_router,
):
    api.add_router("", router)


def _forbid_unknown_query_parameters() -> None:
    """A list endpoint answers a query parameter it does not declare (a typo, `?seller=` where
    there is no such filter) with 422 naming it, instead of ignoring it and returning an
    unfiltered list. Wraps each operation's query model once, at import."""


    for _prefix, router in api._routers:
        for path_view in router.path_operations.values():
            for operation in path_view.operations:
                for model in operation.models:
                    if issubclass(model, QueryModel) and not getattr(model, "_strict", False):
                        _make_strict(model)


def _make_strict(model) -> None:
    flatten = getattr(model, "__ninja_flatten_map__", None) or {}
    allowed = frozenset(flatten) | frozenset(
        field.alias or name for name, field in model.model_fields.items()
    )
    original = model.get_request_data.__func__

    def get_request_data(cls, request, api, path_params):
        unknown = sorted(set(request.GET) - allowed)
        if unknown:
            raise Unprocessable(
                "Unknown query parameter: %(name)s.",
                code="unknown_query_parameter",
                params={"name": Verbatim(unknown[0])},
                errors=[
                    {"loc": ["query", name], "msg": "not a parameter of this endpoint",
                     "type": "unknown_parameter"}
                    for name in unknown
                ],
            )
        return original(cls, request, api, path_params)

    model.get_request_data = classmethod(get_request_data)
    model._strict = True


_forbid_unknown_query_parameters()
