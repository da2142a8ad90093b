"""GET /api/asyncapi.json: valid AsyncAPI 3, covering every event type the code can emit and every
action the consumer accepts, and real frames (over the socket and from a whole order's life)
validate against it."""

import json
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from marketplace.actions.catalog import approve_listing
from marketplace.actions.social import fan_out_broadcast
from marketplace.actions.wallet import mark_withdrawal_paid
from marketplace.models import ListingBroadcast, ListingStatus
from negotiation.actions import handle_offer_expiry
from negotiation.models import Offer
from realtime import consumers, dispatch
from realtime.asyncapi import CHANNEL, SOCKET_ERROR_CODES, build_document
from realtime.db import database_sync_to_async
from realtime.models import Event
from realtime.push import EVENT_TYPES, event_frame
from tests.factories import AddressFactory, StaffFactory
from tests.marketplace.fulfilment_helpers import TRACKING_NO, advance_parcel, shipped
from tests.marketplace.order_helpers import listing_on_sale
from tests.marketplace.wallet_helpers import make_account
from tests.negotiation.helpers import buyer as make_buyer
from tests.negotiation.helpers import offer as post_offer
from tests.negotiation.helpers import seller_and_listing
from tests.realtime.asyncapi_frames import document, validate
from tests.realtime.conftest import TIMEOUT, connected, receive, send

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "sdk" / "scripts" / "validate-asyncapi.mjs"
PARSER = ROOT / "sdk" / "node_modules" / "@asyncapi" / "parser"


def _messages(doc: dict, marker: str) -> set[str]:
    return {
        message[marker]
        for message in doc["channels"][CHANNEL]["messages"].values()
        if marker in message
    }


def test_the_document_is_served_to_anyone_as_asyncapi_3(anon, db):
    response = anon.get("/api/asyncapi.json")
    assert response.status_code == 200, response.content
    doc = response.json()
    assert doc["asyncapi"].startswith("3.")
    assert doc["channels"][CHANNEL]["address"] == "/ws/"
    assert doc["servers"]["default"]["protocol"] in {"ws", "wss"}
    assert set(doc["channels"][CHANNEL]["x-close-codes"]) == {"4401", "4403", "4408"}


