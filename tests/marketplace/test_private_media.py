"""Issue 18: order videos are private. The order detail issues a short-lived signed URL to the
reader who asks; the link is refused unsigned, altered, expired, or for anyone who may not see
the order; nothing is under the public media prefix; events carry no URL."""

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client

from marketplace.media import private_url
from marketplace.models import Order
from realtime.models import Event
from tests.factories import StaffFactory, UserFactory
from tests.marketplace.fulfilment_helpers import MP4_BYTES, paid_order, post_video

pytestmark = pytest.mark.django_db(transaction=True)


def _fetch(url: str):
    parts = urlsplit(url)
    response = Client().get(parts.path)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


@pytest.fixture
def with_video(make_client):
    buyer, seller, order_no = paid_order(make_client)
    assert post_video(seller, order_no).status_code == 200
    return buyer, seller, order_no


def test_buyer_and_seller_each_get_a_working_url_of_their_own(with_video):
    buyer, seller, order_no = with_video
    buyer_url = buyer.get(f"/api/orders/{order_no}").json()["video_url"]
    seller_url = seller.get(f"/api/orders/{order_no}").json()["video_url"]
    assert buyer_url != seller_url
    for url in (buyer_url, seller_url):
        assert url.startswith(f"{settings.PUBLIC_BASE_URL}/api/private-media/"), url
        assert url.endswith(".mp4")
        response, body = _fetch(url)
        assert response.status_code == 200 and body == MP4_BYTES
        assert response["Cache-Control"] == "private, no-store"
        assert response["Content-Type"] == "video/mp4"


def test_the_video_is_not_under_the_public_media_prefix(with_video, anon):
    _, _, order_no = with_video
    name = Order.objects.get(order_no=order_no).video.name
    assert name.startswith("order-videos/")
    assert not (Path(settings.MEDIA_ROOT) / name).exists()
    assert (Path(settings.PRIVATE_MEDIA_ROOT) / name).exists()
    assert anon.client.get(f"{settings.MEDIA_URL}{name}").status_code == 404


def test_an_unsigned_or_altered_link_is_refused(with_video):
    buyer, _, order_no = with_video
    url = buyer.get(f"/api/orders/{order_no}").json()["video_url"]
    path = urlsplit(url).path
    token, filename = path.removeprefix("/api/private-media/").split("/")
    name = Order.objects.get(order_no=order_no).video.name
    assert Client().get(f"/api/private-media/{name}").status_code == 404
    unsigned = f"/api/private-media/{name.replace('/', '_')}/{filename}"
    tampered = f"/api/private-media/{token[:-3]}abc/{filename}"
    other_name = f"/api/private-media/{token}/other.mp4"
    for bad in (unsigned, tampered, other_name):
        response = Client().get(bad)
        assert response.status_code == 404, bad
        assert response.json()["code"] == "link_expired"


def test_an_expired_link_is_refused(with_video, monkeypatch):
    buyer, _, order_no = with_video
    url = buyer.get(f"/api/orders/{order_no}").json()["video_url"]
    assert _fetch(url)[0].status_code == 200
    later = time.time() + settings.PRIVATE_MEDIA_TTL_SECONDS + 1
    monkeypatch.setattr(time, "time", lambda: later)
    response, _ = _fetch(url)
    assert response.status_code == 404 and response.json()["code"] == "link_expired"


def test_another_user_gets_neither_the_order_nor_a_working_link(with_video, make_client):
    _, _, order_no = with_video
    stranger = make_client()
    assert stranger.get(f"/api/orders/{order_no}").status_code == 404
    # Even a correctly signed link names its reader, who must be allowed when it is used.
    name = Order.objects.get(order_no=order_no).video.name
    response, _ = _fetch(private_url(name, reader_id=stranger.user.pk))
    assert response.status_code == 404 and response.json()["code"] == "link_expired"


def test_staff_may_watch_and_a_banned_party_may_not(with_video):
    buyer, _, order_no = with_video
    name = Order.objects.get(order_no=order_no).video.name
    assert _fetch(private_url(name, reader_id=StaffFactory().pk))[0].status_code == 200
    url = buyer.get(f"/api/orders/{order_no}").json()["video_url"]
    type(buyer.user).objects.filter(pk=buyer.user.pk).update(is_banned=True)
    assert _fetch(url)[0].status_code == 404


def test_events_and_their_replay_carry_no_video_url(with_video):
    buyer, seller, order_no = with_video
    events = Event.objects.filter(data__order_no=order_no)
    assert events.filter(type="order.video_ready").exists()
    for event in events:
        assert event.data["video_url"] is None, event.type
    video_ready = events.get(type="order.video_ready")
    assert video_ready.data["has_video"] is True
    replay = buyer.get("/api/events", {"since": 0}).json()
    frames = [e for e in replay["items"] if e["data"].get("order_no") == order_no]
    assert frames and all(frame["data"]["video_url"] is None for frame in frames)
    assert buyer.get(f"/api/orders/{order_no}").json()["has_video"] is True


def test_behind_nginx_the_view_answers_with_x_accel_redirect(with_video, settings):
    settings.PRIVATE_MEDIA_ACCEL_REDIRECT = "/_private/"
    buyer, _, order_no = with_video
    url = buyer.get(f"/api/orders/{order_no}").json()["video_url"]
    response, body = _fetch(url)
    name = Order.objects.get(order_no=order_no).video.name
    assert response.status_code == 200 and body == b""
    assert response["X-Accel-Redirect"] == f"/_private/{name}"


def test_a_user_id_that_does_not_exist_is_refused():
    response, _ = _fetch(private_url("order-videos/none.mp4", reader_id=UserFactory().pk + 1000))
    assert response.status_code == 404
