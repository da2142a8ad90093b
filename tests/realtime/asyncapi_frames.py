"""Checks frames against the AsyncAPI document the server publishes (realtime/asyncapi.py)."""

import functools
import json

from jsonschema import Draft202012Validator

from realtime.asyncapi import CHANNEL, build_document


@functools.cache
def _document() -> str:
    return json.dumps(build_document())


def document() -> dict:
    return json.loads(_document())


def message_for(frame: dict, *, sent_by_client: bool = False) -> str:
    """The channel message a frame is an instance of (by its action, reply kind or type)."""
    doc = document()
    messages = doc["channels"][CHANNEL]["messages"]
    if sent_by_client:
        action = frame["action"]
        return action if action in ("ping", "resume") else f"action.{action}"
    kind = frame.get("type")
    if kind in ("pong", "error"):
        return kind
    if kind == "ack":
        action = frame["data"].get("action") if isinstance(frame.get("data"), dict) else None
        return "ack.resume" if action == "resume" else "ack"
    assert kind in messages, f"no message for event type {kind!r}"
    return kind


def validate(frame: dict, *, message: str | None = None, sent_by_client: bool = False) -> str:
    """Validates `frame` against its message's payload schema; returns the message key.

    An ack of a registered action names no action: pass `message="ack.offer.make"`."""
    doc = document()
    key = message or message_for(frame, sent_by_client=sent_by_client)
    assert key != "ack", "say which action this ack answers: message='ack.<action>'"
    payload = doc["channels"][CHANNEL]["messages"][key]["payload"]
    validator = Draft202012Validator({**doc, **payload})
    errors = sorted(validator.iter_errors(frame), key=lambda error: list(error.path))
    assert not errors, f"{key}: " + "; ".join(
        f"{'/'.join(map(str, error.path))}: {error.message}" for error in errors[:5]
    )
    return key
