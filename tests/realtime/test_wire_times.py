"""Socket and event-log times (project/wire.py): a frame's `at` and the times in its data are
ISO 8601 in +08:00, the same text live, on replay and over HTTP."""

import datetime as dt
import json

import pytest

from realtime.db import database_sync_to_async
from realtime.models import Event
from tests.realtime.conftest import aemit, connected, emit_now, receive, send
from tests.test_wire import assert_wire_time


@pytest.mark.django_db(transaction=True)
async def test_socket_event_times_live_and_on_replay(make_member):
    user, token = await make_member()
    # No microseconds: the width must not depend on the value.
    paid_at = dt.datetime(2024, 5, 1, 1, 2, 3, tzinfo=dt.UTC)
    live_socket = await connected(token)
    [event] = await aemit([user.pk], type="order.status_changed", data={"paid_at": paid_at})
    live = await live_socket.receive_from(timeout=5)
    await live_socket.disconnect()
    frame = json.loads(live)
    stored = await database_sync_to_async(Event.objects.get)(pk=event.pk)
    assert_wire_time(frame["at"], stored.created_at)
    assert frame["data"]["paid_at"] == "2024-05-01T09:02:03.000000+08:00"
    assert stored.data["paid_at"] == frame["data"]["paid_at"]

    again = await connected(token)
    await send(again, {"action": "resume", "since": 0, "id": "r"})
    assert await again.receive_from(timeout=5) == live
    assert (await receive(again))["type"] == "ack"
    await again.disconnect()


@pytest.mark.django_db
def test_events_over_http_carry_the_frame_times(client_of, user):
    [event] = emit_now([user.pk], data={"at": dt.datetime(2024, 5, 1, 16, 30, tzinfo=dt.UTC)})
    item = client_of.get("/api/events").json()["items"][0]
    assert_wire_time(item["at"], Event.objects.get(pk=event.pk).created_at)
    assert item["data"]["at"] == "2024-05-02T00:30:00.000000+08:00"
