"""Issue 18: the listing fields buyers expect, through the HTTP API. Original price (shown
only), shipping (0 = 包邮) paid on top of the item price with commission on the price alone and
a full refund returning both, offers on the item price, the seller's city with a 同城 filter,
condition as a fixed choice."""

import pytest

from marketplace.actions.fulfilment import settle_dispute
from marketplace.models import Listing, ListingStatus, Order
from marketplace.models.orders import Refund
from marketplace.models.wallet import Wallet
from marketplace.money import sale_split
from sandbox.models import SandboxRefund, SandboxTransaction
from tests.conftest import assert_error
from tests.factories import AddressFactory, StaffFactory
from tests.marketplace.catalog_factories import category_tree, image_bytes, post_upload
from tests.marketplace.fulfilment_helpers import post_video
from tests.marketplace.order_helpers import (
    buyer_with_address,
    listing_on_sale,
    pay_in_wechat,
    place_order,
)

pytestmark = pytest.mark.django_db(transaction=True)

SHENZHEN, SHANGHAI = "440300", "310100"


@pytest.fixture
def cats(db):
    return category_tree()


def _publish(client, cats, **extra):
    upload = post_upload(client, image_bytes())
    assert upload.status_code == 201, upload.content
    body = {
        "category_id": cats["apple"].pk,
        "title": "九成新 iPhone 13",
        "description": "自用一年，无磕碰。",
        "image_ids": [upload.json()["id"]],
        "price": 300_000,
        **extra,
    }
    return client.post("/api/listings", body)


# --- the fields through the API --------------------------------------------------------------


def test_a_listing_carries_original_price_shipping_city_and_condition(make_client, cats, anon):
    seller = make_client()
    response = _publish(
        seller,
        cats,
        original_price=599_900,
        shipping_fee=1_200,
        city_code=SHENZHEN,
        condition="like_new",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["original_price"], body["shipping_fee"], body["city_code"], body["condition"]) == (
        599_900,
        1_200,
        SHENZHEN,
        "like_new",
    )
    Listing.objects.filter(pk=body["id"]).update(status=ListingStatus.ON_SALE)
    public = anon.get(f"/api/listings/{body['id']}").json()
    assert (public["original_price"], public["shipping_fee"], public["condition"]) == (
        599_900,
        1_200,
        "like_new",
    )
    edited = seller.patch(f"/api/listings/{body['id']}", {"shipping_fee": 0, "city_code": SHANGHAI})
    assert edited.status_code == 200, edited.content
    assert (edited.json()["shipping_fee"], edited.json()["city_code"]) == (0, SHANGHAI)
    # Shipping and city are not content: the listing stays on sale.
    assert edited.json()["status"] == "on_sale"


def test_defaults_free_shipping_no_original_price_and_the_default_address_city(make_client, cats):
    seller = make_client()
    AddressFactory(user=seller.user, is_default=True, city_code=SHENZHEN)
    body = _publish(seller, cats).json()
    assert (body["original_price"], body["shipping_fee"], body["city_code"], body["condition"]) == (
        None,
        0,
        SHENZHEN,
        "",
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"shipping_fee": -1},
        {"shipping_fee": 100_001},
        {"shipping_fee": 1.5},
        {"original_price": 0},
        {"city_code": "深圳"},
        {"city_code": "440305"},  # a district, not a city
        {"condition": "九成新"},
        {"condition": "used"},
    ],
)
def test_bad_listing_fields_are_refused_with_422(make_client, cats, extra):
    assert_error(_publish(make_client(), cats, **extra), 422)


def test_the_city_and_condition_filters(make_client, cats, anon):
    shenzhen = listing_on_sale(title="深圳的", city_code=SHENZHEN, condition="new")
    shanghai = listing_on_sale(title="上海的", city_code=SHANGHAI, condition="heavy_wear")

    def ids(**query):
        response = anon.get("/api/listings", query)
        assert response.status_code == 200, response.content
        return [item["id"] for item in response.json()["items"]]

    assert ids(city=SHENZHEN) == [shenzhen.pk]
    assert ids(city=SHANGHAI) == [shanghai.pk]
    assert ids(condition="heavy_wear") == [shanghai.pk]
    assert sorted(ids()) == sorted([shenzhen.pk, shanghai.pk])
    assert_error(anon.get("/api/listings", {"city": "abc"}), 422)
    assert_error(anon.get("/api/listings", {"condition": "broken"}), 422)


def test_an_address_records_its_city_code(client_of):
    body = {
        "name": "张三",
        "phone": "13800138000",
        "province": "广东省",
        "city": "深圳市",
        "district": "南山区",
        "detail": "科技园 1 号",
        "city_code": SHENZHEN,
    }
    response = client_of.post("/api/addresses", body)
    assert response.status_code == 201, response.content
    assert response.json()["city_code"] == SHENZHEN
    assert_error(client_of.post("/api/addresses", {**body, "city_code": "x"}), 422)


# --- money: shipping on top, commission on the price only --------------------------------------


