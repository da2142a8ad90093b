"""Builders for bargaining tests: a seller with a listing on sale, buyers with addresses."""

from marketplace.models import Listing
from negotiation.models import Offer
from realtime.models import Event
from tests.conftest import ApiClient
from tests.factories import AddressFactory
from tests.marketplace.order_helpers import listing_on_sale

PRICE = 10_000


def seller_and_listing(make_client, *, price_fen: int = PRICE, **kw) -> tuple[ApiClient, Listing]:
    seller = make_client()
    return seller, listing_on_sale(seller=seller.user, price_fen=price_fen, **kw)


def buyer(make_client, *, with_address: bool = True) -> ApiClient:
    client = make_client()
    if with_address:
        client.address = AddressFactory(user=client.user, is_default=True)
    return client


def offer(client: ApiClient, listing: Listing, price) -> dict:
    response = client.post(f"/api/listings/{listing.pk}/offers", {"price": price})
    assert response.status_code == 201, response.content
    return response.json()


def events(user, type_prefix: str = "offer.") -> list[tuple[str, int, str]]:
    """(type, offer id, status) of the user's offer events, in order."""
    return [
        (event.type, event.data["id"], event.data["status"])
        for event in Event.objects.filter(user=user, type__startswith=type_prefix).order_by("seq")
    ]


def status_of(offer_id: int) -> str:
    return Offer.objects.get(pk=offer_id).status
