"""Hostile handshakes and frames (issue 20, finding 12): unknown socket paths are 404, not 500;
any text or binary frame gets an error frame (or is handled) and the socket stays open."""

import asyncio
import json
import tempfile

import pytest
from channels.testing import ApplicationCommunicator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from tests.realtime.conftest import TIMEOUT, connected, receive, send
from tests.realtime.test_redis import _free_port, _start_server, _wait_listening

pytestmark = pytest.mark.django_db(transaction=True)

# --- unknown paths --------------------------------------------------------------------------


def _scope(path: str, extensions: dict | None) -> dict:
    scope = {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "subprotocols": [],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    if extensions is not None:
        scope["extensions"] = extensions
    return scope


@pytest.mark.parametrize("path", ["/ws/x", "/ws/x/", "/wsx", "/", "/api/me", "/ws//"])
async def test_an_unknown_socket_path_is_refused_with_404(path):
    from project.asgi import application

    denial = ApplicationCommunicator(application, _scope(path, {"websocket.http.response": {}}))
    await denial.send_input({"type": "websocket.connect"})
    start = await denial.receive_output(TIMEOUT)
    assert start["type"] == "websocket.http.response.start" and start["status"] == 404
    body = await denial.receive_output(TIMEOUT)
    assert json.loads(body["body"])["code"] == "not_found"
    # A server without the denial extension can only refuse: never an exception (a 500).
    refusal = ApplicationCommunicator(application, _scope(path, None))
    await refusal.send_input({"type": "websocket.connect"})
    assert (await refusal.receive_output(TIMEOUT))["type"] == "websocket.close"


@pytest.mark.redis
@pytest.mark.postgres
async def test_daphne_answers_404_for_an_unknown_socket_path(member):
    _, token = member
    port = _free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finally
    server = _start_server(port, log)
    try:
        await _wait_listening(port, server)
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(f"ws://127.0.0.1:{port}/ws/x?token={token}"):
                pass
        assert refused.value.response.status_code == 404
        # The real path still works on the same process, and frames that closed it with 1011
        # (a lone surrogate echoed as the ref, a RecursionError) get error frames instead.
        async with ws_connect(f"ws://127.0.0.1:{port}/ws/?token={token}") as websocket:
            for text in ('{"action": "x", "id": "\\ud800"}', "[" * 8000 + "]" * 8000):
                await websocket.send(text)
                reply = json.loads(await asyncio.wait_for(websocket.recv(), 10))
                assert reply["data"]["code"] == "bad_frame", reply
            await websocket.send(json.dumps({"action": "ping"}))
            assert json.loads(await asyncio.wait_for(websocket.recv(), 10)) == {"type": "pong"}
    except BaseException:
        log.seek(0)
        print("--- server ---\n" + log.read().decode(errors="replace")[-4000:])
        raise
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


# --- frames ------------------------------------------------------------------------------------


async def _assert_still_open(communicator) -> list[dict]:
    """Sends a ping; returns the replies before the pong (the socket must not close)."""
    await send(communicator, {"action": "ping", "id": "probe"})
    replies = []
    while True:
        output = await communicator.receive_output(TIMEOUT)
        assert output["type"] == "websocket.send", output
        reply = json.loads(output["text"])
        if reply == {"type": "pong"}:
            return replies
        replies.append(reply)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("[" * 8000 + "]" * 8000, "bad_frame"),
        ('{"action": "ping", "x": ' + "[" * 8000 + "]" * 8000 + "}", "bad_frame"),
        ('{"a":' * 2500 + "1" + "}" * 2500, "bad_frame"),
        ('{"action": "no.such", "id": "\\ud800"}', "bad_frame"),
        ('{"action": "\\udfff", "id": 1}', "bad_frame"),
        ('{"action": "ping", "\\ud83d": 1}', "bad_frame"),
        ('{"action": "resume", "since": 1' + "0" * 5000 + "}", "malformed_json"),
    ],
)
async def test_hostile_frames_get_an_error_frame_and_the_socket_stays_open(member, text, code):
    _, token = member
    communicator = await connected(token)
    await communicator.send_to(text_data=text)
    reply = await receive(communicator)
    assert reply["type"] == "error" and reply["data"]["code"] == code, reply
    assert await _assert_still_open(communicator) == []
    await communicator.disconnect()


async def test_a_valid_surrogate_pair_is_an_ordinary_character(member):
    _, token = member
    communicator = await connected(token)
    await communicator.send_to(text_data='{"action": "no.such", "id": "\\ud83d\\ude00"}')
    reply = await receive(communicator)
    assert reply["ref"] == "😀" and reply["data"]["code"] == "unknown_action"
    await communicator.disconnect()


_json_strings = st.one_of(
    st.text(max_size=20),
    # Lone and paired surrogates only reach us through JSON escapes.
    st.sampled_from(["\ud800", "\udfff", "x\udc00y", "\ud83d\ude00", "\x00"]),
)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**20, max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | _json_strings,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_json_strings, children, max_size=4)
    ),
    max_leaves=20,
)
_actions = st.one_of(
    st.sampled_from(["ping", "resume", "offer.make", "offer.counter", "offer.accept", ""]),
    _json_strings,
    _json,
)


def _frame_object(action, ref, extra: dict) -> str:
    frame = {**extra, "action": action, "id": ref}
    return json.dumps(frame, ensure_ascii=True)


_text_frames = st.one_of(
    st.text(max_size=200),  # mostly not JSON
    _json.map(lambda value: json.dumps(value, ensure_ascii=True)),
    st.builds(_frame_object, _actions, _json, st.dictionaries(_json_strings, _json, max_size=3)),
    st.integers(min_value=1, max_value=20_000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=5_000).map(lambda n: '{"a":' * n + "0" + "}" * n),
    st.integers(min_value=1, max_value=6_000).map(lambda n: "9" * n),
    st.sampled_from(["1e999", "-1e999", "NaN", '{"action": "resume", "since": 1e999}']),
)
_frames = st.one_of(
    _text_frames.map(lambda text: ("text", text)),
    st.binary(max_size=200).map(lambda b: ("bytes", b)),
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frame=_frames)
async def test_any_frame_gets_an_answer_and_the_socket_stays_open(member, frame):
    _, token = member
    communicator = await connected(token)
    kind, payload = frame
    # Straight to the application: the communicator refuses empty frames, a client may not.
    await communicator.send_input({"type": "websocket.receive", kind: payload})
    replies = await _assert_still_open(communicator)
    for reply in replies:
        assert reply["type"] in {"error", "ack"}, reply
        if reply["type"] == "error":
            assert reply["data"]["code"] != "internal_error", (frame, reply)
    await communicator.disconnect()
