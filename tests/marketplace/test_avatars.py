"""Issue 18: avatars. WeChat's chooseAvatar hands the client a temporary file, uploaded with
POST /api/me/avatar (checked as listing images are, stored square, one immutable file each); an
avatar given as a URL must be WeChat's own avatar host or our own media."""

import io

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image

from marketplace.models import Order, User
from tests.conftest import assert_error
from tests.marketplace.catalog_factories import image_bytes, upload_file
from tests.marketplace.order_helpers import buyer_with_address, listing_on_sale, place_order

pytestmark = pytest.mark.django_db(transaction=True)

WECHAT_AVATAR = "https://thirdwx.qlogo.cn/mmopen/vi_32/Q0j4TwGTfTL/132"


def post_avatar(client, data: bytes, name: str = "tmp_avatar.jpg", content_type="image/jpeg"):
    return client.client.post(
        "/api/me/avatar",
        {"file": upload_file(data, name, content_type)},
        headers={"Authorization": f"Bearer {client.token}"},
    )


def _stored_name(url: str) -> str:
    prefix = f"{settings.MEDIA_BASE_URL}{settings.MEDIA_URL}"
    assert url.startswith(prefix), url
    return url.removeprefix(prefix)


def test_an_uploaded_avatar_is_stored_square_and_becomes_mine(client_of):
    response = post_avatar(client_of, image_bytes(size=(300, 120)))
    assert response.status_code == 200, response.content
    url = response.json()["avatar_url"]
    name = _stored_name(url)
    assert name.startswith(f"avatars/{client_of.user.pk}/")
    with default_storage.open(name) as stored:
        assert Image.open(io.BytesIO(stored.read())).size == (256, 256)
    assert client_of.get("/api/me").json()["avatar_url"] == url
    public = client_of.get(f"/api/users/{client_of.user.pk}").json()
    assert public["avatar_url"] == url
    # Our own upload's URL is accepted back by PATCH /api/me (the old rule refused it).
    assert client_of.patch("/api/me", {"avatar_url": url}).status_code == 200


@pytest.mark.parametrize(
    ("data", "name", "status", "code"),
    [
        (b"not an image at all", "a.jpg", 422, "invalid_image"),
        (b"GIF89a" + b"\x00" * 40, "a.gif", 422, "invalid_image"),
        (b"", "a.jpg", 422, "invalid_image"),
    ],
)
def test_an_avatar_that_is_not_an_accepted_image_is_refused(client_of, data, name, status, code):
    assert_error(post_avatar(client_of, data, name), status, code)
    assert User.objects.get(pk=client_of.user.pk).avatar_url == ""


def test_a_new_avatar_replaces_the_old_file_unless_an_order_still_shows_it(make_client):
    seller = make_client()
    first = _stored_name(post_avatar(seller, image_bytes(color=(1, 2, 3))).json()["avatar_url"])
    second = _stored_name(post_avatar(seller, image_bytes(color=(4, 5, 6))).json()["avatar_url"])
    assert first != second
    assert not default_storage.exists(first)  # nothing showed it: deleted
    assert default_storage.exists(second)

    buyer, address_id = buyer_with_address(make_client)
    listing = listing_on_sale(seller=User.objects.get(pk=seller.user.pk))
    order_no = place_order(buyer, listing, address_id).json()["order_no"]
    assert Order.objects.get(order_no=order_no).seller_avatar_url.endswith(second)

    third = post_avatar(seller, image_bytes(color=(7, 8, 9))).json()["avatar_url"]
    assert default_storage.exists(second)  # the order's snapshot still shows it
    detail = buyer.get(f"/api/orders/{order_no}").json()
    assert detail["seller"]["avatar_url"].endswith(second)
    assert default_storage.exists(_stored_name(third))


@pytest.mark.parametrize(
    "url",
    [
        "http://thirdwx.qlogo.cn/mmopen/x/132",  # WeChat's host, but not HTTPS
        "https://evil.example/a.png",
        "https://thirdwx.qlogo.cn.evil.example/a.png",
        "https://user:pw@thirdwx.qlogo.cn/a.png",
        "javascript:alert(1)",
        "/media/avatars/1/a.jpg",
    ],
)
def test_an_avatar_url_off_wechat_and_our_media_is_refused(client_of, anon, url):
    assert_error(client_of.patch("/api/me", {"avatar_url": url}), 422)
    assert User.objects.get(pk=client_of.user.pk).avatar_url == ""


@pytest.mark.parametrize("url", [WECHAT_AVATAR, "https://wx.qlogo.cn/mmhead/abc/0"])
def test_wechat_avatars_are_accepted(client_of, url):
    response = client_of.patch("/api/me", {"avatar_url": url})
    assert response.status_code == 200, response.content
    assert response.json()["avatar_url"] == url


def test_sign_in_refuses_an_avatar_url_off_wechat(anon):
    response = anon.post(
        "/api/auth/wechat-login", {"code": "any-code", "avatar_url": "https://evil.example/a.png"}
    )
    assert_error(response, 422, "avatar_url_not_allowed")


def test_the_contract_lists_post_me_avatar(anon):
    schema = anon.get("/api/openapi.json").json()
    operation = schema["paths"]["/api/me/avatar"]["post"]
    assert "multipart/form-data" in operation["requestBody"]["content"]
