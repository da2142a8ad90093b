"""Issue 18: chat images are private, like order videos. A sent image lives in the private
storage (no longer under /media/); the REST reads issue each participant a short-lived link of
their own, refused unsigned, altered, expired, for a third user, and for staff unless the
conversation was reported; `message.created` (live and replayed) says an image is there and
carries no URL. Migration 0003 moves the images sent before."""

import importlib
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.core.files.storage import default_storage, storages
from django.test import Client

from marketplace.actions.uploads import upload_image
from marketplace.media import private_url
from marketplace.models.catalog import ImageUpload
from negotiation.models import Message
from realtime.db import database_sync_to_async
from realtime.models import Event
from realtime.push import event_frame, format_at
from tests.conftest import assert_error
from tests.factories import StaffFactory
from tests.marketplace.catalog_factories import image_bytes, upload_file
from tests.negotiation.conversation_helpers import message_events, thread_world
from tests.negotiation.test_socket import close, peers
from tests.realtime.asyncapi_frames import validate

pytestmark = pytest.mark.django_db(transaction=True)

PRIVATE_PREFIX = f"{settings.PUBLIC_BASE_URL}/api/private-media/"


def _fetch(url: str):
    response = Client().get(urlsplit(url).path)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


def _upload(client) -> dict:
    response = client.client.post(
        "/api/uploads/images",
        {"file": upload_file(image_bytes(size=(64, 48)))},
        headers={"Authorization": f"Bearer {client.token}"},
    )
    assert response.status_code == 201, response.content
    return response.json()


def _send_image(client, cid: int, image_id: int, client_id: str = "img") -> dict:
    response = client.post(
        f"/api/conversations/{cid}/messages",
        {"kind": "image", "image_id": image_id, "client_id": client_id},
    )
    assert response.status_code == 201, response.content
    return response.json()


def _shown_to(client, cid: int, message_id: int) -> dict:
    page = client.get(f"/api/conversations/{cid}/messages").json()["items"]
    return next(item for item in page if item["id"] == message_id)


@pytest.fixture
def sent(make_client):
    """The seller, the buyer, the conversation id, the image message as sent, and the upload
    as it answered before it was sent."""
    seller, buyer, _, conversation = thread_world(make_client)
    upload = _upload(buyer)
    message = _send_image(buyer, conversation["id"], upload["id"])
    return seller, buyer, conversation["id"], message, upload


def _name(message_id: int) -> str:
    return Message.objects.select_related("image").get(pk=message_id).image.file


def test_both_participants_get_a_working_link_of_their_own(sent):
    seller, buyer, cid, message, _ = sent
    stored = storages["private"].open(_name(message["id"])).read()
    assert message["image_url"].startswith(PRIVATE_PREFIX)  # the sender's own, in the answer
    buyer_url = _shown_to(buyer, cid, message["id"])["image_url"]
    seller_url = _shown_to(seller, cid, message["id"])["image_url"]
    assert buyer_url != seller_url
    for url in (message["image_url"], buyer_url, seller_url):
        assert url.startswith(PRIVATE_PREFIX), url
        response, body = _fetch(url)
        assert response.status_code == 200 and body == stored
        assert response["Cache-Control"] == "private, no-store"
        assert response["Content-Type"] == "image/jpeg"
    # The conversation (its last message), the list and the single message sign it too.
    for shown in (
        seller.get(f"/api/conversations/{cid}").json()["last_message"],
        seller.get("/api/conversations").json()["items"][0]["last_message"],
        seller.get(f"/api/conversations/{cid}/messages/{message['id']}").json(),
    ):
        assert shown["id"] == message["id"]
        assert shown["image"] == {"width": 64, "height": 48}
        assert _fetch(shown["image_url"])[0].status_code == 200


