"""WeChat mini-program server API through wechatpy: sign-in, phone number, text check, messages.

One client per process. Its access token lives in Redis when configured, so every process
shares one token (a newly fetched token invalidates the previous one within minutes).
In the sandbox the client's HTTP session is routed to the fake WeChat; nothing else changes.
"""

import functools
import hashlib
import hmac
import logging
from dataclasses import dataclass

import requests
from django.conf import settings
from django.utils.translation import gettext_noop
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session.memorystorage import MemoryStorage

from marketplace.errors import DomainError, Unauthenticated, UpstreamUnavailable
from marketplace.gateways import partner_session

logger = logging.getLogger("marketplace.wechat")

# WeChat error codes that mean "the code the client sent is no good", not "WeChat is down".
BAD_CODE_ERRORS = {40029, 40163, 40226, 41008}
NOT_GRANTED = 43101
WXA_BASE = "https://api.weixin.qq.com/"


@dataclass(frozen=True)
class WeChatSession:
    openid: str
    unionid: str | None


def _token_storage():
    if settings.REDIS_URL:
        import redis
        from wechatpy.session.redisstorage import RedisStorage

        class FailSoftRedisStorage(RedisStorage):
            """The token is shared through Redis; while Redis is down each process keeps its own,
            so sign-in keeps working instead of failing with a 500
            (tests/faults/test_redis_down.py)."""

            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, **kwargs)
                self.local = MemoryStorage()

            def get(self, key, default=None):
                try:
                    return super().get(key, default)
                except redis.RedisError:
                    return self.local.get(key, default)

            def set(self, key, value, ttl=None):
                self.local.set(key, value, ttl)
                try:
                    super().set(key, value, ttl)
                except redis.RedisError as exc:
                    logger.warning("wechat token kept in this process only: %s", exc)

            def delete(self, key):
                self.local.delete(key)
                try:
                    super().delete(key)
                except redis.RedisError as exc:
                    logger.warning("wechat token not deleted from Redis: %s", exc)

        return FailSoftRedisStorage(redis.Redis.from_url(settings.REDIS_URL), prefix="wechatpy")
    return MemoryStorage()


@functools.cache
def client() -> WeChatClient:
    wechat = WeChatClient(
        settings.WECHAT_APPID,
        settings.WECHAT_SECRET,
        session=_token_storage(),
        timeout=settings.WECHAT_HTTP_TIMEOUT,
    )
    partner_session(wechat._http)
    return wechat


def _upstream(exc: Exception, what: str) -> UpstreamUnavailable:
    logger.warning("wechat %s failed: %s", what, exc)
    return UpstreamUnavailable(
        "WeChat could not %(what)s right now; try again.", params={"what": what}
    )


def code_to_session(code: str) -> WeChatSession:
    try:
        result = client().wxa.code_to_session(code)
    except WeChatClientException as exc:
        if exc.errcode in BAD_CODE_ERRORS:
            raise Unauthenticated(
                "The sign-in code is invalid, used or expired; call wx.login again.",
                code="invalid_code",
            ) from exc
        raise _upstream(exc, gettext_noop("sign you in")) from exc
    except requests.RequestException as exc:
        raise _upstream(exc, gettext_noop("sign you in")) from exc
    return WeChatSession(openid=result["openid"], unionid=result.get("unionid") or None)


def phone_number(code: str) -> tuple[str, str]:
    """Exchange the phone-number button's code; returns (pure number, country code)."""
    try:
        # Absolute URL: a bare "wxa/..." endpoint would be joined to the cgi-bin base URL.
        result = client().post(f"{WXA_BASE}wxa/business/getuserphonenumber", data={"code": code})
    except WeChatClientException as exc:
        if exc.errcode in BAD_CODE_ERRORS:
            raise DomainError(
                "The phone code is invalid, used or expired; ask the user again.",
                code="invalid_phone_code",
            ) from exc
        raise _upstream(exc, gettext_noop("read the phone number")) from exc
    except requests.RequestException as exc:
        raise _upstream(exc, gettext_noop("read the phone number")) from exc
    info = result["phone_info"]
    return info["purePhoneNumber"], str(info.get("countryCode", "86"))


def text_check(*, openid: str, content: str, scene: int = 3) -> str:
    """msg_sec_check v2 (wechatpy's own method sends the retired v1 body).

    Returns "pass", "review" or "risky". Scene 3 = forum/listing, 1 = profile, 2 = comment.
    """
    try:
        result = client().post(
            f"{WXA_BASE}wxa/msg_sec_check",
            data={"version": 2, "openid": openid, "scene": scene, "content": content},
        )
    except (WeChatClientException, requests.RequestException) as exc:
        raise _upstream(exc, gettext_noop("check the text")) from exc
    return result["result"]["suggest"]


def media_check_async(*, openid: str, media_url: str, scene: int = 2) -> str:
    """mediaCheckAsync v2 for an image: returns the trace_id its verdict will be pushed with
    (the wxa_media_check event to the message-push URL)."""
    try:
        result = client().post(
            f"{WXA_BASE}wxa/media_check_async",
            data={
                "media_url": media_url,
                "media_type": 2,
                "version": 2,
                "scene": scene,
                "openid": openid,
            },
        )
    except (WeChatClientException, requests.RequestException) as exc:
        raise _upstream(exc, "check the image") from exc
    return str(result["trace_id"])


def push_signature_valid(*, signature: str, timestamp: str, nonce: str) -> bool:
    """WeChat's message-push signature: sha1 of the sorted token, timestamp and nonce."""
    token = settings.WECHAT_PUSH_TOKEN
    if not token or not signature:
        return False
    expected = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()  # noqa: S324
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def send_subscribe_message(*, openid: str, template_id: str, data: dict, page: str = "") -> bool:
    """Sends one subscribe message; False when the user has not granted one (not an error)."""
    try:
        client().wxa.send_subscribe_message(openid, template_id, data, page=page)
    except WeChatClientException as exc:
        if exc.errcode == NOT_GRANTED:
            return False
        raise
    return True


def mini_program_code(*, scene: str, page: str, width: int = 430) -> bytes:
    """An unlimited mini-program code (wxacode.getUnlimited) as PNG/JPEG bytes.

    Posted with the whole documented body rather than through wechatpy's
    `wxa.get_wxa_code_unlimited`, which cannot send `env_version` and `check_path`: a trial or
    development build (WECHAT_MINIPROGRAM_ENV) has pages the released version lacks. WeChat
    answers the image itself on success and JSON with an errcode on failure; wechatpy hands
    back the raw response for the former and raises for the latter.
    """
    env_version = settings.WECHAT_MINIPROGRAM_ENV
    try:
        result = client().post(
            f"{WXA_BASE}wxa/getwxacodeunlimit",
            data={
                "scene": scene,
                "page": page,
                "width": width,
                "env_version": env_version,
                # A page of an unreleased version cannot be checked against the released app.
                "check_path": env_version == "release",
            },
        )
    except (WeChatClientException, requests.RequestException) as exc:
        raise _upstream(exc, gettext_noop("make the mini-program code")) from exc
    if isinstance(result, dict):  # JSON without an errcode: not an image either
        raise _upstream(ValueError(f"unexpected answer {result}"), gettext_noop("make the mini-program code"))
    return result.content
