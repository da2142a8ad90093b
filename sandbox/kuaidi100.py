"""Fake Kuaidi100 (poll.kuaidi100.com, www.kuaidi100.com), wire-compatible with the real service.

- `POST /poll/query.do` checks the customer and the sign (uppercase MD5 of param + key + customer,
  compared exactly) and answers the shipment's events; SF Express needs `phone`.
- `POST /poll` (schema=json) checks the key and stores the subscription; 501 on a duplicate.
- `POST /autonumber/auto` detects carriers from the number's shape (see `_detect`).
- `advance()` (behind `POST /sandbox/kuaidi100/advance`) appends the next scripted event and
  pushes it, signed with the subscriber's salt, to every active subscription; pushes that are
  not acknowledged are retried by `retry_due_pushes` (a periodic task).

Faults: arm a `SandboxFault` (shared with the fake WeChat Pay) whose non-empty `path_contains` is
a substring of host + path, e.g. "poll.kuaidi100.com/poll/query.do" or "kuaidi100.com" for every
call; kinds error_500, timeout (the request never arrives) and timeout_after (it is processed,
the answer is lost). See docs/sandbox.md "Kuaidi100".
"""

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from marketplace.errors import Conflict, NotFound
from marketplace.gateways.kuaidi100 import CARRIERS, CARRIERS_NEEDING_PHONE
from sandbox import callbacks
from sandbox.models import (
    SandboxFault,
    SandboxShipment,
    SandboxTrackingPush,
    SandboxTrackingSubscription,
)
from sandbox.transport import SandboxRequest, SandboxResponse, route

logger = logging.getLogger("sandbox")

