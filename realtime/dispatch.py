"""Client actions over the socket, dispatched to the same actions the REST API calls.

An app registers a handler next to its API:

    from realtime.dispatch import socket_action

    @socket_action("offer.make")
    def make_offer(*, user, frame: dict) -> dict:
        body = OfferIn.model_validate({"price": frame.get("price")})
        offer = offers.make_offer(buyer=user, listing_id=frame.get("listing_id"), ...)
        return OfferOut.from_orm(offer).model_dump(mode="json")

Handlers are synchronous (they run in a database thread), parse their input with the same
schema the REST endpoint uses and raise the same DomainErrors; the consumer turns the result
into an `ack` frame and errors into `error` frames.
"""

import importlib
import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.utils.module_loading import autodiscover_modules

logger = logging.getLogger("realtime.dispatch")

Handler = Callable[..., dict]

_registry: dict[str, Handler] = {}
_discovered = False
_discover_lock = threading.Lock()
# Modules an app may keep its socket handlers in; the API modules (imported through the URL
# conf) may hold them too.
DISCOVERY_MODULES = ("socket_actions", "sockets")


def socket_action(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        existing = _registry.get(name)
        if existing is not None and existing is not handler:
            qualified = f"{existing.__module__}.{existing.__qualname__}"
            if qualified != f"{handler.__module__}.{handler.__qualname__}":
                raise RuntimeError(f"socket action {name!r} is already registered by {qualified}")
        _registry[name] = handler
        return handler

    return register


def discover() -> None:
    """Imports every module that may register handlers (once per process).

    Under ASGI the URL conf (and with it the API modules) is imported on the first HTTP
    request, which may come after the first socket frame.
    """
    global _discovered
    if _discovered:
        return
    with _discover_lock:
        if _discovered:
            return
        importlib.import_module(settings.ROOT_URLCONF)
        autodiscover_modules(*DISCOVERY_MODULES)
        _discovered = True


def get_handler(name: str) -> Handler | None:
    discover()
    return _registry.get(name)


def registered_actions() -> list[str]:
    discover()
    return sorted(_registry)
