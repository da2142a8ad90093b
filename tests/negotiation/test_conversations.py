"""Conversations over REST (SPEC §4a, API.md "Conversations"): opening, sending, history,
read receipts and exact unread counts, the text check, blocks, reports and limits."""

import posixpath

import pytest
from django.core.files.storage import default_storage
from django.test import override_settings

from marketplace.models import ListingStatus
from negotiation.models import Conversation, Message, Report, UserBlock
from negotiation.selectors import unread_message_count
from tests.conftest import assert_error
from tests.negotiation.conversation_helpers import (
    inbox,
    message_events,
    open_thread,
    say,
    thread_world,
    unread,
)
from tests.negotiation.helpers import buyer, seller_and_listing

pytestmark = pytest.mark.django_db


def test_a_buyer_opens_one_conversation_per_listing_and_gets_it_back(make_client):
    seller, listing = seller_and_listing(make_client)
    client = buyer(make_client)
    first = open_thread(client, listing)
    again = open_thread(client, listing)
    assert first["id"] == again["id"]
    assert first["buyer"]["id"] == client.user.pk and first["seller"]["id"] == seller.user.pk
    assert first["listing"]["id"] == listing.pk
    assert (first["unread_count"], first["last_message"]) == (0, None)
    assert Conversation.objects.filter(listing=listing).count() == 1


def test_the_seller_cannot_open_one_on_their_own_listing_and_unpublished_is_404(make_client):
    seller, listing = seller_and_listing(make_client)
    assert_error(seller.post(f"/api/listings/{listing.pk}/conversation"), 409, "own_listing")
    _, hidden = seller_and_listing(make_client, status=ListingStatus.PENDING_REVIEW)
    assert_error(
        buyer(make_client).post(f"/api/listings/{hidden.pk}/conversation"), 404, "listing_not_found"
    )
    assert_error(buyer(make_client).post("/api/listings/999999/conversation"), 404)


def test_messages_reach_the_other_side_with_exact_unread_counts(make_client):
    seller, client, listing, conversation = thread_world(make_client)
    cid = conversation["id"]
    asked = say(client, cid, "  还在吗?  ", "c1")
    assert (asked["kind"], asked["text"], asked["sender_id"]) == ("text", "还在吗?", client.user.pk)
    assert asked["conversation_id"] == cid and asked["client_id"] == "c1"
    say(client, cid, "300 能出吗?", "c2")
    assert unread(cid) == (0, 2) and inbox(seller.user) == 2 and inbox(client.user) == 0
    assert unread_message_count(seller.user) == 2

    # Both sides hear message.created, in the server's order.
    assert [e["text"] for e in message_events(seller.user)] == ["还在吗?", "300 能出吗?"]
    assert [e["text"] for e in message_events(client.user)] == ["还在吗?", "300 能出吗?"]

    mine = seller.get(f"/api/conversations/{cid}").json()
    assert mine["unread_count"] == 2 and mine["last_message"]["text"] == "300 能出吗?"
    assert client.get(f"/api/conversations/{cid}").json()["unread_count"] == 0

    answer = say(seller, cid, "可以，280 也行", "s1")
    assert unread(cid) == (1, 2)
    # Reading up to the first message leaves exactly one unread.
    read = seller.post(f"/api/conversations/{cid}/read", {"up_to": asked["id"]})
    assert read.status_code == 200, read.content
    assert read.json()["unread_count"] == 1
    assert unread(cid) == (1, 1) and inbox(seller.user) == 1
    heard = message_events(client.user, "message.read")[-1]
    assert heard == {
        "conversation_id": cid,
        "user_id": seller.user.pk,
        "up_to": asked["id"],
        "unread_count": 1,
    }
    # Reading beyond the end means up to the last; reading backwards changes nothing.
    seller.post(f"/api/conversations/{cid}/read", {"up_to": answer["id"] + 100})
    seller.post(f"/api/conversations/{cid}/read", {"up_to": asked["id"]})
    assert unread(cid) == (1, 0) and inbox(seller.user) == 0
    assert seller.get("/api/conversations", {"unread": "true"}).json()["items"] == []
    assert [c["id"] for c in client.get("/api/conversations", {"unread": "true"}).json()["items"]] == [cid]


def test_the_same_client_id_returns_the_first_message(make_client):
    seller, client, _, conversation = thread_world(make_client)
    first = say(client, conversation["id"], "还在吗?", "same")
    again = say(client, conversation["id"], "还在吗?", "same", status=200)
    assert again["id"] == first["id"]
    assert Message.objects.filter(conversation_id=conversation["id"]).count() == 1
    assert inbox(seller.user) == 1
    # The other side's client ids are theirs.
    assert say(seller, conversation["id"], "在的", "same")["id"] != first["id"]


