"""ASGI entry point: HTTP (API, admin, static, media) and the WebSocket at /ws/."""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from daphne.http_protocol import WebRequest  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from project.checks import refuse_unusable_deployment  # noqa: E402
from project.daphne_denial import install as install_daphne_denial  # noqa: E402
from realtime.routing import websocket_application  # noqa: E402

# Production and staging refuse to serve with errors in `manage.py check --deploy`.
refuse_unusable_deployment()
# Unknown socket paths answer 404 under daphne too (project/daphne_denial.py).
install_daphne_denial()

def _daphne_without_form_parsing() -> None:
    """daphne's HTTP layer (Twisted) parses every form POST itself into `request.args`, which
    daphne never uses: a whole multipart body read into memory and parsed by the email module
    (a 100 MB upload cost several hundred MB), and a bare 400 with no error body, before the
    application ran, for one it could not parse. The application parses its own bodies."""
    if getattr(WebRequest, "_parses_forms", True) is False:
        return
    original_init = WebRequest.__init__

    def __init__(self: WebRequest, *args: Any, **kwargs: Any) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        original_init(self, *args, **kwargs)

    WebRequest.__init__ = __init__
    WebRequest._parses_forms = False


_daphne_without_form_parsing()

# daphne serves the admin's static files itself in the embedded setup; production
# collects them behind the proxy (docs/operations.md).
http_application = (
    django_asgi_app if settings.IS_DEPLOYED else ASGIStaticFilesHandler(django_asgi_app)
)

application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": websocket_application,
    }
)
