"""The socket's series on /metrics: open sockets per process and the emit→send lag."""

import pytest
from prometheus_client import REGISTRY

from tests.realtime.conftest import aemit, connected, receive, socket

pytestmark = pytest.mark.django_db(transaction=True)


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_open_sockets_count_signed_in_sockets_only(member):
    _, token = member
    before = sample("marketplace_open_sockets")
    first = await connected(token)
    second = await connected(token)
    assert sample("marketplace_open_sockets") == before + 2
    refused = socket("not-a-token")
    await refused.connect(timeout=5)
    assert sample("marketplace_open_sockets") == before + 2
    await first.disconnect()
    await second.disconnect()
    await refused.disconnect()
    assert sample("marketplace_open_sockets") == before


async def test_every_live_frame_records_its_emit_to_send_lag(member):
    user, token = member
    communicator = await connected(token)
    before = sample("marketplace_event_send_lag_seconds_count")
    await aemit([user.pk])
    await aemit([user.pk])
    assert [(await receive(communicator))["seq"] for _ in range(2)] == [1, 2]
    assert sample("marketplace_event_send_lag_seconds_count") == before + 2
    # Measured from the commit, so on one machine it is far below a second.
    assert sample("marketplace_event_send_lag_seconds_sum") < 5
    await communicator.disconnect()