def test_conversation_lists_put_the_latest_activity_first(make_client):
    seller, listing = seller_and_listing(make_client)
    _, second_listing = seller_and_listing(make_client)
    second_listing.seller = seller.user
    second_listing.save(update_fields=["seller"])
    a, b = buyer(make_client), buyer(make_client)
    ca, cb = open_thread(a, listing), open_thread(b, second_listing)
    say(a, ca["id"], "一", "1")
    say(b, cb["id"], "二", "2")
    assert [c["id"] for c in seller.get("/api/conversations").json()["items"]] == [cb["id"], ca["id"]]
    say(a, ca["id"], "三", "3")
    assert [c["id"] for c in seller.get("/api/conversations").json()["items"]] == [ca["id"], cb["id"]]
    assert [c["id"] for c in a.get("/api/conversations").json()["items"]] == [ca["id"]]


def test_history_pages_back_newest_first(make_client):
    seller, client, _, conversation = thread_world(make_client)
    cid = conversation["id"]
    sent = [say(client, cid, f"消息 {n}", f"m{n}")["id"] for n in range(7)]
    page = client.get(f"/api/conversations/{cid}/messages", {"limit": 3}).json()
    assert [m["id"] for m in page["items"]] == sent[::-1][:3]
    older = client.get(
        f"/api/conversations/{cid}/messages", {"limit": 3, "before": page["next_before"]}
    ).json()
    assert [m["id"] for m in older["items"]] == sent[::-1][3:6]
    last = client.get(
        f"/api/conversations/{cid}/messages", {"limit": 3, "before": older["next_before"]}
    ).json()
    assert [m["id"] for m in last["items"]] == [sent[0]] and last["next_before"] is None
    assert_error(client.get(f"/api/conversations/{cid}/messages", {"limit": 0}), 422)
    assert_error(client.get(f"/api/conversations/{cid}/messages", {"before": "x"}), 422)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"kind": "text", "text": "   ", "client_id": "a"}, "empty_message"),
        ({"kind": "text", "text": "长" * 501, "client_id": "a"}, "message_too_long"),
        ({"kind": "text", "text": "hi", "client_id": ""}, "validation_error"),
        ({"kind": "video", "text": "hi", "client_id": "a"}, "validation_error"),
        ({"kind": "text", "text": "hi", "client_id": "a", "extra": 1}, "validation_error"),
        ({"kind": "image", "client_id": "a"}, "invalid_message"),
        ({"kind": "text", "text": 5, "client_id": "a"}, "validation_error"),
    ],
)
def test_bad_messages_are_refused_and_nothing_is_stored(make_client, body, code):
    _, client, _, conversation = thread_world(make_client)
    response = client.post(f"/api/conversations/{conversation['id']}/messages", body)
    assert_error(response, response.status_code, code)
    assert 400 <= response.status_code < 500
    assert not Message.objects.exists()


def test_exactly_500_characters_after_trimming_is_allowed(make_client):
    _, client, _, conversation = thread_world(make_client)
    assert len(say(client, conversation["id"], " " + "长" * 500 + " ", "x")["text"]) == 500


def test_a_risky_text_is_refused_and_nothing_is_stored(make_client):
    seller, client, _, conversation = thread_world(make_client)
    response = client.post(
        f"/api/conversations/{conversation['id']}/messages",
        {"kind": "text", "text": "出售枪支", "client_id": "r"},
    )
    body = assert_error(response, 422, "content_risky")
    assert "规范" in body["message"]
    assert not Message.objects.exists()
    assert unread(conversation["id"]) == (0, 0) and message_events(seller.user) == []


def test_a_review_text_is_delivered_and_flagged_for_staff(make_client):
    seller, client, _, conversation = thread_world(make_client)
    say(client, conversation["id"], "可以代购吗", "v")
    message = Message.objects.get()
    assert message.is_flagged
    assert Conversation.objects.get(pk=conversation["id"]).flagged_count == 1
    assert inbox(seller.user) == 1


def test_an_outsider_gets_404_on_every_conversation_endpoint(make_client):
    seller, client, _, conversation = thread_world(make_client)
    cid = conversation["id"]
    message = say(client, cid, "还在吗?", "o")
    stranger = make_client()
    for method, path, body in [
        ("GET", f"/api/conversations/{cid}", None),
        ("GET", f"/api/conversations/{cid}/messages", None),
        ("POST", f"/api/conversations/{cid}/messages", {"kind": "text", "text": "hi", "client_id": "z"}),
        ("POST", f"/api/conversations/{cid}/read", {"up_to": message["id"]}),
    ]:
        assert_error(stranger.request(method, path, body), 404, "conversation_not_found")
    assert stranger.get("/api/conversations").json()["items"] == []
    assert_error(
        stranger.post("/api/reports", {"target_type": "message", "target_id": message["id"], "reason": "abuse"}),
        404,
    )
    assert Message.objects.count() == 1 and unread(cid) == (0, 1)


