"""WeChat Pay notifications in: every one is kept raw for audit before it is trusted.

Trust comes in two steps. The signature proves WeChat Pay sent it (`receive_notification`);
the content must then be about us: our merchant number, our mini-program, an order or refund
we have, its exact amount, currency and payer. A signed notification that fails the second
step is *refused*: nothing is applied, the record keeps it with `refused: <reason>` (the admin
filters on that, the staff dashboard counts it) and it is logged at ERROR on
`marketplace.payments.refused`, the logger to alert staff on. It is still acknowledged to
WeChat (204): the same signed bytes sent again would be refused again, and a payment that
really is ours is still found by the deadline's query (docs/orders.md).
"""

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from marketplace.gateways import wechatpay
from marketplace.models.orders import PaymentNotification

REFUSED = PaymentNotification.REFUSED_PREFIX
alert_logger = logging.getLogger("marketplace.payments.refused")

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


def mapping(value: Any) -> Mapping:
    """A resource's sub-object, or an empty one: a signed resource is WeChat's, but its shape is
    still checked rather than trusted (a list where an object belongs must not be a 500)."""
    return value if isinstance(value, Mapping) else {}


def check_merchant(resource: Mapping, *, with_appid: bool) -> str | None:
    """The reason a resource is not addressed to our merchant (and mini-program), or None.
    Refund and transfer resources carry no appid; transactions do."""
    if not settings.WECHATPAY_MCHID or resource.get("mchid") != settings.WECHATPAY_MCHID:
        return "mchid_mismatch"
    if with_appid and (not settings.WECHAT_APPID or resource.get("appid") != settings.WECHAT_APPID):
        return "appid_mismatch"
    return None


def refusal(reason: str, *, kind: str, about: str, detail: str = "") -> str:
    """Alerts staff to a refused notification (or query answer) and returns its outcome."""
    alert_logger.error(
        "%s notification for %s refused: %s%s",
        kind,
        about,
        reason,
        f" ({detail})" if detail else "",
    )
    return REFUSED + reason
