"""WeChat Pay's notify endpoints are unauthenticated: whatever arrives there is a reply WeChat
understands or an API error body, never a 500 (issue 20, finding 7)."""

import pytest

from marketplace.models.orders import PaymentNotification
from sandbox.wechatpay import signed_headers

pytestmark = pytest.mark.django_db

NOTIFY_PATHS = [
    "/api/payments/wechat/notify",
    "/api/payments/wechat/refund-notify",
    "/api/payments/wechat/transfer-notify",
]


@pytest.mark.parametrize("path", NOTIFY_PATHS)
def test_a_nul_byte_in_the_body_or_a_header_is_refused_and_kept_without_it(anon, path):
    """PostgreSQL text and jsonb cannot hold NUL: the audit copy used to fail its INSERT (500)."""
    body = '{"id":"a\x00b","resource":{}}'
    cases = [
        (body.encode(), signed_headers(body)),
        (b"\x00" * 16, {}),
        (b"{}", {**signed_headers("{}"), "Wechatpay-Serial": "PUB\x00KEY"}),
    ]
    for raw, headers in cases:
        response = anon.client.post(path, raw, content_type="application/json", headers=headers)
        assert response.status_code == 401, response.content
        assert response.json()["code"] == "FAIL"
    stored = list(PaymentNotification.objects.order_by("id"))
    assert len(stored) == len(cases)
    for record in stored:
        assert "\x00" not in record.body + record.outcome + str(record.headers)
        assert record.outcome.startswith("rejected") and not record.is_verified
    assert stored[0].body == body.replace("\x00", "\ufffd")