def test_a_block_stops_messages_both_ways_and_offers_on_the_blockers_listings(make_client):
    seller, client, listing, conversation = thread_world(make_client)
    cid = conversation["id"]
    assert seller.post(f"/api/users/{client.user.pk}/block").status_code == 200
    for who in (client, seller):
        response = who.post(
            f"/api/conversations/{cid}/messages", {"kind": "text", "text": "hi", "client_id": "b"}
        )
        body = assert_error(response, 409, "blocked")
        assert "拉黑" not in body["message"]
    assert_error(client.post(f"/api/listings/{listing.pk}/offers", {"price": 8_000}), 409, "blocked")
    blocks = seller.get("/api/me/blocks").json()
    assert [b["user"]["id"] for b in blocks] == [client.user.pk]
    assert client.get("/api/me/blocks").json() == []
    _, another = seller_and_listing(make_client)
    another.seller = seller.user
    another.save(update_fields=["seller"])
    assert_error(client.post(f"/api/listings/{another.pk}/conversation"), 409, "blocked")
    assert not Message.objects.exists()
    # Unblocked, they talk again.
    assert seller.delete(f"/api/users/{client.user.pk}/block").status_code == 200
    assert not UserBlock.objects.exists()
    say(client, cid, "还在吗?", "after")


def test_blocking_yourself_or_nobody_is_refused(make_client):
    client = make_client()
    assert_error(client.post(f"/api/users/{client.user.pk}/block"), 400, "cannot_block_self")
    assert_error(client.post("/api/users/999999/block"), 404)


def test_reports_on_a_message_a_user_and_a_listing(make_client):
    seller, client, listing, conversation = thread_world(make_client)
    message = say(seller, conversation["id"], "加我微信私下交易", "w")
    for target_type, target_id in (
        ("message", message["id"]),
        ("user", seller.user.pk),
        ("listing", listing.pk),
    ):
        response = client.post(
            "/api/reports", {"target_type": target_type, "target_id": target_id, "reason": "fraud", "detail": "引导线下交易"}
        )
        assert response.status_code == 201, response.content
        assert response.json()["status"] == "open"
    reports = list(Report.objects.order_by("id"))
    assert [r.target_type for r in reports] == ["message", "user", "listing"]
    assert reports[0].conversation_id == conversation["id"] and reports[0].user_id == seller.user.pk
    assert_error(
        client.post("/api/reports", {"target_type": "listing", "target_id": listing.pk, "reason": "坏"}),
        422,
    )
    assert reports[0].reason == "fraud" and reports[0].detail == "引导线下交易"


@override_settings(MESSAGE_RATE_PER_MINUTE=3)
def test_messages_per_minute_are_limited(make_client):
    _, client, _, conversation = thread_world(make_client)
    for n in range(3):
        say(client, conversation["id"], f"第{n}条", f"r{n}")
    response = client.post(
        f"/api/conversations/{conversation['id']}/messages",
        {"kind": "text", "text": "又一条", "client_id": "r9"},
    )
    assert_error(response, 429, "rate_limited")
    # A retry of a message that was sent is not a new attempt.
    say(client, conversation["id"], "第0条", "r0", status=200)


@override_settings(NEW_CONVERSATIONS_PER_DAY=2)
def test_new_conversations_per_day_are_limited_but_offers_open_them_freely(make_client):
    client = buyer(make_client)
    listings = [seller_and_listing(make_client)[1] for _ in range(4)]
    open_thread(client, listings[0])
    open_thread(client, listings[1])
    open_thread(client, listings[0])  # an existing one is no new conversation
    assert_error(client.post(f"/api/listings/{listings[2].pk}/conversation"), 429, "rate_limited")
    made = client.post(f"/api/listings/{listings[3].pk}/offers", {"price": 8_000})
    assert made.status_code == 201, made.content
    assert Conversation.objects.filter(buyer=client.user).count() == 3


def test_banned_users_neither_send_nor_receive(make_client):
    seller, client, _, conversation = thread_world(make_client)
    seller.user.is_banned = True
    seller.user.save(update_fields=["is_banned"])
    response = client.post(
        f"/api/conversations/{conversation['id']}/messages",
        {"kind": "text", "text": "在吗", "client_id": "x"},
    )
    assert_error(response, 409, "recipient_unavailable")
    assert not Message.objects.exists()


def _grant(anon, user, count=5):
    from django.conf import settings

    response = anon.post(
        "/sandbox/wechat/subscribe-grant",
        {"openid": user.openid, "template_id": settings.WECHAT_TEMPLATE_NEW_MESSAGE, "count": count},
    )
    assert response.status_code == 200, response.content


