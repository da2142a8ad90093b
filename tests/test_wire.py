"""One clock format and one JSON encoding (project/wire.py): every time the API or the socket
emits is ISO 8601 in the platform's zone (+08:00, microseconds always written), the same instant
as stored; JSON is UTF-8, and the storefront cache changes no byte."""

import datetime as dt
import re

import pytest

from marketplace.models import Order
from marketplace.models.fulfilment import TrackingEvent
from marketplace.models.wallet import LedgerEntry, PayoutAccount, Withdrawal
from negotiation.models import Offer
from realtime.models import Event
from tests.marketplace.fulfilment_helpers import advance_parcel, shipped
from tests.marketplace.order_helpers import buyer_with_address, listing_on_sale, place_order
from tests.marketplace.wallet_helpers import credit, make_account

WIRE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+08:00$")


def assert_wire_time(text, moment: dt.datetime) -> None:
    assert isinstance(text, str) and WIRE_TIME.match(text), text
    assert dt.datetime.fromisoformat(text) == moment, (text, moment)


@pytest.mark.django_db
def test_listing_times(anon):
    listing = listing_on_sale()
    body = anon.get(f"/api/listings/{listing.pk}").json()
    listing.refresh_from_db()
    assert_wire_time(body["created_at"], listing.created_at)
    assert_wire_time(body["approved_at"], listing.approved_at)
    assert_wire_time(body["updated_at"], listing.updated_at)
    item = anon.get("/api/listings").json()["items"][0]
    assert_wire_time(item["created_at"], listing.created_at)


@pytest.mark.django_db
def test_order_times_in_rest_and_in_its_event(make_client):
    buyer, address_id = buyer_with_address(make_client)
    created = place_order(buyer, listing_on_sale(), address_id)
    assert created.status_code == 201, created.content
    order = Order.objects.get(order_no=created.json()["order_no"])
    for body in (
        created.json(),
        buyer.get(f"/api/orders/{order.order_no}").json(),
        buyer.get("/api/orders").json()["items"][0],
    ):
        assert_wire_time(body["created_at"], order.created_at)
        assert_wire_time(body["deadline_at"], order.deadline_at)
    event = Event.objects.get(user=buyer.user, type="order.status_changed")
    assert_wire_time(event.data["created_at"], order.created_at)
    assert_wire_time(event.data["deadline_at"], order.deadline_at)


@pytest.mark.django_db
def test_order_history_times(make_client):
    buyer, address_id = buyer_with_address(make_client)
    order_no = place_order(buyer, listing_on_sale(), address_id).json()["order_no"]
    history = buyer.get(f"/api/orders/{order_no}").json()["history"]
    stored = Order.objects.get(order_no=order_no).history.get()
    assert len(history) == 1
    assert_wire_time(history[0]["at"], stored.at)


@pytest.mark.django_db
def test_offer_times(make_client):
    seller = make_client()
    listing = listing_on_sale(seller=seller.user, price_fen=10_000)
    buyer, _ = buyer_with_address(make_client)
    created = buyer.post(f"/api/listings/{listing.pk}/offers", {"price": 9_000})
    assert created.status_code == 201, created.content
    offer = Offer.objects.get(pk=created.json()["id"])
    for body in (created.json(), buyer.get("/api/offers").json()["items"][0]):
        assert_wire_time(body["created_at"], offer.created_at)
        assert_wire_time(body["expires_at"], offer.expires_at)
    event = Event.objects.get(user=seller.user, type="offer.created")
    assert_wire_time(event.data["expires_at"], offer.expires_at)


