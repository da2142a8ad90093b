"""Staff review in the Django admin, and the races around publishing, on PostgreSQL."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from marketplace.actions import catalog as catalog_actions
from marketplace.models import ImageUpload, Listing, ListingReview, ListingStatus, ListingView
from tests.factories import StaffFactory, UserFactory
from tests.marketplace.catalog_factories import category_tree, make_listing, make_upload

CHANGELIST = "/admin/marketplace/listing/"


@pytest.fixture
def staff_client(db):
    staff = StaffFactory()
    client = Client(HTTP_ACCEPT_LANGUAGE="en")  # the admin's English source text
    client.force_login(staff)
    client.staff = staff
    return client


@pytest.fixture
def queue(db):
    cats = category_tree()
    now = timezone.now()
    on_sale = make_listing(category=cats["apple"], title="已上架")
    newer = make_listing(category=cats["apple"], status="pending_review", title="新提交")
    older = make_listing(category=cats["apple"], status="pending_review", title="早提交")
    Listing.objects.filter(pk=newer.pk).update(submitted_at=now - timedelta(minutes=1))
    Listing.objects.filter(pk=older.pk).update(submitted_at=now - timedelta(hours=2))
    Listing.objects.filter(pk=on_sale.pk).update(submitted_at=now - timedelta(days=1))
    return {"on_sale": on_sale, "newer": newer, "older": older}


@pytest.mark.django_db
def test_queue_lists_pending_first_oldest_first(staff_client, queue):
    response = staff_client.get(CHANGELIST)
    assert response.status_code == 200
    ids = [row.pk for row in response.context["cl"].result_list]
    assert ids == [queue["older"].pk, queue["newer"].pk, queue["on_sale"].pk]
    assert staff_client.get(CHANGELIST, {"status__exact": "pending_review"}).status_code == 200
    assert staff_client.get(CHANGELIST, {"q": "早提交"}).context["cl"].result_count == 1


@pytest.mark.django_db
def test_approve_many_records_each_decision(staff_client, queue):
    ids = [queue["older"].pk, queue["newer"].pk, queue["on_sale"].pk]
    response = staff_client.post(
        CHANGELIST, {"action": "approve_selected", "_selected_action": ids}, follow=True
    )
    assert response.status_code == 200
    for key in ("older", "newer"):
        listing = Listing.objects.get(pk=queue[key].pk)
        assert listing.status == ListingStatus.ON_SALE and listing.approved_at
    reviews = ListingReview.objects.filter(staff=staff_client.staff, decision="approved")
    assert reviews.count() == 2  # the on-sale one was not pending: reported, not recorded
    messages = [str(m) for m in response.context["messages"]]
    assert any("not waiting for review" in m for m in messages)


@pytest.mark.django_db
def test_reject_asks_for_a_reason_first(staff_client, queue):
    ids = [queue["older"].pk, queue["newer"].pk]
    form = staff_client.post(CHANGELIST, {"action": "reject_selected", "_selected_action": ids})
    assert form.status_code == 200
    assert b"Reject with this reason" in form.content
    assert Listing.objects.filter(status="rejected").count() == 0

    blank = staff_client.post(
        CHANGELIST,
        {
            "action": "reject_selected",
            "_selected_action": ids,
            "confirm_reject": "1",
            "reason": " ",
        },
    )
    assert blank.status_code == 200 and blank.context["form"].errors
    assert Listing.objects.filter(status="rejected").count() == 0

    staff_client.post(
        CHANGELIST,
        {
            "action": "reject_selected",
            "_selected_action": ids,
            "confirm_reject": "1",
            "reason": "图片与描述不符",
        },
    )
    for pk in ids:
        listing = Listing.objects.get(pk=pk)
        assert (listing.status, listing.review_note) == ("rejected", "图片与描述不符")
    review = ListingReview.objects.get(listing_id=ids[0])
    assert (review.decision, review.reason, review.staff) == (
        "rejected",
        "图片与描述不符",
        staff_client.staff,
    )


@pytest.mark.django_db
def test_category_and_banner_admin_pages_render(staff_client, queue):
    assert staff_client.get("/admin/marketplace/category/").status_code == 200
    assert staff_client.get("/admin/marketplace/banner/").status_code == 200
    assert staff_client.get(f"{CHANGELIST}{queue['older'].pk}/change/").status_code == 200


# --- races (PostgreSQL, real threads) -------------------------------------------------------


def _run_in_threads(targets):
    barrier = threading.Barrier(len(targets))
    results = [None] * len(targets)

    def run(index, target):
        try:
            barrier.wait()
            results[index] = target()
        except Exception as exc:  # the loser's domain error is the result
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_upload_attaches_to_only_one_listing_under_a_race():
    cats = category_tree()
    seller = UserFactory()
    upload = make_upload(seller)
    data = {
        "category_id": cats["apple"].pk,
        "title": "同一张图",
        "description": "抢着发布",
        "features": [],
        "image_ids": [upload.pk],
        "price_fen": 100,
    }
    results = _run_in_threads(
        [lambda: catalog_actions.create_listing(seller=seller, data=data)] * 4
    )
    created = [r for r in results if isinstance(r, Listing)]
    assert len(created) == 1, results
    assert all(isinstance(r, catalog_actions.InvalidInput) for r in results if r not in created)
    assert Listing.objects.count() == 1
    assert ImageUpload.objects.get(pk=upload.pk).listing_id == created[0].pk


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_flushes_count_each_view_once():
    cats = category_tree()
    listing = make_listing(category=cats["apple"])
    ListingView.objects.bulk_create([ListingView(listing_id=listing.pk) for _ in range(300)])
    results = _run_in_threads(
        [lambda: catalog_actions.flush_listing_views(batch=50) for _ in range(4)]
    )
    while catalog_actions.flush_listing_views(batch=50):
        pass
    assert not any(isinstance(r, Exception) for r in results), results
    listing.refresh_from_db()
    assert listing.views == 300
    assert ListingView.objects.count() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_edit_racing_an_order_reservation_never_edits_a_reserved_listing():
    cats = category_tree()
    seller = UserFactory()
    listing = make_listing(category=cats["apple"], seller=seller)

    def reserve():
        from django.db import transaction

        with transaction.atomic():
            locked = Listing.objects.select_for_update().get(pk=listing.pk)
            if locked.status == ListingStatus.ON_SALE:
                locked.status = ListingStatus.RESERVED
                locked.save(update_fields=["status"])
            return "reserved"

    def edit():
        return catalog_actions.update_listing(
            seller=seller, listing_id=listing.pk, data={"price_fen": 5}
        )

    results = _run_in_threads([reserve, edit])
    listing.refresh_from_db()
    if listing.price_fen == 5:
        # The edit won the lock; the price changed while it was still on sale.
        assert isinstance(results[1], Listing)
    else:
        assert isinstance(results[1], catalog_actions.Conflict)
    assert listing.status == ListingStatus.RESERVED
