"""Structured logs: with LOG_FORMAT=json every record is one JSON line, and every request and
every task run adds one line of its own (docs/operations.md, "Logs").

A request line carries the request id (the `X-Request-ID` the client got), the user's id, the
URL pattern (never the raw path or query string: tokens travel in `?token=` on sockets, and ids
in paths say who looked at what), the status and the duration. No address, header, body or
token is ever written, and every message goes through the same text scrubber as Sentry events
(project/error_reporting.py), so a phone number in an exception message does not reach the log.
"""

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from project.error_reporting import scrub_text
from project.metrics import request_route
from project.middleware import request_id_var

access_logger = logging.getLogger("marketplace.access")
task_logger = logging.getLogger("marketplace.tasks")

# Fields a record may carry (`logger.info(..., extra={...})`) that the JSON line keeps.
FIELDS = ("method", "route", "status", "duration_ms", "user_id", "task", "task_id", "outcome")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
            "message": scrub_text(record.getMessage()),
        }
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["exception"] = scrub_text(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def is_json() -> bool:
    return settings.LOG_FORMAT == "json"


class AccessLogMiddleware:
    """One line per request (LOG_FORMAT=json only; otherwise the servers' access logs)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        if is_json():
            route = request_route(request)
            access_logger.info(
                "%s %s %s",
                request.method,
                route,
                response.status_code,
                extra={
                    "method": request.method,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    "user_id": _user_id(request),
                },
            )
        return response


def _user_id(request: HttpRequest) -> int | None:
    # The API's token auth puts the user on request.auth; the admin's session on request.user.
    for candidate in (getattr(request, "auth", None), getattr(request, "user", None)):
        pk = getattr(candidate, "pk", None)
        if getattr(candidate, "is_authenticated", False) and isinstance(pk, int):
            return pk
    return None


def watch_tasks(huey) -> None:
    """One line per task run: its name, id, outcome and duration (never its arguments)."""
    from huey import signals  # Huey's own module, not ours

    started: dict[str, float] = {}

    def on_executing(signal: str, task, *args) -> None:
        started[task.id] = time.perf_counter()

    def on_finished(signal: str, task, *args) -> None:
        began = started.pop(task.id, None)
        if not is_json():
            return
        task_logger.info(
            "%s %s",
            task.name,
            signal,
            extra={
                "task": task.name,
                "task_id": task.id,
                "outcome": signal,
                "duration_ms": (
                    round((time.perf_counter() - began) * 1000, 1) if began is not None else None
                ),
            },
        )

    huey.signal(signals.SIGNAL_EXECUTING)(on_executing)
    huey.signal(
        signals.SIGNAL_COMPLETE,
        signals.SIGNAL_ERROR,
        signals.SIGNAL_RETRYING,
        signals.SIGNAL_CANCELED,
        signals.SIGNAL_EXPIRED,
        signals.SIGNAL_TIMEOUT,
    )(on_finished)
