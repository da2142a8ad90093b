"""Accounts: WeChat sign-in through wechatpy and the sandbox, tokens, phone, profile, addresses."""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.actions.accounts import ban_user, hash_token
from marketplace.models import Address, ApiToken, User
from sandbox import wechat as sandbox_wechat
from sandbox.models import SandboxCode
from sandbox.transport import SandboxResponse
from tests.conftest import ApiClient, assert_error
from tests.factories import AddressFactory, UserFactory

pytestmark = pytest.mark.django_db


def login_code(anon: ApiClient, openid: str, **extra) -> str:
    response = anon.post("/sandbox/wechat/login-code", {"openid": openid, **extra})
    assert response.status_code == 200
    return response.json()["code"]


def sign_in(anon: ApiClient, openid: str, unionid: str = "", **body) -> dict:
    code = login_code(anon, openid, unionid=unionid)
    response = anon.post("/api/auth/wechat-login", {"code": code, **body})
    assert response.status_code == 200, response.content
    return response.json()


def test_first_sign_in_creates_the_user_and_returns_a_working_token(anon):
    body = sign_in(
        anon, "openid-new-user-1", nickname="小明", avatar_url="https://thirdwx.qlogo.cn/mmopen/vi_32/a/132"
    )

    user = User.objects.get(openid="openid-new-user-1")
    assert body["user"] == {
        "id": user.pk,
        "nickname": "小明",
        "avatar_url": "https://thirdwx.qlogo.cn/mmopen/vi_32/a/132",
        "phone": "",
        "rating_avg": None,
        "rating_count": 0,
    }
    me = ApiClient(body["token"]).get("/api/me")
    assert me.status_code == 200 and me.json()["id"] == user.pk
    # Only the hash is stored.
    assert ApiToken.objects.get(user=user).key_hash == hash_token(body["token"])
    assert not ApiToken.objects.filter(key_hash=body["token"]).exists()


def test_returning_user_signs_in_to_the_same_account_with_unionid_update(anon):
    first = sign_in(anon, "openid-returning")
    second = sign_in(anon, "openid-returning", nickname="新昵称")

    assert first["user"]["id"] == second["user"]["id"]
    assert first["token"] != second["token"]
    assert User.objects.filter(openid="openid-returning").count() == 1
    assert User.objects.get(openid="openid-returning").nickname == "新昵称"

    sign_in(anon, "openid-returning", unionid="union-123")
    assert User.objects.get(openid="openid-returning").unionid == "union-123"


def test_banned_user_cannot_sign_in_and_gets_no_token(anon):
    user = UserFactory(openid="openid-banned")
    ban_user(user=user, reason="fraud")

    response = anon.post("/api/auth/wechat-login", {"code": login_code(anon, "openid-banned")})

    assert_error(response, 403, "user_banned")
    assert not ApiToken.objects.filter(user=user).exists()


def test_ban_revokes_existing_tokens(make_client):
    client = make_client()
    assert client.get("/api/me").status_code == 200

    ban_user(user=client.user, reason="spam")

    assert_error(client.get("/api/me"), 401, "unauthorized")


def test_token_of_a_user_banned_without_revocation_gets_403(make_client):
    client = make_client()
    User.objects.filter(pk=client.user.pk).update(is_banned=True)

    assert_error(client.get("/api/me"), 403, "user_banned")


@pytest.mark.parametrize("code", ["not-a-code", "x" * 128])
def test_invalid_code_is_refused_and_creates_nothing(anon, code):
    before = User.objects.count()

    assert_error(anon.post("/api/auth/wechat-login", {"code": code}), 401, "invalid_code")

    assert User.objects.count() == before


def test_reused_code_is_refused(anon):
    code = login_code(anon, "openid-reuse")
    assert anon.post("/api/auth/wechat-login", {"code": code}).status_code == 200
    tokens = ApiToken.objects.count()

    assert_error(anon.post("/api/auth/wechat-login", {"code": code}), 401, "invalid_code")
    assert ApiToken.objects.count() == tokens


def test_expired_code_is_refused_and_creates_nothing(anon):
    code = login_code(anon, "openid-expired")
    SandboxCode.objects.filter(code=code).update(created_at=timezone.now() - timedelta(minutes=6))

    assert_error(anon.post("/api/auth/wechat-login", {"code": code}), 401, "invalid_code")
    assert not User.objects.filter(openid="openid-expired").exists()


def test_wechat_outage_is_a_503_not_a_500(anon, monkeypatch):
    def busy(request):
        return SandboxResponse(200, {"errcode": -1, "errmsg": "system error"})

    monkeypatch.setitem(
        sandbox_wechat.__dict__["route"].__globals__["_routes"],
        (sandbox_wechat.HOST, "GET", "/sns/jscode2session"),
        busy,
    )
    response = anon.post("/api/auth/wechat-login", {"code": login_code(anon, "openid-busy")})

    assert_error(response, 503, "upstream_unavailable")
    assert not User.objects.filter(openid="openid-busy").exists()


