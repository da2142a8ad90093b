"""Staff see offers read-only, filterable, with history, and inline on the listing's page."""

import pytest
from django.test import Client

from negotiation.models import Offer
from tests.factories import StaffFactory
from tests.negotiation.helpers import buyer, offer, seller_and_listing

pytestmark = pytest.mark.django_db


def test_offers_in_the_admin_read_only_and_inline_on_the_listing(make_client):
    seller, listing = seller_and_listing(make_client)
    made = offer(buyer(make_client), listing, 6_543)
    seller.post(f"/api/offers/{made['id']}/decline")
    staff = Client()
    staff.force_login(StaffFactory())

    changelist = staff.get("/admin/negotiation/offer/", {"status": "declined"})
    assert changelist.status_code == 200
    assert "¥65.43" in changelist.content.decode()  # staff read money in yuan
    assert (
        staff.get("/admin/negotiation/offer/", {"status": "open"}).context["cl"].result_count == 0
    )
    detail = staff.get(f"/admin/negotiation/offer/{made['id']}/change/")
    assert detail.status_code == 200
    assert "seller_declined" in detail.content.decode()  # the history inline
    assert staff.get("/admin/negotiation/offer/add/").status_code == 403
    assert (
        staff.post(f"/admin/negotiation/offer/{made['id']}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert Offer.objects.filter(pk=made["id"]).exists()

    page = staff.get(f"/admin/marketplace/listing/{listing.pk}/change/")
    assert page.status_code == 200
    assert "¥65.43" in page.content.decode()
