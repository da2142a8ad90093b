"""Property: whatever headers and body arrive, the WeChat Pay notification parser returns a
verified Notification or raises NotificationRejected, the documented refusal; nothing else."""

import base64
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.gateways import wechatpay
from marketplace.gateways.wechatpay import Notification, NotificationRejected
from sandbox import wechatpay as sandbox

pytestmark = pytest.mark.django_db

HEADER_NAMES = [
    "Wechatpay-Signature",
    "Wechatpay-Timestamp",
    "Wechatpay-Nonce",
    "Wechatpay-Serial",
    "Wechatpay-Signature-Type",
    "HTTP_WECHATPAY_SIGNATURE",
    "HTTP_WECHATPAY_TIMESTAMP",
    "HTTP_WECHATPAY_SERIAL",
]
_text = st.text(max_size=30)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=12,
)
_resources = st.one_of(
    _json,
    st.fixed_dictionaries(
        {
            "algorithm": st.sampled_from(["AEAD_AES_256_GCM", "SM4", ""]) | _text,
            "ciphertext": st.binary(max_size=40).map(lambda raw: base64.b64encode(raw).decode())
            | _text,
            "nonce": st.text(min_size=12, max_size=12) | _text,
            "associated_data": st.sampled_from(["transaction", "refund"]) | _text,
        }
    ),
    # Correctly encrypted, with any plaintext: decryption succeeds, the JSON inside is anything.
    st.tuples(_json.map(json.dumps) | _text, st.sampled_from(["transaction", "refund"])).map(
        lambda pair: sandbox.encrypt_resource(pair[0], associated_data=pair[1])
    ),
)
_bodies = st.one_of(
    st.binary(max_size=200),
    _json.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries(
        {},
        optional={
            "id": _text | _json,
            "create_time": st.sampled_from(["2026-12-01T10:00:00+08:00", "not a time"]) | _json,
            "event_type": st.sampled_from(["TRANSACTION.SUCCESS", "REFUND.SUCCESS"]) | _json,
            "resource_type": _text,
            "summary": _text | _json,
            "resource": _resources,
        },
    ).map(lambda value: json.dumps(value, ensure_ascii=False).encode()),
)


def _parsed_or_rejected(headers, body) -> Notification | None:
    try:
        notification = wechatpay.parse_notification(headers=headers, body=body)
    except NotificationRejected as exc:
        assert exc.reason
        return None
    assert isinstance(notification, Notification) and isinstance(notification.resource, dict)
    return notification


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=_bodies,
    headers=st.dictionaries(st.sampled_from(HEADER_NAMES), _text, max_size=6),
)
def test_any_unsigned_notification_is_rejected(body, headers):
    assert _parsed_or_rejected(headers, body) is None


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=_bodies,
    skew=st.sampled_from([0, 0, 0, -301, 301]),
    drop=st.sampled_from([None, "Wechatpay-Nonce", "Wechatpay-Serial"]),
)
def test_any_signed_notification_is_parsed_or_rejected(body, skew, drop):
    """Signed with the platform key, so it reaches decryption and the JSON inside."""
    text = body.decode("utf-8", "replace")
    headers = sandbox.signed_headers(text, timestamp=int(time.time()) + skew)
    if drop:
        headers.pop(drop)
    notification = _parsed_or_rejected(headers, text.encode())
    if notification is not None:
        assert skew == 0 and drop is None
