"""Reads of the event store, shaped for the socket (seq + ready frame text) and the API."""

from marketplace.actions.accounts import user_for_token
from realtime.models import Event, EventCounter
from realtime.push import event_frame_text


def latest_seq(user_id: int) -> int:
    value = EventCounter.objects.filter(pk=user_id).values_list("last_seq", flat=True).first()
    return int(value or 0)


def socket_user(raw_token: str) -> tuple[int | None, bool, int]:
    """(user id, is banned, latest seq) for a socket's token; (None, False, 0) when unknown."""
    user = user_for_token(raw_token) if raw_token else None
    if user is None:
        return None, False, 0
    if user.is_banned:
        return user.pk, True, 0
    return user.pk, False, latest_seq(user.pk)


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