def test_the_image_leaves_the_public_media_prefix_when_sent(make_client):
    _, buyer, _, conversation = thread_world(make_client)
    upload = _upload(buyer)
    public_path = urlsplit(upload["url"]).path
    assert buyer.client.get(public_path).status_code == 200  # an upload not yet sent
    message = _send_image(buyer, conversation["id"], upload["id"])
    name = _name(message["id"])
    assert name.startswith("chat-images/")
    assert (Path(settings.PRIVATE_MEDIA_ROOT) / name).exists()
    assert not (Path(settings.MEDIA_ROOT) / name).exists()
    assert not (Path(settings.MEDIA_ROOT) / public_path.removeprefix(settings.MEDIA_URL)).exists()
    for path in (public_path, f"{settings.MEDIA_URL}{name}"):
        assert Client().get(path).status_code == 404, path
    thumbnail = ImageUpload.objects.get(pk=upload["id"]).thumbnail
    assert thumbnail.startswith("chat-images/") and storages["private"].exists(thumbnail)
    assert Client().get(urlsplit(upload["thumbnail_url"]).path).status_code == 404


def test_an_unsigned_or_altered_link_is_refused(sent):
    _, buyer, cid, message, _ = sent
    url = _shown_to(buyer, cid, message["id"])["image_url"]
    token, filename = urlsplit(url).path.removeprefix("/api/private-media/").split("/")
    name = _name(message["id"])
    assert Client().get(f"/api/private-media/{name}").status_code == 404
    for bad in (
        f"/api/private-media/{name.replace('/', '_')}/{filename}",
        f"/api/private-media/{token[:-3]}abc/{filename}",
        f"/api/private-media/{token}/other.jpg",
    ):
        assert_error(Client().get(bad), 404, "link_expired")


def test_an_expired_link_is_refused(sent, monkeypatch):
    _, buyer, cid, message, _ = sent
    url = _shown_to(buyer, cid, message["id"])["image_url"]
    assert _fetch(url)[0].status_code == 200
    later = time.time() + settings.PRIVATE_MEDIA_TTL_SECONDS + 1
    monkeypatch.setattr(time, "time", lambda: later)
    response, _ = _fetch(url)
    assert_error(response, 404, "link_expired")


def test_a_third_user_gets_neither_the_message_nor_a_working_link(sent, make_client):
    _, _, cid, message, _ = sent
    stranger = make_client()
    assert_error(stranger.get(f"/api/conversations/{cid}/messages"), 404, "conversation_not_found")
    assert_error(
        stranger.get(f"/api/conversations/{cid}/messages/{message['id']}"),
        404,
        "conversation_not_found",
    )
    # Even a correctly signed link names its reader, who must be allowed when it is used.
    response, _ = _fetch(private_url(_name(message["id"]), reader_id=stranger.user.pk))
    assert_error(response, 404, "link_expired")


def test_a_banned_participant_and_a_hidden_image_are_refused(sent):
    seller, buyer, cid, message, _ = sent
    seller_url = _shown_to(seller, cid, message["id"])["image_url"]
    buyer_url = _shown_to(buyer, cid, message["id"])["image_url"]
    type(seller.user).objects.filter(pk=seller.user.pk).update(is_banned=True)
    assert _fetch(seller_url)[0].status_code == 404
    assert _fetch(buyer_url)[0].status_code == 200
    # WeChat judged it risky: hidden for both sides, a link issued before stops working.
    Message.objects.filter(pk=message["id"]).update(is_hidden=True)
    assert _fetch(buyer_url)[0].status_code == 404
    shown = _shown_to(buyer, cid, message["id"])
    assert (shown["image_url"], shown["image"], shown["is_hidden"]) == (None, None, True)


