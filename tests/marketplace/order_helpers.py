"""Builders for order and payment tests: a listing on sale, a buyer with an address, and the
WeChat side of paying (the sandbox's user-side endpoint)."""

from marketplace.models import Category, Listing
from tests.conftest import ApiClient
from tests.factories import AddressFactory
from tests.marketplace.catalog_factories import make_listing


def listing_on_sale(*, seller=None, price_fen: int = 12_345, **kw) -> Listing:
    """A listing in the default category (`make_listing`), on sale unless `status` says."""
    root, _ = Category.objects.get_or_create(name="手机", parent=None)
    leaf, _ = Category.objects.get_or_create(name="苹果", parent=root)
    kw.setdefault("title", "九成新 iPhone 13")
    return make_listing(category=leaf, seller=seller, price_fen=price_fen, **kw)


def buyer_with_address(make_client) -> tuple[ApiClient, int]:
    client = make_client()
    address = AddressFactory(user=client.user, is_default=True)
    return client, address.pk


def place_order(client: ApiClient, listing: Listing, address_id: int, **kw):
    return client.post("/api/orders", {"listing_id": listing.pk, "address_id": address_id}, **kw)


def pay_in_wechat(client: ApiClient, order_no: str) -> dict:
    """The buyer taps pay: our API gives pay_params, the sandbox plays the WeChat app."""
    response = client.post(f"/api/orders/{order_no}/pay")
    assert response.status_code == 200, response.content
    package = response.json()["pay_params"]["package"]
    prepay_id = package.removeprefix("prepay_id=")
    paid = client.client.post(
        "/sandbox/wechat/pay", {"prepay_id": prepay_id}, content_type="application/json"
    )
    assert paid.status_code == 200, paid.content
    return paid.json()
