"""Keyword search and keyset pages at the query level (marketplace/selectors.py, docs/catalog.md
"Search"): one- and two-character Chinese words, the two PostgreSQL steps (the signature walk
of a sort index and the gram index) giving the same pages, and pages that stay stable."""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace import selectors
from marketplace.models import Listing
from tests.marketplace.catalog_factories import category_tree, make_listing

pytestmark = pytest.mark.django_db

SORT_KEYS = {
    "newest": lambda row: (row.approved_at, row.pk),
    "hot": lambda row: (row.views, row.pk),
    "price_asc": lambda row: (row.price_fen, row.pk),
    "price_desc": lambda row: (row.price_fen, row.pk),
}


@pytest.fixture
def cats(db):
    return category_tree()


@pytest.fixture(params=["walk", "index"])
def search_step(request, monkeypatch):
    """`walk`: pages found by walking the sort index; `index`: a walk that gives up at once,
    so every page comes from the gram index (PostgreSQL; SQLite has one path either way)."""
    if request.param == "index":
        monkeypatch.setattr(selectors, "SEARCH_WALK_ROWS", 1)
    return request.param


def _listings(cats, rows):
    base = timezone.now() - timedelta(hours=1)
    made = {}
    for age, (name, title, description) in enumerate(rows):
        listing = make_listing(category=cats["apple"], title=title, description=description)
        Listing.objects.filter(pk=listing.pk).update(approved_at=base - timedelta(minutes=age))
        made[name] = listing
    return made


def ids_of(response):
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("包", ["bag", "spaced"]),
        ("手机", ["old_phone", "case"]),  # a title and a description
        ("机", ["old_phone", "case", "straddle", "spaced"]),
        ("手机 壳", ["case"]),
        ("包 九成新", ["bag"]),
        ("新", ["bag", "straddle"]),
        ("壳个", []),
        ("罕", []),
    ],
)
def test_one_and_two_character_words_match_exactly(anon, cats, search_step, q, expected):
    made = _listings(
        cats,
        [
            ("bag", "双肩包 九成新", "自用"),
            ("old_phone", "旧手机", "电池不错"),
            ("case", "耳机", "送手机壳 一个"),
            # 手 ends the title and 机 starts the description: not the word 手机.
            ("straddle", "尾字手", "机器很新"),
            ("spaced", "包邮 手 机", "同城"),
        ],
    )
    response = anon.get("/api/listings", {"q": q})
    assert ids_of(response) == [made[name].pk for name in expected]


def _expected(rows, words, sort):
    """What the search must return, computed from the rows themselves."""
    hits = [
        row
        for row in rows
        if all(w.upper() in f"{row.title}\n{row.description}".upper() for w in words)
    ]
    return [
        row.pk
        for row in sorted(
            hits, key=SORT_KEYS[sort], reverse=sort in {"newest", "hot", "price_desc"}
        )
    ]


def _all_pages(anon, params):
    seen, cursor = [], None
    while True:
        response = anon.get("/api/listings", {**params, **({"cursor": cursor} if cursor else {})})
        seen += ids_of(response)
        cursor = response.json()["next_cursor"]
        if not cursor:
            return seen


@pytest.mark.parametrize("sort", ["newest", "hot", "price_asc", "price_desc"])
@pytest.mark.parametrize("q", ["包", "手机", "九成新", "iphone 包", "全新未拆"])
def test_every_page_of_a_search_in_every_sort(anon, cats, search_step, sort, q):
    words = ["包", "手机", "九成新", "iPhone", "全新未拆", "耳机"]
    base = timezone.now() - timedelta(hours=2)
    for i in range(24):
        listing = make_listing(
            category=cats["apple"],
            title=f"{words[i % 6]} {words[(i * 5) % 6]} #{i}",
            description=f"{words[(i * 7) % 5]}，配件齐全",
            price_fen=1000 + (i % 5),
            views=i % 3,
        )
        Listing.objects.filter(pk=listing.pk).update(approved_at=base + timedelta(minutes=i % 7))
    rows = list(Listing.objects.all())
    expected = _expected(rows, q.split(), sort)
    assert expected  # every query matches something here
    assert _all_pages(anon, {"q": q, "sort": sort, "limit": 4}) == expected


@pytest.mark.parametrize("sort", ["newest", "hot", "price_asc", "price_desc"])
def test_search_pages_stay_stable_while_listings_are_added(anon, cats, search_step, sort):
    base = timezone.now() - timedelta(hours=1)
    originals = []
    for i in range(9):
        listing = make_listing(
            category=cats["apple"], title=f"手机 {i}", price_fen=1000 + (i % 3), views=i % 2
        )
        Listing.objects.filter(pk=listing.pk).update(approved_at=base + timedelta(minutes=i % 4))
        originals.append(listing.pk)
    response = anon.get("/api/listings", {"q": "手机", "sort": sort, "limit": 4})
    seen = ids_of(response)
    cursor = response.json()["next_cursor"]
    # Listings arriving mid-browse, some with the very same sort keys, shift nothing already
    # handed out: the next page is "after this key", never an offset.
    for i in range(3):
        make_listing(category=cats["apple"], title=f"新手机 {i}", price_fen=1001, views=1)
    while cursor:
        response = anon.get(
            "/api/listings", {"q": "手机", "sort": sort, "limit": 4, "cursor": cursor}
        )
        seen += ids_of(response)
        cursor = response.json()["next_cursor"]
    assert len(seen) == len(set(seen))
    assert set(originals) <= set(seen)


def test_a_set_based_title_change_is_searchable_at_once(cats, search_step):
    listing = make_listing(category=cats["apple"], title="旧相机", description="成色好")

    def found(q):
        return [item["id"] for item in selectors.search_listings(q=q).items]

    assert found("相机") == [listing.pk]
    # An update() bypasses save(): the search data must follow the row by itself.
    Listing.objects.filter(pk=listing.pk).update(title="耳机")
    assert found("相机") == []
    assert found("耳") == [listing.pk]


_REFUSING_GRAMS = (
    "CREATE OR REPLACE FUNCTION catalog_grams(t text, longest int) RETURNS text[] "
    "LANGUAGE plpgsql IMMUTABLE STRICT AS $$ BEGIN "
    "RAISE EXCEPTION 'search data computed'; END $$"
)


@pytest.mark.postgres
def test_moving_or_counting_a_listing_leaves_its_search_data_alone(cats):
    """A listing's status, views and favourite count change on the live path (an acceptance
    reserves it, a sweep releases 2,000 at once); its search signature and grams depend only on
    the title and the description, and computing them cost more than the rest of the UPDATE.
    With the text functions made to fail (this test's transaction only), every write that leaves
    the text alone must still succeed, and a text change must still reach them."""
    from django.db import connection, transaction
    from django.db.utils import DatabaseError

    from marketplace.models import ListingStatus

    listing = make_listing(category=cats["apple"], title="旧相机", description="成色好")
    with connection.cursor() as cursor:
        cursor.execute(_REFUSING_GRAMS)
    rows = Listing.objects.filter(pk=listing.pk)
    for status in (ListingStatus.RESERVED, ListingStatus.SOLD, ListingStatus.OFF_SHELF):
        rows.update(status=status)
    rows.update(views=7, favorite_count=3)
    listing.refresh_from_db()
    listing.save()  # the ORM's whole-row save, text unchanged
    with pytest.raises(DatabaseError, match="search data computed"), transaction.atomic():
        rows.update(title="耳机")
