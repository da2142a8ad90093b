"""The socket's protocol as an AsyncAPI 3 document (`GET /api/asyncapi.json`).

Generated, never written by hand: the client actions and their reply schemas come from the
socket-action registry, the event types and their `data` schemas from the event registry
(realtime/dispatch.py; declared next to the handlers, e.g. negotiation/socket_actions.py), and
every object schema is the REST API's own pydantic schema. A new event type or action appears
here once it is declared; `tests/realtime/test_asyncapi.py` fails when an emittable event type
or an accepted action is missing, and validates captured frames against the document.
"""

import functools
import json
import re
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from realtime import consumers
from realtime.dispatch import ActionSpec, EventSpec, action_specs, event_specs
from realtime.push import EVENT_TYPES

ASYNCAPI_VERSION = "3.0.0"
# The protocol's version: `marketplace.v1` is the subprotocol the server answers with.
PROTOCOL_VERSION = "1.0.0"
CHANNEL = "socket"
SCHEMAS = "#/components/schemas/"

# Error codes the consumer itself sends (realtime/consumers.py); an action's error carries its
# REST error code instead (any `DomainError` code), so the field stays an open string.
SOCKET_ERROR_CODES = (
    "malformed_json",
    "bad_frame",
    "frame_too_large",
    "rate_limited",
    "unknown_action",
    "validation_error",
    "not_found",
    "events_pruned",
    "user_banned",
    "unauthorized",
    "internal_error",
)

CLOSE_CODES = {
    consumers.CLOSE_UNAUTHENTICATED: (
        "No, unknown, expired or revoked token. Do not reconnect with the same token: sign in "
        "again first."
    ),
    consumers.CLOSE_BANNED: "The user is banned. Do not reconnect.",
    consumers.CLOSE_IDLE: (
        "Idle: no client frame for REALTIME_IDLE_TIMEOUT_SECONDS. Send `ping` every ~30 s; "
        "reconnect and resume."
    ),
}


def build_document() -> dict[str, Any]:
    """The document for this deployment (its server is PUBLIC_BASE_URL's host)."""
    return _build(
        settings.PUBLIC_BASE_URL,
        settings.REALTIME_IDLE_TIMEOUT_SECONDS,
        settings.REALTIME_MAX_FRAME_BYTES,
    )


def event_schema_name(type: str) -> str:
    """`offer.created` → `OfferCreatedEvent` (the frame's component schema)."""
    return "".join(part.capitalize() for part in re.split(r"[._]", type)) + "Event"


