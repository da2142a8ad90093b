"""Users through the admin (ban and unban, recorded), and every model's admin: registered or
deliberately not, lists that open, and no editable money or status anywhere."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.test import RequestFactory

from marketplace.models import ApiToken, ListingStatus, User, Withdrawal
from tests.admin.helpers import admin_client, staff_in
from tests.factories import StaffFactory, UserFactory
from tests.marketplace.order_helpers import listing_on_sale

pytestmark = pytest.mark.django_db

USERS = "/admin/marketplace/user/"

# Shown inline on their parent's page or internal bookkeeping; never worked on by themselves.
NOT_REGISTERED = {
    "marketplace.address": "inline on the user",
    "marketplace.imageupload": "inline on the listing",
    "marketplace.listingview": "raw click rows, folded into Listing.views by a task",
    "negotiation.messageinbox": "a counter row per user (the unread badge), kept by the actions",
    "negotiation.userblock": "users' own choice; its effect shows on the conversations (is_blocked)",
    "marketplace.orderhistory": "inline on the order",
    "marketplace.trackingevent": "inline on the order",
    "marketplace.wechattransferevent": "inline on the transfer",
    "marketplace.idempotencyrecord": "replay cache for Idempotency-Key",
    "negotiation.offerhistory": "inline on the offer",
    "realtime.eventcounter": "per-user sequence counter",
}
# The one editable amount: the minimum withdrawal, a platform setting whose every change the
# settings action records.
EDITABLE_MONEY = {("marketplace.platformsettings", "min_withdrawal_fen")}


def test_support_bans_and_unbans_through_the_admin_and_each_is_logged(make_client):
    support = admin_client(staff_in("support"))
    seller = make_client()
    listing = listing_on_sale(seller=seller.user, title="被封用户的商品")
    assert seller.get("/api/me").status_code == 200
    assert listing.pk in [item["id"] for item in seller.get("/api/listings").json()["items"]]

    banned = support.post(USERS, {"action": "ban_users", "_selected_action": [seller.user.pk]})

    assert banned.status_code == 302
    user = User.objects.get(pk=seller.user.pk)
    assert user.is_banned and user.banned_at and support.user.username in user.ban_reason
    assert seller.get("/api/me").status_code == 401
    assert not ApiToken.objects.filter(user=user, revoked_at__isnull=True).exists()
    public = make_client().get("/api/listings").json()["items"]
    assert listing.pk not in [item["id"] for item in public]
    assert make_client().get(f"/api/listings/{listing.pk}").status_code == 404

    unbanned = support.post(USERS, {"action": "unban_users", "_selected_action": [user.pk]})

    assert unbanned.status_code == 302 and not User.objects.get(pk=user.pk).is_banned
    log = list(LogEntry.objects.filter(object_id=str(user.pk), action_flag=CHANGE).order_by("id"))
    assert [(entry.user_id, entry.get_change_message()) for entry in log] == [
        (support.user.pk, "Banned (tokens revoked, listings hidden)."),
        (support.user.pk, "Unbanned."),
    ]
    assert listing.pk in [item["id"] for item in make_client().get("/api/listings").json()["items"]]
    assert listing.status == ListingStatus.ON_SALE


def test_viewing_users_is_not_enough_to_ban():
    viewer = UserFactory(is_staff=True, openid=None)
    viewer.user_permissions.add(Permission.objects.get(codename="view_user"))
    target = UserFactory()
    client = admin_client(viewer)

    page = client.get(USERS)
    client.post(USERS, {"action": "ban_users", "_selected_action": [target.pk]})

    assert page.status_code == 200 and "ban_users" not in page.content.decode()
    assert not User.objects.get(pk=target.pk).is_banned
    assert admin_client(staff_in("finance")).get(USERS).status_code == 403


def test_superusers_cannot_be_banned_from_the_admin():
    boss = admin_client(StaffFactory())
    other = StaffFactory()
    boss.post(USERS, {"action": "ban_users", "_selected_action": [other.pk]})
    assert not User.objects.get(pk=other.pk).is_banned


def _our_models():
    return [
        model
        for label in ("marketplace", "negotiation", "realtime")
        for model in apps.get_app_config(label).get_models()
    ]


def test_every_model_is_registered_or_deliberately_not():
    for model in _our_models():
        key = model._meta.label_lower
        assert admin.site.is_registered(model) != (key in NOT_REGISTERED), key
    assert admin.site.is_registered(apps.get_model("auth", "Group"))


def test_every_list_opens_searches_and_filters_for_a_superuser():
    client = admin_client(StaffFactory())
    listing_on_sale()
    for model in _our_models():
        if not admin.site.is_registered(model):
            continue
        model_admin = admin.site.get_model_admin(model)
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url
        if model_admin.search_fields:
            assert client.get(url, {"q": "x"}).status_code == 200, url


def test_no_admin_form_edits_a_status_a_balance_or_an_amount():
    request = RequestFactory().get("/admin/")
    request.user = StaffFactory()
    for model in _our_models():
        if not admin.site.is_registered(model):
            continue
        model_admin = admin.site.get_model_admin(model)
        if not (
            model_admin.has_change_permission(request) or model_admin.has_add_permission(request)
        ):
            continue  # nothing can be saved through it at all
        readonly = set(model_admin.get_readonly_fields(request, None))
        form = model_admin.get_form(request, None)
        editable = set(form.base_fields) - readonly
        key = model._meta.label_lower
        for name in editable:
            money = name.endswith("_fen") and (key, name) not in EDITABLE_MONEY
            assert not money and name not in {"status", "is_banned", "banned_at"}, (key, name)


def _add_rows():
    from marketplace.actions.accounts import issue_token
    from marketplace.models.fulfilment import Dispute
    from marketplace.models.orders import Refund
    from marketplace.states import OrderStatus
    from tests.admin.test_dashboard import make_order
    from tests.admin.test_roles import _pending_withdrawal

    order = make_order(OrderStatus.DISPUTED, paid_at=None)
    Dispute.objects.create(order=order, reason="坏了")
    Refund.objects.create(
        order=order, out_refund_no=f"R{order.pk}", amount_fen=1, reason="x", status="pending"
    )
    issue_token(user=order.buyer)
    _pending_withdrawal(100)


def test_changelists_cost_the_same_queries_for_one_row_or_fifty():
    """Every changelist, every column (issue 22's console included): 1 row and 50 cost alike."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = admin_client(StaffFactory())
    urls = [
        f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        for model in _our_models()
        if admin.site.is_registered(model)
    ]

    def costs() -> dict[str, int]:
        counts = {}
        for url in urls:
            with CaptureQueriesContext(connection) as queries:
                assert client.get(url).status_code == 200, url
            counts[url] = len(queries)
        return counts

    _add_rows()
    few = costs()
    for _ in range(49):
        _add_rows()
    many = costs()
    assert Withdrawal.objects.count() == 50
    grew = {url: (few[url], many[url]) for url in urls if many[url] != few[url]}
    assert not grew, grew
