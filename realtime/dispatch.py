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

The same modules declare the socket's protocol for clients: `payload=` (the schemas whose fields
the frame carries) and `reply=` (the `ack`'s `data`) on each action, and `socket_event(type,
schema)` for each event type the app emits. `GET /api/asyncapi.json` (realtime/asyncapi.py) is
generated from these registries, so a new action or event type appears there by declaring it.
"""

import importlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import autodiscover_modules
from pydantic import BaseModel

logger = logging.getLogger("realtime.dispatch")

Handler = Callable[..., dict]

_registry: dict[str, Handler] = {}


@dataclass(frozen=True)
class ActionSpec:
    name: str
    summary: str
    payload: tuple[type[BaseModel], ...]
    reply: type[BaseModel] | None


Model = type[BaseModel]


@dataclass(frozen=True)
class EventSpec:
    type: str
    summary: str
    schema: Model
    # Sent live only, with no `seq`: not stored as an event, never replayed.
    live_only: bool = False


_actions: dict[str, ActionSpec] = {}
_events: dict[str, EventSpec] = {}
_discovered = False
_discover_lock = threading.Lock()
# Modules an app may keep its socket handlers in; the API modules (imported through the URL
# conf) may hold them too.
DISCOVERY_MODULES = ("socket_actions", "sockets")


def socket_action(
    name: str,
    *,
    payload: Sequence[type[BaseModel]] = (),
    reply: type[BaseModel] | None = None,
) -> Callable[[Handler], Handler]:
    """`payload`: the schemas whose fields the frame carries (beside `action` and `id`);
    `reply`: the schema of the `ack`'s `data`. The handler's docstring is the action's summary
    in the AsyncAPI document."""

    def register(handler: Handler) -> Handler:
        existing = _registry.get(name)
        if existing is not None and existing is not handler:
            qualified = f"{existing.__module__}.{existing.__qualname__}"
            if qualified != f"{handler.__module__}.{handler.__qualname__}":
                raise RuntimeError(f"socket action {name!r} is already registered by {qualified}")
        _registry[name] = handler
        summary = (handler.__doc__ or name).strip().splitlines()[0]
        _actions[name] = ActionSpec(name=name, summary=summary, payload=tuple(payload), reply=reply)
        return handler

    return register


def socket_event(
    type: str, schema: type[BaseModel], *, summary: str, live_only: bool = False
) -> None:
    """Declares the `data` schema of an event type (one of `realtime.push.EVENT_TYPES`): the
    object as the REST API shows it, so the same schema documents both. `live_only`: a frame
    without `seq`, sent to open sockets and never stored or replayed."""
    existing = _events.get(type)
    if existing is not None and existing.schema is not schema:
        raise RuntimeError(f"socket event {type!r} is already declared with {existing.schema}")
    _events[type] = EventSpec(type=type, summary=summary, schema=schema, live_only=live_only)


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


def action_specs() -> list[ActionSpec]:
    discover()
    return [_actions[name] for name in sorted(_actions)]


def event_specs() -> list[EventSpec]:
    discover()
    return [_events[type] for type in sorted(_events)]
