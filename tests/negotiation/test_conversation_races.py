"""Conversation races settle exactly: real threads on PostgreSQL, through the API."""

import pytest

from negotiation.models import Conversation, Message
from tests.negotiation.conversation_helpers import inbox, open_thread, say
from tests.negotiation.helpers import buyer, seller_and_listing
from tests.races import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _ok(results) -> list:
    for result in results:
        assert not isinstance(result, BaseException), result
    return results


def test_two_devices_opening_the_same_conversation_at_once_make_one(make_client):
    _, listing = seller_and_listing(make_client)
    phone = buyer(make_client)
    devices = [phone] + [make_client(phone.user) for _ in range(3)]
    results = _ok(race(*(lambda d=d: d.post(f"/api/listings/{listing.pk}/conversation") for d in devices)))
    assert [r.status_code for r in results] == [200] * 4, [r.content for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    assert Conversation.objects.filter(listing=listing, buyer=phone.user).count() == 1


def test_the_same_client_id_sent_concurrently_makes_one_message(make_client):
    seller, listing = seller_and_listing(make_client)
    client = buyer(make_client)
    cid = open_thread(client, listing)["id"]
    devices = [client] + [make_client(client.user) for _ in range(3)]
    body = {"kind": "text", "text": "还在吗?", "client_id": "retry-1"}
    results = _ok(
        race(*(lambda d=d: d.post(f"/api/conversations/{cid}/messages", body) for d in devices))
    )
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 1 and set(codes) <= {200, 201}, [r.content for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    assert Message.objects.filter(conversation_id=cid).count() == 1
    assert Conversation.objects.get(pk=cid).seller_unread == 1 and inbox(seller.user) == 1


def test_twenty_concurrent_senders_leave_exact_unread_counts(make_client):
    seller, listing = seller_and_listing(make_client)
    buyers = [buyer(make_client) for _ in range(10)]
    threads = [open_thread(b, listing)["id"] for b in buyers]
    # Two senders per conversation: the buyer and the seller's second device, with a reader.
    seller_device = make_client(seller.user)
    calls = []
    for b, cid in zip(buyers, threads, strict=True):
        calls.append(lambda b=b, cid=cid: say(b, cid, "在吗", f"b{cid}"))
        calls.append(lambda cid=cid: say(seller_device, cid, "在的", f"s{cid}"))
    _ok(race(*calls))
    for cid in threads:
        row = Conversation.objects.get(pk=cid)
        assert (row.buyer_unread, row.seller_unread, row.message_count) == (1, 1, 2)
    assert inbox(seller.user) == 10
    assert all(inbox(b.user) == 1 for b in buyers)

    # Reads racing sends: every count still matches what is actually unread.
    calls = []
    for b, cid in zip(buyers, threads, strict=True):
        last = Message.objects.filter(conversation_id=cid).order_by("-id")[0].pk
        calls.append(lambda cid=cid, last=last: seller.post(f"/api/conversations/{cid}/read", {"up_to": last}))
        calls.append(lambda b=b, cid=cid: say(b, cid, "300 能出吗?", f"b2{cid}"))
    _ok(race(*calls))
    total = 0
    for cid in threads:
        row = Conversation.objects.get(pk=cid)
        actual = (
            Message.objects.filter(conversation_id=cid, pk__gt=row.seller_read_up_to)
            .exclude(sender_id=seller.user.pk)
            .count()
        )
        assert row.seller_unread == actual
        total += actual
    assert inbox(seller.user) == total


def test_a_send_racing_an_acceptance_that_closes_the_thread_settles(make_client):
    seller, listing = seller_and_listing(make_client)
    winner, other = buyer(make_client), buyer(make_client)
    won = winner.post(f"/api/listings/{listing.pk}/offers", {"price": 8_000}).json()
    cid = open_thread(other, listing)["id"]
    accept, sent = _ok(
        race(
            lambda: seller.post(f"/api/offers/{won['id']}/accept"),
            lambda: other.post(
                f"/api/conversations/{cid}/messages",
                {"kind": "text", "text": "还在吗", "client_id": "late"},
            ),
        )
    )
    assert accept.status_code == 200, accept.content
    assert sent.status_code in (201, 409), sent.content
    row = Conversation.objects.get(pk=cid)
    assert row.is_read_only
    # The close is the thread's last word either way.
    assert Message.objects.filter(conversation_id=cid).order_by("-id")[0].text == "商品已售出，此会话已关闭"
