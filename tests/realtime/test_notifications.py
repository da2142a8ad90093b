"""The notification centre: entries stored with the events, rendered when read in the reader's
language, read state, the badge summary and the prune."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from realtime.models import Notification
from realtime.notifications import NOTIFIED_TYPES
from realtime.push import emit
from realtime.tasks import prune_notifications
from tests.conftest import assert_error
from tests.marketplace.order_helpers import listing_on_sale
from tests.negotiation.helpers import buyer as make_buyer
from tests.negotiation.helpers import offer as post_offer
from tests.negotiation.helpers import seller_and_listing

pytestmark = pytest.mark.django_db


def _emit(user_ids, type, data):
    with transaction.atomic():
        emit(user_ids=user_ids, type=type, data=data)


def test_an_offer_becomes_a_notification_for_the_seller_rendered_per_language(make_client):
    seller, listing = seller_and_listing(make_client)
    buyer = make_buyer(make_client)
    offer = post_offer(buyer, listing, 7_000)
    items = seller.get("/api/notifications").json()["items"]
    assert len(items) == 1
    entry = items[0]
    assert entry["type"] == "offer.created"
    assert (entry["title"], entry["body"]) == ("收到新出价", "买家出价 ¥70.00")
    assert entry["target"] == {"type": "offer", "id": offer["id"]}
    assert entry["read_at"] is None and entry["created_at"]
    english = seller.get("/api/notifications", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert english.json()["items"][0]["title"] == "New offer"
    assert english.json()["items"][0]["body"] == "A buyer offered ¥70.00"
    # The buyer's own move is not news for the buyer (the event went to the seller only).
    assert buyer.get("/api/notifications").json()["items"] == []


def test_chat_messages_and_read_receipts_are_not_stored(user):
    assert "message.created" not in NOTIFIED_TYPES and "message.read" not in NOTIFIED_TYPES
    _emit([user.pk], "withdrawal.updated", {"id": 1, "amount": 500, "status": "paid"})
    assert Notification.objects.filter(user=user).count() == 1


def test_list_is_newest_first_with_unread_filter_and_cursor(client_of, user):
    for amount in (100, 200, 300):
        _emit([user.pk], "wallet.credited", {"id": amount, "amount": amount, "order_no": "X"})
    first = client_of.get("/api/notifications", {"limit": 2}).json()
    assert [item["body"] for item in first["items"]] == ["¥3.00 已计入余额", "¥2.00 已计入余额"]
    rest = client_of.get("/api/notifications", {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [item["body"] for item in rest["items"]] == ["¥1.00 已计入余额"]
    assert rest["next_cursor"] is None
    newest = first["items"][0]["id"]
    marked = client_of.post("/api/notifications/read", {"ids": [newest]}).json()
    assert marked == {"updated": 1, "unread_notifications": 2}
    unread = client_of.get("/api/notifications", {"unread": "true"}).json()["items"]
    assert newest not in [item["id"] for item in unread] and len(unread) == 2
    assert client_of.get("/api/notifications/summary").json() == {
        "unread_notifications": 2,
        "unread_messages": 0,
    }
    assert client_of.post("/api/notifications/read", {"all": True}).json() == {
        "updated": 2,
        "unread_notifications": 0,
    }
    assert client_of.post("/api/notifications/read", {"all": True}).json()["updated"] == 0


def test_read_refuses_bad_bodies_and_ignores_other_users_ids(make_client, user):
    _emit([user.pk], "wallet.credited", {"id": 1, "amount": 100})
    theirs = Notification.objects.get(user=user)
    stranger = make_client()
    assert stranger.post("/api/notifications/read", {"ids": [theirs.pk]}).json()["updated"] == 0
    theirs.refresh_from_db()
    assert theirs.read_at is None
    assert_error(stranger.post("/api/notifications/read", {}), 422)
    assert_error(stranger.post("/api/notifications/read", {"ids": [1], "all": True}), 422)
    assert_error(stranger.post("/api/notifications/read", {"ids": []}), 400, "ids_required")
    assert_error(stranger.post("/api/notifications/read", {"ids": ["x"]}), 422)
    assert_error(stranger.get("/api/notifications", {"cursor": "abc"}), 422)
    assert stranger.get("/api/notifications").json()["items"] == []


def test_signed_out_readers_get_401(anon):
    assert_error(anon.get("/api/notifications"), 401)
    assert_error(anon.get("/api/notifications/summary"), 401)
    assert_error(anon.post("/api/notifications/read", {"all": True}), 401)


def test_a_price_drop_reads_as_the_mini_program_shows_it(client_of, user):
    listing = listing_on_sale(title="九成新 iPhone 13")
    data = {
        "listing": {"id": listing.pk, "title": listing.title, "price": 42_000},
        "old_price": 50_000,
        "new_price": 42_000,
    }
    _emit([user.pk], "listing.price_dropped", data)
    entry = client_of.get("/api/notifications").json()["items"][0]
    assert entry["title"] == "想要的宝贝降价了"
    assert entry["body"] == "《九成新 iPhone 13》从 ¥500.00 降到 ¥420.00"
    assert entry["target"] == {"type": "listing", "id": listing.pk}
    english = client_of.get("/api/notifications", headers={"Accept-Language": "en"}).json()
    assert english["items"][0]["body"] == "“九成新 iPhone 13” dropped from ¥500.00 to ¥420.00"


def test_the_prune_deletes_old_read_entries_only(user, settings):
    settings.NOTIFICATION_READ_RETENTION_DAYS = 30
    for _ in range(3):
        _emit([user.pk], "wallet.credited", {"id": 1, "amount": 100})
    old_read, old_unread, fresh_read = Notification.objects.order_by("id")
    long_ago = timezone.now() - timedelta(days=31)
    Notification.objects.filter(pk=old_read.pk).update(read_at=long_ago, created_at=long_ago)
    Notification.objects.filter(pk=old_unread.pk).update(created_at=long_ago)
    Notification.objects.filter(pk=fresh_read.pk).update(read_at=timezone.now())
    assert prune_notifications.call_local() == 1
    assert set(Notification.objects.values_list("pk", flat=True)) == {old_unread.pk, fresh_read.pk}
