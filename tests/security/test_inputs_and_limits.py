"""Mass assignment, rate limits and size limits, through the HTTP client."""

import pytest
from django.test import override_settings

from marketplace.models import Listing, Order, User
from marketplace.models.wallet import Wallet, Withdrawal
from negotiation.models import Offer
from tests.conftest import assert_error
from tests.factories import AddressFactory
from tests.marketplace.catalog_factories import image_bytes, upload_file
from tests.marketplace.order_helpers import listing_on_sale
from tests.marketplace.wallet_helpers import credit, make_account

pytestmark = pytest.mark.django_db

SMUGGLED = {
    "status": "completed",
    "price": 1,
    "price_fen": 1,
    "seller": 1,
    "seller_id": 1,
    "buyer_id": 1,
    "user_id": 1,
    "balance": 10**9,
    "available": 10**9,
    "is_staff": True,
}


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = schema["components"]["schemas"][name]
    return node


def test_every_json_request_body_refuses_unknown_fields(anon):
    """The document says so (additionalProperties: false), so no field can be smuggled in."""
    schema = anon.get("/api/openapi.json").json()
    bodies = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            bodies += 1
            body = content["application/json"]["schema"]
            # An optional body is `anyOf: [the object, null]`.
            objects = [_resolve(schema, b) for b in body.get("anyOf", [body])]
            objects = [b for b in objects if b.get("type") != "null"]
            assert objects, (method, path, body)
            for obj in objects:
                assert obj.get("additionalProperties") is False, (method, path, obj)
    assert bodies >= 15


@pytest.mark.parametrize("field", sorted(SMUGGLED))
def test_smuggled_fields_are_422_and_change_nothing(make_client, field):
    me = make_client()
    address = AddressFactory(user=me.user, is_default=True)
    mine = listing_on_sale(seller=me.user, price_fen=20_000)
    theirs = listing_on_sale(price_fen=15_000)
    credit(me.user, 5_000)
    account = make_account(me.user)
    extra = {field: SMUGGLED[field]}
    before = (
        Listing.objects.filter(pk=mine.pk).values().get(),
        User.objects.filter(pk=me.user.pk).values().get(),
        Wallet.objects.filter(user=me.user).values().get(),
    )
    # (fields the operation legitimately takes, the call)
    calls = [
        (
            (),
            lambda x: me.post(
                "/api/orders", {"listing_id": theirs.pk, "address_id": address.pk, **x}
            ),
        ),
        (("price",), lambda x: me.patch(f"/api/listings/{mine.pk}", {"title": "新标题", **x})),
        ((), lambda x: me.patch("/api/me", {"nickname": "新名字", **x})),
        (
            (),
            lambda x: me.post(
                "/api/wallet/withdrawals", {"amount": 100, "account_id": account.pk, **x}
            ),
        ),
        (
            ("price",),
            lambda x: me.post(f"/api/listings/{theirs.pk}/offers", {"price": 10_000, **x}),
        ),
        ((), lambda x: me.patch(f"/api/addresses/{address.pk}", {"name": "李四", **x})),
    ]
    for allowed, call in calls:
        if field not in allowed:
            assert_error(call(extra), 422, "validation_error")
    after = (
        Listing.objects.filter(pk=mine.pk).values().get(),
        User.objects.filter(pk=me.user.pk).values().get(),
        Wallet.objects.filter(user=me.user).values().get(),
    )
    assert after == before
    assert not Order.objects.exists()
    assert not Withdrawal.objects.exists()
    assert not Offer.objects.exists()


def _login(anon, openid: str):
    code = anon.post("/sandbox/wechat/login-code", {"openid": openid}).json()["code"]
    return anon.post("/api/auth/wechat-login", {"code": code})


@override_settings(OFFER_RATE_PER_MINUTE=3)
def test_rate_limits_answer_429_with_the_error_body(anon, make_client):
    # Sign-in: 10 a minute per openid (issue 18; tests/security/test_sign_in_limits.py).
    answers = [_login(anon, "rl-openid").status_code for _ in range(10)]
    assert answers == [200] * 10
    assert_error(_login(anon, "rl-openid"), 429, "rate_limited")

    # Offers: a flood across listings.
    buyer = make_client()
    AddressFactory(user=buyer.user, is_default=True)
    listings = [listing_on_sale(price_fen=10_000) for _ in range(4)]
    for listing in listings[:3]:
        assert buyer.post(f"/api/listings/{listing.pk}/offers", {"price": 5_000}).status_code == 201
    flood = buyer.post(f"/api/listings/{listings[3].pk}/offers", {"price": 5_000})
    assert_error(flood, 429, "rate_limited")

    # Uploads: 60 a minute per user.
    uploader = make_client()
    data = image_bytes(size=(8, 8))

    def upload():
        return uploader.client.post(
            "/api/uploads/images",
            {"file": upload_file(data)},
            headers={"Authorization": f"Bearer {uploader.token}"},
        )

    assert [upload().status_code for _ in range(60)] == [201] * 60
    assert_error(upload(), 429, "rate_limited")

    # Withdrawals: 10 an hour per user.
    seller = make_client()
    credit(seller.user, 100_000)
    account = make_account(seller.user)
    body = {"amount": 100, "account_id": account.pk}
    assert [seller.post("/api/wallet/withdrawals", body).status_code for _ in range(10)] == [
        201
    ] * 10
    assert_error(seller.post("/api/wallet/withdrawals", body), 429, "rate_limited")
    assert Withdrawal.objects.filter(user=seller.user).count() == 10


def test_oversized_json_is_413_before_it_is_read(client_of, settings):
    big = '{"nickname": "' + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + '"}'
    assert_error(client_of.patch("/api/me", big), 413, "payload_too_large")
    assert_error(client_of.post("/api/addresses", big), 413, "payload_too_large")
    # A lying Content-Length cannot get past the reader either.
    response = client_of.client.generic(
        "POST",
        "/api/addresses",
        big.encode(),
        content_type="application/json",
        headers={"Authorization": f"Bearer {client_of.token}"},
        CONTENT_LENGTH="10",
    )
    assert 400 <= response.status_code < 500
    assert client_of.get("/api/me").status_code == 200
