"""Every `*_url` the API and the socket hand out is absolute, from MEDIA_BASE_URL (default
PUBLIC_BASE_URL), never from the request's host: events and tasks have no request, and cached
public bodies are shared by every client."""

import pytest
from django.conf import settings

from marketplace.actions.catalog import approve_listing
from marketplace.models import ListingStatus
from realtime.models import Event
from tests.factories import StaffFactory
from tests.marketplace.catalog_factories import (
    category_tree,
    image_bytes,
    make_listing,
    post_upload,
    upload_file,
)
from tests.marketplace.fulfilment_helpers import paid_order, post_video

pytestmark = pytest.mark.django_db(transaction=True)

CDN = "https://cdn.example.com"


def test_media_base_url_defaults_to_the_public_base_url():
    assert settings.MEDIA_BASE_URL == settings.PUBLIC_BASE_URL


def test_uploads_come_back_absolute_from_the_setting_not_the_request_host(client_of, settings):
    settings.MEDIA_BASE_URL = CDN
    response = client_of.client.post(
        "/api/uploads/images",
        {"file": _jpeg()},
        headers={"Authorization": f"Bearer {client_of.token}"},
        HTTP_HOST="attacker.example",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["url"].startswith(f"{CDN}{settings.MEDIA_URL}listings/"), body
    assert body["thumbnail_url"].startswith(f"{CDN}{settings.MEDIA_URL}listings/"), body


def test_an_uploaded_image_is_accepted_as_the_avatar(client_of):
    url = post_upload(client_of, image_bytes()).json()["url"]
    response = client_of.patch("/api/me", {"avatar_url": url})
    assert response.status_code == 200, response.content
    assert response.json()["avatar_url"] == url


def test_listing_pages_and_the_review_event_carry_absolute_urls(anon, settings):
    settings.MEDIA_BASE_URL = CDN
    listing = make_listing(category=category_tree()["apple"], status=ListingStatus.PENDING_REVIEW)
    approve_listing(staff=StaffFactory(), listing_id=listing.pk)

    detail = anon.get(f"/api/listings/{listing.pk}").json()
    home = anon.get("/api/home").json()
    event = Event.objects.get(user_id=listing.seller_id, type="listing.reviewed")

    for body in (detail, event.data):
        assert body["cover_url"].startswith(CDN + "/"), body
        assert body["images"] and all(url.startswith(CDN + "/") for url in body["images"])
        assert all(url.startswith(CDN + "/") for url in body["thumbnails"])
    assert home["newest"][0]["cover_url"].startswith(CDN + "/")


def test_the_order_video_url_is_absolute_private_and_absent_from_the_event(make_client, settings):
    settings.MEDIA_BASE_URL = CDN
    buyer, seller, order_no = paid_order(make_client)
    response = post_video(seller, order_no)
    assert response.status_code == 200, response.content
    # Private: on our own signed view, never under the public media prefix or the CDN.
    assert response.json()["video_url"].startswith(f"{settings.PUBLIC_BASE_URL}/api/private-media/")
    event = Event.objects.get(user=buyer.user, type="order.video_ready")
    assert event.data["video_url"] is None and event.data["has_video"] is True


def _jpeg():
    return upload_file(image_bytes())