@pytest.mark.skipif(
    not (shutil.which("node") and PARSER.exists()),
    reason="needs node and sdk/node_modules (make test runs npm ci in sdk/ first)",
)
def test_the_asyncapi_parser_accepts_the_document(tmp_path):
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(build_document()))
    result = subprocess.run(
        ["node", str(VALIDATOR), str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    assert {f"receive.{type}" for type in EVENT_TYPES} <= set(parsed["operations"])


def test_every_emittable_event_type_has_its_typed_message():
    doc = document()
    assert _messages(doc, "x-event") == EVENT_TYPES
    schemas = doc["components"]["schemas"]
    for type in EVENT_TYPES:
        frame = schemas[doc["channels"][CHANNEL]["messages"][type]["payload"]["$ref"].split("/")[-1]]
        assert frame["properties"]["type"] == {"type": "string", "const": type}
        # `data` is a REST schema, not an open object.
        data_ref = frame["properties"]["data"]["$ref"].split("/")[-1]
        assert schemas[data_ref]["properties"], type


def test_every_action_the_consumer_accepts_is_a_message_with_its_reply():
    doc = document()
    # The consumer answers ping and resume itself and hands the rest to the registry.
    source = Path(consumers.__file__).read_text()
    builtin = set(re.findall(r'action == "([a-z.]+)"', source))
    assert builtin == {"ping", "resume"}
    accepted = builtin | set(dispatch.registered_actions())
    assert _messages(doc, "x-action") == accepted
    replies = _messages(doc, "x-reply-to")
    assert replies == accepted - {"ping"}
    for name in accepted:
        operation = doc["operations"][f"send.{name}"]
        assert operation["action"] == "send" and operation["reply"]["messages"], name


def test_every_error_code_the_consumer_sends_is_listed():
    source = Path(consumers.__file__).read_text()
    sent = set(re.findall(r'FrameError\(\s*"([a-z_]+)"', source))
    sent |= set(re.findall(r'_send_error\(\s*ref,\s*"([a-z_]+)"', source))
    assert sent and sent <= set(SOCKET_ERROR_CODES), sent - set(SOCKET_ERROR_CODES)


def test_the_offline_page_renders_the_same_document(anon, db):
    response = anon.get("/api/asyncapi")
    assert response.status_code == 200
    page = response.content.decode()
    assert "<script" not in page  # nothing to load, from anywhere
    for type in EVENT_TYPES | set(dispatch.registered_actions()):
        assert f"<code>{type}</code>" in page, type


def test_swagger_ui_is_served_from_our_own_static_files(anon, db):
    page = anon.get("/api/docs").content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(src.endswith("swagger-ui-bundle.js") for src in sources), sources
    assert all(src.startswith("/static/") for src in sources), sources


# --- real frames ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_every_event_of_an_order_life_and_of_bargaining_validates(make_client):
    # An order from payment to credit, with tracking; the listing review; a withdrawal paid.
    buyer, seller, order_no = shipped(make_client)
    assert advance_parcel(buyer, TRACKING_NO).status_code == 200
    assert buyer.post(f"/api/orders/{order_no}/confirm-receipt").status_code == 200
    account = make_account(seller.user)
    withdrawal = seller.post(
        "/api/wallet/withdrawals", {"amount": 1_000, "account_id": account.pk}
    ).json()
    mark_withdrawal_paid(staff=StaffFactory(), withdrawal_id=withdrawal["id"], reference="T1")
    listing = listing_on_sale(status=ListingStatus.PENDING_REVIEW)
    approve_listing(staff=StaffFactory(), listing_id=listing.pk)
    # Offers: created, countered, accepted (declining the rival), withdrawn, expired.
    other_seller, bargained = seller_and_listing(make_client)
    first, second = make_buyer(make_client), make_buyer(make_client)
    mine = post_offer(first, bargained, 7_000)
    rival = post_offer(second, bargained, 6_000)
    assert other_seller.post(f"/api/offers/{mine['id']}/counter", {"price": 9_000}).status_code == 200
    assert first.post(f"/api/offers/{mine['id']}/accept").status_code == 200
    assert Offer.objects.get(pk=rival["id"]).status == "declined"
    third_listing = listing_on_sale(seller=other_seller.user, price_fen=10_000)
    withdrawn = post_offer(second, third_listing, 5_000)
    assert second.post(f"/api/offers/{withdrawn['id']}/withdraw").status_code == 200
    expiring = post_offer(first, third_listing, 5_000)
    handle_offer_expiry(offer_id=expiring["id"], now=timezone.now() + timedelta(days=30))
    # Conversations: each offer move above wrote message.created; a read receipt.
    thread = first.get("/api/conversations").json()["items"][0]
    last = thread["last_message"]["id"]
    assert first.post(f"/api/conversations/{thread['id']}/read", {"up_to": last}).status_code == 200
    # Social news: a price drop and a take-down to a favouriter, a new listing to a follower
    # (the fan-outs run after commit, which this test's transaction never does: run them here).
    fan = make_buyer(make_client)
    wanted = listing_on_sale(seller=other_seller.user, price_fen=20_000)
    assert fan.post(f"/api/listings/{wanted.pk}/favorite").status_code == 200
    assert other_seller.patch(f"/api/listings/{wanted.pk}", {"price": 18_000}).status_code == 200
    assert other_seller.post(f"/api/listings/{wanted.pk}/off-shelf").status_code == 200
    assert fan.post(f"/api/users/{other_seller.user.pk}/follow").status_code == 200
    fresh = listing_on_sale(seller=other_seller.user, status=ListingStatus.PENDING_REVIEW)
    approve_listing(staff=StaffFactory(), listing_id=fresh.pk)
    for broadcast_id in ListingBroadcast.objects.values_list("pk", flat=True):
        fan_out_broadcast(broadcast_id=broadcast_id)

    seen = set()
    for event in Event.objects.order_by("user_id", "seq"):
        # The frame as the socket and GET /api/events send it, through JSON.
        validate(json.loads(json.dumps(event_frame(event))))
        seen.add(event.type)
    # notification.created is declared but not sent yet: each entry is told by its own event.
    assert seen == EVENT_TYPES - {"notification.created"}


class Captured:
    """A socket whose every frame, both ways, is checked against the document."""

    def __init__(self, communicator) -> None:
        self.communicator = communicator

    async def send(self, frame: dict) -> None:
        validate(frame, sent_by_client=True)
        await send(self.communicator, frame)

    async def until(self, predicate) -> dict:
        """The next frame matching `predicate`; the frames before it (events) are checked."""
        while True:
            frame = await receive(self.communicator)
            if predicate(frame):
                return frame
            self.check(frame, None)

    def check(self, frame: dict, message: str | None) -> None:
        validate(frame, message=message)


@pytest.mark.django_db(transaction=True)
async def test_frames_on_a_live_socket_validate(make_member):
    seller, seller_token = await make_member()
    buyer, buyer_token = await make_member()
    await database_sync_to_async(_address)(buyer)
    listing = await database_sync_to_async(listing_on_sale)(seller=seller, price_fen=10_000)
    buyer_socket = Captured(await connected(buyer_token))
    seller_socket = Captured(await connected(seller_token))

    await buyer_socket.send({"action": "ping"})
    buyer_socket.check(await buyer_socket.until(lambda f: f["type"] == "pong"), "pong")
    await buyer_socket.send({"action": "resume", "since": 0, "id": "r"})
    buyer_socket.check(await buyer_socket.until(lambda f: f.get("ref") == "r"), "ack.resume")

    await buyer_socket.send({"action": "offer.make", "id": 1, "listing_id": listing.pk, "price": 7_000})
    ack = await buyer_socket.until(lambda f: f.get("ref") == 1)
    buyer_socket.check(ack, "ack.offer.make")
    offer_id = ack["data"]["id"]
    created = await seller_socket.until(lambda f: f.get("type") == "offer.created")
    seller_socket.check(created, None)

    await seller_socket.send({"action": "offer.counter", "id": "c", "offer_id": offer_id, "price": 9_000})
    seller_socket.check(await seller_socket.until(lambda f: f.get("ref") == "c"), "ack.offer.counter")
    buyer_socket.check(await buyer_socket.until(lambda f: f.get("type") == "offer.countered"), None)

    await buyer_socket.send({"action": "offer.accept", "id": "a", "offer_id": offer_id})
    buyer_socket.check(await buyer_socket.until(lambda f: f.get("ref") == "a"), "ack.offer.accept")
    status = await seller_socket.until(lambda f: f.get("type") == "order.status_changed")
    seller_socket.check(status, None)

    # A refused action: an error frame with the REST error's code.
    await seller_socket.send({"action": "offer.withdraw", "id": "w", "offer_id": offer_id})
    error = await seller_socket.until(lambda f: f.get("ref") == "w")
    assert error["type"] == "error"
    seller_socket.check(error, "error")
    await seller_socket.communicator.send_to(text_data="not json")
    malformed = await seller_socket.until(lambda f: f.get("type") == "error")
    assert malformed["data"]["code"] in SOCKET_ERROR_CODES
    seller_socket.check(malformed, "error")

    for captured in (buyer_socket, seller_socket):
        await captured.communicator.disconnect(timeout=TIMEOUT)


def _address(user) -> None:
    AddressFactory(user=user, is_default=True)
