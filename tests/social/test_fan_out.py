"""News to favouriters and followers: off the seller's request, in batches, never twice."""

import pytest

from marketplace.actions import social
from marketplace.actions.catalog import approve_listing
from marketplace.models import Favorite, Follow, Listing, ListingBroadcast, ListingStatus, User
from realtime import presence
from realtime.models import Event, Notification
from tests.factories import StaffFactory
from tests.marketplace.order_helpers import (
    buyer_with_address,
    listing_on_sale,
    pay_in_wechat,
    place_order,
)

pytestmark = pytest.mark.django_db


def _fans(listing: Listing, count: int) -> list[int]:
    users = User.objects.bulk_create(
        [User(username=f"fan{listing.pk}-{i}", openid=f"fan-{listing.pk}-{i}") for i in range(count)]
    )
    Favorite.objects.bulk_create([Favorite(user=user, listing=listing) for user in users])
    Listing.objects.filter(pk=listing.pk).update(favorite_count=count)
    return [user.pk for user in users]


def _told(type: str) -> int:
    return Event.objects.filter(type=type).count()


def test_a_price_drop_reaches_5000_favouriters_once_even_when_the_task_runs_twice(make_client):
    seller = make_client()
    listing = listing_on_sale(seller=seller.user, price_fen=50_000)
    fans = _fans(listing, 5000)
    banned = fans[17]
    User.objects.filter(pk=banned).update(is_banned=True)

    response = seller.patch(f"/api/listings/{listing.pk}", {"price": 42_000})
    assert response.status_code == 200, response.content
    # The seller's request stored the news and queued it; it told nobody itself.
    broadcast = ListingBroadcast.objects.get(listing=listing)
    assert broadcast.kind == "listing.price_dropped" and broadcast.done_at is None
    assert _told("listing.price_dropped") == 0

    # A first run dies after two batches; then the task runs twice.
    assert social.fan_out_batch(broadcast_id=broadcast.pk) is True
    assert social.fan_out_batch(broadcast_id=broadcast.pk) is True
    social.fan_out_broadcast(broadcast_id=broadcast.pk)
    social.fan_out_broadcast(broadcast_id=broadcast.pk)

    assert _told("listing.price_dropped") == 4999
    assert Notification.objects.filter(type="listing.price_dropped").count() == 4999
    assert not Event.objects.filter(user_id=banned).exists()
    assert not Event.objects.filter(user_id=seller.user.pk, type="listing.price_dropped").exists()
    # One event per fan, each numbered once (no seq used twice by the second run).
    per_user = Event.objects.filter(type="listing.price_dropped").values("user_id").distinct()
    assert per_user.count() == 4999
    event = Event.objects.filter(user_id=fans[0]).get()
    assert (event.seq, event.data["old_price"], event.data["new_price"]) == (1, 50_000, 42_000)
    assert event.data["listing"]["id"] == listing.pk and event.data["listing"]["price"] == 42_000
    broadcast.refresh_from_db()
    assert broadcast.done_at is not None and broadcast.told == 4999
    note = Notification.objects.get(user_id=fans[0])
    assert (note.target_type, note.target_id) == ("listing", str(listing.pk))
    assert note.params["old_price"] == 50_000 and note.params["new_price"] == 42_000


def test_a_price_rise_or_a_listing_nobody_wants_tells_nobody(make_client):
    seller = make_client()
    wanted = listing_on_sale(seller=seller.user, price_fen=10_000)
    _fans(wanted, 3)
    unwanted = listing_on_sale(seller=seller.user, price_fen=10_000)
    assert seller.patch(f"/api/listings/{wanted.pk}", {"price": 12_000}).status_code == 200
    assert seller.patch(f"/api/listings/{unwanted.pk}", {"price": 8_000}).status_code == 200
    assert not ListingBroadcast.objects.exists()


def test_taken_down_and_sold_tell_the_favouriters(make_client):
    seller = make_client()
    shelved = listing_on_sale(seller=seller.user)
    sold = listing_on_sale(seller=seller.user)
    shelved_fans = _fans(shelved, 3)
    sold_fans = _fans(sold, 2)
    assert seller.post(f"/api/listings/{shelved.pk}/off-shelf").status_code == 200
    buyer, address_id = buyer_with_address(make_client)
    order_no = place_order(buyer, sold, address_id).json()["order_no"]
    pay_in_wechat(buyer, order_no)  # reserved → sold, a set-based move
    for broadcast in ListingBroadcast.objects.all():
        social.fan_out_broadcast(broadcast_id=broadcast.pk)
    reasons = {
        event.user_id: (event.data["reason"], event.data["listing"]["status"])
        for event in Event.objects.filter(type="listing.unavailable")
    }
    assert reasons == {
        **dict.fromkeys(shelved_fans, ("off_shelf", "off_shelf")),
        **dict.fromkeys(sold_fans, ("sold", "sold")),
    }
    # Taking it down again (idempotent) is no news.
    assert seller.post(f"/api/listings/{shelved.pk}/off-shelf").status_code == 200
    assert ListingBroadcast.objects.count() == 2


