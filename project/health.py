"""Liveness, readiness and JSON fallbacks for Django's own 404/500."""

import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from project.middleware import error_response, is_api_path

logger = logging.getLogger("marketplace.health")


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database_ok() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"
        logger.warning("readiness: database unreachable: %s", exc)
        return f"database: {type(exc).__name__}"
    return None


def _redis_ok() -> str | None:
    if not settings.REDIS_URL:
        return None
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )
        client.ping()
    except redis.RedisError as exc:
        logger.warning("readiness: redis unreachable: %s", exc)
        return f"redis: {type(exc).__name__}"
    return None


def readyz(request: HttpRequest) -> JsonResponse:
    failures = [problem for problem in (_database_ok(), _redis_ok()) if problem]
    if failures:
        return JsonResponse(
            {"status": "unavailable", "code": "not_ready", "message": "; ".join(failures)},
            status=503,
        )
    return JsonResponse({"status": "ok", "redis": bool(settings.REDIS_URL)})


def not_found(request: HttpRequest, exception=None) -> HttpResponse:
    if is_api_path(request.path):
        return error_response(404, "not_found", "No such endpoint.")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_path(request.path):
        return error_response(
            500, "internal_error", "Something went wrong on our side; it has been logged."
        )
    return defaults.server_error(request)
