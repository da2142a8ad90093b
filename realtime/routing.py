"""WebSocket routing: the user's event socket at /ws/; any other path is refused with 404."""

import json
from typing import Any

from channels.routing import URLRouter
from django.urls import re_path

from project.daphne_denial import DENIAL
from realtime.consumers import EventConsumer

_NOT_FOUND = json.dumps({"code": "not_found", "message": "No such endpoint."}).encode()


async def unknown_path(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Without a route the router raised, and daphne answered the handshake with a 500."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if DENIAL in (scope.get("extensions") or {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 404,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": _NOT_FOUND})
    else:
        # A server without the denial extension can only refuse the handshake (403).
        await send({"type": "websocket.close"})


websocket_urlpatterns = [
    re_path(r"^ws/?$", EventConsumer.as_asgi()),
    re_path(r"", unknown_path),  # type: ignore[arg-type]  # an ASGI app, as URLRouter takes
]
websocket_application = URLRouter(websocket_urlpatterns)