def test_followers_hear_of_a_newly_approved_listing_once(make_client):
    seller, fan, other = make_client(), make_client(), make_client()
    fan.post(f"/api/users/{seller.user.pk}/follow")
    other.post(f"/api/users/{seller.user.pk}/follow")
    listing = listing_on_sale(seller=seller.user, status=ListingStatus.PENDING_REVIEW)
    approve_listing(staff=StaffFactory(), listing_id=listing.pk)
    # An edit approved again is not new.
    seller.patch(f"/api/listings/{listing.pk}", {"title": "改了标题"})
    approve_listing(staff=StaffFactory(), listing_id=listing.pk)
    assert ListingBroadcast.objects.filter(kind="listing.new_from_followed").count() == 1
    social.fan_out_broadcast(broadcast_id=ListingBroadcast.objects.get().pk)
    told = Event.objects.filter(type="listing.new_from_followed")
    assert sorted(told.values_list("user_id", flat=True)) == sorted([fan.user.pk, other.user.pk])
    assert Follow.objects.count() == 2


def test_the_sweep_requeues_an_unfinished_broadcast(make_client, monkeypatch):
    seller = make_client()
    listing = listing_on_sale(seller=seller.user, price_fen=10_000)
    _fans(listing, 3)
    seller.patch(f"/api/listings/{listing.pk}", {"price": 9_000})
    ListingBroadcast.objects.update(created_at="2020-01-01T00:00:00Z")
    queued = []
    monkeypatch.setattr(social, "enqueue", lambda name, *args: queued.append((name, args)))
    assert social.sweep_broadcasts() == 1
    assert queued == [(social.FAN_OUT_TASK, (ListingBroadcast.objects.get().pk,))]


def test_people_with_a_socket_open_are_told_first_and_once(make_client):
    seller = make_client()
    listing = listing_on_sale(seller=seller.user, price_fen=10_000)
    fans = _fans(listing, 2500)
    online = [fans[2400], fans[7]]
    for user_id in online:
        presence.mark_connected(user_id, f"conn-{user_id}")
    seller.patch(f"/api/listings/{listing.pk}", {"price": 9_000})
    broadcast = ListingBroadcast.objects.get()
    assert social.fan_out_batch(broadcast_id=broadcast.pk) is True
    told = set(Event.objects.filter(type="listing.price_dropped").values_list("user_id", flat=True))
    assert told == set(online)
    social.fan_out_broadcast(broadcast_id=broadcast.pk)
    assert Event.objects.filter(type="listing.price_dropped").count() == 2500
    assert Event.objects.filter(user_id=fans[2400]).count() == 1
    broadcast.refresh_from_db()
    assert broadcast.told == 2500 and sorted(broadcast.early_user_ids) == sorted(online)


def test_a_walk_gives_its_worker_back_between_runs(make_client, monkeypatch):
    """A long walk (the offline favouriters) runs a few batches, then queues its continuation
    behind whatever came in meanwhile: a newer drop's people-online batch must not wait for two
    walks to finish on a two-thread consumer (measured: 13 s instead of 4 for the third drop)."""
    seller = make_client()
    listing = listing_on_sale(seller=seller.user, price_fen=10_000)
    _fans(listing, 350)
    monkeypatch.setattr(social, "FAN_OUT_PAUSE_SECONDS", 0)
    seller.patch(f"/api/listings/{listing.pk}", {"price": 9_000})
    broadcast = ListingBroadcast.objects.get()
    queued = []
    monkeypatch.setattr(social, "enqueue", lambda name, *args: queued.append((name, args)))

    social.fan_out_broadcast(broadcast_id=broadcast.pk, batch=100)
    broadcast.refresh_from_db()
    # The online batch (nobody) and WALK_BATCHES_PER_RUN batches of 100, then the rest queued.
    assert broadcast.done_at is None
    assert broadcast.told == 100 * social.WALK_BATCHES_PER_RUN
    assert queued == [(social.FAN_OUT_TASK, (broadcast.pk,))]
    runs = 1
    while queued:
        queued.pop()
        social.fan_out_broadcast(broadcast_id=broadcast.pk, batch=100)
        runs += 1
    assert runs == 2  # the second run: one batch then WALK_BATCHES_PER_RUN more (the last short)
    broadcast.refresh_from_db()
    assert broadcast.done_at is not None and broadcast.told == 350
    assert _told("listing.price_dropped") == 350
