
"""Offers expire by their task (scheduled on commit at expires_at) and by the sweeper."""

from datetime import UTC, timedelta

import pytest
from django.utils import timezone
from huey.contrib.djhuey import HUEY

from marketplace.models.orders import PlatformSettings
from marketplace.selectors import platform_settings_changed
from negotiation import tasks
from negotiation.actions import handle_offer_expiry, sweep_expired_offers
from negotiation.models import Offer
from tests.conftest import assert_error
from tests.negotiation.helpers import buyer, events, offer, seller_and_listing, status_of

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_schedule():
    HUEY.flush()
    yield
    HUEY.flush()


def scheduled_expiries() -> list[tuple[int, object]]:
    return [
        (task.args[0], task.eta)
        for task in HUEY.scheduled()
        if task.name.endswith("offer_expiry_task")
    ]


def as_naive_utc(moment):
    return moment.astimezone(UTC).replace(tzinfo=None)


def test_the_expiry_task_is_scheduled_on_commit_and_expires_the_offer(
    make_client, django_capture_on_commit_callbacks
):
    PlatformSettings.objects.update_or_create(pk=1, defaults={"offer_expiry_hours": 2})
    platform_settings_changed()  # as staff changes do
    seller, listing = seller_and_listing(make_client)
    alice = buyer(make_client)
    with django_capture_on_commit_callbacks(execute=True):
        made = offer(alice, listing, 5_000)
    row = Offer.objects.get(pk=made["id"])
    assert timedelta(hours=1, minutes=59) < row.expires_at - row.created_at <= timedelta(hours=2)
    assert scheduled_expiries() == [(row.pk, as_naive_utc(row.expires_at))]

    # The task fired early (a clock skew, a retry): nothing happens.
    assert tasks.offer_expiry_task.call_local(row.pk) == "not_due"
    assert status_of(row.pk) == "open"

    Offer.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert tasks.offer_expiry_task.call_local(row.pk) == "expired"
    assert status_of(row.pk) == "expired"
    assert events(alice.user)[-1] == ("offer.expired", row.pk, "expired")
    assert events(seller.user)[-1] == ("offer.expired", row.pk, "expired")
    # Idempotent: running it again changes nothing and tells nobody twice.
    assert tasks.offer_expiry_task.call_local(row.pk) == "not_live"
    assert [e[0] for e in events(alice.user)].count("offer.expired") == 1
    assert_error(seller.post(f"/api/offers/{row.pk}/accept"), 409, "offer_not_open")


def test_a_counter_restarts_the_clock_and_schedules_a_new_task(
    make_client, django_capture_on_commit_callbacks
):
    seller, listing = seller_and_listing(make_client)
    made = offer(buyer(make_client), listing, 5_000)
    Offer.objects.filter(pk=made["id"]).update(expires_at=timezone.now() + timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        response = seller.post(f"/api/offers/{made['id']}/counter", {"price": 8_000})
    assert response.status_code == 200
    row = Offer.objects.get(pk=made["id"])
    assert row.expires_at - timezone.now() > timedelta(hours=23)
    assert (row.pk, as_naive_utc(row.expires_at)) in scheduled_expiries()
    # The task scheduled for the old deadline finds it not due any more.
    assert handle_offer_expiry(offer_id=row.pk, now=timezone.now() + timedelta(minutes=6)) == (
        "not_due"
    )
    assert status_of(row.pk) == "countered"


def test_the_sweeper_expires_exactly_the_due_live_offers(make_client):
    seller, listing = seller_and_listing(make_client)
    due_open = offer(buyer(make_client), listing, 5_000)
    due_countered = offer(buyer(make_client), listing, 5_100)
    seller.post(f"/api/offers/{due_countered['id']}/counter", {"price": 9_000})
    not_due = offer(buyer(make_client), listing, 5_200)
    finished = offer(buyer(make_client), listing, 5_300)
    seller.post(f"/api/offers/{finished['id']}/decline")
    past = timezone.now() - timedelta(minutes=1)
    Offer.objects.filter(pk__in=[due_open["id"], due_countered["id"], finished["id"]]).update(
        expires_at=past
    )

    assert sweep_expired_offers() == {"expired": 2}
    assert status_of(due_open["id"]) == "expired"
    assert status_of(due_countered["id"]) == "expired"
    assert status_of(not_due["id"]) == "open"
    assert status_of(finished["id"]) == "declined"
    assert sweep_expired_offers() == {}  # nothing left: the sweep is idempotent
    # The periodic task is the same sweep.
    assert tasks.sweep_expired_offers.call_local() == {}
    assert sweep_expired_offers(now=timezone.now() + timedelta(days=2)) == {"expired": 1}


def test_expiry_makes_room_for_a_new_offer(make_client):
    _, listing = seller_and_listing(make_client)
    alice = buyer(make_client)
    made = offer(alice, listing, 5_000)
    handle_offer_expiry(offer_id=made["id"], now=timezone.now() + timedelta(days=2))
    assert offer(alice, listing, 5_500)["status"] == "open"
