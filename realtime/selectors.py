"""Reads of the event store, shaped for the socket (seq + ready frame text) and the API."""

from django.utils import timezone

from marketplace.actions.accounts import live_token
from marketplace.models import ApiToken
from realtime.models import Event, EventCounter, Notification
from realtime.push import event_frame_text


def latest_seq(user_id: int) -> int:
    value = EventCounter.objects.filter(pk=user_id).values_list("last_seq", flat=True).first()
    return int(value or 0)


def socket_user(raw_token: str) -> tuple[int | None, bool, int, int | None]:
    """(user id, is banned, latest seq, token id) for a socket's token; (None, False, 0, None)
    when the token is unknown, expired or revoked."""
    token = live_token(raw_token) if raw_token else None
    if token is None:
        return None, False, 0, None
    if token.user.is_banned:
        return token.user_id, True, 0, token.pk
    return token.user_id, False, latest_seq(token.user_id), token.pk


def live_socket_tokens(token_ids: set[int]) -> set[int]:
    """The ids among `token_ids` whose token still admits a socket: not revoked, not expired,
    its user not banned (one query for every socket of a process)."""
    if not token_ids:
        return set()
    return set(
        ApiToken.objects.filter(
            pk__in=token_ids,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
            user__is_banned=False,
        ).values_list("pk", flat=True)
    )


def events_after(user_id: int, after: int, limit: int) -> list[Event]:
    return list(
        Event.objects.filter(user_id=user_id, seq__gt=after)
        .order_by("seq")
        .only("seq", "type", "data", "created_at")[:limit]
    )


def frames_after(user_id: int, after: int, limit: int) -> list[tuple[int, str]]:
    return [(event.seq, event_frame_text(event)) for event in events_after(user_id, after, limit)]


def frames_between(user_id: int, after: int, before: int) -> list[tuple[int, str]]:
    events = (
        Event.objects.filter(user_id=user_id, seq__gt=after, seq__lt=before)
        .order_by("seq")
        .only("seq", "type", "data", "created_at")
    )
    return [(event.seq, event_frame_text(event)) for event in events]


def notifications_of(
    user_id: int, *, unread: bool, limit: int, before_id: int | None
) -> list[Notification]:
    """Newest first, after the cursor (the last id seen), on the user's newest-first indexes."""
    queryset = Notification.objects.filter(user_id=user_id)
    if unread:
        queryset = queryset.filter(read_at__isnull=True)
    if before_id is not None:
        queryset = queryset.filter(pk__lt=before_id)
    return list(queryset.order_by("-id")[:limit])


def unread_notification_count(user_id: int) -> int:
    return Notification.objects.filter(user_id=user_id, read_at__isnull=True).count()
