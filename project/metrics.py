"""Prometheus metrics at /metrics (docs/operations.md, "Metrics").

Two kinds of series:

* Counted where they happen, in every process: requests by route and status with their
  latency, open sockets, the emit→send lag of live events, channel-layer send failures, task
  runs and failures. With `PROMETHEUS_MULTIPROC_DIR` set (deploy/marketplace.env.example),
  prometheus_client writes them to files in that directory, and one scrape of any gunicorn
  worker sums every process on the machine: gunicorn's workers, daphne's, Huey's.
* Read from the state at scrape time, once per scrape: the Huey queue depth, the deadline lag
  (how long the oldest overdue order has waited for its sweep) and the refunds needing
  attention. They are facts of the database and Redis, not of a process, so they are never
  written to the multi-process files (that would sum them once per process).

Not public: the view answers only a `Bearer` METRICS_TOKEN or a client address in
METRICS_ALLOWED_IPS (the address rate limits use, so a forged X-Forwarded-For does not pass);
everyone else gets the API's 404. nginx also allows only the monitoring addresses.
"""

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable

from django.apps import apps
from django.conf import settings
from django.db.models import Count, Min, Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from marketplace.states import WITH_DEADLINE, RefundStatus
from project.client_address import client_address
from project.middleware import error_response

logger = logging.getLogger("project.metrics")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_REQUESTS = Counter(
    "marketplace_http_requests",
    "HTTP requests answered, by URL pattern (never the raw path) and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "marketplace_http_request_duration_seconds",
    "Time from the first middleware to the response, by URL pattern and status.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
OPEN_SOCKETS = Gauge(
    "marketplace_open_sockets",
    "Signed-in WebSockets held by this process (one series per live process).",
    multiprocess_mode="liveall",
)
EVENT_SEND_LAG = Histogram(
    "marketplace_event_send_lag_seconds",
    "From the commit that emitted an event to its frame leaving a socket.",
    buckets=_LAG_BUCKETS,
)
LAYER_SEND_FAILURES = Counter(
    "marketplace_channel_layer_send_failures",
    "Live sends of committed events that failed (clients catch up on resume).",
)
TASKS = Counter(
    "marketplace_tasks",
    "Huey task runs by task and outcome (complete, error, retrying, expired, canceled).",
    ["task", "outcome"],
)
TASK_FAILURES = Counter(
    "marketplace_task_failures",
    "Huey task runs that raised.",
    ["task"],
)


# --- Request metrics --------------------------------------------------------------------------


class MetricsMiddleware:
    """Outermost: counts and times every request, including those a later middleware refuses.

    The route label is the URL pattern Django matched (`api/orders/<int:order_id>`), so a
    crawler walking ids or random paths cannot grow the series without bound."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        duration = time.perf_counter() - started
        route = request_route(request)
        method = request.method if request.method in _METHODS else "other"
        status = str(response.status_code)
        HTTP_REQUESTS.labels(method, route, status).inc()
        HTTP_LATENCY.labels(method, route, status).observe(duration)
        request.metrics_duration = duration  # type: ignore[attr-defined]  # for the access log
        return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_route(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return "unmatched"
    return "/" + match.route.lstrip("^").rstrip("$")


# --- Tasks ------------------------------------------------------------------------------------


def watch_tasks(huey) -> None:
    """Counts task outcomes through Huey's signals (only consumers run tasks)."""
    from huey import signals  # Huey's own module, not ours

    def on_signal(signal: str, task, exc=None) -> None:
        TASKS.labels(task.name, signal).inc()
        if signal == signals.SIGNAL_ERROR:
            TASK_FAILURES.labels(task.name).inc()

    huey.signal(
        signals.SIGNAL_COMPLETE,
        signals.SIGNAL_ERROR,
        signals.SIGNAL_RETRYING,
        signals.SIGNAL_EXPIRED,
        signals.SIGNAL_CANCELED,
    )(on_signal)


# --- State read at scrape time -----------------------------------------------------------------


class StateCollector(Collector):
    """Gauges read from PostgreSQL and Redis when Prometheus scrapes."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        for part in (self._queue, self._orders, self._refunds, self._reconciliation, self._fan_out):
            try:
                families = list(part())
            except Exception:  # noqa: BLE001 - a store away: /readyz says so; the scrape answers
                logger.warning("metrics: %s could not be read", part.__name__, exc_info=True)
                continue
            yield from families

    def _queue(self) -> Iterable[GaugeMetricFamily]:
        from huey.contrib.djhuey import HUEY  # configured from settings.HUEY when first imported

        pending, scheduled = HUEY.pending_count(), HUEY.scheduled_count()
        depth = GaugeMetricFamily(
            "marketplace_huey_queue_depth", "Tasks queued and not yet taken by a consumer."
        )
        depth.add_metric([], pending)
        yield depth
        later = GaugeMetricFamily(
            "marketplace_huey_scheduled", "Tasks scheduled for later (deadlines, retries)."
        )
        later.add_metric([], scheduled)
        yield later

    def _orders(self) -> Iterable[GaugeMetricFamily]:
        order = apps.get_model("marketplace", "Order")
        now = timezone.now()
        overdue = order.objects.filter(status__in=WITH_DEADLINE, deadline_at__lt=now)
        summary = overdue.aggregate(oldest=Min("deadline_at"))
        lag = GaugeMetricFamily(
            "marketplace_deadline_lag_seconds",
            "How long the oldest overdue order has waited past its deadline (0: none); the "
            "sweeper runs every minute, so more than ~120 means it is down or stuck.",
        )
        lag.add_metric([], (now - summary["oldest"]).total_seconds() if summary["oldest"] else 0)
        yield lag
        count = GaugeMetricFamily(
            "marketplace_overdue_orders", "Orders past their deadline and not yet moved on."
        )
        count.add_metric([], overdue.count())
        yield count

    def _refunds(self) -> Iterable[GaugeMetricFamily]:
        refund = apps.get_model("marketplace", "Refund")
        attention = GaugeMetricFamily(
            "marketplace_refunds_needing_attention",
            "Refunds WeChat Pay refused or that ran out of retries: staff resubmit or pay by hand.",
        )
        attention.add_metric([], refund.objects.filter(status=RefundStatus.NEEDS_ATTENTION).count())
        yield attention


    def _reconciliation(self) -> Iterable[GaugeMetricFamily]:
        item = apps.get_model("marketplace", "ReconciliationItem")
        day = apps.get_model("marketplace", "ReconciliationDay")
        open_items = GaugeMetricFamily(
            "marketplace_reconciliation_open_items",
            "Differences between our books and WeChat Pay's bills that staff have not resolved.",
        )
        open_items.add_metric([], item.objects.filter(is_resolved=False).count())
        yield open_items
        bad_days = GaugeMetricFamily(
            "marketplace_reconciliation_bad_days",
            "Days whose bills could not be checked or whose own books do not add up.",
        )
        bad_days.add_metric(
            [],
            day.objects.filter(
                Q(status=day.Status.FAILED) | Q(is_books_balanced=False)
            ).count(),
        )
        yield bad_days


    def _fan_out(self) -> Iterable[GaugeMetricFamily]:
        broadcast = apps.get_model("marketplace", "ListingBroadcast")
        pending = broadcast.objects.filter(done_at__isnull=True).aggregate(
            count=Count("id"), oldest=Min("created_at")
        )
        backlog = GaugeMetricFamily(
            "marketplace_fan_out_backlog",
            "News fan-outs (price drops, sold, a followed seller's new listing) not yet told to "
            "everyone: the notification-centre backlog.",
        )
        backlog.add_metric([], pending["count"])
        yield backlog
        age = GaugeMetricFamily(
            "marketplace_fan_out_oldest_seconds",
            "How long the oldest unfinished fan-out has waited (0: none); the sweeper re-queues "
            "them every minute.",
        )
        age.add_metric(
            [],
            (timezone.now() - pending["oldest"]).total_seconds() if pending["oldest"] else 0,
        )
        yield age


def registry() -> CollectorRegistry:
    """What one scrape reports: every process's counters, and the state once."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape)
    else:
        scrape = CollectorRegistry()
        scrape.register(_ProcessLocal())
    scrape.register(StateCollector())
    return scrape


class _ProcessLocal(Collector):
    """This process's own series (one process: `manage.py serve`, tests)."""

    def collect(self):
        yield from REGISTRY.collect()


# --- The endpoint -----------------------------------------------------------------------------


def is_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if given.startswith("Bearer ") and hmac.compare_digest(
            given.removeprefix("Bearer ").encode(), token.encode()
        ):
            return True
    return client_address(request) in settings.METRICS_ALLOWED_IPS


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not is_allowed(request):
        # As for any unknown path: the endpoint's existence is nobody else's business.
        return error_response(404, "not_found", "No such endpoint.")
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


def mark_process_dead_at_exit() -> None:
    """Drops this process's live gauges (open sockets) when it exits (gunicorn's workers are
    also marked by its `child_exit` hook, for the exits that skip atexit)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    import atexit

    pid = os.getpid()
    atexit.register(lambda: multiprocess.mark_process_dead(pid))