def _paid(make_client, *, price_fen=10_000, shipping_fen=1_000):
    buyer, address_id = buyer_with_address(make_client)
    seller = make_client()
    listing = listing_on_sale(
        seller=seller.user, price_fen=price_fen, shipping_fee_fen=shipping_fen
    )
    created = place_order(buyer, listing, address_id)
    assert created.status_code == 201, created.content
    order_no = created.json()["order_no"]
    pay_in_wechat(buyer, order_no)
    return buyer, seller, order_no


def test_the_buyer_pays_price_plus_shipping_and_commission_is_on_the_price(make_client):
    buyer, _, order_no = _paid(make_client)
    assert SandboxTransaction.objects.get(out_trade_no=order_no).total_fen == 11_000
    body = buyer.get(f"/api/orders/{order_no}").json()
    assert (body["price"], body["shipping_fee"], body["total"]) == (10_000, 1_000, 11_000)
    assert body["status"] == "awaiting_video"
    assert body["commission"] == 500  # 5 % of the price, not of 11 000


def test_a_full_refund_returns_the_price_and_the_shipping(make_client):
    buyer, _, order_no = _paid(make_client)
    response = buyer.post(f"/api/orders/{order_no}/cancel")
    assert response.status_code == 200, response.content
    refund = Refund.objects.get(order__order_no=order_no)
    assert refund.amount_fen == 11_000
    assert SandboxRefund.objects.get(out_refund_no=refund.out_refund_no).refund_fen == 11_000
    assert response.json()["status"] == "cancelled"


def test_the_seller_is_credited_price_minus_commission_plus_shipping(make_client):
    buyer, seller, order_no = _paid(make_client)
    assert post_video(seller, order_no).status_code == 200
    assert buyer.post(f"/api/orders/{order_no}/confirm-video").status_code == 200
    shipped = seller.post(
        f"/api/orders/{order_no}/ship",
        {"tracking_no": "YT7712345678901", "carrier_code": "yuantong"},
    )
    assert shipped.status_code == 200, shipped.content
    assert buyer.post(f"/api/orders/{order_no}/confirm-receipt").status_code == 200
    assert Wallet.objects.get(user=seller.user).available_fen == 10_000 - 500 + 1_000


@pytest.mark.parametrize(
    ("refund_fen", "status", "seller_credit"),
    [
        (11_000, "cancelled", 0),  # everything back
        (3_000, "completed", 6_650 + 1_000),  # off the item price: commission on 7 000
        (10_500, "completed", 500),  # the item in full and half the shipping
        (0, "completed", 9_500 + 1_000),
    ],
)
def test_dispute_refunds_come_off_the_item_price_first(
    make_client, refund_fen, status, seller_credit
):
    buyer, seller, order_no = _paid(make_client)
    assert post_video(seller, order_no).status_code == 200
    buyer.post(f"/api/orders/{order_no}/confirm-video")
    seller.post(
        f"/api/orders/{order_no}/ship",
        {"tracking_no": "YT7712345678901", "carrier_code": "yuantong"},
    )
    assert buyer.post(f"/api/orders/{order_no}/dispute", {"reason": "少了配件"}).status_code == 200
    order = Order.objects.get(order_no=order_no)
    settle_dispute(staff=StaffFactory(), order_id=order.pk, refund_fen=refund_fen, note="协商")
    assert Order.objects.get(pk=order.pk).status == status
    wallet = Wallet.objects.filter(user=seller.user).first()
    assert (wallet.available_fen if wallet else 0) == seller_credit


def test_an_offer_is_on_the_item_price_and_the_shipping_is_added(make_client):
    buyer, address_id = buyer_with_address(make_client)
    seller = make_client()
    listing = listing_on_sale(seller=seller.user, price_fen=10_000, shipping_fee_fen=800)
    made = buyer.post(f"/api/listings/{listing.pk}/offers", {"price": 9_000})
    assert made.status_code == 201, made.content
    # Below the item price is what matters, not below price + shipping.
    assert_error(
        buyer.post(f"/api/listings/{listing.pk}/offers", {"price": 10_500}),
        422,
        "price_not_below_listing",
    )
    accepted = seller.post(f"/api/offers/{made.json()['id']}/accept")
    assert accepted.status_code == 200, accepted.content
    order = buyer.get(f"/api/orders/{accepted.json()['order_no']}").json()
    assert (order["price"], order["shipping_fee"], order["total"]) == (9_000, 800, 9_800)


@pytest.mark.parametrize(
    ("price", "shipping", "refunded", "rate"),
    [(10_000, 1_000, 0, 500), (10_000, 1_000, 3_333, 500), (10_001, 999, 10_500, 555),
     (1, 0, 0, 5_000), (12_345, 678, 13_023, 500), (99, 1, 50, 1)],
)  # fmt: skip
def test_the_split_with_shipping_adds_up_exactly(price, shipping, refunded, rate):
    commission, seller = sale_split(
        price_fen=price, shipping_fee_fen=shipping, refunded_fen=refunded, rate_bp=rate
    )
    assert commission + seller + refunded == price + shipping
    assert commission == (max(price - refunded, 0) * rate + 5_000) // 10_000
    with pytest.raises(ValueError):
        sale_split(price_fen=price, shipping_fee_fen=shipping, refunded_fen=price + shipping + 1,
                   rate_bp=rate)  # fmt: skip