@pytest.mark.django_db(transaction=True)
def test_an_offline_recipient_gets_one_subscribe_message_per_conversation_until_read(
    make_client, anon
):
    from sandbox.models import SandboxMessage

    seller, client, listing, conversation = thread_world(make_client)
    _grant(anon, seller.user)
    cid = conversation["id"]
    first = say(client, cid, "还在吗?", "n1")
    say(client, cid, "300 能出吗?", "n2")
    sent = list(SandboxMessage.objects.filter(openid=seller.user.openid))
    assert len(sent) == 1, sent
    assert sent[0].page == f"pages/conversations/detail?id={cid}"
    assert sent[0].data["thing2"]["value"].startswith(listing.title[:5])
    # Read, then a new message: one more notice.
    seller.post(f"/api/conversations/{cid}/read", {"up_to": first["id"] + 1})
    say(client, cid, "在吗?", "n3")
    assert SandboxMessage.objects.filter(openid=seller.user.openid).count() == 2
    # The sender is never told about their own messages.
    assert not SandboxMessage.objects.filter(openid=client.user.openid).exists()


@pytest.mark.django_db(transaction=True)
def test_an_online_recipient_gets_no_subscribe_message(make_client, anon):
    from realtime import presence
    from sandbox.models import SandboxMessage

    seller, client, _, conversation = thread_world(make_client)
    _grant(anon, seller.user)
    presence.mark_connected(seller.user.pk, "conn-1")
    say(client, conversation["id"], "还在吗?", "o1")
    assert not SandboxMessage.objects.exists()
    presence.mark_disconnected(seller.user.pk, "conn-1")
    say(client, conversation["id"], "在吗?", "o2")
    assert SandboxMessage.objects.count() == 1


def _upload(client) -> int:
    from tests.marketplace.catalog_factories import image_bytes, upload_file

    response = client.client.post(
        "/api/uploads/images",
        {"file": upload_file(image_bytes())},
        headers={"Authorization": f"Bearer {client.token}"},
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _send_image(client, cid, image_id, client_id, status=201):
    response = client.post(
        f"/api/conversations/{cid}/messages",
        {"kind": "image", "image_id": image_id, "client_id": client_id},
    )
    assert response.status_code == status, response.content
    return response.json()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("risky", [False, True])
def test_an_image_message_is_checked_by_wechat_and_a_risky_one_hidden_for_both(make_client, risky):
    from marketplace.models.catalog import ImageUpload
    from sandbox.models import SandboxMediaCheck
    from sandbox.wechat import push_media_checks

    seller, client, _, conversation = thread_world(make_client)
    cid = conversation["id"]
    image_id = _upload(client)
    if risky:
        # The marker in the file's own name: the link WeChat is given ends with it.
        upload = ImageUpload.objects.get(pk=image_id)
        folder, name = posixpath.split(upload.file)
        with default_storage.open(upload.file) as original:
            marked = default_storage.save(f"{folder}/sandbox-risky-{name}", original)
        default_storage.delete(upload.file)
        upload.file = marked
        upload.save(update_fields=["file"])
    sent = _send_image(client, cid, image_id, "img")
    assert sent["kind"] == "image" and sent["image_url"]
    # Asked on commit with the v2 body; the verdict comes back by message push.
    check = SandboxMediaCheck.objects.get()
    assert Message.objects.get(pk=sent["id"]).media_trace_id == check.trace_id
    assert push_media_checks() == 1
    row = Message.objects.get(pk=sent["id"])
    assert (row.is_hidden, row.is_flagged) == (risky, risky)
    for who in (client, seller):
        shown = who.get(f"/api/conversations/{cid}/messages").json()["items"][0]
        assert (shown["image_url"] is None) == risky and shown["is_hidden"] == risky
    assert Conversation.objects.get(pk=cid).flagged_count == int(risky)
    # The same upload cannot be sent twice; someone else's is not found.
    assert_error(
        client.post(f"/api/conversations/{cid}/messages",
                    {"kind": "image", "image_id": image_id, "client_id": "again"}),
        404, "image_not_found",
    )
    assert_error(
        seller.post(f"/api/conversations/{cid}/messages",
                    {"kind": "image", "image_id": _upload(client), "client_id": "theirs"}),
        404, "image_not_found",
    )


def test_a_message_push_with_a_bad_signature_is_refused(anon):
    response = anon.post(
        "/api/wechat/message-push?signature=x&timestamp=1&nonce=2",
        {"Event": "wxa_media_check", "trace_id": "t", "result": {"suggest": "risky"}},
    )
    assert_error(response, 403, "bad_signature")
