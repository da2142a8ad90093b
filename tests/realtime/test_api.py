"""GET /api/events: the socket's frames over HTTP, paged by sequence number."""

import pytest

from tests.conftest import assert_error
from tests.factories import UserFactory
from tests.realtime.conftest import emit_now

pytestmark = pytest.mark.django_db


def test_events_after_since_in_order_and_paged(client_of, user):
    other = UserFactory()
    for n in range(1, 6):
        emit_now([user.pk], type="order.status_changed", data={"n": n})
    emit_now([other.pk], type="wallet.credited", data={"amount": 1})
    response = client_of.get("/api/events", {"since": 1, "limit": 2})
    assert response.status_code == 200, response.content
    body = response.json()
    assert [item["seq"] for item in body["items"]] == [2, 3]
    assert set(body["items"][0]) == {"seq", "type", "data", "at"}
    assert body["items"][0]["data"] == {"n": 2}
    assert body["next_cursor"] == "3"
    assert body["latest_seq"] == 5
    page = client_of.get("/api/events", {"cursor": body["next_cursor"], "limit": 2}).json()
    assert [item["seq"] for item in page["items"]] == [4, 5]
    assert page["next_cursor"] is None
    assert client_of.get("/api/events", {"since": 5}).json()["items"] == []


def test_events_are_only_the_callers(make_client):
    alice, bob = make_client(), make_client()
    emit_now([alice.user.pk], type="offer.created", data={"id": 1})
    assert bob.get("/api/events").json() == {"items": [], "next_cursor": None, "latest_seq": 0}
    assert [item["type"] for item in alice.get("/api/events").json()["items"]] == ["offer.created"]


def test_events_need_a_token(anon):
    assert_error(anon.get("/api/events"), 401, "unauthorized")


@pytest.mark.parametrize(
    "params",
    [{"since": -1}, {"since": "x"}, {"limit": 0}, {"limit": 101}, {"cursor": "abc"}],
)
def test_events_reject_bad_parameters(client_of, params):
    assert_error(client_of.get("/api/events", params), 422, "validation_error")


def test_events_in_openapi(anon):
    schema = anon.get("/api/openapi.json").json()
    operation = schema["paths"]["/api/events"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert names >= {"since", "limit", "cursor"}
