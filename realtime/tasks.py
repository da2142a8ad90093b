"""Huey tasks of the realtime app: the offline subscribe-message fallback and retention."""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from marketplace.gateways import wechat
from realtime import notices, presence
from realtime.models import Event, Notification, RealtimeSettings

logger = logging.getLogger("realtime.tasks")

PRUNE_BATCH = 5000


@db_task(retries=3, retry_delay=60)
def send_offline_notices(event_ids: list[int]) -> None:
    """The offline notices of one transaction's important events, in order. A failure stops
    the batch for Huey's retry, which skips the events already notified (each is claimed)."""
    for event_id in event_ids:
        notify_offline(event_id)


@db_task(retries=3, retry_delay=60)
def send_offline_notice(event_id: int) -> None:
    """One event's notice: tasks queued before the batches (kept until they have drained)."""
    notify_offline(event_id)


def notify_offline(event_id: int) -> None:
    """WeChat subscribe message for an important event, when its user has no open socket.

    Idempotent: the event is claimed (notified_at) before sending, and released again when
    WeChat fails so that a retry can try once more.
    """
    event = Event.objects.select_related("user").filter(pk=event_id).first()
    if event is None or event.notified_at is not None:
        return
    if presence.is_online(event.user_id):
        return
    message = notices.message_for(event)
    if message is None or not event.user.openid:
        return
    claimed = Event.objects.filter(pk=event.pk, notified_at__isnull=True).update(
        notified_at=timezone.now()
    )
    if not claimed:
        return
    try:
        sent = wechat.send_subscribe_message(openid=event.user.openid, **message)
    except Exception:
        Event.objects.filter(pk=event.pk).update(notified_at=None)
        logger.warning("subscribe message for event %s failed; will retry", event.pk)
        raise
    if not sent:
        # 43101: the user has not granted this template (or used up the grant). Not a failure.
        logger.info("user %s has not granted %s", event.user_id, message["template_id"])


@db_periodic_task(crontab(hour="3", minute="17"))
def prune_events() -> int:
    """Deletes events older than the staff-set retention, in batches (short transactions)."""
    days = RealtimeSettings.load().event_retention_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(
            Event.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:PRUNE_BATCH]
        )
        if not ids:
            break
        deleted += Event.objects.filter(pk__in=ids).delete()[0]
    if deleted:
        logger.info("pruned %d events older than %d days", deleted, days)
    return deleted


@db_periodic_task(crontab(hour="3", minute="47"))
def prune_notifications() -> int:
    """Deletes notifications read more than NOTIFICATION_READ_RETENTION_DAYS ago, in batches;
    unread ones stay until read (the badge must not lose them)."""
    days = settings.NOTIFICATION_READ_RETENTION_DAYS
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(
            Notification.objects.filter(read_at__lt=cutoff).values_list("pk", flat=True)[
                :PRUNE_BATCH
            ]
        )
        if not ids:
            break
        deleted += Notification.objects.filter(pk__in=ids).delete()[0]
    if deleted:
        logger.info("pruned %d notifications read before %s", deleted, cutoff)
    return deleted
