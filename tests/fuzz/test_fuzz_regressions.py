"""Regressions for what the fuzzer found. NUL bytes (which PostgreSQL text cannot hold) in paths,
queries and bodies are client errors, never 500s (first seen on the Kuaidi100 push)."""

import pytest

from tests.conftest import assert_error
from tests.factories import AddressFactory

pytestmark = pytest.mark.django_db

NUL = "%00"


def test_nul_in_order_numbers_and_queries_is_a_client_error(anon, make_client):
    me = make_client()
    AddressFactory(user=me.user, is_default=True)
    for path in [
        f"/api/logistics/kuaidi100/notify?order=M1{NUL}",
        f"/api/orders/M1{NUL}/cancel",
    ]:
        response = anon.post(path, "") if "notify" in path else me.post(path)
        assert 400 <= response.status_code < 500, (path, response.status_code)
    for path in [
        f"/api/orders/M1{NUL}",
        f"/api/orders/M1{NUL}/tracking",
        f"/api/listings?q=a{NUL}b",
        f"/api/orders?status=a{NUL}",
        f"/api/offers?status=a{NUL}",
        f"/api/me/listings?status=a{NUL}",
        f"/api/listings?cursor=a{NUL}",
    ]:
        response = me.get(path)
        assert response.status_code < 500, (path, response.status_code)


def test_nul_in_json_strings_is_a_client_error(make_client):
    me = make_client()
    bodies = [
        ("PATCH", "/api/me", {"nickname": "a\x00b"}),
        ("POST", "/api/addresses", {"name": "a\x00", "phone": "13800138000", "province": "p",
                                    "city": "c", "district": "d", "detail": "x"}),
    ]  # fmt: skip
    for method, path, body in bodies:
        response = me.request(method, path, body)
        assert 400 <= response.status_code < 500, (path, response.status_code, response.content)


@pytest.mark.parametrize(
    "path", ["/api/payments/wechat/notify", "/api/payments/wechat/refund-notify"]
)
def test_a_form_body_on_a_signed_json_endpoint_is_a_client_error(anon, path):
    """Found by the fuzzer: multipart without a boundary (and multipart at all, since parsing it
    made the body unreadable for the signature check) answered 500."""
    bare = anon.client.generic("POST", path, b"--x\r\n", content_type="multipart/form-data")
    assert_error(bare, 400)
    form = anon.client.post(path, {"a": "b"})  # a well-formed multipart form
    assert 400 <= form.status_code < 500, form.content


def test_image_ids_past_bigint_are_422_not_500(make_client):
    """Found by the fuzzer (FUZZ_RANDOM=1): PATCH with an image id of -10**25 overflowed SQLite."""
    from tests.marketplace.order_helpers import listing_on_sale

    me = make_client()
    listing = listing_on_sale(seller=me.user)
    for ids in ([-(10**25)], [10**25], [0]):
        response = me.patch(f"/api/listings/{listing.pk}", {"image_ids": ids})
        assert_error(response, 422, "validation_error")
