"""Staff work on orders in the Django admin: settle disputes, platform settings, refunds."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from marketplace.models.fulfilment import Dispute
from marketplace.models.orders import Order, PaymentNotification, PlatformSettingsChange, Refund
from marketplace.money import yuan
from marketplace.states import OrderStatus
from tests.factories import StaffFactory, UserFactory
from tests.marketplace.fulfilment_helpers import shipped

pytestmark = pytest.mark.django_db(transaction=True)


def staff_client(user=None) -> Client:
    client = Client()
    client.force_login(user or StaffFactory())
    return client


def test_order_changelist_filters_and_searches(make_client):
    buyer, seller, order_no = shipped(make_client)
    admin = staff_client()

    by_status = admin.get("/admin/marketplace/order/", {"status__exact": "shipped"})
    by_search = admin.get("/admin/marketplace/order/", {"q": order_no})
    other_status = admin.get("/admin/marketplace/order/", {"status__exact": "completed"})

    assert by_status.status_code == 200 and order_no in by_status.content.decode()
    assert order_no in by_search.content.decode()
    assert order_no not in other_status.content.decode()
    detail = admin.get(
        f"/admin/marketplace/order/{Order.objects.get(order_no=order_no).pk}/change/"
    )
    assert (
        detail.status_code == 200 and "awaiting_shipment" in detail.content.decode()
    )  # history inline


def test_staff_settle_a_dispute_through_the_admin_form(make_client):
    buyer, seller, order_no = shipped(make_client, price_fen=10_000)
    buyer.post(f"/api/orders/{order_no}/dispute", {"reason": "坏了"})
    order = Order.objects.get(order_no=order_no)
    staff = StaffFactory()
    admin = staff_client(staff)

    action = admin.post(
        "/admin/marketplace/order/",
        {"action": "settle_dispute", "_selected_action": [order.pk]},
    )
    assert action.status_code == 302 and action["Location"].endswith(f"/{order.pk}/settle/")
    missing_note = admin.post(f"/admin/marketplace/order/{order.pk}/settle/", {"refund_yuan": "40.00"})
    assert (
        missing_note.status_code == 200
        and Order.objects.get(pk=order.pk).status == OrderStatus.DISPUTED
    )

    done = admin.post(
        f"/admin/marketplace/order/{order.pk}/settle/", {"refund_yuan": "40.00", "note": "部分退款"}
    )

    assert done.status_code == 302
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    dispute = Dispute.objects.get(order=order)
    assert dispute.settled_by == staff and dispute.refund_fen == 4000 and dispute.note == "部分退款"
    assert Refund.objects.get(order=order).amount_fen == 4000
    assert order.history.last().actor_user == staff


def test_staff_without_dispute_permission_cannot_settle(make_client):
    buyer, seller, order_no = shipped(make_client)
    buyer.post(f"/api/orders/{order_no}/dispute", {"reason": "坏了"})
    order = Order.objects.get(order_no=order_no)
    reviewer = UserFactory(is_staff=True, openid=None)
    reviewer.user_permissions.add(Permission.objects.get(codename="view_order"))

    response = staff_client(reviewer).post(
        f"/admin/marketplace/order/{order.pk}/settle/", {"refund_fen": 0, "note": "x"}
    )

    assert response.status_code == 403
    assert Order.objects.get(pk=order.pk).status == OrderStatus.DISPUTED


def test_platform_settings_changes_are_recorded(db):
    from marketplace.selectors import platform_settings

    settings_row = platform_settings()
    staff = StaffFactory()
    admin = staff_client(staff)
    form = {
        name: getattr(settings_row, name)
        for name in (
            "commission_rate_bp",
            "payment_minutes",
            "video_upload_hours",
            "video_confirm_hours",
            "complete_after_delivered_hours",
            "complete_after_shipped_days",
            "offer_expiry_hours",
            "offers_per_listing_per_day",
        )
    }
    # Money is typed in yuan on the form (stored in fen).
    form["min_withdrawal_fen"] = yuan(settings_row.min_withdrawal_fen)

    response = admin.post(
        f"/admin/marketplace/platformsettings/{settings_row.pk}/change/",
        {**form, "commission_rate_bp": 800},
    )

    assert response.status_code == 302
    assert platform_settings().commission_rate_bp == 800
    change = PlatformSettingsChange.objects.get()
    assert (change.staff, change.field, change.old_value, change.new_value) == (
        staff,
        "commission_rate_bp",
        "500",
        "800",
    )
    too_high = admin.post(
        f"/admin/marketplace/platformsettings/{settings_row.pk}/change/",
        {**form, "commission_rate_bp": 6000},
    )
    assert too_high.status_code == 200  # the form shows the error
    assert platform_settings().commission_rate_bp == 800


def test_payment_notifications_are_read_only(db):
    PaymentNotification.objects.create(kind="payment", body="{}", outcome="x")
    admin = staff_client()
    note = PaymentNotification.objects.get()

    assert admin.get("/admin/marketplace/paymentnotification/").status_code == 200
    response = admin.post(
        f"/admin/marketplace/paymentnotification/{note.pk}/change/", {"outcome": "edited"}
    )
    assert response.status_code == 403
    assert PaymentNotification.objects.get().outcome == "x"