@pytest.mark.django_db
def test_wallet_entry_account_and_withdrawal_times(client_of, user):
    credit(user, 5_000)
    account = make_account(user)
    made = client_of.post("/api/wallet/withdrawals", {"amount": 1_000, "account_id": account.pk})
    assert made.status_code == 201, made.content
    withdrawal = Withdrawal.objects.get(pk=made.json()["id"])
    entries = client_of.get("/api/wallet/entries").json()["items"]
    stored = {entry.pk: entry for entry in LedgerEntry.objects.filter(wallet__user=user)}
    assert len(entries) == len(stored) == 2
    for entry in entries:
        assert_wire_time(entry["at"], stored[entry["id"]].created_at)
    for body in (made.json(), client_of.get(f"/api/wallet/withdrawals/{withdrawal.pk}").json()):
        assert_wire_time(body["created_at"], withdrawal.created_at)
        assert_wire_time(body["account"]["created_at"], account.created_at)
    listed = client_of.get("/api/wallet/accounts").json()[0]
    assert_wire_time(listed["created_at"], PayoutAccount.objects.get(pk=account.pk).created_at)


@pytest.mark.django_db(transaction=True)
def test_tracking_event_times(make_client):
    buyer, _, order_no = shipped(make_client)
    for _ in range(2):
        assert advance_parcel(buyer).status_code == 200
    stored = list(
        TrackingEvent.objects.filter(order__order_no=order_no).order_by("-occurred_at", "-id")
    )
    tracking = buyer.get(f"/api/orders/{order_no}/tracking").json()
    assert len(tracking["events"]) == len(stored) == 2
    for shown, event in zip(tracking["events"], stored, strict=True):
        assert_wire_time(shown["time"], event.occurred_at)


@pytest.mark.django_db(transaction=True)
def test_shipping_update_event_times(make_client):
    buyer, _, order_no = shipped(make_client)
    assert advance_parcel(buyer).status_code == 200
    stored = TrackingEvent.objects.get(order__order_no=order_no)
    event = Event.objects.filter(user=buyer.user, type="order.shipping_update").latest("seq")
    assert_wire_time(event.data["events"][0]["time"], stored.occurred_at)


@pytest.mark.django_db
def test_openapi_document_is_valid_and_documents_times(anon):
    from openapi_spec_validator import validate

    spec = anon.get("/api/openapi.json").json()
    validate(spec)
    schemas = spec["components"]["schemas"]
    date_time = {"type": "string", "format": "date-time"}
    for name, field in [
        ("ListingDetailOut", "created_at"),
        ("OrderOut", "created_at"),
        ("HistoryOut", "at"),
        ("OfferOut", "expires_at"),
        ("EntryOut", "at"),
        ("TrackingEventOut", "time"),
        ("EventOut", "at"),
    ]:
        shown = schemas[name]["properties"][field]
        assert {key: shown.get(key) for key in date_time} == date_time, (name, field, shown)
    assert date_time in schemas["OrderOut"]["properties"]["paid_at"]["anyOf"]


@pytest.mark.django_db
def test_storefront_cached_and_uncached_bytes_are_identical_utf8(make_client, anon):
    title = "九成新 iPhone 13 国行"
    seller = make_client()
    listing_on_sale(seller=seller.user, title=title)
    cached_first = anon.get("/api/listings")
    cached_again = anon.get("/api/listings")
    # The seller's own list is rendered by Ninja itself, never cached: the same page, same bytes.
    uncached = seller.get("/api/me/listings")
    assert uncached.status_code == cached_first.status_code == 200
    assert cached_first.content == cached_again.content == uncached.content
    assert title.encode("utf-8") in cached_first.content
    assert b"\\u" not in cached_first.content
    assert cached_first["Content-Type"] == uncached["Content-Type"]
    assert cached_first["Content-Type"] == "application/json; charset=utf-8"


@pytest.mark.django_db
def test_an_idempotent_replay_is_rendered_like_the_first_answer(make_client):
    buyer, address_id = buyer_with_address(make_client)
    listing = listing_on_sale(title="九成新 iPhone 13")
    headers = {"Idempotency-Key": "order-1"}
    first = place_order(buyer, listing, address_id, headers=headers)
    again = place_order(buyer, listing, address_id, headers=headers)
    assert first.status_code == again.status_code == 201, again.content
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert "九成新".encode() in again.content and b"\\u" not in again.content
    assert again["Content-Type"] == first["Content-Type"]
