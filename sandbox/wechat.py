"""Fake WeChat mini-program server API (api.weixin.qq.com), wire-compatible with wechatpy.

Error codes are WeChat's: 40013 bad appid, 40125 bad secret, 40001 bad access token,
40029 invalid or expired code, 40163 code already used, 43101 subscribe not granted.
"""

import hashlib
import io
import json
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageDraw

from sandbox.callbacks import post_callback
from sandbox.models import (
    SandboxAccessToken,
    SandboxCode,
    SandboxMediaCheck,
    SandboxMessage,
    SandboxSubscribeGrant,
)
from sandbox.transport import SandboxRequest, SandboxResponse, route

HOST = "api.weixin.qq.com"
CODE_TTL = timedelta(minutes=5)
# Words that make the fake text check answer "risky" or "review" (documented in docs/sandbox.md).
RISKY_WORDS = ("违禁", "枪支", "毒品", "sandbox-risky")
REVIEW_WORDS = ("代购", "高仿", "sandbox-review")


def _error(errcode: int, errmsg: str) -> SandboxResponse:
    return SandboxResponse(200, {"errcode": errcode, "errmsg": errmsg})


def issue_code(kind: str, *, openid: str = "", unionid: str = "", phone: str = "") -> str:
    code = secrets.token_hex(16)
    SandboxCode.objects.create(kind=kind, code=code, openid=openid, unionid=unionid, phone=phone)
    return code


def _consume_code(kind: str, code: str) -> tuple[SandboxCode | None, SandboxResponse | None]:
    with transaction.atomic():
        found = SandboxCode.objects.select_for_update().filter(kind=kind, code=code).first()
        if found is None or found.created_at < timezone.now() - CODE_TTL:
            return None, _error(40029, "invalid code")
        if found.used_at is not None:
            return None, _error(40163, "code been used")
        found.used_at = timezone.now()
        found.save(update_fields=["used_at"])
    return found, None


def _app_credentials_error(request: SandboxRequest) -> SandboxResponse | None:
    if request.query.get("appid") != settings.WECHAT_APPID:
        return _error(40013, "invalid appid")
    if request.query.get("secret") != settings.WECHAT_SECRET:
        return _error(40125, "invalid appsecret")
    return None


def _access_token_error(request: SandboxRequest) -> SandboxResponse | None:
    token = request.query.get("access_token", "")
    if not SandboxAccessToken.objects.filter(token=token, expires_at__gt=timezone.now()).exists():
        return _error(40001, "invalid credential, access_token is invalid or not latest")
    return None


@route(HOST, "GET", "/cgi-bin/token")
def access_token(request: SandboxRequest) -> SandboxResponse:
    if error := _app_credentials_error(request):
        return error
    token = secrets.token_urlsafe(48)
    SandboxAccessToken.objects.create(
        token=token, appid=settings.WECHAT_APPID, expires_at=timezone.now() + timedelta(hours=2)
    )
    return SandboxResponse(200, {"access_token": token, "expires_in": 7200})


@route(HOST, "GET", "/sns/jscode2session")
def code_to_session(request: SandboxRequest) -> SandboxResponse:
    if error := _app_credentials_error(request):
        return error
    if request.query.get("grant_type") != "authorization_code":
        return _error(40002, "invalid grant_type")
    found, error = _consume_code(SandboxCode.KIND_LOGIN, request.query.get("js_code", ""))
    if error:
        return error
    body = {"openid": found.openid, "session_key": secrets.token_urlsafe(16)}
    if found.unionid:
        body["unionid"] = found.unionid
    return SandboxResponse(200, body)


@route(HOST, "POST", "/wxa/business/getuserphonenumber")
def get_user_phone_number(request: SandboxRequest) -> SandboxResponse:
    if error := _access_token_error(request):
        return error
    found, error = _consume_code(SandboxCode.KIND_PHONE, (request.json() or {}).get("code", ""))
    if error:
        return error
    pure = found.phone.removeprefix("+86")
    return SandboxResponse(
        200,
        {
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": pure,
                "purePhoneNumber": pure,
                "countryCode": "86",
                "watermark": {
                    "timestamp": int(timezone.now().timestamp()),
                    "appid": settings.WECHAT_APPID,
                },
            },
        },
    )


@route(HOST, "POST", "/wxa/msg_sec_check")
def msg_sec_check(request: SandboxRequest) -> SandboxResponse:
    if error := _access_token_error(request):
        return error
    body = request.json() or {}
    if body.get("version") != 2 or not body.get("openid") or body.get("scene") not in (1, 2, 3, 4):
        return _error(47001, "data format error")
    content = str(body.get("content", ""))
    if any(word in content for word in RISKY_WORDS):
        suggest, label = "risky", 20006
    elif any(word in content for word in REVIEW_WORDS):
        suggest, label = "review", 21000
    else:
        suggest, label = "pass", 100
    return SandboxResponse(
        200,
        {
            "errcode": 0,
            "errmsg": "ok",
            "result": {"suggest": suggest, "label": label},
            "detail": [
                {"strategy": "content_model", "errcode": 0, "suggest": suggest, "label": label}
            ],
            "trace_id": secrets.token_hex(12),
        },
    )


# An image whose URL holds this marker is judged risky by the fake media check.
RISKY_MEDIA_MARKER = "sandbox-risky"
MEDIA_PUSH_PATH = "/api/wechat/message-push"


