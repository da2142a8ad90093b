"""`field__any_of=[...]` (project/lookups.py): the rows `field__in` gives, as one array
parameter on PostgreSQL instead of a placeholder per value (a sweep's 2,000 ids were split and
quoted by psycopg in Python, ~17 ms a statement)."""

import pytest
from django.db import connection

from marketplace.models import Listing, User
from tests.factories import UserFactory
from tests.marketplace.catalog_factories import category_tree, make_listing

pytestmark = pytest.mark.django_db


def test_the_same_rows_as_in_for_keys_foreign_keys_and_text():
    users = [UserFactory() for _ in range(3)]
    cats = category_tree()
    listings = [make_listing(category=cats["apple"], seller=user) for user in users]
    ids = [users[0].pk, users[2].pk, 10**12]
    assert set(User.objects.filter(pk__any_of=ids)) == set(User.objects.filter(pk__in=ids))
    sellers = [users[1].pk]
    assert list(Listing.objects.filter(seller_id__any_of=sellers)) == [listings[1]]
    assert list(Listing.objects.filter(seller__any_of=sellers)) == [listings[1]]
    assert list(Listing.objects.filter(seller__any_of=[users[1]])) == [listings[1]]
    names = [users[2].username, "nobody"]
    assert list(User.objects.filter(username__any_of=names)) == [users[2]]
    assert not User.objects.filter(pk__any_of=[]).exists()
    assert User.objects.filter(pk__any_of=ids).update(nickname="x") == 2


@pytest.mark.postgres
def test_one_parameter_whatever_the_number_of_values():
    sent = []

    def record(execute, sql, params, many, context):
        sent.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        list(User.objects.filter(pk__any_of=list(range(1, 2001))))
    ((sql, params),) = sent
    assert "= ANY(" in sql and len(params) == 1 and len(params[0]) == 2000
