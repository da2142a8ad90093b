"""The user's side of the partner services, for clients that cannot tap a phone:
`/sandbox/wechat/login-code` stands in for wx.login, `/sandbox/wechat/phone-code` for the
phone-number button, `/sandbox/wechat/subscribe-grant` for the subscribe-message prompt."""

import json
import re

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from marketplace.gateways.sandbox import wechat
from marketplace.gateways.sandbox.models import SandboxCode, SandboxSubscribeGrant
from project.middleware import error_response

_OPENID = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
_PHONE = re.compile(r"^1\d{10}$")


def _json_body(request: HttpRequest) -> dict | None:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@csrf_exempt
@require_POST
def login_code(request: HttpRequest) -> JsonResponse:
    body = _json_body(request)
    if body is None:
        return error_response(400, "malformed_json", "The body is not a JSON object.")
    openid = str(body.get("openid", ""))
    if not _OPENID.match(openid):
        return error_response(422, "validation_error", "openid: 6-64 letters, digits, _ or -.")
    unionid = str(body.get("unionid", ""))
    code = wechat.issue_code(SandboxCode.KIND_LOGIN, openid=openid, unionid=unionid)
    return JsonResponse({"code": code})


@csrf_exempt
@require_POST
def phone_code(request: HttpRequest) -> JsonResponse:
    body = _json_body(request)
    if body is None:
        return error_response(400, "malformed_json", "The body is not a JSON object.")
    phone = str(body.get("phone", "13800138000"))
    if not _PHONE.match(phone):
        return error_response(
            422, "validation_error", "phone: a mainland mobile number, 11 digits."
        )
    return JsonResponse({"code": wechat.issue_code(SandboxCode.KIND_PHONE, phone=phone)})


@csrf_exempt
@require_POST
def subscribe_grant(request: HttpRequest) -> JsonResponse:
    body = _json_body(request)
    if body is None:
        return error_response(400, "malformed_json", "The body is not a JSON object.")
    openid, template_id = str(body.get("openid", "")), str(body.get("template_id", ""))
    count = body.get("count", 1)
    if (
        not _OPENID.match(openid)
        or not template_id
        or not isinstance(count, int)
        or not 0 < count <= 100
    ):
        return error_response(422, "validation_error", "Give openid, template_id and count 1..100.")
    grant, _ = SandboxSubscribeGrant.objects.get_or_create(openid=openid, template_id=template_id)
    grant.remaining += count
    grant.save(update_fields=["remaining"])
    return JsonResponse(
        {"openid": openid, "template_id": template_id, "remaining": grant.remaining}
    )
