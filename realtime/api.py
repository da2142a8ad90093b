"""HTTP fallback for the socket: the same events, after a sequence number."""

from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from pydantic import StringConstraints

from project.wire import WireDateTime
from realtime import selectors
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
