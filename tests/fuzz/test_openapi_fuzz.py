"""Schemathesis fuzzing of every operation in /api/openapi.json, in-process over WSGI.

A signed-in user who owns a listing, an address, an order (as buyer and as seller), an offer,
a payout account and a withdrawal drives every operation; every other generated case has its
path ids replaced by that user's real ones, so the fuzzer reaches past the ownership lookups
into the actions. Checks: no 5xx, documented status codes, response bodies and content types
that match the document. Bounded by FUZZ_MAX_EXAMPLES (per operation) so CI stays fast;
FUZZ_RANDOM=1 draws new cases instead of CI's fixed ones.
"""

import itertools
import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from marketplace.actions.accounts import issue_token
from project.wsgi import application
from tests.factories import AddressFactory, UserFactory
from tests.marketplace.catalog_factories import make_upload
from tests.marketplace.order_helpers import listing_on_sale, pay_in_wechat, place_order
from tests.marketplace.wallet_helpers import credit, make_account

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "12"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_wsgi("/api/openapi.json", application)


@pytest.fixture
def wsgi_in_test_transaction(world):
    """The real WSGI handler closes the connection around each request, which would end the
    test's transaction; Django's own test client unhooks the same signal for the same reason
    (and hooks it back after each of its requests, hence after `world` is built)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(db, make_client):
    """A user with something of every kind, so authenticated paths go deep."""
    me = make_client(UserFactory())
    other = make_client(UserFactory())
    address = AddressFactory(user=me.user, is_default=True)
    AddressFactory(user=other.user, is_default=True)
    mine = listing_on_sale(seller=me.user, price_fen=20_000)
    bought = listing_on_sale(seller=other.user, price_fen=15_000)
    order_no = place_order(me, bought, address.pk).json()["order_no"]
    pay_in_wechat(me, order_no)
    sold_no = place_order(other, listing_on_sale(seller=me.user), other.user.addresses.first().pk)
    sold_no = sold_no.json()["order_no"]
    offer = other.post(f"/api/listings/{mine.pk}/offers", {"price": 18_000}).json()
    credit(me.user, 50_000)
    account = make_account(me.user)
    withdrawal = me.post("/api/wallet/withdrawals", {"amount": 1_000, "account_id": account.pk})
    upload = make_upload(me.user)
    ids = {
        "user_id": me.user.pk,
        "address_id": address.pk,
        "listing_id": mine.pk,
        "order_no": itertools.cycle([order_no, sold_no]),
        "offer_id": offer["id"],
        "account_id": account.pk,
        "withdrawal_id": withdrawal.json()["id"],
        "upload_id": upload.pk,
    }
    return {"token": issue_token(user=me.user), "ids": ids, "turn": itertools.count()}


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    # CI replays the same cases (a red build is reproducible); FUZZ_RANDOM=1 explores anew.
    derandomize=os.environ.get("FUZZ_RANDOM") != "1",
)
def test_api_conforms_and_never_fails(case, world, wsgi_in_test_transaction):
    if next(world["turn"]) % 2 and case.path_parameters:
        for name in case.path_parameters:
            real = world["ids"].get(name)
            if real is not None:
                case.path_parameters[name] = next(real) if hasattr(real, "__next__") else real
    case.call_and_validate(headers={"Authorization": f"Bearer {world['token']}"}, checks=CHECKS)
