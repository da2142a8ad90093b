"""Sentry on the socket: a failing frame is reported, scrubbed, and the socket stays up."""

import json

import pytest
import sentry_sdk

from realtime import consumers
from tests.project.test_error_reporting import PHONE, _leaks
from tests.realtime.conftest import connected, receive, send

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_failing_frame_is_reported_without_the_token_or_personal_data(
    sentry, member, monkeypatch
):
    _, token = member

    async def failing_resume(self, frame, ref):
        raise RuntimeError(f"resume broke for {frame['note']}")

    monkeypatch.setattr(consumers.EventConsumer, "_resume", failing_resume)
    communicator = await connected(token)
    await send(communicator, {"action": "resume", "since": 0, "id": 7, "note": PHONE})
    answer = await receive(communicator)
    assert answer["type"] == "error" and answer["data"]["code"] == "internal_error"
    await send(communicator, {"action": "ping"})
    assert (await receive(communicator))["type"] == "pong"  # the socket survived
    await communicator.disconnect()
    sentry_sdk.flush()

    events = [event for event in sentry.events() if event.get("exception")]
    assert events, "the socket error was not reported"
    assert events[0]["exception"]["values"][-1]["type"] == "RuntimeError"
    for event in sentry.events():
        assert _leaks(event) == []
        assert token not in json.dumps(event)
