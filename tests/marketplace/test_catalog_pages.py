"""The public listing page as `GET /api/listings` sends it is byte for byte the page the model
representation gives: on PostgreSQL the page comes from one hand-written, prepared statement
(marketplace/catalog_pages.py) and is rendered without a second validation; this checks both
against `listing_summary_data` of the model rows, validated by the ListingPage schema."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from django.utils import timezone

from marketplace.api.catalog import ListingPage
from marketplace.models import Listing, ListingCondition
from marketplace.representations import listing_summary_data
from project.wire import API_RENDERER
from tests.factories import UserFactory
from tests.marketplace.catalog_factories import category_tree, make_listing

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(db):
    cats = category_tree()
    base = timezone.now() - timedelta(hours=3)
    sellers = [
        UserFactory(nickname='卖家 "引号" \\ 斜杠', avatar_url="https://img.example/a.png"),
        UserFactory(nickname="", avatar_url=""),
        UserFactory(nickname="小明"),
    ]
    made = []
    for i in range(14):
        listing = make_listing(
            category=cats["apple"] if i % 3 else cats["laptops"],
            seller=sellers[i % 3],
            title=f"{['手机', '双肩包', '相机 九成新'][i % 3]} #{i} \u2028 \t 𝄞",
            description="自用，包邮" if i % 2 else '配件齐全\n"全新"',
            price_fen=1000 + 7 * (i % 4),
            original_price_fen=None if i % 2 else 5000 + i,
            shipping_fee_fen=0 if i % 3 else 800,
            city_code="110100" if i % 2 else "",
            condition=list(ListingCondition)[i % 4] if i % 5 else "",
            views=i % 3,
            favorite_count=i % 4,
        )
        Listing.objects.filter(pk=listing.pk).update(
            approved_at=base + timedelta(minutes=i % 5, microseconds=i)
        )
        made.append(listing)
    Listing.objects.filter(pk=made[3].pk).update(cover="")
    # A banned seller's listing matches every query here and must appear in none.
    banned = make_listing(
        category=cats["apple"],
        seller=UserFactory(is_banned=True),
        title="手机 双肩包 自用",
        price_fen=1007,
        city_code="110100",
        condition="like_new",
    )
    return cats, banned


def _expected(body: dict) -> bytes:
    """The same page from the model rows, through the schema, as the API rendered it before."""
    ids = [item["id"] for item in body["items"]]
    rows = Listing.objects.select_related("seller").in_bulk(ids)
    data = {
        "items": [listing_summary_data(listing=rows[pk]) for pk in ids],
        "next_cursor": body["next_cursor"],
    }
    dumped = ListingPage.model_validate(data).model_dump()
    rendered = API_RENDERER.render(RequestFactory().get("/"), dumped, response_status=200)
    return rendered.encode() if isinstance(rendered, str) else rendered


def _pages(anon, params):
    cursor, pages = None, []
    while True:
        cache.clear()  # every page built afresh, not from the storefront cache
        response = anon.get("/api/listings", {**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.content
        pages.append(response)
        cursor = response.json()["next_cursor"]
        if not cursor:
            return pages


@pytest.mark.parametrize("sort", ["newest", "hot", "price_asc", "price_desc"])
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": "手机"},
        {"q": "包 自用"},
        {"min_price": 1007, "max_price": 1014},
        {"category": "phones", "city": "110100"},
        {"condition": "like_new"},
    ],
)
def test_every_page_is_the_model_representation_byte_for_byte(anon, catalog, sort, params):
    cats, banned = catalog
    if params.get("category") == "phones":
        params = {**params, "category": cats["phones"].pk}
    pages = _pages(anon, {**params, "sort": sort, "limit": 4})
    assert pages[0].json()["items"]  # every query here matches something
    for response in pages:
        assert response.content == _expected(response.json())
        assert banned.pk not in [item["id"] for item in response.json()["items"]]
