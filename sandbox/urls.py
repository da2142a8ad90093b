from django.urls import path

from sandbox import views

app_name = "sandbox"
urlpatterns = [
    path("wechat/login-code", views.login_code, name="wechat-login-code"),
    path("wechat/phone-code", views.phone_code, name="wechat-phone-code"),
    path("wechat/subscribe-grant", views.subscribe_grant, name="wechat-subscribe-grant"),
    path("wechat/pay", views.wechat_pay, name="wechat-pay"),
    path(
        "wechat/confirm-transfer", views.wechat_confirm_transfer, name="wechat-confirm-transfer"
    ),
    path("kuaidi100/advance", views.kuaidi100_advance, name="kuaidi100-advance"),
]
