"""WeChat Pay notifications in: every one is kept raw for audit before it is trusted."""

from collections.abc import Mapping

from marketplace.gateways import wechatpay
from marketplace.models.orders import PaymentNotification

_KEPT_HEADERS = (
    "WECHATPAY_SIGNATURE",
    "WECHATPAY_TIMESTAMP",
    "WECHATPAY_NONCE",
    "WECHATPAY_SERIAL",
    "WECHATPAY_SIGNATURE_TYPE",
    "CONTENT_TYPE",
)


def _storable(text: object) -> str:
    """PostgreSQL text and jsonb cannot hold NUL, and anyone can post here: the audit copy
    shows a NUL as U+FFFD, as it shows bytes that are not UTF-8. Verification reads the original."""
    return str(text).replace("\x00", "\ufffd")


def _kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        _storable(name): _storable(value)
        for name, value in headers.items()
        if str(name).upper().replace("-", "_").endswith(_KEPT_HEADERS)
    }


def receive_notification(
    *, kind: str, headers: Mapping[str, str], body: bytes
) -> tuple[PaymentNotification, wechatpay.Notification]:
    """Stores the notification as received, then verifies and decrypts it. A forged, stale or
    malformed one is marked rejected and NotificationRejected propagates: nothing else happens."""
    record = PaymentNotification.objects.create(
        kind=kind, headers=_kept_headers(headers), body=_storable(body.decode("utf-8", "replace"))
    )
    try:
        notification = wechatpay.parse_notification(headers=headers, body=body)
    except wechatpay.NotificationRejected as exc:
        record_outcome(record, f"rejected: {exc}")
        raise
    record.is_verified = True
    record.notification_id = _storable(notification.id)[:64]
    record.event_type = _storable(notification.event_type)[:40]
    record.out_trade_no = _storable(notification.resource.get("out_trade_no", ""))[:32]
    record.save(update_fields=["is_verified", "notification_id", "event_type", "out_trade_no"])
    return record, notification


def record_outcome(record: PaymentNotification, outcome: str) -> str:
    PaymentNotification.objects.filter(pk=record.pk).update(outcome=_storable(outcome)[:200])
    return outcome