@route(HOST, "POST", "/wxa/media_check_async")
def media_check_async(request: SandboxRequest) -> SandboxResponse:
    """The v2 body (media_url, media_type, version, scene, openid); the verdict comes later by
    message push, as from WeChat (`push_media_checks`)."""
    if error := _access_token_error(request):
        return error
    body = request.json() or {}
    if (
        body.get("version") != 2
        or body.get("media_type") not in (1, 2)
        or not body.get("openid")
        or not body.get("media_url")
        or body.get("scene") not in (1, 2, 3, 4)
    ):
        return _error(47001, "data format error")
    suggest = "risky" if RISKY_MEDIA_MARKER in str(body["media_url"]) else "pass"
    check = SandboxMediaCheck.objects.create(
        trace_id=secrets.token_hex(12),
        openid=str(body["openid"]),
        media_url=str(body["media_url"])[:500],
        suggest=suggest,
    )
    return SandboxResponse(200, {"errcode": 0, "errmsg": "ok", "trace_id": check.trace_id})


def _push_signature(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()  # noqa: S324 - WeChat's scheme


def push_media_checks() -> int:
    """Pushes every verdict not yet acknowledged to PUBLIC_BASE_URL's message-push URL, signed
    as WeChat signs (sha1 of the sorted token, timestamp and nonce). Returns how many were
    acknowledged."""
    done = 0
    for check in SandboxMediaCheck.objects.filter(pushed_at__isnull=True).order_by("pk"):
        timestamp, nonce = str(int(timezone.now().timestamp())), secrets.token_hex(8)
        signature = _push_signature(settings.WECHAT_PUSH_TOKEN, timestamp, nonce)
        label = 20002 if check.suggest == "risky" else 100
        body = {
            "ToUserName": "gh_sandbox",
            "FromUserName": "sandbox-push",
            "CreateTime": int(timestamp),
            "MsgType": "event",
            "Event": "wxa_media_check",
            "appid": settings.WECHAT_APPID,
            "trace_id": check.trace_id,
            "version": 2,
            "detail": [{"strategy": "content_model", "errcode": 0, "suggest": check.suggest,
                        "label": label}],
            "errcode": 0,
            "errmsg": "ok",
            "result": {"suggest": check.suggest, "label": label},
        }
        url = (
            f"{settings.PUBLIC_BASE_URL.rstrip('/')}{MEDIA_PUSH_PATH}"
            f"?signature={signature}&timestamp={timestamp}&nonce={nonce}"
        )
        status = post_callback(url, body=json.dumps(body).encode(), headers={},
                               content_type="application/json")
        if status == 200:
            SandboxMediaCheck.objects.filter(pk=check.pk).update(pushed_at=timezone.now())
            done += 1
    return done


@route(HOST, "POST", "/cgi-bin/message/subscribe/send")
def subscribe_send(request: SandboxRequest) -> SandboxResponse:
    if error := _access_token_error(request):
        return error
    body = request.json() or {}
    openid, template_id = body.get("touser", ""), body.get("template_id", "")
    if not openid or not template_id or not isinstance(body.get("data"), dict):
        return _error(47003, "argument invalid")
    with transaction.atomic():
        grant = (
            SandboxSubscribeGrant.objects.select_for_update()
            .filter(openid=openid, template_id=template_id, remaining__gt=0)
            .first()
        )
        if grant is None:
            return _error(43101, "user refuse to accept the msg")
        grant.remaining -= 1
        grant.save(update_fields=["remaining"])
        SandboxMessage.objects.create(
            openid=openid, template_id=template_id, page=body.get("page", ""), data=body["data"]
        )
    return _error(0, "ok")


# Characters WeChat allows in a mini-program code's scene (wxacode.getUnlimited).
_SCENE_CHARS = re.compile(r"^[0-9A-Za-z!#$&'()*+,/:;=?@\-._~]{1,32}$")


@route(HOST, "POST", "/wxa/getwxacodeunlimit")
def get_wxa_code_unlimited(request: SandboxRequest) -> SandboxResponse:
    """Answers a PNG that looks like a code (finder squares and modules drawn from the scene and
    page), or WeChat's JSON error: 40169 for a bad scene, 41030 for a page with a leading slash
    or a query (the real API also refuses unpublished pages when check_path is true)."""
    if error := _access_token_error(request):
        return error
    body = request.json() or {}
    scene, page = str(body.get("scene", "")), str(body.get("page", ""))
    if not _SCENE_CHARS.match(scene):
        return _error(40169, "invalid length for scene, or the data is not json string")
    if page.startswith("/") or "?" in page:
        return _error(41030, "invalid page rid: sandbox")
    width = min(max(int(body.get("width") or 430), 280), 1280)
    return SandboxResponse(
        200, _code_image(f"{scene}|{page}|{body.get('env_version', 'release')}", width),
        headers={"Content-Type": "image/png"},
    )


def _code_image(payload: str, width: int) -> bytes:
    modules = 29
    bits = "".join(
        f"{byte:08b}"
        for chunk in range(4)
        for byte in hashlib.sha256(f"{chunk}:{payload}".encode()).digest()
    )
    grid = Image.new("1", (modules, modules), 1)
    pixels = grid.load()
    for index in range(modules * modules):
        pixels[index % modules, index // modules] = 0 if bits[index % len(bits)] == "1" else 1
    draw = ImageDraw.Draw(grid)
    for x, y in ((0, 0), (modules - 7, 0), (0, modules - 7)):  # the three finder squares
        draw.rectangle((x, y, x + 6, y + 6), fill=0)
        draw.rectangle((x + 1, y + 1, x + 5, y + 5), fill=1)
        draw.rectangle((x + 2, y + 2, x + 4, y + 4), fill=0)
    image = Image.new("1", (width, width), 1)
    image.paste(grid.resize((width - 40, width - 40), Image.Resampling.NEAREST), (20, 20))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
