"""Favourites and follows under concurrency, with real threads on PostgreSQL: a double tap
favourites once, and after storms of taps the counters equal the rows they count."""

import random

import psycopg
import pytest

from marketplace.actions import social
from marketplace.actions.catalog import update_listing
from marketplace.models import Favorite, Follow, Listing, ListingBroadcast, User
from realtime import push
from realtime.models import Event, Notification
from tests.factories import UserFactory
from tests.marketplace.order_helpers import listing_on_sale
from tests.races import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_double_tap_favourites_once():
    listing = listing_on_sale()
    buyer = UserFactory()
    results = race(*(lambda: social.favorite_listing(user=buyer, listing_id=listing.pk),) * 8)
    assert results == [1] * 8, results
    assert Favorite.objects.filter(listing=listing).count() == 1
    listing.refresh_from_db()
    assert listing.favorite_count == 1


def test_a_double_untap_unfavourites_once():
    listing = listing_on_sale()
    buyer = UserFactory()
    social.favorite_listing(user=buyer, listing_id=listing.pk)
    results = race(*(lambda: social.unfavorite_listing(user=buyer, listing_id=listing.pk),) * 8)
    assert results == [0] * 8, results
    listing.refresh_from_db()
    assert listing.favorite_count == 0 == Favorite.objects.count()


def test_counters_equal_the_rows_after_a_storm_of_taps():
    listings = [listing_on_sale() for _ in range(2)]
    sellers = [UserFactory() for _ in range(2)]
    users = [UserFactory() for _ in range(6)]
    rng = random.Random(16)
    calls = []
    for _ in range(40):
        user = rng.choice(users)
        listing = rng.choice(listings)
        seller = rng.choice(sellers)
        calls.append(
            rng.choice(
                [
                    lambda u=user, lst=listing: social.favorite_listing(user=u, listing_id=lst.pk),
                    lambda u=user, lst=listing: social.unfavorite_listing(user=u, listing_id=lst.pk),
                    lambda u=user, s=seller: social.follow_seller(user=u, seller_id=s.pk),
                    lambda u=user, s=seller: social.unfollow_seller(user=u, seller_id=s.pk),
                ]
            )
        )
    results = race(*calls)
    assert not [r for r in results if isinstance(r, BaseException)], results
    for listing in Listing.objects.filter(pk__in=[lst.pk for lst in listings]):
        assert listing.favorite_count == Favorite.objects.filter(listing=listing).count()
    for seller in User.objects.filter(pk__in=[s.pk for s in sellers]):
        assert seller.follower_count == Follow.objects.filter(seller=seller).count()


def test_two_fan_outs_of_one_broadcast_at_once_tell_everyone_once():
    seller = UserFactory()
    listing = listing_on_sale(seller=seller, price_fen=30_000)
    fans = User.objects.bulk_create(
        [User(username=f"pgfan{i}", openid=f"pgfan-{i}") for i in range(2500)]
    )
    Favorite.objects.bulk_create([Favorite(user=fan, listing=listing) for fan in fans])
    Listing.objects.filter(pk=listing.pk).update(favorite_count=len(fans))
    update_listing(seller=seller, listing_id=listing.pk, data={"price_fen": 25_000})
    broadcast = ListingBroadcast.objects.get(listing=listing)
    # The task may already have run on commit (immediate Huey): run it twice more, together.
    race(
        lambda: social.fan_out_broadcast(broadcast_id=broadcast.pk),
        lambda: social.fan_out_broadcast(broadcast_id=broadcast.pk),
    )
    assert Event.objects.filter(type="listing.price_dropped").count() == 2500
    assert Notification.objects.filter(type="listing.price_dropped").count() == 2500
    assert Event.objects.filter(type="listing.price_dropped").values("user_id").distinct().count() == 2500


def test_a_batch_stores_its_events_and_notifications_by_copy(monkeypatch):
    seller = UserFactory()
    listing = listing_on_sale(seller=seller, price_fen=30_000)
    fans = User.objects.bulk_create(
        [User(username=f"copyfan{i}", openid=f"copyfan-{i}") for i in range(300)]
    )
    Favorite.objects.bulk_create([Favorite(user=fan, listing=listing) for fan in fans])
    broadcast = ListingBroadcast.objects.create(
        kind="listing.price_dropped",
        listing=listing,
        data={"listing": {"id": listing.pk, "title": listing.title}, "old_price": 2, "new_price": 1},
    )
    copies, sent = [], []
    original_copy = psycopg.Cursor.copy

    def copy(self, statement, *args, **kwargs):
        copies.append(str(statement).split(" (")[0])
        return original_copy(self, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", copy)
    monkeypatch.setattr(push, "_send", sent.extend)
    social.fan_out_broadcast(broadcast_id=broadcast.pk)
    # One batch of 300 (at least COPY_FROM): the events and the entries streamed by COPY.
    assert push.COPY_FROM <= 300
    assert copies == ["COPY realtime_event", "COPY realtime_notification"]
    # The frames assembled from encoded parts are exactly what a replay sends.
    stored = {event.user_id: event for event in Event.objects.filter(type="listing.price_dropped")}
    assert len(sent) == 300
    for user_id, message in sent:
        assert message["seq"] == stored[user_id].seq
        assert message["text"] == push.event_frame_text(stored[user_id])
    assert Event.objects.filter(type="listing.price_dropped").count() == 300
    assert Notification.objects.filter(type="listing.price_dropped").count() == 300
