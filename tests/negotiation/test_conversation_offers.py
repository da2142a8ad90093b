"""The bargain in the thread: every offer move appears in the buyer's conversation, written by
the same transaction as the move; a sold listing closes the other buyers' threads."""

import importlib
from datetime import timedelta

import pytest
from django.utils import timezone, translation

from marketplace.models import ListingStatus
from negotiation import server_entries
from negotiation.actions import handle_offer_expiry
from negotiation.models import Conversation, Message, Offer, OfferHistory
from tests.conftest import assert_error
from tests.marketplace.order_helpers import place_order
from tests.negotiation.conversation_helpers import inbox, message_events, open_thread, say
from tests.negotiation.helpers import buyer, offer, seller_and_listing

pytestmark = pytest.mark.django_db


def thread_of(offer_id: int) -> list[tuple[str, str, int | None, str]]:
    """(kind, offer status in the message, sender, text) of the offer's messages, in order."""
    return [
        (m.kind, m.offer_id, m.sender_id, m.text)
        for m in Message.objects.filter(offer_id=offer_id).order_by("id")
    ]


def assert_agrees(offer_id: int) -> None:
    """Every history row of the offer (but order_closed) has its message, in the same order."""
    moves = [
        h.action
        for h in OfferHistory.objects.filter(offer_id=offer_id).order_by("id")
        if h.action != "order_closed"
    ]
    messages = list(Message.objects.filter(offer_id=offer_id).order_by("id"))
    assert len(messages) == len(moves), (moves, [m.text for m in messages])
    kinds = ["offer" if move in ("made", "countered") else "system" for move in moves]
    assert [m.kind for m in messages] == kinds


def test_a_first_offer_opens_the_conversation_and_appears_in_it(make_client):
    seller, listing = seller_and_listing(make_client)
    client = buyer(make_client)
    made = offer(client, listing, 8_000)
    conversation = Conversation.objects.get(listing=listing, buyer=client.user)
    (message,) = Message.objects.filter(conversation=conversation)
    assert (message.kind, message.sender_id, message.offer_id) == (
        "offer",
        client.user.pk,
        made["id"],
    )
    assert message.text == "出价 ¥80.00"
    assert conversation.seller_unread == 1 and inbox(seller.user) == 1
    # The REST view of the thread carries the offer as GET /api/offers shows it.
    items = client.get(f"/api/conversations/{conversation.pk}/messages").json()["items"]
    assert items[0]["offer"]["id"] == made["id"] and items[0]["offer"]["status"] == "open"
    assert open_thread(client, listing)["id"] == conversation.pk


def test_ask_answer_then_offer_counter_accept_reads_as_one_thread(make_client):
    seller, listing = seller_and_listing(make_client)
    client = buyer(make_client)
    cid = open_thread(client, listing)["id"]
    say(client, cid, "还在吗?", "q")
    say(seller, cid, "在的", "a")
    made = offer(client, listing, 7_000)
    assert seller.post(f"/api/offers/{made['id']}/counter", {"price": 9_000}).status_code == 200
    assert client.post(f"/api/offers/{made['id']}/accept").status_code == 200
    texts = [m["text"] for m in client.get(f"/api/conversations/{cid}/messages").json()["items"]]
    assert texts[::-1] == [
        "还在吗?",
        "在的",
        "出价 ¥70.00",
        "卖家还价 ¥90.00",
        "已按 ¥90.00 成交，订单已生成",
    ]
    assert_agrees(made["id"])
    # The winner's thread stays open for questions about the order.
    say(client, cid, "什么时候发货?", "after")


def test_decline_withdraw_and_a_declined_counter_each_appear(make_client):
    seller, listing = seller_and_listing(make_client)
    client = buyer(make_client)
    a = offer(client, listing, 6_000)
    seller.post(f"/api/offers/{a['id']}/decline")
    b = offer(client, listing, 6_500)
    client.post(f"/api/offers/{b['id']}/withdraw")
    c = offer(client, listing, 7_000)
    seller.post(f"/api/offers/{c['id']}/counter", {"price": 9_500})
    client.post(f"/api/offers/{c['id']}/decline")
    for made in (a, b, c):
        assert_agrees(made["id"])
    texts = [t for *_, t in thread_of(a["id"]) + thread_of(b["id"]) + thread_of(c["id"])]
    assert "卖家拒绝了出价" in texts and "买家撤回了出价" in texts and "买家拒绝了还价" in texts


