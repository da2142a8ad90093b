"""WebSocket routing: the user's event socket at /ws/."""

from channels.routing import URLRouter
from django.urls import re_path

from realtime.consumers import EventConsumer

websocket_urlpatterns = [
    re_path(r"^ws/?$", EventConsumer.as_asgi()),
]
websocket_application = URLRouter(websocket_urlpatterns)