def test_sign_in_is_rate_limited(anon, settings):
    # Failed exchanges per address (issue 18; 30/min by default): tests/security/test_sign_in_limits.py
    statuses = [
        anon.post("/api/auth/wechat-login", {"code": f"bad-{i}"}).status_code for i in range(30)
    ]
    assert statuses == [401] * 30
    assert_error(anon.post("/api/auth/wechat-login", {"code": "bad"}), 429, "sign_in_failures")


def test_expired_token_is_refused(make_client):
    client = make_client()
    ApiToken.objects.filter(user=client.user).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert_error(client.get("/api/me"), 401, "unauthorized")


def test_logout_revokes_only_this_token(make_client, user):
    first, second = make_client(user), make_client(user)

    assert first.post("/api/auth/logout").status_code == 204

    assert_error(first.get("/api/me"), 401)
    assert second.get("/api/me").status_code == 200


def test_missing_or_garbage_authorization_is_401(anon):
    assert_error(anon.get("/api/me"), 401, "unauthorized")
    assert_error(anon.get("/api/me", headers={"Authorization": "Bearer nope"}), 401)
    assert_error(anon.get("/api/me", headers={"Authorization": "Basic abc"}), 401)


def test_phone_binding_through_wechat(client_of, anon):
    code = anon.post("/sandbox/wechat/phone-code", {"phone": "13912345678"}).json()["code"]

    response = client_of.post("/api/auth/phone", {"code": code})

    assert response.status_code == 200 and response.json() == {"phone": "13912345678"}
    assert User.objects.get(pk=client_of.user.pk).phone == "13912345678"
    assert client_of.get("/api/me").json()["phone"] == "13912345678"
    # A phone code works once.
    assert_error(client_of.post("/api/auth/phone", {"code": code}), 400, "invalid_phone_code")


def test_profile_update_validates_and_ignores_nothing_silently(client_of):
    response = client_of.patch("/api/me", {"nickname": "  新名字 "})
    assert response.status_code == 200 and response.json()["nickname"] == "新名字"

    assert_error(client_of.patch("/api/me", {"nickname": ""}), 422, "validation_error")
    assert_error(client_of.patch("/api/me", {"avatar_url": "javascript:alert(1)"}), 422)
    assert_error(client_of.patch("/api/me", {"is_banned": True}), 422, "validation_error")
    assert User.objects.get(pk=client_of.user.pk).nickname == "新名字"


def test_public_profile_hides_private_fields_and_banned_users(anon, user):
    body = anon.get(f"/api/users/{user.pk}").json()
    assert set(body) == {
        "id", "nickname", "avatar_url", "rating_avg", "rating_count",
        # The seller page (SPEC §4b): counters and the reader's follow, nothing private.
        "on_sale_count", "sold_count", "follower_count", "is_following", "joined_at",
    }

    user.is_banned = True
    user.save()
    assert_error(anon.get(f"/api/users/{user.pk}"), 404)
    assert_error(anon.get("/api/users/999999"), 404)


ADDRESS = {
    "name": "李四",
    "phone": "13700001111",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "detail": "文三路 100 号",
}


def test_address_book_crud_keeps_exactly_one_default(client_of):
    first = client_of.post("/api/addresses", ADDRESS).json()
    assert first["is_default"] is True  # the first address is the default
    second = client_of.post("/api/addresses", {**ADDRESS, "name": "王五", "is_default": True}).json()

    listed = client_of.get("/api/addresses").json()
    assert [a["id"] for a in listed] == [second["id"], first["id"]]
    assert [a["is_default"] for a in listed] == [True, False]

    patched = client_of.patch(f"/api/addresses/{first['id']}", {"is_default": True, "detail": "新地址"})
    assert patched.json()["detail"] == "新地址" and patched.json()["is_default"] is True
    assert Address.objects.filter(user=client_of.user, is_default=True).count() == 1

    assert client_of.delete(f"/api/addresses/{first['id']}").status_code == 204
    assert Address.objects.get(pk=second["id"]).is_default is True


def test_address_limit(client_of, settings):
    AddressFactory.create_batch(settings.MAX_ADDRESSES_PER_USER, user=client_of.user)

    assert_error(client_of.post("/api/addresses", ADDRESS), 409, "address_limit")
    assert Address.objects.filter(user=client_of.user).count() == settings.MAX_ADDRESSES_PER_USER


def test_another_users_address_is_404_and_untouched(client_of):
    other = AddressFactory(detail="别人的地址")

    assert_error(client_of.patch(f"/api/addresses/{other.pk}", {"detail": "hijack"}), 404)
    assert_error(client_of.delete(f"/api/addresses/{other.pk}"), 404)
    assert all(a["id"] != other.pk for a in client_of.get("/api/addresses").json())
    assert Address.objects.get(pk=other.pk).detail == "别人的地址"


@pytest.mark.parametrize(
    "body",
    [
        {**ADDRESS, "phone": "not a phone"},
        {**ADDRESS, "name": ""},
        {**ADDRESS, "detail": "x" * 201},
        {k: v for k, v in ADDRESS.items() if k != "city"},
        {**ADDRESS, "user_id": 1},
    ],
)
def test_bad_addresses_are_refused(client_of, body):
    assert_error(client_of.post("/api/addresses", body), 422, "validation_error")
    assert not Address.objects.exists()