def action_schema_name(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[._]", name)) + "Action"


def ack_schema_name(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[._]", name)) + "Ack"


@functools.lru_cache(maxsize=4)
def _build(base_url: str, idle_seconds: int, max_frame_bytes: int) -> dict[str, Any]:
    actions = action_specs()
    events = event_specs()
    undeclared = sorted(EVENT_TYPES - {event.type for event in events})
    if undeclared:
        # An emittable type without a declared schema would be a frame clients cannot type.
        raise RuntimeError(f"event types without a socket_event() declaration: {undeclared}")

    schemas = _object_schemas(actions, events)
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    def message(key: str, schema_name: str, schema: dict, **fields: Any) -> dict:
        schemas[schema_name] = {"title": schema_name, **schema}
        messages[key] = {
            "name": key,
            "title": fields.pop("title", key),
            "contentType": "application/json",
            "payload": {"$ref": SCHEMAS + schema_name},
            **fields,
        }
        return {"$ref": f"#/channels/{CHANNEL}/messages/{key}"}

    error_ref = message(
        "error",
        "ErrorFrame",
        _reply_frame("error", {"$ref": SCHEMAS + "SocketError"}),
        summary="A client frame failed; the socket stays open.",
    )
    schemas["SocketError"] = {
        "title": "SocketError",
        "type": "object",
        "properties": {
            "code": {
                "type": "string",
                "description": "One of x-socket-codes, or the REST error code of the action "
                "(the same code REST answers with).",
            },
            "message": {"type": "string"},
        },
        "required": ["code", "message"],
        "x-socket-codes": list(SOCKET_ERROR_CODES),
    }

    # --- ping / resume: handled by the consumer itself -------------------------------------
    ping = message(
        "ping",
        "PingAction",
        _action_frame("ping", {}, []),
        summary="Keep the socket alive (at least every REALTIME_IDLE_TIMEOUT_SECONDS).",
        **{"x-action": "ping"},
    )
    pong = message(
        "pong",
        "PongFrame",
        {
            "type": "object",
            "properties": {"type": {"type": "string", "const": "pong"}},
            "required": ["type"],
        },
        summary="The answer to `ping`.",
    )
    operations["send.ping"] = _send_operation("ping", ping, [pong], "Heartbeat.")
    resume = message(
        "resume",
        "ResumeAction",
        _action_frame(
            "resume",
            {"since": {"type": "integer", "minimum": 0, "description": "The last seq seen."}},
            ["since"],
        ),
        summary="Replay every stored event after `since`, then the ack, then live frames.",
        **{"x-action": "resume"},
    )
    schemas["ResumeResult"] = {
        "title": "ResumeResult",
        "type": "object",
        "properties": {
            "action": {"type": "string", "const": "resume"},
            "replayed": {"type": "integer", "minimum": 0},
            "seq": {"type": "integer", "minimum": 0, "description": "The last seq sent."},
        },
        "required": ["action", "replayed", "seq"],
    }
    resume_ack = message(
        "ack.resume",
        "ResumeAck",
        _reply_frame("ack", {"$ref": SCHEMAS + "ResumeResult"}),
        summary="The replay is complete.",
        **{"x-reply-to": "resume"},
    )
    operations["send.resume"] = _send_operation(
        "resume",
        resume,
        [resume_ack, error_ref],
        "Send on every (re)connect with the last seq the app saw (persist it). Missed events "
        "arrive first, in seq order, each exactly once; then the ack; then live events. "
        "`events_pruned` (an error frame) means some were older than the retention: reload "
        "state over REST; the rest still follows.",
    )

    # --- registered socket actions -----------------------------------------------------------
    for spec in actions:
        properties, required = _payload_fields(spec, schemas)
        request = message(
            f"action.{spec.name}",
            action_schema_name(spec.name),
            _action_frame(spec.name, properties, required),
            title=spec.name,
            summary=spec.summary,
            **{"x-action": spec.name},
        )
        data = {"$ref": SCHEMAS + spec.reply.__name__} if spec.reply else {"type": "object"}
        ack = message(
            f"ack.{spec.name}",
            ack_schema_name(spec.name),
            _reply_frame("ack", data),
            summary=f"`{spec.name}` succeeded: `data` is what the REST endpoint returns.",
            **{"x-reply-to": spec.name},
        )
        operations[f"send.{spec.name}"] = _send_operation(
            spec.name, request, [ack, error_ref], spec.summary
        )

    # --- server events -----------------------------------------------------------------------
    for event in events:
        ref = message(
            event.type,
            event_schema_name(event.type),
            _event_frame(event),
            summary=event.summary,
            **{"x-event": event.type},
        )
        operations[f"receive.{event.type}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{CHANNEL}"},
            "title": event.type,
            "summary": event.summary,
            "messages": [ref],
        }

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:marketplace:socket",
        "info": {
            "title": "Second-hand marketplace socket",
            "version": PROTOCOL_VERSION,
            "description": _description(idle_seconds, max_frame_bytes),
        },
        "defaultContentType": "application/json",
        "servers": {"default": _server(base_url)},
        "channels": {
            CHANNEL: {
                "address": "/ws/",
                "title": "The user's event socket",
                "description": (
                    "One socket per signed-in user session. Token: `?token=<token>` or the "
                    "subprotocol `bearer.<token>` offered with `marketplace.v1`. Server frames: "
                    "events `{seq, type, data, at}`; `notification.created` `{type, data, at}` "
                    "(live only, no seq); replies `{type: ack|error, ref, data}`; `{type: pong}`. Close codes: see x-close-codes."
                ),
                "servers": [{"$ref": "#/servers/default"}],
                "messages": messages,
                "bindings": {
                    "ws": {
                        "bindingVersion": "0.1.0",
                        "method": "GET",
                        "query": {
                            "type": "object",
                            "properties": {
                                "token": {
                                    "type": "string",
                                    "description": "The API token (or use the subprotocol).",
                                }
                            },
                        },
                    }
                },
                "x-subprotocols": [consumers.SUBPROTOCOL, f"{consumers.BEARER_PREFIX}<token>"],
                "x-close-codes": {str(code): why for code, why in CLOSE_CODES.items()},
            }
        },
        "operations": operations,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "token": {
                    "type": "httpApiKey",
                    "name": "token",
                    "in": "query",
                    "description": "The token from POST /api/auth/wechat-login.",
                }
            },
        },
    }


def _description(idle_seconds: int, max_frame_bytes: int) -> str:
    return (
        "The live half of the API: every event the server stores for a user, numbered per "
        "user (`seq` 1, 2, 3… with no gaps; a higher seq is never committed before a lower "
        "one), and the bargaining actions as client frames answered by `ack`/`error` carrying "
        "the frame's `id` as `ref`.\n\n"
        "Resume: persist the highest `seq` handled and send `{action: resume, since: seq}` on "
        "every (re)connect; the server replays what was missed in order, exactly once, then "
        "acks and continues live. A first install may start from `latest_seq` of "
        "`GET /api/events`, which serves the same frames over HTTP.\n\n"
        f"Heartbeat: `ping` at least every {idle_seconds} s (close 4408 otherwise). Frames are "
        f"JSON text, at most {max_frame_bytes} bytes; a token bucket limits frames per socket "
        "(`rate_limited`). Reconnect with jittered backoff after any close except 4401 (sign "
        "in again) and 4403 (banned). Times are ISO 8601 in +08:00; money is integer fen."
    )