def test_expiry_appears_as_a_system_message(make_client):
    _, listing = seller_and_listing(make_client)
    made = offer(buyer(make_client), listing, 7_000)
    Offer.objects.filter(pk=made["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert handle_offer_expiry(offer_id=made["id"]) == "expired"
    assert thread_of(made["id"])[-1][2:] == (None, "出价已过期")
    assert_agrees(made["id"])


def test_below_floor_and_auto_accept_appear(make_client):
    seller, listing = seller_and_listing(make_client)
    seller.put(
        f"/api/listings/{listing.pk}/bargain-floor",
        {"floor_price": 5_000, "auto_accept_price": 9_000},
    )
    low = offer(buyer(make_client), listing, 4_000)
    assert thread_of(low["id"])[-1][3] == "出价低于卖家底价，已自动拒绝"
    high = offer(buyer(make_client), listing, 9_000)
    assert thread_of(high["id"])[-1][3].startswith("已按 ¥90.00 成交")
    assert_agrees(low["id"])
    assert_agrees(high["id"])


def test_an_acceptance_closes_the_other_buyers_threads_read_only(make_client):
    seller, listing = seller_and_listing(make_client)
    winner, loser, asker = buyer(make_client), buyer(make_client), buyer(make_client)
    won = offer(winner, listing, 8_000)
    lost = offer(loser, listing, 7_000)
    asked = open_thread(asker, listing)["id"]
    assert seller.post(f"/api/offers/{won['id']}/accept").status_code == 200
    assert_agrees(lost["id"])
    for client in (loser, asker):
        row = Conversation.objects.get(listing=listing, buyer=client.user)
        assert row.is_read_only
        assert (
            Message.objects.filter(conversation=row).order_by("-id")[0].text
            == "商品已售出，此会话已关闭"
        )
        response = client.post(
            f"/api/conversations/{row.pk}/messages",
            {"kind": "text", "text": "还有吗", "client_id": "z"},
        )
        assert_error(response, 409, "conversation_read_only")
        assert client.get(f"/api/conversations/{row.pk}").json()["is_read_only"] is True
    assert not Conversation.objects.get(listing=listing, buyer=winner.user).is_read_only
    assert Conversation.objects.get(pk=asked).is_read_only


def test_a_direct_purchase_closes_the_other_threads_too(make_client):
    seller, listing = seller_and_listing(make_client)
    purchaser, other = buyer(make_client), buyer(make_client)
    open_thread(purchaser, listing)
    theirs = open_thread(other, listing)["id"]
    response = place_order(purchaser, listing, purchaser.address.pk)
    assert response.status_code == 201, response.content
    assert listing.__class__.objects.get(pk=listing.pk).status == ListingStatus.RESERVED
    assert Conversation.objects.get(pk=theirs).is_read_only
    assert not Conversation.objects.get(listing=listing, buyer=purchaser.user).is_read_only


# --- server entries in the reader's language (negotiation/server_entries.py) --------------------------


def test_an_english_reader_reads_the_server_entries_in_english_from_the_same_rows(make_client):
    seller, listing = seller_and_listing(make_client)
    client = buyer(make_client)
    loser = buyer(make_client)
    offer(loser, listing, 6_000)
    # The moves are made by English clients: what is stored and sent stays in the default language.
    english = {"Accept-Language": "en"}
    made = client.post(f"/api/listings/{listing.pk}/offers", {"price": 7_000}, headers=english)
    assert made.status_code == 201, made.content
    made = made.json()
    countered = seller.post(f"/api/offers/{made['id']}/counter", {"price": 9_000}, headers=english)
    assert countered.status_code == 200
    assert client.post(f"/api/offers/{made['id']}/accept", headers=english).status_code == 200
    cid = Conversation.objects.get(listing=listing, buyer=client.user).pk
    url = f"/api/conversations/{cid}/messages"

    chinese = [m["text"] for m in client.get(url).json()["items"]][::-1]
    assert chinese == ["出价 ¥70.00", "卖家还价 ¥90.00", "已按 ¥90.00 成交，订单已生成"]
    read = [m["text"] for m in client.get(url, headers=english).json()["items"]][::-1]
    assert read == [
        "Offer ¥70.00",
        "The seller countered at ¥90.00",
        "Agreed at ¥90.00: the order is created",
    ]
    assert [m.text for m in Message.objects.filter(conversation_id=cid).order_by("id")] == chinese
    # The event, stored once for both sides, carries the default language.
    sent = [e["text"] for e in message_events(seller.user) if e["conversation_id"] == cid]
    assert sent == chinese

    closed = Conversation.objects.get(listing=listing, buyer=loser.user).pk
    last = loser.get("/api/conversations", headers=english).json()["items"]
    assert [c["last_message"]["text"] for c in last if c["id"] == closed] == [
        "The listing is sold: this conversation is closed"
    ]
    url = f"/api/conversations/{closed}/messages"
    texts = [m["text"] for m in loser.get(url, headers=english).json()["items"]][::-1]
    assert texts == [
        "Offer ¥60.00",
        "The listing was bought: the offer no longer stands",
        "The listing is sold: this conversation is closed",
    ]


def test_rows_written_before_notices_are_read_back_and_render_as_they_were_stored():
    migration = importlib.import_module("negotiation.migrations.0004_message_notice")
    texts = [*migration._FIXED, "出价 ¥80.00", "卖家还价 ¥1,000.00", "已按 ¥0.50 成交，订单已生成"]
    for text in texts:
        said = migration.notice_of(text)
        if "1,000" in text:  # never written: _price had no thousands separator
            assert said is None
            continue
        assert said is not None and server_entries.render_stored(said) == text, text
    assert migration.notice_of("300 能出吗?") is None
    with translation.override("en"):
        assert server_entries.render(migration.notice_of("出价 ¥80.00")) == "Offer ¥80.00"
