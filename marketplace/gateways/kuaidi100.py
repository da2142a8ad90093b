"""Kuaidi100 client: real-time tracking query, subscription push, carrier detection.

Wire protocol (INTEGRATIONS.md "Kuaidi100"): form-encoded POSTs; the query is signed with
uppercase MD5(param + key + customer) over the exact JSON string sent, and pushes to our callback
are signed with MD5(param + salt) where the salt is the one we chose when subscribing. In the
sandbox the HTTP session is routed to the fake Kuaidi100 (sandbox/kuaidi100.py);
nothing else changes.

Errors: every failure of a call is a `Kuaidi100Error` carrying Kuaidi100's returnCode and whether
trying again later can help (`retryable`); a push that fails verification is `PushRejected`.
"""

import functools
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import requests
from django.conf import settings
from django.utils.translation import gettext_noop
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from marketplace.errors import DomainError, InvalidInput
from marketplace.gateways import partner_session

logger = logging.getLogger("marketplace.kuaidi100")

QUERY_URL = "https://poll.kuaidi100.com/poll/query.do"
SUBSCRIBE_URL = "https://poll.kuaidi100.com/poll"
AUTONUMBER_URL = "https://www.kuaidi100.com/autonumber/auto"

# Kuaidi100 writes every timestamp as naive China time.
CHINA_TZ = ZoneInfo("Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# `state` values (INTEGRATIONS.md).
STATE_IN_TRANSIT = 0
STATE_PICKED_UP = 1
STATE_PROBLEM = 2
STATE_SIGNED = 3
STATE_RETURNED_SIGNED = 4
STATE_OUT_FOR_DELIVERY = 5
STATE_RETURNING = 6
STATE_REDIRECTED = 7
STATE_REFUSED = 14

PUSH_STATUSES = frozenset({"polling", "shutdown", "abort", "updateall"})
# The reply Kuaidi100 needs to stop re-sending a push.
PUSH_ACK = {"result": True, "returnCode": "200", "message": "成功"}
PUSH_REFUSED = {"result": False, "returnCode": "500"}

# Common carriers accepted when a seller types a carrier code. Codes are Kuaidi100's own.
CARRIERS: dict[str, str] = {
    "shunfeng": "顺丰速运",
    "shunfengkuaiyun": "顺丰快运",
    "yuantong": "圆通速递",
    "zhongtong": "中通快递",
    "shentong": "申通快递",
    "yunda": "韵达快递",
    "jtexpress": "极兔速递",
    "huitongkuaidi": "百世快递",
    "ems": "EMS",
    "youzhengguonei": "邮政快递包裹",
    "youzhengbk": "邮政标准快递",
    "jd": "京东物流",
    "debangkuaidi": "德邦快递",
    "debangwuliu": "德邦物流",
    "zhaijisong": "宅急送",
    "kuayue": "跨越速运",
    "annengwuliu": "安能物流",
    "danniao": "丹鸟",
    "fengwang": "丰网速运",
    "zhongyouex": "众邮快递",
}
# SF Express (and its freight arm) only answer a query given the recipient's or sender's phone
# (the last four digits are enough).
CARRIERS_NEEDING_PHONE = frozenset({"shunfeng", "shunfengkuaiyun"})

_TRACKING_NO = re.compile(r"^[A-Za-z0-9]{6,32}$")
_CARRIER_CODE = re.compile(r"^[a-z0-9]{1,30}$")

# query.do returnCodes. 500 means "no tracking yet, ask again later"; 501/502 are Kuaidi100's own
# failures. 400 (bad data), 408 (phone check failed), 503 (bad sign) and 601 (key expired or no
# balance) need a change on our side, so retrying the same call cannot help.
_QUERY_RETRYABLE = frozenset({"500", "501", "502"})
# poll (subscribe) returnCodes: 500 is a server error there; 600/601 are our key, 700 our data,
# 701/702 the carrier (refused, or not detectable for this number).
_SUBSCRIBE_RETRYABLE = frozenset({"500", "502"})
SUBSCRIBE_ACCEPTED = "200"
SUBSCRIBE_DUPLICATE = "501"


class Kuaidi100Error(DomainError):
    """A Kuaidi100 call failed. `return_code` is Kuaidi100's (or `http_<status>`/`network`)."""

    status = 503
    code = "upstream_unavailable"

    def __init__(
        self,
        message: str,
        return_code: str = "",
        retryable: bool = False,
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, params=params)
        self.return_code = return_code
        self.retryable = retryable

    def __repr__(self) -> str:
        return (
            f"Kuaidi100Error({self.message!r}, return_code={self.return_code!r}, "
            f"retryable={self.retryable})"
        )


class PushRejected(DomainError):
    """A push to our callback that is forged, tampered with or malformed."""

    status = 400
    code = "invalid_push"
    message = "The push could not be verified."

    def as_body(self) -> dict[str, Any]:
        # The API error body, plus Kuaidi100's own failure reply (anything but result=true and
        # returnCode 200 is "not received"): both readers understand it.
        return {**super().as_body(), **PUSH_REFUSED}


@dataclass(frozen=True)
class TrackingEvent:
    time: datetime  # aware, UTC
    text: str
    location: str = ""


@dataclass(frozen=True)
class TrackingResult:
    carrier: str
    tracking_no: str
    state: int
    is_signed: bool
    events: list[TrackingEvent] = field(default_factory=list)  # newest first


@dataclass(frozen=True)
class Push:
    status: str  # polling | shutdown | abort | updateall
    message: str
    carrier: str
    tracking_no: str
    state: int | None  # None when the push carries no tracking result (some aborts)
    is_signed: bool
    events: list[TrackingEvent] = field(default_factory=list)  # newest first
    # Kuaidi100 corrected the carrier (autoCheck=1): the number belongs to this carrier instead.
    new_carrier: str = ""


@dataclass(frozen=True)
class Carrier:
    code: str
    name: str


# --- validation -----------------------------------------------------------------------------


def validate_tracking_no(value: Any) -> str:
    """A tracking number as carriers print it: 6-32 letters and digits, stored uppercased."""
    text = value.strip() if isinstance(value, str) else ""
    if not _TRACKING_NO.match(text):
        raise InvalidInput(
            "The tracking number must be 6-32 letters and digits.", code="invalid_tracking_no"
        )
    return text.upper()


def validate_carrier_code(value: Any) -> str:
    """A Kuaidi100 carrier code from the list of carriers we accept (CARRIERS)."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if not _CARRIER_CODE.match(text) or text not in CARRIERS:
        raise InvalidInput(
            "Unknown carrier; choose one from the list or leave it out to detect it.",
            code="unknown_carrier",
        )
    return text


# --- signing --------------------------------------------------------------------------------


def md5_upper(text: str) -> str:
    # MD5 is what the protocol mandates; the secret (key or salt) is what makes it a signature.
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest().upper()


def query_sign(*, param: str, key: str, customer: str) -> str:
    return md5_upper(param + key + customer)


def push_sign(*, param: str, salt: str) -> str:
    return md5_upper(param + salt)


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- transport ------------------------------------------------------------------------------


def credentials() -> tuple[str, str]:
    """(customer, key) as configured; one seam, so tests can sign with a wrong key."""
    return settings.KUAIDI100_CUSTOMER, settings.KUAIDI100_KEY


@functools.cache
def _session() -> requests.Session:
    return partner_session()


def _post(url: str, data: Mapping[str, str], what: str) -> Any:
    """POST a form; the decoded JSON body, or a Kuaidi100Error for transport-level failures."""
    try:
        response = _session().post(url, data=dict(data), timeout=settings.KUAIDI100_TIMEOUT)
    except requests.RequestException as exc:
        logger.warning("kuaidi100 %s: network error %s", what, exc)
        raise Kuaidi100Error(
            "Kuaidi100 could not be reached to %(what)s; try again shortly.",
            params={"what": what},
            return_code="network",
            retryable=True,
        ) from exc
    if response.status_code >= 500:
        logger.warning("kuaidi100 %s: HTTP %s", what, response.status_code)
        raise Kuaidi100Error(
            "Kuaidi100 failed to %(what)s (HTTP %(status)s); try again shortly.",
            params={"what": what, "status": response.status_code},
            return_code=f"http_{response.status_code}",
            retryable=True,
        )
    if response.status_code != 200:
        logger.error("kuaidi100 %s: HTTP %s", what, response.status_code)
        raise Kuaidi100Error(
            "Kuaidi100 refused to %(what)s (HTTP %(status)s).",
            params={"what": what, "status": response.status_code},
            return_code=f"http_{response.status_code}",
        )
    try:
        return response.json()
    except ValueError as exc:
        # Their gateways answer HTML error pages when overloaded.
        raise Kuaidi100Error(
            "Kuaidi100 answered nonsense to %(what)s; try again shortly.",
            params={"what": what},
            return_code="bad_response",
            retryable=True,
        ) from exc


def _failure(body: Any, what: str, retryable_codes: frozenset[str]) -> Kuaidi100Error:
    return_code = str(body.get("returnCode", "")) if isinstance(body, dict) else ""
    message = str(body.get("message", "")) if isinstance(body, dict) else ""
    retryable = return_code in retryable_codes
    (logger.warning if retryable else logger.error)(
        "kuaidi100 %s refused: %s %s", what, return_code, message
    )
    return Kuaidi100Error(
        "Kuaidi100 could not %(what)s: %(reason)s",
        params={"what": what, "reason": message or "unknown error"},
        return_code=return_code,
        retryable=retryable,
    )


# --- parsing --------------------------------------------------------------------------------


def _parse_time(value: Any) -> datetime:
    naive = datetime.strptime(str(value), TIME_FORMAT)
    try:
        return naive.replace(tzinfo=CHINA_TZ).astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01 00:00 China time is before year 1 in UTC
        raise ValueError("time out of range") from exc


def _parse_events(data: Any) -> list[TrackingEvent]:
    """Kuaidi100's `data` array as events, newest first. Raises ValueError/TypeError/KeyError."""
    if not isinstance(data, list):
        raise TypeError("data is not a list")
    events = []
    for item in data:
        if not isinstance(item, dict):
            raise TypeError("event is not an object")
        when = _parse_time(item.get("ftime") or item["time"])
        location = item.get("location") or item.get("areaName") or ""
        events.append(
            TrackingEvent(time=when, text=str(item.get("context", "")), location=str(location))
        )
    # Kuaidi100 sends newest first already; sorting keeps that true if one arrives out of order.
    events.sort(key=lambda event: event.time, reverse=True)
    return events


def _parse_state(value: Any) -> int:
    state = int(value)
    if not 0 <= state <= 99:
        raise ValueError("state out of range")
    return state


# --- calls ----------------------------------------------------------------------------------


def query(*, carrier_code: str, tracking_no: str, phone: str = "") -> TrackingResult:
    """Real-time query (`poll/query.do`), signed with the key and customer id."""
    param: dict[str, str] = {"com": carrier_code, "num": tracking_no}
    if phone:
        param["phone"] = phone
    param["resultv2"] = "1"
    param_text = _compact_json(param)
    customer, key = credentials()
    form = {
        "customer": customer,
        "param": param_text,
        "sign": query_sign(param=param_text, key=key, customer=customer),
    }
    body = _post(QUERY_URL, form, gettext_noop("query the tracking"))
    if not isinstance(body, dict) or body.get("result") is False or body.get("message") != "ok":
        raise _failure(body, gettext_noop("query the tracking"), _QUERY_RETRYABLE)
    try:
        state = _parse_state(body.get("state"))
        events = _parse_events(body.get("data", []))
    except (ValueError, TypeError, KeyError) as exc:
        logger.error("kuaidi100 query: malformed answer %s", exc)
        raise Kuaidi100Error(
            "Kuaidi100 answered a malformed tracking result.", return_code="bad_response"
        ) from exc
    return TrackingResult(
        carrier=str(body.get("com") or carrier_code),
        tracking_no=str(body.get("nu") or tracking_no),
        state=state,
        is_signed=str(body.get("ischeck", "0")) == "1",
        events=events,
    )


def subscribe(
    *, carrier_code: str, tracking_no: str, callback_url: str, salt: str, phone: str = ""
) -> None:
    """Ask Kuaidi100 to push every change of this shipment to `callback_url`, signed with `salt`.

    Subscribing twice is harmless: Kuaidi100's "already subscribed" (501) counts as success.
    """
    parameters: dict[str, str] = {"callbackurl": callback_url, "salt": salt, "resultv2": "1"}
    if phone:
        parameters["phone"] = phone
    param = {
        "company": carrier_code,
        "number": tracking_no,
        "key": credentials()[1],
        "parameters": parameters,
    }
    body = _post(
        SUBSCRIBE_URL, {"schema": "json", "param": _compact_json(param)}, gettext_noop("subscribe the tracking")
    )
    return_code = str(body.get("returnCode", "")) if isinstance(body, dict) else ""
    if return_code == SUBSCRIBE_ACCEPTED:
        return
    if return_code == SUBSCRIBE_DUPLICATE:
        logger.info("kuaidi100 subscribe %s/%s: already subscribed", carrier_code, tracking_no)
        return
    raise _failure(body, gettext_noop("subscribe the tracking"), _SUBSCRIBE_RETRYABLE)


def detect_carrier(*, tracking_no: str) -> list[Carrier]:
    """Carrier candidates for a number, most likely first (may be empty)."""
    body = _post(
        AUTONUMBER_URL, {"key": credentials()[1], "num": tracking_no}, gettext_noop("detect the carrier")
    )
    if not isinstance(body, list):
        raise _failure(body, gettext_noop("detect the carrier"), frozenset({"500", "502"}))
    candidates = []
    seen = set()
    for item in body:
        code = str(item.get("comCode", "")) if isinstance(item, dict) else ""
        if not _CARRIER_CODE.match(code) or code in seen:
            continue
        seen.add(code)
        candidates.append(
            Carrier(code=code, name=str(item.get("name") or CARRIERS.get(code, code)))
        )
    return candidates


def parse_push(*, form: Mapping[str, str], salt: str) -> Push:
    """Verify and decode a subscription push (form fields `param` and `sign`).

    The signature proves who sent it, not that it is sane: the whole push is then validated
    against `_PushParam` (types, lengths, no NUL, plausible dates, a carrier from CARRIERS), and
    anything that does not fit is refused as a whole rather than stored in part.
    """
    param = form.get("param")
    sign = form.get("sign")
    if not isinstance(param, str) or not isinstance(sign, str) or not param or not salt:
        raise PushRejected("The push lacks param or sign.")
    expected = push_sign(param=param, salt=salt)
    # Constant time, so the sign cannot be guessed byte by byte; Kuaidi100 may send lowercase.
    if not hmac.compare_digest(expected.encode("ascii"), sign.strip().upper().encode("utf-8")):
        raise PushRejected("The push signature does not match.")
    try:
        # pydantic's JSON parser has a nesting limit (json.loads raised RecursionError).
        payload = _PushParam.model_validate_json(param)
    except ValidationError as exc:
        raise PushRejected(
            "The push is malformed: %(error)s", params={"error": _first_error(exc)}
        ) from exc
    last = payload.lastResult or _PushResult()
    new_carrier = payload.comNew if payload.autoCheck == "1" and payload.comNew else ""
    events = [
        TrackingEvent(time=event.moment, text=event.context, location=event.place)
        for event in last.data or []
    ]
    # Kuaidi100 sends newest first already; sorting keeps that true if one arrives out of order.
    events.sort(key=lambda event: event.time, reverse=True)
    return Push(
        status=payload.status,
        message=payload.message or "",
        carrier=last.com,
        tracking_no=last.nu,
        state=last.state,
        is_signed=last.ischeck == "1",
        events=events,
        new_carrier=new_carrier,
    )


def _first_error(exc: ValidationError) -> str:
    # Location and reason only: the input itself is not echoed back.
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid"))


# --- the push schema --------------------------------------------------------------------------


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; no carrier writes one.
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


def _number_as_text(value: Any) -> Any:
    """Kuaidi100 writes numbers as strings ("3"); an int is taken too, a bool never."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


_AS_TEXT = BeforeValidator(_number_as_text)
_NO_NUL = AfterValidator(_no_nul)
# Text fields of a push, by their longest allowed length (numbers Kuaidi100 sends as numbers
# are taken as text; NUL is refused).
Text19 = Annotated[str, _AS_TEXT, Field(max_length=19), _NO_NUL]
Text30 = Annotated[str, _AS_TEXT, Field(max_length=30), _NO_NUL]
Text32 = Annotated[str, _AS_TEXT, Field(max_length=32), _NO_NUL]
Text200 = Annotated[str, _AS_TEXT, Field(max_length=200), _NO_NUL]
Text500 = Annotated[str, _AS_TEXT, Field(max_length=500), _NO_NUL]
Text1000 = Annotated[str, _AS_TEXT, Field(max_length=1000), _NO_NUL]


def _state(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("state is not a number")
    if value in (None, ""):
        return None
    return value


_State = Annotated[Annotated[int, Field(ge=0, le=99)] | None, BeforeValidator(_state)]
_Flag = Annotated[Literal["0", "1"], BeforeValidator(_number_as_text)]
# Parcels tracked here were shipped after 2000 and before the end of this century: a date
# outside that is an error upstream (year 0001 overflowed the conversion to UTC).
_EARLIEST_EVENT_YEAR = 2000
_LATEST_EVENT_YEAR = 2100


class _PushModel(BaseModel):
    # Kuaidi100 adds fields over time (areaCode, statusCode, routeInfo...): ignored, not refused.
    model_config = ConfigDict(extra="ignore", frozen=True)


class _PushEvent(_PushModel):
    time: Text19 | None = None
    ftime: Text19 | None = None
    context: Text1000 = ""
    location: Text200 | None = None
    areaName: Text200 | None = None  # noqa: N815 - Kuaidi100's name

    @property
    def moment(self) -> datetime:
        return _parse_time(self.ftime or self.time)

    @property
    def place(self) -> str:
        return self.location or self.areaName or ""

    @model_validator(mode="after")
    def _dated(self) -> "_PushEvent":
        if not (self.ftime or self.time):
            raise ValueError("the event has no time")
        try:
            moment = self.moment
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"the event time is not {TIME_FORMAT}") from exc
        if not _EARLIEST_EVENT_YEAR <= moment.year <= _LATEST_EVENT_YEAR:
            raise ValueError("the event date is implausible")
        return self


class _PushResult(_PushModel):
    state: _State = None
    ischeck: _Flag = "0"
    com: Text30 = ""
    nu: Text32 = ""
    data: list[_PushEvent] | None = Field(default=None, max_length=1000)


class _PushParam(_PushModel):
    status: Literal["polling", "shutdown", "abort", "updateall"]
    message: Text500 | None = None
    lastResult: _PushResult | None = None  # noqa: N815 - Kuaidi100's names, here and below
    autoCheck: _Flag | None = None  # noqa: N815
    comNew: Text30 | None = None  # noqa: N815

    @model_validator(mode="after")
    def _known_carrier(self) -> "_PushParam":
        # A correction becomes the order's carrier (and the next query's `com`): only a
        # carrier from our list, as when a seller types one.
        if self.autoCheck == "1" and self.comNew and self.comNew not in CARRIERS:
            raise ValueError("comNew is not a carrier we accept")
        return self
