"""Ownership matrix: every operation in the OpenAPI document that takes an id in its path,
called by a signed-in stranger with the owner's real ids, answers 404 and changes nothing.

Driven from /api/openapi.json so a new endpoint is covered the day it is added: an id-taking
operation that needs a body fails here until it gets an example body below, and a public one
must be named in PUBLIC with the reason.
"""

import pytest

from marketplace.models import Address, Listing, Order
from marketplace.models.wallet import PayoutAccount, Withdrawal
from negotiation.models import Message, Offer
from tests.conftest import assert_error
from tests.factories import AddressFactory
from tests.marketplace.catalog_factories import image_bytes, upload_file
from tests.marketplace.fulfilment_helpers import MP4_BYTES, TRACKING_NO
from tests.marketplace.order_helpers import listing_on_sale, pay_in_wechat, place_order
from tests.marketplace.wallet_helpers import credit, make_account

pytestmark = pytest.mark.django_db

# Operations whose ids are public on purpose.
PUBLIC = {
    ("GET", "/api/users/{user_id}"): "public seller profile",
    ("GET", "/api/listings/{listing_id}"): "approved listings are public (storefront)",
    ("POST", "/api/listings/{listing_id}/offers"): "any buyer may bargain on a listing on sale",
    ("GET", "/api/listings/{listing_id}/share"): "a published listing's share card is public",
    ("POST", "/api/listings/{listing_id}/conversation"): "any buyer may ask about a listing",
    ("POST", "/api/users/{user_id}/block"): "anyone may block anyone (it reveals nothing)",
    ("DELETE", "/api/users/{user_id}/block"): "unblocking someone one never blocked is a no-op",
    ("POST", "/api/listings/{listing_id}/favorite"): "anyone may want a published listing",
    ("DELETE", "/api/listings/{listing_id}/favorite"): "removes only the caller's own favourite",
    ("POST", "/api/users/{user_id}/follow"): "anyone may follow a seller",
    ("DELETE", "/api/users/{user_id}/follow"): "removes only the caller's own follow",
    ("GET", "/api/users/{user_id}/listings"): "the public seller page",
    ("GET", "/api/users/{user_id}/reviews"): "the public seller page",
}

# A valid body for each id-taking operation that needs one, so the 404 cannot be a 422 that
# happened to come first.
BODIES = {
    ("PATCH", "/api/addresses/{address_id}"): {"name": "李四"},
    ("PATCH", "/api/listings/{listing_id}"): {"price": 9_000},
    ("POST", "/api/orders/{order_no}/reject-video"): {"reason": "和描述不符"},
    ("POST", "/api/orders/{order_no}/ship"): {
        "tracking_no": TRACKING_NO,
        "carrier_code": "yuantong",
    },
    ("POST", "/api/orders/{order_no}/dispute"): {"reason": "收到的东西坏了"},
    ("POST", "/api/orders/{order_no}/review"): {"rating": 5, "comment": "很好"},
    ("POST", "/api/offers/{offer_id}/counter"): {"price": 9_500},
    ("PUT", "/api/listings/{listing_id}/bargain-floor"): {"floor_price": 5_000},
    ("POST", "/api/conversations/{conversation_id}/messages"): {
        "kind": "text",
        "text": "还在吗",
        "client_id": "stranger-1",
    },
    ("POST", "/api/conversations/{conversation_id}/read"): {"up_to": 1},
}
MULTIPART = {
    ("POST", "/api/orders/{order_no}/video"): ("file", MP4_BYTES, "item.mp4", "video/mp4"),
}


def _id_operations(schema: dict) -> list[tuple[str, str, dict]]:
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            params = [p for p in operation.get("parameters", []) if p["in"] == "path"]
            if params:
                found.append((method.upper(), path, operation))
    return found


@pytest.fixture
def victim_world(make_client):
    """The victim owns one of everything; `other` is the counterpart of its trades."""
    victim = make_client()
    other = make_client()
    address = AddressFactory(user=victim.user, is_default=True)
    AddressFactory(user=other.user, is_default=True)
    listing = listing_on_sale(seller=victim.user, price_fen=20_000)
    bought = listing_on_sale(seller=other.user, price_fen=15_000)
    order_no = place_order(victim, bought, address.pk).json()["order_no"]
    pay_in_wechat(victim, order_no)
    offer = other.post(f"/api/listings/{listing.pk}/offers", {"price": 18_000})
    assert offer.status_code == 201, offer.content
    conversation = other.post(f"/api/listings/{listing.pk}/conversation")
    assert conversation.status_code == 200, conversation.content
    credit(victim.user, 50_000)
    account = make_account(victim.user)
    withdrawal = victim.post("/api/wallet/withdrawals", {"amount": 1_000, "account_id": account.pk})
    assert withdrawal.status_code == 201, withdrawal.content
    return {
        "address_id": address.pk,
        "listing_id": listing.pk,
        "order_no": order_no,
        "offer_id": offer.json()["id"],
        "account_id": account.pk,
        "withdrawal_id": withdrawal.json()["id"],
        "user_id": victim.user.pk,
        "conversation_id": conversation.json()["id"],
        # The offer's entry in the thread.
        "message_id": Message.objects.filter(conversation_id=conversation.json()["id"])
        .values_list("pk", flat=True)
        .first(),
    }


