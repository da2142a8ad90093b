"""The user's side of the partner services, for clients that cannot tap a phone:
`/sandbox/wechat/login-code` stands in for wx.login, `/sandbox/wechat/phone-code` for the
phone-number button, `/sandbox/wechat/subscribe-grant` for the subscribe-message prompt,
`/sandbox/wechat/pay` for the user confirming a WeChat Pay payment."""

import json
import re

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from marketplace.errors import DomainError
from project.middleware import error_response
from sandbox import kuaidi100, mchtransfer, wechat, wechatpay
from sandbox.models import SandboxCode, SandboxSubscribeGrant

_OPENID = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
_PHONE = re.compile(r"^1\d{10}$")
_PREPAY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


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


# --- Kuaidi100: the courier's side -------------------------------------------------------------

_KD100_NUMBER = re.compile(r"^[A-Za-z0-9]{6,32}$")
_KD100_ADVANCE_STATUSES = ("polling", "abort")


@csrf_exempt
@require_POST
def kuaidi100_advance(request: HttpRequest) -> JsonResponse:
    """`{tracking_no, status?}`: the parcel's next scripted event (or `abort`), pushed to every
    subscriber; answers `{tracking_no, state, events_count, pushed_to: [...]}`."""
    body = _json_body(request)
    if body is None:
        return error_response(400, "malformed_json", "The body is not a JSON object.")
    tracking_no = body.get("tracking_no")
    status = body.get("status", "polling")
    if not isinstance(tracking_no, str) or not _KD100_NUMBER.match(tracking_no):
        return error_response(422, "validation_error", "tracking_no: 6-32 letters and digits.")
    if status not in _KD100_ADVANCE_STATUSES:
        return error_response(422, "validation_error", "status: polling or abort.")
    try:
        result = kuaidi100.advance(tracking_no, status=status)
    except DomainError as exc:
        return error_response(exc.status, exc.code, exc.message)
    return JsonResponse(result.as_dict())


@csrf_exempt
@require_POST
def wechat_pay(request: HttpRequest) -> JsonResponse:
    """The user confirms payment in WeChat: the transaction succeeds and WeChat Pay's signed,
    encrypted notification goes to the notify URL given at prepay (retried until acknowledged).
    """
    body = _json_body(request)
    if body is None:
        return error_response(400, "malformed_json", "The body is not a JSON object.")
    prepay_id = body.get("prepay_id")
    if not isinstance(prepay_id, str) or not _PREPAY_ID.match(prepay_id):
        return error_response(422, "validation_error", "prepay_id: the id from the pay call.")
    try:
        notification = wechatpay.pay_transaction(prepay_id=prepay_id)
    except wechatpay.PayRefused as exc:
        return error_response(404 if exc.code == "not_found" else 409, exc.code, exc.message)
    return JsonResponse(
        {
            "out_trade_no": notification.out_trade_no,
            "trade_state": "SUCCESS",
            "notification": {
                "id": notification.notification_id,
                "target_url": notification.target_url,
                "attempts": notification.attempts,
                "acknowledged": notification.acknowledged_at is not None,
            },
        }
    )


@csrf_exempt
@require_POST
def wechat_confirm_transfer(request: HttpRequest) -> JsonResponse:
    """The user confirms a merchant transfer in wx.requestMerchantTransfer: the bill succeeds
    (or fails, per settings.SANDBOX_TRANSFER_OUTCOME) and WeChat Pay's signed, encrypted
    MCHTRANSFER.BILL.FINISHED notification goes to the notify URL (retried until acknowledged).
    """
    body = _json_body(request)
    if body is None:
        return error_response(400, "malformed_json", "The body is not a JSON object.")
    package_info = body.get("package_info")
    if not isinstance(package_info, str) or not 0 < len(package_info) <= 128:
        return error_response(422, "validation_error", "package_info: the one the server gave.")
    try:
        bill = mchtransfer.confirm_transfer(package_info=package_info)
    except mchtransfer.TransferRefused as exc:
        return error_response(404 if exc.code == "not_found" else 409, exc.code, exc.message)
    return JsonResponse(
        {"out_bill_no": bill.out_bill_no, "state": bill.state, "fail_reason": bill.fail_reason}
    )
