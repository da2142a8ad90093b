"""`Idempotency-Key` (issue 20, finding 6): a key names one request (method, path and body) of
one user; its in-flight claim is a lease, so a request killed mid-flight does not hold the key
for ever, while a duplicate arriving during the lease still gets 409."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.actions import idempotency as idempotency_actions
from marketplace.models.orders import IdempotencyRecord, Order
from tests.conftest import ApiClient, assert_error
from tests.marketplace.order_helpers import buyer_with_address, listing_on_sale, place_order
from tests.races import race

pytestmark = pytest.mark.django_db(transaction=True)


def _expire_in_flight(key: str, *, by: timedelta = timedelta(seconds=1)) -> None:
    """Moves an in-flight claim's clock back past the lease, as time passing would."""
    lease = timedelta(seconds=60)
    IdempotencyRecord.objects.filter(key=key).update(
        created_at=timezone.now() - lease - by, claimed_at=timezone.now() - lease - by
    )


def test_a_request_killed_mid_flight_frees_its_key_after_the_lease(make_client):
    buyer, address_id = buyer_with_address(make_client)
    listing = listing_on_sale()
    headers = {"Idempotency-Key": "killed-1"}
    body = {"listing_id": listing.pk, "address_id": address_id}
    # The first request claimed the key, then its process died: no answer, no clean-up.
    idempotency_actions.claim_key(
        user=buyer.user,
        scope="orders.create",
        key="killed-1",
        fingerprint=idempotency_actions.fingerprint(
            method="POST", path="/api/orders", body=_json(body)
        ),
    )

    # While the lease runs, a retry is a duplicate of a request that may still be running.
    assert_error(buyer.post("/api/orders", body, headers=headers), 409, "request_in_progress")
    assert not Order.objects.exists()

    _expire_in_flight("killed-1")
    retried = buyer.post("/api/orders", body, headers=headers)
    assert retried.status_code == 201, retried.content
    assert "Idempotent-Replayed" not in retried
    again = buyer.post("/api/orders", body, headers=headers)
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.content == retried.content
    assert Order.objects.count() == 1


def test_a_key_stuck_in_flight_before_leases_existed_is_freed(make_client):
    """A record left by a killed request on the code before this fix (no lease, no fingerprint)
    was `request_in_progress` for ever."""
    buyer, address_id = buyer_with_address(make_client)
    listing = listing_on_sale()
    IdempotencyRecord.objects.create(user=buyer.user, scope="orders.create", key="stuck")
    IdempotencyRecord.objects.filter(key="stuck").update(
        created_at=timezone.now() - timedelta(hours=1)
    )

    response = place_order(buyer, listing, address_id, headers={"Idempotency-Key": "stuck"})

    assert response.status_code == 201, response.content
    assert Order.objects.count() == 1


def test_the_lease_is_a_setting(make_client, settings):
    settings.IDEMPOTENCY_LEASE_SECONDS = 3600
    buyer, address_id = buyer_with_address(make_client)
    listing = listing_on_sale()
    body = {"listing_id": listing.pk, "address_id": address_id}
    idempotency_actions.claim_key(
        user=buyer.user,
        scope="orders.create",
        key="long",
        fingerprint=idempotency_actions.fingerprint(
            method="POST", path="/api/orders", body=_json(body)
        ),
    )
    _expire_in_flight("long")  # 61 s: past the default lease, well inside an hour
    response = buyer.post("/api/orders", body, headers={"Idempotency-Key": "long"})
    assert_error(response, 409, "request_in_progress")


def test_the_same_key_for_another_listing_is_refused_not_replayed(make_client):
    buyer, address_id = buyer_with_address(make_client)
    first_listing, second_listing = listing_on_sale(), listing_on_sale()
    headers = {"Idempotency-Key": "order-key"}

    first = place_order(buyer, first_listing, address_id, headers=headers)
    reused = place_order(buyer, second_listing, address_id, headers=headers)

    assert first.status_code == 201
    assert_error(reused, 422, "idempotency_key_reused")
    assert Order.objects.count() == 1
    # The first request with its key still replays, byte for byte.
    replay = place_order(buyer, first_listing, address_id, headers=headers)
    assert replay.status_code == 201 and replay.content == first.content
    assert replay["Idempotent-Replayed"] == "true"


