"""HTTP fallback for the socket: the same events, after a sequence number; and the socket's
protocol as an AsyncAPI document (realtime/asyncapi.py), as JSON and as an offline page."""

from typing import Annotated, Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from ninja import Field, Query, Router, Schema
from pydantic import ConfigDict, StringConstraints, model_validator

from marketplace.errors import InvalidInput
from negotiation.selectors import unread_message_count
from project.wire import WireDateTime
from realtime import notifications, selectors
from realtime.asyncapi import build_document, page_context
from realtime.dispatch import socket_event
from realtime.push import event_frame

router = Router(tags=["realtime"])

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class EventsQuery(Schema):
    since: Annotated[int, Field(ge=0)] = 0
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    # The list convention's cursor; here it is simply the last seq of the previous page.
    cursor: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,18}$")] | None = None


class EventOut(Schema):
    seq: int
    type: str
    data: dict[str, Any]
    at: WireDateTime


class EventsPage(Schema):
    items: list[EventOut]
    next_cursor: str | None
    latest_seq: int


@router.get(
    "/events",
    response=EventsPage,
    summary="Events after a sequence number (the socket's frames, over HTTP)",
)
def events(request: HttpRequest, query: Query[EventsQuery]):
    after = int(query.cursor) if query.cursor is not None else query.since
    user_id = request.auth.pk
    rows = selectors.events_after(user_id, after, query.limit + 1)
    has_more = len(rows) > query.limit
    rows = rows[: query.limit]
    return {
        "items": [event_frame(row) for row in rows],
        "next_cursor": str(rows[-1].seq) if has_more else None,
        "latest_seq": selectors.latest_seq(user_id),
    }


@router.get(
    "/asyncapi.json",
    auth=None,
    response=dict[str, Any],
    summary="The socket's protocol (/ws/) as an AsyncAPI 3 document",
)
def asyncapi_document(request: HttpRequest):
    return build_document()


@router.get("/asyncapi", auth=None, include_in_schema=False)
def asyncapi_page(request: HttpRequest) -> HttpResponse:
    # Rendered on the server from the same document, with no script: it loads offline.
    return render(request, "realtime/asyncapi.html", page_context(build_document()))


# --- the notification centre (API.md "Notification centre") -------------------------------------


class NotificationsQuery(Schema):
    unread: bool = False
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    # The id of the last entry of the previous page.
    cursor: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,18}$")] | None = None


class NotificationTargetOut(Schema):
    type: str
    id: int | str | None


class NotificationOut(Schema):
    id: int
    type: str
    title: str
    body: str
    params: dict[str, Any]
    target: NotificationTargetOut | None
    read_at: WireDateTime | None
    created_at: WireDateTime


class NotificationPage(Schema):
    items: list[NotificationOut]
    next_cursor: str | None


class NotificationReadIn(Schema):
    model_config = ConfigDict(extra="forbid")

    ids: Annotated[list[Annotated[int, Field(ge=1, le=2**63 - 1)]], Field(max_length=500)] | None = (
        None
    )
    all: bool = False

    @model_validator(mode="after")
    def _one_of(self):
        if (self.ids is None) == (not self.all):
            raise ValueError("send either ids or all: true")
        return self


class NotificationReadOut(Schema):
    updated: int
    unread_notifications: int


class SummaryOut(Schema):
    unread_notifications: int
    unread_messages: int


@router.get(
    "/notifications",
    response=NotificationPage,
    tags=["notifications"],
    summary="My notifications, newest first; title and body in the reader's language",
)
def notification_list(request: HttpRequest, query: Query[NotificationsQuery]):
    language = notifications.language_of(request.headers.get("Accept-Language", ""))
    before = int(query.cursor) if query.cursor is not None else None
    rows = selectors.notifications_of(
        request.auth.pk, unread=query.unread, limit=query.limit + 1, before_id=before
    )
    page = rows[: query.limit]
    return {
        "items": [notifications.notification_data(row, language) for row in page],
        "next_cursor": str(page[-1].pk) if len(rows) > query.limit else None,
    }


@router.post(
    "/notifications/read",
    response=NotificationReadOut,
    tags=["notifications"],
    summary="Mark notifications read: {ids: [...]} or {all: true}",
)
def notification_read(request: HttpRequest, payload: NotificationReadIn):
    if payload.ids is not None and not payload.ids:
        raise InvalidInput("ids is empty.", code="ids_required")
    updated = notifications.mark_read(
        user_id=request.auth.pk, ids=None if payload.all else payload.ids
    )
    return {
        "updated": updated,
        "unread_notifications": selectors.unread_notification_count(request.auth.pk),
    }


@router.get(
    "/notifications/summary",
    response=SummaryOut,
    tags=["notifications"],
    summary="Unread counts for the tab badges",
)
def notification_summary(request: HttpRequest):
    return {
        "unread_notifications": selectors.unread_notification_count(request.auth.pk),
        "unread_messages": unread_message_count(request.auth),
    }


socket_event(
    "notification.created",
    NotificationOut,
    summary="A new entry in the notification centre, as GET /api/notifications shows it, "
    "in the language of the socket's Accept-Language: sent right after the event it was made "
    "from, to open sockets only. It has no `seq` and is never replayed (resume or "
    "GET /api/events): a client that was away reads the centre.",
    live_only=True,
)
