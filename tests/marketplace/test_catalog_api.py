"""Catalog through the HTTP API: publishing, editing, visibility, search, views, pagination."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from marketplace.actions import catalog as catalog_actions
from marketplace.actions.accounts import ban_user
from marketplace.models import Listing, ListingStatus, ListingView
from marketplace.tasks import flush_listing_views
from tests.conftest import assert_error
from tests.factories import StaffFactory, UserFactory
from tests.marketplace.catalog_factories import (
    category_tree,
    image_bytes,
    make_listing,
    post_upload,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def cats(db):
    return category_tree()


def publish_body(category, image_ids, **extra):
    return {
        "category_id": category.pk,
        "title": "九成新 iPhone 13",
        "description": "自用一年，无磕碰。",
        "features": [{"name": "品牌", "value": "Apple"}, {"name": "成色", "value": "九成新"}],
        "image_ids": image_ids,
        "price": 300000,
        **extra,
    }


def upload_ids(client, n=1):
    ids = []
    for _ in range(n):
        response = post_upload(client, image_bytes())
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    return ids


# --- categories, banners, home ------------------------------------------------------------


def test_category_tree_lists_active_categories_with_children(anon, cats):
    response = anon.get("/api/categories")
    assert response.status_code == 200
    tree = response.json()
    assert [c["name"] for c in tree] == ["手机", "电脑"]  # inactive root hidden
    assert [c["name"] for c in tree[0]["children"]] == ["苹果", "安卓"]
    assert tree[0]["children"][0]["children"] == []


def test_home_has_hot_and_newest_of_public_listings_only(anon, cats):
    old = make_listing(category=cats["apple"], title="旧的", views=50)
    old.approved_at = timezone.now() - timedelta(days=1)
    old.save()
    new = make_listing(category=cats["apple"], title="新的", views=1)
    make_listing(category=cats["apple"], title="待审", status=ListingStatus.PENDING_REVIEW)
    response = anon.get("/api/home")
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["hot"]] == [old.pk, new.pk]
    assert [item["id"] for item in body["newest"]] == [new.pk, old.pk]
    assert body["categories"][0]["name"] == "手机"
    assert body["newest"][0]["seller"]["id"] == new.seller_id
    assert body["newest"][0]["cover_url"].endswith("_thumb.jpg")


# --- publishing ---------------------------------------------------------------------------


def test_publish_goes_to_review_and_is_only_visible_to_the_seller(client_of, anon, cats):
    ids = upload_ids(client_of, 3)
    response = client_of.post("/api/listings", publish_body(cats["apple"], ids))
    assert response.status_code == 201, response.content
    listing = response.json()
    assert listing["status"] == "pending_review"
    assert listing["price"] == 300000
    assert len(listing["images"]) == 3
    assert listing["category"] == {"id": cats["apple"].pk, "name": "苹果"}
    assert listing["features"][0] == {"name": "品牌", "value": "Apple"}

    assert_error(anon.get(f"/api/listings/{listing['id']}"), 404, "listing_not_found")
    assert client_of.get(f"/api/listings/{listing['id']}").status_code == 200
    assert anon.get("/api/listings").json()["items"] == []
    mine = client_of.get("/api/me/listings", {"status": "pending_review"}).json()
    assert [item["id"] for item in mine["items"]] == [listing["id"]]


def test_approval_puts_it_on_sale_records_the_decision_and_the_event(client_of, anon, cats):
    listing_id = client_of.post(
        "/api/listings", publish_body(cats["apple"], upload_ids(client_of))
    ).json()["id"]
    staff = StaffFactory()
    catalog_actions.approve_listing(staff=staff, listing_id=listing_id)

    listing = Listing.objects.get(pk=listing_id)
    assert listing.status == ListingStatus.ON_SALE and listing.approved_at is not None
    review = listing.reviews.get()
    assert (review.staff, review.decision) == (staff, "approved")
    detail = anon.get(f"/api/listings/{listing_id}").json()
    assert detail["status"] == "on_sale"

    from realtime.models import Event

    event = Event.objects.get(user=client_of.user, type="listing.reviewed")
    assert event.data["id"] == listing_id and event.data["status"] == "on_sale"
    assert set(event.data) == set(detail)


def test_rejection_needs_a_reason_and_the_seller_sees_it(client_of, cats):
    listing_id = client_of.post(
        "/api/listings", publish_body(cats["apple"], upload_ids(client_of))
    ).json()["id"]
    staff = StaffFactory()
    with pytest.raises(catalog_actions.InvalidInput):
        catalog_actions.reject_listing(staff=staff, listing_id=listing_id, reason="  ")
    assert Listing.objects.get(pk=listing_id).status == ListingStatus.PENDING_REVIEW
    catalog_actions.reject_listing(staff=staff, listing_id=listing_id, reason="图片不清晰")
    detail = client_of.get(f"/api/listings/{listing_id}").json()
    assert (detail["status"], detail["review_note"]) == ("rejected", "图片不清晰")
    # A decided listing cannot be decided again.
    with pytest.raises(catalog_actions.Conflict):
        catalog_actions.approve_listing(staff=staff, listing_id=listing_id)


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"category_id": 999999}, 400, "unknown_category"),
        ({"category_key": "phones"}, 400, "category_not_leaf"),
        ({"category_key": "hidden"}, 400, "unknown_category"),
        ({"price": -1}, 422, "validation_error"),
        ({"price": 0}, 422, "validation_error"),
        ({"price": 1_000_000_001}, 422, "validation_error"),
        ({"price": 1.5}, 422, "validation_error"),
        ({"title": ""}, 422, "validation_error"),
        ({"title": "长" * 61}, 422, "validation_error"),
        ({"description": "x" * 2001}, 422, "validation_error"),
        ({"features": [{"name": "a", "value": "b"}] * 21}, 422, "validation_error"),
        ({"image_ids": []}, 422, "validation_error"),
        ({"image_ids": list(range(1, 11))}, 422, "validation_error"),
        ({"seller_id": 1}, 422, "validation_error"),
    ],
)
def test_bad_listing_input_is_refused_and_creates_nothing(client_of, cats, change, status, code):
    body = publish_body(cats["apple"], upload_ids(client_of))
    if "category_key" in change:
        body["category_id"] = cats[change.pop("category_key")].pk
    body.update(change)
    assert_error(client_of.post("/api/listings", body), status, code)
    assert Listing.objects.count() == 0


def test_someone_elses_or_an_already_used_upload_is_refused(client_of, make_client, cats):
    other = make_client()
    theirs = upload_ids(other)
    assert_error(
        client_of.post("/api/listings", publish_body(cats["apple"], theirs)),
        400,
        "invalid_image_id",
    )
    mine = upload_ids(client_of)
    assert client_of.post("/api/listings", publish_body(cats["apple"], mine)).status_code == 201
    assert_error(
        client_of.post("/api/listings", publish_body(cats["apple"], mine)), 400, "invalid_image_id"
    )
    assert_error(
        client_of.post("/api/listings", publish_body(cats["apple"], [mine[0] + 1000])),
        400,
        "invalid_image_id",
    )
    dup = upload_ids(client_of)
    assert_error(
        client_of.post("/api/listings", publish_body(cats["apple"], dup * 2)),
        400,
        "duplicate_image",
    )
    assert Listing.objects.count() == 1


def test_risky_text_is_refused_and_review_text_is_flagged(client_of, cats):
    ids = upload_ids(client_of)
    body = publish_body(cats["apple"], ids, description="出售违禁物品")
    assert_error(client_of.post("/api/listings", body), 422, "content_risky")
    assert Listing.objects.count() == 0
    response = client_of.post(
        "/api/listings", publish_body(cats["apple"], ids, title="海外代购包包")
    )
    assert response.status_code == 201
    assert Listing.objects.get(pk=response.json()["id"]).is_flagged is True


def test_unauthenticated_publish_is_401(anon, cats):
    assert_error(anon.post("/api/listings", {"title": "x"}), 401, "unauthorized")


# --- editing ------------------------------------------------------------------------------


def test_content_edit_sends_an_on_sale_listing_back_to_review(client_of, anon, cats):
    listing = make_listing(category=cats["apple"], seller=client_of.user)
    response = client_of.patch(f"/api/listings/{listing.pk}", {"title": "改了标题"})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "pending_review"
    assert_error(anon.get(f"/api/listings/{listing.pk}"), 404)


def test_price_only_edit_keeps_it_on_sale(client_of, cats):
    listing = make_listing(category=cats["apple"], seller=client_of.user)
    response = client_of.patch(f"/api/listings/{listing.pk}", {"price": 250000})
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["price"]) == ("on_sale", 250000)


def test_editing_a_rejected_listing_resubmits_it(client_of, cats):
    listing = make_listing(category=cats["apple"], seller=client_of.user, status="rejected")
    response = client_of.patch(f"/api/listings/{listing.pk}", {"price": 100})
    assert response.json()["status"] == "pending_review"


def test_edit_replaces_images_and_the_cover(client_of, cats):
    ids = upload_ids(client_of, 2)
    listing_id = client_of.post("/api/listings", publish_body(cats["apple"], ids)).json()["id"]
    new = upload_ids(client_of)
    response = client_of.patch(f"/api/listings/{listing_id}", {"image_ids": [new[0], ids[0]]})
    assert response.status_code == 200, response.content
    listing = Listing.objects.get(pk=listing_id)
    assert list(listing.images.order_by("position").values_list("pk", flat=True)) == [
        new[0],
        ids[0],
    ]
    assert listing.cover == listing.images.get(pk=new[0]).thumbnail
    # The dropped image stays consumed: it can never be attached elsewhere.
    assert_error(
        client_of.post("/api/listings", publish_body(cats["apple"], [ids[1]])),
        400,
        "invalid_image_id",
    )


@pytest.mark.parametrize("status", ["reserved", "sold"])
def test_reserved_or_sold_listing_cannot_be_edited_or_taken_down(client_of, cats, status):
    listing = make_listing(category=cats["apple"], seller=client_of.user, status=status)
    assert_error(
        client_of.patch(f"/api/listings/{listing.pk}", {"title": "新"}), 409, "listing_not_editable"
    )
    assert_error(
        client_of.post(f"/api/listings/{listing.pk}/off-shelf"), 409, "listing_not_editable"
    )
    listing.refresh_from_db()
    assert (listing.status, listing.title) == (status, "九成新 iPhone 13 128G")


def test_someone_elses_listing_is_404_for_every_write(client_of, cats):
    listing = make_listing(category=cats["apple"])
    assert_error(
        client_of.patch(f"/api/listings/{listing.pk}", {"price": 1}), 404, "listing_not_found"
    )
    assert_error(client_of.post(f"/api/listings/{listing.pk}/off-shelf"), 404, "listing_not_found")
    assert_error(client_of.post(f"/api/listings/{listing.pk}/relist"), 404, "listing_not_found")
    listing.refresh_from_db()
    assert (listing.price_fen, listing.status) == (300000, "on_sale")


def test_off_shelf_hides_it_and_relist_goes_through_review(client_of, anon, cats):
    listing = make_listing(category=cats["apple"], seller=client_of.user)
    response = client_of.post(f"/api/listings/{listing.pk}/off-shelf")
    assert response.json()["status"] == "off_shelf"
    assert client_of.post(f"/api/listings/{listing.pk}/off-shelf").status_code == 200  # idempotent
    assert_error(anon.get(f"/api/listings/{listing.pk}"), 404)
    assert client_of.post(f"/api/listings/{listing.pk}/relist").json()["status"] == "pending_review"
    assert_error(client_of.post(f"/api/listings/{listing.pk}/relist"), 409, "not_off_shelf")


def test_my_listings_rejects_an_unknown_status(client_of):
    assert_error(client_of.get("/api/me/listings", {"status": "nope"}), 422, "validation_error")


# --- public visibility --------------------------------------------------------------------


def test_banned_sellers_listings_vanish_from_every_public_view(anon, cats):
    listing = make_listing(category=cats["apple"])
    assert anon.get(f"/api/listings/{listing.pk}").status_code == 200
    ban_user(user=listing.seller, reason="spam")
    assert_error(anon.get(f"/api/listings/{listing.pk}"), 404)
    assert anon.get("/api/listings").json()["items"] == []
    assert anon.get("/api/home").json()["newest"] == []
    assert anon.get("/api/listings", {"q": "iPhone"}).json()["items"] == []


def test_sold_listing_detail_stays_visible_but_not_in_lists(anon, cats):
    listing = make_listing(category=cats["apple"], status="sold")
    assert anon.get(f"/api/listings/{listing.pk}").json()["status"] == "sold"
    assert anon.get("/api/listings").json()["items"] == []


# --- search -------------------------------------------------------------------------------


@pytest.fixture
def catalog(cats):
    now = timezone.now()
    rows = {
        "iphone": make_listing(
            category=cats["apple"], title="苹果手机 iPhone 13", price_fen=300000
        ),
        "pixel": make_listing(
            category=cats["android"],
            title="谷歌 Pixel 7",
            description="原装充电器，手机壳",
            price_fen=200000,
        ),
        "mac": make_listing(
            category=cats["laptops"], title="MacBook Air 笔记本电脑", price_fen=600000
        ),
    }
    for age, listing in enumerate(rows.values()):
        Listing.objects.filter(pk=listing.pk).update(approved_at=now - timedelta(minutes=age))
    return rows


def ids_of(response):
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("苹果手机", ["iphone"]),
        ("手机", ["iphone", "pixel"]),  # title of one, description of the other
        ("机", ["iphone", "pixel"]),
        ("iphone", ["iphone"]),  # case-insensitive
        ("笔记本电脑", ["mac"]),
        ("Pixel 充电器", ["pixel"]),  # every word must match
        ("不存在的东西", []),
        ('"引号" %_', []),  # FTS/LIKE metacharacters are literals
    ],
)
def test_keyword_search_over_title_and_description(anon, catalog, q, expected):
    assert ids_of(anon.get("/api/listings", {"q": q})) == [catalog[k].pk for k in expected]


def test_category_filter_includes_children(anon, cats, catalog):
    parent = ids_of(anon.get("/api/listings", {"category": cats["phones"].pk}))
    assert parent == [catalog["iphone"].pk, catalog["pixel"].pk]
    leaf = ids_of(anon.get("/api/listings", {"category": cats["android"].pk}))
    assert leaf == [catalog["pixel"].pk]
    assert_error(anon.get("/api/listings", {"category": 999999}), 400, "unknown_category")
    assert_error(
        anon.get("/api/listings", {"category": cats["hidden"].pk}), 400, "unknown_category"
    )


def test_price_range_and_sorts(anon, catalog):
    both = ids_of(anon.get("/api/listings", {"min_price": 200000, "max_price": 300000}))
    assert both == [catalog["iphone"].pk, catalog["pixel"].pk]
    asc = ids_of(anon.get("/api/listings", {"sort": "price_asc"}))
    assert asc == [catalog[k].pk for k in ("pixel", "iphone", "mac")]
    desc = ids_of(anon.get("/api/listings", {"sort": "price_desc"}))
    assert desc == [catalog[k].pk for k in ("mac", "iphone", "pixel")]
    Listing.objects.filter(pk=catalog["mac"].pk).update(views=9)
    assert ids_of(anon.get("/api/listings", {"sort": "hot"}))[0] == catalog["mac"].pk
    assert_error(
        anon.get("/api/listings", {"min_price": 5, "max_price": 1}), 400, "invalid_price_range"
    )
    assert_error(anon.get("/api/listings", {"sort": "random"}), 422, "validation_error")
    assert_error(anon.get("/api/listings", {"min_price": -1}), 422, "validation_error")
    assert_error(anon.get("/api/listings", {"limit": 101}), 422, "validation_error")
    assert_error(anon.get("/api/listings", {"limit": 0}), 422, "validation_error")


@pytest.mark.parametrize("sort", ["newest", "hot", "price_asc", "price_desc"])
def test_cursor_pages_stay_stable_while_listings_are_added(anon, cats, sort):
    base = timezone.now() - timedelta(hours=1)
    for i in range(7):
        listing = make_listing(category=cats["apple"], price_fen=1000 + (i % 3), views=i % 2)
        Listing.objects.filter(pk=listing.pk).update(approved_at=base + timedelta(minutes=i % 4))
    seen = []
    response = anon.get("/api/listings", {"sort": sort, "limit": 3})
    seen += ids_of(response)
    cursor = response.json()["next_cursor"]
    # New listings arriving mid-browse must not shift the pages already handed out.
    make_listing(category=cats["apple"], price_fen=1001, views=1)
    while cursor:
        response = anon.get("/api/listings", {"sort": sort, "limit": 3, "cursor": cursor})
        seen += ids_of(response)
        cursor = response.json()["next_cursor"]
    assert len(seen) == len(set(seen))
    assert len(seen) >= 7


@pytest.mark.parametrize("cursor", ["garbage", "eyJ4Ijox", "WyJ4IixbMV1d", "W10", "!!!", "=" * 10])
def test_a_bad_cursor_is_a_clear_400(anon, catalog, cursor):
    assert_error(anon.get("/api/listings", {"cursor": cursor}), 400, "invalid_cursor")


def test_a_cursor_from_another_sort_is_refused(anon, cats):
    for _ in range(3):
        make_listing(category=cats["apple"])
    cursor = anon.get("/api/listings", {"limit": 1, "sort": "hot"}).json()["next_cursor"]
    assert cursor
    assert_error(
        anon.get("/api/listings", {"cursor": cursor, "sort": "price_asc"}), 400, "invalid_cursor"
    )


# --- views and hot ------------------------------------------------------------------------


def test_a_detail_open_counts_once_per_viewer_per_hour(anon, make_client, cats):
    listing = make_listing(category=cats["apple"])
    viewer = make_client()
    for _ in range(3):
        assert viewer.get(f"/api/listings/{listing.pk}").status_code == 200
        assert anon.get(f"/api/listings/{listing.pk}").status_code == 200
    anon.client.get(f"/api/listings/{listing.pk}", REMOTE_ADDR="10.0.0.9")
    # The seller opening their own listing is not a click.
    make_client(listing.seller).get(f"/api/listings/{listing.pk}")
    assert ListingView.objects.count() == 3
    assert flush_listing_views.call_local() == 3
    listing.refresh_from_db()
    assert listing.views == 3
    assert ListingView.objects.count() == 0
    assert flush_listing_views.call_local() == 0  # idempotent: nothing counted twice
    listing.refresh_from_db()
    assert listing.views == 3


def test_flush_folds_views_of_many_listings(cats):
    a = make_listing(category=cats["apple"])
    b = make_listing(category=cats["apple"])
    ListingView.objects.bulk_create(
        [ListingView(listing_id=a.pk)] * 5 + [ListingView(listing_id=b.pk)] * 2
    )
    assert catalog_actions.flush_listing_views(batch=4) == 4
    assert catalog_actions.flush_listing_views(batch=4) == 3
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.views, b.views) == (5, 2)


def test_views_of_listings_not_on_sale_are_not_counted(anon, cats):
    listing = make_listing(category=cats["apple"], status="sold")
    anon.get(f"/api/listings/{listing.pk}")
    assert ListingView.objects.count() == 0


# --- query counts -------------------------------------------------------------------------


def _queries(anon, path, params):
    with CaptureQueriesContext(connection) as captured:
        response = anon.get(path, params)
    assert response.status_code == 200, response.content
    return len(captured), response.json()


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"sort": "hot"},
        {"sort": "price_asc", "q": "iPhone"},
        {"q": "自用", "category": "phones", "min_price": 1},
    ],
)
def test_list_queries_do_not_grow_with_page_size(anon, cats, params):
    for _ in range(30):
        make_listing(category=cats["apple"], seller=UserFactory())
    if params.get("category") == "phones":
        params = {**params, "category": cats["phones"].pk}
        anon.get("/api/categories")  # warm the category cache like any running server
    small, body_small = _queries(anon, "/api/listings", {**params, "limit": 2})
    large, body_large = _queries(anon, "/api/listings", {**params, "limit": 30})
    assert len(body_small["items"]) == 2 and len(body_large["items"]) == 30
    assert large == small


def test_home_and_my_listings_queries_do_not_grow(anon, make_client, cats):
    seller = UserFactory()
    anon.get("/api/home")
    for _ in range(3):
        make_listing(category=cats["apple"])
    few, _ = _queries(anon, "/api/home", {})
    for _ in range(20):
        make_listing(category=cats["apple"], seller=seller)
    many, body = _queries(anon, "/api/home", {})
    assert len(body["newest"]) == 10 and many == few
    client = make_client(seller)
    client.get("/api/me")  # the token's first use records last_used_at once
    small, _ = _queries(client, "/api/me/listings", {"limit": 2})
    large, body = _queries(client, "/api/me/listings", {"limit": 20})
    assert len(body["items"]) == 20 and large == small