def _snapshot(ids: dict) -> dict:
    return {
        "address": Address.objects.filter(pk=ids["address_id"]).values().first(),
        "listing": Listing.objects.filter(pk=ids["listing_id"]).values().first(),
        "order": Order.objects.filter(order_no=ids["order_no"]).values().first(),
        "offer": Offer.objects.filter(pk=ids["offer_id"]).values().first(),
        "account": PayoutAccount.objects.filter(pk=ids["account_id"]).values().first(),
        "withdrawal": Withdrawal.objects.filter(pk=ids["withdrawal_id"]).values().first(),
    }


def test_every_id_taking_operation_is_404_to_a_stranger_and_changes_nothing(
    anon, make_client, victim_world
):
    schema = anon.get("/api/openapi.json").json()
    operations = _id_operations(schema)
    assert len(operations) >= 25, "the document lost its id-taking operations"
    stranger = make_client()
    AddressFactory(user=stranger.user, is_default=True)
    before = _snapshot(victim_world)
    checked = []
    for method, path, operation in operations:
        key = (method, path)
        if key in PUBLIC:
            continue
        assert operation.get("security"), f"{method} {path} takes an id but needs no sign-in"
        url = path
        for name in (p["name"] for p in operation["parameters"] if p["in"] == "path"):
            assert name in victim_world, f"no owned object for path parameter {name!r}"
            url = url.replace("{" + name + "}", str(victim_world[name]))
        if key in MULTIPART:
            field, data, filename, content_type = MULTIPART[key]
            response = stranger.client.post(
                url,
                {field: upload_file(data, filename, content_type)},
                headers={"Authorization": f"Bearer {stranger.token}"},
            )
        else:
            needs_body = operation.get("requestBody", {}).get("required", False)
            assert key in BODIES or not needs_body, f"add an example body for {method} {path}"
            response = stranger.request(method, url, BODIES.get(key))
        assert_error(response, 404)
        checked.append(key)
    assert _snapshot(victim_world) == before
    # The core of the matrix, named so that a rename cannot silently drop it.
    for must in [
        ("PATCH", "/api/addresses/{address_id}"),
        ("DELETE", "/api/addresses/{address_id}"),
        ("GET", "/api/orders/{order_no}"),
        ("POST", "/api/orders/{order_no}/cancel"),
        ("POST", "/api/orders/{order_no}/video"),
        ("PATCH", "/api/listings/{listing_id}"),
        ("POST", "/api/listings/{listing_id}/off-shelf"),
        ("PUT", "/api/listings/{listing_id}/bargain-floor"),
        ("POST", "/api/offers/{offer_id}/accept"),
        ("POST", "/api/offers/{offer_id}/decline"),
        ("POST", "/api/offers/{offer_id}/counter"),
        ("POST", "/api/offers/{offer_id}/withdraw"),
        ("DELETE", "/api/wallet/accounts/{account_id}"),
        ("GET", "/api/wallet/withdrawals/{withdrawal_id}"),
        ("GET", "/api/conversations/{conversation_id}"),
        ("GET", "/api/conversations/{conversation_id}/messages"),
        ("POST", "/api/conversations/{conversation_id}/messages"),
        ("POST", "/api/conversations/{conversation_id}/read"),
        ("GET", "/api/conversations/{conversation_id}/messages/{message_id}"),
    ]:
        assert must in checked, must


def test_a_pending_listing_is_404_to_everyone_but_its_seller(anon, make_client):
    seller = make_client()
    listing = listing_on_sale(seller=seller.user, status="pending_review")
    Listing.objects.filter(pk=listing.pk).update(approved_at=None)
    assert_error(make_client().get(f"/api/listings/{listing.pk}"), 404)
    assert_error(anon.get(f"/api/listings/{listing.pk}"), 404)
    assert seller.get(f"/api/listings/{listing.pk}").status_code == 200


def test_another_users_upload_cannot_be_attached_to_my_listing(make_client):
    owner, thief = make_client(), make_client()
    response = owner.client.post(
        "/api/uploads/images",
        {"file": upload_file(image_bytes())},
        headers={"Authorization": f"Bearer {owner.token}"},
    )
    assert response.status_code == 201, response.content
    upload_id = response.json()["id"]
    listing = listing_on_sale(seller=thief.user)
    category_id = listing.category_id
    body = {
        "category_id": category_id,
        "title": "偷来的图",
        "description": "不是我的图片",
        "features": [],
        "image_ids": [upload_id],
        "price": 1_000,
    }
    created = thief.post("/api/listings", body)
    assert 400 <= created.status_code < 500, created.content
    assert_error(created, created.status_code)
    assert not Listing.objects.filter(title="偷来的图").exists()
    patched = thief.patch(f"/api/listings/{listing.pk}", {"image_ids": [upload_id]})
    assert_error(patched, patched.status_code)
    assert 400 <= patched.status_code < 500