def test_staff_read_it_only_from_the_report_page_of_a_reported_conversation(sent):
    seller, _, cid, message, _ = sent
    staff = StaffFactory()
    browser = Client()
    browser.force_login(staff)
    name = _name(message["id"])
    assert _fetch(private_url(name, reader_id=staff.pk))[0].status_code == 404  # not reported
    response = seller.post(
        "/api/reports", {"target_type": "message", "target_id": message["id"], "reason": "abuse"}
    )
    assert response.status_code == 201, response.content
    for page in (
        f"/admin/negotiation/report/{response.json()['id']}/change/",
        f"/admin/negotiation/conversation/{cid}/change/",
    ):
        html = browser.get(page).content.decode()
        start = html.index(PRIVATE_PREFIX)
        link = html[start : html.index('"', start)].replace("&amp;", "&")
        fetched, body = _fetch(link)
        assert fetched.status_code == 200, page
        assert body == storages["private"].open(name).read()
        # Signed for that staff member: nobody else's link.
        token = urlsplit(link).path.removeprefix("/api/private-media/").split("/")[0]
        from marketplace.media import read_private_token  # noqa: PLC0415 - the test's own check

        grant = read_private_token(token)
        assert grant is not None and grant.reader_id == staff.pk


def test_events_and_their_replay_carry_no_image_url(sent):
    seller, buyer, cid, message, _ = sent
    for who in (seller, buyer):
        created = [data for data in message_events(who.user) if data["id"] == message["id"]]
        assert len(created) == 1
        assert created[0]["image_url"] is None
        assert created[0]["image"] == {"width": 64, "height": 48}
        assert created[0]["kind"] == "image"
        replay = who.get("/api/events", {"since": 0}).json()["items"]
        frames = [e for e in replay if e["type"] == "message.created"]
        assert frames and all(frame["data"]["image_url"] is None for frame in frames)
        for frame in frames:
            validate(frame)  # the AsyncAPI document says what they carry: no link
        assert "private-media" not in str(replay) and "/media/" not in str(replay)
    stored = Event.objects.filter(type="message.created", data__id=message["id"])
    assert stored.count() == 2
    assert all("http" not in str(event.data) for event in stored)


async def test_the_live_event_carries_no_url_and_the_ack_the_senders_own():
    seller, buyer, stranger, listing = await peers()

    def world():
        from negotiation.conversations import open_conversation  # noqa: PLC0415 - test setup

        cid = open_conversation(buyer=buyer.user, listing_id=listing.pk).pk
        return cid, upload_image(user=buyer.user, data=image_bytes(size=(40, 30))).pk

    cid, image_id = await database_sync_to_async(world)()
    await buyer.send(
        action="message.send",
        id="i1",
        conversation_id=cid,
        kind="image",
        image_id=image_id,
        client_id="i1",
    )
    ack = await buyer.reply("i1")
    assert ack["type"] == "ack", ack
    assert ack["data"]["image_url"].startswith(PRIVATE_PREFIX)
    validate(ack, message="ack.message.send")
    for peer in (seller, buyer):
        created = await peer.wait_for(lambda f: f.get("type") == "message.created")
        validate(created)
        assert created["data"]["id"] == ack["data"]["id"]
        assert created["data"]["image_url"] is None
        assert created["data"]["image"] == {"width": 40, "height": 30}
    assert await stranger.communicator.receive_nothing(timeout=0.2)
    await close(seller, buyer, stranger)


def test_wechat_checks_the_image_through_a_private_link(sent):
    from sandbox.models import SandboxMediaCheck  # noqa: PLC0415 - the sandbox app's own model

    *_, message, _ = sent
    check = SandboxMediaCheck.objects.get()
    assert check.media_url.startswith(PRIVATE_PREFIX)
    assert "/media/" not in check.media_url
    response, body = _fetch(check.media_url)
    assert response.status_code == 200
    assert body == storages["private"].open(_name(message["id"])).read()


def test_a_send_that_fails_leaves_the_upload_public_and_no_private_copy(make_client):
    seller, buyer, _, conversation = thread_world(make_client)
    upload = _upload(buyer)
    # The seller may not send the buyer's upload.
    response = seller.post(
        f"/api/conversations/{conversation['id']}/messages",
        {"kind": "image", "image_id": upload["id"], "client_id": "theirs"},
    )
    assert_error(response, 404, "image_not_found")
    blocked = buyer.post(f"/api/users/{seller.user.pk}/block")
    assert blocked.status_code == 200
    response = buyer.post(
        f"/api/conversations/{conversation['id']}/messages",
        {"kind": "image", "image_id": upload["id"], "client_id": "blocked"},
    )
    assert_error(response, 409, "blocked")
    row = ImageUpload.objects.get(pk=upload["id"])
    assert row.consumed_at is None and default_storage.exists(row.file)
    # No private copy of this upload's file (the directory may hold an earlier test's upload
    # of the same id: ids restart with each test database).
    copy = Path(settings.PRIVATE_MEDIA_ROOT) / "chat-images" / str(row.pk) / Path(row.file).name
    assert not copy.exists()


