"""Staff roles: the groups migration 0008 creates, and what each role can and cannot do in the
admin (least privilege: a reviewer cannot pay out, support settles disputes, finance pays)."""

import pytest
from django.contrib.auth.models import Group, Permission

from marketplace.actions import wallet as wallet_actions
from marketplace.models import Listing, ListingReview, ListingStatus
from marketplace.models.fulfilment import Dispute
from marketplace.models.orders import Order
from marketplace.models.wallet import Withdrawal
from marketplace.states import OrderStatus
from tests.admin.helpers import admin_client, staff_in
from tests.factories import UserFactory
from tests.marketplace.fulfilment_helpers import shipped
from tests.marketplace.order_helpers import listing_on_sale
from tests.marketplace.wallet_helpers import VALID_CARD, credit, make_account

WITHDRAWALS = "/admin/marketplace/withdrawal/"
LISTINGS = "/admin/marketplace/listing/"


def _perms(group: Group) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in group.permissions.values_list("content_type__app_label", "codename")
    }


@pytest.mark.django_db
def test_the_migration_created_the_three_groups_with_least_privilege():
    # No helper here: these are the rows the migration itself left in the test database.
    groups = {group.name: _perms(group) for group in Group.objects.all()}
    reviewers, support, finance = groups["reviewers"], groups["support"], groups["finance"]

    assert {"marketplace.change_listing", "marketplace.view_category"} <= reviewers
    assert {"marketplace.change_dispute", "marketplace.ban_user", "marketplace.view_order"} <= (
        support
    )
    assert {
        "marketplace.change_withdrawal",
        "marketplace.view_full_account_number",
        "marketplace.view_payoutaccount",
    } <= finance
    payout = {"marketplace.change_withdrawal", "marketplace.view_full_account_number"}
    assert not payout & reviewers and not payout & support
    assert "marketplace.change_listing" not in finance | support
    assert not {"marketplace.change_dispute", "marketplace.ban_user"} & (finance | reviewers)
    # Nobody but a superuser edits money settings, users or the catalog tree.
    for perms in groups.values():
        assert (
            not {
                "marketplace.change_platformsettings",
                "marketplace.change_user",
                "marketplace.change_category",
                "marketplace.change_wallet",
                "marketplace.change_ledgerentry",
                "marketplace.change_order",
            }
            & perms
        )


def _pending_withdrawal(amount_fen: int = 3000) -> Withdrawal:
    seller = UserFactory()
    credit(seller, 10_000)
    account = make_account(
        seller, type="bank", holder_name="王五", account_no=VALID_CARD, bank_name="中国银行"
    )
    return wallet_actions.request_withdrawal(
        user=seller, amount_fen=amount_fen, account_id=account.pk
    )


@pytest.mark.django_db
def test_reviewer_approves_listings_but_cannot_pay_out():
    reviewer = admin_client(staff_in("reviewers"))
    listing = listing_on_sale(status=ListingStatus.PENDING_REVIEW)
    withdrawal = _pending_withdrawal()

    approved = reviewer.post(
        LISTINGS, {"action": "approve_selected", "_selected_action": [listing.pk]}
    )
    queue = reviewer.get(WITHDRAWALS)
    pay = reviewer.post(
        WITHDRAWALS,
        {
            "action": "mark_paid",
            "_selected_action": [withdrawal.pk],
            "confirm": "1",
            f"reference_{withdrawal.pk}": "BANK-1",
        },
    )

    assert approved.status_code == 302
    assert Listing.objects.get(pk=listing.pk).status == ListingStatus.ON_SALE
    assert ListingReview.objects.get(listing=listing).staff == reviewer.user
    assert queue.status_code == 403 and pay.status_code == 403
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == Withdrawal.Status.PENDING
    assert reviewer.get("/admin/marketplace/user/").status_code == 403
    assert reviewer.get("/admin/marketplace/platformsettings/").status_code == 403


@pytest.mark.django_db
def test_finance_pays_out_and_sees_full_numbers_but_cannot_review_or_ban():
    finance = admin_client(staff_in("finance"))
    withdrawal = _pending_withdrawal(2500)
    listing = listing_on_sale(status=ListingStatus.PENDING_REVIEW)

    queue = finance.get(WITHDRAWALS)
    paid = finance.post(
        WITHDRAWALS,
        {
            "action": "mark_paid",
            "_selected_action": [withdrawal.pk],
            "confirm": "1",
            f"reference_{withdrawal.pk}": "BANK-TRANSFER-7",
        },
    )
    approve = finance.post(
        LISTINGS, {"action": "approve_selected", "_selected_action": [listing.pk]}
    )

    assert queue.status_code == 200 and VALID_CARD in queue.content.decode()
    assert paid.status_code == 302
    withdrawal.refresh_from_db()
    assert withdrawal.status == Withdrawal.Status.PAID
    assert withdrawal.decided_by == finance.user and withdrawal.decided_at
    assert withdrawal.transfer_reference == "BANK-TRANSFER-7"
    assert approve.status_code == 403
    assert Listing.objects.get(pk=listing.pk).status == ListingStatus.PENDING_REVIEW
    assert finance.get("/admin/marketplace/user/").status_code == 403


