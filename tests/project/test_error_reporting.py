"""Sentry: errors are reported, and nothing personal or secret reaches the transport."""

import json

import pytest
import sentry_sdk
from django.test import Client
from huey.contrib.djhuey import HUEY
from sentry_sdk.transport import Transport

from marketplace.actions import accounts as account_actions
from project import error_reporting
from project.error_reporting import FILTERED, scrub_text

PHONE = "13812345678"
ACCOUNT_NO = "6222021234567890123"
DETAIL = "建国路88号院3号楼"
RECIPIENT = "张三丰"


class CapturingTransport(Transport):
    """Sentry's own transport interface, keeping envelopes instead of sending them."""

    def __init__(self, options=None):
        super().__init__(options)
        self.envelopes = []

    def capture_envelope(self, envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict]:
        return [
            item.payload.json
            for envelope in self.envelopes
            for item in envelope.items
            if item.type == "event"
        ]


@pytest.fixture
def sentry():
    transport = CapturingTransport()
    error_reporting.init(
        dsn="https://public@sentry.invalid/1", environment="test", transport=transport
    )
    try:
        yield transport
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()  # no DSN: reporting off again for the rest of the suite


def _leaks(event: dict) -> list[str]:
    text = json.dumps(event, ensure_ascii=False)
    secrets = [PHONE, ACCOUNT_NO, DETAIL, RECIPIENT, "tok-secret-123", "sessval", "wxcode-999"]
    return [secret for secret in secrets if secret in text]


@pytest.mark.django_db
def test_an_api_error_is_reported_without_tokens_or_personal_data(sentry, user, monkeypatch):
    def failing_create_address(*, user, data):
        account_no = ACCOUNT_NO  # noqa: F841 - a local Sentry would otherwise report
        recipient = data["name"]  # noqa: F841
        raise RuntimeError(
            f"could not save {data['phone']} for card {ACCOUNT_NO}: "
            f"{{'detail': '{data['detail']}', 'name': '{data['name']}'}}"
        )

    monkeypatch.setattr(account_actions, "create_address", failing_create_address)
    from marketplace.actions.accounts import issue_token

    raw = issue_token(user=user)
    client = Client(raise_request_exception=False)
    response = client.post(
        "/api/addresses?token=tok-secret-123&code=wxcode-999",
        data=json.dumps(
            {
                "name": RECIPIENT,
                "phone": PHONE,
                "province": "北京市",
                "city": "北京市",
                "district": "朝阳区",
                "detail": DETAIL,
            }
        ),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
        HTTP_COOKIE="sessionid=sessval",
        HTTP_X_REQUEST_ID="req-sentry-test-1",
    )
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    sentry_sdk.flush()

    events = sentry.events()
    assert events, "the error was not reported"
    event = next(e for e in events if e.get("exception"))
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["tags"]["request_id"] == "req-sentry-test-1"
    for reported in events:
        assert _leaks(reported) == []
        assert raw not in json.dumps(reported)
    assert FILTERED in json.dumps(event, ensure_ascii=False)


@pytest.mark.django_db
def test_a_failing_task_is_reported_scrubbed(sentry):
    @HUEY.task(name="tests.sentry_boom")
    def boom(phone: str) -> None:
        raise ValueError(f"could not notify {phone}")

    boom(PHONE)  # immediate mode: runs here, through Huey's execute and the Huey integration
    sentry_sdk.flush()
    events = sentry.events()
    assert [e for e in events if e.get("exception")], "the task failure was not reported"
    for reported in events:
        assert _leaks(reported) == []


@pytest.mark.parametrize(
    "text",
    [
        f"phone {PHONE}",
        f"phone +86 {PHONE}",
        f"card {ACCOUNT_NO}",
        "Authorization: Bearer abc.def-123",
        "GET /ws/?token=abc123 HTTP/1.1",
        "{'detail': '建国路88号', 'city': '北京市'}",
        '{"name": "张三丰", "phone_masked": "138****5678"}',
    ],
)
def test_sensitive_text_is_filtered(text):
    scrubbed = scrub_text(text)
    assert FILTERED in scrubbed
    for secret in (PHONE, ACCOUNT_NO, "abc.def-123", "abc123", "建国路88号", "张三丰"):
        assert secret not in scrubbed


def test_ordinary_text_is_left_alone():
    text = "order M261203202527366495982 refund of 12345 fen failed: status_code=503"
    assert scrub_text(text) == text
