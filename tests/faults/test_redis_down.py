"""Redis down: the API keeps serving. Events are stored in PostgreSQL and their live sends fail
after commit (logged); clients get them on resume once Redis is back. Rate limits and caches
fail open while Redis is away (docs/reliability.md)."""

import contextlib
from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.test import override_settings

from realtime.models import Event
from tests.factories import AddressFactory
from tests.marketplace.order_helpers import listing_on_sale

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

DEAD = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def _dead_redis():
    layers = {
        "default": {
            **settings.CHANNEL_LAYERS["default"],
            "CONFIG": {
                **settings.CHANNEL_LAYERS["default"]["CONFIG"],
                "hosts": [{"address": DEAD, "socket_timeout": 1, "socket_connect_timeout": 1}],
            },
        }
    }
    caches = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": DEAD,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    return _outage(override_settings(CHANNEL_LAYERS=layers, CACHES=caches, REDIS_URL=DEAD))


@contextlib.contextmanager
def _outage(overrides):
    from marketplace.gateways import wechat

    # The WeChat client holds its Redis token storage for the life of the process: rebuild it
    # for the outage and again after, as a process started during the outage would have it.
    with overrides:
        wechat.client.cache_clear()
        try:
            yield
        finally:
            wechat.client.cache_clear()


def test_the_api_keeps_serving_and_events_arrive_on_resume(anon, make_client, caplog):
    seller = make_client()
    buyer = make_client()
    address = AddressFactory(user=buyer.user, is_default=True)
    listing = listing_on_sale(seller=seller.user, price_fen=10_000)
    other = listing_on_sale(seller=seller.user, price_fen=10_000)
    with _dead_redis():
        code = anon.post("/sandbox/wechat/login-code", {"openid": "redis-down"}).json()["code"]
        signed_in = anon.post("/api/auth/wechat-login", {"code": code})
        assert signed_in.status_code == 200, signed_in.content  # throttle fails open
        assert buyer.get("/api/me").status_code == 200
        assert anon.get("/api/home").status_code == 200
        assert anon.get(f"/api/listings/{listing.pk}").status_code == 200  # view counting
        offer = buyer.post(f"/api/listings/{other.pk}/offers", {"price": 8_000})
        assert offer.status_code == 201, offer.content
        order = buyer.post("/api/orders", {"listing_id": listing.pk, "address_id": address.pk})
        assert order.status_code == 201, order.content
        assert anon.get("/readyz").status_code == 503
    stored = list(Event.objects.filter(user=seller.user).values_list("seq", "type"))
    assert ("offer.created" in {t for _, t in stored}) and len(stored) >= 2
    # Redis is back: a client that resumes from 0 gets everything it missed.
    events = seller.get("/api/events", {"since": 0}).json()
    got = [(e["seq"], e["type"]) for e in events["items"]]
    assert got == sorted(stored)
    assert anon.get("/readyz").status_code == 200


def test_a_task_that_cannot_be_enqueued_does_not_fail_the_committed_request(make_client):
    """Huey's Redis down at enqueue time: the cancellation is committed and answered 200; the
    refund it could not enqueue is submitted by the sweeper (before, the request was a 500)."""
    import redis
    from django.utils import timezone
    from huey import RedisHuey
    from huey.contrib.djhuey import HUEY

    from marketplace.actions.refunds import sweep_refunds
    from marketplace.models import Refund
    from project.huey import OutageTolerantRedisHuey
    from sandbox.models import SandboxRefund
    from tests.marketplace.fulfilment_helpers import paid_order

    assert isinstance(HUEY, OutageTolerantRedisHuey)
    buyer, _seller, order_no = paid_order(make_client)
    down = redis.ConnectionError("Error 111 connecting to redis")
    with mock.patch.object(RedisHuey, "enqueue", side_effect=down):
        response = buyer.post(f"/api/orders/{order_no}/cancel")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    refund = Refund.objects.get(order__order_no=order_no)
    assert refund.status == Refund.Status.PENDING and not SandboxRefund.objects.exists()
    assert sweep_refunds(now=timezone.now() + timedelta(minutes=3)) == {"submitted": 1}
    assert SandboxRefund.objects.count() == 1