@pytest.mark.django_db
def test_support_cannot_pay_out_nor_see_full_account_numbers():
    support = admin_client(staff_in("support"))
    withdrawal = _pending_withdrawal()

    response = support.post(
        WITHDRAWALS,
        {
            "action": "mark_paid",
            "_selected_action": [withdrawal.pk],
            "confirm": "1",
            f"reference_{withdrawal.pk}": "X",
        },
    )

    assert response.status_code == 403
    assert (
        support.get(f"/admin/marketplace/payoutaccount/{withdrawal.account_id}/change/").status_code
        == 403
    )
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == Withdrawal.Status.PENDING


@pytest.mark.django_db(transaction=True)
def test_support_settles_a_dispute_and_the_settlement_names_them(make_client):
    buyer, seller, order_no = shipped(make_client, price_fen=10_000)
    assert (
        buyer.post(f"/api/orders/{order_no}/dispute", {"reason": "屏幕有划痕"}).status_code == 200
    )
    order = Order.objects.get(order_no=order_no)
    support = admin_client(staff_in("support"))
    reviewer = admin_client(staff_in("reviewers"))
    finance = admin_client(staff_in("finance"))
    settle_url = f"/admin/marketplace/order/{order.pk}/settle/"

    refused = [
        client.post(settle_url, {"refund_yuan": "0", "note": "x"}) for client in (reviewer, finance)
    ]
    assert [response.status_code for response in refused] == [403, 403]
    assert Order.objects.get(pk=order.pk).status == OrderStatus.DISPUTED

    offered = support.post(
        "/admin/marketplace/order/", {"action": "settle_dispute", "_selected_action": [order.pk]}
    )
    done = support.post(settle_url, {"refund_yuan": "30.00", "note": "部分退款，买家同意"})

    assert offered.status_code == 302 and offered["Location"].endswith(f"/{order.pk}/settle/")
    assert done.status_code == 302
    dispute = Dispute.objects.get(order=order)
    assert dispute.settled_by == support.user and dispute.settled_at
    assert dispute.refund_fen == 3000
    assert Order.objects.get(pk=order.pk).history.last().actor_user == support.user


@pytest.mark.django_db
def test_superuser_keeps_every_action():
    from tests.factories import StaffFactory

    boss = admin_client(StaffFactory())
    withdrawal = _pending_withdrawal()
    page = boss.get(WITHDRAWALS)
    actions = [choice[0] for choice in page.context["action_form"].fields["action"].choices]
    assert {"mark_paid", "reject"} <= set(actions)
    assert Permission.objects.filter(codename="ban_user").exists()
    assert withdrawal.status == Withdrawal.Status.PENDING


@pytest.mark.django_db
def test_only_superusers_create_the_settings_rows():
    from marketplace.models.orders import PlatformSettings
    from realtime.models import RealtimeSettings

    PlatformSettings.objects.all().delete()
    RealtimeSettings.objects.all().delete()
    for role in ("reviewers", "support", "finance"):
        client = admin_client(staff_in(role))
        assert client.get("/admin/marketplace/platformsettings/add/").status_code == 403, role
        assert client.get("/admin/realtime/realtimesettings/add/").status_code == 403, role
    from tests.factories import StaffFactory

    assert (
        admin_client(StaffFactory()).get("/admin/realtime/realtimesettings/add/").status_code == 200
    )


@pytest.mark.django_db
def test_finance_resubmits_a_stuck_refund_and_the_log_names_them():
    from django.contrib.admin.models import LogEntry

    from marketplace.models.orders import Refund
    from tests.admin.test_dashboard import make_order

    order = make_order(OrderStatus.CANCELLED)
    refund = Refund.objects.create(
        order=order, out_refund_no="R-stuck", amount_fen=100, reason="x", status="needs_attention"
    )
    reviewer = admin_client(staff_in("reviewers"))
    finance = admin_client(staff_in("finance"))
    url = "/admin/marketplace/refund/"

    assert (
        reviewer.post(url, {"action": "retry", "_selected_action": [refund.pk]}).status_code == 403
    )
    assert (
        finance.post(url, {"action": "retry", "_selected_action": [refund.pk]}).status_code == 302
    )

    assert Refund.objects.get(pk=refund.pk).status == Refund.Status.PENDING
    entry = LogEntry.objects.get(object_id=str(refund.pk), content_type__model="refund")
    assert entry.user == finance.user and entry.get_change_message() == "Resubmitted to WeChat Pay."


@pytest.mark.django_db
def test_support_reads_deletion_requests_but_cannot_change_them():
    support = staff_in("support")
    client = admin_client(support)
    deletion_user = UserFactory()
    from django.utils import timezone

    from marketplace.models import AccountDeletion

    deletion = AccountDeletion.objects.create(user=deletion_user, erase_after=timezone.now())
    assert client.get("/admin/marketplace/accountdeletion/").status_code == 200
    page = client.get(f"/admin/marketplace/accountdeletion/{deletion.pk}/change/")
    assert page.status_code == 200
    assert b"openid" not in page.content.lower()
    assert client.get("/admin/marketplace/retentionrun/").status_code == 200
    assert client.post(
        f"/admin/marketplace/accountdeletion/{deletion.pk}/delete/", {"post": "yes"}
    ).status_code == 403
    assert AccountDeletion.objects.filter(pk=deletion.pk).exists()
