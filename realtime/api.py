"""HTTP fallback for the socket: the same events, after a sequence number; and the socket's
protocol as an AsyncAPI document (realtime/asyncapi.py), as JSON and as an offline page."""

from typing import Annotated, Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from ninja import Field, Query, Router, Schema
from pydantic import StringConstraints

from project.wire import WireDateTime
from realtime import selectors
from realtime.asyncapi import build_document, page_context
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