def _server(base_url: str) -> dict[str, Any]:
    parts = urlsplit(base_url)
    server: dict[str, Any] = {
        "host": parts.netloc,
        "protocol": "wss" if parts.scheme == "https" else "ws",
        "security": [{"$ref": "#/components/securitySchemes/token"}],
    }
    if parts.path.strip("/"):
        server["pathname"] = parts.path.rstrip("/")
    return server


def _object_schemas(actions: list[ActionSpec], events: list[EventSpec]) -> dict[str, Any]:
    """The REST schemas the frames carry, in one namespace (replies and data in serialisation
    mode, action payloads as the REST endpoints validate them)."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for spec in actions:
        models.extend((model, "validation") for model in spec.payload)
        if spec.reply is not None:
            models.append((spec.reply, "serialization"))
    models.extend((event.schema, "serialization") for event in events)
    unique = list(dict.fromkeys(models))
    _, top = models_json_schema(unique, ref_template=SCHEMAS + "{model}")
    return dict(top.get("$defs", {}))


def _payload_fields(spec: ActionSpec, schemas: dict[str, Any]) -> tuple[dict, list[str]]:
    """The frame's own fields: the union of its payload schemas' fields (the frame is flat)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for model in spec.payload:
        schema = model.model_json_schema(mode="validation", ref_template=SCHEMAS + "{model}")
        for name, field in schema.get("properties", {}).items():
            properties[name] = field
        required.extend(schema.get("required", []))
        for name, nested in schema.get("$defs", {}).items():
            schemas.setdefault(name, nested)
    return properties, required


def _action_frame(name: str, properties: dict, required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "action": {"type": "string", "const": name},
            "id": {
                "description": "Echoed as the reply's `ref` (≤ 64 characters, or an integer).",
                "oneOf": [
                    {"type": "string", "maxLength": consumers.MAX_REF_LENGTH},
                    {"type": "integer"},
                ],
            },
            **properties,
        },
        "required": ["action", *required],
    }


def _reply_frame(kind: str, data: dict) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "type": {"type": "string", "const": kind},
            "ref": {
                "description": "The client frame's `id`, or null.",
                "oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}],
            },
            "data": data,
        },
        "required": ["type", "ref", "data"],
        "additionalProperties": False,
    }


def _event_frame(event: EventSpec) -> dict[str, Any]:
    sequence = {} if event.live_only else {"seq": {"type": "integer", "minimum": 1}}
    return {
        "type": "object",
        "properties": {
            **sequence,
            "type": {"type": "string", "const": event.type},
            "data": {"$ref": SCHEMAS + event.schema.__name__},
            "at": {"type": "string", "format": "date-time"},
        },
        "required": [*sequence, "type", "data", "at"],
        "additionalProperties": False,
    }


def _send_operation(name: str, request: dict, replies: list[dict], summary: str) -> dict:
    return {
        "action": "send",
        "channel": {"$ref": f"#/channels/{CHANNEL}"},
        "title": name,
        "summary": summary,
        "messages": [request],
        "reply": {"channel": {"$ref": f"#/channels/{CHANNEL}"}, "messages": replies},
    }


def page_context(doc: dict[str, Any]) -> dict[str, Any]:
    """What the offline HTML page shows: each operation with its frames, and every schema."""
    messages = doc["channels"][CHANNEL]["messages"]
    schemas = doc["components"]["schemas"]

    def frames(refs: list[dict]) -> list[dict[str, str]]:
        shown = []
        for ref in refs:
            key = ref["$ref"].rsplit("/", 1)[-1]
            name = messages[key]["payload"]["$ref"].rsplit("/", 1)[-1]
            text = json.dumps(schemas[name], indent=2, ensure_ascii=False)
            shown.append({"message": key, "schema": name, "json": text})
        return shown

    operations = []
    for key, operation in doc["operations"].items():
        operations.append(
            {
                "key": key,
                "action": operation["action"],
                "title": operation["title"],
                "summary": operation["summary"],
                "frames": frames(operation["messages"]),
                "replies": frames(operation.get("reply", {}).get("messages", [])),
            }
        )
    return {
        "doc": doc,
        "channel": doc["channels"][CHANNEL],
        "subprotocols": doc["channels"][CHANNEL]["x-subprotocols"],
        "close_codes": sorted(doc["channels"][CHANNEL]["x-close-codes"].items()),
        "sends": [op for op in operations if op["action"] == "send"],
        "receives": [op for op in operations if op["action"] == "receive"],
        "schemas": [
            {"name": name, "json": json.dumps(schema, indent=2, ensure_ascii=False)}
            for name, schema in sorted(schemas.items())
        ],
    }
