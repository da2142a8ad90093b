"""ASGI entry point: HTTP (API, admin, static, media) and the WebSocket at /ws/."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from project.daphne_denial import install as install_daphne_denial  # noqa: E402
from realtime.routing import websocket_application  # noqa: E402

# Unknown socket paths answer 404 under daphne too (project/daphne_denial.py).
install_daphne_denial()

# daphne serves the admin's static files itself in the embedded setup; production
# collects them behind the proxy (docs/operations.md).
http_application = (
    django_asgi_app if settings.IS_PRODUCTION else ASGIStaticFilesHandler(django_asgi_app)
)

application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": websocket_application,
    }
)