POLL_HOST = "poll.kuaidi100.com"
WWW_HOST = "www.kuaidi100.com"
CHINA_TZ = ZoneInfo("Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# The life of every sandbox parcel: (state, location, text). States per INTEGRATIONS.md:
# 1 picked up, 0 in transit, 5 out for delivery, 3 signed for.
SCRIPT: list[tuple[int, str, str]] = [
    (1, "深圳市", "【深圳市南山区科技园营业部】已揽收，揽投员：李师傅 13800000001"),
    (0, "深圳市", "快件已到达【深圳转运中心】"),
    (0, "深圳市", "快件已从【深圳转运中心】发出，下一站【上海转运中心】"),
    (0, "上海市", "快件已到达【上海转运中心】"),
    (5, "上海市", "【上海市浦东新区张江营业部】派件员：王师傅 13900000002 正在为您派件"),
    (3, "上海市", "快件已签收，签收人：本人签收。感谢使用，期待再次为您服务"),
]
STATE_SIGNED = 3

# Re-delivery of an unacknowledged push (Kuaidi100 re-sends until it gets its ack), scaled by
# SANDBOX_NOTIFY_SCHEDULE_SCALE like the fake WeChat Pay's schedule; then the push is given up.
RETRY_DELAYS = [timedelta(minutes=m) for m in (1, 5, 15, 30, 60, 120, 240, 480)]
# While one worker delivers a push, no other picks it up.
DELIVERY_LEASE = timedelta(seconds=60)

NO_RESULT_MESSAGE = "查询无结果，请隔段时间再查"
_NUMBER = re.compile(r"^[A-Za-z0-9]{6,32}$")
_COMPANY = re.compile(r"^[a-z0-9]{1,30}$")
_FAULT_KINDS = (SandboxFault.ERROR_500, SandboxFault.TIMEOUT, SandboxFault.TIMEOUT_AFTER)


def _md5_upper(text: str) -> str:
    # Computed here rather than borrowed from the client, so a client bug cannot hide itself.
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest().upper()


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _fail(return_code: str, message: str) -> SandboxResponse:
    return SandboxResponse(200, {"result": False, "returnCode": return_code, "message": message})


# --- faults ---------------------------------------------------------------------------------


def inject_fault(
    kind: str, *, count: int = 1, path_contains: str = "kuaidi100.com"
) -> SandboxFault:
    """Make the next `count` Kuaidi100 calls whose host + path contains `path_contains` misbehave.

    An empty `path_contains` is refused: in the shared SandboxFault table it means "any WeChat Pay
    call", and a Kuaidi100 fault must never be eaten by the fake WeChat Pay (or the reverse).
    """
    if kind not in _FAULT_KINDS:
        raise ValueError(f"unknown Kuaidi100 sandbox fault {kind!r}")
    if not path_contains:
        raise ValueError("path_contains must name the Kuaidi100 host or path")
    return SandboxFault.objects.create(kind=kind, remaining=count, path_contains=path_contains)


def _take_fault(request: SandboxRequest) -> str | None:
    target = request.host + request.path
    # The common case (nothing armed) costs one read and no write lock.
    armed = SandboxFault.objects.filter(kind__in=_FAULT_KINDS, remaining__gt=0).exclude(
        path_contains=""
    )
    if not armed.exists():
        return None
    with transaction.atomic():
        faults = (
            SandboxFault.objects.select_for_update()
            .filter(kind__in=_FAULT_KINDS, remaining__gt=0)
            .exclude(path_contains="")
            .order_by("id")
        )
        for fault in faults:
            if fault.path_contains in target:
                fault.remaining -= 1
                fault.save(update_fields=["remaining"])
                return fault.kind
    return None


def _endpoint(host: str, path: str) -> Callable:
    """A POST route that honours armed faults before and after the handler."""

    def register(handler: Callable[[SandboxRequest], SandboxResponse]) -> Callable:
        def faulty(request: SandboxRequest) -> SandboxResponse:
            fault = _take_fault(request)
            if fault == SandboxFault.TIMEOUT:
                raise requests.ConnectTimeout(f"sandbox fault: {host}{path} timed out")
            if fault == SandboxFault.ERROR_500:
                return SandboxResponse(
                    502,
                    b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                    {"Content-Type": "text/html"},
                )
            response = handler(request)
            if fault == SandboxFault.TIMEOUT_AFTER:
                raise requests.ReadTimeout(f"sandbox fault: {host}{path} answer lost")
            return response

        route(host, "POST", path)(faulty)
        return handler

    return register


# --- query ----------------------------------------------------------------------------------


def _query_body(shipment: SandboxShipment) -> dict:
    return {
        "message": "ok",
        "nu": shipment.tracking_no,
        "ischeck": "1" if shipment.state == STATE_SIGNED else "0",
        "condition": "F00",
        "com": shipment.company,
        "status": "200",
        "state": str(shipment.state),
        "data": shipment.events,
    }


@_endpoint(POLL_HOST, "/poll/query.do")
def query(request: SandboxRequest) -> SandboxResponse:
    form = request.form()
    customer, param_text, sign = form.get("customer", ""), form.get("param", ""), form.get("sign")
    if not customer or not param_text or not sign:
        return _fail("400", "提交的数据不完整，或者贵公司没授权")
    if customer != settings.KUAIDI100_CUSTOMER:
        return _fail("601", "POLL:KEY已过期或账号无效")
    if sign != _md5_upper(param_text + settings.KUAIDI100_KEY + customer):
        return _fail("503", "验证签名失败")
    try:
        param = json.loads(param_text)
    except ValueError:
        return _fail("400", "提交的数据不完整，或者贵公司没授权")
    if not isinstance(param, dict):
        return _fail("400", "提交的数据不完整，或者贵公司没授权")
    company, number = str(param.get("com", "")), str(param.get("num", ""))
    phone = str(param.get("phone", "") or "")
    if not _COMPANY.match(company) or not number:
        return _fail("400", "找不到对应公司或单号为空")
    if company in CARRIERS_NEEDING_PHONE and not phone:
        return _fail("408", "快递公司参数异常：顺丰单号需要提供收、寄件人手机号（后四位亦可）")
    shipment = SandboxShipment.objects.filter(tracking_no=number.upper()).first()
    if shipment is None or shipment.company != company or not shipment.events:
        return _fail("500", NO_RESULT_MESSAGE)
    if company in CARRIERS_NEEDING_PHONE and shipment.phone[-4:] != phone[-4:]:
        return _fail("408", "快递公司参数异常：验证码错误")
    return SandboxResponse(200, _query_body(shipment))


# --- subscribe ------------------------------------------------------------------------------


def _is_callback_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and len(value) <= 500


@_endpoint(POLL_HOST, "/poll")
def subscribe(request: SandboxRequest) -> SandboxResponse:
    form = request.form()
    try:
        param = json.loads(form.get("param", ""))
    except ValueError:
        param = None
    if form.get("schema") != "json" or not isinstance(param, dict):
        return _fail("700", "订阅方的订阅数据存在错误")
    if param.get("key") != settings.KUAIDI100_KEY:
        return _fail("600", "您不是合法的订阅者（即授权Key出错）")
    parameters = param.get("parameters")
    if not isinstance(parameters, dict):
        return _fail("700", "订阅方的订阅数据存在错误（parameters）")
    company, number = str(param.get("company", "")), str(param.get("number", ""))
    callback_url = str(parameters.get("callbackurl", ""))
    salt, phone = str(parameters.get("salt", "") or ""), str(parameters.get("phone", "") or "")
    if not _NUMBER.match(number) or not _is_callback_url(callback_url) or len(salt) > 128:
        return _fail("700", "订阅方的订阅数据存在错误（如单号为空、单号超长或错误的回调地址）")
    if not _COMPANY.match(company):
        return _fail("702", "POLL:识别不到该单号对应的快递公司")
    if company not in CARRIERS:
        return _fail("701", "拒绝订阅的快递公司")
    if company in CARRIERS_NEEDING_PHONE and not phone:
        return _fail("700", "订阅方的订阅数据存在错误（顺丰单号需要 phone）")
    number = number.upper()
    try:
        with transaction.atomic():
            shipment, _ = SandboxShipment.objects.select_for_update().get_or_create(
                tracking_no=number, defaults={"company": company, "phone": phone}
            )
            if shipment.subscriptions.filter(company=company, is_active=True).exists():
                return _fail("501", "重复订阅")
            # The latest subscription names the carrier queries must use (a corrected carrier).
            shipment.company = company
            shipment.phone = phone or shipment.phone
            shipment.save(update_fields=["company", "phone", "updated_at"])
            SandboxTrackingSubscription.objects.create(
                shipment=shipment,
                company=company,
                callback_url=callback_url,
                salt=salt,
                phone=phone,
            )
    except IntegrityError:
        # A concurrent identical subscription won the race.
        return _fail("501", "重复订阅")
    return SandboxResponse(200, {"result": True, "returnCode": "200", "message": "提交成功"})


# --- carrier detection ----------------------------------------------------------------------

# (pattern, carriers most likely first); the first matching rule wins.
DETECTION_RULES: list[tuple[re.Pattern, list[str]]] = [
    (re.compile(r"^SF\d{10,15}$"), ["shunfeng"]),
    (re.compile(r"^YT\d{10,15}$"), ["yuantong"]),
    (re.compile(r"^JT\d{10,15}$"), ["jtexpress"]),
    (re.compile(r"^JD[A-Z0-9]{10,18}$"), ["jd"]),
    (re.compile(r"^DPK\d{9,15}$"), ["debangkuaidi"]),
    (re.compile(r"^E[A-Z]\d{9}CN$"), ["ems"]),
    (re.compile(r"^77\d{13}$"), ["shentong"]),
    (re.compile(r"^\d{12,13}$"), ["zhongtong", "yunda"]),
]


def _detect(number: str) -> list[str]:
    number = number.upper()
    found: list[str] = []
    shipment = SandboxShipment.objects.filter(tracking_no=number).first()
    if shipment is not None:
        found.append(shipment.company)
    for pattern, companies in DETECTION_RULES:
        if pattern.match(number):
            found += [company for company in companies if company not in found]
            break
    return found


@_endpoint(WWW_HOST, "/autonumber/auto")
def autonumber(request: SandboxRequest) -> SandboxResponse:
    values = {**request.query, **request.form()}
    if values.get("key") != settings.KUAIDI100_KEY:
        return _fail("600", "您不是合法的用户（即授权Key出错）")
    number = values.get("num", "")
    if not _NUMBER.match(number):
        return SandboxResponse(200, [])
    return SandboxResponse(
        200,
        [
            {
                "comCode": company,
                "name": CARRIERS.get(company, company),
                "lengthPre": len(number),
                "noPre": number[:4],
            }
            for company in _detect(number)
        ],
    )


# --- advance and push -----------------------------------------------------------------------


class UnknownShipment(NotFound):
    code = "unknown_tracking_no"
    message = "No sandbox shipment has this tracking number; subscribe it first."


class AlreadySigned(Conflict):
    code = "already_signed"
    message = "This shipment has been signed for; it cannot advance further."


@dataclass(frozen=True)
class Delivery:
    callback_url: str
    status: str
    attempts: int
    last_status: int | None
    acknowledged: bool

    def as_dict(self) -> dict:
        return {
            "callback_url": self.callback_url,
            "status": self.status,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "acknowledged": self.acknowledged,
        }


@dataclass(frozen=True)
class AdvanceResult:
    tracking_no: str
    state: int
    events_count: int
    pushed_to: list[Delivery]

    def as_dict(self) -> dict:
        return {
            "tracking_no": self.tracking_no,
            "state": self.state,
            "events_count": self.events_count,
            "pushed_to": [delivery.as_dict() for delivery in self.pushed_to],
        }


def _next_event_time(shipment: SandboxShipment) -> datetime:
    moment = timezone.now().astimezone(CHINA_TZ).replace(microsecond=0, tzinfo=None)
    if shipment.events:
        # Strictly after the previous event, so "newest first" never ties.
        previous = datetime.strptime(shipment.events[0]["time"], TIME_FORMAT)
        moment = max(moment, previous + timedelta(seconds=1))
    return moment


def _push_param(shipment: SandboxShipment, subscription, status: str) -> str:
    signed = shipment.state == STATE_SIGNED
    billstatus = {"abort": "", "shutdown": "check"}.get(status, "got")
    return _dumps(
        {
            "status": status,
            "billstatus": billstatus,
            "message": "3天查询无记录" if status == "abort" else "",
            "autoCheck": "0",
            "comOld": "",
            "comNew": "",
            "lastResult": {
                "message": "ok",
                "state": str(shipment.state),
                "status": "200",
                "condition": "F00",
                "ischeck": "1" if signed else "0",
                "com": subscription.company,
                "nu": shipment.tracking_no,
                "data": shipment.events,
            },
        }
    )


def advance(tracking_no: str, *, status: str = "polling") -> AdvanceResult:
    """Move the parcel one scripted step on (or abort its tracking) and push to subscribers.

    status "polling": the next event; the final one (signed for) is pushed as "shutdown", which
    ends the subscriptions, as Kuaidi100 does. status "abort": no event; Kuaidi100 gives up on the
    number and ends the subscriptions (the subscriber may resubscribe).
    """
    number = tracking_no.upper()
    with transaction.atomic():
        shipment = SandboxShipment.objects.select_for_update().filter(tracking_no=number).first()
        if shipment is None:
            raise UnknownShipment()
        if status == "abort":
            push_status = "abort"
        else:
            if shipment.step >= len(SCRIPT):
                raise AlreadySigned()
            state, location, text = SCRIPT[shipment.step]
            when = _next_event_time(shipment).strftime(TIME_FORMAT)
            event = {"time": when, "ftime": when, "context": text, "location": location}
            shipment.events = [event, *shipment.events]
            shipment.state = state
            shipment.step += 1
            shipment.save(update_fields=["events", "state", "step", "updated_at"])
            push_status = "shutdown" if state == STATE_SIGNED else "polling"
        subscriptions = list(
            shipment.subscriptions.select_for_update().filter(is_active=True).order_by("id")
        )
        now = timezone.now()
        push_ids = []
        for subscription in subscriptions:
            param = _push_param(shipment, subscription, push_status)
            push = SandboxTrackingPush.objects.create(
                subscription=subscription,
                status=push_status,
                param=param,
                sign=_md5_upper(param + subscription.salt),
                next_attempt_at=now,
            )
            push_ids.append(push.pk)
            if push_status in ("abort", "shutdown"):
                subscription.is_active = False
                subscription.ended_at = now
                subscription.save(update_fields=["is_active", "ended_at"])
    # Delivered after the sandbox's own writes are committed: the subscriber may call back.
    deliveries = [deliver_push(push_id) for push_id in push_ids]
    return AdvanceResult(
        tracking_no=shipment.tracking_no,
        state=shipment.state,
        events_count=len(shipment.events),
        pushed_to=[delivery for delivery in deliveries if delivery is not None],
    )


def _is_ack(body: bytes) -> bool:
    try:
        reply = json.loads(body or b"null")
    except ValueError:
        return False
    return (
        isinstance(reply, dict)
        and reply.get("result") is True
        and str(reply.get("returnCode")) == "200"
    )


def _retry_delay(attempts: int) -> timedelta | None:
    if attempts > len(RETRY_DELAYS):
        return None
    scale = float(getattr(settings, "SANDBOX_NOTIFY_SCHEDULE_SCALE", 1.0))
    return RETRY_DELAYS[attempts - 1] * scale


def deliver_push(push_id: int) -> Delivery | None:
    """One delivery attempt, if the push is due and no one else holds it. Idempotent."""
    now = timezone.now()
    push = SandboxTrackingPush.objects.select_related("subscription").filter(pk=push_id).first()
    if push is None or push.acknowledged_at or push.gave_up_at or push.next_attempt_at is None:
        return None
    # Claim it with a conditional update, so the first attempt and the retry sweeper never
    # deliver the same push at once (works the same on SQLite and PostgreSQL).
    claimed = SandboxTrackingPush.objects.filter(
        pk=push.pk, next_attempt_at=push.next_attempt_at, next_attempt_at__lte=now
    ).update(next_attempt_at=now + DELIVERY_LEASE)
    if not claimed:
        return None
    url = push.subscription.callback_url
    reply = callbacks.deliver(
        url,
        body=urlencode({"param": push.param, "sign": push.sign}).encode("utf-8"),
        headers={"User-Agent": "Kuaidi100-Push/sandbox"},
        content_type="application/x-www-form-urlencoded",
    )
    push.attempts += 1
    push.last_status = reply.status
    finished = timezone.now()
    if reply.status == 200 and _is_ack(reply.body):
        push.acknowledged_at, push.next_attempt_at, push.last_error = finished, None, ""
    else:
        push.last_error = reply.body[:300].decode("utf-8", "replace")
        delay = _retry_delay(push.attempts)
        if delay is None:
            push.gave_up_at, push.next_attempt_at = finished, None
        else:
            push.next_attempt_at = finished + delay
    push.save(
        update_fields=[
            "attempts",
            "last_status",
            "last_error",
            "next_attempt_at",
            "acknowledged_at",
            "gave_up_at",
        ]
    )
    logger.info(
        "sandbox kuaidi100 push %s to %s: HTTP %s, attempt %s, acknowledged=%s",
        push.pk,
        url,
        reply.status,
        push.attempts,
        push.acknowledged_at is not None,
    )
    return Delivery(
        callback_url=url,
        status=push.status,
        attempts=push.attempts,
        last_status=push.last_status,
        acknowledged=push.acknowledged_at is not None,
    )


def retry_due_pushes(*, limit: int = 200) -> int:
    """Re-deliver unacknowledged pushes whose time has come; the number attempted."""
    due = list(
        SandboxTrackingPush.objects.filter(
            next_attempt_at__lte=timezone.now(), acknowledged_at=None, gave_up_at=None
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(1 for push_id in due if deliver_push(push_id) is not None)


@db_periodic_task(crontab(minute="*"))
def retry_kuaidi100_pushes() -> None:
    retry_due_pushes()