def test_the_same_key_on_another_order_s_pay_is_refused(make_client):
    buyer, address_id = buyer_with_address(make_client)
    order_a = place_order(buyer, listing_on_sale(), address_id).json()["order_no"]
    order_b = place_order(buyer, listing_on_sale(), address_id).json()["order_no"]
    headers = {"Idempotency-Key": "pay-key"}

    paid_a = buyer.post(f"/api/orders/{order_a}/pay", headers=headers)
    reused = buyer.post(f"/api/orders/{order_b}/pay", headers=headers)

    assert paid_a.status_code == 200 and paid_a.json()["order_no"] == order_a
    body = assert_error(reused, 422, "idempotency_key_reused")
    assert order_a not in reused.content.decode() and "pay_params" not in body
    assert buyer.post(f"/api/orders/{order_a}/pay", headers=headers).content == paid_a.content


def test_the_same_body_written_differently_is_the_same_request(make_client):
    buyer, address_id = buyer_with_address(make_client)
    listing = listing_on_sale()
    headers = {"Idempotency-Key": "spacing"}
    first = buyer.post(
        "/api/orders",
        f'{{"listing_id": {listing.pk}, "address_id": {address_id}}}',
        headers=headers,
    )
    again = buyer.post(
        "/api/orders", f'{{"address_id":{address_id},"listing_id":{listing.pk}}}', headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert again.content == first.content and again["Idempotent-Replayed"] == "true"


def test_a_stored_error_answer_is_bound_to_its_request_too(make_client):
    buyer, address_id = buyer_with_address(make_client)
    listing = listing_on_sale()
    headers = {"Idempotency-Key": "err"}
    buyer.post("/api/orders", {"listing_id": listing.pk, "address_id": address_id})
    refused = place_order(buyer, listing, address_id, headers=headers)  # reserved now: 409
    assert_error(refused, 409)
    replay = place_order(buyer, listing, address_id, headers=headers)
    assert replay.content == refused.content and replay["Idempotent-Replayed"] == "true"
    reused = place_order(buyer, listing_on_sale(), address_id, headers=headers)
    assert_error(reused, 422, "idempotency_key_reused")
    # The refusal of a reuse is not an answer to the key: the first one still stands.
    assert IdempotencyRecord.objects.get(key="err").status_code == 409


def _json(body: dict) -> bytes:
    return json.dumps(body).encode()


@pytest.mark.postgres
def test_two_identical_requests_at_once_run_once(make_client):
    buyer, address_id = buyer_with_address(make_client)
    listing = listing_on_sale()
    token = buyer.token

    def post():
        response = ApiClient(token).post(
            "/api/orders",
            {"listing_id": listing.pk, "address_id": address_id},
            headers={"Idempotency-Key": "race"},
        )
        return response.status_code, response.json(), response.get("Idempotent-Replayed")

    for round_ in range(3):
        results = race(post, post)
        ran = [r for r in results if r[0] == 201 and r[2] is None]
        others = [r for r in results if r not in ran]
        if round_ == 0:
            assert len(ran) == 1, results
        else:
            assert not ran, results
        for status, body, replayed in others:
            assert (status == 201 and replayed == "true") or (
                status == 409 and body["code"] == "request_in_progress"
            ), results
    assert Order.objects.count() == 1


@pytest.mark.postgres
def test_two_retries_of_an_expired_claim_at_once_run_it_once(make_client):
    buyer, address_id = buyer_with_address(make_client)
    listing = listing_on_sale()
    body = {"listing_id": listing.pk, "address_id": address_id}
    idempotency_actions.claim_key(
        user=buyer.user,
        scope="orders.create",
        key="expired-race",
        fingerprint=idempotency_actions.fingerprint(
            method="POST", path="/api/orders", body=_json(body)
        ),
    )
    _expire_in_flight("expired-race")
    token = buyer.token

    def post():
        response = ApiClient(token).post(
            "/api/orders", body, headers={"Idempotency-Key": "expired-race"}
        )
        return response.status_code, response.json(), response.get("Idempotent-Replayed")

    results = race(post, post)
    ran = [r for r in results if r[0] == 201 and r[2] is None]
    assert len(ran) == 1, results
    ((status, answer, replayed),) = [r for r in results if r not in ran]
    assert (status == 201 and replayed == "true") or answer["code"] == "request_in_progress"
    assert Order.objects.count() == 1
