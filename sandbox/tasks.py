"""Sandbox WeChat Pay notification delivery, retried on WeChat's schedule until acknowledged.

Each attempt signs the unchanged body afresh (new timestamp and nonce): a receiver that refuses
timestamps older than five minutes still accepts a retry hours later, as with WeChat. The
schedule is multiplied by settings.SANDBOX_NOTIFY_SCHEDULE_SCALE. Delivery goes over real HTTP
(settings.SANDBOX_CALLBACK_TRANSPORT = "http") or in-process through Django's test client
("django", the test settings), which needs no server.
"""

import logging
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from sandbox.mchtransfer import expire_due_transfers
from sandbox.models import SandboxNotification
from sandbox.wechatpay import settle_due_refunds, settle_refund, signed_headers

logger = logging.getLogger("sandbox.wechatpay")

# WeChat Pay's retry intervals after a failed attempt, in seconds (about 24 h in all).
RETRY_SCHEDULE = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800,
                  21600, 21600)  # fmt: skip
# An attempt in flight holds its row this long, so two workers never deliver it at once.
CLAIM = timedelta(seconds=60)
DELIVERY_TIMEOUT = 5


# Merchant transfer notifications follow their own schedule: 15 s (10 times), 5 min (10 times),
# 30 min (44 times) after the first attempt - about a day.
TRANSFER_RETRY_SCHEDULE = (15,) * 10 + (300,) * 10 + (1800,) * 44


def retry_delay(attempts: int, *, kind: str = "") -> float | None:
    """Seconds to wait after the `attempts`-th failed attempt; None once WeChat gives up."""
    schedule = (
        TRANSFER_RETRY_SCHEDULE if kind == SandboxNotification.KIND_TRANSFER else RETRY_SCHEDULE
    )
    if attempts > len(schedule):
        return None
    return schedule[attempts - 1] * settings.SANDBOX_NOTIFY_SCHEDULE_SCALE


def _post(url: str, body: str, headers: dict[str, str]) -> tuple[int | None, str]:
    headers = {**headers, "Content-Type": "application/json", "User-Agent": "Mozilla/4.0"}
    if settings.SANDBOX_CALLBACK_TRANSPORT == "django":
        from django.test import Client

        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        response = Client(raise_request_exception=False).post(
            path,
            data=body.encode("utf-8"),
            content_type="application/json",
            secure=parts.scheme == "https",
            headers={key: value for key, value in headers.items() if key != "Content-Type"},
            HTTP_HOST=parts.netloc,
        )
        return response.status_code, ""
    try:
        response = requests.post(
            url, data=body.encode("utf-8"), headers=headers, timeout=DELIVERY_TIMEOUT
        )
    except requests.RequestException as exc:
        return None, str(exc)[:300]
    return response.status_code, ""


def attempt_delivery(notification_pk: int) -> bool:
    """One delivery attempt; returns True when the receiver acknowledged it (200/204)."""
    now = timezone.now()
    open_rows = SandboxNotification.objects.filter(
        pk=notification_pk, acknowledged_at__isnull=True, gave_up_at__isnull=True
    )
    # Claim the attempt with one conditional UPDATE rather than a row lock: the receiver runs
    # while we wait for its answer (in-process in tests) and must not find a transaction open.
    claimed = open_rows.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)).update(
        claimed_until=now + CLAIM, attempts=F("attempts") + 1
    )
    if not claimed:
        return False
    notification = SandboxNotification.objects.get(pk=notification_pk)
    headers = signed_headers(notification.body)
    status, error = _post(notification.target_url, notification.body, headers)
    acknowledged = status in (200, 204)
    fields = {
        "last_headers": headers,
        "last_status": status,
        "last_error": error,
        "claimed_until": None,
    }
    delay = None
    finished = timezone.now()
    if acknowledged:
        fields.update(acknowledged_at=finished, next_attempt_at=None)
    else:
        delay = retry_delay(notification.attempts, kind=notification.kind)
        if delay is None:
            fields.update(gave_up_at=finished, next_attempt_at=None)
        else:
            fields["next_attempt_at"] = finished + timedelta(seconds=delay)
    SandboxNotification.objects.filter(pk=notification_pk).update(**fields)
    logger.info(
        "sandbox notification %s %s attempt %s -> %s%s",
        notification.event_type,
        notification.out_trade_no,
        notification.attempts,
        status,
        f" ({error})" if error else "",
    )
    if delay is not None:
        deliver_notification.schedule((notification_pk,), delay=delay)
    return acknowledged


def deliver_pending_notifications(*, force: bool = False) -> int:
    """Attempt every unacknowledged notification that is due (every one with `force`).

    For tests (Huey's immediate mode never runs the delayed retries) and the sweeper below.
    Returns how many were acknowledged.
    """
    pending = SandboxNotification.objects.filter(
        acknowledged_at__isnull=True, gave_up_at__isnull=True
    )
    if not force:
        pending = pending.filter(next_attempt_at__lte=timezone.now())
    return sum(
        attempt_delivery(pk) for pk in list(pending.order_by("pk").values_list("pk", flat=True))
    )


@db_task()
def deliver_notification(notification_pk: int) -> None:
    attempt_delivery(notification_pk)


@db_task()
def settle_refund_task(refund_pk: int) -> None:
    settle_refund(refund_pk=refund_pk)


@db_periodic_task(crontab(minute="*"))
def sandbox_wechatpay_sweep() -> None:
    """Catch up what a lost task left behind: refunds due to settle, unconfirmed transfers past
    their window, notifications due again."""
    settle_due_refunds()
    expire_due_transfers()
    deliver_pending_notifications()
