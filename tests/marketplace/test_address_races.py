"""Changing the default address under concurrency (issue 20, finding 10): ten 'set default'
requests at once answered 500 five times on the one-default-per-user unique index."""

import pytest

from marketplace.models import Address
from tests.factories import AddressFactory
from tests.races import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _set_default(client, address_id: int):
    return lambda: client.patch(f"/api/addresses/{address_id}", {"is_default": True})


def test_ten_concurrent_set_defaults_all_succeed_and_leave_one_default(make_client):
    me = make_client()
    addresses = [AddressFactory(user=me.user, is_default=(i == 0)) for i in range(10)]

    results = race(*[_set_default(me, address.pk) for address in addresses])

    assert [getattr(r, "status_code", r) for r in results] == [200] * 10
    assert Address.objects.filter(user=me.user, is_default=True).count() == 1


def test_set_default_racing_creation_and_deletion_leaves_exactly_one_default(make_client):
    me = make_client()
    first, second, third = (AddressFactory(user=me.user, is_default=(i == 0)) for i in range(3))
    new = {
        "name": "李四",
        "phone": "13900139000",
        "province": "p",
        "city": "c",
        "district": "d",
        "detail": "x",
        "is_default": True,
    }

    results = race(
        _set_default(me, second.pk),
        _set_default(me, third.pk),
        lambda: me.post("/api/addresses", new),
        lambda: me.delete(f"/api/addresses/{first.pk}"),
    )

    statuses = [getattr(r, "status_code", r) for r in results]
    assert statuses == [200, 200, 201, 204], statuses
    assert Address.objects.filter(user=me.user, is_default=True).count() == 1
