"""How values are written on the wire: one time format and one JSON encoding for the REST API
and the socket alike.

Every time a client sees (REST bodies, socket frames, stored event data) is ISO 8601 in the
platform's zone (`TIME_ZONE`, +08:00) with microseconds always written: a client comparing a
listing's time with an order's, or a person reading them, sees one offset and one width, and
the instant is exactly the stored one. JSON is UTF-8 (`ensure_ascii=False`): a Chinese title is
three bytes a character, not a six-byte escape.
"""

import datetime as dt
from typing import Annotated, Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja.renderers import JSONRenderer
from ninja.responses import NinjaJSONEncoder
from pydantic import PlainSerializer, WithJsonSchema


def wire_time(value: dt.datetime) -> str:
    """The one place a datetime becomes a string for a client."""
    if timezone.is_naive(value):
        # With USE_TZ every stored time is aware; a naive one can only be platform local time.
        value = timezone.make_aware(value)
    # The platform's zone itself, not the thread's current one (`localtime`): nothing activates
    # another, and looking the current one up (an asgiref Local) was, measured, most of the
    # cost of each time a deadline sweep's events carry (five per cancelled order).
    return value.astimezone(timezone.get_default_timezone()).isoformat(timespec="microseconds")


# The type of every time field of a response schema. It accepts a datetime or an ISO 8601
# string in any offset (some data dicts still hold strings) and always writes `wire_time`.
WireDateTime = Annotated[
    dt.datetime,
    PlainSerializer(wire_time, return_type=str),
    # Ninja documents responses in serialisation mode, where a plain serialiser would lose the
    # format; the document keeps saying what the string is.
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class WireJSONEncoder(NinjaJSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, dt.datetime):
            return wire_time(o)
        return super().default(o)


class ApiRenderer(JSONRenderer):
    """The API's renderer: every response body, cached or not, is rendered by this."""

    encoder_class = WireJSONEncoder
    json_dumps_params = {"ensure_ascii": False}


# The one instance: the NinjaAPI renders with it, and so do the cached storefront bodies and
# idempotent replays, which must be byte for byte what the API sends.
API_RENDERER = ApiRenderer()


def render_response(request: HttpRequest, data: Any, *, status: int) -> HttpResponse:
    """A response exactly as the NinjaAPI would build it for `data`."""
    content = API_RENDERER.render(request, data, response_status=status)
    return HttpResponse(
        content,
        status=status,
        content_type=f"{API_RENDERER.media_type}; charset={API_RENDERER.charset}",
    )
