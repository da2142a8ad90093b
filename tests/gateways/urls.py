"""The project's URLs plus test-only WeChat Pay notify receivers (the real notify endpoints are
built by the orders module on top of parse_notification)."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from marketplace.gateways import wechatpay
from project.urls import urlpatterns as project_urlpatterns

received: list[wechatpay.Notification] = []
rejected: list[str] = []
# Status the receiver answers with after a valid notification (tests flip it to simulate outages).
answer = {"status": 204}


@csrf_exempt
def notify(request: HttpRequest) -> HttpResponse:
    try:
        notification = wechatpay.parse_notification(headers=request.META, body=request.body)
    except wechatpay.NotificationRejected as exc:
        rejected.append(exc.reason)
        return JsonResponse({"code": "FAIL", "message": exc.reason}, status=400)
    received.append(notification)
    return HttpResponse(status=answer["status"])


urlpatterns = [
    path("test/wechatpay/notify", notify),
    path("test/wechatpay/refund-notify", notify),
    *project_urlpatterns,
]
