"""LOG_FORMAT=json: one line per request and per task, with ids and timings, nothing personal."""

import io
import json
import logging

import pytest
from django.test import override_settings
from huey.contrib.djhuey import HUEY

from project.jsonlog import JsonFormatter
from project.middleware import RequestIdLogFilter

PHONE = "13812345678"


@pytest.fixture
def json_lines():
    """Records of the marketplace.* loggers, formatted as production formats them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdLogFilter())
    target = logging.getLogger("marketplace")
    target.addHandler(handler)
    previous = target.level
    target.setLevel(logging.INFO)
    try:
        with override_settings(LOG_FORMAT="json"):
            yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        target.removeHandler(handler)
        target.setLevel(previous)


def _access(lines):
    return [line for line in lines if line["logger"] == "marketplace.access"]


@pytest.mark.django_db
def test_one_line_per_request_with_ids_route_status_and_duration(json_lines, make_client, user):
    user.phone = PHONE
    user.save(update_fields=["phone"])
    client = make_client(user)
    response = client.get("/api/me", headers={"X-Request-ID": "req-json-log-0001"})
    assert response.status_code == 200
    assert PHONE in response.content.decode()  # the body has it; the log must not
    client.get(f"/api/users/{user.pk}?token=tok-secret-in-query")

    first, second = _access(json_lines())
    assert first["request_id"] == "req-json-log-0001"
    assert first["user_id"] == user.pk
    assert first["route"] == "/api/me"
    assert first["status"] == 200
    assert first["method"] == "GET"
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert second["route"] == "/api/users/<user_id>"  # the pattern, not the id or the query
    everything = json.dumps(json_lines(), ensure_ascii=False)
    for secret in (PHONE, client.token, "tok-secret-in-query", "Bearer"):
        assert secret not in everything


@pytest.mark.django_db
def test_anonymous_and_refused_requests_are_logged_too(json_lines, anon):
    anon.get("/api/me")
    anon.get("/nowhere")
    lines = _access(json_lines())
    assert [(line["route"], line["status"], line.get("user_id")) for line in lines] == [
        ("/api/me", 401, None),
        ("unmatched", 404, None),
    ]


def test_messages_and_tracebacks_are_scrubbed(json_lines):
    logger = logging.getLogger("marketplace.test")
    try:
        raise ValueError(f"could not reach {PHONE}")
    except ValueError:
        logger.exception("notify %s failed", PHONE)
    (line,) = json_lines()
    assert line["level"] == "ERROR"
    assert PHONE not in json.dumps(line)
    assert "ValueError" in line["exception"]


def test_one_line_per_task_run_without_its_arguments(json_lines):
    @HUEY.task(name="tests.jsonlog_task")
    def task(phone: str, fail: bool) -> None:
        if fail:
            raise RuntimeError("boom")

    task(PHONE, False)
    task(PHONE, True)
    lines = [line for line in json_lines() if line["logger"] == "marketplace.tasks"]
    assert [(line["task"], line["outcome"]) for line in lines] == [
        ("tests.jsonlog_task", "complete"),
        ("tests.jsonlog_task", "error"),
    ]
    assert all(line["task_id"] and line["duration_ms"] >= 0 for line in lines)
    assert PHONE not in json.dumps(lines)


@override_settings(LOG_FORMAT="line")
@pytest.mark.django_db
def test_no_access_lines_in_line_format(anon, caplog):
    with caplog.at_level(logging.INFO, logger="marketplace.access"):
        anon.get("/healthz")
    assert not [r for r in caplog.records if r.name == "marketplace.access"]