def test_erasing_the_sender_deletes_their_chat_images(sent):
    from marketplace.actions.privacy import _erase_personal_data  # noqa: PLC0415 - the step itself

    _, buyer, _, message, upload = sent
    name = _name(message["id"])
    _erase_personal_data(type(buyer.user).objects.get(pk=buyer.user.pk))
    assert not storages["private"].exists(name)
    assert Message.objects.get(pk=message["id"]).image_id is None
    assert not ImageUpload.objects.filter(pk=upload["id"]).exists()


# --- migration 0003: images sent before this change ------------------------------------------

migration = importlib.import_module("negotiation.migrations.0003_chat_images_private")


def _legacy_message(make_client):
    """An image message as it was sent before: its upload under the public prefix, its stored
    events holding the public URL."""
    seller, buyer, _, conversation = thread_world(make_client)
    upload = upload_image(user=buyer.user, data=image_bytes(size=(32, 24)))
    message = Message.objects.create(
        conversation_id=conversation["id"], sender=buyer.user, kind="image", image=upload
    )
    public_url = f"{settings.MEDIA_BASE_URL}{settings.MEDIA_URL}{upload.file}"
    for user in (seller.user, buyer.user):
        last = Event.objects.filter(user=user).order_by("-seq").first()
        Event.objects.create(
            user=user, seq=(last.seq if last else 0) + 1, type="message.created",
            created_at=message.created_at,
            data={"id": message.pk, "conversation_id": conversation["id"],
                  "sender_id": buyer.user.pk, "kind": "image", "text": "",
                  "image_url": public_url, "is_hidden": False, "offer": None, "client_id": "old",
                  "created_at": format_at(message.created_at)},
        )  # fmt: skip
    return seller, buyer, conversation["id"], message, upload


def test_the_migration_moves_images_sent_before_and_strips_their_events(make_client):
    seller, buyer, cid, message, upload = _legacy_message(make_client)
    public = (upload.file, upload.thumbnail)
    content = default_storage.open(upload.file).read()
    assert Client().get(f"{settings.MEDIA_URL}{upload.file}").status_code == 200

    migration.move_chat_images(django_apps, None)
    migration.move_chat_images(django_apps, None)  # again: nothing left to move, nothing breaks

    row = ImageUpload.objects.get(pk=upload.pk)
    assert row.file.startswith("chat-images/") and row.thumbnail.startswith("chat-images/")
    assert storages["private"].open(row.file).read() == content
    assert storages["private"].exists(row.thumbnail)
    for name in public:
        assert not default_storage.exists(name)
        assert Client().get(f"{settings.MEDIA_URL}{name}").status_code == 404
    for event in Event.objects.filter(type="message.created", data__id=message.pk):
        validate(event_frame(event))
        assert event.data["image_url"] is None
        assert event.data["image"] == {"width": 32, "height": 24}
    shown = _shown_to(seller, cid, message.pk)
    assert shown["image"] == {"width": 32, "height": 24}
    response, body = _fetch(shown["image_url"])
    assert response.status_code == 200 and body == content


def test_the_migration_renames_an_image_whose_file_is_gone(make_client):
    *_, message, upload = _legacy_message(make_client)
    default_storage.delete(upload.file)
    migration.move_chat_images(django_apps, None)
    row = ImageUpload.objects.get(pk=upload.pk)
    assert row.file.startswith("chat-images/")
    assert not storages["private"].exists(row.file)
    assert storages["private"].exists(row.thumbnail)
    assert Message.objects.get(pk=message.pk).image_id == upload.pk
